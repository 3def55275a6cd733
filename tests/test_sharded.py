"""Sharded conversion (converters/sharded.py): workers read their own part of a per-item source,
fit it and (KITTI, YOLO) write it; the output equals one process's, byte for byte and in order, on
local forked workers, on a two-worker Dask LocalCluster, and from an S3 server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import annobridge
from annobridge.core.errors import ReadError, WriteError
from tests.conftest import FIXTURES
from tests.kitti_synth import make_object_root
from tests.panoptic_helpers import make_panoptic
from tests.test_distributed import scheduler  # noqa: F401  (the two-worker LocalCluster fixture)
from tests.test_storage import _put_tree, _remote_tree
from tests.test_workers import _tree

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")


def _kitti(tmp: Path) -> Path:
    make_object_root(tmp / "kitti", frames=9, points=32)
    return tmp / "kitti"


def _panoptic(tmp: Path) -> Path:
    return make_panoptic(tmp / "pan", "val", images=9)


def _nucleus(tmp: Path) -> Path:
    shutil.copytree(FIXTURES / "nucleus" / "all-kinds", tmp / "nucleus")
    return tmp / "nucleus" / "items.jsonl"


def _yolo(tmp: Path) -> Path:
    return FIXTURES / "yolo" / "labelformat" / "example.yaml"


def _yolo_folder(tmp: Path) -> Path:
    return FIXTURES / "yolo" / "basic"


def _coco(tmp: Path) -> Path:
    return FIXTURES / "coco" / "instances" / "instances.json"


CASES = {  # source maker, target format, output name
    "kitti->kitti": (_kitti, "kitti", "out"),
    "kitti->nucleus": (_kitti, "nucleus", "out.jsonl"),
    "panoptic->coco": (_panoptic, "coco", "out.json"),  # new instance masks numbered by the driver
    "panoptic->kitti": (_panoptic, "kitti", "out"),  # ... by each worker: KITTI writes no ids
    "panoptic->panoptic": (_panoptic, "coco-panoptic", "out.json"),  # PNGs by the workers, the JSON by the driver
    "nucleus->nucleus": (_nucleus, "nucleus", "out.jsonl"),
    "yolo->yolo": (_yolo, "yolo", "out"),
    "yolo->kitti": (_yolo, "kitti", "out"),
    "yolo-folder->coco": (_yolo_folder, "coco", "out.json"),
    "kitti->yolo": (_kitti, "yolo", "out"),  # YOLO labels written by the workers, data.yaml by the driver
    "nucleus->yolo": (_nucleus, "yolo", "out"),  # every kind: the first item decides task=auto
    "yolo-folder->yolo": (_yolo_folder, "yolo", "out"),
}


def _same_report(one: Any, many: Any) -> None:
    a, b = one.model_dump(), many.model_dump()
    for key in ("source", "destination", "notes"):
        a.pop(key), b.pop(key)
    assert a == b
    assert one.written == many.written


@pytest.mark.parametrize("case", sorted(CASES))
def test_local_workers_read_in_parts_and_write_what_one_process_writes(in_parts: None, case: str,
                                                                        tmp_path: Path) -> None:
    make, fmt, name = CASES[case]
    src = make(tmp_path)
    one = annobridge.convert(src, tmp_path / "one" / name, fmt)
    many = annobridge.convert(src, tmp_path / "two" / name, fmt, workers=2)
    assert any(n.startswith("read in ") and "parts by the workers" in n for n in many.notes), many.notes
    assert _tree(tmp_path / "one") == _tree(tmp_path / "two")
    _same_report(one, many)


@pytest.mark.parametrize("case", sorted(CASES))
def test_dask_workers_read_in_parts(case: str, scheduler: str, tmp_path: Path) -> None:  # noqa: F811
    make, fmt, name = CASES[case]
    src = make(tmp_path)
    one = annobridge.convert(src, tmp_path / "one" / name, fmt)
    many = annobridge.convert(src, tmp_path / "dask" / name, fmt, executor=scheduler, workers=2)
    assert any("parts by the workers" in n for n in many.notes), many.notes
    assert _tree(tmp_path / "one") == _tree(tmp_path / "dask")
    _same_report(one, many)


def test_workers_read_with_the_settings_of_the_drivers_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the engine tells the reader of a plain conversion (the kinds a box-only target gets
    as boxes, the keypoints it drops) reaches the reader in each forked worker too."""
    from annobridge.plugins.coco import read as coco_read

    seen = tmp_path / "seen.txt"
    convert_items = coco_read._convert_items

    def noting(path: Path, images: Any, sources: Any, cats: Any, context: Any, *rest: Any) -> Any:
        with open(seen, "a", encoding="utf-8") as fh:  # from the worker processes (forked with this patch)
            fh.write(json.dumps([sorted(context.boxes_on_read), context.dropped_on_read]) + "\n")
        return convert_items(path, images, sources, cats, context, *rest)

    monkeypatch.setattr(coco_read, "_convert_items", noting)
    one = annobridge.convert(_coco(tmp_path), tmp_path / "one" / "out", "kitti")
    single = seen.read_text(encoding="utf-8").splitlines()
    seen.unlink()
    many = annobridge.convert(_coco(tmp_path), tmp_path / "two" / "out", "kitti", workers=2)
    assert any("parts by the workers" in n for n in many.notes)
    parts = seen.read_text(encoding="utf-8").splitlines()
    assert len(single) == 1 and len(parts) > 1 and set(parts) == set(single)
    assert json.loads(single[0])[1], single  # KITTI drops keypoints: the setting is not empty
    _same_report(one, many)


@pytest.mark.parametrize("fmt", ["kitti", "yolo"])
def test_coco_parts_go_to_forked_workers_only(fmt: str, scheduler: str, tmp_path: Path) -> None:  # noqa: F811
    src = _coco(tmp_path)
    one = annobridge.convert(src, tmp_path / "one" / "out", fmt)
    local = annobridge.convert(src, tmp_path / "two" / "out", fmt, workers=2)
    dask = annobridge.convert(src, tmp_path / "dask" / "out", fmt, executor=scheduler, workers=2)
    assert any("parts by the workers" in n and "they wrote their items" in n for n in local.notes)
    assert not any("parts by the workers" in n for n in dask.notes)  # the parse stays in the driver
    assert _tree(tmp_path / "one") == _tree(tmp_path / "two") == _tree(tmp_path / "dask")
    _same_report(one, local)


def test_a_bad_frame_in_a_part_is_named_and_nothing_is_left(scheduler: str, tmp_path: Path) -> None:  # noqa: F811
    src = _kitti(tmp_path)
    label = sorted((src / "training" / "label_2").glob("*.txt"))[-1]
    label.write_text("Car 0 0 0 1 2 3\n", encoding="utf-8")
    for executor in ("process", scheduler):
        out = tmp_path / "out"
        with pytest.raises(ReadError, match=label.name):
            annobridge.convert(src, out, "nucleus", executor=executor, workers=2)
        assert not out.exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["kitti"]


def _mixed_coco(tmp: Path, split: str = "train", polygons: bool = True) -> Path:
    """40 images: 20 with a box only (the first parts choose no YOLO task), then 10 with a polygon
    (segment; without ``polygons`` a box only), then 10 with keypoints (pose): one process writes
    segment, the parts disagree."""
    images, anns = [], []
    for n in range(1, 41):
        images.append({"id": n, "file_name": f"im{n}.png", "width": 100, "height": 80,
                       "split": split if n == 37 else "train"})
        ann = {"id": n, "image_id": n, "category_id": 1, "bbox": [10, 10, 20, 30], "area": 600, "iscrowd": 0,
               "segmentation": [[10, 10, 30, 10, 30, 40, 10, 40]] if polygons and 20 < n <= 30 else []}
        if n > 30:
            ann.update(category_id=2, keypoints=[12, 14, 2, 20, 30, 2], num_keypoints=2)
        anns.append(ann)
    cats = [{"id": 1, "name": "car"}, {"id": 2, "name": "person", "keypoints": ["a", "b"], "skeleton": [[1, 2]]}]
    (tmp / "mixed.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return tmp / "mixed.json"


def test_yolo_parts_that_chose_other_tasks_are_written_again_in_one_process(tmp_path: Path) -> None:
    src = _mixed_coco(tmp_path)
    one = annobridge.convert(src, tmp_path / "one" / "out", "yolo")
    many = annobridge.convert(src, tmp_path / "two" / "out", "yolo", workers=2)
    assert "task: segment" in (tmp_path / "one" / "out" / "data.yaml").read_text()
    assert any(n.startswith("written again in one process: the parts the workers wrote differ") for n in many.notes)
    assert _tree(tmp_path / "one") == _tree(tmp_path / "two")
    _same_report(one, many)


def test_yolo_parts_on_dask_join_the_task_and_classes_in_order(scheduler: str, tmp_path: Path) -> None:  # noqa: F811
    """A Nucleus source read in parts by two Dask workers: the parts that met boxes only wait for
    the task, chosen by a later part (pose), and the driver pads their rows; a task= given is kept."""
    nucleus = tmp_path / "mixed.jsonl"
    annobridge.convert(_mixed_coco(tmp_path, polygons=False), nucleus, "nucleus")
    for options in (None, {"task": "pose"}):
        out = tmp_path / f"{options}"
        one = annobridge.convert(nucleus, out / "one" / "y", "yolo", write_options=options)
        many = annobridge.convert(nucleus, out / "dask" / "y", "yolo", write_options=options,
                                  executor=scheduler, workers=2)
        assert any("they wrote their items" in n for n in many.notes), many.notes
        assert not any("written again" in n for n in many.notes), many.notes
        assert "task: pose" in (out / "dask" / "y" / "data.yaml").read_text()
        assert _tree(out / "one") == _tree(out / "dask")
        _same_report(one, many)


def test_a_yolo_item_a_worker_cannot_write_is_named_and_nothing_is_left(tmp_path: Path) -> None:
    src = _mixed_coco(tmp_path, split="../up")
    for workers in (1, 2):
        with pytest.raises(WriteError, match=r"split '\.\./up' cannot be a folder name") as err:
            annobridge.convert(src, tmp_path / "out" / "y", "yolo", workers=workers)
        assert err.value.item == "37"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["mixed.json"]


@pytest.mark.parametrize(("key", "width", "problem"), [
    ("width", 10, None), ("width", 10.0, None), ("width", "10", "image width is '10'"),
    ("width", -1, "image width is -1"), ("width", {"n": 2**70}, "expected a non-negative integer"),
    ("extra", 2**70, None),  # the driver's check passes; the worker's parse meets a number beyond 64 bits
])
def test_coco_images_read_in_parts_are_checked_as_one_process_checks_them(key: str, width: Any, problem: str | None,
                                                                            tmp_path: Path) -> None:
    """The driver only glances at the image records of a file read in parts; any it doubts
    (a size written as a float, a bad size) is parsed as one process parses it."""
    doc = json.loads(_mixed_coco(tmp_path).read_text())
    doc["images"][25][key] = width
    doc["images"][3]["annobridge_reference_id"] = "named"
    (tmp_path / "odd.json").write_text(json.dumps(doc))
    errors: list[str] = []
    if problem is not None:
        for workers in (1, 2):
            with pytest.raises(ReadError, match=problem) as err:
                annobridge.convert(tmp_path / "odd.json", tmp_path / f"out{workers}", "kitti", workers=workers)
            errors.append(str(err.value))
        assert errors[0] == errors[1] and "odd.json" in errors[0]
        return
    one = annobridge.convert(tmp_path / "odd.json", tmp_path / "one" / "out.json", "coco")
    many = annobridge.convert(tmp_path / "odd.json", tmp_path / "two" / "out.json", "coco", workers=2)
    assert any("whole float" in n for n in many.notes) == (type(width) is float)
    written = json.loads((tmp_path / "two" / "out.json").read_text())["images"]
    assert written[3]["annobridge_reference_id"] == "named" and written[25][key] == float(width)
    assert _tree(tmp_path / "one") == _tree(tmp_path / "two")
    _same_report(one, many)


def test_a_reference_id_used_in_two_parts_is_refused(tmp_path: Path) -> None:
    src = _nucleus(tmp_path)
    lines = src.read_text(encoding="utf-8").splitlines()
    src.write_text("\n".join(lines + lines[:1]) + "\n", encoding="utf-8")
    with pytest.raises(ReadError, match="used twice"):
        annobridge.convert(src, tmp_path / "out.jsonl", "nucleus")
    with pytest.raises(ReadError, match="used twice"):
        annobridge.convert(src, tmp_path / "out.jsonl", "nucleus", workers=2)
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("case", ["kitti->kitti", "panoptic->coco", "panoptic->panoptic", "nucleus->nucleus",
                                  "yolo-folder->coco"])
def test_dask_process_workers_read_parts_of_a_bucket_themselves(case: str, s3: Any, tmp_path: Path) -> None:
    """A LocalCluster of two worker processes (not threads of this one): each fetches the files
    of its part, and the media it copies, from the S3 server itself."""
    make, fmt, name = CASES[case]
    src = make(tmp_path)
    base = src if src.is_dir() else src.parent
    s3.mkdir("src")
    s3.mkdir("dst")
    _put_tree(s3, base, "src/data")
    url = "s3://src/data" + ("" if src.is_dir() else f"/{src.name}")
    one = annobridge.convert(url, f"s3://dst/one/{name}", fmt)  # as test_storage compares with local folders
    many = annobridge.convert(url, f"s3://dst/dask/{name}", fmt, executor="dask", workers=2)
    assert any("parts by the workers" in n for n in many.notes), many.notes
    assert "the workers fetched the files of their parts from s3://src/data" in many.notes
    assert _remote_tree(s3, "dst/dask") == _remote_tree(s3, "dst/one")
    _same_report(one, many)


def _coco_with_images(tmp: Path) -> Path:
    """A COCO file beside three real PNG images (KITTI copies them into image_2/)."""
    folder = tmp / "coco"
    folder.mkdir()
    images, anns = [], []
    for n in range(3):
        Image.fromarray(np.full((8, 10, 3), 40 * n, np.uint8)).save(folder / f"im{n}.png")
        images.append({"id": n + 1, "file_name": f"im{n}.png", "width": 10, "height": 8})
        anns.append({"id": n + 1, "image_id": n + 1, "category_id": 1, "bbox": [1, 1, 4, 3], "area": 12,
                     "iscrowd": 0, "segmentation": []})
    (folder / "train.json").write_text(json.dumps({"images": images, "annotations": anns,
                                                   "categories": [{"id": 1, "name": "car"}]}))
    return folder / "train.json"


def test_dask_process_workers_fetch_remote_media_themselves(s3: Any, tmp_path: Path) -> None:
    """COCO stays parsed in the driver; the KITTI frames are written by two worker processes,
    which cannot see the driver's copy of the bucket and fetch the images they copy."""
    src = _coco_with_images(tmp_path)
    s3.mkdir("src")
    _put_tree(s3, src.parent, "src/coco")
    one = annobridge.convert(src, tmp_path / "one" / "out", "kitti")
    many = annobridge.convert("s3://src/coco/train.json", "s3://src/out", "kitti", executor="dask", workers=2)
    assert many.dropped == one.dropped
    assert _remote_tree(s3, "src/out") == _tree(tmp_path / "one" / "out")
    assert len([k for k in s3.find("src/out") if "/image_2/" in k]) == 3


def _nucleus_with_remote_masks(tmp: Path, s3: Any, urls: list[str]) -> Path:
    """A local Nucleus file whose masks are objects on the S3 server (``s3://masks/...``)."""
    s3.mkdir("masks")
    lines = []
    for n, url in enumerate(urls):
        mask = np.zeros((4, 6), np.uint8)
        mask[1:3, 1:4] = 2
        png = tmp / f"{n}.png"
        Image.fromarray(mask).save(png)
        if url in ("s3://masks/m0.png", "s3://masks/m1.png"):
            s3.put_file(str(png), url[len("s3://"):])
        lines.append({"reference_id": f"img-{n}", "image_url": f"https://example.com/{n}.jpg", "width": 6,
                      "height": 4, "annotations": [{"type": "mask", "mask_url": url, "reference_id": f"img-{n}",
                                                    "annotations": [{"label": "car", "index": 2}]}]})
    (tmp / "items.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return tmp / "items.jsonl"


def test_remote_nucleus_masks_are_fetched_when_used(s3: Any, tmp_path: Path) -> None:
    src = _nucleus_with_remote_masks(tmp_path, s3, ["s3://masks/m0.png", "s3://masks/m1.png"])
    dataset = annobridge.load(src, stream=True)
    item = next(iter(dataset.items))
    mask = item.annotations[0].mask
    assert mask.location == "s3://masks/m0.png" and not mask.is_loaded  # nothing fetched on reading
    assert mask.load().tolist()[1] == [0, 2, 2, 2, 0, 0]
    report = annobridge.convert(src, tmp_path / "out" / "pan.json", "coco-panoptic", workers=2)
    assert report.items_written == 2 and not report.dropped
    pngs = sorted((tmp_path / "out" / "pan").glob("*.png"))
    assert len(pngs) == 2


@pytest.mark.parametrize(("url", "problem"), [
    ("s3://masks/missing.png", "mask file does not exist"),
    ("s3://masks/a/../m0.png", "leads outside its folder"),
])
def test_a_bad_remote_mask_is_named(url: str, problem: str, s3: Any, tmp_path: Path) -> None:
    src = _nucleus_with_remote_masks(tmp_path, s3, ["s3://masks/m0.png", url])
    with pytest.raises(ReadError, match=problem) as err:
        annobridge.convert(src, tmp_path / "out" / "pan.json", "coco-panoptic")
    assert url in str(err.value)
    assert not (tmp_path / "out").exists()


def test_a_remote_mask_larger_than_the_cap_is_refused(s3: Any, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from annobridge.core import storage

    src = _nucleus_with_remote_masks(tmp_path, s3, ["s3://masks/m0.png"])
    monkeypatch.setattr(storage, "MAX_MASK_BYTES", 16)
    with pytest.raises(ReadError, match="larger than"):
        annobridge.convert(src, tmp_path / "out" / "pan.json", "coco-panoptic")


def test_panoptic_errors_come_in_item_order_when_read_in_parts(in_parts: None, tmp_path: Path) -> None:
    """A missing PNG (image 2) before a segment of an unknown category (image 7): workers check
    each image's segments where they read its PNG, so the first error is the one one process
    raises (the driver's listing checked every segment first, and named image 7)."""
    src = make_panoptic(tmp_path / "pan", "val", images=9)
    doc = json.loads(src.read_text())
    (src.parent / "val" / doc["annotations"][2]["file_name"]).unlink()
    doc["annotations"][7]["segments_info"][0]["category_id"] = 99999
    src.write_text(json.dumps(doc))
    first = []
    for workers in (1, 2):
        with pytest.raises(ReadError) as err:
            annobridge.convert(src, tmp_path / f"out{workers}" / "out.json", "coco", workers=workers)
        first.append((err.value.item, err.value.problem))
        assert not (tmp_path / f"out{workers}").exists()
    assert first[0] == first[1] == (str(doc["images"][2]["id"]), "panoptic PNG does not exist")


def test_dask_tasks_carry_their_own_units_not_the_whole_listing(scheduler: str, tmp_path: Path,  # noqa: F811
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan travels with every Dask task: without the unit list (each task has its own
    units), or every task carried the whole listing (Lightly -> KITTI, 20,000 images, 80
    tasks: 16.2 s and 820 MB on a LocalCluster, 3.3 s and 122 MB without)."""
    from annobridge.converters import sharded

    seen: list[tuple[int, int]] = []
    real = sharded.run_shard

    def spy(plan: Any, units: list[Any], *args: Any, **kwargs: Any) -> Any:
        seen.append((len(plan.shards.units), len(units)))
        return real(plan, units, *args, **kwargs)

    monkeypatch.setattr(sharded, "run_shard", spy)  # the cluster's workers are threads of this process
    src = _kitti(tmp_path)
    one = annobridge.convert(src, tmp_path / "one" / "out", "kitti")
    many = annobridge.convert(src, tmp_path / "dask" / "out", "kitti", executor=scheduler, workers=2)
    assert len(seen) > 1 and all(listed == 0 and own > 0 for listed, own in seen), seen
    assert sum(own for _, own in seen) == 9  # every frame read once, by some task
    assert _tree(tmp_path / "one") == _tree(tmp_path / "dask")
    _same_report(one, many)
