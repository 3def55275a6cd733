"""The canonical model: Nucleus names and shapes, conventions, and what it refuses."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from annobridge import (
    BoxAnnotation,
    CuboidAnnotation,
    DatasetItem,
    IndexMask,
    Keypoint,
    KeypointsAnnotation,
    LineAnnotation,
    ObjectMaskAnnotation,
    Point,
    Point3D,
    PolygonAnnotation,
    Segment,
    SegmentationAnnotation,
)
from annobridge.core.masks import narrow_mask, read_mask_png, rgb_ids, write_mask_png
from annobridge.core.errors import ReadError, WriteError
from annobridge.core.model import annotation_id_problem


def test_box_auto_id_matches_nucleus_example() -> None:
    # nucleus.md section 2: str() of each number as given, so 30.0 stays "30.0"
    box = BoxAnnotation(label="car", x=10, y=20, width=30.0, height=40, reference_id="img1")
    assert box.annotation_id == "car-10-20-30.0-40-img1"


def test_box_gets_auto_id_from_its_item() -> None:
    item = DatasetItem(reference_id="img7", annotations=[BoxAnnotation(label="car", x=1, y=2, width=3, height=4)])
    assert item.annotations[0].annotation_id == "car-1-2-3-4-img7"
    assert item.annotations[0].reference_id == "img7"


def test_polygon_takes_nucleus_vertices_and_keeps_several_rings() -> None:
    poly = PolygonAnnotation(label="bus", vertices=[Point(x=1, y=2), {"x": 3, "y": 4}, (5, 1)])
    assert poly.rings == [[1.0, 2.0, 3.0, 4.0, 5.0, 1.0]]
    assert poly.vertices[1] == Point(x=3, y=4)
    multi = PolygonAnnotation(label="bus", rings=[[0, 0, 1, 0, 1, 1], [5, 5, 6, 5, 6, 6]])
    assert len(multi.rings) == 2


def test_polygon_with_two_points_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 3 points"):
        PolygonAnnotation(label="x", rings=[[0, 0, 1, 1]])


def test_line_needs_two_points() -> None:
    assert LineAnnotation(label="lane", vertices=[{"x": 0, "y": 0}, {"x": 1, "y": 1}]).points[1] == Point(x=1, y=1)
    with pytest.raises(ValidationError, match="at least 2 points"):
        LineAnnotation(label="lane", vertices=[0, 0])


def test_keypoint_three_states_and_nucleus_bool() -> None:
    kps = KeypointsAnnotation(
        label="person",
        keypoints=[{"x": 1, "y": 2, "visible": True}, {"x": 3, "y": 4, "visible": False},
                   {"x": None, "y": None, "visible": False}],
        names=["a", "b", "c"],
        skeleton=[(0, 1), (1, 2)],
    )
    assert kps.keypoints == [1, 2, 2, 3, 4, 1, 0, 0, 0]
    assert [p.visibility for p in kps.points] == [2, 1, 0]
    assert [p.visible for p in kps.points] == [True, False, False]
    assert kps.points[2].x is None


def test_keypoints_length_and_skeleton_are_checked() -> None:
    with pytest.raises(ValidationError, match="expected 3 x 2 names"):
        KeypointsAnnotation(label="p", keypoints=[1, 2, 2], names=["a", "b"])
    with pytest.raises(ValidationError, match="out of range"):
        KeypointsAnnotation(label="p", keypoints=[1, 2, 2, 3, 4, 2], names=["a", "b"], skeleton=[(0, 2)])
    with pytest.raises(ValidationError, match="needs x and y"):
        Keypoint(visibility=1)


def test_cuboid_refuses_negative_dimensions() -> None:
    with pytest.raises(ValidationError, match=">= 0"):
        CuboidAnnotation(label="car", position=Point3D(x=0, y=0, z=0), dimensions=Point3D(x=-1, y=1, z=1), yaw=0)


def test_duplicate_explicit_ids_and_second_segmentation_are_refused() -> None:
    a = BoxAnnotation(label="a", x=0, y=0, width=1, height=1, annotation_id="same")
    b = BoxAnnotation(label="b", x=0, y=0, width=2, height=1, annotation_id="same")
    with pytest.raises(ValidationError, match="'same' is used twice"):
        DatasetItem(reference_id="i", annotations=[a, b])
    seg = SegmentationAnnotation(mask=IndexMask.from_array(np.zeros((2, 2), np.uint8)))
    with pytest.raises(ValidationError, match="more than one ground-truth segmentation"):
        DatasetItem(reference_id="i", annotations=[seg, seg.model_copy()])
    no_id = [PolygonAnnotation(label="p", rings=[[0, 0, 1, 0, 1, 1]]) for _ in range(3)]
    item = DatasetItem(reference_id="i", annotations=[*no_id, a], predictions=[b.model_copy(), seg])
    assert annotation_id_problem(item) is None  # several annotations without id are fine
    item.predictions.append(b.model_copy())
    assert annotation_id_problem(item) == "prediction id 'same' is used twice; annotation ids must be unique per item"


def test_object_masks_round_trip_through_rle_and_may_overlap() -> None:
    a = np.zeros((5, 7), np.uint8)
    a[1:4, 2:6] = 1
    b = np.zeros((5, 7), np.uint8)
    b[2:5, 0:3] = 1
    ma = ObjectMaskAnnotation.from_array(a, label="x")
    mb = ObjectMaskAnnotation.from_array(b, label="y")
    assert ma.size == (5, 7) and isinstance(ma.counts, str)
    assert (ma.to_array() == a).all() and (mb.to_array() == b).all()
    assert (ma.to_array() & mb.to_array()).any()  # overlap kept, nothing merged
    with pytest.raises(ValidationError, match="sum to 3, expected height x width = 4"):
        ObjectMaskAnnotation(label="x", size=(2, 2), counts=[1, 2])


@pytest.mark.parametrize("top", [7, 300, 70000, 2**24 - 1])
def test_index_masks_keep_wide_values_through_png(tmp_path, top: int) -> None:
    arr = np.array([[0, 1], [top, 2]], dtype=np.uint32)
    encoding = "index" if top < 65536 else "rgb"
    used = write_mask_png(arr, tmp_path / "m.png", encoding)
    back = read_mask_png(tmp_path / "m.png", used)
    assert back.dtype == np.uint32 and (back == arr).all()
    mask = IndexMask(location=str(tmp_path / "m.png"), encoding=used)
    assert not mask.is_loaded and (mask.load() == arr).all()


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_rgb_ids_combine_the_widened_channels(mode: str) -> None:
    from PIL import Image

    pixels = np.random.default_rng(3).integers(0, 256, (5, 7, len(mode)), dtype=np.uint8)
    wide = pixels.astype(np.uint32)
    ids = rgb_ids(Image.fromarray(pixels, mode))  # the alpha byte of RGBA is no part of the id
    assert ids.dtype == np.uint32 and ids.shape == (5, 7)
    assert (ids == wide[..., 0] + 256 * wide[..., 1] + 65536 * wide[..., 2]).all()


def test_narrowing_fails_clearly() -> None:
    with pytest.raises(WriteError, match="300 does not fit in 8 bits"):
        narrow_mask(np.array([[300]], np.uint32), 8)


def test_missing_mask_file_names_it(tmp_path) -> None:
    with pytest.raises(ReadError, match=r"nope\.png: mask file does not exist"):
        read_mask_png(tmp_path / "nope.png")


def test_segments_unique_index() -> None:
    with pytest.raises(ValidationError, match="segment index 1 appears twice"):
        SegmentationAnnotation(mask=IndexMask.from_array(np.zeros((1, 1), np.uint8)),
                               annotations=[Segment(label="a", index=1), Segment(label="b", index=1)])


@pytest.mark.parametrize("top", [9, 4000, 70000])
def test_encoded_masks_decode_to_the_same_values_and_pickle_small(top: int) -> None:
    import pickle

    arr = np.zeros((48, 64), np.uint32)
    arr[10:20, 5:30] = top
    arr[30:, :] = 1
    mask = IndexMask.encoded(arr)
    assert mask.is_loaded and mask.png_bytes is not None
    assert mask.encoding == ("rgb" if top >= 65536 else "index")
    shipped = pickle.loads(pickle.dumps(mask))  # what crosses from a worker process
    assert len(pickle.dumps(mask)) < arr.nbytes / 4
    assert shipped.load().dtype == np.uint32 and (shipped.load() == arr).all()


def test_oriented_box_corners_turn_clockwise_on_screen_and_invert() -> None:
    import math

    from annobridge.core.model import OrientedBoxAnnotation

    box = OrientedBoxAnnotation(label="ship", cx=10, cy=20, width=4, height=2, rotation=90)
    # 90 degrees clockwise on screen (y down): the box's own x axis points down the image
    want = [11, 18, 11, 22, 9, 22, 9, 18]
    assert all(math.isclose(g, w, abs_tol=1e-9) for g, w in zip(box.corners(), want))
    back = OrientedBoxAnnotation.fields_from_corners(box.corners())
    for key, value in {"cx": 10, "cy": 20, "width": 4, "height": 2, "rotation": 90}.items():
        assert math.isclose(back[key], value, abs_tol=1e-9), key
    assert OrientedBoxAnnotation(label="a", cx=5, cy=5, width=2, height=2).corners() == [4, 4, 6, 4, 6, 6, 4, 6]


def test_the_nucleus_sdk_reference_examples_construct_as_written() -> None:
    """The examples of the scale-nucleus docstrings (nucleus/annotation.py, MIT, Scale AI),
    with the names imported from annobridge instead."""
    from annobridge.core.model import (
        CuboidAnnotation,
        Keypoint,
        KeypointsAnnotation,
        LineAnnotation,
        Point,
        Point3D,
        Segment,
        SegmentationAnnotation,
    )

    line = LineAnnotation(
        label="face",
        vertices=[Point(100, 100), Point(200, 300), Point(300, 200)],
        reference_id="person_image_1",
        annotation_id="person_image_1_line_1",
        metadata={"camera_mode": "portrait"},
        track_reference_id="face_human",
    )
    assert line.vertices == [100, 100, 200, 300, 300, 200]
    keypoints = KeypointsAnnotation(
        label="face",
        keypoints=[Keypoint(100, 100), Keypoint(120, 120), Keypoint(visible=False), Keypoint(0, 0)],
        names=["point1", "point2", "point3", "point4"],
        skeleton=[[0, 1], [1, 2], [1, 3], [2, 3]],
        reference_id="image_2",
        annotation_id="image_2_face_keypoints_1",
        metadata={"face_direction": "forward"},
        track_reference_id="face_1",
    )
    assert [(k.x, k.y, k.visible) for k in keypoints.points] == [
        (100, 100, True), (120, 120, True), (None, None, False), (0, 0, True)]
    assert Keypoint(5, 6, False).visibility == 1  # the SDK's third argument is `visible`
    cuboid = CuboidAnnotation(
        label="car",
        position=Point3D(100, 100, 10),
        dimensions=Point3D(5, 10, 5),
        yaw=0,
        reference_id="pointcloud_1",
        annotation_id="pointcloud_1_car_cuboid_1",
        metadata={"vehicle_color": "green"},
        track_reference_id="red_car",
    )
    assert (cuboid.position.z, cuboid.dimensions.y) == (10, 10)
    segmentation = SegmentationAnnotation(
        mask_url="s3://your-bucket-name/segmentation-masks/image_2_mask_id_1.png",
        annotations=[
            Segment(label="grass", index="1"),
            Segment(label="road", index="2"),
            Segment(label="bus", index="3", metadata={"vehicle_color": "yellow"}),
            Segment(label="tree", index="4")
        ],
        reference_id="image_2",
        annotation_id="image_2_mask_1",
    )
    assert segmentation.mask.location.endswith("image_2_mask_id_1.png")
    assert [s.index for s in segmentation.annotations] == [1, 2, 3, 4]
    with pytest.raises(TypeError, match="at most 2 positional"):
        Point(1, 2, 3)
    with pytest.raises(TypeError, match="both"):
        Point(1, x=2)
