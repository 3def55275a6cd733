"""coco-panoptic: reading, writing, round trips on real and generated files, malformed input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.panoptic_helpers import (
    FIXTURES,
    make_panoptic,
    normalise,
    official_categories,
    read_png_ids,
    write_png_ids,
)

import annobridge
from annobridge.converters import engine
from annobridge.core.errors import ReadError
from annobridge.core.formats import Context
from annobridge.core.model import (
    Category,
    Dataset,
    DatasetHeader,
    DatasetItem,
    IndexMask,
    Segment,
    SegmentationAnnotation,
)
from annobridge.plugins.coco_panoptic import IdGenerator, rgb2id

DATUMARO = FIXTURES / "datumaro" / "panoptic_train.json"
MAPILLARY = FIXTURES / "mapillary" / "panoptic_2020.json"


def _assert_round_trip(src: Path, src_masks: Path, dst: Path, **options: str) -> None:
    """dst written from src: JSON equal after key-order normalisation, PNG ids equal per pixel."""
    a = json.loads(src.read_text())
    b = json.loads(dst.read_text())
    assert normalise(a) == normalise(b)
    for ann in a["annotations"]:
        before = read_png_ids(src_masks / ann["file_name"])
        after = read_png_ids(dst.with_suffix("") / ann["file_name"])
        assert before.shape == after.shape
        assert np.array_equal(before, after)


# --------------------------------------------------------------------------- reading


def test_read_datumaro_fixture_into_canonical_items() -> None:
    ds = annobridge.load(DATUMARO, "coco-panoptic")
    assert [c.name for c in ds.header.categories] == ["a", "b"]
    assert ds.header.categories[0].attributes == {"isthing": 0}
    assert ds.header.info["coco_panoptic"]["licenses"][0]["id"] == 0
    (item,) = ds.items
    assert item.reference_id == "5" and item.image_location == "a.jpg"
    assert (item.width, item.height) == (10, 5)
    assert item.attributes == {"license": 0, "flickr_url": "", "coco_url": "", "date_captured": 0}
    (seg,) = item.annotations
    assert seg.type == "segmentation"
    assert seg.mask.encoding == "rgb" and seg.mask.location.endswith("panoptic_train/a.png")
    assert not seg.mask.is_loaded  # lazy
    (s,) = seg.annotations
    assert (s.label, s.index) == ("a", 7)
    assert s.attributes == {"category_id": 1, "area": 20.0, "bbox": [2.0, 0.0, 4.0, 4.0],
                            "iscrowd": 0, "isthing": 0}
    ids = seg.mask.load()
    assert ids.dtype == np.uint32 and ids.shape == (5, 10)
    assert int((ids == 7).sum()) == 20 and int((ids == 0).sum()) == 30


def test_read_mapillary_fixture_string_ids_empty_bbox_crowd() -> None:
    ds = annobridge.load(MAPILLARY, "coco-panoptic", {"masks": "."})
    items = list(ds.items)
    assert [(i.reference_id, i.attributes["id"]) for i in items] == [("0", "0"), ("1", "1")]
    segs = items[1].annotations[0].annotations
    assert [s.index for s in segs] == [1, 2, 3]
    assert [s.attributes["iscrowd"] for s in segs] == [0, 0, 1]
    assert all(s.attributes["bbox"] == [] for s in segs)
    assert {c.id: c.attributes["color"] for c in ds.header.categories}[100] == [119, 11, 32]


def test_widening_before_combining_ids_above_255(tmp_path: Path) -> None:
    path = make_panoptic(tmp_path, images=1, segments=(4, 4), void=False)
    ids = read_png_ids(tmp_path / "panoptic" / "000000000000.png")
    assert ids.max() > 65535  # colour ids use all three channels
    (item,) = annobridge.load(path).items
    assert np.array_equal(item.annotations[0].mask.load(), ids)


def test_detect(tmp_path: Path, registry) -> None:
    path = make_panoptic(tmp_path, images=1)
    assert registry.detect_one(path).name == "coco-panoptic"
    (tmp_path / "other.json").write_text('{"images": [], "annotations": []}')
    from annobridge.plugins.coco_panoptic import detect

    assert not detect(tmp_path / "other.json")


# --------------------------------------------------------------------------- round trips


def test_round_trip_datumaro_is_exact(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    report = engine.convert(DATUMARO, out, dst_format="coco-panoptic")
    assert report.lossless
    _assert_round_trip(DATUMARO, DATUMARO.with_suffix(""), out)
    # ids kept and nothing to change: the PNG is copied byte for byte
    assert (out.with_suffix("") / "a.png").read_bytes() == (DATUMARO.with_suffix("") / "a.png").read_bytes()


def test_round_trip_mapillary_keeps_string_ids_and_empty_bbox(tmp_path: Path) -> None:
    out = tmp_path / "val.json"
    engine.convert(MAPILLARY, out, dst_format="coco-panoptic", read_options={"masks": "."})
    _assert_round_trip(MAPILLARY, MAPILLARY.parent, out)


@pytest.mark.parametrize("workers", [1, 2])
def test_round_trip_generated_and_workers_identical(tmp_path: Path, workers: int) -> None:
    src = make_panoptic(tmp_path / "src", images=6, height=30, width=40, segments=(2, 12), seed=3)
    out = tmp_path / f"out{workers}.json"
    engine.convert(src, out, dst_format="coco-panoptic", workers=workers)
    _assert_round_trip(src, src.with_suffix(""), out)


def test_workers_give_identical_bytes_when_ids_are_generated(tmp_path: Path) -> None:
    src = make_panoptic(tmp_path / "src", images=5, seed=4)
    outs = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}.json"
        engine.convert(src, out, dst_format="coco-panoptic", workers=workers,
                       write_options={"segment-ids": "generate"})
        outs.append(out)
    assert outs[0].read_bytes() == outs[1].read_bytes()
    for png in sorted(outs[0].with_suffix("").iterdir()):
        assert png.read_bytes() == (outs[1].with_suffix("") / png.name).read_bytes()


def test_round_trip_through_canonical_jsonl(tmp_path: Path) -> None:
    src = make_panoptic(tmp_path / "src", images=3, seed=5)
    engine.convert(src, tmp_path / "mid.jsonl", dst_format="jsonl")
    out = tmp_path / "back.json"
    engine.convert(tmp_path / "mid.jsonl", out, dst_format="coco-panoptic")
    _assert_round_trip(src, src.with_suffix(""), out)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip_hypothesis(data: st.DataObject) -> None:
    cats = official_categories()
    n_images = data.draw(st.integers(1, 3))
    doc = {"images": [], "annotations": [], "categories": cats}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i in range(n_images):
            h, w = data.draw(st.integers(1, 12)), data.draw(st.integers(1, 12))
            n = data.draw(st.integers(0, 6))
            ids = data.draw(st.lists(st.integers(1, 2**24 - 1), min_size=n, max_size=n, unique=True))
            flat = data.draw(st.lists(st.integers(0, n), min_size=h * w, max_size=h * w))
            table = np.array([0, *ids], dtype=np.int64)
            pan = table[np.array(flat).reshape(h, w)]
            present = [v for v in ids if (pan == v).any()]
            infos = []
            for sid in present:
                cat = cats[data.draw(st.integers(0, len(cats) - 1))]
                ys, xs = np.nonzero(pan == sid)
                info = {"id": sid, "category_id": cat["id"], "iscrowd": data.draw(st.integers(0, 1)),
                        "area": int(ys.size),
                        "bbox": [int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1]}
                if data.draw(st.booleans()):
                    info["extra"] = data.draw(st.text(max_size=5))
                infos.append(info)
            png = f"p{i}.png"
            write_png_ids(root / "src" / png, pan)
            doc["images"].append({"id": i, "file_name": f"im{i}.jpg", "width": w, "height": h})
            doc["annotations"].append({"image_id": i, "file_name": png, "segments_info": infos})
        src = root / "src.json"
        src.write_text(json.dumps(doc))
        out = root / "out.json"
        engine.convert(src, out, dst_format="coco-panoptic")
        _assert_round_trip(src, root / "src", out)


# --------------------------------------------------------------------------- writing new ids


def _nucleus_like_item(ref: str, mask: np.ndarray, labels: dict[int, str]) -> DatasetItem:
    return DatasetItem(
        reference_id=ref, image_location=f"{ref}.jpg", width=mask.shape[1], height=mask.shape[0],
        annotations=[SegmentationAnnotation(
            mask=IndexMask.from_array(mask),
            annotations=[Segment(label=lab, index=i) for i, lab in labels.items()],
        )],
    )


def test_writing_small_index_masks_generates_colour_ids(tmp_path: Path) -> None:
    cats = {c["name"]: c for c in official_categories()}
    header = DatasetHeader(categories=[
        Category(id=c["id"], name=c["name"], supercategory=c["supercategory"],
                 attributes={"isthing": c["isthing"], "color": c["color"]})
        for c in official_categories()])
    mask = np.zeros((6, 8), dtype=np.uint8)
    mask[:, :2] = 0   # index 0 = "sky" (a labelled segment, not void)
    mask[:, 2:4] = 1  # person
    mask[:, 4:6] = 2  # person
    mask[:3, 6:] = 3  # grass
    mask[3:, 6:] = 4  # no segment: void
    item = _nucleus_like_item("img", mask, {0: "sky-other-merged", 1: "person", 2: "person", 3: "grass-merged"})
    out = tmp_path / "pan.json"
    report = annobridge.save(Dataset(header=header, items=[item]), out, "coco-panoptic")
    assert report.dropped == {}  # value 4 has no segment: void in the model and in the PNG
    doc = json.loads(out.read_text())
    infos = doc["annotations"][0]["segments_info"]
    ids = read_png_ids(tmp_path / "pan" / doc["annotations"][0]["file_name"])
    by_cat = {}
    for info in infos:
        assert info["area"] == int((ids == info["id"]).sum())  # exact pixel count
        by_cat.setdefault(info["category_id"], []).append(info["id"])
    assert len({i["id"] for i in infos}) == 4 and 0 not in by_cat
    # stuff: exactly the category colour; first person: its colour; second: jittered by <= 30
    assert by_cat[cats["sky-other-merged"]["id"]] == [rgb2id(cats["sky-other-merged"]["color"])]
    assert by_cat[cats["grass-merged"]["id"]] == [rgb2id(cats["grass-merged"]["color"])]
    first, second = by_cat[cats["person"]["id"]]
    assert first == rgb2id(cats["person"]["color"])
    rgb = np.array([second & 255, (second >> 8) & 255, second >> 16])
    assert np.abs(rgb - np.array(cats["person"]["color"])).max() <= 30 and second != first
    assert np.array_equal(ids == 0, mask == 4)
    assert np.array_equal(ids == first, mask == 1) and np.array_equal(ids == second, mask == 2)
    assert infos[1]["bbox"] == [2, 0, 2, 6]


def test_id_generator_unique_per_image_even_for_crowded_colours() -> None:
    gen = IdGenerator(frozenset({(10, 10, 10)}), seed=1)
    got = [gen.get_id((10, 10, 10), True) for _ in range(200)]
    assert len(set(got)) == 200 and 0 not in got and rgb2id((10, 10, 10)) not in got
    assert gen.get_id((10, 10, 10), False) == rgb2id((10, 10, 10))  # the reserved stuff colour


def test_unknown_label_becomes_a_new_category_and_is_reported(tmp_path: Path) -> None:
    mask = np.array([[1, 1, 2]], dtype=np.uint8)
    item = _nucleus_like_item("x", mask, {1: "road", 2: "car"})
    report = annobridge.save([item], tmp_path / "p.json", "coco-panoptic")
    doc = json.loads((tmp_path / "p.json").read_text())
    assert [c["name"] for c in doc["categories"]] == ["road", "car"]
    assert any("added category 'road'" in n for n in report.notes)
    back = list(annobridge.load(tmp_path / "p.json").items)[0].annotations[0]
    assert [s.label for s in back.annotations] == ["road", "car"]


def test_wrong_source_area_is_replaced_and_reported(tmp_path: Path) -> None:
    src = make_panoptic(tmp_path / "s", images=1, segments=(3, 3), void=False)
    doc = json.loads(src.read_text())
    doc["annotations"][0]["segments_info"][0]["area"] += 5
    src.write_text(json.dumps(doc))
    report = engine.convert(src, tmp_path / "o.json", dst_format="coco-panoptic")
    assert report.dropped["attribute:area"] == {"replaced by the exact pixel count of the PNG": 1}
    out = json.loads((tmp_path / "o.json").read_text())
    assert out["annotations"][0]["segments_info"][0]["area"] == doc["annotations"][0]["segments_info"][0]["area"] - 5


# --------------------------------------------------------------------------- malformed input


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """A valid generated file to break in each test (3 images, PNG folder beside it)."""
    return make_panoptic(tmp_path, images=3, segments=(3, 5), seed=7)


def _edit(path: Path, fn) -> dict:
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))
    return doc


def _read_all(path: Path) -> None:
    for _ in annobridge.load(path, "coco-panoptic", stream=True).items:
        pass


def test_error_png_not_rgb(broken: Path) -> None:
    png = broken.with_suffix("") / "000000000001.png"
    Image.fromarray(np.zeros((24, 32), dtype=np.uint8)).save(png)
    with pytest.raises(ReadError, match=r"000000000001\.png#/annotations/1 .*mode L, expected RGB"):
        _read_all(broken)


def test_error_size_mismatch(broken: Path) -> None:
    _edit(broken, lambda d: d["images"][2].update(width=31))
    with pytest.raises(ReadError, match=r"000000000002\.png#/images/2 .*PNG is 32x24, the image entry says 31x24"):
        _read_all(broken)


def test_error_png_id_missing_from_segments_info(broken: Path) -> None:
    doc = _edit(broken, lambda d: d["annotations"][0]["segments_info"].pop(0))
    first_png = broken.with_suffix("") / "000000000000.png"
    missing = int(np.setdiff1d(np.unique(read_png_ids(first_png)),
                               [0] + [s["id"] for s in doc["annotations"][0]["segments_info"]])[0])
    with pytest.raises(ReadError, match=rf"000000000000\.png#/annotations/0/segments_info .*segment id {missing} \(\d+ pixels\) with no segments_info entry"):
        _read_all(broken)


def test_error_segments_info_id_missing_from_png(broken: Path) -> None:
    _edit(broken, lambda d: d["annotations"][1]["segments_info"].append(
        {"id": 424242, "category_id": 1, "iscrowd": 0, "area": 1, "bbox": [0, 0, 1, 1]}))
    with pytest.raises(ReadError, match=r"000000000001\.png#/annotations/1/segments_info .*segment id 424242 \(person\) is listed but not in the PNG"):
        _read_all(broken)


def test_error_duplicate_segment_id(broken: Path) -> None:
    def dup(d: dict) -> None:
        infos = d["annotations"][2]["segments_info"]
        infos.append(dict(infos[0]))
    doc = _edit(broken, dup)
    sid = doc["annotations"][2]["segments_info"][0]["id"]
    last = len(doc["annotations"][2]["segments_info"]) - 1
    with pytest.raises(ReadError, match=rf"{broken.name}#/annotations/2/segments_info/{last} .*segment id {sid} appears twice"):
        _read_all(broken)


def test_error_unknown_category(broken: Path) -> None:
    doc = _edit(broken, lambda d: d["annotations"][0]["segments_info"][1].update(category_id=999))
    sid = doc["annotations"][0]["segments_info"][1]["id"]
    with pytest.raises(ReadError, match=rf"{broken.name}#/annotations/0/segments_info/1 \(item \"1\"\): segment {sid}: category_id 999 is not in categories"):
        _read_all(broken)


def test_error_missing_png(broken: Path) -> None:
    (broken.with_suffix("") / "000000000002.png").unlink()
    with pytest.raises(ReadError, match=r"000000000002\.png#/annotations/2 .*does not exist"):
        _read_all(broken)


def test_validate_lists_every_problem_in_one_run(broken: Path) -> None:
    def breakall(d: dict) -> None:
        d["annotations"][0]["segments_info"][1]["category_id"] = 999          # unknown category
        d["annotations"][1]["segments_info"].append(dict(d["annotations"][1]["segments_info"][0]))  # dup
        d["images"][2]["height"] = 7                                           # size mismatch
    _edit(broken, breakall)
    problems = annobridge.validate(broken, "coco-panoptic")
    text = [str(p) for p in problems]
    # unknown category also leaves its PNG id unlisted: two problems for image 0
    assert any("category_id 999 is not in categories" in t for t in text)
    assert any("with no segments_info entry" in t and "000000000000.png" in t for t in text)
    assert any("appears twice" in t and "#/annotations/1/segments_info/" in t for t in text)
    assert any("PNG is 32x24, the image entry says 32x7" in t for t in text)
    assert len(problems) == 4


def test_cli_validate_subprocess_exit_code(broken: Path) -> None:
    exe = shutil.which("annobridge", path=str(Path(sys.executable).parent)) or "annobridge"
    ok = subprocess.run([exe, "validate", str(broken)], capture_output=True, text=True)
    assert ok.returncode == 0 and "valid coco-panoptic" in ok.stdout
    _edit(broken, lambda d: d["annotations"][0]["segments_info"][0].update(category_id=999))
    bad = subprocess.run([exe, "validate", str(broken)], capture_output=True, text=True)
    assert bad.returncode == 1
    assert "category_id 999 is not in categories" in bad.stdout
    assert "problem(s) found" in bad.stderr


def test_not_a_panoptic_json(tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    p.write_text('{"images": [], "categories": []}')
    with pytest.raises(ReadError, match=r"x\.json#/annotations: 'annotations' is missing or not a list"):
        annobridge.load(p, "coco-panoptic")
    p.write_text('{"images": [')
    with pytest.raises(ReadError, match=r"x\.json:line 1: not valid JSON"):
        annobridge.load(p, "coco-panoptic")


def test_context_map_used_for_png_work(tmp_path: Path, monkeypatch) -> None:
    """Reading and writing both route per-image PNG work through context.map."""
    src = make_panoptic(tmp_path, images=4)
    calls: list[str] = []
    real = Context.map

    def spy(self, fn, iterable):
        calls.append(fn.__name__)
        return real(self, fn, iterable)

    monkeypatch.setattr(Context, "map", spy)
    engine.convert(src, tmp_path / "o.json", dst_format="coco-panoptic")
    assert "_inspect_png" in calls and "_write_or_none" in calls


@pytest.mark.parametrize("case,name,options", [("datumaro", "panoptic_train.json", None),
                                               ("mapillary", "panoptic_2020.json", {"masks": "."})])
def test_fixture_matches_expected_jsonl(case: str, name: str, options: dict | None) -> None:
    """Each real fixture reads as its reviewed canonical form, fixtures/coco-panoptic/<case>/expected.jsonl."""
    folder = FIXTURES / case
    got = annobridge.load(folder / name, "coco-panoptic", options)
    want = annobridge.load(folder / "expected.jsonl", "jsonl")
    assert got.header == want.header

    def dump(item: DatasetItem) -> dict:
        doc = item.model_dump(mode="json")
        # jsonl resolves locations against its folder; coco-panoptic keeps file_name as written
        doc["image_location"] = Path(doc["image_location"]).name
        for ann in doc["annotations"]:
            ann["mask"]["location"] = str(Path(ann["mask"]["location"]).resolve())
        return doc

    assert [dump(i) for i in got.items] == [dump(i) for i in want.items]
    for a, b in zip(got.items, want.items):
        assert np.array_equal(a.annotations[0].mask.load(), b.annotations[0].mask.load())


def test_check_masks_false_skips_png_checks_but_validate_still_checks(broken: Path) -> None:
    _edit(broken, lambda d: d["images"][2].update(width=31))
    items = list(annobridge.load(broken, "coco-panoptic", {"check-masks": "false"}).items)
    assert len(items) == 3 and items[2].annotations[0].mask.location.endswith("000000000002.png")
    problems = annobridge.validate(broken, "coco-panoptic", {"check-masks": "false"})
    assert [p.problem for p in problems] == ["PNG is 32x24, the image entry says 31x24 (width x height)"]


def test_loaded_rgb_mask_keeps_its_ids(tmp_path: Path) -> None:
    src = make_panoptic(tmp_path / "s", images=2, seed=12, random_ids=True)
    ds = annobridge.load(src)
    for item in ds.items:
        item.annotations[0].mask.load()  # decoded in memory: still panoptic ids
    annobridge.save(ds, tmp_path / "o.json", "coco-panoptic")
    _assert_round_trip(src, src.with_suffix(""), tmp_path / "o.json")


@pytest.mark.parametrize("task,dst", [("instance", "o.jsonl"), ("semantic", "o.jsonl"), (None, "o.json")])
def test_single_process_decodes_each_png_once(tmp_path: Path, monkeypatch, task: str | None, dst: str) -> None:
    """The reader's check decode is reused by the consumer in the same process."""
    src = make_panoptic(tmp_path / "s", images=4, seed=13)
    opened: list[str] = []
    real_open = Image.open

    def counting_open(fp, *args, **kwargs):
        opened.append(Path(fp).name)
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counting_open)
    fmt = "coco-panoptic" if dst.endswith(".json") else "jsonl"
    engine.convert(src, tmp_path / dst, dst_format=fmt, task=task)
    assert sorted(opened) == sorted(p.name for p in src.with_suffix("").iterdir())


def test_writing_a_mask_of_the_wrong_size_fails_and_leaves_nothing(tmp_path: Path) -> None:
    item = _nucleus_like_item("x", np.ones((3, 4), dtype=np.uint8), {1: "road"})
    item.width = 5
    with pytest.raises(annobridge.WriteError, match=r'item "x": the segmentation mask is 4x3, the item is 5x3'):
        annobridge.save([item], tmp_path / "p.json", "coco-panoptic")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text", [
    DATUMARO.read_text(),                                   # pretty-printed, real
    MAPILLARY.read_text(),                                  # compact, real, annotations first
    '{"images":[],"annotations":[ ],"categories":[]}',
    ' \n{ "images" : [ {"id": 1, "a": [1, {"b": "]}"}]} , {"id":2} ] , "x": null }\n',
    '{}',
])
def test_lazy_json_scan_equals_json_loads(text: str) -> None:
    from annobridge.plugins.coco_panoptic.read import _scan

    got = _scan(text)
    assert got is not None
    assert {k: list(v) if k in ("images", "annotations") else v for k, v in got.items()} == json.loads(text)


@pytest.mark.parametrize("text", ['[1, 2]', '{"images": [1 2]}', '{"images": [1]} x', '{"a": 1,}', '{"images": ['])
def test_lazy_json_scan_gives_up_on_anything_else(text: str) -> None:
    from annobridge.plugins.coco_panoptic.read import _scan

    assert _scan(text) is None


@pytest.mark.parametrize("bad", ["NaN", "1e400", "-1e309", "1" * 5000])
@pytest.mark.parametrize("place", ["segment", "category"])
def test_typed_json_read_refuses_bad_numbers_with_their_place(tmp_path: Path, bad: str, place: str) -> None:
    # segments are decoded lazily (msgspec views): a number refused there is found when its
    # annotation is read, and still named with its place
    doc = json.loads(DATUMARO.read_text())
    (doc["annotations"][0]["segments_info"][0] if place == "segment" else doc["categories"][0])["x"] = "@@"
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc, indent=1).replace('"@@"', bad))
    pattern = r"p\.json(#/annotations/0|:line \d+): .*(not a number|out of range|digits).*\(line \d+, column \d+\)"
    with pytest.raises(ReadError, match=pattern):
        annobridge.load(path, "coco-panoptic", {"check_masks": False})


def test_typed_json_read_equals_the_standard_library_scan_and_keeps_long_integers(tmp_path: Path) -> None:
    from annobridge.plugins.coco_panoptic.read import _load, _scan

    typed = _load(DATUMARO)
    scanned = _scan(DATUMARO.read_text())
    assert typed["images"].__class__.__name__ == "_LazyArray"
    assert {k: list(v) if k in ("images", "annotations") else v for k, v in typed.items()} == \
        {k: list(v) if k in ("images", "annotations") else v for k, v in scanned.items()} == json.loads(DATUMARO.read_text())
    doc = json.loads(DATUMARO.read_text())
    doc["annotations"][0]["segments_info"][0]["x"] = 12345678901234567890123  # beyond 64 bits: exact
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    ds = annobridge.load(path, "coco-panoptic", {"check_masks": False})
    seg = next(a for item in ds.items for a in item.annotations)
    assert seg.annotations[0].attributes["x"] == 12345678901234567890123
