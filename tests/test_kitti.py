"""KITTI object and tracking formats: row round trips, 3D geometry, point clouds, errors."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import annobridge
from annobridge.converters import engine
from annobridge.core import camera
from annobridge.core.errors import ReadError, WriteError
from annobridge.core.model import (
    BoxAnnotation,
    CuboidAnnotation,
    Dataset,
    DatasetHeader,
    DatasetItem,
    Point3D,
)
from annobridge.core.pointclouds import load_points
from annobridge.plugins.kitti import calib as kitti_calib
from annobridge.plugins.kitti import parse_row
from annobridge.plugins.kitti.common import (
    OBJECT_STYLE,
    TRACKING_STYLE,
    Style,
    _fixed,
    _sentinel_tokens,
    render_numbers,
)
from tests import kitti_synth
from tests.projection import assert_close

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "fixtures" / "kitti"
TRACK = ROOT / "fixtures" / "kitti-tracking" / "generated"
REAL_PROJECTION_TOLERANCE_PX = 10.0  # measured on the real labels below: max 9.56 px (a pedestrian)


def _texts(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.txt"))}


def _convert(src: Path, dst: Path, fmt: str = "kitti", **kw) -> annobridge.ConversionReport:
    return engine.convert(src, dst, src_format=fmt, dst_format=fmt, **kw)


# --------------------------------------------------------------------------- round trips of real files


@pytest.mark.parametrize("case,label_sub,out_sub", [
    ("openpcdet-sample", "training/label_2", "training/label_2"),
    ("datumaro", "training/label_2", "training/label_2"),
    ("mmdet3d-results", "", "training/results"),
    ("labelformat", "labels", "training/label_2"),  # labels/ + images/: the image is copied too
])
def test_real_label_files_round_trip_byte_for_byte(tmp_path: Path, case: str, label_sub: str, out_sub: str) -> None:
    src = FIX / case
    report = _convert(src, tmp_path / "out")
    assert report.dropped == {}, report.summary()
    original = _texts(src / label_sub) if label_sub else {p.name: p.read_bytes() for p in src.glob("*.txt")}
    written = _texts(tmp_path / "out" / out_sub)
    assert written == original


def test_calibration_round_trips_and_images_are_copied(tmp_path: Path) -> None:
    _convert(FIX / "openpcdet-sample", tmp_path / "out")
    assert _texts(tmp_path / "out/training/calib") == _texts(FIX / "openpcdet-sample/training/calib")
    assert (tmp_path / "out/training/image_2/000002.png").read_bytes() == \
        (FIX / "openpcdet-sample/training/image_2/000002.png").read_bytes()


def test_class_names_with_spaces_and_sentinels_are_kept() -> None:
    ds = annobridge.load(FIX / "labelformat/labels", "kitti")
    (item,) = list(ds.items)
    assert item.reference_id == "a-weird Filename.asdf"
    labels = [a.label for a in item.annotations]
    assert labels[6] == "bicycle with space" and len(labels) == 8
    assert all(a.type == "box" for a in item.annotations)  # sentinel 3D fields: no cuboid
    a = item.annotations[0]
    assert a.attributes["truncated"] == -1 and a.attributes["occluded"] == -1 and a.attributes["alpha"] == -10
    assert (a.x, a.y, a.width, a.height) == (540.0, 295.0, 23.0, 18.0)


def test_dont_care_rows_are_boxes_marked_dont_care() -> None:
    ds = annobridge.load(FIX / "openpcdet-sample", "kitti")
    item = next(i for i in ds.items if i.reference_id == "000003")
    boxes = [a for a in item.annotations if a.type == "box"]
    cuboids = [a for a in item.annotations if a.type == "cuboid"]
    assert [b.label for b in boxes] == ["Car", "DontCare", "DontCare"]
    assert [b.attributes.get("dont_care", False) for b in boxes] == [False, True, True]
    assert len(cuboids) == 1 and cuboids[0].group_id == boxes[0].group_id
    assert (boxes[1].x, boxes[1].y) == (5.0, 229.89)
    assert "kitti_text" not in boxes[0].attributes  # official formatting needs no verbatim text


def test_empty_label_file_round_trips(tmp_path: Path) -> None:
    src = tmp_path / "src/training/label_2"
    src.mkdir(parents=True)
    (src / "000000.txt").write_text("")
    (src / "000001.txt").write_text("Car 0.00 0 1.00 1.00 2.00 3.00 4.00 -1 -1 -1 -1000 -1000 -1000 -10\n")
    _convert(tmp_path / "src", tmp_path / "out")
    assert _texts(tmp_path / "out/training/label_2") == _texts(src)


def test_predictions_keep_raw_scores_and_clip_confidence(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "000000.txt").write_text("Car -1 -1 0.10 1.00 2.00 30.00 40.00 -1 -1 -1 -1000 -1000 -1000 -10 7.25\n"
                                    "Car -1 -1 0.10 1.00 2.00 30.00 40.00 -1 -1 -1 -1000 -1000 -1000 -10 -3\n")
    ds = annobridge.load(src, "kitti").materialize()
    (item,) = ds.items
    assert item.annotations == []
    assert [p.confidence for p in item.predictions] == [1.0, 0.0]
    assert [p.attributes["score"] for p in item.predictions] == [7.25, -3]
    annobridge.save(ds, tmp_path / "out", "kitti")
    assert (tmp_path / "out/training/results/000000.txt").read_text() == (src / "000000.txt").read_text()
    assert not (tmp_path / "out/training/label_2").exists()
    # an edited confidence wins over the stale raw score
    item.predictions[0].confidence = 0.5
    annobridge.save(ds, tmp_path / "out2", "kitti")
    first = (tmp_path / "out2/training/results/000000.txt").read_text().splitlines()[0]
    assert first.endswith(" 0.5000")


# --------------------------------------------------------------------------- 3D geometry


def _reference_lidar(calib: camera.Calib, x: float, y: float, z: float, h: float, ry: float):
    """Independent reference: solve T·X = X_rect with numpy, heading rotated and projected."""
    r0 = np.eye(4)
    r0[:3, :3] = np.array(calib["R0_rect"]).reshape(3, 3)
    tr = np.eye(4)
    tr[:3, :] = np.array(calib["Tr_velo_to_cam"]).reshape(3, 4)
    t = r0 @ tr
    centre = np.linalg.solve(t, np.array([x, y - h / 2, z, 1.0]))[:3]
    tip = np.linalg.solve(t, np.array([x + math.cos(ry), y - h / 2, z - math.sin(ry), 1.0]))[:3]
    v = tip - centre
    return centre, math.atan2(v[1], v[0])


def _check_geometry(src: Path, fmt: str, label_files: dict[str, Path], calib_of) -> int:
    """Every cuboid read from ``src`` against its label row; returns the number checked."""
    ds = annobridge.load(src, fmt)
    checked = 0
    rows: dict[str, list] = {}
    for key, path in label_files.items():
        rows[key] = [parse_row(line, path, n, prefix=2 if fmt == "kitti-tracking" else 0)
                     for n, line in enumerate(path.read_text().splitlines(), start=1) if line.strip()]
    for item in ds.items:
        for c in item.annotations + item.predictions:
            if c.type != "cuboid":
                continue
            key, idx = c.group_id.rsplit("-", 1)
            if fmt == "kitti-tracking":
                seq, frame = key.split("-")
                row = [r for r in rows[seq] if int(r.prefix[0]) == int(frame)][int(idx)]
                calib = calib_of(seq)
            else:
                row = rows[key][int(idx)]
                calib = calib_of(key)
            h, w, l, x, y, z, ry = row.values[7:14]
            assert (c.dimensions.x, c.dimensions.y, c.dimensions.z) == (l, w, h)
            if calib is None:
                assert c.frame == "camera"
                assert (c.position.x, c.position.y, c.position.z) == (x, y - h / 2, z)
                assert c.yaw == -ry
            else:
                assert c.frame == "lidar"
                centre, yaw = _reference_lidar(calib, x, y, z, h, ry)
                assert np.abs(np.array([c.position.x, c.position.y, c.position.z]) - centre).max() < 1e-6
                assert abs(camera.wrap_angle(c.yaw - yaw)) < 1e-6
            checked += 1
    return checked


def test_geometry_of_every_real_cuboid_with_calibration() -> None:
    base = FIX / "openpcdet-sample/training"
    labels = {p.stem: p for p in (base / "label_2").glob("*.txt")}
    n = _check_geometry(FIX / "openpcdet-sample", "kitti", labels,
                        lambda stem: kitti_calib.read_calib(base / "calib" / f"{stem}.txt"))
    assert n == 4


def test_geometry_of_every_prediction_cuboid_without_calibration() -> None:
    labels = {p.stem: p for p in (FIX / "mmdet3d-results").glob("*.txt")}
    assert _check_geometry(FIX / "mmdet3d-results", "kitti", labels, lambda stem: None) == 21


def test_geometry_of_every_tracking_cuboid() -> None:
    base = TRACK / "training"
    labels = {"0000": base / "label_02/0000.txt"}
    n = _check_geometry(TRACK, "kitti-tracking", labels,
                        lambda seq: kitti_calib.read_calib(base / "calib" / f"{seq}.txt"))
    assert n == 6


def test_geometry_of_every_generated_cuboid(tmp_path: Path) -> None:
    kitti_synth.make_object_root(tmp_path / "k", frames=4, objects=5)
    base = tmp_path / "k/training"
    labels = {p.stem: p for p in (base / "label_2").glob("*.txt")}
    assert _check_geometry(tmp_path / "k", "kitti", labels,
                           lambda stem: kitti_calib.read_calib(base / "calib" / f"{stem}.txt")) == 20


def test_projected_corners_reproduce_real_2d_boxes_within_measured_tolerance() -> None:
    base = FIX / "openpcdet-sample/training"
    worst = 0.0
    for path in sorted((base / "label_2").glob("*.txt")):
        t = camera.Transform(kitti_calib.read_calib(base / "calib" / path.name))
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            row = parse_row(line, path, n)
            if row.name == "DontCare" or row.values[0] > 0:
                continue
            h, w, l, x, y, z, ry = row.values[7:14]
            got = camera.box_2d(t.P2, camera.corners_camera((x, y, z), h, w, l, ry), 1242, 375)
            worst = max(worst, float(np.abs(np.array(got) - np.array(row.values[3:7])).max()))
    assert 0 < worst <= REAL_PROJECTION_TOLERANCE_PX


def test_projected_corners_reproduce_generated_2d_boxes_exactly(tmp_path: Path) -> None:
    kitti_synth.make_object_root(tmp_path / "k", frames=3, objects=6)
    base = tmp_path / "k/training"
    for path in sorted((base / "label_2").glob("*.txt")):
        t = camera.Transform(kitti_calib.read_calib(base / "calib" / path.name))
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            row = parse_row(line, path, n)
            if row.name == "DontCare":
                continue
            h, w, l, x, y, z, ry = row.values[7:14]
            got = camera.box_2d(t.P2, camera.corners_camera((x, y, z), h, w, l, ry), 1242, 375)
            assert np.abs(np.array(got) - np.array(row.values[3:7])).max() <= 0.005 + 1e-9


def _nucleus_like(ds: Dataset) -> list[DatasetItem]:
    """What a Nucleus reader gives back: LiDAR cuboids, no KITTI attributes, no 2D boxes on them."""
    out = []
    for item in ds.items:
        anns = [a.model_copy(update={"attributes": {}, "group_id": None}) for a in item.annotations
                if a.type == "cuboid"]
        out.append(item.model_copy(update={"annotations": anns, "predictions": [],
                                           "attributes": {k: v for k, v in item.attributes.items()
                                                          if k != "kitti_frame"}}))
    return out


def test_writing_lidar_cuboids_computes_location_rotation_alpha_and_box(tmp_path: Path) -> None:
    kitti_synth.make_object_root(tmp_path / "k", frames=3, objects=4, velodyne=False)
    ds = annobridge.load(tmp_path / "k", "kitti").materialize()
    items = _nucleus_like(ds)
    annobridge.save(Dataset.of(items), tmp_path / "out", "kitti")
    for path in sorted((tmp_path / "k/training/label_2").glob("*.txt")):
        orig = [parse_row(l, path, 1) for l in path.read_text().splitlines()]
        orig = [r for r in orig if r.name != "DontCare"]
        new_path = tmp_path / "out/training/label_2" / path.name
        new = [parse_row(l, new_path, 1) for l in new_path.read_text().splitlines()]
        assert [r.name for r in new] == [r.name for r in orig]
        for a, b in zip(new, orig):
            assert a.tokens[7:14] == b.tokens[7:14]  # h w l x y z ry to the file's 2 decimals
            assert abs(a.values[2] - b.values[2]) <= 0.0051  # alpha recomputed from location and ry
            assert np.abs(np.array(a.values[3:7]) - np.array(b.values[3:7])).max() <= 0.0051  # projected box
            assert a.tokens[0:2] == ["-1", "-1"]  # truncated/occluded unknown: sentinels


def test_writing_lidar_cuboids_without_calibration_names_the_item(tmp_path: Path) -> None:
    item = DatasetItem(reference_id="frame7", pointcloud_location=None, annotations=[
        CuboidAnnotation(label="Car", position=Point3D(x=10, y=0, z=-1), dimensions=Point3D(x=4, y=2, z=1.5),
                         yaw=0.3, frame="lidar")])
    with pytest.raises(WriteError, match=r'item "frame7".*needs calibration.*--option calib'):
        annobridge.save(Dataset.of([item]), tmp_path / "out", "kitti")
    assert not (tmp_path / "out").exists()


def test_calib_option_file_and_camera_params_supply_calibration(tmp_path: Path) -> None:
    kitti_synth.make_object_root(tmp_path / "k", frames=1, objects=3, velodyne=False)
    ds = annobridge.load(tmp_path / "k", "kitti").materialize()
    expected = (tmp_path / "k/training/label_2/000000.txt").read_text().splitlines()
    # 1. calib=FILE
    bare = [i.model_copy(update={"attributes": {}, "metadata": {}}) for i in _nucleus_like(ds)]
    annobridge.save(Dataset.of(bare), tmp_path / "a", "kitti",
                    options={"calib": str(tmp_path / "k/training/calib/000000.txt")})
    # 2. Nucleus camera_params only (R0_rect = I, P2 = [K | 0] derived from the pose)
    cam_only = [i.model_copy(update={"attributes": {}}) for i in _nucleus_like(ds)]
    assert "camera_params" in cam_only[0].metadata
    annobridge.save(Dataset.of(cam_only), tmp_path / "b", "kitti")
    for out in ("a", "b"):
        got = (tmp_path / out / "training/label_2/000000.txt").read_text().splitlines()
        assert len(got) == len(expected) == 3
        for g, e in zip(got, expected):
            gv, ev = np.array(g.split()[4:15], float), np.array(e.split()[4:15], float)
            diff = np.abs(gv - ev)
            assert diff[:4].max() <= 0.0100001  # the 2D box
            assert diff[4:7].max() <= 0.0100001 and diff[10] <= 0.0100001  # h w l, rotation_y
            # camera_params know camera 2 only: its frame replaces rectified camera 0, ~6 cm apart
            assert diff[7:10].max() <= (0.0100001 if out == "a" else 0.07), (out, g, e)


def test_camera_params_project_like_the_calibration() -> None:
    calib = kitti_calib.read_calib(FIX / "openpcdet-sample/training/calib/000002.txt")
    t = camera.Transform(calib)
    cp = camera.camera_params(t)
    rebuilt = camera.Transform(camera.calib_from_camera_params(cp))
    pts = np.array([[10.0, 2.0, -1.0, 1.0], [30.0, -5.0, 0.5, 1.0], [6.0, 0.0, -1.5, 1.0]])
    a = (t.P2 @ t.velo_to_rect @ pts.T)
    b = (rebuilt.P2 @ rebuilt.velo_to_rect @ pts.T)
    assert np.abs(a[:2] / a[2] - b[:2] / b[2]).max() < 0.05  # pixels; R0_rect is not exactly orthonormal


def test_camera_to_lidar_and_back_is_exact() -> None:
    rng = np.random.default_rng(5)
    for seed in range(5):
        t = camera.Transform(kitti_synth.synthetic_calib(seed))
        for _ in range(50):
            loc = tuple(rng.uniform(-20, 20, 3))
            h, ry = rng.uniform(0.5, 3), rng.uniform(-math.pi, math.pi)
            centre, yaw = camera.camera_to_lidar(t, loc, h, ry)
            loc2, ry2 = camera.lidar_to_camera(t, centre, h, yaw)
            assert np.abs(np.array(loc2) - np.array(loc)).max() < 1e-9
            assert abs(camera.wrap_angle(ry2 - ry)) < 1e-9


# --------------------------------------------------------------------------- point clouds and scenes


def test_velodyne_frames_become_lidar_scenes(tmp_path: Path) -> None:
    kitti_synth.make_object_root(tmp_path / "k", frames=2, objects=3, points=50)
    ds = annobridge.load(tmp_path / "k", "kitti")
    items = list(ds.items)
    assert [i.reference_id for i in items] == ["000000-lidar", "000000", "000001-lidar", "000001"]
    pc, img = items[0], items[1]
    assert pc.scene.scene_reference_id == img.scene.scene_reference_id == "000000"
    assert (pc.scene.sensor, img.scene.sensor) == ("lidar", "image_2")
    assert set(ds.header.scenes) == {"000000", "000001"}
    assert [a.type for a in pc.annotations] == ["cuboid"] * 3
    assert all(a.frame == "lidar" for a in pc.annotations)
    assert [a.type for a in img.annotations] == ["box"] * 3
    assert [a.group_id for a in pc.annotations] == [a.group_id for a in img.annotations]
    assert (img.width, img.height) == (1242, 375)
    cp = img.metadata["camera_params"]
    assert set(cp) == {"position", "heading", "fx", "fy", "cx", "cy"}
    pts = load_points(pc.pointcloud_location)
    assert pts.shape == (50, 4) and pts.dtype == np.float32
    assert img.attributes["kitti_imagesets"] == ["train"]


def test_velodyne_layout_round_trips(tmp_path: Path) -> None:
    kitti_synth.make_object_root(tmp_path / "k", frames=3, objects=3, points=20)
    report = _convert(tmp_path / "k", tmp_path / "out")
    assert report.dropped == {}, report.summary()
    for sub in ("training/label_2", "training/calib", "ImageSets"):
        assert _texts(tmp_path / "out" / sub) == _texts(tmp_path / "k" / sub), sub
    for f in (tmp_path / "k/training/velodyne").iterdir():
        assert (tmp_path / "out/training/velodyne" / f.name).read_bytes() == f.read_bytes()


def test_velodyne_false_keeps_cuboids_on_the_image_item(tmp_path: Path) -> None:
    kitti_synth.make_object_root(tmp_path / "k", frames=1, objects=2, points=20)
    (item,) = list(annobridge.load(tmp_path / "k", "kitti", options={"velodyne": "false"}).items)
    assert item.scene is None and sorted(a.type for a in item.annotations) == ["box", "box", "cuboid", "cuboid"]


def test_nucleus_json_cloud_is_written_as_bin(tmp_path: Path) -> None:
    pts = np.array([[1.5, -2.25, 0.5, 0.25], [3.0, 4.0, -1.0, 0.75]], dtype=np.float32)
    from annobridge.core.pointclouds import write_points_json

    write_points_json(pts, tmp_path / "pc.json")
    item = DatasetItem(reference_id="f0", pointcloud_location=str(tmp_path / "pc.json"))
    annobridge.save(Dataset.of([item]), tmp_path / "out", "kitti")
    assert np.array_equal(np.fromfile(tmp_path / "out/training/velodyne/f0.bin", dtype="<f4").reshape(-1, 4), pts)


# --------------------------------------------------------------------------- tracking


def test_tracking_reads_sequences_as_scenes_with_tracks() -> None:
    ds = annobridge.load(TRACK, "kitti-tracking")
    items = list(ds.items)
    assert list(ds.header.scenes) == ["0000"]
    images = [i for i in items if i.pointcloud_location is None]
    assert [i.reference_id for i in images] == [f"0000-{f:06d}" for f in range(4)]  # frame 3: image, no rows
    assert [i.scene.index for i in images] == [0, 1, 2, 3]
    f1 = images[1]
    boxes = [a for a in f1.annotations if a.type == "box"]
    assert [b.track_reference_id for b in boxes] == ["0000:0", "0000:1", None]
    assert boxes[2].label == "DontCare" and boxes[2].attributes["track_id"] == -1
    # both readme variants of `truncated`: integer levels and floats, kept as written
    truncs = [a.attributes["truncated"] for i in images for a in i.annotations if a.type == "box" and a.label != "DontCare"]
    assert truncs == [0, 0.0, 0, 0.25, 1, 0.5]
    assert isinstance(truncs[0], int) and isinstance(truncs[1], float)
    clouds = [i for i in items if i.pointcloud_location is not None]
    assert [c.reference_id for c in clouds] == ["0000-000000-lidar", "0000-000001-lidar"]
    assert all(a.track_reference_id for c in clouds for a in c.annotations)


def test_tracking_round_trip_is_byte_identical(tmp_path: Path) -> None:
    report = _convert(TRACK, tmp_path / "out", "kitti-tracking")
    assert report.dropped == {}, report.summary()
    assert (tmp_path / "out/training/label_02/0000.txt").read_bytes() == \
        (TRACK / "training/label_02/0000.txt").read_bytes()
    # the tracking calib spellings (R_rect, Tr_velo_cam without colon) are read; written as object keys
    text = (tmp_path / "out/training/calib/0000.txt").read_text()
    assert "R0_rect:" in text and "Tr_velo_to_cam:" in text


def test_detection_tells_object_and_tracking_layouts_apart(registry) -> None:
    assert registry.detect(TRACK) == ["kitti-tracking"]
    assert registry.detect(FIX / "openpcdet-sample") == ["kitti"]
    assert registry.detect(FIX / "openpcdet-sample/training") == ["kitti"]


# --------------------------------------------------------------------------- cross-format and options


def test_2d_only_boxes_become_rows_with_3d_sentinels_and_unknown_attributes_are_reported(tmp_path: Path) -> None:
    item = DatasetItem(reference_id="img1", width=640, height=480, annotations=[
        BoxAnnotation(label="person", x=10.5, y=20, width=30, height=40.25, attributes={"iscrowd": 0, "area": 99.0, "source": "x"}),
    ])
    report = annobridge.save(Dataset.of([item]), tmp_path / "out", "kitti")
    assert (tmp_path / "out/training/label_2/img1.txt").read_text() == \
        "person -1 -1 -10 10.50 20.00 40.50 60.25 -1 -1 -1 -1000 -1000 -1000 -10\n"
    assert set(report.dropped) == {"attribute:source", "attribute:area"}  # iscrowd 0 says nothing


def test_label_map_json_and_text(tmp_path: Path) -> None:
    (tmp_path / "map.json").write_text(json.dumps({"Car": "car", "DontCare": None}))
    ctx = annobridge.Context()
    ds = engine.read_dataset(FIX / "openpcdet-sample", "kitti", {"label_map": str(tmp_path / "map.json")}, context=ctx)
    labels = [a.label for i in ds.items for a in i.annotations]
    assert "Car" not in labels and labels.count("car") == 4 and "DontCare" not in labels
    assert ctx.report.dropped["box"] == {"label map drops class 'DontCare'": 2}
    assert [c.name for c in ds.header.categories] == ["Pedestrian", "Misc", "car"]
    (tmp_path / "map.txt").write_text("car\tAuto mobile\nPedestrian Person\n")
    item = DatasetItem(reference_id="x", annotations=[BoxAnnotation(label="car", x=0, y=0, width=1, height=1)])
    annobridge.save(Dataset.of([item]), tmp_path / "o", "kitti", options={"label_map": str(tmp_path / "map.txt")})
    assert (tmp_path / "o/training/label_2/x.txt").read_text().startswith("Auto mobile -1 -1 -10 0.00 ")


def test_label_map_report_counts_what_was_read_and_written(tmp_path: Path) -> None:
    """6 rows (1 Pedestrian with a valid 3D box): a dropped class counts as read and dropped,
    box and cuboid alike, so written = read - dropped is what the output holds."""
    (tmp_path / "map.json").write_text(json.dumps({"Car": "vehicle", "Pedestrian": None}))
    rows = [line.split() for p in sorted((FIX / "openpcdet-sample/training/label_2").glob("*.txt"))
            for line in p.read_text().splitlines() if line.strip()]
    report = annobridge.convert(FIX / "openpcdet-sample", tmp_path / "o.jsonl", dst_format="jsonl",
                                read_options={"label_map": str(tmp_path / "map.json")})
    assert report.read["box"] == len(rows) == 6
    assert report.dropped["box"] == report.dropped["cuboid"] == {"label map drops class 'Pedestrian'": 1}
    out = annobridge.load(tmp_path / "o.jsonl", "jsonl")
    written = Counter(a.type for i in out.items for a in i.annotations)
    assert report.written["box"] == written["box"] == 5
    assert report.written["cuboid"] == written["cuboid"] == report.read["cuboid"] - 1


def test_cli_subprocess_converts_and_reports(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("annobridge")
    out = subprocess.run([str(exe), "convert", str(FIX / "openpcdet-sample"), str(tmp_path / "o"),
                          "--to", "kitti", "--json"], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    assert report["source_format"] == "kitti" and report["read"] == {"box": 6, "cuboid": 4}
    bad = subprocess.run([str(exe), "convert", str(TRACK), str(tmp_path / "t"), "--from",
                          "kitti-tracking", "--to", "kitti"], capture_output=True, text=True)
    assert bad.returncode == 0, bad.stderr
    assert "dropped 1 x scene" in bad.stdout


# --------------------------------------------------------------------------- bad input


def _label_root(tmp_path: Path, text: str, calib: str | None = None) -> Path:
    root = tmp_path / "bad/training"
    (root / "label_2").mkdir(parents=True)
    (root / "label_2/000000.txt").write_text(text)
    if calib is not None:
        (root / "calib").mkdir()
        (root / "calib/000000.txt").write_text(calib)
    return tmp_path / "bad"


GOOD = "Car 0.00 0 1.55 614.24 181.78 727.31 284.77 1.57 1.73 4.15 1.00 1.75 13.22 1.62\n"


@pytest.mark.parametrize("text,pattern", [
    (GOOD + "Car 0.00 0 1.55 614.24 181.78 727.31 284.77\n", r"000000\.txt:line 2: row has 8 columns, expected 15"),
    (GOOD + "Car 0.00 0 x 614.24 181.78 727.31 284.77 1.57 1.73 4.15 1.00 1.75 13.22 1.62\n",
     r"000000\.txt:line 2: column 4 \(alpha\) is not a number: 'x'"),
    ("Car 0.00 0 1.55 614.24 181.78 727.31 284.77 1.57 -1.73 4.15 1.00 1.75 13.22 1.62\n",
     r"000000\.txt:line 1: negative dimension: height 1.57, width -1.73"),
    ("Car 0.00 0 1.55 614.24 181.78 600.00 284.77 -1 -1 -1 -1000 -1000 -1000 -10\n",
     r"000000\.txt:line 1: box has right < left"),
    (GOOD + GOOD.strip() + " 0.5\n", r"000000\.txt:line 2: row is with a score \(prediction\) but line 1"),
    ("0 1 Car 0.00 0 1.55 614.24 181.78 727.31 284.77 1.57 1.73 4.15 1.00 1.75 13.22 1.62\n",
     r"000000\.txt:line 1: column 1 \(type\) is the number '0'"),
])
def test_bad_label_rows_name_file_and_line(tmp_path: Path, text: str, pattern: str) -> None:
    root = _label_root(tmp_path, text)
    with pytest.raises(ReadError, match=pattern):
        list(annobridge.load(root, "kitti", options={"frame": "camera", "strict": "true"}).items)
    if "with a score" not in pattern:  # the only one kept by default (with a warning): tests/test_refusals.py
        with pytest.raises(ReadError, match=pattern):
            list(annobridge.load(root, "kitti", options={"frame": "camera"}).items)


def test_validate_lists_every_bad_row(tmp_path: Path) -> None:
    root = _label_root(tmp_path, "Car 1 2\n" + GOOD + "Car 0 0 0 0 0 z 1 -1 -1 -1 -1000 -1000 -1000 -10\n")
    errors = annobridge.validate(root, "kitti", options={"frame": "camera"})
    assert [e.where for e in errors] == ["line 1", "line 3"]


def test_calib_without_keys_is_an_error(tmp_path: Path) -> None:
    numbers = " ".join(["1.0"] * 12)
    root = _label_root(tmp_path, GOOD, calib=(numbers + "\n") * 7)
    with pytest.raises(ReadError, match=r"calib/000000\.txt:line 1: line has no key"):
        list(annobridge.load(root, "kitti").items)


def test_calib_with_wrong_value_count_is_an_error(tmp_path: Path) -> None:
    root = _label_root(tmp_path, GOOD, calib="P2: 1 2 3\n")
    with pytest.raises(ReadError, match=r"calib/000000\.txt:line 1: P2 has 3 values, expected 12"):
        list(annobridge.load(root, "kitti").items)


def test_calib_missing_when_lidar_frame_is_asked(tmp_path: Path) -> None:
    root = _label_root(tmp_path, GOOD)
    with pytest.raises(ReadError, match=r"label_2/000000\.txt: no calibration for this label file.*frame=camera"):
        list(annobridge.load(root, "kitti", options={"frame": "lidar"}).items)
    (item,) = list(annobridge.load(root, "kitti").items)  # auto: camera frame, declared
    assert [a.frame for a in item.annotations if a.type == "cuboid"] == ["camera"]


def test_calib_lacking_matrices_when_lidar_frame_is_asked(tmp_path: Path) -> None:
    root = _label_root(tmp_path, GOOD, calib="P2: " + " ".join(["1"] * 12) + "\n")
    with pytest.raises(ReadError, match=r"calib/000000\.txt: calibration lacks R0_rect, Tr_velo_to_cam"):
        list(annobridge.load(root, "kitti", options={"frame": "lidar"}).items)


def test_velodyne_size_not_multiple_of_16(tmp_path: Path) -> None:
    root = _label_root(tmp_path, GOOD)
    (root / "training/velodyne").mkdir()
    (root / "training/velodyne/000000.bin").write_bytes(b"\0" * 20)
    with pytest.raises(ReadError, match=r"velodyne/000000\.bin: velodyne file has 20 bytes, not a multiple of 16"):
        list(annobridge.load(root, "kitti").items)


def test_bad_tracking_row_names_file_and_line(tmp_path: Path) -> None:
    seq = tmp_path / "t/training/label_02"
    seq.mkdir(parents=True)
    (seq / "0003.txt").write_text("0 1 Car 0 0 0 1 2 3 4 1 1 1 1 1 10 0\nx 1 Car 0 0 0 1 2 3 4 1 1 1 1 1 10 0\n")
    with pytest.raises(ReadError, match=r"0003\.txt:line 2: column 1 \(frame\) is not an integer: 'x'"):
        list(annobridge.load(tmp_path / "t", "kitti-tracking").items)


# --------------------------------------------------------------------------- hypothesis: generated KITTI text


def _number(decimals: int, lo: float, hi: float):
    return st.integers(int(lo * 10 ** decimals), int(hi * 10 ** decimals)).map(
        lambda k: f"{k / 10 ** decimals:.{decimals}f}" if decimals else str(k))


@st.composite
def label_rows(draw, prediction: bool):
    name = draw(st.sampled_from(["Car", "Pedestrian", "Person_sitting", "traffic cone", "DontCare", "van 2x"]))
    d = draw(st.sampled_from([0, 2, 4]))
    if name == "DontCare":
        nums = ["-1", "-1", "-10"]
    else:
        nums = [draw(st.sampled_from(["-1", "0.00", "0.50", "1.0"])), draw(st.sampled_from(["-1", "0", "3"])),
                draw(_number(2, -3.14, 3.14))]
    left, top = draw(st.integers(0, 1000)), draw(st.integers(0, 300))
    nums += [f"{left:.{d}f}", f"{top:.{d}f}", f"{left + draw(st.integers(0, 200)):.{d}f}",
             f"{top + draw(st.integers(0, 70)):.{d}f}"]
    if name != "DontCare" and draw(st.booleans()):
        nums += [draw(_number(d, 0, 4)) for _ in range(3)] + [draw(_number(d, -40, 40)), draw(_number(d, -2, 3)),
                                                             draw(_number(d, 1, 80)), draw(_number(d, -3.14, 3.14))]
    else:
        nums += draw(st.sampled_from([["-1", "-1", "-1", "-1000", "-1000", "-1000", "-10"], ["-1"] * 7]))
    if prediction:
        nums.append(draw(st.sampled_from(["0.1616", "0.9", "12.5", "-2"])))
    return " ".join([name] + nums)


@settings(max_examples=40, deadline=None)
@given(files=st.lists(st.tuples(st.booleans(), st.integers(0, 4)), min_size=1, max_size=4), data=st.data(),
       with_calib=st.booleans())
def test_generated_kitti_files_round_trip_byte_for_byte(files, data, with_calib) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "src/training"
        (root / "label_2").mkdir(parents=True)
        (root / "results").mkdir()
        for k, (prediction, n) in enumerate(files):
            rows = [data.draw(label_rows(prediction)) for _ in range(n)]
            folder = "results" if prediction and n else "label_2"
            (root / folder / f"{k:06d}.txt").write_text("".join(r + "\n" for r in rows))
            if with_calib:
                (root / "calib").mkdir(exist_ok=True)
                (root / "calib" / f"{k:06d}.txt").write_text(kitti_calib.format_calib(kitti_synth.synthetic_calib(k)))
        report = _convert(Path(tmp) / "src", Path(tmp) / "out")
        assert report.dropped == {}
        for sub in ("label_2", "results"):
            assert _texts(Path(tmp) / "out/training" / sub) == _texts(root / sub) if (root / sub).exists() else True


def test_workers_give_identical_output(tmp_path: Path) -> None:
    kitti_synth.make_object_root(tmp_path / "k", frames=6, objects=3, points=10)
    engine.convert(tmp_path / "k", tmp_path / "one", src_format="kitti", dst_format="kitti")
    engine.convert(tmp_path / "k", tmp_path / "two", src_format="kitti", dst_format="kitti", workers=2)
    assert _texts(tmp_path / "one") == _texts(tmp_path / "two")
    shutil.rmtree(tmp_path / "k")


@pytest.mark.parametrize("case,fmt", [(FIX / "openpcdet-sample", "kitti"), (FIX / "mmdet3d-results", "kitti"),
                                      (TRACK, "kitti-tracking")])
def test_fixture_reads_as_its_expected_jsonl(case: Path, fmt: str) -> None:
    """Regression snapshot (the geometry itself is checked independently above). Floats
    compare within a tolerance: the camera -> LiDAR transform is linear algebra."""
    got = list(annobridge.load(case, fmt).items)
    want = list(annobridge.load(case / "expected.jsonl", "jsonl").items)

    def plain(item: DatasetItem) -> dict:
        d = item.model_dump(exclude={"image_location", "pointcloud_location"})
        d["files"] = [Path(p).name for p in (item.image_location, item.pointcloud_location) if p]
        return d

    assert_close([plain(i) for i in got], [plain(i) for i in want])


def test_boxes_and_cuboids_without_shared_ids_are_joined_by_overlap(tmp_path: Path) -> None:
    """Nucleus data without the annobridge extension has no group ids: the writer pairs a
    box with the same-label cuboid whose projection overlaps it most (IoU >= 0.5)."""
    kitti_synth.make_object_root(tmp_path / "k", frames=2, objects=4)
    items = []
    for item in annobridge.load(tmp_path / "k", "kitti").items:
        anns = [a.model_copy(update={"group_id": None}) for a in item.annotations]
        items.append(item.model_copy(update={"annotations": list(reversed(anns))}))
    annobridge.save(Dataset.of(items), tmp_path / "out", "kitti")
    for path in (tmp_path / "k/training/label_2").glob("*.txt"):
        want = sorted(path.read_text().splitlines())
        assert sorted((tmp_path / "out/training/label_2" / path.name).read_text().splitlines()) == want


def test_coco_style_attributes_that_add_nothing_are_not_reported(tmp_path: Path) -> None:
    item = DatasetItem(reference_id="i", annotations=[
        BoxAnnotation(label="a", x=1, y=2, width=3, height=4, attributes={"iscrowd": 0, "area": 12.0}),
        BoxAnnotation(label="b", x=1, y=2, width=3, height=4, attributes={"iscrowd": 1, "area": 7.5})])
    report = annobridge.save(Dataset.of([item]), tmp_path / "o", "kitti")
    assert report.dropped == {"attribute:iscrowd": {"KITTI label rows have no field for it": 1},
                              "attribute:area": {"KITTI label rows have no field for it": 1}}


def test_tracking_writer_numbers_foreign_track_ids_per_sequence(tmp_path: Path) -> None:
    from annobridge.core.model import FrameRef, Scene

    def frame(i: int) -> DatasetItem:
        return DatasetItem(reference_id=f"s-{i}", width=100, height=50, scene=FrameRef(scene_reference_id="seq", index=i),
                           annotations=[BoxAnnotation(label="Car", x=1, y=2, width=3, height=4, track_reference_id="car-a"),
                                        BoxAnnotation(label="Van", x=1, y=2, width=3, height=4, track_reference_id="x:12"),
                                        BoxAnnotation(label="Ped", x=1, y=2, width=3, height=4, track_reference_id="p")])
    header = DatasetHeader(scenes={"seq": Scene(reference_id="seq")})
    annobridge.save(Dataset(header=header, items=[frame(0), frame(1)]), tmp_path / "o", "kitti-tracking")
    rows = (tmp_path / "o/training/label_02/seq.txt").read_text().splitlines()
    assert [r.split()[:3] for r in rows] == [["0", "0", "Car"], ["0", "12", "Van"], ["0", "13", "Ped"],
                                             ["1", "0", "Car"], ["1", "12", "Van"], ["1", "13", "Ped"]]
    back = list(annobridge.load(tmp_path / "o", "kitti-tracking").items)
    assert [a.track_reference_id for a in back[1].annotations] == ["seq:0", "seq:12", "seq:13"]


@pytest.mark.parametrize("label", ["3", "van 2", " car", "a\tb", ""])
def test_labels_that_would_not_read_back_are_a_write_error(tmp_path: Path, label: str) -> None:
    item = DatasetItem(reference_id="i9", annotations=[BoxAnnotation(label=label, x=0, y=0, width=1, height=1)])
    with pytest.raises(WriteError, match=r'item "i9".*cannot be a KITTI class name.*label-map'):
        annobridge.save(Dataset.of([item]), tmp_path / "o", "kitti")


def test_bev_only_rows_with_negative_height_are_kept_verbatim(tmp_path: Path) -> None:
    row = "Car -1 -1 -10 1.00 2.00 3.00 4.00 -1.00 1.60 3.90 5.00 -1000 20.00 0.50 0.9000\n"
    src = tmp_path / "src"
    src.mkdir()
    (src / "000000.txt").write_text(row)
    (item,) = list(annobridge.load(src, "kitti").items)
    assert [a.type for a in item.predictions] == ["box"]  # y = -1000: no cuboid
    _convert(src, tmp_path / "out")
    assert (tmp_path / "out/training/results/000000.txt").read_text() == row


def test_kitti_through_canonical_jsonl_and_back(tmp_path: Path) -> None:
    kitti_synth.make_object_root(tmp_path / "k", frames=3, objects=3, points=12)
    engine.convert(tmp_path / "k", tmp_path / "a.jsonl", src_format="kitti", dst_format="jsonl")
    report = engine.convert(tmp_path / "a.jsonl", tmp_path / "k2", src_format="jsonl", dst_format="kitti")
    assert report.dropped == {}
    for sub in ("training/label_2", "training/calib", "ImageSets"):
        assert _texts(tmp_path / "k2" / sub) == _texts(tmp_path / "k" / sub)
    assert (tmp_path / "k2/training/velodyne/000002.bin").read_bytes() == \
        (tmp_path / "k/training/velodyne/000002.bin").read_bytes()


def test_testing_split_without_labels_round_trips_without_label_files(tmp_path: Path) -> None:
    kitti_synth.make_object_root(tmp_path / "k", frames=2, objects=2, points=8)
    shutil.move(tmp_path / "k/training", tmp_path / "k/testing")
    shutil.rmtree(tmp_path / "k/testing/label_2")
    kitti_synth.make_object_root(tmp_path / "k", frames=1, objects=1, points=8)  # a training split too
    ds = annobridge.load(tmp_path / "k", "kitti", options={"split": "testing"})
    items = list(ds.items)
    assert len(items) == 4 and all(not i.annotations for i in items)
    assert {i.attributes["kitti_split"] for i in items} == {"testing"}
    annobridge.save(Dataset.of(items, ds.header), tmp_path / "out", "kitti")
    assert sorted(p.name for p in (tmp_path / "out/testing").iterdir()) == ["calib", "image_2", "velodyne"]
    assert len(list(annobridge.load(tmp_path / "k", "kitti").items)) == 2  # default split: training


def test_loose_label_folders_read_with_images_by_stem_and_are_detected(tmp_path: Path) -> None:
    """labelformat's labels/ + images/ layout (class names with spaces, the image in a
    subfolder), the labels folder alone, one label file, and a results folder."""
    from annobridge.core.plugins import get_registry

    root = ROOT / "fixtures/kitti/labelformat"
    label = root / "labels/a-weird Filename.asdf.txt"
    rows = [line.split() for line in label.read_text().splitlines() if line.strip()]
    want = sorted(" ".join(r[:-14]) for r in rows)
    for path in (root, root / "labels", label):
        assert get_registry().detect_one(path).name == "kitti", path
        [item] = annobridge.load(path, "kitti").items
        assert sorted(a.label for a in item.annotations) == want  # "bicycle with space"
        assert item.image_location.endswith("images/a-difficult subfolder/a-weird Filename.asdf.jpg")
        assert (item.width, item.height) == (640, 416)  # read from the image header
    # a labels folder elsewhere: the images folder given as an option
    shutil.copytree(root / "labels", tmp_path / "lab")
    [item] = annobridge.load(tmp_path / "lab", "kitti").items
    assert item.image_location is None
    [item] = annobridge.load(tmp_path / "lab", "kitti", {"images": str(root / "images")}).items
    assert (item.width, item.height) == (640, 416)
    results = ROOT / "fixtures/kitti/mmdet3d-results"
    assert get_registry().detect_one(results).name == "kitti"
    [one] = annobridge.load(results / "000001.txt", "kitti").items
    assert one.reference_id == "000001" and len(one.predictions) > 0
    assert get_registry().detect(ROOT / "fixtures/yolo/basic") == ["yolo"]


@given(st.lists(st.floats(min_value=-1e4, max_value=1e5, allow_nan=False), min_size=4, max_size=4),
       st.sampled_from([OBJECT_STYLE, TRACKING_STYLE]), st.booleans())
def test_row_numbers_in_one_format_match_number_by_number(box: list[float], style: Style, dont_care: bool) -> None:
    """render_text formats the four box numbers with one ``%``; the tokens are those of the
    number-by-number path (a value that rounds to -0 loses its sign), sentinels included."""
    tokens = render_numbers(truncated=-1, occluded=0, alpha=-10, bbox=tuple(box), geom=None,  # type: ignore[arg-type]
                            dont_care=dont_care, score=None, text=None, style=style)
    assert tokens[3:7] == [_fixed(v, style.decimals) for v in box]
    assert tokens[:3] == ["-1", "0", "-10"] and tokens[7:] == list(_sentinel_tokens(style, dont_care))
    assert "-0.00" not in tokens and "-0.000000" not in tokens
