"""Derive the geometry a target format holds from the geometry an object has.

When a target cannot hold an annotation's kind, the engine (``converters/engine.py``
``fit_to``) asks this module for the richest kind the target does hold and converts the
annotation instead of dropping it; the report counts it under ``converted`` ("polygon ->
box"). One function per conversion, each exact where exactness is possible:

* polygon -> object mask: pycocotools ``frPyObjects`` + ``merge``, exactly what
  ``COCO.annToMask`` does, so the pixels are identical.
* object mask -> polygon: marching squares (scikit-image ``find_contours`` at level 0.5 on
  the zero-padded mask). The contour runs through the midpoints of pixel edges, so
  pycocotools rasterises it back to the same pixels. Measured against OpenCV
  ``findContours`` (pixel-centre contours, +0.5 px): mean IoU of mask -> polygon -> mask
  1.0 vs 0.89 on the 60 masks of the COCO fixtures and 1.0 vs 0.964 on 10,000 generated
  RLE masks (``bench/derive_bench.py``), where OpenCV is about 4x faster; exactness won,
  and OpenCV would add a 50 MB wheel for one function. Collinear vertices are removed.
  Outer boundaries become rings; holes cannot be cut by the model's rings (COCO merges
  rings as a union), so they are filled and reported.
* polygon / object mask / keypoints -> box: the object's own COCO ``bbox`` attribute when
  present (kept exactly), else the tight extent (vertex extent, ``toBbox``, labelled
  keypoints).
* box -> polygon (4 corners, clockwise on screen from the top-left); box <-> oriented box
  (rotation 0; an oriented box's box is its corners' extent); oriented box -> polygon (its
  4 corners); polygon / mask -> oriented box (minimum-area rectangle of the convex hull).
* cuboid -> box: the projection of the 8 corners into camera 2 (``core/camera.py``),
  clipped to the image, where the item carries calibration (``attributes["kitti_calib"]``
  or Nucleus ``metadata["camera_params"]``); otherwise nothing (the engine reports a drop).
* index mask (panoptic, semantic) <-> per-object masks is dataset-level work done by
  ``core/segmentation.py`` ``consolidate``; :func:`segmentation_view` picks the view a
  target needs.

Derived annotations keep label, ids, ``group_id``, confidence, metadata and attributes
(less the ``bbox`` attribute once it became the geometry).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from annobridge.core.formats import Capabilities, ConversionReport
from annobridge.core.model import (
    BoxAnnotation,
    CuboidAnnotation,
    Dataset,
    DatasetItem,
    KeypointsAnnotation,
    ObjectMaskAnnotation,
    OrientedBoxAnnotation,
    PolygonAnnotation,
    construct,
)

LADDER: dict[str, tuple[str, ...]] = {
    "polygon": ("object_mask", "box", "oriented_box"),
    "object_mask": ("polygon", "box", "oriented_box"),
    "keypoints": ("box",),
    "box": ("oriented_box", "polygon"),
    "oriented_box": ("polygon", "box"),
    "cuboid": ("box",),
}
"""Per source kind, the kinds it can become, richest first (the first one the target holds
is chosen, unless ``geometry`` names another that fits)."""

GEOMETRIES = {"box": "box", "polygon": "polygon", "mask": "object_mask"}
"""``--geometry`` choices -> model kinds."""

Box = tuple[float, float, float, float]
"""x, y, width, height in pixels."""

Losses = list[tuple[str, str, int]]
"""What a derivation could not carry: (what, reason, count), as ``ConversionReport.drop`` takes."""


# --------------------------------------------------------------------------- pixel conversions


def polygon_to_rle(rings: Sequence[Sequence[float]], height: int, width: int) -> dict[str, Any]:
    """The compressed RLE of the union of ``rings``, as pycocotools ``annToRLE`` builds it."""
    from pycocotools import mask as mask_utils

    rles = mask_utils.frPyObjects([[float(v) for v in ring] for ring in rings], height, width)
    return mask_utils.merge(rles)


def _drop_collinear(xy: np.ndarray) -> np.ndarray:
    """``xy`` (n, 2), closed implicitly, without vertices that lie on a straight run."""
    prev = np.roll(xy, 1, axis=0)
    nxt = np.roll(xy, -1, axis=0)
    cross = (xy[:, 0] - prev[:, 0]) * (nxt[:, 1] - xy[:, 1]) - (xy[:, 1] - prev[:, 1]) * (nxt[:, 0] - xy[:, 0])
    return xy[np.abs(cross) > 1e-9]


def mask_to_rings(mask: np.ndarray) -> tuple[list[list[float]], int]:
    """The outer boundaries of a binary ``(height, width)`` mask as flat rings, and the
    number of holes (inner boundaries) left out.

    Coordinates are continuous pixels (the top-left corner of pixel (0, 0) is (0, 0)); each
    ring runs through the midpoints of the edges between inside and outside pixels.
    """
    from skimage.measure import find_contours

    mask = np.asarray(mask, dtype=np.uint8)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return [], 0
    top, left = int(rows[0]), int(cols[0])  # trace the object's extent only, not the whole image
    padded = np.pad(mask[top:rows[-1] + 1, left:cols[-1] + 1], 1)
    rings: list[list[float]] = []
    holes = 0
    for contour in find_contours(padded, 0.5, positive_orientation="high"):
        pts = contour[:-1] if len(contour) > 1 and (contour[0] == contour[-1]).all() else contour
        # (row, col) of the padded crop -> (x, y) continuous: left + col - 1 + 0.5, top + row - 1 + 0.5
        xy = np.stack([pts[:, 1] + (left - 0.5), pts[:, 0] + (top - 0.5)], axis=1)
        area2 = float(np.dot(xy[:, 0], np.roll(xy[:, 1], -1)) - np.dot(xy[:, 1], np.roll(xy[:, 0], -1)))
        if area2 > 0:  # find_contours(positive_orientation="high") winds holes this way
            holes += 1
            continue
        xy = _drop_collinear(xy)
        if len(xy) >= 3:
            rings.append([round(float(v), 2) for v in xy.reshape(-1)])
    return rings, holes


def rle_to_rings(ann: ObjectMaskAnnotation) -> tuple[list[list[float]], int]:
    """:func:`mask_to_rings` of an object mask."""
    return mask_to_rings(ann.to_array())


# --------------------------------------------------------------------------- boxes


def coco_bbox(attributes: dict[str, Any]) -> Box | None:
    """The object's own COCO ``bbox`` attribute, when it is a valid ``[x, y, w, h]``."""
    bb = attributes.get("bbox")
    if type(bb) is list and len(bb) == 4 and type(sum(bb)) in (int, float) and bb[2] >= 0 and bb[3] >= 0:
        return bb[0], bb[1], bb[2], bb[3]
    return None


def extent(xs: Sequence[float], ys: Sequence[float]) -> Box | None:
    """The tight box around points, or None without points."""
    if not len(xs):
        return None
    x0, y0 = min(xs), min(ys)
    return x0, y0, max(xs) - x0, max(ys) - y0


def polygon_box(rings: Sequence[Sequence[float]]) -> Box | None:
    """The extent of all vertices of all rings (min and max of each ring's x and y slices;
    no list of all vertices is built)."""
    parts = [r for r in rings if len(r) >= 2]
    if not parts:
        return None
    x0 = min([min(r[0::2]) for r in parts])
    y0 = min([min(r[1::2]) for r in parts])
    return x0, y0, max([max(r[0::2]) for r in parts]) - x0, max([max(r[1::2]) for r in parts]) - y0


def mask_box(ann: ObjectMaskAnnotation) -> Box | None:
    """pycocotools ``toBbox`` of the mask; None for an empty mask."""
    from pycocotools import mask as mask_utils

    x, y, w, h = (float(v) for v in mask_utils.toBbox(ann.rle()))
    return None if w == 0 or h == 0 else (x, y, w, h)


def keypoints_box(keypoints: Sequence[float]) -> Box | None:
    """The extent of the labelled keypoints (visibility > 0); None when none is labelled."""
    xs = [keypoints[i] for i in range(0, len(keypoints), 3) if keypoints[i + 2] > 0]
    ys = [keypoints[i + 1] for i in range(0, len(keypoints), 3) if keypoints[i + 2] > 0]
    return extent(xs, ys)


def box_corners(x: float, y: float, w: float, h: float) -> list[float]:
    """A box as a flat 4-corner ring, clockwise on screen from the top-left corner."""
    return [x, y, x + w, y, x + w, y + h, x, y + h]


def min_area_rect(xs: np.ndarray, ys: np.ndarray) -> dict[str, float] | None:
    """The minimum-area rectangle around points as oriented-box fields (``cx, cy, width,
    height, rotation``): the rectangle has one side on an edge of the convex hull."""
    pts = np.unique(np.stack([xs, ys], axis=1).astype(np.float64), axis=0)
    if len(pts) == 0:
        return None
    hull = _convex_hull(pts)
    if len(hull) < 3:
        box = extent(pts[:, 0].tolist(), pts[:, 1].tolist())
        assert box is not None
        return {"cx": box[0] + box[2] / 2, "cy": box[1] + box[3] / 2, "width": box[2], "height": box[3],
                "rotation": 0.0}
    edges = np.roll(hull, -1, axis=0) - hull
    angles = np.unique(np.mod(np.arctan2(edges[:, 1], edges[:, 0]), math.pi / 2))
    best: tuple[float, ...] | None = None
    for a in angles:
        c, s = math.cos(a), math.sin(a)
        u = hull[:, 0] * c + hull[:, 1] * s  # along the rotated x axis
        v = -hull[:, 0] * s + hull[:, 1] * c
        w, h = u.max() - u.min(), v.max() - v.min()
        if best is None or w * h < best[0] - 1e-9:
            mu, mv = (u.max() + u.min()) / 2, (v.max() + v.min()) / 2
            best = (w * h, mu * c - mv * s, mu * s + mv * c, w, h, math.degrees(a))
    assert best is not None
    _, cx, cy, w, h, rot = best
    return {"cx": float(cx), "cy": float(cy), "width": float(w), "height": float(h), "rotation": float(rot)}


def _convex_hull(pts: np.ndarray) -> np.ndarray:
    """Andrew's monotone chain on sorted unique points (n, 2)."""
    order = np.lexsort((pts[:, 1], pts[:, 0]))
    p = pts[order].tolist()

    def half(seq: list[list[float]]) -> list[list[float]]:
        out: list[list[float]] = []
        for q in seq:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) * (q[1] - out[-2][1])
                                     - (out[-1][1] - out[-2][1]) * (q[0] - out[-2][0])) <= 0:
                out.pop()
            out.append(q)
        return out

    lower, upper = half(p), half(p[::-1])
    return np.asarray(lower[:-1] + upper[:-1])


def cuboid_box(c: CuboidAnnotation, item: DatasetItem) -> Box | None:
    """The image box of a cuboid projected into camera 2, clipped to the image; None when
    the item carries no calibration or the cuboid is not in front of the camera."""
    from annobridge.core import camera

    calib = item.attributes.get("kitti_calib")
    if not (isinstance(calib, dict) and all(k in calib for k in ("P2", "R0_rect", "Tr_velo_to_cam"))):
        params = item.metadata.get("camera_params")
        if not isinstance(params, dict):
            return None
        try:
            calib = camera.calib_from_camera_params(params)
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            return None
    t = camera.transform_of(calib)
    l, w, h = c.dimensions.x, c.dimensions.y, c.dimensions.z
    p = (c.position.x, c.position.y, c.position.z)
    if c.frame == "camera":
        loc, ry = (p[0], p[1] + h / 2.0, p[2]), -c.yaw
    else:
        loc, ry = camera.lidar_to_camera(t, p, h, c.yaw)
    box = camera.box_2d(t.P2, camera.corners_camera(loc, h, w, l, ry), item.width, item.height)
    if box is None:
        return None
    left, top, right, bottom = box
    return left, top, right - left, bottom - top


# --------------------------------------------------------------------------- annotation level


def _common(ann: Any, drop_bbox: bool = False) -> dict[str, Any]:
    """The fields every annotation has, taken from ``ann`` (the ``bbox`` attribute left out
    when the new geometry is that box or replaces it)."""
    d = ann.__dict__
    attrs = d["attributes"]
    if drop_bbox and "bbox" in attrs:
        attrs = {k: v for k, v in attrs.items() if k != "bbox"}
    return {"reference_id": d["reference_id"], "annotation_id": d["annotation_id"], "group_id": d["group_id"],
            "track_reference_id": d["track_reference_id"], "metadata": d["metadata"], "attributes": attrs,
            "confidence": d["confidence"], "class_pdf": d["class_pdf"], "label": d["label"]}


def _box(ann: Any, box: Box | None) -> BoxAnnotation | None:
    """A box annotation for ``ann`` (fields as :func:`_common`, written out: this runs once
    per derived box, 400,000 times on a large COCO set)."""
    if box is None:
        return None
    d = ann.__dict__
    attrs = d["attributes"]
    if "bbox" in attrs:
        attrs = attrs.copy()
        del attrs["bbox"]
    return construct(BoxAnnotation, {
        "reference_id": d["reference_id"], "annotation_id": d["annotation_id"], "group_id": d["group_id"],
        "track_reference_id": d["track_reference_id"], "metadata": d["metadata"], "attributes": attrs,
        "confidence": d["confidence"], "class_pdf": d["class_pdf"], "label": d["label"],
        "type": "box", "x": box[0], "y": box[1], "width": box[2], "height": box[3], "embedding_vector": None})


def _polygon(ann: Any, rings: list[list[float]]) -> PolygonAnnotation | None:
    if not rings:
        return None
    values = _common(ann)
    values.update(type="polygon", rings=rings, embedding_vector=None)
    return construct(PolygonAnnotation, values)


def _oriented(ann: Any, fields: dict[str, float] | None) -> OrientedBoxAnnotation | None:
    if fields is None:
        return None
    values = _common(ann, drop_bbox=True)
    values.update(type="oriented_box", **fields)
    return construct(OrientedBoxAnnotation, values)


def _size(item: DatasetItem) -> tuple[int, int] | None:
    return (item.height, item.width) if item.height and item.width else None


def polygon_to_object_mask(ann: PolygonAnnotation, item: DatasetItem, losses: Losses) -> ObjectMaskAnnotation | None:
    """The polygon rasterised as ``annToMask`` does; None when the item's size is unknown."""
    size = _size(item)
    if size is None:
        return None
    rle = polygon_to_rle(ann.rings, *size)
    values = _common(ann)
    values.update(type="object_mask", size=size, counts=rle["counts"].decode("ascii"))
    return construct(ObjectMaskAnnotation, values)


def object_mask_to_polygon(ann: ObjectMaskAnnotation, item: DatasetItem, losses: Losses) -> PolygonAnnotation | None:
    """The mask's outer boundaries as rings; holes are filled and recorded in ``losses``."""
    rings, holes = rle_to_rings(ann)
    if holes:
        losses.append(("mask hole", "object_mask -> polygon: polygon rings cannot cut holes; filled", holes))
    return _polygon(ann, rings)


def polygon_to_box(ann: PolygonAnnotation, item: DatasetItem, losses: Losses) -> BoxAnnotation | None:
    return _box(ann, coco_bbox(ann.attributes) or polygon_box(ann.rings))


def object_mask_to_box(ann: ObjectMaskAnnotation, item: DatasetItem, losses: Losses) -> BoxAnnotation | None:
    return _box(ann, coco_bbox(ann.attributes) or mask_box(ann))


def keypoints_to_box(ann: KeypointsAnnotation, item: DatasetItem, losses: Losses) -> BoxAnnotation | None:
    return _box(ann, coco_bbox(ann.attributes) or keypoints_box(ann.keypoints))


def box_to_polygon(ann: BoxAnnotation, item: DatasetItem, losses: Losses) -> PolygonAnnotation | None:
    return _polygon(ann, [box_corners(ann.x, ann.y, ann.width, ann.height)])


def box_to_oriented_box(ann: BoxAnnotation, item: DatasetItem, losses: Losses) -> OrientedBoxAnnotation | None:
    return _oriented(ann, {"cx": ann.x + ann.width / 2, "cy": ann.y + ann.height / 2,
                           "width": ann.width, "height": ann.height, "rotation": 0.0})


def oriented_box_to_polygon(ann: OrientedBoxAnnotation, item: DatasetItem, losses: Losses) -> PolygonAnnotation | None:
    return _polygon(ann, [ann.corners()])


def oriented_box_to_box(ann: OrientedBoxAnnotation, item: DatasetItem, losses: Losses) -> BoxAnnotation | None:
    c = ann.corners()
    return _box(ann, extent(c[0::2], c[1::2]))


def _oriented_around(ann: Any, rings: list[list[float]]) -> OrientedBoxAnnotation | None:
    if not rings:
        return None
    xs = np.asarray([v for r in rings for v in r[0::2]])
    ys = np.asarray([v for r in rings for v in r[1::2]])
    return _oriented(ann, min_area_rect(xs, ys))


def polygon_to_oriented_box(ann: PolygonAnnotation, item: DatasetItem, losses: Losses) -> OrientedBoxAnnotation | None:
    return _oriented_around(ann, ann.rings)


def object_mask_to_oriented_box(ann: ObjectMaskAnnotation, item: DatasetItem,
                                losses: Losses) -> OrientedBoxAnnotation | None:
    return _oriented_around(ann, rle_to_rings(ann)[0])


def cuboid_to_box(ann: CuboidAnnotation, item: DatasetItem, losses: Losses) -> BoxAnnotation | None:
    return _box(ann, cuboid_box(ann, item))


DERIVATIONS = {
    ("polygon", "object_mask"): polygon_to_object_mask,
    ("polygon", "box"): polygon_to_box,
    ("polygon", "oriented_box"): polygon_to_oriented_box,
    ("object_mask", "polygon"): object_mask_to_polygon,
    ("object_mask", "box"): object_mask_to_box,
    ("object_mask", "oriented_box"): object_mask_to_oriented_box,
    ("keypoints", "box"): keypoints_to_box,
    ("box", "polygon"): box_to_polygon,
    ("box", "oriented_box"): box_to_oriented_box,
    ("oriented_box", "polygon"): oriented_box_to_polygon,
    ("oriented_box", "box"): oriented_box_to_box,
    ("cuboid", "box"): cuboid_to_box,
}
"""(from kind, to kind) -> function(annotation, item, losses) -> derived annotation or None;
the function appends to ``losses`` what the conversion cannot carry."""

WHY_NOT = {
    ("polygon", "object_mask"): "the item's width and height are unknown",
    ("object_mask", "box"): "the mask is empty",
    ("object_mask", "polygon"): "the mask is empty",
    ("keypoints", "box"): "no keypoint is labelled",
    ("cuboid", "box"): "no calibration on the item (kitti_calib or camera_params), or the cuboid "
                       "is not in front of the camera",
}
"""Why a derivation can give nothing, for the drop report."""


@functools.lru_cache(maxsize=256)
def candidates(kind: str, allowed: frozenset[str], geometry: str | None = None) -> tuple[str, ...]:
    """The kinds ``kind`` may become in a target holding ``allowed``, in the order tried.

    Args:
        kind: the annotation's kind.
        allowed: the target's kinds (ground truth or predictions).
        geometry: a preferred kind (``box``, ``polygon``, ``mask``): tried first when it fits.
    """
    ladder = [k for k in LADDER.get(kind, ()) if k in allowed]
    preferred = GEOMETRIES.get(geometry or "")
    if preferred in ladder:
        ladder.remove(preferred)
        ladder.insert(0, preferred)
    return tuple(ladder)


def boxes_on_read(caps: Capabilities, geometry: str | None = None) -> frozenset[str]:
    """The ground-truth kinds (polygon, object mask) that a target with ``caps`` gets as boxes:
    the first kind :func:`~annobridge.converters.engine.fit_to` would derive them into.

    The engine hands this to the reader of a plain conversion (``Context.boxes_on_read``): a
    reader whose record carries the object's box (COCO ``bbox``, which the derivation takes
    first) may build that box at once, after checking the record as always, instead of a
    polygon or mask the engine would only turn into the same box; it reports the conversion
    with :meth:`~annobridge.core.report.ConversionReport.read_as`.
    """
    allowed = caps.annotation_types
    return frozenset(k for k in ("polygon", "object_mask")
                     if k not in allowed and candidates(k, allowed, geometry)[:1] == ("box",))


def segmentation_view(caps: Capabilities) -> str | None:
    """The segmentation view a target needs, or None when it holds what it gets.

    A target without index masks but with objects gets per-object masks (``instance``,
    from which the engine derives polygons or boxes); a target with index masks and no
    object kind at all (no mask, polygon or box) gets one panoptic index mask per item.
    """
    kinds = caps.annotation_types | caps.prediction_types
    objects = {"object_mask", "polygon", "box", "oriented_box"} & kinds
    if "segmentation" not in kinds and objects:
        return "instance"
    if "segmentation" in kinds and not objects:
        return "panoptic"
    return None


def _needs_view(anns: list[Any], view: str) -> bool:
    kinds = {a.type for a in anns}  # one pass: this runs for every item of every conversion
    has_index = "segmentation" in kinds
    has_objects = "object_mask" in kinds or "polygon" in kinds
    if view == "instance":  # an item whose objects are there already keeps them, not copies
        return has_index and not has_objects
    return not has_index and has_objects


def in_view(dataset: Dataset, view: str, overlap: str, report: ConversionReport,
            unnumbered: list[tuple[int, list[bool]]] | None = None) -> Dataset:
    """``dataset`` with the items that need it consolidated to ``view`` (``core/segmentation.py``
    :func:`consolidate_item`), the rest passed through untouched; what became what is counted
    in ``report.converted`` ("segmentation -> object_mask", "polygon -> segmentation").

    Runs in this process: most items of most datasets need nothing, and sending each one
    to a worker would cost more than the check. ``--task`` runs the full consolidation.

    New instance masks are numbered over the whole dataset. A worker converting one shard
    passes ``unnumbered``: the masks keep no id, and (position in the stream, [ground truth,
    predictions] needing ids) is recorded for :func:`number_masks` in the driver.
    """
    from annobridge.core.segmentation import consolidate_item, drop_reason, make_plan

    plan = make_plan(dataset.header, view, overlap=overlap)
    note = f"segmentation converted to the {view} view the target needs (--task to choose another)"

    def stream(items: Iterable[DatasetItem]) -> Iterator[DatasetItem]:
        next_id = 1
        for position, item in enumerate(items):
            needs = [_needs_view(item.annotations, view), _needs_view(item.predictions, view)]
            if not any(needs):
                yield item
                continue
            if unnumbered is not None and view == "instance":
                unnumbered.append((position, needs))
            before = [{k: sum(1 for a in anns if a.type == k) for k in ("object_mask", "polygon")}
                      for anns in (item.annotations, item.predictions)]
            out, drops = consolidate_item(item, plan)
            for what, n in drops.items():
                report.drop(what, drop_reason(what, view), n)
            for prefix, anns, counts, need in zip(("", "prediction:"), (out.annotations, out.predictions),
                                                  before, needs):
                if not need:
                    continue
                if view == "instance":  # number new masks over the dataset, as consolidate does
                    if unnumbered is None:
                        next_id = number_masks(anns, next_id)
                    made = sum(1 for a in anns if a.type == "object_mask") - counts["object_mask"]
                    report.convert(prefix + "segmentation", "object_mask", made, consumed=1)
                else:  # every object became a segment of the item's one new index mask
                    first = True
                    for kind, n in counts.items():
                        if n:
                            report.convert(prefix + kind, "segmentation", n, made=int(first))
                            first = False
            if note not in report.notes:
                report.notes.append(note)
            yield out

    return Dataset(header=dataset.header, items=stream(dataset.items), source=dataset.source,
                   format=dataset.format, total=dataset.total)


def number_masks(anns: list[Any], next_id: int) -> int:
    """Give the new instance masks of one item (no ``annotation_id`` yet) the next free
    numbers from ``next_id``; returns the number to go on from."""
    used = {a.annotation_id for a in anns} | {a.group_id for a in anns}
    for a in anns:
        if a.type == "object_mask" and a.annotation_id is None:
            while str(next_id) in used:
                next_id += 1
            a.annotation_id = a.group_id = str(next_id)
            next_id += 1
    return next_id
