"""The canonical annotation model.

The types and field names follow the Scale Nucleus annotation API, so a user of that API
feels at home; where Nucleus cannot hold something a format needs, the model goes further
and says so in the class docstring.

Conventions, everywhere in this module:

* 2D geometry is in **pixels**, origin at the **top-left** corner of the image, x to the
  right, y down, continuous coordinates (``[0, 0, 1, 1]`` covers the first pixel).
* A box is ``x, y, width, height`` with ``x, y`` the top-left corner.
* Vertex lists are stored **flat**: ``[x0, y0, x1, y1, ...]``; keypoints as COCO-style
  triplets ``[x0, y0, v0, ...]``. Nothing allocates a Python object per vertex on the
  read → write path; :class:`Point` and :class:`Keypoint` views are built on demand.
* 3D geometry is in **metres**; a cuboid is centre-based with yaw about +Z (see
  :class:`CuboidAnnotation`).
* ``metadata`` is user data (typed, shown and queried by tools); ``attributes`` holds
  format facts that are not geometry (COCO ``iscrowd``/``area``, KITTI
  ``truncated``/``occluded``/``alpha``, panoptic ``isthing``). Known attribute keys are
  listed in :data:`KNOWN_ATTRIBUTES`; a format keeps unknown source keys there too, so
  they survive a round trip.

Constructing a model validates it (the boundary: user code and file readers that want
checking). Readers on hot paths check their input themselves and build with
``model_construct``, which does not validate again.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    PrivateAttr,
    field_validator,
    model_validator,
)

Metadata = dict[str, JsonValue]
"""User metadata: JSON values keyed by name (see ``core/metadata.py`` for typing rules)."""

KNOWN_ATTRIBUTES: dict[str, str] = {
    "iscrowd": "COCO/panoptic: 0 or 1; 1 = the region covers a group of objects",
    "area": "COCO/panoptic: area in pixels as given by the source (never recomputed)",
    "bbox": "COCO/panoptic: the object's [x, y, w, h] when its main geometry is not a box",
    "category_id": "the source's integer category id",
    "num_keypoints": "COCO: the file's num_keypoints when it disagrees with the count of v > 0",
    "coco_absent": "COCO: standard keys (bbox, area, iscrowd, num_keypoints) the source left out",
    "isthing": "panoptic: 1 = countable thing, 0 = stuff",
    "truncated": "KITTI: 0..1 fraction outside the image (or the tracking variants); VOC: 0/1; kept as written",
    "occluded": "KITTI: 0..3 occlusion state (-1 in some result files), kept as written; CVAT and VOC: 0 or 1",
    "alpha": "KITTI: observation angle in radians (-10 = not set), kept as written",
    "dont_care": "KITTI: the row is a DontCare region",
    "score": "KITTI: a prediction's raw score as written (any range; confidence is it clipped to 0..1)",
    "kitti_text": "KITTI: the row's numbers verbatim when the writer's default formatting would differ",
    "track_id": "KITTI tracking: the integer track id as written (-1 for DontCare)",
    "z_order": "CVAT: drawing order of overlapping shapes (higher is nearer)",
    "source": "CVAT: who made the shape or track (manual, auto, semi-auto, file)",
    "keyframe": "CVAT video: 1 = a keyframe of its track, 0 = an interpolated shape",
    "label_attributes": "CVAT: the shape's <attribute name=...> values as {name: text}",
    "cvat_ellipse": "CVAT: [cx, cy, rx, ry, rotation] of an ellipse read as a polygon (written back as one)",
    "cvat_points": "CVAT: keypoints read from a <points> shape (written back as one, not as a skeleton)",
    "cvat_mask_box": "CVAT: a mask's [left, top, width, height] when larger than its foreground",
    "cvat_elements": "CVAT: per skeleton element extras {name: {source, keyframe, occluded, absent, ...}}",
    "cvat_track": "CVAT video: the track's attributes other than id/label/source/group_id (task_id, subset)",
    "cvat_xml": "CVAT: XML attributes of a shape the mapping does not read, kept verbatim and written back",
    "cvat": "CVAT item: <image> attributes other than name/width/height (id, subset, task_id), as text",
    "cvat_outside": "CVAT video item: the outside keyframes of tracks on this frame, verbatim",
    "difficult": "Pascal VOC: 1 = hard to recognise (left out of the devkit's evaluation), kept as written",
    "pose": "Pascal VOC: the object's view (Frontal, Left, Rear, Right, Unspecified), as written",
    "actions": "Pascal VOC: {action: 0/1} of a person (jumping, phoning, ...), in file order",
    "part": "Pascal VOC: the box is a <part> (head, hand, foot) of the object box with its group_id",
    "voc_text": "Pascal VOC: bndbox corner text the writer would print differently, kept verbatim",
    "voc_extra": "Pascal VOC: unknown XML elements (tag, attrib, text, children, position) kept for writing",
    "voc_instance": "Pascal VOC: SegmentationObject value of a mask that has no XML object",
    "split": "the dataset split the item belongs to (YOLO train/val/test folders, VOC ImageSets/Main)",
}

_STRICT = ConfigDict(extra="forbid", validate_assignment=False, allow_inf_nan=False, defer_build=True)
"""``defer_build``: a model's validator and serializer are built on its first use, not at
import; readers build most items with ``model_construct`` (no validator), and every process,
the CLI's and each worker's, imports this module (Lightly -> KITTI: ~0.02 s less each)."""

Number = Union[int, float]
"""A number kept as int or float as given, so ids built with ``str()`` match Nucleus's."""


def _flatten_points(value: Any, *, dims: int = 2) -> Any:
    """Accept ``[Point, ...]``, ``[{"x":..,"y":..}, ...]``, ``[(x, y), ...]`` or a flat list."""
    if isinstance(value, np.ndarray):
        return [float(v) for v in value.reshape(-1)]
    if not isinstance(value, (list, tuple)) or not value:
        return value
    first = value[0]
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        return list(value)
    flat: list[Any] = []
    keys = ("x", "y", "z")[:dims]
    for point in value:
        if isinstance(point, BaseModel):
            flat.extend(getattr(point, k) for k in keys)
        elif isinstance(point, dict):
            flat.extend(point.get(k) for k in keys)
        else:
            flat.extend(point)
    return flat


# --------------------------------------------------------------------------- points


def _positional(names: tuple[str, ...], args: tuple[Any, ...], data: dict[str, Any]) -> dict[str, Any]:
    """Merge positional arguments into keyword data, so ``Point(100, 100)`` works as the
    Nucleus SDK writes it (pydantic models take keywords only)."""
    if len(args) > len(names):
        raise TypeError(f"takes at most {len(names)} positional arguments ({', '.join(names)}), "
                        f"{len(args)} given")
    for name, value in zip(names, args):
        if name in data:
            raise TypeError(f"got {name!r} both as a positional and as a keyword argument")
        data[name] = value
    return data


class Point(BaseModel):
    """A 2D point in pixels, origin top-left, y down. ``Point(x, y)`` or keywords."""

    model_config = _STRICT
    x: float
    y: float

    def __init__(self, *args: Any, **data: Any) -> None:
        super().__init__(**_positional(("x", "y"), args, data))


class Point3D(BaseModel):
    """A 3D point in metres, in the frame of the annotation that holds it.
    ``Point3D(x, y, z)`` or keywords."""

    model_config = _STRICT
    x: float
    y: float
    z: float

    def __init__(self, *args: Any, **data: Any) -> None:
        super().__init__(**_positional(("x", "y", "z"), args, data))


class LidarPoint(BaseModel):
    """One LiDAR return: position in metres and intensity ``i`` (KITTI: reflectance 0..1)."""

    model_config = _STRICT
    x: float
    y: float
    z: float
    i: float | None = None


Visibility = Literal[0, 1, 2]


class Keypoint(BaseModel):
    """One keypoint, with COCO's three visibility states.

    ``visibility``: 0 = not labelled (``x``/``y`` are meaningless, shown as None),
    1 = labelled but hidden, 2 = labelled and visible. Nucleus's boolean ``visible`` is
    derived (``visibility == 2``); a Nucleus keypoint ``{"visible": false}`` with
    coordinates reads as 1, with null coordinates as 0.
    """

    model_config = _STRICT
    x: float | None = None
    y: float | None = None
    visibility: Visibility = 2

    def __init__(self, *args: Any, **data: Any) -> None:
        """``Keypoint(x, y)``, ``Keypoint(x, y, visible)``, ``Keypoint(visible=False)`` (the
        Nucleus SDK's order) or keywords."""
        super().__init__(**_positional(("x", "y", "visible"), args, data))

    @model_validator(mode="before")
    @classmethod
    def _from_nucleus(cls, data: Any) -> Any:
        if isinstance(data, dict) and "visible" in data:
            data = dict(data)
            visible = data.pop("visible")
            if "visibility" not in data:
                has_xy = data.get("x") is not None and data.get("y") is not None
                data["visibility"] = 2 if visible else (1 if has_xy else 0)
        return data

    @model_validator(mode="after")
    def _labelled_needs_xy(self) -> Keypoint:
        if self.visibility > 0 and (self.x is None or self.y is None):
            raise ValueError("a labelled keypoint (visibility 1 or 2) needs x and y")
        return self

    @property
    def visible(self) -> bool:
        """Nucleus's view: True only for visibility 2."""
        return self.visibility == 2


# --------------------------------------------------------------------------- annotations


class _AnnotationBase(BaseModel):
    """Fields every annotation has (as in Nucleus) plus annobridge's two additions.

    ``reference_id`` is the dataset item's id (filled in from the item when omitted).
    ``annotation_id`` is unique per item when set. ``group_id`` links annotations that
    describe one object in one item — a COCO object's polygon and keypoints, a KITTI
    object's 2D box and cuboid — so writers of formats that store them as one record can
    join them again. ``confidence`` (0..1) and ``class_pdf`` (label → probability) are set
    on predictions only.
    """

    model_config = _STRICT
    reference_id: str | None = None
    annotation_id: str | None = None
    group_id: str | None = None
    track_reference_id: str | None = None
    metadata: Metadata = Field(default_factory=dict)
    attributes: dict[str, Any] = Field(default_factory=dict)
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    class_pdf: dict[str, float] | None = None


class BoxAnnotation(_AnnotationBase):
    """An axis-aligned 2D box: ``x, y`` = top-left corner, ``width, height``, in pixels.

    Without an ``annotation_id`` a box gets Nucleus's automatic id
    ``f"{label}-{x}-{y}-{width}-{height}-{reference_id}"`` once its reference id is known,
    so re-importing the same box is idempotent.
    """

    type: Literal["box"] = "box"
    label: str
    x: Number
    y: Number
    width: Number = Field(ge=0)
    height: Number = Field(ge=0)
    embedding_vector: list[float] | None = None

    @model_validator(mode="after")
    def _auto_id(self) -> BoxAnnotation:
        if self.annotation_id is None and self.reference_id is not None:
            self.annotation_id = auto_annotation_id(self)
        return self


class OrientedBoxAnnotation(_AnnotationBase):
    """A rotated 2D box (YOLO OBB, CVAT ``rotation``, Label Studio rotated rectangles).

    ``cx, cy`` is the centre in pixels; ``width`` runs along the box's own x axis and
    ``height`` along its y axis; ``rotation`` is in **degrees, clockwise as seen on the
    image** (x right, y down), about the centre, as CVAT writes it. Nucleus has no oriented
    box: this is an annobridge addition, named in the same style.

    :meth:`corners` gives the 4 corners flat, starting at the box's own top-left corner and
    going clockwise on screen (top-left, top-right, bottom-right, bottom-left before
    rotation); :meth:`from_corners` is its inverse for a rectangle.
    """

    type: Literal["oriented_box"] = "oriented_box"
    label: str
    cx: float
    cy: float
    width: Number = Field(ge=0)
    height: Number = Field(ge=0)
    rotation: float = 0.0

    def corners(self) -> list[float]:
        """``[x0, y0, x1, y1, x2, y2, x3, y3]``: top-left, top-right, bottom-right, bottom-left
        of the unrotated box, each turned by ``rotation`` about the centre."""
        import math

        t = math.radians(self.rotation)
        c, s = math.cos(t), math.sin(t)
        hw, hh = self.width / 2, self.height / 2
        out: list[float] = []
        for dx, dy in ((-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh)):
            out += [self.cx + dx * c - dy * s, self.cy + dx * s + dy * c]
        return out

    @staticmethod
    def fields_from_corners(corners: Sequence[float]) -> dict[str, float]:
        """``cx, cy, width, height, rotation`` of the rectangle with these 4 corners, in the
        order :meth:`corners` gives them (the inverse of :meth:`corners` up to float error).

        The centre is the corners' mean, ``width`` the first edge, ``height`` the second, and
        ``rotation`` the first edge's direction in degrees in ``(-180, 180]``.
        """
        import math

        if len(corners) != 8:
            raise ValueError(f"an oriented box has 4 corners (8 numbers), got {len(corners)} numbers")
        x0, y0, x1, y1, x2, y2, x3, y3 = (float(v) for v in corners)
        return {
            "cx": (x0 + x1 + x2 + x3) / 4,
            "cy": (y0 + y1 + y2 + y3) / 4,
            "width": math.hypot(x1 - x0, y1 - y0),
            "height": math.hypot(x2 - x1, y2 - y1),
            "rotation": math.degrees(math.atan2(y1 - y0, x1 - x0)),
        }


class LineAnnotation(_AnnotationBase):
    """An open polyline. ``vertices`` is flat ``[x0, y0, x1, y1, ...]`` in pixels.

    The constructor also takes Nucleus-style ``[Point, ...]`` or ``[{"x":..,"y":..}]``.
    """

    type: Literal["line"] = "line"
    label: str
    vertices: list[float]

    @field_validator("vertices", mode="before")
    @classmethod
    def _flat(cls, value: Any) -> Any:
        return _flatten_points(value)

    @field_validator("vertices")
    @classmethod
    def _check(cls, v: list[float]) -> list[float]:
        if len(v) % 2 or len(v) < 4:
            raise ValueError(f"a line needs at least 2 points as x, y pairs, got {len(v)} numbers")
        return v

    @property
    def points(self) -> list[Point]:
        v = self.vertices
        return [Point.model_construct(x=v[i], y=v[i + 1]) for i in range(0, len(v), 2)]


class PolygonAnnotation(_AnnotationBase):
    """A closed polygon, possibly in several rings that together form one object.

    ``rings`` is a list of flat rings ``[x0, y0, x1, y1, ...]`` (pixels, implicitly
    closed: the first vertex is not repeated). COCO objects made of several parts are one
    annotation with several rings; Nucleus holds a single ring. The constructor also takes
    Nucleus's ``vertices=[Point, ...]`` for a single ring.
    """

    type: Literal["polygon"] = "polygon"
    label: str
    rings: list[list[float]]
    embedding_vector: list[float] | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_vertices(cls, data: Any) -> Any:
        if isinstance(data, dict) and "vertices" in data:
            data = dict(data)
            if "rings" in data:
                raise ValueError("give either vertices (one ring) or rings, not both")
            data["rings"] = [_flatten_points(data.pop("vertices"))]
        return data

    @field_validator("rings")
    @classmethod
    def _check(cls, rings: list[list[float]]) -> list[list[float]]:
        if not rings:
            raise ValueError("a polygon needs at least one ring")
        for n, ring in enumerate(rings):
            if len(ring) % 2 or len(ring) < 6:
                raise ValueError(
                    f"ring {n} needs at least 3 points as x, y pairs, got {len(ring)} numbers"
                )
        return rings

    @property
    def vertices(self) -> list[Point]:
        """The first ring as Nucleus-style points."""
        ring = self.rings[0]
        return [Point.model_construct(x=ring[i], y=ring[i + 1]) for i in range(0, len(ring), 2)]


class KeypointsAnnotation(_AnnotationBase):
    """Named keypoints of one object.

    ``keypoints`` is flat COCO-style triplets ``[x, y, visibility] * len(names)`` in
    pixels, visibility as in :class:`Keypoint` (0 not labelled, 1 hidden, 2 visible).
    ``skeleton`` lists edges as pairs of **0-based** indices into ``names`` (COCO's are
    1-based; the COCO plugin converts). The constructor also takes ``[Keypoint, ...]``
    or Nucleus dicts ``{"x", "y", "visible"}``.
    """

    type: Literal["keypoints"] = "keypoints"
    label: str
    keypoints: list[float]
    names: list[str]
    skeleton: list[tuple[int, int]] | None = None

    @field_validator("keypoints", mode="before")
    @classmethod
    def _flat(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)) and value and not isinstance(value[0], (int, float)):
            flat: list[float] = []
            for kp in value:
                kp = kp if isinstance(kp, Keypoint) else Keypoint.model_validate(kp)
                if kp.visibility == 0:
                    flat.extend((0.0, 0.0, 0))
                else:
                    flat.extend((kp.x, kp.y, kp.visibility))  # type: ignore[arg-type]
            return flat
        return value

    @model_validator(mode="after")
    def _check(self) -> KeypointsAnnotation:
        k = len(self.names)
        if len(self.keypoints) != 3 * k:
            raise ValueError(
                f"keypoints has {len(self.keypoints)} numbers, expected 3 x {k} names = {3 * k}"
            )
        if len(set(self.names)) != k:
            raise ValueError("keypoint names must be unique")
        for v in self.keypoints[2::3]:
            if v not in (0, 1, 2):
                raise ValueError(f"keypoint visibility must be 0, 1 or 2, got {v}")
        for a, b in self.skeleton or ():
            if not (0 <= a < k and 0 <= b < k):
                raise ValueError(f"skeleton edge ({a}, {b}) is out of range 0..{k - 1} (0-based)")
        return self

    @property
    def points(self) -> list[Keypoint]:
        kp = self.keypoints
        out = []
        for i in range(0, len(kp), 3):
            v = int(kp[i + 2])
            out.append(
                Keypoint.model_construct(
                    x=None if v == 0 else kp[i], y=None if v == 0 else kp[i + 1], visibility=v
                )
            )
        return out


CuboidFrame = Literal["lidar", "camera"]


class CuboidAnnotation(_AnnotationBase):
    """A 3D box: centre ``position``, ``dimensions`` (x = length, y = width, z = height),
    ``yaw`` in radians.

    ``frame`` declares the coordinate frame:

    * ``"lidar"`` (Nucleus's convention): the point cloud's frame, z up; yaw is about +Z,
      counter-clockwise from +X, and the length axis points along (cos yaw, sin yaw, 0).
    * ``"camera"``: KITTI's rectified camera frame (x right, y down, z forward) when no
      calibration was available; ``position`` is still the geometric centre and ``yaw``
      is about the up axis (−Y), i.e. ``yaw = −rotation_y`` of KITTI.
    """

    type: Literal["cuboid"] = "cuboid"
    label: str
    position: Point3D
    dimensions: Point3D
    yaw: float
    frame: CuboidFrame = "lidar"

    @field_validator("dimensions")
    @classmethod
    def _positive(cls, d: Point3D) -> Point3D:
        if min(d.x, d.y, d.z) < 0:
            raise ValueError(f"cuboid dimensions must be >= 0, got {d.x}, {d.y}, {d.z}")
        return d


class CategoryAnnotation(_AnnotationBase):
    """A class label for a whole item; ``taxonomy_name`` names its taxonomy."""

    type: Literal["category"] = "category"
    label: str
    taxonomy_name: str | None = None


class MultiCategoryAnnotation(_AnnotationBase):
    """Several class labels for a whole item (supported here, unlike Nucleus)."""

    type: Literal["multicategory"] = "multicategory"
    labels: list[str]
    taxonomy_name: str | None = None


class SceneCategoryAnnotation(_AnnotationBase):
    """A class label for a whole scene. Lives on :class:`Scene`, never on an item.

    Nucleus writes it as ``"type": "category"`` with the scene's reference id; the model
    keeps scene and item categories apart.
    """

    type: Literal["scene_category"] = "scene_category"
    label: str
    taxonomy_name: str | None = None


class ObjectMaskAnnotation(_AnnotationBase):
    """One object's binary mask as a COCO RLE, column-major (Fortran order).

    ``size`` is ``[height, width]``; ``counts`` is the compressed string or the
    uncompressed list of run lengths, kept in the form it was read in. Masks of different
    objects may overlap; they are never merged into the item's index mask. Use
    :meth:`to_array` and :meth:`from_array` (pycocotools) to get pixels.
    """

    type: Literal["object_mask"] = "object_mask"
    label: str
    size: tuple[int, int]
    counts: str | list[int]

    @model_validator(mode="after")
    def _check(self) -> ObjectMaskAnnotation:
        h, w = self.size
        if h < 0 or w < 0:
            raise ValueError(f"mask size must be [height, width] >= 0, got {list(self.size)}")
        if isinstance(self.counts, list) and sum(self.counts) != h * w:
            raise ValueError(
                f"RLE counts sum to {sum(self.counts)}, expected height x width = {h * w}"
            )
        return self

    def rle(self) -> dict[str, Any]:
        """The mask as a compressed RLE dict pycocotools accepts (``counts`` as bytes)."""
        from pycocotools import mask as mask_utils

        h, w = self.size
        if isinstance(self.counts, str):
            return {"size": [h, w], "counts": self.counts.encode("ascii")}
        return mask_utils.frPyObjects({"size": [h, w], "counts": list(self.counts)}, h, w)

    def to_array(self) -> np.ndarray:
        """Decode to a ``(height, width)`` uint8 array of 0/1."""
        from pycocotools import mask as mask_utils

        return mask_utils.decode(self.rle())

    @classmethod
    def from_array(cls, mask: np.ndarray, label: str, **fields: Any) -> ObjectMaskAnnotation:
        """Encode a 2D array (non-zero = inside) as compressed RLE."""
        from pycocotools import mask as mask_utils

        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8, copy=False)))
        return cls(label=label, size=tuple(rle["size"]), counts=rle["counts"].decode("ascii"), **fields)


class Segment(BaseModel):
    """Maps one value (``index``) of a segmentation's index mask to a label.

    For semantic segmentation there is one Segment per class, for instance or panoptic
    segmentation one per object (several may share a label). ``attributes`` keeps format
    facts such as panoptic ``isthing``/``iscrowd``/``area``/``bbox``/``category_id``.
    """

    model_config = _STRICT
    label: str
    index: int = Field(ge=0)
    metadata: Metadata = Field(default_factory=dict)
    attributes: dict[str, Any] = Field(default_factory=dict)


MaskEncoding = Literal["index", "rgb"]


class IndexMask(BaseModel):
    """An item's index mask: a 2D integer array, one value per pixel, 0..2**24-1.

    Either a local PNG file (``location``, read lazily on :meth:`load`), an array built
    in memory (:meth:`from_array`), or PNG bytes in memory (:meth:`encoded`: encoded where
    the mask was made — in a worker process — and decoded only if someone reads the pixels;
    a writer that stores PNGs writes the bytes as they are). ``encoding`` says how the PNG
    stores the values:
    ``"index"`` = single channel 8- or 16-bit, the pixel value is the index (Nucleus);
    ``"rgb"`` = 8-bit RGB with index ``R + 256·G + 65536·B`` (COCO panoptic). Values are
    held as ``uint32`` so panoptic ids above 255 never wrap; writers narrow only when
    their format demands it (:func:`narrow_mask`).
    """

    model_config = ConfigDict(extra="forbid")
    location: str | None = None
    encoding: MaskEncoding = "index"
    _array: np.ndarray | None = PrivateAttr(default=None)
    _png: bytes | None = PrivateAttr(default=None)
    _expected: tuple[int | None, int | None] | None = PrivateAttr(default=None)

    def expect_size(self, width: int | None, height: int | None) -> None:
        """The item's size: :meth:`load` refuses a PNG whose header declares more pixels
        (before decoding it; see :func:`annobridge.core.limits.check_pixels`)."""
        self._expected = (width, height)

    @classmethod
    def encoded(cls, array: np.ndarray) -> IndexMask:
        """The mask as PNG bytes in its narrowest encoding (8-bit, 16-bit, or RGB above 65535)."""
        from annobridge.core.masks import encode_mask_png

        checked = cls.from_array(array).load()
        wide = bool(checked.size) and int(checked.max()) >= 65536
        data, encoding = encode_mask_png(checked, "rgb" if wide else "index")
        mask = cls(encoding=encoding)  # type: ignore[arg-type]
        mask._png = data
        return mask

    @property
    def png_bytes(self) -> bytes | None:
        """The PNG held in memory (see :meth:`encoded`), or None."""
        return self._png

    @classmethod
    def from_array(cls, array: np.ndarray) -> IndexMask:
        array = np.asarray(array)
        if array.ndim != 2:
            raise ValueError(f"an index mask is 2D (height, width), got shape {array.shape}")
        if array.dtype.kind not in "iub":
            raise ValueError(f"an index mask holds integers, got dtype {array.dtype}")
        if array.size and (array.min() < 0 or array.max() >= 2**24):
            raise ValueError("index mask values must lie in 0..2**24-1")
        mask = cls()
        mask._array = array.astype(np.uint32, copy=False)
        return mask

    @property
    def is_loaded(self) -> bool:
        """Whether the mask is held in memory (pixels or PNG bytes) rather than only on disk."""
        return self._array is not None or self._png is not None

    def load(self) -> np.ndarray:
        """The mask as a ``(height, width)`` uint32 array, decoding the PNG if needed."""
        if self._array is None:
            from annobridge.core.masks import read_mask_png

            if self._png is not None:
                self._array = read_mask_png(io.BytesIO(self._png), self.encoding)
            elif self.location is not None and "://" in self.location and not self.location.startswith("file://"):
                self._array = _remote_mask(self.location, self.encoding, self._expected)
            elif self.location is not None:
                self._array = read_mask_png(self.location, self.encoding, expected=self._expected)
            else:
                raise ValueError("index mask has neither an array nor a location")
        return self._array


def _remote_mask(url: str, encoding: str, expected: tuple[int | None, int | None] | None) -> np.ndarray:
    """A mask PNG at a URL (``s3://``, any fsspec URL), fetched now, when it is used: at most
    :data:`annobridge.core.storage.MAX_MASK_BYTES`, its header checked before decoding."""
    from annobridge.core import storage
    from annobridge.core.errors import ReadError
    from annobridge.core.masks import read_mask_png

    try:
        return read_mask_png(storage.media_copy(url), encoding, expected=expected)
    except ReadError as exc:
        raise ReadError(exc.problem, file=url, fix=exc.fix) from None


class SegmentationAnnotation(_AnnotationBase):
    """An item's segmentation: one index mask and the :class:`Segment` list that labels it.

    At most one ground-truth segmentation per item (as in Nucleus). The mask has the
    item's height and width; pixels whose value has no Segment are unlabelled (void).
    """

    type: Literal["segmentation"] = "segmentation"
    mask: IndexMask
    annotations: list[Segment] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _from_mask_url(cls, data: Any) -> Any:
        """Accept the Nucleus SDK's ``mask_url=...`` for ``mask=IndexMask(location=...)``."""
        if isinstance(data, dict) and "mask_url" in data:
            data = dict(data)
            url = data.pop("mask_url")
            if "mask" in data:
                raise ValueError("give mask or mask_url, not both")
            data["mask"] = IndexMask(location=url)
        return data

    @field_validator("annotations")
    @classmethod
    def _unique_index(cls, segments: list[Segment]) -> list[Segment]:
        seen: set[int] = set()
        for s in segments:
            if s.index in seen:
                raise ValueError(f"segment index {s.index} appears twice")
            seen.add(s.index)
        return segments


Annotation = Annotated[
    Union[
        BoxAnnotation,
        OrientedBoxAnnotation,
        LineAnnotation,
        PolygonAnnotation,
        KeypointsAnnotation,
        CuboidAnnotation,
        CategoryAnnotation,
        MultiCategoryAnnotation,
        ObjectMaskAnnotation,
        SegmentationAnnotation,
    ],
    Field(discriminator="type"),
]
"""Any item-level annotation, discriminated on ``type``."""

ANNOTATION_TYPES: dict[str, type[_AnnotationBase]] = {
    "box": BoxAnnotation,
    "oriented_box": OrientedBoxAnnotation,
    "line": LineAnnotation,
    "polygon": PolygonAnnotation,
    "keypoints": KeypointsAnnotation,
    "cuboid": CuboidAnnotation,
    "category": CategoryAnnotation,
    "multicategory": MultiCategoryAnnotation,
    "object_mask": ObjectMaskAnnotation,
    "segmentation": SegmentationAnnotation,
    "scene_category": SceneCategoryAnnotation,
}
"""Annotation kind name → class. The kind names are the ``type`` values."""


_FIELDS_SET: dict[type, set[str]] = {}
_new, _set = object.__new__, object.__setattr__  # looked up once: construct runs once per annotation


def construct(cls: type[BaseModel], values: dict[str, Any]) -> Any:
    """Build a model from a complete, already checked field dict (readers' hot paths).

    What ``model_construct`` does, without its per-field default handling (about ten
    times faster); ``values`` must hold every field of ``cls``. Every field counts as
    set, so all instances of a class can share one fields-set object: pydantic only ever
    adds field names to it (a no-op here) or copies it.
    """
    fields_set = _FIELDS_SET.get(cls)
    if fields_set is None:
        fields_set = _FIELDS_SET[cls] = set(cls.model_fields)
    obj = _new(cls)
    _set(obj, "__dict__", values)
    _set(obj, "__pydantic_fields_set__", fields_set)
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj


def copied(model: BaseModel, update: dict[str, Any]) -> Any:
    """``model.model_copy(update=update)`` (a shallow copy with some fields replaced by
    already-checked values) without pydantic's generic copy (the engine copies nearly every
    item it fits: 50,000 on a large COCO set)."""
    obj = object.__new__(type(model))
    values = model.__dict__.copy()
    values.update(update)
    object.__setattr__(obj, "__dict__", values)
    object.__setattr__(obj, "__pydantic_fields_set__", model.__pydantic_fields_set__ | update.keys())
    extra, private = model.__pydantic_extra__, model.__pydantic_private__
    object.__setattr__(obj, "__pydantic_extra__", None if extra is None else extra.copy())
    object.__setattr__(obj, "__pydantic_private__", None if private is None else private.copy())
    return obj


_DEFAULTS: dict[type, tuple[tuple[str, Any, Any], ...]] = {}


def construct_with_defaults(cls: type[BaseModel], /, **values: Any) -> Any:
    """:func:`construct` from the fields given, the others at their defaults (a fresh list or
    dict from each default factory, a copy of a mutable default): ``model_construct`` without
    its per-call inspection of every default factory (about three times faster). ``values``
    must be already checked.
    """
    spec = _DEFAULTS.get(cls)
    if spec is None:
        spec = _DEFAULTS[cls] = tuple(
            (name, info.default, info.default_factory
             or (info.default.copy if isinstance(info.default, (list, dict, set)) else None))
            for name, info in cls.model_fields.items())
    return construct(cls, {name: values[name] if name in values else (factory() if factory is not None else default)
                           for name, default, factory in spec})


def auto_annotation_id(box: BoxAnnotation) -> str:
    """Nucleus's automatic box id: ``label-x-y-width-height-reference_id``, ``str()`` of each
    number as given (``10`` and ``10.0`` give different ids, as in Nucleus)."""
    return f"{box.label}-{box.x}-{box.y}-{box.width}-{box.height}-{box.reference_id}"


# --------------------------------------------------------------------------- items and scenes


class FrameRef(BaseModel):
    """Places an item in a scene: which scene, which frame (0-based), which sensor."""

    model_config = _STRICT
    scene_reference_id: str
    index: int = Field(ge=0)
    sensor: str = "camera"


class DatasetItem(BaseModel):
    """One image or point cloud with its annotations and predictions.

    ``image_location`` / ``pointcloud_location`` is a local path or a URL (at most one of
    them); ``width``/``height`` in pixels when known. ``metadata`` is user metadata
    (``context_attachments`` and ``camera_params`` are reserved keys, as in Nucleus);
    ``attributes`` keeps format facts about the item (COCO image fields such as
    ``license``, KITTI calibration). ``scene`` is set for frames of a scene.
    """

    model_config = _STRICT
    reference_id: str
    image_location: str | None = None
    pointcloud_location: str | None = None
    width: int | None = Field(default=None, ge=0)
    height: int | None = Field(default=None, ge=0)
    metadata: Metadata = Field(default_factory=dict)
    attributes: dict[str, Any] = Field(default_factory=dict)
    annotations: list[Annotation] = Field(default_factory=list)
    predictions: list[Annotation] = Field(default_factory=list)
    scene: FrameRef | None = None

    @model_validator(mode="after")
    def _check(self) -> DatasetItem:
        if self.image_location is not None and self.pointcloud_location is not None:
            raise ValueError("an item is an image or a point cloud, not both")
        for ann in (*self.annotations, *self.predictions):
            if ann.reference_id is None:
                ann.reference_id = self.reference_id
                if isinstance(ann, BoxAnnotation) and ann.annotation_id is None:
                    ann.annotation_id = auto_annotation_id(ann)
            elif ann.reference_id != self.reference_id:
                raise ValueError(
                    f"annotation reference_id {ann.reference_id!r} differs from the item's "
                    f"{self.reference_id!r}"
                )
        problem = annotation_id_problem(self)
        if problem:
            raise ValueError(problem)
        return self

    @property
    def context_attachments(self) -> list[dict[str, Any]]:
        """Nucleus context attachments: ``metadata["context_attachments"]``."""
        value = self.metadata.get("context_attachments") or []
        return value if isinstance(value, list) else []  # type: ignore[return-value]


def annotation_id_problem(item: DatasetItem) -> str | None:
    """Why the item's annotation ids are invalid, or None.

    Explicit ``annotation_id``s are unique per item among ground truth and, separately,
    among predictions; an item has at most one ground-truth segmentation.
    """
    for name, anns in (("annotation", item.annotations), ("prediction", item.predictions)):
        if len(anns) < 2:
            continue  # nothing to repeat
        ids = list(map(_ID, anns))  # C-level passes: the engine checks every item it reads
        given = set(ids)
        given.discard(None)
        if len(given) != len(ids) - ids.count(None):  # the common case; find the culprit only on failure
            seen: set[str] = set()
            for aid in ids:
                if aid in seen:
                    return f"{name} id {aid!r} is used twice; annotation ids must be unique per item"
                if aid is not None:
                    seen.add(aid)
    if list(map(_TYPE, item.annotations)).count("segmentation") > 1:
        return "item has more than one ground-truth segmentation; merge them into one index mask"
    return None


_ID, _TYPE = attrgetter("annotation_id"), attrgetter("type")


class Scene(BaseModel):
    """An ordered sequence of frames (a video, a LiDAR sequence): the scene-level part.

    Frames are the items whose :class:`FrameRef` names this scene; the scene itself holds
    its metadata and scene-level categories.
    """

    model_config = _STRICT
    reference_id: str
    metadata: Metadata = Field(default_factory=dict)
    annotations: list[SceneCategoryAnnotation] = Field(default_factory=list)
    attributes: dict[str, Any] = Field(default_factory=dict)


# --------------------------------------------------------------------------- dataset header


class Category(BaseModel):
    """A class with a stable integer id (gaps allowed; 0 allowed).

    ``keypoints``/``skeleton`` form the keypoint schema of the class (skeleton 0-based).
    ``attributes`` keeps format facts (panoptic ``isthing``, ``color``; unknown keys).
    """

    model_config = _STRICT
    id: int
    name: str
    supercategory: str | None = None
    keypoints: list[str] | None = None
    skeleton: list[tuple[int, int]] | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)


class Taxonomy(BaseModel):
    """A named label set for category annotations (Nucleus ``add_taxonomy``)."""

    model_config = _STRICT
    name: str
    type: Literal["category", "multicategory"] = "category"
    labels: list[str]


class DatasetHeader(BaseModel):
    """What a dataset says about itself besides its items.

    ``info`` is free dataset-level data kept per source format (for example
    ``info["coco"] = {"info": ..., "licenses": ...}``). ``scenes`` maps a scene reference
    id to its :class:`Scene`; a reader sets a scene before it yields the scene's first
    frame.
    """

    model_config = _STRICT
    name: str | None = None
    categories: list[Category] = Field(default_factory=list)
    taxonomies: list[Taxonomy] = Field(default_factory=list)
    info: dict[str, Any] = Field(default_factory=dict)
    scenes: dict[str, Scene] = Field(default_factory=dict)

    def category_named(self, name: str) -> Category | None:
        for cat in self.categories:
            if cat.name == name:
                return cat
        return None


@dataclass
class Dataset:
    """A header and a stream of items.

    ``items`` may be a one-shot iterator (a streaming reader) or a list; call
    :meth:`materialize` to hold it in memory and iterate more than once. ``total`` is the
    number of items when a streaming reader knows it up front (drives progress bars).
    """

    header: DatasetHeader = field(default_factory=DatasetHeader)
    items: Iterable[DatasetItem] = field(default_factory=list)
    source: str | None = None
    format: str | None = None
    total: int | None = None

    def __iter__(self) -> Iterator[DatasetItem]:
        return iter(self.items)

    def materialize(self) -> Dataset:
        if not isinstance(self.items, list):
            self.items = list(self.items)
        return self

    @classmethod
    def of(cls, items: Sequence[DatasetItem] | Iterable[DatasetItem], header: DatasetHeader | None = None) -> Dataset:
        return cls(header=header or DatasetHeader(), items=items)


@dataclass
class MaterializedDataset(Dataset):
    """A :class:`Dataset` whose items are held in a list: what :func:`annobridge.load`
    returns unless asked to stream, so ``ds.items`` type-checks as ``list[DatasetItem]``."""

    items: list[DatasetItem] = field(default_factory=list)


def item_path(item: DatasetItem) -> Path | None:
    """The item's local image or point-cloud path, when it is a local file."""
    loc = item.image_location or item.pointcloud_location
    if loc is None or "://" in loc:
        return None
    return Path(loc)
