"""The conversion engine: atomic output, overwrite protection, drop reports, workers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import annobridge
from annobridge import BoxAnnotation, Capabilities, DatasetItem, Format, KeypointsAnnotation, hookimpl
from annobridge.converters import engine
from annobridge.core.errors import FormatError, ReadError, WriteError
from annobridge.core.formats import Context
from annobridge.core.model import Dataset, PolygonAnnotation
from annobridge.core.plugins import FormatRegistry, get_plugin_manager


def _items() -> list[DatasetItem]:
    return [
        DatasetItem(reference_id="a", width=10, height=10, metadata={"site": "x"}, annotations=[
            BoxAnnotation(label="car", x=1, y=1, width=2, height=2),
            PolygonAnnotation(label="car", vertices=[(0, 0), (1, 0), (1, 1)]),
            KeypointsAnnotation(label="p", keypoints=[1, 1, 2], names=["n"]),
        ]),
        DatasetItem(reference_id="b", width=10, height=10, annotations=[
            PolygonAnnotation(label="bus", vertices=[(0, 0), (2, 0), (2, 2)]),
        ]),
    ]


def _write_half_then_fail(dataset: Dataset, destination: Path, options, context: Context) -> None:
    destination.mkdir()
    for n, item in enumerate(dataset.items):
        (destination / f"{item.reference_id}.txt").write_text("partial")
        (destination.parent / "sidecar").mkdir(exist_ok=True)
        if n == 1:
            raise WriteError("disk on fire", item=item.reference_id)


def _write_boxes(dataset: Dataset, destination: Path, options, context: Context) -> None:
    destination.mkdir()
    for item in dataset.items:
        (destination / f"{item.reference_id}.txt").write_text(
            "".join(f"{a.label}\n" for a in item.annotations))


class ToyFormats:
    """A small plugin class registered on a fresh manager, as third-party code would."""

    @hookimpl
    def register_formats(self) -> list[Format]:
        caps = Capabilities(annotation_types=frozenset({"box"}))
        return [
            Format(name="toy-broken", description="fails half way", capabilities=caps,
                   write=_write_half_then_fail, output="directory"),
            Format(name="toy-boxes", description="labels of boxes", capabilities=caps,
                   write=_write_boxes, output="directory"),
        ]


@pytest.fixture
def toy_registry() -> FormatRegistry:
    pm = get_plugin_manager()
    pm.register(ToyFormats(), name="toy")
    return FormatRegistry.from_manager(pm)


def test_failed_write_leaves_nothing_behind(tmp_path: Path, toy_registry: FormatRegistry) -> None:
    dst = tmp_path / "out"
    with pytest.raises(WriteError, match='item "b".*disk on fire'):
        engine.write_dataset(Dataset(items=_items()), dst, "toy-broken", registry=toy_registry)
    assert list(tmp_path.iterdir()) == []


def test_existing_destination_is_refused_then_replaced_with_overwrite(tmp_path: Path, toy_registry) -> None:
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "keep.txt").write_text("old")
    with pytest.raises(WriteError, match=r"out: destination already exists; pass --overwrite"):
        engine.write_dataset(Dataset(items=_items()), dst, "toy-boxes", registry=toy_registry)
    assert (dst / "keep.txt").read_text() == "old"
    engine.write_dataset(Dataset(items=_items()), dst, "toy-boxes", overwrite=True, registry=toy_registry)
    assert sorted(p.name for p in dst.iterdir()) == ["a.txt", "b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging folders left


def test_failed_overwrite_keeps_the_old_output(tmp_path: Path, toy_registry) -> None:
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "keep.txt").write_text("old")
    with pytest.raises(WriteError):
        engine.write_dataset(Dataset(items=_items()), dst, "toy-broken", overwrite=True, registry=toy_registry)
    assert (dst / "keep.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_drops_are_reported_per_kind(tmp_path: Path, toy_registry) -> None:
    report = engine.write_dataset(Dataset(items=_items()), tmp_path / "out", "toy-boxes", registry=toy_registry,
                                  derive="none")
    assert report.read == {"box": 1, "polygon": 2, "keypoints": 1}
    assert report.dropped["polygon"] == {"toy-boxes cannot hold polygon ground truth (--derive none)": 2}
    assert report.dropped["keypoints"] == {"toy-boxes cannot hold keypoints ground truth (--derive none)": 1}
    assert report.dropped["item metadata"] == {"toy-boxes holds no item metadata": 1}
    assert report.written == {"box": 1, "polygon": 0, "keypoints": 0}
    assert "dropped 2 x polygon" in report.summary()
    assert (tmp_path / "out" / "a.txt").read_text() == "car\n"


def test_kinds_the_target_lacks_are_converted_and_counted_apart_from_drops(tmp_path: Path, toy_registry) -> None:
    report = engine.write_dataset(Dataset(items=_items()), tmp_path / "out", "toy-boxes", registry=toy_registry)
    assert report.converted == {"polygon -> box": 2, "keypoints -> box": 1}
    assert set(report.dropped) == {"item metadata"}
    assert report.written == {"box": 4, "polygon": 0, "keypoints": 0}
    assert "converted 2 polygon -> box" in report.summary()
    assert (tmp_path / "out" / "a.txt").read_text() == "car\ncar\np\n"
    assert (tmp_path / "out" / "b.txt").read_text() == "bus\n"


def test_jsonl_round_trip_is_lossless_and_reports_nothing(tmp_path: Path) -> None:
    report = annobridge.save(_items(), tmp_path / "d.jsonl", "jsonl")
    assert report.lossless
    back = annobridge.load(tmp_path / "d.jsonl")
    assert back.format == "jsonl"
    assert list(back.items) == _items()


def test_duplicate_ids_in_a_file_name_file_and_item(tmp_path: Path) -> None:
    annobridge.save(_items(), tmp_path / "d.jsonl", "jsonl")
    lines = (tmp_path / "d.jsonl").read_text().splitlines()
    lines[1] = lines[1].replace('"annotation_id":null', '"annotation_id":"dup"')  # polygon and keypoints
    (tmp_path / "d.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ReadError, match=r'd\.jsonl:line 2 \(item "a"\): annotation id .dup. is used twice'):
        annobridge.load(tmp_path / "d.jsonl")


def test_engine_checks_ids_of_readers_that_skip_validation() -> None:
    """Readers on hot paths build with model_construct; the engine still refuses duplicate ids."""
    twins = [BoxAnnotation.model_construct(label="a", x=0, y=0, width=1, height=1, annotation_id="7")
             for _ in range(2)]
    item = DatasetItem.model_construct(reference_id="img9", annotations=twins, predictions=[])
    ctx = Context()
    with pytest.raises(ReadError, match=r'<items> \(item "img9"\): annotation id .7. is used twice'):
        list(engine._checked([item], ctx, "<items>"))


def test_truncated_jsonl_names_file_and_line(tmp_path: Path) -> None:
    annobridge.save(_items(), tmp_path / "d.jsonl", "jsonl")
    path = tmp_path / "d.jsonl"
    path.write_text(path.read_text()[:-40])
    with pytest.raises(ReadError, match=r"d\.jsonl:line 3: .*Invalid JSON|d\.jsonl:line 3: .*EOF|d\.jsonl:line 3: not valid JSON"):
        annobridge.load(path)
    problems = annobridge.validate(path)
    assert len(problems) == 1 and "line 3" in str(problems[0])


def test_unknown_key_in_item_is_an_error(tmp_path: Path) -> None:
    annobridge.save(_items(), tmp_path / "d.jsonl", "jsonl")
    path = tmp_path / "d.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace('{"reference_id":"b"', '{"reference_id":"b","colour":"red"', 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ReadError, match=r"line 3 \(item \"b\"\): colour: Extra inputs are not permitted"):
        annobridge.load(path)


def test_missing_mask_file_is_reported_with_its_path(tmp_path: Path) -> None:
    import numpy as np

    from annobridge import IndexMask, Segment, SegmentationAnnotation

    item = DatasetItem(reference_id="m", annotations=[SegmentationAnnotation(
        mask=IndexMask.from_array(np.array([[0, 1]], np.uint8)), annotations=[Segment(label="x", index=1)])])
    annobridge.save([item], tmp_path / "d.jsonl", "jsonl")
    mask_file = next((tmp_path / "d.masks").iterdir())
    mask_file.unlink()
    ds = annobridge.load(tmp_path / "d.jsonl")
    with pytest.raises(ReadError, match="mask file does not exist"):
        ds.items[0].annotations[0].mask.load()


def test_unknown_format_lists_known_ones(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="unknown format 'cocoa'; known formats: .*jsonl"):
        annobridge.save(_items(), tmp_path / "x", "cocoa")


def test_undetectable_input_lists_readable_formats(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(FormatError, match="could not recognise the format; name it with --from; readable formats: .*jsonl"):
        annobridge.load(tmp_path / "notes.txt")


def test_ambiguous_input_lists_candidates(tmp_path: Path) -> None:
    class Greedy:
        @hookimpl
        def register_formats(self):
            caps = Capabilities()
            reader = lambda p, o, c: Dataset()  # noqa: E731
            return [Format(name=n, description=n, capabilities=caps, read=reader, detect=lambda p: True)
                    for n in ("greedy-a", "greedy-b")]

    pm = get_plugin_manager()
    pm.register(Greedy(), name="greedy")
    (tmp_path / "x").write_text("")
    with pytest.raises(FormatError, match="matches several formats: greedy-a, greedy-b; name one with --from"):
        FormatRegistry.from_manager(pm).detect_one(tmp_path / "x")


def test_bad_option_names_accepted_ones(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="bad write option for format 'jsonl'.*options accepted: none"):
        annobridge.save(_items(), tmp_path / "x.jsonl", "jsonl", {"colour": "red"})


def _square(x: int) -> int:
    return x * x


def test_context_map_with_workers_keeps_order() -> None:
    ctx = Context(workers=2, chunksize=3)
    try:
        assert list(ctx.map(_square, range(100))) == [x * x for x in range(100)]
    finally:
        ctx.close()
    assert list(Context().map(_square, iter(range(5)))) == [0, 1, 4, 9, 16]


def test_duplicate_format_names_name_both_plugins() -> None:
    class Again:
        @hookimpl
        def register_formats(self):
            return [Format(name="jsonl", description="again", capabilities=Capabilities())]

    pm = get_plugin_manager()
    pm.register(Again(), name="again")
    registry = FormatRegistry.from_manager(pm)  # builds: only the commands that use "jsonl" fail
    with pytest.raises(annobridge.PluginError, match="'jsonl' is provided by both .* and 'again'"):
        registry.get("jsonl")
    assert [f.plugin for f in registry.conflicts["jsonl"]] == ["annobridge.plugins.jsonl", "again"]
    assert registry.get("coco").plugin == "annobridge.plugins.coco"  # every other format works


def test_outputs_use_relative_mask_paths(tmp_path: Path) -> None:
    import numpy as np

    from annobridge import IndexMask, Segment, SegmentationAnnotation

    item = DatasetItem(reference_id="m", annotations=[SegmentationAnnotation(
        mask=IndexMask.from_array(np.array([[0, 300]], np.uint32)), annotations=[Segment(label="x", index=300)])])
    annobridge.save([item], tmp_path / "sub" / "d.jsonl", "jsonl")
    assert '"location":"d.masks/' in (tmp_path / "sub" / "d.jsonl").read_text()
    moved = tmp_path / "moved"
    os.rename(tmp_path / "sub", moved)
    back = annobridge.load(moved / "d.jsonl")
    assert back.items[0].annotations[0].mask.load().tolist() == [[0, 300]]
