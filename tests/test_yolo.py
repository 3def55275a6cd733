"""The built-in ``yolo`` format: real fixtures, every task drawn by hypothesis, errors, and
datumaro reading what we write.

Coordinates are normalised (divided by the image size on write, multiplied on read), so
values are compared through ``project()``, which rounds to 1e-6 pixels.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import annobridge
from annobridge import ReadError, WriteError
from annobridge.core.formats import Capabilities
from annobridge.core.model import (
    BoxAnnotation,
    Category,
    DatasetHeader,
    DatasetItem,
    KeypointsAnnotation,
    OrientedBoxAnnotation,
    PolygonAnnotation,
)
from annobridge.plugins.yolo.write import join_rings
from tests.conftest import FIXTURES
from tests.projection import project
from tests.strategies import Limits, datasets

YOLO = FIXTURES / "yolo"
DATUMARO = YOLO / "cvat-datumaro"
CAPS = annobridge.core.plugins.get_registry().get("yolo").capabilities


def _png(path: Path, w: int, h: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (w, h), (10, 20, 30)).save(path)
    return str(path)


# --------------------------------------------------------------------------- real fixtures


def test_darknet_layout_with_cvat_data_prefix() -> None:
    ds = annobridge.load(DATUMARO / "yolo")
    [item] = ds.items
    assert ds.format == "yolo" and (item.reference_id, item.width, item.height) == ("1", 15, 10)
    assert item.attributes == {"split": "train"}
    assert [a.label for a in item.annotations] == ["label_2", "label_4"]
    box = item.annotations[0]  # 2 0.133333 0.300000 0.266667 0.200000 on 15 x 10
    assert math.isclose(box.x, 0.133333 * 15 - 0.266667 * 15 / 2, abs_tol=1e-9)
    assert math.isclose(box.height, 2.0, abs_tol=1e-5)


@pytest.mark.parametrize("case", ["yolov8_detection", "yolov8_detection_with_list_of_names"])
def test_names_as_dict_or_list_give_the_same_dataset(case: str) -> None:
    ds = annobridge.load(DATUMARO / case)
    assert [c.name for c in ds.header.categories] == [f"label_{i}" for i in range(10)]
    assert [c.id for c in ds.header.categories] == list(range(10))
    [item] = ds.items
    assert [(a.type, a.label) for a in item.annotations] == [("box", "label_2"), ("box", "label_4")]


def test_segmentation_rows_are_polygons() -> None:
    [item] = annobridge.load(DATUMARO / "yolov8_segmentation").items
    rings = [a.rings[0] for a in item.annotations]
    assert [len(r) // 2 for r in rings] == [3, 5]
    assert rings[0][:4] == pytest.approx([1.5, 1.0, 6.0, 1.0])


def test_pose_with_two_values_per_point() -> None:
    ds = annobridge.load(DATUMARO / "yolov8_pose_two_values_per_point")
    [item] = ds.items
    box, kp = item.annotations
    assert box.type == "box" and kp.type == "keypoints" and box.group_id == kp.group_id
    assert kp.keypoints == pytest.approx([1.5, 2.0, 2, 4.5, 4.0, 2, 7.5, 6.0, 2])
    assert ds.header.categories[0].keypoints == ["0", "1", "2"]
    assert ds.header.info["yolo"]["kpt_shape"] == [3, 2]


def test_labelformat_yaml_with_spaces_and_nc() -> None:
    ds = annobridge.load(YOLO / "labelformat")
    items = sorted(ds.items, key=lambda i: i.reference_id)
    assert [i.reference_id for i in items] == ["a-weird Filename.asdf", "aNother-weird__ filename.with.many.characters"]
    assert [(i.width, i.height) for i in items] == [(640, 416), (640, 428)]
    assert sum(len(i.annotations) for i in items) == 16
    assert ds.header.categories[1].name == "bicycle with space"


def test_label_studio_classes_txt_layout() -> None:
    [item] = annobridge.load(YOLO / "label-studio-sdk").items
    assert (item.width, item.height) == (640, 329)
    assert [a.label for a in item.annotations] == ["bus", "number", "closed_door", "closed_door"]
    assert "split" not in item.attributes


@pytest.mark.parametrize("case", ["basic", "label-studio-sdk", "labelformat", "cvat-datumaro/yolo",
                                  "cvat-datumaro/yolov8_detection", "cvat-datumaro/yolov8_segmentation",
                                  "cvat-datumaro/yolov8_pose_two_values_per_point"])
def test_real_fixtures_round_trip(case: str, tmp_path: Path) -> None:
    src = annobridge.load(YOLO / case).materialize()
    report = annobridge.save(src, tmp_path / "out", "yolo", {"media": "copy"})
    assert report.dropped == {}
    back = annobridge.load(tmp_path / "out")
    assert project(back, CAPS) == project(src, CAPS)
    assert [c.name for c in back.header.categories] == [c.name for c in src.header.categories]
    # splits come back; a flat folder's items land in the default split, train
    assert [i.attributes["split"] for i in back.items] == [i.attributes.get("split", "train") for i in src.items]


def test_ultralytics_yamls_read_with_labels_beside_them(tmp_path: Path) -> None:
    """coco8.yaml (path relative to a datasets folder) and tiger-pose.yaml ([12, 2], flip_idx)."""
    root = tmp_path / "coco8"
    shutil.copy(YOLO / "ultralytics-yaml/coco8.yaml", tmp_path / "coco8.yaml")
    _png(root / "images/train/a.png", 20, 10)
    (root / "labels/train").mkdir(parents=True)
    (root / "labels/train/a.txt").write_text("79 0.5 0.5 0.5 0.5\n")
    (root / "images/val").mkdir()
    [item] = annobridge.load(tmp_path / "coco8.yaml").items
    assert item.annotations[0].label == "toothbrush" and item.attributes["split"] == "train"
    tiger = tmp_path / "tiger"
    shutil.copy(YOLO / "ultralytics-yaml/tiger-pose.yaml", tiger.with_suffix(".yaml"))
    tiger.mkdir()
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    ds = annobridge.load(tiger.with_suffix(".yaml"))
    assert ds.header.info["yolo"]["flip_idx"] == list(range(12))
    assert ds.header.categories[0].keypoints == [str(i) for i in range(12)]
    annobridge.save(ds, tmp_path / "out", "yolo")  # no items: the task and pose keys still come back
    data = yaml.safe_load((tmp_path / "out/data.yaml").read_text())
    assert (data["task"], data["kpt_shape"], data["flip_idx"]) == ("pose", [12, 3], list(range(12)))


# --------------------------------------------------------------------------- hypothesis, per task


TASKS = {
    "detect": (frozenset({"box"}), Limits(predictions=False)),
    "segment": (frozenset({"polygon"}), Limits(predictions=False, polygon_rings=1)),
    "pose": (frozenset({"keypoints"}), Limits(predictions=False, pair_boxes_with_keypoints=True)),
    "obb": (frozenset({"oriented_box"}), Limits(predictions=False)),
}


def _round_trip(dataset: annobridge.Dataset, write: dict, read: dict | None = None) -> None:
    caps = Capabilities(annotation_types=CAPS.annotation_types | {"box"}, prediction_types=CAPS.prediction_types)
    with tempfile.TemporaryDirectory() as tmp:
        for item in dataset.items:
            item.image_location = _png(Path(tmp) / "src" / f"{item.reference_id}.png", item.width, item.height)
        report = annobridge.save(dataset, Path(tmp) / "out", "yolo", write)
        assert report.dropped == {}, report.summary()
        back = annobridge.load(Path(tmp) / "out", "yolo", {"images": str(Path(tmp) / "src"), **(read or {})})
        assert project(back, caps) == project(dataset, caps)


@pytest.mark.parametrize("task", sorted(TASKS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_each_task_round_trips(task: str, data: st.DataObject) -> None:
    kinds, limits = TASKS[task]
    dataset = data.draw(datasets(Capabilities(annotation_types=kinds), "yolo", limits))
    _round_trip(dataset, {"task": task})


@pytest.mark.parametrize("kind", ["box", "polygon", "oriented_box"])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_predictions_round_trip_with_a_confidence_column(kind: str, data: st.DataObject) -> None:
    limits = Limits(ground_truth=False, polygon_rings=1)
    dataset = data.draw(datasets(Capabilities(prediction_types=frozenset({kind})), "yolo", limits))
    task = {"box": "detect", "polygon": "segment", "oriented_box": "obb"}[kind]
    _round_trip(dataset, {"task": task, "predictions": "true"})


# --------------------------------------------------------------------------- writer decisions


def _item(anns: list, ref: str = "a", **kw) -> DatasetItem:
    return DatasetItem(reference_id=ref, image_location=None, width=kw.pop("w", 100), height=kw.pop("h", 50),
                       annotations=anns, **kw)


def test_class_ids_are_dense_and_follow_category_ids(tmp_path: Path) -> None:
    header = DatasetHeader(categories=[Category(id=90, name="zebra"), Category(id=3, name="car")])
    items = [_item([BoxAnnotation(label="zebra", x=0, y=0, width=10, height=10),
                    BoxAnnotation(label="unlisted", x=0, y=0, width=10, height=10),
                    BoxAnnotation(label="car", x=0, y=0, width=10, height=10)])]
    annobridge.save(annobridge.Dataset(header=header, items=items), tmp_path / "y", "yolo")
    data = yaml.safe_load((tmp_path / "y/data.yaml").read_text())
    assert data["names"] == {0: "car", 1: "zebra", 2: "unlisted"} and data["nc"] == 3
    assert [r.split()[0] for r in (tmp_path / "y/labels/train/a.txt").read_text().splitlines()] == ["1", "2", "0"]


def test_splits_media_and_yaml(tmp_path: Path) -> None:
    img = _png(tmp_path / "src/x.png", 8, 4)
    items = [DatasetItem(reference_id="x", image_location=img, attributes={"split": "val"},
                         annotations=[BoxAnnotation(label="car", x=2, y=1, width=4, height=2)]),
             DatasetItem(reference_id="dir/y", image_location=img)]
    annobridge.save(items, tmp_path / "none", "yolo")
    assert not (tmp_path / "none/images").exists()
    assert (tmp_path / "none/labels/val/x.txt").read_text() == "0 0.5 0.5 0.5 0.5\n"
    assert (tmp_path / "none/labels/train/dir/y.txt").read_text() == ""
    data = yaml.safe_load((tmp_path / "none/data.yaml").read_text())
    assert (data["val"], data["train"], data["task"]) == ("images/val", "images/train", "detect")
    annobridge.save(items, tmp_path / "copy", "yolo", {"media": "copy"})
    assert (tmp_path / "copy/images/val/x.png").read_bytes() == Path(img).read_bytes()
    annobridge.save(items, tmp_path / "link", "yolo", {"media": "link"})
    assert (tmp_path / "link/images/train/dir/y.png").is_symlink()
    back = sorted(annobridge.load(tmp_path / "link").items, key=lambda i: i.reference_id)
    assert [(i.reference_id, i.attributes["split"], i.width) for i in back] == [("dir/y", "train", 8), ("x", "val", 8)]


def test_hostile_ids_stay_inside_the_output(tmp_path: Path) -> None:
    items = [_item([BoxAnnotation(label="car", x=0, y=0, width=1, height=1)], ref="../../evil")]
    annobridge.save(items, tmp_path / "y", "yolo")
    written = [p.relative_to(tmp_path / "y").as_posix() for p in (tmp_path / "y").rglob("*.txt")]
    assert written == ["labels/train/%2E%2E/%2E%2E/evil.txt"]
    [back] = annobridge.load(tmp_path / "y", "yolo", {"image-size": "100x50"}).items
    assert back.reference_id == "../../evil"


def test_multi_ring_polygon_is_joined_and_reported(tmp_path: Path) -> None:
    poly = PolygonAnnotation(label="car", rings=[[0, 0, 10, 0, 10, 10], [20, 0, 30, 0, 30, 10]])
    report = annobridge.save([_item([poly])], tmp_path / "y", "yolo")
    assert report.dropped == {"polygon rings": {"a YOLO row holds one ring: the parts were joined into one ring "
                                                "as Ultralytics does (merge_multi_segment)": 1}}
    [back] = annobridge.load(tmp_path / "y", "yolo", {"image-size": "100x50"}).items
    assert back.annotations[0].rings[0] == pytest.approx(join_rings(poly.rings))


def test_join_rings_links_closest_vertices_like_ultralytics() -> None:
    square = [0, 0, 1, 0, 1, 1, 0, 1]
    right = [3, 0, 4, 0, 4, 1, 3, 1]
    # closest pair: square[1] (1, 0) and right[0] (3, 0); each end ring closed on itself
    assert join_rings([square, right]) == [1, 0, 1, 1, 0, 1, 0, 0, 1, 0, 3, 0, 4, 0, 4, 1, 3, 1, 3, 0]
    far = [10, 0, 11, 0, 11, 1]
    joined = join_rings([square, right, far])
    pts = {(joined[i], joined[i + 1]) for i in range(0, len(joined), 2)}
    assert pts == {(x, y) for r in (square, right, far) for x, y in zip(r[::2], r[1::2])}
    # the middle ring is entered at its link to the square and left at its link to the far ring
    assert joined[10:12] == [3, 0] and (4, 0) in {(joined[i], joined[i + 1]) for i in range(10, 20, 2)}
    assert len(joined) // 2 == 5 + 6 + 4  # both end rings closed; the middle ring walked out and back


def test_auto_task_and_reported_kinds(tmp_path: Path) -> None:
    box = BoxAnnotation(label="car", x=0, y=0, width=10, height=10)
    obb = OrientedBoxAnnotation(label="car", cx=50, cy=25, width=10, height=4, rotation=30)
    items = [_item([box], ref="a"), _item([obb, BoxAnnotation(label="car", x=0, y=0, width=10, height=10)], ref="b")]
    report = annobridge.save(items, tmp_path / "y", "yolo")
    assert yaml.safe_load((tmp_path / "y/data.yaml").read_text())["task"] == "obb"
    assert report.dropped == {"box": {"a YOLO obb folder cannot hold box (choose another --option task=)": 2}}
    assert (tmp_path / "y/labels/train/a.txt").read_text() == ""
    [row] = (tmp_path / "y/labels/train/b.txt").read_text().splitlines()
    assert len(row.split()) == 9


def test_pose_box_from_group_or_coco_bbox_and_padded_boxes(tmp_path: Path) -> None:
    names = ["nose", "tail"]
    kp1 = KeypointsAnnotation(label="cat", keypoints=[10, 10, 2, 20, 20, 1], names=names, group_id="g1")
    box1 = BoxAnnotation(label="cat", x=5, y=5, width=30, height=30, group_id="g1")
    kp2 = KeypointsAnnotation(label="cat", keypoints=[0, 0, 0, 40, 20, 2], names=names,
                              attributes={"bbox": [30, 10, 20, 20]})
    lone = BoxAnnotation(label="dog", x=0, y=0, width=50, height=50)
    report = annobridge.save([_item([lone], ref="first"), _item([box1, kp1, kp2], ref="second")],
                             tmp_path / "y", "yolo")
    assert report.dropped == {}
    data = yaml.safe_load((tmp_path / "y/data.yaml").read_text())
    assert data["kpt_shape"] == [2, 3] and data["kpt_names"] == {1: names}  # dog came first
    assert (tmp_path / "y/labels/train/first.txt").read_text().split()[-6:] == ["0"] * 6
    back = {i.reference_id: i for i in annobridge.load(tmp_path / "y", "yolo", {"image-size": "100x50"}).items}
    assert [a.type for a in back["first"].annotations] == ["box"]
    kinds = sorted(a.type for a in back["second"].annotations)
    assert kinds == ["box", "box", "keypoints", "keypoints"]
    assert back["second"].annotations[1].keypoints == pytest.approx([10, 10, 2, 20, 20, 1])


def test_pose_losses_are_reported(tmp_path: Path) -> None:
    header = DatasetHeader(categories=[Category(id=1, name="cat", keypoints=["nose", "tail"])])
    kp_other = KeypointsAnnotation(label="cat", keypoints=[1, 1, 2, 2, 2, 2], names=["a", "b"],
                                   attributes={"bbox": [0, 0, 5, 5]})
    kp_short = KeypointsAnnotation(label="cat", keypoints=[1, 1, 2], names=["nose"], attributes={"bbox": [0, 0, 5, 5]})
    kp_nobox = KeypointsAnnotation(label="cat", keypoints=[1, 1, 2, 2, 2, 2], names=["nose", "tail"])
    poly = PolygonAnnotation(label="cat", vertices=[(0, 0), (1, 0), (1, 1)])
    report = annobridge.save(annobridge.Dataset(header=header, items=[_item([kp_other, kp_short, kp_nobox, poly])]),
                             tmp_path / "y", "yolo")
    assert set(report.dropped) >= {"keypoint names", "keypoints"}
    assert sum(report.dropped["keypoints"].values()) == 1  # kp_short; kp_nobox gets its points' extent
    assert report.converted.get("keypoints -> box") == 1


def test_non_rectangular_obb_quad_is_kept_exactly(tmp_path: Path) -> None:
    root = tmp_path / "d"
    _png(root / "images/train/q.png", 100, 50)
    (root / "labels/train").mkdir(parents=True)
    rect = OrientedBoxAnnotation(label="ship", cx=50, cy=25, width=20, height=10, rotation=30)
    rect_row = " ".join(repr(c / (100 if i % 2 == 0 else 50)) for i, c in enumerate(rect.corners()))
    (root / "labels/train/q.txt").write_text(f"0 0.1 0.1 0.3 0.1 0.35 0.4 0.1 0.3\n0 {rect_row}\n")
    (root / "data.yaml").write_text("train: images/train\nnames: [ship]\ntask: obb\n")
    [item] = annobridge.load(root).items
    quad, box = item.annotations
    assert quad.type == "polygon" and quad.attributes == {"yolo_quad": True}
    assert quad.rings[0] == pytest.approx([10, 5, 30, 5, 35, 20, 10, 15])
    assert box.type == "oriented_box"
    assert (box.cx, box.cy, box.width, box.height, box.rotation) == pytest.approx((50, 25, 20, 10, 30))
    annobridge.save(annobridge.load(root), tmp_path / "out", "yolo", {"media": "copy"})
    assert (tmp_path / "out/labels/train/q.txt").read_text().splitlines()[0] == "0 0.1 0.1 0.3 0.1 0.35 0.4 0.1 0.3"


# --------------------------------------------------------------------------- errors


def _dataset(tmp_path: Path, rows: str, yaml_text: str = "train: images/train\nnames: [car]\n") -> Path:
    root = tmp_path / "d"
    _png(root / "images/train/x.png", 10, 10)
    (root / "labels/train").mkdir(parents=True)
    (root / "labels/train/x.txt").write_text(rows)
    (root / "data.yaml").write_text(yaml_text)
    return root


@pytest.mark.parametrize("rows, message", [
    ("0 0.5 0.5 0.1 0.1\n3 0.5 0.5 0.1 0.1\n", r"x\.txt:line 2 \(item \"x\"\): class 3 is not in names \(0\.\.0\)"),
    ("0 0.5 0.5 0.1\n", r"x\.txt:line 1 \(item \"x\"\): 4 numbers, expected 5"),
    ("0 0.5 zero 0.1 0.1\n", r"x\.txt:line 1 \(item \"x\"\): not a number"),
    ("car 0.5 0.5 0.1 0.1\n", r"class 'car' is not a class id"),
    ("0 0.5 0.5 0.1 0.1 1.5\n", r"x\.txt:line 1 \(item \"x\"\): confidence 1\.5 is outside 0\.\.1"),
    ("0 0.5 0.5 -0.1 0.1\n", r"x\.txt:line 1 \(item \"x\"\): box size -0\.1 x 0\.1 is negative"),
])
def test_bad_rows_name_file_line_and_item(tmp_path: Path, rows: str, message: str) -> None:
    with pytest.raises(ReadError, match=message):
        list(annobridge.load(_dataset(tmp_path, rows)).items)


def test_bad_yaml_is_named(tmp_path: Path) -> None:
    with pytest.raises(ReadError, match=r"data\.yaml:nc: nc is 3 but names lists 1 classes"):  # names win otherwise
        annobridge.load(_dataset(tmp_path, "", "train: images/train\nnames: [car]\nnc: 3\n"), "yolo", {"strict": "true"})
    with pytest.raises(ReadError, match=r"kpt_shape is \[17, 4\], expected \[K, 2\] or \[K, 3\]"):
        annobridge.load(_dataset(tmp_path / "2", "", "train: images/train\nnames: [a]\nkpt_shape: [17, 4]\n"), "yolo")
    with pytest.raises(ReadError, match=r"data\.yaml:kpt_names: kpt_names is not \{class id: \[\.\.\.\]\}"):
        annobridge.load(_dataset(tmp_path / "4", "", "train: images/train\nnames: [a]\nkpt_names: {0: 5}\n"), "yolo")
    root = _dataset(tmp_path / "5", "")
    (root / "labels/train/x.txt").write_bytes(b"0 0.5 0.5 0.1 0.1\xff\n")
    with pytest.raises(ReadError, match=r"x\.txt \(item \"x\"\): not UTF-8 text \(byte 17\)"):
        list(annobridge.load(root).items)
    with pytest.raises(ReadError, match=r"data\.yaml:train: train '\.\./\.\./etc' is not inside .*climbs out"):
        annobridge.load(_dataset(tmp_path / "3", "", "train: ../../etc\nnames: [a]\n"), "yolo")


def test_missing_sizes_are_an_error_naming_the_item(tmp_path: Path) -> None:
    root = _dataset(tmp_path, "0 0.5 0.5 0.1 0.1\n")
    (root / "images/train/x.png").unlink()
    with pytest.raises(ReadError, match=r"x\.txt \(item \"x\"\): no image to take the size from"):
        list(annobridge.load(root).items)
    [item] = annobridge.load(root, "yolo", {"image-size": "20x10"}).items
    assert (item.width, item.height, item.annotations[0].width) == (20, 10, 2.0)
    with pytest.raises(WriteError, match=r"item \"a\": YOLO coordinates are fractions of the image size"):
        annobridge.save([DatasetItem(reference_id="a", annotations=[BoxAnnotation(label="c", x=0, y=0, width=1,
                                                                                   height=1)])], tmp_path / "o", "yolo")


def test_exif_rotation_swaps_the_size(tmp_path: Path) -> None:
    img = Image.new("RGB", (30, 10))
    exif = Image.Exif()
    exif[0x0112] = 6
    (tmp_path / "images").mkdir()
    img.save(tmp_path / "images/r.jpg", exif=exif)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels/r.txt").write_text("0 0.5 0.5 1 1\n")
    [item] = annobridge.load(tmp_path, "yolo").items
    assert (item.width, item.height) == (10, 30)


def test_detect_accepts_yolo_layouts_only(tmp_path: Path) -> None:
    from annobridge.plugins.yolo.read import detect

    for case in ("basic", "labelformat", "label-studio-sdk", "cvat-datumaro/yolo", "cvat-datumaro/yolov8_detection"):
        assert detect(YOLO / case), case
    assert detect(DATUMARO / "yolo/obj.data") and detect(YOLO / "labelformat/example.yaml")
    assert not detect(FIXTURES / "coco/synthetic") and not detect(FIXTURES / "box-csv/basic/boxes.csv")
    assert annobridge.core.plugins.get_registry().detect(YOLO / "basic") == ["yolo"]


# --------------------------------------------------------------------------- independent reader


def test_datumaro_reads_what_we_write(tmp_path: Path) -> None:
    """datumaro's Ultralytics importer (detection) finds the same boxes in pixels."""
    dm = pytest.importorskip("datumaro")
    src = annobridge.load(YOLO / "labelformat").materialize()
    annobridge.save(src, tmp_path / "y", "yolo", {"media": "copy"})
    imported = dm.Dataset.import_from(str(tmp_path / "y"), "yolo")
    labels = imported.categories()[dm.AnnotationType.label]
    ours = {i.reference_id: sorted((a.label, round(a.x, 3), round(a.y, 3), round(a.width, 3), round(a.height, 3))
                                   for a in i.annotations) for i in src.items}
    theirs = {}
    for item in imported:
        theirs[item.id] = sorted((labels[a.label].name, round(a.x, 3), round(a.y, 3), round(a.w, 3), round(a.h, 3))
                                 for a in item.annotations if a.type == dm.AnnotationType.bbox)
    assert {k.split("/")[-1]: v for k, v in theirs.items()} == ours
    assert sum(len(v) for v in theirs.values()) == 16


def test_labelformat_reads_our_segment_folder(tmp_path: Path) -> None:
    """labelformat's YOLOv8 instance-segmentation reader finds the same polygons in pixels."""
    from labelformat.formats.yolov8 import YOLOv8InstanceSegmentationInput

    src = annobridge.load(FIXTURES / "coco/instances/instances.json").materialize()
    for item in src.items:  # the COCO fixture names images that are not shipped: give it real files
        item.image_location = _png(tmp_path / "src" / Path(item.image_location).name, item.width, item.height)
    src.source = None  # the images are the test's own files now, not the fixture folder's
    report = annobridge.save(src, tmp_path / "y", "yolo", {"media": "copy"})
    assert report.dropped == {}
    theirs = YOLOv8InstanceSegmentationInput(input_file=tmp_path / "y/data.yaml", input_split="train")
    got = {Path(lab.image.filename).stem: sorted(
        (o.category.name, tuple(round(c, 6) for p in o.segmentation.polygons[0] for c in p)) for o in lab.objects)
        for lab in theirs.get_labels()}
    want = {i.reference_id: sorted((a.label, tuple(round(c, 6) for c in a.rings[0])) for a in i.annotations)
            for i in src.items}
    assert got == want and sum(len(v) for v in got.values()) == 3


def test_options_are_checked() -> None:
    from annobridge import FormatError

    with pytest.raises(FormatError, match="image-size must be WIDTHxHEIGHT in pixels, e.g. 640x480, got '640'"):
        annobridge.load(YOLO / "basic", "yolo", {"image-size": "640"})


def test_a_write_holds_only_its_task_so_the_engine_reports_the_rest(tmp_path: Path) -> None:
    """``capabilities_for``: task=detect holds boxes; predictions=true holds predictions only."""
    box = BoxAnnotation(label="car", x=0, y=0, width=10, height=10)
    poly = PolygonAnnotation(label="car", vertices=[(0, 0), (5, 0), (5, 5)])
    pred = BoxAnnotation(label="car", x=1, y=1, width=5, height=5, confidence=0.25)
    items = [DatasetItem(reference_id="a", width=100, height=50, annotations=[box, poly], predictions=[pred])]
    report = annobridge.save(items, tmp_path / "det", "yolo", {"task": "detect"})
    assert report.dropped == {"prediction:box": {"yolo cannot hold box predictions": 1}}
    assert report.converted == {"polygon -> box": 1}  # the engine derives what detect holds
    report = annobridge.save(items, tmp_path / "pred", "yolo", {"predictions": "true"})
    assert report.dropped == {"box": {"yolo cannot hold box ground truth": 1},
                              "polygon": {"yolo cannot hold polygon ground truth": 1}}
    assert (tmp_path / "pred/labels/train/a.txt").read_text() == "0 0.035 0.07 0.05 0.1 0.25\n"
    [back] = annobridge.load(tmp_path / "pred", "yolo", {"image-size": "100x50"}).items
    assert back.annotations == [] and back.predictions[0].confidence == 0.25


def test_media_outside_the_source_is_not_copied_and_reported(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _png(src / "images/train/in.png", 8, 4)
    (src / "labels/train").mkdir(parents=True)
    (src / "labels/train/in.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (src / "data.yaml").write_text("train: images/train\nnames: [car]\n")
    outside = _png(tmp_path / "elsewhere.png", 8, 4)
    ds = annobridge.load(src)
    ds.items.append(DatasetItem(reference_id="out", image_location=outside, width=8, height=4))
    report = annobridge.save(ds, tmp_path / "y", "yolo", {"media": "copy"})
    assert report.dropped == {"image file": {f"outside the source folder {str(src)!r}; not copied into images/train/": 1}}
    assert sorted(p.name for p in (tmp_path / "y/images/train").iterdir()) == ["in.png"]
    assert (tmp_path / "y/labels/train/out.txt").exists()


def test_named_pose_task_pads_boxes_written_before_the_first_keypoints(tmp_path: Path) -> None:
    first = _item([BoxAnnotation(label="dog", x=0, y=0, width=50, height=50)], ref="first")
    kp = KeypointsAnnotation(label="cat", keypoints=[10, 10, 2], names=["nose"], attributes={"bbox": [0, 0, 20, 20]})
    annobridge.save([first, _item([kp], ref="second")], tmp_path / "y", "yolo", {"task": "pose"})
    assert (tmp_path / "y/labels/train/first.txt").read_text().split()[5:] == ["0", "0", "0"]
    assert len((tmp_path / "y/labels/train/second.txt").read_text().split()) == 8
