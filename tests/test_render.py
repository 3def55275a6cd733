"""``annobridge render``: the PNGs are decoded and their pixels checked where the geometry says."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import annobridge
from annobridge import (
    BoxAnnotation,
    CuboidAnnotation,
    DatasetItem,
    KeypointsAnnotation,
    ObjectMaskAnnotation,
    OrientedBoxAnnotation,
    Point3D,
    PolygonAnnotation,
)
from annobridge.converters.render import (
    CANVAS,
    FILL_ALPHA,
    MISSING,
    color_for,
    cuboid_corners,
    project,
    projection_of,
    render_dataset,
)
from tests.conftest import FIXTURES
from tests.projection import assert_close
from tests.test_cli import BIN, run

BG = (40, 40, 40)
W, H = 100, 80


def _dataset(tmp: Path, items: list[DatasetItem], name: str = "ds") -> Path:
    """Save ``items`` as canonical JSONL beside a flat grey 100 x 80 PNG ``img.png``."""
    folder = tmp / name
    folder.mkdir()
    Image.new("RGB", (W, H), BG).save(folder / "img.png")
    annobridge.save(items, folder / "data.jsonl", "jsonl")
    return folder / "data.jsonl"


def _render(tmp: Path, items: list[DatasetItem], **kw) -> np.ndarray:
    src = _dataset(tmp, items)
    result = render_dataset(src, tmp / "out", **kw)
    assert [p.name for p in result.written] == [f"{it.reference_id}.png" for it in items]
    return np.asarray(Image.open(result.written[0]).convert("RGB")).astype(int)


def _blend(color: tuple[int, int, int], under: tuple[int, int, int] = BG) -> np.ndarray:
    a = FILL_ALPHA / 255
    return np.array(under) * (1 - a) + np.array(color) * a


def test_box_outline_has_the_label_colour_on_its_edges(tmp_path: Path) -> None:
    box = BoxAnnotation(label="car", x=20, y=30, width=40, height=30)
    px = _render(tmp_path, [DatasetItem(reference_id="a", image_location="img.png", width=W, height=H,
                                        annotations=[box])])
    car = list(color_for("car"))
    for x, y in ((20, 45), (60, 45), (40, 60)):  # left, right, bottom edge
        assert list(px[y, x]) == car, (x, y)
    assert list(px[45, 40]) == list(BG)  # inside a box: the image, untouched
    assert list(px[45, 10]) == list(BG)


def test_mask_tints_inside_and_not_outside(tmp_path: Path) -> None:
    m = np.zeros((H, W), dtype=np.uint8)
    m[50:70, 10:30] = 1
    mask = ObjectMaskAnnotation.from_array(m, label="road")
    px = _render(tmp_path, [DatasetItem(reference_id="a", image_location="img.png", width=W, height=H,
                                        annotations=[mask])])
    want = _blend(color_for("road"))
    assert np.abs(px[60, 20] - want).max() <= 1
    assert np.abs(px[69, 29] - want).max() <= 1
    assert list(px[60, 35]) == list(BG)
    assert list(px[75, 50]) == list(BG)  # (above the mask sits its label tag)


def test_polygon_fill_and_oriented_box_outline(tmp_path: Path) -> None:
    poly = PolygonAnnotation(label="lake", vertices=[(60, 50), (95, 50), (95, 75), (60, 75)])
    obb = OrientedBoxAnnotation(label="ship", cx=25, cy=25, width=30, height=10, rotation=90)
    px = _render(tmp_path, [DatasetItem(reference_id="a", image_location="img.png", width=W, height=H,
                                        annotations=[poly, obb])])
    assert np.abs(px[65, 80] - _blend(color_for("lake"))).max() <= 1
    # turned 90 degrees clockwise about (25, 25): 10 wide, 30 tall, x from 20 to 30; its own
    # top edge (marked white) is now the right side x = 30, its bottom edge the left side x = 20
    assert list(px[30, 20]) == list(color_for("ship"))
    assert list(px[30, 30]) == [255, 255, 255]
    assert list(px[30, 40]) == list(BG)


def test_keypoints_visible_filled_hidden_hollow_skeleton_drawn(tmp_path: Path) -> None:
    kp = KeypointsAnnotation(label="person", names=["a", "b", "c", "d"],
                             keypoints=[70, 40, 2, 90, 60, 1, 0, 0, 0, 50, 40, 2], skeleton=[(0, 3)])
    px = _render(tmp_path, [DatasetItem(reference_id="a", image_location="img.png", width=W, height=H,
                                        annotations=[kp])])
    person = list(color_for("person"))
    assert list(px[40, 70]) == person  # visible: filled at its coordinates
    assert list(px[60, 90]) == list(BG)  # hidden: hollow centre ...
    ring = [list(px[60 + dy, 90 + dx]) for dx, dy in ((3, 0), (-3, 0), (0, 3), (0, -3))]
    assert person in ring  # ... with a rim in the label colour
    assert list(px[40, 60]) == person  # the skeleton edge between a and d
    assert list(px[5, 5]) == list(BG)  # the unlabelled point (0, 0) is not drawn


def _camera_params(fx: float, cx: float, cy: float) -> dict:
    # camera at the LiDAR origin looking along +x: camera x (right) = -y, y (down) = -z, z = +x
    r = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=float)
    w = math.sqrt(1 + r.trace()) / 2
    q = {"w": w, "x": (r[2, 1] - r[1, 2]) / (4 * w), "y": (r[0, 2] - r[2, 0]) / (4 * w),
         "z": (r[1, 0] - r[0, 1]) / (4 * w)}
    return {"position": {"x": 0.0, "y": 0.0, "z": 0.0}, "heading": q, "fx": fx, "fy": fx, "cx": cx, "cy": cy}


def test_projected_cuboid_corner_lands_where_the_calibration_puts_it(tmp_path: Path) -> None:
    cub = CuboidAnnotation(label="car", position=Point3D(x=10, y=0, z=0), dimensions=Point3D(x=2, y=2, z=2), yaw=0)
    item = DatasetItem(reference_id="a", image_location="img.png", width=W, height=H, annotations=[cub],
                       metadata={"camera_params": _camera_params(110.0, 50.0, 40.0)})
    px = _render(tmp_path, [item])
    # front top-left corner (11, 1, 1) in the LiDAR frame: camera (-1, -1, 11) -> pixel (40, 30)
    assert list(px[30, 40]) == list(color_for("car"))
    # back face corners (9, +-1, +-1) -> 50 -+ 110/9: (37.8, 27.8) .. (62.2, 52.2)
    assert list(px[52, 62]) == list(color_for("car"))
    # the front face is crossed: its centre pixel (50, 40) lies on both diagonals
    assert list(px[40, 50]) == list(color_for("car"))


def test_camera_frame_cuboid_is_projected_with_p2(tmp_path: Path) -> None:
    p2 = [100.0, 0, 50, 0, 0, 100, 40, 0, 0, 0, 1, 0]
    cub = CuboidAnnotation(label="van", position=Point3D(x=0, y=0, z=9), dimensions=Point3D(x=2, y=2, z=2),
                           yaw=0, frame="camera")
    item = DatasetItem(reference_id="a", image_location="img.png", width=W, height=H, annotations=[cub],
                       attributes={"kitti_calib": {"P2": p2}})
    px = _render(tmp_path, [item])
    # heading +x (right), up is -y: the front top corner nearest the camera side is (1, -1, 10)
    assert list(px[30, 60]) == list(color_for("van"))
    no_calib = item.model_copy(update={"attributes": {}, "reference_id": "b"})
    assert projection_of(no_calib, "camera") is None


def test_projection_agrees_with_kitti_geometry_on_a_real_calibration() -> None:
    """The renderer's projection and the KITTI plugin's (LiDAR -> camera box -> P2) are
    independent routes to the same pixels. The cuboid centre maps exactly. Corners agree
    within a pixel or two: a KITTI box stands on the camera's y axis, which is tilted a
    little against the LiDAR's z, and Nucleus camera_params hold the nearest true rotation
    of KITTI's 7-digit matrices."""
    from annobridge.core import camera as geo

    ds = annobridge.load(FIXTURES / "kitti" / "openpcdet-sample")
    item = next(it for it in ds.items if any(a.type == "cuboid" for a in it.annotations))
    t = geo.Transform(item.attributes["kitti_calib"])
    without_calib = item.model_copy(update={"attributes": {}})  # camera_params only
    for cub in (a for a in item.annotations if a.type == "cuboid"):
        d, p = cub.dimensions, cub.position
        loc, ry = geo.lidar_to_camera(t, (p.x, p.y, p.z), d.z, cub.yaw)
        centre = t.P2 @ np.array([loc[0], loc[1] - d.z / 2, loc[2], 1.0])
        ours = project(projection_of(item, "lidar"), np.array([[p.x, p.y, p.z]]))[0]
        assert_close(ours[:2].tolist(), (centre[:2] / centre[2]).tolist(), tol=1e-6)
        theirs = np.array(sorted(geo.project_corners(t.P2, geo.corners_camera(loc, d.z, d.y, d.x, ry)).tolist()))
        for it in (item, without_calib):
            corners = np.array(sorted(project(projection_of(it, "lidar"), cuboid_corners(cub))[:, :2].tolist()))
            assert np.abs(corners - theirs).max() < 2.0


def test_missing_image_is_a_neutral_canvas_of_the_item_size(tmp_path: Path) -> None:
    item = DatasetItem(reference_id="a", image_location="nowhere.png", width=120, height=90,
                       annotations=[BoxAnnotation(label="car", x=60, y=50, width=20, height=20)])
    px = _render(tmp_path, [item])
    assert px.shape == (90, 120, 3)
    assert list(px[85, 5]) == list(CANVAS)
    assert px[2:12, 2:40].min() == 0 and px[2:12, 2:40].max() > 200  # the note, white on black


def test_image_outside_the_images_root_is_not_read(tmp_path: Path) -> None:
    Image.new("RGB", (W, H), (255, 0, 0)).save(tmp_path / "secret.png")
    item = DatasetItem(reference_id="a", image_location="../secret.png", width=W, height=H)
    px = _render(tmp_path, [item])
    assert list(px[70, 90]) == list(CANVAS)


def test_compare_rings_what_only_one_side_has_and_lists_unmatched(tmp_path: Path) -> None:
    box = BoxAnnotation(label="car", x=10, y=10, width=20, height=20)
    poly = PolygonAnnotation(label="lake", vertices=[(60, 40), (90, 40), (90, 70)])
    left = _dataset(tmp_path, [DatasetItem(reference_id="a", image_location="img.png", width=W, height=H,
                                           annotations=[box, poly]),
                               DatasetItem(reference_id="only-left", image_location="img.png")], "left")
    right = _dataset(tmp_path, [DatasetItem(reference_id="b", image_location="img.png", width=W, height=H,
                                            annotations=[box.model_copy(update={"reference_id": None,
                                                                                "annotation_id": None})])],
                     "right")
    result = render_dataset(left, tmp_path / "out", compare=right)
    assert [p.name for p in result.written] == ["a.png"]  # matched by file name img.png
    assert result.unmatched_left == ["only-left"] and result.unmatched_right == []
    px = np.asarray(Image.open(result.written[0]).convert("RGB")).astype(int)
    assert px.shape[1] == 2 * W + 8
    magenta = np.all(px == MISSING, axis=2)
    assert magenta[:H, :W].any()  # the polygon only the left side has is ringed ...
    assert not magenta[:, W:].any()  # ... and the right side lacks nothing the left has
    assert magenta[35:76, 50:100].any() and not magenta[:35, :40].any()


def test_workers_give_identical_pngs(tmp_path: Path) -> None:
    src = FIXTURES / "coco" / "synthetic" / "instances.json"
    one = render_dataset(src, tmp_path / "one", items=4)
    two = render_dataset(src, tmp_path / "two", items=4, workers=2)
    assert [p.read_bytes() for p in one.written] == [p.read_bytes() for p in two.written]


def test_pointcloud_birds_eye_view_draws_points_and_heading(tmp_path: Path) -> None:
    folder = tmp_path / "pc"
    folder.mkdir()
    pts = np.array([[x, y, 0.0, 1.0] for x in range(-20, 21, 2) for y in range(-20, 21, 2)], dtype="<f4")
    pts.tofile(folder / "cloud.bin")
    cub = CuboidAnnotation(label="car", position=Point3D(x=5, y=0, z=0), dimensions=Point3D(x=4, y=2, z=1.5), yaw=0)
    annobridge.save([DatasetItem(reference_id="c", pointcloud_location="cloud.bin", annotations=[cub])],
                    folder / "data.jsonl", "jsonl")
    result = render_dataset(folder / "data.jsonl", tmp_path / "out")
    px = np.asarray(Image.open(result.written[0]).convert("RGB")).astype(int)
    assert px.shape == (800, 800, 3)
    car = np.all(px == color_for("car"), axis=2)
    ys, xs = np.nonzero(car)
    # x forward is up: the heading runs from the centre (x=5) up to the front (x=7); the box
    # is twice as tall (length 4 along x) as it is wide (width 2 along y)
    assert (ys.max() - ys.min()) == pytest.approx(2 * (xs.max() - xs.min()), rel=0.15)
    assert (px.sum(axis=2) > 0).sum() > 400  # the points


def test_cli_render_and_compare(tmp_path: Path) -> None:
    src = str(FIXTURES / "coco" / "synthetic" / "instances.json")
    proc = run("render", src, str(tmp_path / "one"), "--ids", "1,3")
    assert "wrote 2 PNG(s)" in proc.stdout
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == ["1.png", "3.png"]
    conv = tmp_path / "kitti"
    run("convert", src, str(conv), "--to", "kitti", "-q")
    proc = run("render", src, str(tmp_path / "cmp"), "--compare", str(conv), "--items", "2")
    with Image.open(tmp_path / "cmp" / "1.png") as img:
        assert img.width == 2 * 640 + 8
    bad = run("render", src, str(tmp_path / "x"), "--ids", "nope", check_code=1)
    assert "no item with reference id 'nope'" in bad.stderr and "Traceback" not in bad.stderr
    both = subprocess.run([str(BIN), "render", src, str(tmp_path / "y"), "--ids", "1", "--items", "2"],
                          capture_output=True, text=True)
    assert both.returncode == 2
    again = run("render", src, str(tmp_path / "one"), check_code=1)
    assert "--overwrite" in again.stderr
