"""The three segmentation views (core/segmentation.py) and ``convert --task``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from tests.panoptic_helpers import make_panoptic, read_png_ids

import annobridge
from annobridge.converters import engine
from annobridge.core.errors import FormatError, UnsupportedAnnotationError, WriteError
from annobridge.core.formats import Context
from annobridge.core.model import (
    Category,
    Dataset,
    DatasetHeader,
    DatasetItem,
    IndexMask,
    ObjectMaskAnnotation,
    PolygonAnnotation,
    Segment,
    SegmentationAnnotation,
)
from annobridge.core.segmentation import consolidate, consolidate_item, make_plan, mask_stats, rle_by_key

# --------------------------------------------------------------------------- the Nucleus guide example
# A COCO image with 11 segments: background, building, tree, wall, fence, pavement, person,
# handbag and three birds. Countable objects (isthing=1): building, tree, person, handbag,
# bird. Amorphous stuff (isthing=0): background, wall, fence, pavement. The instance view
# keeps the 7 objects apart (the birds separate) and merges all stuff into one background
# mask: 8. The semantic view has one value per class (the birds merged): 9.

GUIDE_CLASSES = [("background", 0), ("building", 1), ("tree", 1), ("wall", 0), ("fence", 0),
                 ("pavement", 0), ("person", 1), ("handbag", 1), ("bird", 1)]
GUIDE_HEADER = DatasetHeader(categories=[
    Category(id=i, name=n, supercategory=n, attributes={"isthing": t, "color": [20 * i, 100, 255 - 20 * i]})
    for i, (n, t) in enumerate(GUIDE_CLASSES, start=1)])
GUIDE_SEGMENTS = ["background", "building", "tree", "wall", "fence", "pavement", "person",
                  "handbag", "bird", "bird", "bird"]


def guide_mask() -> np.ndarray:
    """A generated 60x80 mask with segment values 1..11 in GUIDE_SEGMENTS order."""
    m = np.ones((60, 80), dtype=np.uint32)           # 1 background (sky)
    m[10:40, 0:30] = 2                                # building
    m[15:45, 60:80] = 3                               # tree
    m[30:45, 30:60] = 4                               # wall
    m[40:50, 0:30] = 5                                # fence
    m[45:60, :] = 6                                   # pavement
    m[25:55, 35:43] = 7                               # person
    m[40:48, 43:48] = 8                               # handbag
    m[2:5, 40:43] = 9                                 # three birds in the sky
    m[4:7, 50:53] = 10
    m[3:6, 62:65] = 11
    return m


def guide_item() -> DatasetItem:
    return DatasetItem(
        reference_id="guide", image_location="guide.jpg", width=80, height=60,
        annotations=[SegmentationAnnotation(
            mask=IndexMask.from_array(guide_mask()),
            annotations=[Segment(label=lab, index=i, attributes={"iscrowd": 0})
                         for i, lab in enumerate(GUIDE_SEGMENTS, start=1)])],
    )


def guide_dataset() -> Dataset:
    return Dataset(header=GUIDE_HEADER, items=[guide_item()])


def test_guide_panoptic_view_11_segments(tmp_path: Path) -> None:
    out = tmp_path / "guide.json"
    annobridge.save(guide_dataset(), out, "coco-panoptic")
    (item,) = annobridge.load(out).items
    (seg,) = item.annotations
    assert len(seg.annotations) == 11
    assert Counter(s.label for s in seg.annotations) == Counter(GUIDE_SEGMENTS)
    ids = seg.mask.load()
    src = guide_mask()
    for k, s in enumerate(seg.annotations, start=1):  # written in segment order
        assert np.array_equal(ids == s.index, src == k)
        assert s.attributes["area"] == int((src == k).sum())


def test_guide_instance_view_8_background_merged_birds_separate() -> None:
    ds = consolidate(guide_dataset(), "instance", stuff="background")
    (item,) = ds.items
    masks = [a for a in item.annotations if a.type == "object_mask"]
    assert len(masks) == 8
    assert Counter(a.label for a in masks) == Counter(
        {"background": 1, "building": 1, "tree": 1, "person": 1, "handbag": 1, "bird": 3})
    src = guide_mask()
    background = next(a for a in masks if a.label == "background")
    assert np.array_equal(background.to_array().astype(bool), np.isin(src, [1, 4, 5, 6]))
    birds = [a.to_array().astype(bool) for a in masks if a.label == "bird"]
    assert [np.array_equal(b, src == k) for b, k in zip(birds, (9, 10, 11))] == [True] * 3
    assert [a.annotation_id for a in masks] == [str(i) for i in range(1, 9)]
    assert background.attributes["category_id"] == 1  # the header's "background"
    assert all(a.attributes["area"] == int(a.to_array().sum()) for a in masks)


def test_guide_instance_view_other_stuff_modes() -> None:
    by_category = list(consolidate(guide_dataset(), "instance").items)[0]
    assert Counter(a.label for a in by_category.annotations) == Counter(GUIDE_SEGMENTS)  # 11: 4 stuff + 7
    things = list(consolidate(guide_dataset(), "instance", things_only=True).items)[0]
    assert len(things.annotations) == 7 and "background" not in {a.label for a in things.annotations}


def test_guide_semantic_view_9_classes_birds_merged() -> None:
    ds = consolidate(guide_dataset(), "semantic")
    (item,) = ds.items
    (seg,) = item.annotations
    assert [s.label for s in seg.annotations] == [n for n, _ in GUIDE_CLASSES]  # 9
    sem = seg.mask.load()
    bird = next(s for s in seg.annotations if s.label == "bird")
    # 0 is background, as in Nucleus's example: the other classes count from 1
    assert seg.annotations[0].label == "background" and seg.annotations[0].index == 0
    assert bird.index == 8 and bird.attributes["category_id"] == 9
    assert np.array_equal(sem == 8, np.isin(guide_mask(), [9, 10, 11]))
    assert sem.max() <= 255 and set(np.unique(sem).tolist()) == set(range(0, 9))


def test_guide_views_through_the_cli(tmp_path: Path) -> None:
    pan = tmp_path / "guide.json"
    annobridge.save(guide_dataset(), pan, "coco-panoptic")
    cli = [sys.executable, "-m", "annobridge", "convert", str(pan)]
    r = subprocess.run(cli + [str(tmp_path / "inst.jsonl"), "--to", "jsonl", "--task", "instance",
                              "--stuff", "background"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    inst = list(annobridge.load(tmp_path / "inst.jsonl").items)[0]
    assert len(inst.annotations) == 8
    r = subprocess.run(cli + [str(tmp_path / "sem.jsonl"), "--to", "jsonl", "--task", "semantic"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    sem = list(annobridge.load(tmp_path / "sem.jsonl").items)[0]
    assert len(sem.annotations[0].annotations) == 9
    r = subprocess.run(cli + [str(tmp_path / "t.jsonl"), "--to", "jsonl", "--task", "instance",
                              "--things-only"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "dropped 4 x segment:stuff" in r.stdout
    assert len(list(annobridge.load(tmp_path / "t.jsonl").items)[0].annotations) == 7


# --------------------------------------------------------------------------- instance -> panoptic / semantic


def _obj(label: str, mask: np.ndarray, aid: str, **attrs) -> ObjectMaskAnnotation:
    return ObjectMaskAnnotation.from_array(mask, label, annotation_id=aid, attributes=attrs)


def _square(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((h, w), dtype=np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def _instances_item() -> DatasetItem:
    return DatasetItem(reference_id="i", width=10, height=8, annotations=[
        _obj("person", _square(8, 10, 0, 4, 0, 4), "p1", iscrowd=0, area=16),
        _obj("person", _square(8, 10, 2, 6, 2, 6), "p2", iscrowd=1),  # overlaps p1 on 4 pixels
        _obj("bird", _square(8, 10, 6, 8, 8, 10), "b1"),
    ])


def test_instance_to_panoptic_overlap_is_an_error_naming_both() -> None:
    plan = make_plan(GUIDE_HEADER, "panoptic")
    with pytest.raises(UnsupportedAnnotationError,
                       match=r"item \"i\": annotation 'p1' \(object_mask 'person'\) and annotation 'p2' "
                             r"\(object_mask 'person'\) overlap on 4 pixels.*overlap=keep-first"):
        consolidate_item(_instances_item(), plan)


@pytest.mark.parametrize("policy,owner", [("keep-first", 1), ("keep-last", 2)])
def test_instance_to_panoptic_overlap_policies_and_crowd(policy: str, owner: int) -> None:
    item, drops = consolidate_item(_instances_item(), make_plan(GUIDE_HEADER, "panoptic", overlap=policy))
    (seg,) = item.annotations
    mask = seg.mask.load()
    assert mask[3, 3] == owner and mask[0, 0] == 1 and mask[5, 5] == 2 and mask[7, 9] == 3
    assert drops == Counter({"pixel:overlap": 4})
    assert [s.attributes["iscrowd"] for s in seg.annotations] == [0, 1, 0]  # crowd flags kept
    assert [s.attributes["category_id"] for s in seg.annotations] == [7, 7, 9]
    assert all("area" not in s.attributes for s in seg.annotations)  # recomputed by writers


def test_instance_to_panoptic_written_and_read_back(tmp_path: Path) -> None:
    ds = Dataset(header=GUIDE_HEADER, items=[_instances_item()])
    pan = consolidate(ds, "panoptic", overlap="keep-last")
    annobridge.save(pan, tmp_path / "p.json", "coco-panoptic")
    doc = json.loads((tmp_path / "p.json").read_text())
    infos = doc["annotations"][0]["segments_info"]
    assert [i["iscrowd"] for i in infos] == [0, 1, 0]
    assert [i["area"] for i in infos] == [12, 16, 4]
    ids = read_png_ids(tmp_path / "p" / doc["annotations"][0]["file_name"])
    assert np.array_equal(ids == infos[1]["id"], _square(8, 10, 2, 6, 2, 6).astype(bool))


def test_instance_to_semantic_same_class_overlap_is_fine_other_class_is_not() -> None:
    item, _ = consolidate_item(_instances_item(), make_plan(GUIDE_HEADER, "semantic"))
    sem = item.annotations[0].mask.load()
    assert sem[3, 3] == 6 and sem[7, 9] == 8 and sem[7, 0] == 0  # "background" is 0
    assert [(s.label, s.index) for s in item.annotations[0].annotations][0] == ("background", 0)
    clash = DatasetItem(reference_id="c", width=10, height=8, annotations=[
        _obj("person", _square(8, 10, 0, 4, 0, 4), "p"), _obj("bird", _square(8, 10, 3, 5, 3, 5), "b")])
    with pytest.raises(UnsupportedAnnotationError, match=r"annotation 'p' .* and annotation 'b' .* overlap on 1 pixels"):
        consolidate_item(clash, make_plan(GUIDE_HEADER, "semantic"))


def test_polygons_are_rasterised() -> None:
    item = DatasetItem(reference_id="poly", width=10, height=10, annotations=[
        PolygonAnnotation(label="person", rings=[[0, 0, 4, 0, 4, 4, 0, 4]], annotation_id="a")])
    out, _ = consolidate_item(item, make_plan(GUIDE_HEADER, "panoptic"))
    mask = out.annotations[0].mask.load()
    assert int((mask == 1).sum()) == 16


def test_semantic_8_bit_limit_and_16_bit() -> None:
    many = DatasetHeader(categories=[Category(id=i, name=f"c{i}") for i in range(300)])
    with pytest.raises(FormatError, match=r"300 classes do not fit in an 8-bit semantic mask .*bits=16"):
        consolidate(Dataset(header=many, items=[]), "semantic")
    mask = np.array([[1, 2]], dtype=np.uint32)
    item = DatasetItem(reference_id="x", annotations=[SegmentationAnnotation(
        mask=IndexMask.from_array(mask), annotations=[Segment(label="c299", index=1), Segment(label="c3", index=2)])])
    (got,) = consolidate(Dataset(header=many, items=[item]), "semantic", bits=16).items
    assert got.annotations[0].mask.load().tolist() == [[300, 4]]


def test_unknown_label_for_semantic_is_an_error() -> None:
    item = guide_item()
    item.annotations[0].annotations[0].label = "sky"
    with pytest.raises(WriteError, match=r"item \"guide\": label 'sky' is not among the 9 semantic classes"):
        list(consolidate(guide_dataset().__class__(header=GUIDE_HEADER, items=[item]), "semantic").items)


def test_bad_options() -> None:
    with pytest.raises(FormatError, match="unknown segmentation task 'bogus'"):
        consolidate(guide_dataset(), "bogus")
    with pytest.raises(FormatError, match="things-only drops stuff"):
        consolidate(guide_dataset(), "instance", things_only=True, stuff="category")


# --------------------------------------------------------------------------- run helpers and workers


def test_rle_by_key_matches_pycocotools_encode() -> None:
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(0)
    arr = rng.integers(0, 5, size=(17, 23)).astype(np.uint32)
    rles = rle_by_key(arr, {1: 0, 2: 1, 3: 1})  # 2 and 3 merged
    for key, values in ((0, [1]), (1, [2, 3])):
        expected = mask_utils.encode(np.asfortranarray(np.isin(arr, values).astype(np.uint8)))
        assert rles[key]["counts"] == expected["counts"]
    stats = mask_stats(arr).as_dict()
    ys, xs = np.nonzero(arr == 4)
    assert stats[4] == (ys.size, [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1])


def test_consolidate_with_workers_is_identical(tmp_path: Path) -> None:
    src = make_panoptic(tmp_path, images=5, seed=11)
    outs = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}.jsonl"
        engine.convert(src, out, dst_format="jsonl", workers=workers, task="instance")
        outs.append(out.read_text())
    assert outs[0] == outs[1]
    ids = [a["annotation_id"] for line in outs[0].splitlines()[1:] for a in json.loads(line)["annotations"]]
    assert ids == [str(i) for i in range(1, len(ids) + 1)]  # renumbered from 1 over the dataset


def test_engine_reports_view_change(tmp_path: Path) -> None:
    src = make_panoptic(tmp_path, images=2)
    report = engine.convert(src, tmp_path / "o.jsonl", dst_format="jsonl", task="semantic",
                            workers=1)
    assert any("semantic view" in n for n in report.notes)
    ctx = Context()
    ds = consolidate(annobridge.load(src), "instance", things_only=True, context=ctx)
    n = sum(len(i.annotations) for i in ds.items)
    assert n > 0 and ctx.report.dropped["segment:stuff"]


def test_cli_instance_to_panoptic_overlap(tmp_path: Path) -> None:
    src = tmp_path / "inst.jsonl"
    annobridge.save(Dataset(header=GUIDE_HEADER, items=[_instances_item()]), src, "jsonl")
    cli = [sys.executable, "-m", "annobridge", "convert", str(src), str(tmp_path / "p.json"),
           "--to", "coco-panoptic", "--task", "panoptic"]
    r = subprocess.run(cli, capture_output=True, text=True)
    assert r.returncode == 1
    assert "annotation 'p1' (object_mask 'person') and annotation 'p2' (object_mask 'person') overlap" in r.stderr
    assert not (tmp_path / "p.json").exists() and not (tmp_path / "p").exists()
    r = subprocess.run(cli + ["--overlap", "keep-first"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "dropped 4 x pixel:overlap" in r.stdout
    doc = json.loads((tmp_path / "p.json").read_text())
    assert [s["area"] for s in doc["annotations"][0]["segments_info"]] == [16, 12, 4]
    r = subprocess.run(cli[:-2] + ["--things-only"], capture_output=True, text=True)
    assert r.returncode == 2 and "--things-only and --stuff need --task instance" in r.stderr


def test_things_only_drops_stuff_objects_of_an_instance_source() -> None:
    item = DatasetItem(reference_id="s", width=10, height=8, annotations=[
        _obj("person", _square(8, 10, 0, 4, 0, 4), "p"), _obj("wall", _square(8, 10, 4, 8, 0, 10), "w")])
    out, drops = consolidate_item(item, make_plan(GUIDE_HEADER, "instance", things_only=True))
    assert [a.annotation_id for a in out.annotations] == ["p"] and drops == Counter({"object:stuff": 1})
    same, none = consolidate_item(item, make_plan(GUIDE_HEADER, "instance"))
    assert same is item and not none


def test_consolidation_leaves_lazy_source_masks_lazy(tmp_path: Path) -> None:
    src = make_panoptic(tmp_path, images=3)
    ds = annobridge.load(src)  # materialised list of items with lazy masks
    for task in ("instance", "semantic"):
        list(consolidate(ds, task).items)
        assert not any(i.annotations[0].mask.is_loaded for i in ds.items)


def test_semantic_view_carries_segment_metadata_and_takes_the_class_list_from_the_cli(tmp_path: Path) -> None:
    """The Nucleus all-kinds fixture: segments bg 0, car 1 ({"c": "red"}), sign 2."""
    src = Path(__file__).resolve().parent.parent / "fixtures/nucleus/all-kinds/items.jsonl"
    r = subprocess.run([sys.executable, "-m", "annobridge", "convert", str(src), str(tmp_path / "s.jsonl"),
                        "--to", "jsonl", "--task", "semantic", "--classes", "sign,car,bg", "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "segment metadata" not in json.loads(r.stdout)["dropped"]
    item = next(i for i in annobridge.load(tmp_path / "s.jsonl").items if i.reference_id == "img-1")
    seg = next(a for a in item.annotations if a.type == "segmentation")
    got = {s.label: (s.index, s.metadata) for s in seg.annotations}
    assert got["sign"][0] == 1 and got["car"] == (2, {"c": "red"}) and got["bg"][0] == 3
    # two segments of one class with different metadata: merged, and the loss reported
    mask = np.array([[1, 2], [0, 0]], dtype=np.uint8)
    two = DatasetItem(reference_id="t", width=2, height=2, annotations=[SegmentationAnnotation(
        mask=IndexMask.from_array(mask), annotations=[Segment(label="car", index=1, metadata={"c": "red"}),
                                                      Segment(label="car", index=2, metadata={"c": "blue"})])])
    header = DatasetHeader(categories=[Category(id=1, name="car")])
    out, drops = consolidate_item(two, make_plan(header, "semantic"))
    [merged] = out.annotations
    assert [(s.label, s.index, s.metadata) for s in merged.annotations] == [("background", 0, {}), ("car", 1, {})]
    assert drops == {"segment metadata": 2}
    with pytest.raises(subprocess.CalledProcessError):
        subprocess.run([sys.executable, "-m", "annobridge", "convert", str(src), str(tmp_path / "x.jsonl"),
                        "--to", "jsonl", "--classes", "a"], check=True, capture_output=True)
