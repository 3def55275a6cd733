"""The derivation stage (``core/derive.py`` used by the engine's ``fit_to``): each conversion
against an independent reference (pycocotools), the pair table, and real fixtures carried
into formats that cannot hold their kinds."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

import annobridge
from annobridge.converters import engine
from annobridge.core import derive
from annobridge.core.formats import Capabilities, Context, Format
from annobridge.core.hookspecs import hookimpl
from annobridge.core.model import (
    BoxAnnotation,
    CuboidAnnotation,
    Dataset,
    DatasetItem,
    ObjectMaskAnnotation,
    OrientedBoxAnnotation,
    PolygonAnnotation,
)
from annobridge.core.plugins import FormatRegistry, get_plugin_manager, get_registry
from tests import derivation_table
from tests.conftest import FIXTURES
from tests.strategies import limits_for

COCO_FILES = [FIXTURES / "coco/instances/instances.json",  # real COCO train2017 polygons (labelformat)
              FIXTURES / "coco/synthetic/instances.json",  # polygons, crowd and non-crowd RLE, keypoints
              FIXTURES / "coco/synthetic/stuff.json"]      # one RLE per (image, stuff class)


def _coco_objects():
    """(pycocotools COCO, raw annotation, the canonical annotation annobridge read for it)."""
    for path in COCO_FILES:
        coco = COCO(str(path))
        for item in annobridge.load(path).items:
            for ann in item.annotations:
                if ann.type in ("polygon", "object_mask"):
                    yield coco, coco.anns[int(ann.group_id)], ann, item


# --------------------------------------------------------------------------- one function per conversion


def test_polygon_to_object_mask_is_pixel_identical_to_ann_to_mask() -> None:
    n = 0
    for coco, raw, ann, item in _coco_objects():
        if ann.type == "polygon":
            made = derive.polygon_to_object_mask(ann, item, [])
            assert np.array_equal(made.to_array(), coco.annToMask(raw)), raw["id"]
            n += 1
    assert n == 42  # 3 real COCO objects + 39 synthetic


def test_mask_to_polygon_round_trips_the_fixture_masks() -> None:
    """mask -> polygon -> mask (pycocotools) on every mask in the COCO fixtures and on the
    real COCO polygons rasterised: mean IoU >= 0.98 and the polygon's box within 1 px of toBbox.
    Measured: every IoU is 1.0 (the contour runs through pixel-edge midpoints)."""
    ious = []
    for coco, raw, ann, item in _coco_objects():
        rle = coco.annToRLE(raw)
        mask = ObjectMaskAnnotation.from_array(mask_utils.decode(rle), label=ann.label)
        poly = derive.object_mask_to_polygon(mask, item, losses := [])
        assert poly is not None and not losses
        again = derive.polygon_to_rle(poly.rings, item.height, item.width)
        ious.append(float(mask_utils.iou([again], [rle], [0])[0][0]))
        want = mask_utils.toBbox(rle)
        got = derive.polygon_box(poly.rings)
        assert np.allclose(got, want, atol=1.0), (raw["id"], got, want)
    assert len(ious) == 60
    assert float(np.mean(ious)) >= 0.98 and min(ious) > 0.9, ious


def test_mask_holes_are_counted_and_filled() -> None:
    m = np.zeros((12, 12), dtype=np.uint8)
    m[1:9, 1:9] = 1
    m[3:6, 3:6] = 0  # a hole
    m[10, 10] = 1    # a second part
    rings, holes = derive.mask_to_rings(m)
    assert holes == 1 and len(rings) == 2
    filled = m.copy()
    filled[3:6, 3:6] = 1
    assert np.array_equal(mask_utils.decode(derive.polygon_to_rle(rings, 12, 12)), filled)


def test_box_comes_from_the_coco_bbox_kept_exactly_else_the_extent() -> None:
    item = DatasetItem(reference_id="a", width=10, height=10)
    poly = PolygonAnnotation(label="x", rings=[[1, 1, 5, 1, 5, 4]], attributes={"bbox": [0.5, 0.25, 6, 5], "area": 3})
    box = derive.polygon_to_box(poly, item, [])
    assert (box.x, box.y, box.width, box.height) == (0.5, 0.25, 6, 5) and box.attributes == {"area": 3}
    poly.attributes = {}
    box = derive.polygon_to_box(poly, item, [])
    assert (box.x, box.y, box.width, box.height) == (1, 1, 4, 3)


def test_box_oriented_box_and_polygon_conversions() -> None:
    item = DatasetItem(reference_id="a")
    box = BoxAnnotation(label="x", x=2, y=3, width=4, height=6)
    obb = derive.box_to_oriented_box(box, item, [])
    assert (obb.cx, obb.cy, obb.width, obb.height, obb.rotation) == (4, 6, 4, 6, 0)
    assert derive.box_to_polygon(box, item, []).rings == [[2, 3, 6, 3, 6, 9, 2, 9]]
    turned = OrientedBoxAnnotation(label="x", cx=10, cy=10, width=8, height=2, rotation=30)
    poly = derive.oriented_box_to_polygon(turned, item, [])
    assert poly.rings == [turned.corners()]
    back = derive.polygon_to_oriented_box(poly, item, [])  # the minimum-area rectangle is the box itself
    assert math.isclose(back.cx, 10, abs_tol=1e-9) and math.isclose(back.cy, 10, abs_tol=1e-9)
    assert sorted((round(back.width, 9), round(back.height, 9))) == [2, 8]
    assert math.isclose(back.width * back.height, 16, rel_tol=1e-9)
    assert math.isclose((back.rotation - 30) % 90, 0, abs_tol=1e-9) or math.isclose((back.rotation - 30) % 90, 90)
    extent = derive.oriented_box_to_box(turned, item, [])
    c = np.asarray(turned.corners()).reshape(4, 2)
    assert np.allclose([extent.x, extent.y, extent.x + extent.width, extent.y + extent.height],
                       [*c.min(axis=0), *c.max(axis=0)], atol=1e-9)


def test_candidates_follow_the_ladder_and_the_geometry_choice() -> None:
    held = frozenset({"box", "polygon"})
    assert derive.candidates("object_mask", held) == ("polygon", "box")
    assert derive.candidates("object_mask", held, "box") == ("box", "polygon")
    assert derive.candidates("object_mask", held, "mask") == ("polygon", "box")  # not held: ignored
    assert derive.candidates("line", held) == ()
    assert derive.candidates("polygon", frozenset({"oriented_box"})) == ("oriented_box",)


# --------------------------------------------------------------------------- in the engine


def _write_json(dataset: Dataset, destination: Path, options, context: Context) -> None:
    destination.write_text(json.dumps([i.model_dump(mode="json") for i in dataset.items]))


class _Toys:
    @hookimpl
    def register_formats(self) -> list[Format]:
        def fmt(name: str, kinds: set[str]) -> Format:
            return Format(name=name, description=name, capabilities=Capabilities(annotation_types=frozenset(kinds)),
                          write=_write_json)
        return [fmt("toy-polygons", {"polygon"}), fmt("toy-shapes", {"polygon", "box"}),
                fmt("toy-obb", {"oriented_box"}), fmt("toy-pose", {"box", "keypoints"})]


@pytest.fixture
def toys() -> FormatRegistry:
    pm = get_plugin_manager()
    pm.register(_Toys(), name="toys")
    return FormatRegistry.from_manager(pm)


def _mask_item() -> DatasetItem:
    m = np.zeros((12, 12), dtype=np.uint8)
    m[1:9, 1:9] = 1
    m[3:6, 3:6] = 0
    return DatasetItem(reference_id="a", width=12, height=12, annotations=[
        ObjectMaskAnnotation.from_array(m, label="crowd", annotation_id="1", group_id="1", attributes={"iscrowd": 1})])


def test_mask_to_polygon_in_the_engine_reports_holes_and_the_crowd_flag(tmp_path: Path, toys) -> None:
    report = engine.write_dataset(Dataset(items=[_mask_item()]), tmp_path / "o.json", "toy-polygons", registry=toys)
    assert report.converted == {"object_mask -> polygon": 1}
    assert report.dropped == {
        "mask hole": {"object_mask -> polygon: polygon rings cannot cut holes; filled": 1},
        "attribute:iscrowd": {"object_mask -> polygon: toy-polygons has no crowd flag; "
                              "the crowd region is written as one plain object": 1}}
    (written,) = json.loads((tmp_path / "o.json").read_text())
    assert [a["type"] for a in written["annotations"]] == ["polygon"]
    assert written["annotations"][0]["group_id"] == "1" and "iscrowd" not in written["annotations"][0]["attributes"]


def test_geometry_chooses_among_held_kinds_and_derive_none_drops(tmp_path: Path, toys) -> None:
    report = engine.write_dataset(Dataset(items=[_mask_item()]), tmp_path / "a.json", "toy-shapes", registry=toys)
    assert report.converted == {"object_mask -> polygon": 1}
    report = engine.write_dataset(Dataset(items=[_mask_item()]), tmp_path / "b.json", "toy-shapes", registry=toys,
                                  geometry="box")
    assert report.converted == {"object_mask -> box": 1}
    (written,) = json.loads((tmp_path / "b.json").read_text())
    box = written["annotations"][0]
    assert (box["type"], box["x"], box["y"], box["width"], box["height"]) == ("box", 1, 1, 8, 8)
    report = engine.write_dataset(Dataset(items=[_mask_item()]), tmp_path / "c.json", "toy-shapes", registry=toys,
                                  derive="none")
    assert report.converted == {} and report.dropped["object_mask"] == {
        "toy-shapes cannot hold object_mask ground truth (--derive none)": 1}
    with pytest.raises(annobridge.AnnobridgeError, match="unknown geometry 'circle'"):
        engine.write_dataset(Dataset(items=[]), tmp_path / "d.json", "toy-shapes", registry=toys, geometry="circle")


def test_an_objects_box_and_keypoints_stay_together(tmp_path: Path, toys) -> None:
    """A COCO person (polygon or RLE + keypoints, one group) reaches a box + keypoints
    format as its own bbox and its keypoints, still one group."""
    dataset = annobridge.load(SYNTHETIC)
    report = engine.write_dataset(dataset, tmp_path / "o.json", "toy-pose", registry=toys)
    assert "keypoints" not in report.dropped
    coco = COCO(str(SYNTHETIC))
    people = [a for a in coco.anns.values() if a.get("keypoints")]
    assert people
    written = {(i["reference_id"], a["group_id"]): a for i in json.loads((tmp_path / "o.json").read_text())
               for a in i["annotations"] if a["type"] == "box"}
    for raw in people:
        box = written[(str(raw["image_id"]), str(raw["id"]))]
        assert [box["x"], box["y"], box["width"], box["height"]] == raw["bbox"]
    kps = [(i["reference_id"], a["group_id"]) for i in json.loads((tmp_path / "o.json").read_text())
           for a in i["annotations"] if a["type"] == "keypoints"]
    assert sorted(kps) == sorted((str(r["image_id"]), str(r["id"])) for r in people)


def test_polygon_becomes_a_minimum_area_oriented_box(tmp_path: Path, toys) -> None:
    ring = OrientedBoxAnnotation(label="x", cx=20, cy=20, width=10, height=4, rotation=-40).corners()
    item = DatasetItem(reference_id="a", annotations=[PolygonAnnotation(label="x", rings=[ring])])
    report = engine.write_dataset(Dataset(items=[item]), tmp_path / "o.json", "toy-obb", registry=toys)
    assert report.converted == {"polygon -> oriented_box": 1}
    (written,) = json.loads((tmp_path / "o.json").read_text())
    obb = OrientedBoxAnnotation.model_validate(written["annotations"][0])
    assert np.allclose(sorted(np.asarray(obb.corners()).reshape(4, 2).tolist()),
                       sorted(np.asarray(ring).reshape(4, 2).tolist()), atol=1e-9)


# --------------------------------------------------------------------------- the pair table


def test_pair_table_is_generated_from_real_conversions_and_current() -> None:
    """docs/derivation.md states, per (source kind, built-in format), what comes back; the
    table is regenerated here, so it cannot drift from what the engine does."""
    text = derivation_table.generate()
    assert "error:" not in text
    assert derivation_table.TABLE.read_text(encoding="utf-8") == text, \
        "docs/derivation.md is stale: run .venv/bin/python -m tests.derivation_table --write"
    formats = derivation_table.builtin_writers()
    rows = {line.split(" | ")[0][2:]: line.strip(" |").split(" | ")[1:]
            for line in text.splitlines() if line.startswith("| ") and not line.startswith("| source")}
    registry = get_registry()
    for kind, cells in rows.items():
        for fmt_name, cell in zip(formats, cells):
            caps = registry.get(fmt_name).capabilities
            held = caps.annotation_types | caps.prediction_types
            narrowed = limits_for(fmt_name).kinds  # FORMAT_LIMITS: held only with conditions (reasons there)
            if narrowed is not None and kind in held and kind not in narrowed:
                continue
            kinds = set(cell.replace(" (derived)", "").split(" + ")) - {"dropped"}
            # a kind the format holds comes back as itself, never converted (a writer may derive a
            # companion it needs beside it: a VOC mask's box, a YOLO pose row's box)
            if kind in held:
                assert kind in kinds and ("(derived)" not in cell or len(kinds) > 1), (kind, fmt_name, cell)
            # a kind the ladder can turn into a held kind is never dropped
            elif derive.candidates(kind, held):
                assert cell != "dropped", (kind, fmt_name)
            assert kinds <= held, (kind, fmt_name, cell)


# --------------------------------------------------------------------------- real fixtures


SYNTHETIC = FIXTURES / "coco/synthetic/instances.json"


def test_coco_to_yolo_boxes_writes_every_object_with_its_own_bbox(tmp_path: Path) -> None:
    """YOLO detect holds boxes only: every COCO object reaches it as its own bbox."""
    import yaml

    dataset = annobridge.load(SYNTHETIC)
    report = annobridge.save(dataset, tmp_path / "y", "yolo", {"task": "detect"})
    data = json.loads(SYNTHETIC.read_text())
    sizes = {i["id"]: (i["width"], i["height"]) for i in data["images"]}
    names = {c["id"]: c["name"] for c in data["categories"]}
    names_yaml = yaml.safe_load((tmp_path / "y/data.yaml").read_text())["names"]
    classes = list(names_yaml.values()) if isinstance(names_yaml, dict) else list(names_yaml)
    rows = sorted(tuple(round(float(v), 5) for v in line.split()) for p in (tmp_path / "y/labels").rglob("*.txt")
                  for line in p.read_text().splitlines())
    want = []
    for a in data["annotations"]:
        w, h = sizes[a["image_id"]]
        x, y, bw, bh = a["bbox"]
        want.append((classes.index(names[a["category_id"]]), round((x + bw / 2) / w, 5), round((y + bh / 2) / h, 5),
                     round(bw / w, 5), round(bh / h, 5)))
    assert len(rows) == len(data["annotations"]) == report.written["box"]
    assert rows == sorted(want)
    assert report.converted == {"polygon -> box": 39, "object_mask -> box": 5}
    assert report.dropped["keypoints"] == {"yolo cannot hold keypoints ground truth; its object already has a box": 7}


def test_coco_to_lightly_rasterises_polygons_like_ann_to_mask(tmp_path: Path) -> None:
    from PIL import Image

    dataset = annobridge.load(SYNTHETIC)
    for item in dataset.items:  # Lightly keeps media paths relative to its input folder
        item.image_location = str(tmp_path / f"{item.reference_id}.png")
        Image.new("RGB", (item.width, item.height)).save(item.image_location)
    report = annobridge.save(dataset, tmp_path / "l", "lightly", {"score": "1", "input": str(tmp_path)})
    assert report.converted == {"polygon -> object_mask": 39}
    assert set(report.dropped) <= {"attribute:area", "attribute:iscrowd", "attribute:bbox", "attribute:segmentation",
                                   "annotation ids", "attribute:num_keypoints"}, report.dropped
    coco = COCO(str(SYNTHETIC))
    back = annobridge.load(tmp_path / "l", "lightly", {"input": str(tmp_path)})
    masks = [a for i in back.items for a in (*i.annotations, *i.predictions) if a.type == "object_mask"]
    assert len(masks) == 39 + 5
    want = sorted(coco.annToMask(a).tobytes() for a in coco.anns.values() if a.get("segmentation"))
    assert sorted(m.to_array().tobytes() for m in masks) == want


def test_coco_to_nucleus_needs_no_conversion(tmp_path: Path) -> None:
    report = annobridge.convert(SYNTHETIC, tmp_path / "n.jsonl", dst_format="nucleus")
    assert report.converted == {}
    assert report.written == report.read


@pytest.mark.parametrize("case,options", [("mapillary/panoptic_2020.json", {"masks": "."}),  # things, crowd
                                          ("datumaro/panoptic_train.json", None)])         # stuff only
def test_panoptic_to_coco_gives_one_mask_per_segment_stuff_included(tmp_path: Path, case: str, options) -> None:
    src = FIXTURES / "coco-panoptic" / case
    panoptic = annobridge.load(src, "coco-panoptic", options)
    segments = {i.reference_id: {s.index: s for a in i.annotations if a.type == "segmentation" for s in a.annotations}
                for i in panoptic.items}
    arrays = {i.reference_id: next(a for a in i.annotations if a.type == "segmentation").mask.load()
              for i in panoptic.items}
    report = annobridge.convert(src, tmp_path / "c.json", dst_format="coco", read_options=options)
    coco = COCO(str(tmp_path / "c.json"))
    present = sum(1 for ref, segs in segments.items() for k in segs if (arrays[ref] == k).any())
    assert len(coco.anns) == present == report.converted["segmentation -> object_mask"] > 0
    assert report.written == {"segmentation": 0, "object_mask": present}
    stuff = {c.name for c in panoptic.header.categories if c.attributes.get("isthing") == 0}
    assert any(coco.cats[a["category_id"]]["name"] in stuff for a in coco.anns.values()) == bool(stuff)
    by_image: dict[str, list[bytes]] = {}
    for a in coco.anns.values():
        by_image.setdefault(str(coco.imgs[a["image_id"]]["file_name"]), []).append(coco.annToMask(a).tobytes())
    for item in panoptic.items:
        arr = arrays[item.reference_id]
        want = sorted((arr == k).astype(np.uint8).tobytes() for k in segments[item.reference_id] if (arr == k).any())
        assert sorted(by_image[str(item.image_location)]) == want


def test_kitti_cuboids_without_their_2d_boxes_project_to_coco_boxes(tmp_path: Path) -> None:
    """The openpcdet sample has calibration: a cuboid alone reaches COCO as its projected
    box, within the projection tolerance measured on these labels against their 2D boxes."""
    from tests.test_kitti import REAL_PROJECTION_TOLERANCE_PX

    kitti = annobridge.load(FIXTURES / "kitti/openpcdet-sample", "kitti")
    boxes: dict[tuple[str, str], BoxAnnotation] = {}
    items = []
    for item in kitti.items:
        for a in item.annotations:
            if a.type == "box":
                boxes[(item.reference_id, a.group_id)] = a
        cuboids = [a for a in item.annotations if a.type == "cuboid"]
        items.append(item.model_copy(update={"annotations": cuboids}))
    report = annobridge.save(Dataset(header=kitti.header, items=items), tmp_path / "c.json", "coco")
    n = sum(len(i.annotations) for i in items)
    assert n > 0 and report.converted == {"cuboid -> box": n}
    back = annobridge.load(tmp_path / "c.json", "coco")
    got = [a for i in back.items for a in i.annotations if a.type == "box"]
    assert len(got) == n
    for item in back.items:
        theirs = [b for (ref, _), b in boxes.items() if ref == item.reference_id and b.label != "DontCare"]
        for a in item.annotations:
            best = min(max(abs(a.x - b.x), abs(a.y - b.y), abs(a.x + a.width - b.x - b.width),
                           abs(a.y + a.height - b.y - b.height)) for b in theirs if b.label == a.label)
            assert best < REAL_PROJECTION_TOLERANCE_PX, (item.reference_id, a)


def test_a_cuboid_without_calibration_is_dropped_and_says_why(tmp_path: Path) -> None:
    from annobridge.core.model import Point3D

    item = DatasetItem(reference_id="a", width=100, height=50, annotations=[CuboidAnnotation(
        label="car", position=Point3D(x=5, y=0, z=0), dimensions=Point3D(x=4, y=2, z=1.5), yaw=0)])
    report = annobridge.save([item], tmp_path / "c.json", "coco")
    assert report.converted == {}
    (reason,) = report.dropped["cuboid"]
    assert "no calibration on the item" in reason
