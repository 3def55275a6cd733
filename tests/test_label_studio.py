"""The label-studio format: real exports, the documented geometry, and label-studio-converter
(Label Studio's own converter) reading what we write."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from label_studio_converter import Converter
from label_studio_converter import brush as ls_brush
from PIL import Image
from pycocotools.coco import COCO

import annobridge
from annobridge.core.errors import ReadError
from annobridge.core.model import (
    BoxAnnotation,
    CategoryAnnotation,
    Dataset,
    DatasetItem,
    KeypointsAnnotation,
    LineAnnotation,
    MultiCategoryAnnotation,
    ObjectMaskAnnotation,
    OrientedBoxAnnotation,
    PolygonAnnotation,
)
from annobridge.core.plugins import get_registry
from annobridge.plugins.label_studio import brush
from tests.conftest import FIXTURES
from tests.projection import assert_close

LS = FIXTURES / "label-studio"
REAL_EXPORTS = [LS / "sdk-export-yolo/data.json", LS / "sdk-export-yolo/data_polygons.json",
                LS / "sdk-export-coco/data.json", LS / "sdk-csv-history/csv_test_history.json",
                LS / "ls-previous-export/previous_export.json", LS / "all-kinds/tasks.json"]
TOL = 1e-9  # percent -> pixels -> percent is a multiply and a divide: last-digit differences only


def _json(path: Path) -> object:
    return json.loads(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- reading real exports


@pytest.mark.parametrize("src", REAL_EXPORTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_real_exports_round_trip_to_the_same_json(src: Path, tmp_path: Path) -> None:
    report = annobridge.convert(src, tmp_path / "out.json", dst_format="label-studio")
    assert report.dropped == {}
    assert_close(_json(tmp_path / "out.json"), _json(src), tol=TOL)


@pytest.mark.parametrize("src", REAL_EXPORTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_real_exports_are_detected(src: Path) -> None:
    assert get_registry().detect_one(src).name == "label-studio"


def _converter_coco(src: Path, config: Path, out: Path) -> dict:
    Converter(str(config), str(out), download_resources=False).convert_to_coco(str(src), str(out), is_dir=False)
    return _json(out / "result.json")


@pytest.mark.parametrize("case", ["sdk-export-coco/data.json", "sdk-export-yolo/data.json",
                                  "sdk-export-yolo/data_polygons.json"])
def test_pixels_agree_with_label_studio_converters_coco_export(case: str, tmp_path: Path) -> None:
    src = LS / case
    config = src.with_name("label_config_polygons.xml" if "polygons" in case else "label_config.xml")
    theirs = _converter_coco(src, config, tmp_path / "conv")
    ours = [a for item in annobridge.load(src).items for a in item.annotations]
    boxes = sorted(tuple(a["bbox"]) for a in theirs["annotations"] if not a["segmentation"])
    rings = sorted(tuple(a["segmentation"][0]) for a in theirs["annotations"] if a["segmentation"])
    assert len(boxes) + len(rings) == len([a for a in ours if a.type in ("box", "polygon")]) > 0
    assert_close(boxes, sorted((a.x, a.y, a.width, a.height) for a in ours if a.type == "box"), tol=TOL)
    assert_close(rings, sorted(tuple(a.rings[0]) for a in ours if a.type == "polygon"), tol=TOL)


def test_all_kinds_reads_as_documented() -> None:
    ds = annobridge.load(LS / "all-kinds/tasks.json").materialize()
    first, second = ds.items
    assert (first.reference_id, first.width, first.height) == ("7", 200, 100)
    assert first.image_location == "https://example.test/images/street%201.jpg"  # kept exactly, not opened
    assert first.metadata == {"site": "north"}
    by_id = {a.annotation_id: a for a in first.annotations}
    # the second annotator repeats region id "box1": the annotation id gets a suffix, the region keeps it
    assert set(by_id) >= {"box1", "box1#2", "rot1", "poly1", "kp1", "brush1", "plain", "cls", "tax"}
    box = by_id["box1"]
    assert isinstance(box, BoxAnnotation) and (box.label, box.x, box.y, box.width, box.height) == ("car", 20, 20, 50, 30)
    rot = by_id["rot1"]
    # corner (100, 40), 40 x 10 pixels, turned 90 degrees clockwise about the corner: the centre is
    # 20 px below the corner (half the width, now pointing down) and 5 px left (half the height)
    assert isinstance(rot, OrientedBoxAnnotation)
    assert_close([rot.cx, rot.cy, rot.width, rot.height, rot.rotation], [95.0, 60.0, 40.0, 10.0, 90.0])
    assert_close(rot.corners()[:2], [100.0, 40.0])
    assert rot.metadata == {"text": ["parked"]}
    assert isinstance(by_id["poly1"], PolygonAnnotation)
    assert_close(by_id["poly1"].rings, [[20.0, 10.0, 100.0, 10.0, 60.0, 60.0]])
    kp = by_id["kp1"]
    assert isinstance(kp, KeypointsAnnotation) and kp.names == ["nose"] and kp.label == "nose"
    assert_close(kp.keypoints, [150.0, 25.0, 2])
    mask = np.zeros((100, 200), dtype=np.uint8)
    mask[10:30, 20:60] = 1
    mask[50:52, :] = 1
    assert isinstance(by_id["brush1"], ObjectMaskAnnotation)
    assert np.array_equal(by_id["brush1"].to_array(), mask)
    assert by_id["plain"].label == ""
    assert isinstance(by_id["cls"], MultiCategoryAnnotation) and by_id["cls"].labels == ["day", "clear"]
    assert by_id["cls"].taxonomy_name == "weather"
    assert by_id["tax"].labels == ["vehicle/car", "animal"]
    preds = {a.annotation_id: a for a in first.predictions}
    assert (preds["p1"].confidence, preds["p2"].confidence) == (0.9, 0.8)  # region score, else the record's
    assert first.attributes["label_studio"]["predictions"][0]["model_version"] == "yolo-v8"
    assert isinstance(second.annotations[0], CategoryAnnotation) and second.annotations[0].label == "night"
    assert (second.width, second.height) == (None, None)  # no region gives a size, and none is needed
    assert {t.name: (t.type, t.labels) for t in ds.header.taxonomies} == {
        "weather": ("multicategory", ["day", "clear", "night"]),
        "kinds": ("multicategory", ["vehicle/car", "animal"])}


# --------------------------------------------------------------------------- the brush RLE


def test_brush_rle_agrees_with_label_studio_converter_both_ways() -> None:
    rng = np.random.default_rng(12)
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(1, 60, 2))
        mask = (rng.random((h, w)) < rng.random()).astype(np.uint8)
        ours = brush.encode_mask(mask)
        theirs_decoded = ls_brush.decode_rle(ours).reshape(h, w, 4)[:, :, 3]
        assert np.array_equal(theirs_decoded != 0, mask.astype(bool))
        assert np.array_equal(brush.decode_mask(ls_brush.mask2rle(mask * 255), w, h), mask)


def test_brush_runs_longer_than_the_largest_field_are_split() -> None:
    mask = np.ones((300, 300), dtype=np.uint8)  # 360000 equal values: more than 2**16 in one run
    rle = brush.encode_mask(mask)
    assert np.array_equal(ls_brush.decode_rle(rle), np.full(300 * 300 * 4, 255, dtype=np.uint8))
    assert brush.decode_mask(rle, 300, 300).all()


def test_a_brush_of_the_wrong_size_is_an_error_naming_the_region(tmp_path: Path) -> None:
    task = _task([{"id": "b", "type": "brushlabels", "from_name": "brush", "to_name": "image",
                   "original_width": 5, "original_height": 4,
                   "value": {"format": "rle", "rle": ls_brush.mask2rle(np.ones((3, 3), np.uint8)),
                             "brushlabels": ["x"]}}])
    src = _write(tmp_path, [task])
    with pytest.raises(ReadError, match=r"#/0/annotations/0/result/0/value.*36 values, expected .* 80"):
        list(annobridge.load(src).items)


# --------------------------------------------------------------------------- label-studio-converter reads ours


CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image"><Label value="car"/><Label value="person"/></RectangleLabels>
  <PolygonLabels name="polygon" toName="image"><Label value="road"/></PolygonLabels>
  <KeyPointLabels name="keypoint" toName="image"><Label value="nose"/></KeyPointLabels>
  <BrushLabels name="brush" toName="image"><Label value="sky"/></BrushLabels>
  <Choices name="choice" toName="image"><Choice value="day"/></Choices>
</View>"""


def _synthetic(tmp_path: Path, w: int, h: int) -> Dataset:
    items = []
    rng = np.random.default_rng(3)
    for n in range(3):
        image = tmp_path / f"img{n}.png"
        Image.new("RGB", (w, h)).save(image)
        mask = (rng.random((h, w)) < 0.3).astype(np.uint8)
        items.append(DatasetItem(reference_id=f"img{n}", image_location=str(image), width=w, height=h, annotations=[
            BoxAnnotation(label="car", x=3.5 + n, y=4.25, width=20.0, height=10.5),
            OrientedBoxAnnotation(label="person", cx=30.0, cy=20.0 + n, width=16.0, height=6.0, rotation=30.0 + 60 * n),
            PolygonAnnotation(label="road", rings=[[1.0, 2.0, 40.0, 3.5, 20.0, 30.0 + n]]),
            KeypointsAnnotation(label="nose", names=["nose"], keypoints=[10.0, 11.0, 2]),
            ObjectMaskAnnotation.from_array(mask, label="sky"),
            CategoryAnnotation(label="day"),
        ]))
    return Dataset.of(items)


def test_label_studio_converter_exports_our_json_to_coco_with_the_same_objects(tmp_path: Path) -> None:
    ds = _synthetic(tmp_path, 64, 64)  # square: the converter rotates boxes in percent units
    annobridge.save(ds, tmp_path / "ours.json", "label-studio")
    (tmp_path / "config.xml").write_text(CONFIG)
    coco = _converter_coco(tmp_path / "ours.json", tmp_path / "config.xml", tmp_path / "conv")
    assert len(coco["images"]) == 3
    assert [(i["width"], i["height"]) for i in coco["images"]] == [(64, 64)] * 3
    names = {c["id"]: c["name"] for c in coco["categories"]}
    got = sorted((coco["images"][a["image_id"]]["file_name"], names[a["category_id"]], *a["bbox"])
                 for a in coco["annotations"])
    want = []
    for item in ds.items:
        for a in item.annotations:
            if a.type == "box":
                want.append((item.image_location, "car", a.x, a.y, a.width, a.height))
            elif a.type == "oriented_box":
                xs, ys = a.corners()[0::2], a.corners()[1::2]
                want.append((item.image_location, "person", min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)))
            elif a.type == "polygon":
                xs, ys = a.rings[0][0::2], a.rings[0][1::2]
                want.append((item.image_location, "road", min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)))
    assert len(got) == len(want) == 9
    assert_close(got, sorted(want), tol=1e-6)
    seg = [a["segmentation"][0] for a in coco["annotations"] if a["segmentation"]]
    assert_close(sorted(seg), sorted(a.rings[0] for i in ds.items for a in i.annotations if a.type == "polygon"),
                 tol=TOL)


def test_label_studio_converter_exports_our_rotated_boxes_to_yolo_obb(tmp_path: Path) -> None:
    ds = _synthetic(tmp_path, 80, 50)  # not square: rotation must happen in pixels
    annobridge.save(ds, tmp_path / "ours.json", "label-studio")
    (tmp_path / "config.xml").write_text(CONFIG)
    out = tmp_path / "yolo"
    Converter(str(tmp_path / "config.xml"), str(out), download_resources=False).convert_to_yolo(
        str(tmp_path / "ours.json"), str(out), is_dir=False, is_obb=True)
    classes = (out / "classes.txt").read_text().split()
    for item in ds.items:
        rows = [line.split() for line in (out / "labels" / f"{item.reference_id}.txt").read_text().splitlines()]
        assert len(rows) == 3  # box, oriented box, polygon (keypoints, brush and choices are not YOLO rows)
        obb = next(a for a in item.annotations if a.type == "oriented_box")
        row = next(r for r in rows if classes[int(r[0])] == "person")
        want = [v / (80 if k % 2 == 0 else 50) for k, v in enumerate(obb.corners())]
        assert_close([float(v) for v in row[1:]], want, tol=1e-9)


def test_label_studio_converter_decodes_our_brushes_to_the_same_pixels(tmp_path: Path) -> None:
    ds = _synthetic(tmp_path, 23, 17)
    annobridge.save(ds, tmp_path / "ours.json", "label-studio")
    (tmp_path / "config.xml").write_text(CONFIG)
    out = tmp_path / "npy"
    out.mkdir()  # the brush export writes into an existing folder
    Converter(str(tmp_path / "config.xml"), str(out), download_resources=False).convert(
        str(tmp_path / "ours.json"), str(out), "BRUSH_TO_NUMPY", is_dir=False)
    files = sorted(out.glob("*.npy"))
    assert len(files) == 3
    for item in ds.items:
        mask = next(a for a in item.annotations if a.type == "object_mask").to_array()
        task_id = int(item.reference_id.removeprefix("img")) + 1  # written in item order, 1-based
        layer = np.load(next(f for f in files if f.name.startswith(f"task-{task_id}-")))
        assert np.array_equal(layer != 0, mask.astype(bool))


def test_synthetic_dataset_round_trips(tmp_path: Path) -> None:
    ds = _synthetic(tmp_path, 31, 29)
    annobridge.save(ds, tmp_path / "ours.json", "label-studio")
    back = annobridge.load(tmp_path / "ours.json").materialize()
    for want, got in zip(ds.items, back.items):
        assert got.reference_id == want.reference_id and got.image_location == want.image_location
        assert [a.type for a in got.annotations] == [a.type for a in want.annotations]
        for a, b in zip(got.annotations, want.annotations):
            fields = {"box": ("x", "y", "width", "height"), "oriented_box": ("cx", "cy", "width", "height", "rotation"),
                      "polygon": ("rings",), "keypoints": ("keypoints", "names"), "object_mask": ("size", "counts"),
                      "category": ("label",)}[a.type]
            assert_close([getattr(a, f) for f in fields], [getattr(b, f) for f in fields], tol=TOL)


# --------------------------------------------------------------------------- other formats


def test_coco_to_label_studio_and_back_keeps_boxes_polygons_and_masks(tmp_path: Path) -> None:
    src = FIXTURES / "coco/synthetic/instances.json"
    report = annobridge.convert(src, tmp_path / "ls.json", dst_format="label-studio")
    assert report.dropped["keypoints grouping"]  # COCO persons become one point per keypoint, said so
    back = annobridge.convert(tmp_path / "ls.json", tmp_path / "coco.json", dst_format="coco")
    assert back.read["box"] == report.read["box"]
    assert back.read["object_mask"] == report.read["object_mask"]
    rings_in = sum(len(a.rings) for i in annobridge.load(src).items for a in i.annotations if a.type == "polygon")
    assert back.read["polygon"] == rings_in  # every ring survives, as a polygon of its own
    orig = {i.reference_id: i for i in annobridge.load(src).items}
    for item in annobridge.load(tmp_path / "coco.json").items:
        masks_in = sorted(a.to_array().tobytes() for a in orig[item.reference_id].annotations if a.type == "object_mask")
        masks_out = sorted(a.to_array().tobytes() for a in item.annotations if a.type == "object_mask")
        assert masks_in == masks_out


def test_cli_converts_label_studio_to_coco_that_pycocotools_loads(tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    proc = subprocess.run([str(bin_dir / "annobridge"), "convert", str(LS / "all-kinds/tasks.json"),
                           str(tmp_path / "c.json"), "--to", "coco"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "kept 2 Label Studio results with no model kind" in proc.stdout
    coco = COCO(str(tmp_path / "c.json"))
    # ground truth of both annotators: 2 + 1 boxes, the rotated one, polygon, point, brush, unlabelled box;
    # the rotated box reaches COCO as its 4-corner polygon (core/derive.py)
    assert len(coco.getImgIds()) == 2 and len(coco.getAnnIds()) == 8
    assert "converted 1 oriented_box -> polygon" in proc.stdout


def test_losses_are_reported(tmp_path: Path) -> None:
    item = DatasetItem(reference_id="a", width=10, height=10, annotations=[
        PolygonAnnotation(label="p", rings=[[0, 0, 5, 0, 5, 5], [6, 6, 9, 6, 9, 9]]),
        KeypointsAnnotation(label="person", names=["nose", "eye", "ear"], keypoints=[1, 1, 2, 2, 2, 1, 0, 0, 0]),
        LineAnnotation(label="l", vertices=[0, 0, 5, 5]),
    ])
    report = annobridge.save(Dataset.of([item]), tmp_path / "o.json", "label-studio")
    assert report.dropped["polygon rings"] == {
        "label-studio holds one ring per polygon: each further ring is written as a polygon of its own": 1}
    assert sum(report.dropped["keypoint"].values()) == 1
    assert sum(report.dropped["keypoint visibility"].values()) == 1
    assert sum(report.dropped["keypoints grouping"].values()) == 1
    assert report.dropped["line"]
    regions = _json(tmp_path / "o.json")[0]["annotations"][0]["result"]
    assert sorted(r["type"] for r in regions) == ["keypointlabels"] * 2 + ["polygonlabels"] * 2
    assert {tuple(r["value"].get("keypointlabels", [])) for r in regions} == {(), ("nose",), ("eye",)}


# --------------------------------------------------------------------------- sizes, paths and errors


def _task(result: list[dict], data: dict | None = None) -> dict:
    return {"id": 1, "data": data or {"image": "pic.png"}, "annotations": [{"id": 1, "result": result}]}


def _write(tmp_path: Path, doc: object, name: str = "tasks.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


RECT = {"id": "r", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
        "value": {"x": 10, "y": 20, "width": 50, "height": 25, "rotation": 0, "rectanglelabels": ["car"]}}


def test_sizes_come_from_regions_then_images_then_the_option(tmp_path: Path) -> None:
    src = _write(tmp_path, [_task([RECT], {"image": "/data/upload/1/pic.png"})])
    with pytest.raises(ReadError, match=r"#/0/annotations/0/result/0.*no original_width.*image-size"):
        list(annobridge.load(src).items)
    box = next(iter(annobridge.load(src, options={"image-size": "200x100"}).items)).annotations[0]
    assert (box.x, box.y, box.width, box.height) == (20, 20, 100, 25)
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (40, 80)).save(tmp_path / "imgs/pic.png")  # found by its file name under images=DIR
    item = next(iter(annobridge.load(src, options={"images": str(tmp_path / "imgs")}).items))
    assert (item.width, item.height, item.annotations[0].width) == (40, 80, 20)
    # written back without sizes in the regions, as read
    annobridge.save(annobridge.load(src, options={"image-size": "200x100"}), tmp_path / "o.json", "label-studio")
    assert_close(_json(tmp_path / "o.json"), _json(src))


def test_image_paths_that_climb_out_of_the_images_folder_are_not_opened(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (40, 80)).save(tmp_path / "secret.png")  # outside the images folder
    src = _write(tmp_path, [_task([RECT], {"image": "../secret.png"})])
    with pytest.raises(ReadError, match="no original_width"):
        list(annobridge.load(src, options={"images": str(tmp_path / "imgs")}).items)


def test_writing_without_an_image_size_is_a_clear_error(tmp_path: Path) -> None:
    item = DatasetItem(reference_id="a", annotations=[BoxAnnotation(label="c", x=1, y=1, width=2, height=2)])
    with pytest.raises(annobridge.AnnobridgeError, match=r'item "a".*image size.*image-size=WIDTHxHEIGHT'):
        annobridge.save(Dataset.of([item]), tmp_path / "o.json", "label-studio")
    annobridge.save(Dataset.of([item]), tmp_path / "o.json", "label-studio", {"image-size": "10x20"})
    value = _json(tmp_path / "o.json")[0]["annotations"][0]["result"][0]["value"]
    assert_close([value["x"], value["y"], value["width"], value["height"]], [10.0, 5.0, 20.0, 10.0])


@pytest.mark.parametrize(("doc", "message"), [
    ("[{", r"not valid JSON"),
    ('{"a": 1}', r"#: the task has no \"data\" object"),
    ('[{"data": {"image": "x"}, "annotations": {}}]', r"#/0/annotations \(item \"1\"\): annotations is a dict, expected a list"),
    (json.dumps([_task([dict(RECT, original_width=10, original_height=10, value={"x": "1"})])]),
     r"#/0/annotations/0/result/0/value.*missing value.x|value.x"),
    (json.dumps([_task([{"type": "polygonlabels", "original_width": 10, "original_height": 10,
                         "value": {"points": [[1, 2, 3]], "polygonlabels": ["a"]}}])]),
     r"#/0/annotations/0/result/0/value/points \(item \"1\"\): value.points must be a list of \[x, y\]"),
    (json.dumps([_task([{"type": "choices", "value": {"choices": []}}])]),
     r"value.choices must be a non-empty list"),
])
def test_bad_input_is_one_error_naming_file_and_pointer(tmp_path: Path, doc: str, message: str) -> None:
    src = tmp_path / "tasks.json"
    src.write_text(doc)
    with pytest.raises(ReadError, match=message) as info:
        list(annobridge.load(src, "label-studio").items)
    assert str(src) in str(info.value)


def test_bare_predictions_are_refused_with_the_fix() -> None:
    src = LS / "ml-backend-predictions/test_polygon_labels.json"
    with pytest.raises(ReadError, match=r"#/0.*bare prediction: wrap it as a task"):
        annobridge.load(src, "label-studio")


def test_validate_lists_every_bad_task(tmp_path: Path) -> None:
    src = _write(tmp_path, [{"x": 1}, _task([RECT]), {"data": {"image": "y"}, "predictions": 3}])
    problems = annobridge.validate(src, "label-studio")
    assert [p.where for p in problems] == ["#/0", "#/1/annotations/0/result/0", "#/2/predictions"]


def test_coco_files_are_not_taken_for_label_studio() -> None:
    assert get_registry().detect_one(FIXTURES / "coco/synthetic/instances.json").name == "coco"


def test_region_scores_without_a_record_score_and_missing_lists_stay_as_they_were(tmp_path: Path) -> None:
    region = dict(RECT, original_width=10, original_height=10, score=0.5)
    doc = [{"id": 3, "data": {"image": "a.png"},
            "predictions": [{"model_version": "m", "result": [region, dict(region, id="s", score=1.5)]}]}]
    src = _write(tmp_path, doc)
    item = next(iter(annobridge.load(src).items))
    # 1.5 is no confidence (0..1): the prediction has none, and the raw score is kept for writing
    assert [p.confidence for p in item.predictions] == [0.5, None]
    annobridge.save(annobridge.load(src), tmp_path / "o.json", "label-studio")
    assert_close(_json(tmp_path / "o.json"), doc)


def test_an_unreadable_image_is_an_error_naming_the_task(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs/pic.png").write_bytes(b"not a png")
    src = _write(tmp_path, [_task([RECT])])
    with pytest.raises(ReadError, match=r"#/0/data \(item \"1\"\): cannot read the size of image"):
        annobridge.load(src, options={"images": str(tmp_path / "imgs")})


TEXT_CONFIG = ('<View><Text name="text" value="$text"/>'
               '<Choices name="sentiment" toName="text"><Choice value="Positive"/></Choices></View>')


@pytest.mark.parametrize(("case", "config"), [
    ("sdk-export-coco/data.json", "sdk-export-coco/label_config.xml"),
    ("sdk-export-yolo/data.json", "sdk-export-yolo/label_config.xml"),
    ("sdk-export-yolo/data_polygons.json", "sdk-export-yolo/label_config_polygons.xml"),
    ("sdk-csv-history/csv_test_history.json", None),
])
def test_json_min_written_by_label_studio_converter_reads_like_the_full_export(
        case: str, config: str | None, tmp_path: Path) -> None:
    if config is None:
        (tmp_path / "config.xml").write_text(TEXT_CONFIG)
        config_path = tmp_path / "config.xml"
    else:
        config_path = LS / config
    out = tmp_path / "min"
    Converter(str(config_path), str(out), download_resources=False).convert_to_json_min(
        str(LS / case), str(out), is_dir=False)
    src = out / "result.json"
    assert get_registry().detect_one(src).name == "label-studio"
    got = annobridge.load(src, options={"config": str(config_path)}).materialize()
    want = annobridge.load(LS / case).materialize()

    def objects(ds: Dataset) -> list:
        return sorted((i.reference_id, i.width, i.height, a.type, getattr(a, "label", None),
                       [round(float(getattr(a, f)), 9) for f in ("x", "y", "width", "height") if hasattr(a, f)],
                       [round(v, 9) for v in getattr(a, "rings", [[]])[0]])
                      for i in ds.items for a in i.annotations)

    assert objects(got) == objects(want) and objects(got)
    assert [i.image_location for i in got.items] == [i.image_location for i in want.items]
    assert ({len(i.attributes["label_studio"]["annotations"]) for i in got.items}
            == {len(i.attributes["label_studio"]["annotations"]) for i in want.items})  # annotators merged per task


def test_json_min_without_a_config_keeps_a_bare_string_as_data(tmp_path: Path) -> None:
    src = _write(tmp_path, [{"text": "hi", "id": 1, "sentiment": "Positive", "annotator": 1, "annotation_id": 2}])
    item = next(iter(annobridge.load(src).items))
    assert item.annotations == []
    assert item.attributes["label_studio"]["data"] == {"text": "hi", "sentiment": "Positive"}


def test_json_min_errors_point_into_the_min_record(tmp_path: Path) -> None:
    src = _write(tmp_path, [{"image": "a.png", "id": 1, "annotator": 1, "annotation_id": 2,
                             "label": [{"x": 1, "y": 2, "width": 3, "height": 4, "rectanglelabels": ["c"]}]}])
    with pytest.raises(ReadError, match=r"#/0/label/0 \(item \"1\"\): the rectanglelabels region has no original"):
        list(annobridge.load(src).items)


def test_the_written_labeling_config_drives_label_studio_converter(tmp_path: Path) -> None:
    from label_studio_converter.utils import parse_config

    ds = _synthetic(tmp_path, 64, 64)
    annobridge.save(ds, tmp_path / "ours.json", "label-studio", {"write-config": "true"})
    config = tmp_path / "ours.label_config.xml"
    schema = parse_config(config.read_text())
    assert {name: (tag["type"], tag["to_name"], sorted(tag["labels"])) for name, tag in schema.items()} == {
        "label": ("RectangleLabels", ["image"], ["car", "person"]),
        "polygon": ("PolygonLabels", ["image"], ["road"]),
        "keypoint": ("KeyPointLabels", ["image"], ["nose"]),
        "brush": ("BrushLabels", ["image"], ["sky"]),
        "choice": ("Choices", ["image"], ["day"]),
    }
    coco = _converter_coco(tmp_path / "ours.json", config, tmp_path / "conv")
    assert len(coco["annotations"]) == 9 and {c["name"] for c in coco["categories"]} >= {"car", "person", "road"}


def test_the_labeling_config_of_all_kinds_holds_taxonomy_paths_and_multiple_choices(tmp_path: Path) -> None:
    annobridge.convert(LS / "all-kinds/tasks.json", tmp_path / "o.json", dst_format="label-studio",
                       write_options={"write-config": "true"})
    xml = (tmp_path / "o.label_config.xml").read_text()
    assert '<Choices name="weather" toName="image" choice="multiple">' in xml
    assert '<Choice value="vehicle">\n      <Choice value="car" />' in xml
    assert '<Rectangle name="rect" toName="image" />' in xml
