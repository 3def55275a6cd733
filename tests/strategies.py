"""Hypothesis strategies for canonical datasets, drawn within a format's Capabilities.

Numbers are "nice" (hundredths, even fiftieths for sizes) so that every format, including
KITTI's two-decimal text, can hold them exactly: a round-trip failure is then a real loss,
not a rounding artefact of the generator.

:data:`FORMAT_LIMITS` lists, per format, what the format cannot hold even though its
Capabilities name the kind (a KITTI cuboid in the LiDAR frame needs calibration the
generator does not make). Every entry says why; it narrows generation, never the comparison.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st

from annobridge.core.formats import Capabilities
from annobridge.core.model import (
    BoxAnnotation,
    Category,
    CategoryAnnotation,
    CuboidAnnotation,
    Dataset,
    DatasetHeader,
    DatasetItem,
    FrameRef,
    IndexMask,
    KeypointsAnnotation,
    LineAnnotation,
    MultiCategoryAnnotation,
    ObjectMaskAnnotation,
    OrientedBoxAnnotation,
    Point3D,
    PolygonAnnotation,
    Scene,
    Segment,
    SegmentationAnnotation,
)

LABELS = ["car", "person", "bird", "tree"]
KEYPOINT_LABEL = "person"
KEYPOINT_NAMES = ["nose", "left_eye", "right_eye", "neck"]
KEYPOINT_SKELETON = [(0, 1), (0, 2), (0, 3)]


@dataclass(frozen=True)
class Limits:
    """What generation must avoid for one format (each field documents its reason)."""

    cuboid_frames: tuple[str, ...] = ("lidar", "camera")
    pair_boxes_with_cuboids: bool = False  # one object = one 2D box + one cuboid (KITTI rows)
    max_segments: int = 200
    metadata_kinds: tuple[str, ...] = ("int", "float", "str", "bool", "nested")
    frames_of_one_scene: bool = False  # items are frames 0..n-1 of scene "0000", ids "0000-FFFFFF"
    reasons: tuple[str, ...] = field(default=())
    ground_truth: bool = True  # False: predictions only (ground truth needs an explicit option)
    kinds: frozenset[str] | None = None  # narrows the Capabilities' kinds (one task per folder)
    keypoint_visibilities: tuple[int, ...] = (0, 1, 2)
    metadata_on_every_item: bool = False  # the reader fills schema defaults for missing keys
    polygon_rings: int = 2  # rings per polygon the format holds as one annotation
    image_folder_options: tuple[str | None, str | None] = (None, None)  # (write, read) option
    # keys given the folder of the source images, for formats that keep media paths only
    predictions: bool = True  # False: the format's default output holds ground truth only
    pair_boxes_with_keypoints: bool = False  # keypoints come with a box of their group (YOLO pose rows)
    keypoints_with_box: bool = False  # ground-truth keypoints come with their object's box
    single_point_keypoints: bool = False  # keypoints objects of one point named after the label
    nonzero_rotation: bool = False  # an oriented box at rotation 0 reads back as an axis-aligned box
    one_segment_per_label: bool = False  # semantic masks: a class mask holds one value per label


_KITTI_REASONS = (
    "a LiDAR-frame cuboid needs calibration, which the generator does not make: camera frame only",
    "a KITTI row is one object: a 2D box and its cuboid come as pairs (a lone cuboid's box is projected)",
    "KITTI keeps only metadata['camera_params'] (rebuilt from calib), no other item metadata",
)

FORMAT_LIMITS: dict[str, Limits] = {
    "coco": Limits(keypoints_with_box=True, reasons=(
        "COCO gives every ground-truth object a bbox (COCOeval needs one): a keypoint-only object is "
        "written with the extent of its keypoints and reads back with that box, so keypoints are drawn "
        "with their object's box",)),
    "kitti": Limits(cuboid_frames=("camera",), pair_boxes_with_cuboids=True, metadata_kinds=(),
                    reasons=_KITTI_REASONS),
    "kitti-tracking": Limits(cuboid_frames=("camera",), pair_boxes_with_cuboids=True, metadata_kinds=(),
                             frames_of_one_scene=True,
                             reasons=_KITTI_REASONS + ("tracking files name items by sequence and frame "
                                                       "number only: items are frames of scene 0000",)),
    "lightly": Limits(
        ground_truth=False, keypoint_visibilities=(0, 2), metadata_on_every_item=True,
        image_folder_options=("input", "input"),
        reasons=("Lightly holds predictions only; ground truth is written only with --option score=S",
                 "a Lightly keypoint's third number is a score, so visibility 1 cannot be told from 2",
                 "reading fills schema defaults for keys an item lacks (as the Lightly Worker does)",
                 "Lightly files hold media paths, not sizes: sizes come from the input datasource"),
    ),
    "yolo": Limits(
        kinds=frozenset({"polygon"}), predictions=False, polygon_rings=1, image_folder_options=(None, "images"),
        reasons=("one task per YOLO folder: the generic test draws segment data; tests/test_yolo.py draws "
                 "each task (detect, segment, pose, obb) and predictions",
                 "a YOLO folder holds ground truth or predictions (--option predictions=true), not both",
                 "a YOLO polygon row is one ring (several are joined, as Ultralytics does: reported)",
                 "YOLO labels hold no sizes and media=none copies no image: sizes come from the images"),
    ),
    "lightly-task": Limits(
        ground_truth=False, kinds=frozenset({"box"}), image_folder_options=("input", "images"),
        reasons=("a single-task folder holds predictions of one task type (labelformat: detection)",
                 "sizes come from the images folder"),
    ),
    "label-studio": Limits(
        polygon_rings=1, single_point_keypoints=True, nonzero_rotation=True,
        image_folder_options=(None, "images"),
        reasons=("a task keeps its image size only in its regions: an item without regions takes its "
                 "size from the image (read option images=DIR)",
                 "a Label Studio polygon region is one ring",
                 "Label Studio keypoints are single labelled points (keypointlabels): no objects, "
                 "skeletons or hidden points",
                 "a rectangle at rotation 0 is read as an axis-aligned box"),
    ),
    "cvat": Limits(
        polygon_rings=1, image_folder_options=("images", "images"),
        reasons=("a CVAT polygon has one ring (further rings are written as polygons of the same group)",
                 "CVAT names an image by its file name: names relative to the images folder keep the "
                 "reference ids"),
    ),
    "pascal-voc": Limits(
        kinds=frozenset({"box", "segmentation"}), one_segment_per_label=True,
        reasons=("SegmentationClass holds one value per class: two segments of one label merge "
                 "(reported as lost instance identity)",
                 "a SegmentationObject value is the position of its object's XML box: object masks "
                 "round-trip only tied to a box of the same group_id and without overlaps, which the "
                 "generator's free masks are not (tests/test_pascal_voc.py covers tied masks)",),
    ),
}
"""Per-format generation limits; formats not listed take the defaults."""


def limits_for(name: str) -> Limits:
    return FORMAT_LIMITS.get(name, Limits())


def hundredths(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.integers(int(lo * 100), int(hi * 100)).map(lambda k: k / 100)


def _ref_ids() -> st.SearchStrategy[str]:
    return st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8).map(lambda s: "i" + s)


@st.composite
def metadata_schemas(draw: st.DrawFn, kinds: tuple[str, ...]) -> dict[str, str]:
    """A consistent key -> kind schema for one dataset (formats require type consistency)."""
    if not kinds:
        return {}
    keys = draw(st.lists(st.sampled_from(["weather", "score", "camera", "night", "site", "speed"]),
                         unique=True, max_size=3))
    return {k: draw(st.sampled_from(kinds)) for k in keys}


@st.composite
def metadata_values(draw: st.DrawFn, schema: dict[str, str], every: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, kind in schema.items():
        if not every and not draw(st.booleans()):
            continue  # keys may be missing on some items
        if kind == "int":
            out[key] = draw(st.integers(-1000, 1000))
        elif kind == "float":
            out[key] = draw(hundredths(-100, 100).filter(lambda v: not float(v).is_integer()))
        elif kind == "str":
            out[key] = draw(st.sampled_from(["sunny", "rain", "fog", "a b", "é"]))
        elif kind == "bool":
            out[key] = draw(st.booleans())
        elif kind == "nested":
            out[key] = {"temperature": draw(st.integers(-30, 40)), "unit": "C"}
    return out


@st.composite
def _box(draw: st.DrawFn, w: int, h: int) -> dict[str, Any]:
    x = draw(hundredths(0, w - 1))
    y = draw(hundredths(0, h - 1))
    bw = draw(hundredths(0.01, w - x))
    bh = draw(hundredths(0.01, h - y))
    return {"x": x, "y": y, "width": bw, "height": bh}


@st.composite
def _ring(draw: st.DrawFn, w: int, h: int) -> list[float]:
    n = draw(st.integers(3, 8))
    pts = draw(st.lists(st.tuples(hundredths(0, w), hundredths(0, h)), min_size=n, max_size=n, unique=True))
    return [c for p in pts for c in p]


@st.composite
def _keypoints(draw: st.DrawFn, w: int, h: int, visibilities: tuple[int, ...] = (0, 1, 2)) -> list[float]:
    flat: list[float] = []
    for _ in KEYPOINT_NAMES:
        v = draw(st.sampled_from(visibilities))
        if v == 0:
            flat += [0.0, 0.0, 0]
        else:
            flat += [draw(hundredths(0, w)), draw(hundredths(0, h)), v]
    return flat


@st.composite
def _cuboid_fields(draw: st.DrawFn, frames: tuple[str, ...]) -> dict[str, Any]:
    even = st.integers(1, 250).map(lambda k: k / 50)  # sizes in fiftieths: h/2 stays in hundredths
    return {
        "position": Point3D(x=draw(hundredths(-40, 40)), y=draw(hundredths(-3, 3)), z=draw(hundredths(1, 60))),
        "dimensions": Point3D(x=draw(even), y=draw(even), z=draw(even)),
        "yaw": draw(hundredths(-3.14, 3.14)),
        "frame": draw(st.sampled_from(frames)),
    }


@st.composite
def _mask(draw: st.DrawFn, w: int, h: int, values: int) -> np.ndarray:
    flat = draw(st.lists(st.integers(0, values), min_size=w * h, max_size=w * h))
    return np.array(flat, dtype=np.uint32).reshape(h, w)


@st.composite
def annotations_for(draw: st.DrawFn, kinds: frozenset[str], ref: str, w: int, h: int,
                    limits: Limits, predictions: bool, annotation_metadata: bool) -> list[Any]:
    out: list[Any] = []
    if not predictions and not limits.ground_truth:
        return out
    if predictions and not limits.predictions:
        return out
    if limits.kinds is not None:
        kinds = kinds & limits.kinds
    n = draw(st.integers(0, 4))
    usable = sorted(kinds - {"segmentation"} - ({"cuboid", "box"} if limits.pair_boxes_with_cuboids else set()))
    serial = 0

    def common() -> dict[str, Any]:
        nonlocal serial
        serial += 1
        fields: dict[str, Any] = {"reference_id": ref, "annotation_id": f"{ref}-{serial}"}
        if predictions:
            fields["confidence"] = draw(st.integers(0, 100).map(lambda k: k / 100))
        if annotation_metadata and draw(st.booleans()):
            fields["metadata"] = {"source": draw(st.sampled_from(["model", "human"]))}
        return fields

    if limits.pair_boxes_with_cuboids and {"box", "cuboid"} <= kinds:
        for _ in range(draw(st.integers(0, 3))):
            c = common()
            group = c["annotation_id"]
            out.append(BoxAnnotation(label=(lab := draw(st.sampled_from(LABELS))), group_id=group, **c, **draw(_box(w, h))))
            c2 = dict(c, annotation_id=c["annotation_id"] + ":3d")
            out.append(CuboidAnnotation(label=lab, group_id=group, **c2, **draw(_cuboid_fields(limits.cuboid_frames))))
    if not usable:
        n = 0
    for _ in range(n):
        kind = draw(st.sampled_from(usable))
        label = draw(st.sampled_from(LABELS))
        c = common()
        if kind == "box":
            out.append(BoxAnnotation(label=label, **c, **draw(_box(w, h))))
        elif kind == "oriented_box":
            rotation = hundredths(-179.99, 180)
            if limits.nonzero_rotation:
                rotation = rotation.filter(lambda r: r != 0)
            out.append(OrientedBoxAnnotation(label=label, cx=draw(hundredths(0, w)), cy=draw(hundredths(0, h)),
                                             width=draw(hundredths(0.01, w)), height=draw(hundredths(0.01, h)),
                                             rotation=draw(rotation), **c))
        elif kind == "polygon":
            rings = draw(st.lists(_ring(w, h), min_size=1, max_size=limits.polygon_rings))
            out.append(PolygonAnnotation(label=label, rings=rings, **c))
        elif kind == "line":
            ring = draw(_ring(w, h))
            out.append(LineAnnotation(label=label, vertices=ring, **c))
        elif kind == "keypoints" and limits.keypoints_with_box and not predictions:
            group = c["annotation_id"]
            out.append(BoxAnnotation(label=KEYPOINT_LABEL, group_id=group, **c, **draw(_box(w, h))))
            out.append(KeypointsAnnotation(label=KEYPOINT_LABEL, keypoints=draw(_keypoints(w, h, limits.keypoint_visibilities)),
                                           names=KEYPOINT_NAMES, skeleton=KEYPOINT_SKELETON, group_id=group,
                                           **dict(c, annotation_id=group + ":keypoints")))
        elif kind == "keypoints" and limits.single_point_keypoints:
            point = [draw(hundredths(0, w)), draw(hundredths(0, h)), 2]
            out.append(KeypointsAnnotation(label=label, keypoints=point, names=[label], **c))
        elif kind == "keypoints":
            kps = draw(_keypoints(w, h, limits.keypoint_visibilities))
            if limits.pair_boxes_with_keypoints:
                c["group_id"] = c["annotation_id"]
                if not any(kps[2::3]):
                    kps[2] = 2  # an object whose points are all unlabelled is a plain box
                out.append(BoxAnnotation(label=KEYPOINT_LABEL, **dict(c, annotation_id=c["annotation_id"] + ":box"),
                                         **draw(_box(w, h))))
            out.append(KeypointsAnnotation(label=KEYPOINT_LABEL, keypoints=kps,
                                           names=KEYPOINT_NAMES, skeleton=KEYPOINT_SKELETON, **c))
        elif kind == "cuboid":
            out.append(CuboidAnnotation(label=label, **c, **draw(_cuboid_fields(limits.cuboid_frames))))
        elif kind == "category":
            c.pop("annotation_id")
            out.append(CategoryAnnotation(label=label, **c))
        elif kind == "multicategory":
            c.pop("annotation_id")
            labels = draw(st.lists(st.sampled_from(LABELS), min_size=1, max_size=3, unique=True))
            out.append(MultiCategoryAnnotation(labels=labels, **c))
        elif kind == "object_mask":
            arr = draw(_mask(w, h, 1))
            out.append(ObjectMaskAnnotation.from_array(arr, label=label, **c))
    if "segmentation" in kinds and not predictions and draw(st.booleans()):
        n_seg = draw(st.integers(1, min(4, limits.max_segments)))
        arr = draw(_mask(w, h, n_seg))
        if limits.one_segment_per_label:
            labels = draw(st.permutations(LABELS))
            segments = [Segment(label=labels[i - 1], index=i) for i in range(1, n_seg + 1) if (arr == i).any()]
        else:
            segments = [Segment(label=draw(st.sampled_from(LABELS)), index=i) for i in range(1, n_seg + 1)
                        if (arr == i).any()]
        out.append(SegmentationAnnotation(mask=IndexMask.from_array(arr), annotations=segments,
                                          reference_id=ref, annotation_id=f"{ref}-seg"))
    return out


@st.composite
def datasets(draw: st.DrawFn, caps: Capabilities, format_name: str = "", limits: Limits | None = None) -> Dataset:
    """A small dataset holding only what ``caps`` (and the format's limits, or ``limits``) allow."""
    limits = limits or limits_for(format_name)
    refs = draw(st.lists(_ref_ids(), min_size=1, max_size=4, unique=True))
    if limits.frames_of_one_scene:
        refs = [f"0000-{i:06d}" for i in range(len(refs))]
    kinds_md = limits.metadata_kinds if caps.item_metadata else ()
    schema = draw(metadata_schemas(kinds_md))
    items = []
    for ref in refs:
        w = draw(st.integers(4, 24))
        h = draw(st.integers(4, 24))
        anns = draw(annotations_for(caps.annotation_types, ref, w, h, limits, False, caps.annotation_metadata))
        preds = draw(annotations_for(caps.prediction_types, ref, w, h, limits, True, caps.annotation_metadata))
        items.append(DatasetItem(reference_id=ref, image_location=f"images/{ref}.png", width=w, height=h,
                                 metadata=draw(metadata_values(schema, limits.metadata_on_every_item)),
                                 annotations=anns, predictions=preds))
        if limits.frames_of_one_scene:
            items[-1].scene = FrameRef(scene_reference_id="0000", index=len(items) - 1)
    categories = [Category(id=i + 1, name=name) for i, name in enumerate(LABELS)]
    kp = next(c for c in categories if c.name == KEYPOINT_LABEL)
    kp.keypoints, kp.skeleton = list(KEYPOINT_NAMES), list(KEYPOINT_SKELETON)
    header = DatasetHeader(categories=categories)
    if limits.frames_of_one_scene:
        header.scenes["0000"] = Scene(reference_id="0000")
    return Dataset(header=header, items=items)
