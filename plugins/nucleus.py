"""``nucleus``: Scale Nucleus payloads, one JSON object a line (the model's native serialization).

Files (``NAME`` = the destination without its suffix):

``NAME.jsonl`` (reading also takes a folder: every ``*.jsonl`` in it, sorted by name)
    One payload a line (compact UTF-8 JSON), each exactly what the Nucleus client's
    ``to_payload()`` writes (key names, key order, omissions), plus two keys the client ignores:
    ``"annotations"`` (the ground truth) and ``"predictions"``, lists of annotation and
    prediction payloads. A line is either

    * a **dataset item**: ``{"metadata", "reference_id", ["embedding_info"], ["width"],
      ["height"], "image_url", "annotations", ["predictions"]}``. A point-cloud item that is
      not part of a scene is written with ``"pointcloud_url"`` instead of ``"image_url"``
      (``DatasetItem.from_json`` reads it; Nucleus itself only takes point clouds inside a
      LidarScene).
    * a **LidarScene**: ``{"reference_id", "frames": [{<sensor>: <frame item>, ...}, ...],
      ["tracks"], ["metadata"], ["annotations"], ["predictions"]}`` where a frame item is an
      item payload with ``"url"`` and ``"type": "image" | "pointcloud"`` (no ``image_url``),
      and ``"camera_params"`` lifted from its ``metadata`` as the client does. Frames are
      0-indexed and contiguous; every frame has exactly one point cloud, always under the
      same sensor name. Written for a scene (items carrying ``scene=FrameRef(...)``, grouped
      while they come one after the other) that has at least one point-cloud item.
    * a **VideoScene**: ``{"reference_id", ["frame_rate"], ["metadata"], ["video_url"],
      ["upload_to_scale"], "frames": [<frame item>, ...], ["tracks"], ...}``: a scene of
      images only with one image per frame (``frame_rate`` comes from the scene's
      ``attributes`` when known; Nucleus needs one to upload).

    A scene line's ``"annotations"``/``"predictions"`` are its scene categories (payloads
    ``{"label", "type": "category", "geometry": {}, "reference_id": <scene>, "metadata",
    "task_id", ["taxonomy_name"]}``; predictions add ``confidence``). Each frame item
    carries its own ``"annotations"``/``"predictions"``.

Annotation payloads: exactly the client's ``to_payload()``: box, line, polygon, keypoints,
cuboid (``annotation_id``/``metadata``/``track_reference_id``/``task_id`` omitted when empty),
category and multicategory (no ``annotation_id``; ``taxonomy_name`` only when set), and
segmentation (``{"type": "mask", "mask_url", "annotations": [segments], "annotation_id",
"reference_id"}``; a segment is ``{"label", "index", ["metadata"]}``). Predictions add
``confidence`` and ``class_pdf`` only when set; keypoint predictions always carry a
``skeleton`` (``[]`` when there is none). The server keys ``task_id``, ``dataset_item_id``,
``item_id`` and ``dataset_id`` are kept as annotation ``attributes`` under those names.

``NAME.masks/``: segmentation index masks, 8-bit single-channel PNGs, pixel = ``Segment.index``;
``mask_url`` is relative to the ``.jsonl`` folder. The Nucleus client opens a local
``mask_url`` as it is written, i.e. against its working directory (``is_local_path``: any
scheme but http(s)/s3/gs): upload from the ``.jsonl`` folder, or use remote URLs. An index
above 255 (Nucleus masks are 8-bit) and a mask of another size than its item are
WriteErrors. Remote mask URLs are kept as they are.

``NAME.pointclouds/``: Nucleus pointcloud JSON (``{"points": [{"x","y","z","i"}]}``) written
for point-cloud items whose cloud is another file type (a KITTI ``.bin``); ``.json`` clouds
and URLs are referenced where they are. Clouds are never loaded at read time.

``NAME.dataset.json`` (optional sidecar, written only when there is something to say):
``{"name", "taxonomies": [{"taxonomy_name", "taxonomy_type", "labels"}], "annobridge":
{"categories": [...], "info": {...}}}``. ``taxonomies`` are the arguments of Nucleus's
``Dataset.add_taxonomy``; the ``annobridge`` part holds the header's categories (with
their ids, keypoint schemas, attributes) and free dataset info, which Nucleus has no place for.

Annotation ids: a box without an id gets Nucleus's own automatic id
(``label-x-y-width-height-reference_id``). Every other id-less annotation that has an
``annotation_id`` field gets ``<reference_id>-<kind>-<n>`` (``n`` = its position in the
item's list, ``-pred-`` for predictions; suffixed if that is taken), because Nucleus
collides on id-less keypoints of one label and on id-less lines/polygons/cuboids of one item.

The ``"annobridge"`` extension key (the client ignores it; written only when non-empty) keeps
what Nucleus cannot hold, on the payload that needs it:

* on an annotation/prediction payload: ``attributes`` (other than the server keys above),
  ``group_id``; ``annotation_id`` (a category's id, or ``null`` when the id was generated
  as above); ``metadata``/``track_reference_id``/``confidence``/``class_pdf`` on kinds whose
  payload lacks them (segmentation; confidence on ground truth); ``rings`` (a polygon's
  rings after the first); ``frame`` (``"camera"`` cuboids); ``skeleton: null`` (a keypoint
  prediction without skeleton); ``unlabelled_xy`` ({index: [x, y]} of not-labelled keypoints
  whose coordinates are not 0); ``segment_attributes`` ({index: attributes}).
* on an item payload: ``attributes`` (item format facts); ``annotations``/``predictions``:
  ``[{"at": position, "annotation": <canonical JSON>}]`` for kinds Nucleus does not have
  (``object_mask``; ``multicategory`` predictions); ``sensor`` (a video frame's sensor when it
  is not ``camera``) and ``frame_index`` (a frame's own index when it differs from its position).
* on a scene payload: ``attributes`` (other than ``frame_rate``, ``video_url``, ``tracks``,
  ``upload_to_scale``).

Write option ``strict=true`` omits every extension key and the sidecar's ``annobridge`` part
and reports each loss (counted per kind) instead; camera-frame cuboids are then dropped.

Keypoint visibility: COCO v=2 -> ``visible: true``; v=1 -> ``visible: false`` with x, y kept;
v=0 -> ``visible: false`` with x, y null, so all three states survive without the extension.

Write option ``incomplete_lidar_scenes=true`` writes a lidar scene whose frames do not all have
exactly one point cloud (a KITTI sequence with velodyne scans for some frames only) instead of
failing; Nucleus refuses such a scene on upload, and the report says so.

Write option ``renumber_segments=true``: a mask with an index above 255 (panoptic ids) has its
segments renumbered 1..n (pixels of no segment become 0), each segment keeping its original
index in ``attributes["original_index"]``; reported. Without it such a mask is a WriteError.

Write option ``booleans_as_strings=true`` writes metadata booleans as ``"true"``/``"false"``
(the format sheet's safe policy for Nucleus's metadata typing; reported, as it is lossy).

Locations: ``image_url`` is kept exactly as written, both ways (a relative path means what it
means to its producer, as a COCO ``file_name`` does; the Nucleus client resolves it against
its working directory). Masks and point clouds are files this format opens: relative ones
are resolved against the ``.jsonl`` folder when read, and ``.json`` clouds outside the output
are written relative to the output's folder.

Read option ``check_files=false`` skips the existence check of local masks and point clouds
(a stat per file; nothing is decoded at read time either way).

What is lost (without ``strict``): nothing the model holds. Metadata is written as it is
(booleans stay JSON booleans unless asked). A scene's frames are buffered until the scene
ends (payloads only, never point clouds), so the frames of one scene must come one after the
other. An empty segment ``metadata: {}`` comes back omitted (as ``null`` would), and
``width``/``height`` are written whenever known, also when 0. Note that the client's own
``DatasetItem.from_json`` only recognises scene frame URLs ending in ``jpg``, ``png`` or
``json``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError, to_json

from annobridge.core.errors import ReadError, WriteError
from annobridge.core.formats import (
    Capabilities,
    Context,
    Format,
    local_path,
    relative_location,
)
from annobridge.core.hookspecs import hookimpl
from annobridge.core.limits import load_json
from annobridge.core.masks import narrow_mask
from annobridge.core.metadata import ScopeSchema
from annobridge.core.model import (
    Annotation,
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
    Point3D,
    PolygonAnnotation,
    Scene,
    SceneCategoryAnnotation,
    Segment,
    SegmentationAnnotation,
    Taxonomy,
    annotation_id_problem,
    auto_annotation_id,
)
from annobridge.core.paths import contained, media_file, source_root
from annobridge.core.pointclouds import load_points, write_points_json

logger = logging.getLogger(__name__)

EXT = "annobridge"
SIDECAR_SUFFIX = ".dataset.json"
SERVER_KEYS = ("task_id", "dataset_item_id", "item_id", "dataset_id")
"""Nucleus keys kept as annotation attributes under the same name."""
_SERVER_SET = frozenset(SERVER_KEYS)
ITEM_NATIVE_ATTRIBUTES = ("embedding_info", "processed_url", "original_image_url", "dataset_item_id", "phash")
"""Item payload keys Nucleus exports besides the basic ones; kept as item attributes."""
SCENE_NATIVE_ATTRIBUTES = ("frame_rate", "video_url", "upload_to_scale", "tracks")
NON_NUCLEUS_KINDS = frozenset({"object_mask", "oriented_box"})
NON_NUCLEUS_PREDICTION_KINDS = frozenset({"object_mask", "oriented_box", "multicategory"})
CAMERA_PARAM_OPTIONAL = ("k1", "k2", "k3", "k4", "p1", "p2")

_ANNOTATION = TypeAdapter(Annotation)


class NucleusReadOptions(BaseModel):
    """Options for reading Nucleus payloads."""

    model_config = ConfigDict(extra="forbid")
    check_files: bool = True
    """Check at read time that local mask and point-cloud files exist (a stat, no decode)."""


class NucleusWriteOptions(BaseModel):
    """Options for writing Nucleus payloads."""

    model_config = ConfigDict(extra="forbid")
    strict: bool = False
    """Write pure Nucleus: no ``annobridge`` extension keys; every loss is reported."""
    incomplete_lidar_scenes: bool = False
    """Write a lidar scene whose frames do not all have exactly one point cloud (Nucleus refuses
    it on upload; noted in the report) instead of failing."""
    renumber_segments: bool = False
    """When a mask holds an index above 255, renumber its segments 1..n (the original index goes
    to the segment's ``attributes["original_index"]``; reported) instead of failing."""
    booleans_as_strings: bool = False
    """Write metadata booleans as the strings ``"true"``/``"false"`` (reported; whether Nucleus
    needs this is not verified, see the format sheet)."""
    frame_rate: int = Field(default=1, ge=1)
    """The ``frame_rate`` of a VideoScene whose scene has none (the client's ``validate()``
    needs one for a scene of image frames); each use is noted in the report."""


# --------------------------------------------------------------------------- reading


class _Bad(Exception):
    """A problem inside one payload, at a JSON pointer relative to the line."""

    def __init__(self, pointer: str, problem: str, fix: str | None = None) -> None:
        super().__init__(problem)
        self.pointer = pointer
        self.problem = problem
        self.fix = fix


def _tname(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"[:60]
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _obj(value: Any, ptr: str, what: str, allowed: frozenset[str] | None = None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Bad(ptr, f"{what} must be a JSON object, got {_tname(value)}")
    if allowed is not None and not allowed.issuperset(value):
        for key in value:
            if key not in allowed:
                raise _Bad(f"{ptr.rstrip('/')}/{key}", f"unknown key {key!r} in {what}; Nucleus has "
                           + ", ".join(sorted(allowed - {EXT})),
                           fix="remove it, or keep extra data under \"annobridge\"")
    return value


def _num(obj: dict[str, Any], key: str, ptr: str, *, required: bool = True, default: Any = None) -> Any:
    if key not in obj or obj[key] is None:
        if required:
            raise _Bad(f"{ptr}/{key}", f"{key} is missing, expected a number")
        return default
    v = obj[key]
    if not _is_num(v):
        raise _Bad(f"{ptr}/{key}", f"{key} must be a number, got {_tname(v)}")
    return v


def _str(obj: dict[str, Any], key: str, ptr: str, *, required: bool = False) -> str | None:
    v = obj.get(key)
    if v is None:
        if required:
            raise _Bad(f"{ptr}/{key}", f"{key} is missing, expected a string")
        return None
    if not isinstance(v, str):
        raise _Bad(f"{ptr}/{key}", f"{key} must be a string, got {_tname(v)}")
    return v


def _dict(obj: dict[str, Any], key: str, ptr: str) -> dict[str, Any]:
    v = obj.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise _Bad(f"{ptr}/{key}", f"{key} must be a JSON object, got {_tname(v)}")
    return v


def _list(obj: dict[str, Any], key: str, ptr: str, *, required: bool = False) -> list[Any]:
    v = obj.get(key)
    if v is None:
        if required:
            raise _Bad(f"{ptr}/{key}", f"{key} is missing, expected a list")
        return []
    if not isinstance(v, list):
        raise _Bad(f"{ptr}/{key}", f"{key} must be a list, got {_tname(v)}")
    return v


_BASE_KEYS = frozenset({"label", "type", "geometry", "reference_id", "annotation_id", "metadata",
                        "track_reference_id", *SERVER_KEYS, EXT})
_PRED_KEYS = frozenset({"confidence", "class_pdf"})
_KEYS = {
    "box": _BASE_KEYS | {"embedding_vector"},
    "polygon": _BASE_KEYS | {"embedding_vector"},
    "line": _BASE_KEYS,
    "keypoints": _BASE_KEYS,
    "cuboid": _BASE_KEYS,
    "category": (_BASE_KEYS - {"annotation_id"}) | {"taxonomy_name"},
    "multicategory": (_BASE_KEYS - {"annotation_id", "label"}) | {"labels", "taxonomy_name"},
    "mask": frozenset({"type", "mask_url", "annotations", "annotation_id", "reference_id", *SERVER_KEYS, EXT}),
}
_OPTIONAL_FIELDS = {
    cls: tuple(k for k in ("annotation_id", "group_id", "track_reference_id", "confidence", "class_pdf",
                           "taxonomy_name", "embedding_vector") if k in cls.model_fields)
    for cls in (BoxAnnotation, LineAnnotation, PolygonAnnotation, KeypointsAnnotation, CuboidAnnotation,
                CategoryAnnotation, MultiCategoryAnnotation, SegmentationAnnotation)
}
_KEYS_PRED = {kind: keys | (_PRED_KEYS if kind != "mask" else frozenset()) for kind, keys in _KEYS.items()}
_BOX_GEOM = frozenset({"x", "y", "width", "height"})
_VERTEX_GEOM = frozenset({"vertices"})
_KEYPOINTS_GEOM = frozenset({"keypoints", "names", "skeleton"})
_CUBOID_GEOM = frozenset({"position", "dimensions", "yaw"})
_EXT_ANN_KEYS = frozenset({"attributes", "group_id", "annotation_id", "metadata", "track_reference_id",
                           "confidence", "class_pdf", "rings", "frame", "skeleton", "unlabelled_xy",
                           "segment_attributes"})
_ITEM_KEYS = frozenset({"metadata", "reference_id", "ref_id", "image_url", "pointcloud_url", "width", "height",
                        "annotations", "predictions", EXT, *ITEM_NATIVE_ATTRIBUTES})
_FRAME_ITEM_KEYS = _ITEM_KEYS | {"url", "type", "camera_params"}
_SCENE_KEYS = frozenset({"reference_id", "frames", "metadata", "annotations", "predictions", EXT,
                         *SCENE_NATIVE_ATTRIBUTES})
_SCENE_CAT_KEYS = frozenset({"label", "type", "geometry", "reference_id", "metadata", "task_id",
                             "taxonomy_name", "confidence", "class_pdf", EXT})


@dataclass
class _Reader:
    """Parses one file's lines; holds what is needed to name places in errors."""

    path: Path
    context: Context
    check_files: bool
    header: DatasetHeader
    seen_items: dict[str, str] = field(default_factory=dict)
    lineno: int = 0

    @property
    def base(self) -> Path:
        return self.path.absolute().parent

    def where(self, pointer: str = "") -> str:
        return f"line {self.lineno}, #{pointer}" if pointer else f"line {self.lineno}"

    def error(self, bad: _Bad, item: str | None) -> ReadError:
        return ReadError(bad.problem, file=self.path, where=self.where(bad.pointer), item=item, fix=bad.fix)

    def location(self, loc: str | None) -> str | None:
        if loc is None:
            return None
        p = local_path(loc, self.base)
        return loc if p is None else str(p)

    # ---------------------------------------------------------------- items

    def items(self) -> Iterator[DatasetItem]:
        with open(self.path, "rb") as fh:  # bytes: a line that is not UTF-8 is one error, not the end
            for self.lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = _loads(line)
                except ReadError as exc:
                    truncated = not line.endswith(b"\n")
                    self.context.error(ReadError(
                        f"invalid JSON: {exc.problem}" + (" (the line is cut short)" if truncated else ""),
                        file=self.path, where=self.where(),
                        fix=exc.fix or "each line must be one complete JSON object (a Nucleus item or scene payload)",
                    ))
                    continue
                if not isinstance(obj, dict):
                    self.context.error(ReadError(f"a line must be a JSON object, got {_tname(obj)}",
                                                 file=self.path, where=self.where()))
                    continue
                if "frames" in obj or "video_url" in obj:
                    yield from self.scene(obj)
                else:
                    item = self.item(obj, "", None, None)
                    if item is not None:
                        yield item

    def _ref(self, obj: dict[str, Any], ptr: str) -> str:
        ref = obj.get("reference_id", obj.get("ref_id"))
        if not isinstance(ref, str) or not ref:
            raise _Bad(f"{ptr}/reference_id", f"reference_id must be a non-empty string, got {_tname(ref)}",
                       fix="every Nucleus item needs a reference_id")
        return ref

    def item(self, obj: Any, ptr: str, scene: FrameRef | None, frame_sensor: str | None) -> DatasetItem | None:
        ref = None
        try:
            allowed = _FRAME_ITEM_KEYS if scene is not None else _ITEM_KEYS | {"url", "type"}
            _obj(obj, ptr or "/", "item payload", allowed)
            ref = self._ref(obj, ptr)
            if ref in self.seen_items:
                raise _Bad(f"{ptr}/reference_id", f"reference_id {ref!r} is used twice (first at {self.seen_items[ref]})",
                           fix="reference ids must be unique in a dataset")
            self.seen_items[ref] = self.where(ptr)
            metadata = dict(_dict(obj, "metadata", ptr))
            image = _str(obj, "image_url", ptr)
            cloud = _str(obj, "pointcloud_url", ptr)
            url = _str(obj, "url", ptr)
            kind = _str(obj, "type", ptr)
            if kind is not None and kind not in ("image", "pointcloud"):
                raise _Bad(f"{ptr}/type", f"item type must be \"image\" or \"pointcloud\", got {kind!r}")
            if url is not None:
                if image or cloud:
                    raise _Bad(f"{ptr}/url", "give url or image_url/pointcloud_url, not both")
                if kind == "pointcloud" or (kind is None and url.endswith(".json")):
                    cloud = url
                else:
                    image = url
            if image and cloud:
                raise _Bad(ptr or "/", "an item has image_url or pointcloud_url, not both")
            self._contain(cloud, f"{ptr}/url" if url else f"{ptr}/pointcloud_url", "pointcloud_url")
            if "camera_params" in obj and "camera_params" not in metadata:
                metadata["camera_params"] = _dict(obj, "camera_params", ptr)
            width = _num(obj, "width", ptr, required=False)
            height = _num(obj, "height", ptr, required=False)
            for key, v in (("width", width), ("height", height)):
                if v is not None and (not isinstance(v, int) or v < 0):
                    raise _Bad(f"{ptr}/{key}", f"{key} must be a whole number >= 0, got {v}")
            attributes = {k: obj[k] for k in ITEM_NATIVE_ATTRIBUTES if k in obj}
            ext = _obj(obj.get(EXT, {}), f"{ptr}/{EXT}", "annobridge extension",
                       frozenset({"attributes", "annotations", "predictions", "sensor", "frame_index"}))
            attributes.update(_dict(ext, "attributes", f"{ptr}/{EXT}"))
            if not isinstance(ext.get("sensor", ""), str):
                raise _Bad(f"{ptr}/{EXT}/sensor", f"sensor must be a string, got {_tname(ext['sensor'])}")
            fi = ext.get("frame_index", 0)
            if not isinstance(fi, int) or isinstance(fi, bool) or fi < 0:
                raise _Bad(f"{ptr}/{EXT}/frame_index", f"frame_index must be a whole number >= 0, got {_tname(fi)}")
            if cloud is not None and self.check_files:
                self._check_file(cloud, f"{ptr}/url" if url else f"{ptr}/pointcloud_url", "point cloud")
        except _Bad as bad:
            self.context.error(self.error(bad, ref))
            return None
        assert ref is not None
        anns = self.annotations(obj, ptr, ref, ext, predictions=False)
        preds = self.annotations(obj, ptr, ref, ext, predictions=True)
        if scene is not None:
            sensor = ext.get("sensor", frame_sensor or "camera")
            index = ext.get("frame_index", scene.index)
            scene = FrameRef.model_construct(scene_reference_id=scene.scene_reference_id, index=index, sensor=sensor)
        item = DatasetItem.model_construct(
            reference_id=ref, image_location=image, pointcloud_location=self.location(cloud),
            width=width, height=height, metadata=metadata, attributes=attributes,
            annotations=anns, predictions=preds, scene=scene,
        )
        for ann in (*anns, *preds):
            if ann.type == "segmentation":  # a mask may not declare more pixels than its item
                ann.mask.expect_size(width, height)
        problem = annotation_id_problem(item)
        if problem:
            self.context.error(ReadError(problem, file=self.path, where=self.where(ptr), item=ref,
                                         fix="give every annotation of an item its own annotation_id"))
            return None
        return item

    def _contain(self, loc: str | None, ptr: str, what: str) -> None:
        """A local path must stay inside the .jsonl file's folder (core.paths.contained)."""
        if loc is None or "://" in loc:
            return
        try:
            contained(self.base, loc, what=what)
        except ReadError as exc:
            raise _Bad(ptr, exc.problem, fix=exc.fix) from exc

    def _check_file(self, loc: str, ptr: str, what: str) -> None:
        p = local_path(loc, self.base)
        if p is not None and not p.is_file():
            raise _Bad(ptr, f"{what} file {str(p)!r} does not exist",
                       fix=f"put the {what} file there, or fix its path (relative paths start at the .jsonl folder)")

    def annotations(self, obj: dict[str, Any], ptr: str, ref: str, ext: dict[str, Any],
                    *, predictions: bool) -> list[Any]:
        key = "predictions" if predictions else "annotations"
        out: list[Any] = []
        try:
            payloads = _list(obj, key, ptr)
            extras = _list(ext, key, f"{ptr}/{EXT}")
        except _Bad as bad:
            self.context.error(self.error(bad, ref))
            return out
        for n, payload in enumerate(payloads):
            p = f"{ptr}/{key}/{n}"
            try:
                out.append(self.annotation(payload, p, ref, predictions))
            except _Bad as bad:
                self.context.error(self.error(bad, ref))
        for n, extra in enumerate(extras):
            p = f"{ptr}/{EXT}/{key}/{n}"
            try:
                _obj(extra, p, "extension annotation", frozenset({"at", "annotation"}))
                at = extra.get("at")
                if not isinstance(at, int) or isinstance(at, bool) or at < 0:
                    raise _Bad(f"{p}/at", f"at must be a position >= 0, got {_tname(at)}")
                try:
                    ann = _ANNOTATION.validate_python(extra.get("annotation"))
                except ValidationError as exc:
                    raise _Bad(f"{p}/annotation", _validation_problem(exc)) from exc
                if ann.reference_id not in (None, ref):
                    raise _Bad(f"{p}/annotation/reference_id",
                               f"reference_id {ann.reference_id!r} differs from the item's {ref!r}")
                ann.reference_id = ref
                out.insert(min(at, len(out)), ann)
            except _Bad as bad:
                self.context.error(self.error(bad, ref))
        return out

    def annotation(self, payload: Any, ptr: str, ref: str, prediction: bool) -> Any:
        if not isinstance(payload, dict):
            raise _Bad(ptr, f"an annotation payload must be a JSON object, got {_tname(payload)}")
        kind = payload.get("type")
        if kind == "segmentation" or (kind is None and "mask_url" in payload):
            kind = "mask"
        if kind not in _KEYS:
            raise _Bad(f"{ptr}/type", f"unknown annotation type {_tname(kind)}; expected one of "
                       + ", ".join(sorted(_KEYS)))
        allowed = (_KEYS_PRED if prediction else _KEYS)[kind]
        _obj(payload, ptr, f"{kind} payload", allowed)
        pref = _str(payload, "reference_id", ptr)
        if pref is not None and pref != ref:
            raise _Bad(f"{ptr}/reference_id", f"reference_id {pref!r} differs from the item's {ref!r}",
                       fix="an item carries only its own annotations")
        f: dict[str, Any] = {"reference_id": ref}
        if kind != "mask":
            f["metadata"] = dict(_dict(payload, "metadata", ptr))
            f["track_reference_id"] = _str(payload, "track_reference_id", ptr)
        attributes = {k: payload[k] for k in SERVER_KEYS if payload.get(k) is not None}
        if kind not in ("category", "multicategory"):
            f["annotation_id"] = _str(payload, "annotation_id", ptr)
        if prediction and kind != "mask":
            conf = _num(payload, "confidence", ptr, required=False)
            if conf is not None and not 0 <= conf <= 1:
                raise _Bad(f"{ptr}/confidence", f"confidence must lie in [0, 1], got {conf}")
            f["confidence"] = conf
            pdf = payload.get("class_pdf")
            if pdf is not None:
                if not isinstance(pdf, dict) or not all(_is_num(v) for v in pdf.values()):
                    raise _Bad(f"{ptr}/class_pdf", f"class_pdf must map labels to probabilities, got {_tname(pdf)}",
                               fix="Nucleus's class_pdf is a dict label -> probability, not a list")
                f["class_pdf"] = dict(pdf)
        if kind in ("category", "multicategory"):
            f["taxonomy_name"] = _str(payload, "taxonomy_name", ptr)
        geom = payload.get("geometry")
        if kind != "mask":
            geom = _obj(geom if geom is not None else {}, f"{ptr}/geometry", f"{kind} geometry")
        gptr = f"{ptr}/geometry"
        if kind == "box":
            _obj(geom, gptr, "box geometry", _BOX_GEOM)
            f.update(label=_label(payload, ptr), x=_num(geom, "x", gptr), y=_num(geom, "y", gptr),
                     width=_num(geom, "width", gptr), height=_num(geom, "height", gptr))
            if f["width"] < 0 or f["height"] < 0:
                raise _Bad(gptr, f"box width and height must be >= 0, got {f['width']}, {f['height']}")
            emb = payload.get("embedding_vector")
            if emb is not None and not (isinstance(emb, list) and all(_is_num(v) for v in emb)):
                raise _Bad(f"{ptr}/embedding_vector", f"embedding_vector must be a list of numbers, got {_tname(emb)}")
            f["embedding_vector"] = emb
            cls: type = BoxAnnotation
        elif kind in ("line", "polygon"):
            _obj(geom, gptr, f"{kind} geometry", _VERTEX_GEOM)
            flat = _vertices(geom, gptr, 2 if kind == "line" else 3)
            f["label"] = _label(payload, ptr)
            if kind == "line":
                f["vertices"] = flat
                cls = LineAnnotation
            else:
                f["rings"] = [flat]
                emb = payload.get("embedding_vector")
                if emb is not None and not (isinstance(emb, list) and all(_is_num(v) for v in emb)):
                    raise _Bad(f"{ptr}/embedding_vector", f"embedding_vector must be a list of numbers, got {_tname(emb)}")
                f["embedding_vector"] = emb
                cls = PolygonAnnotation
        elif kind == "keypoints":
            _obj(geom, gptr, "keypoints geometry", _KEYPOINTS_GEOM)
            f.update(label=_label(payload, ptr), **_keypoints(geom, gptr))
            if prediction and f["skeleton"] is None:
                raise _Bad(f"{gptr}/skeleton", "a keypoints prediction needs a skeleton (Nucleus requires it)",
                           fix="write \"skeleton\": [] when there is none")
            cls = KeypointsAnnotation
        elif kind == "cuboid":
            _obj(geom, gptr, "cuboid geometry", _CUBOID_GEOM)
            f.update(label=_label(payload, ptr), position=_point3d(geom, "position", gptr),
                     dimensions=_point3d(geom, "dimensions", gptr), yaw=_num(geom, "yaw", gptr), frame="lidar")
            d = f["dimensions"]
            if min(d.x, d.y, d.z) < 0:
                raise _Bad(f"{gptr}/dimensions", f"cuboid dimensions must be >= 0, got {d.x}, {d.y}, {d.z}")
            cls = CuboidAnnotation
        elif kind == "category":
            if geom:
                raise _Bad(gptr, "a category's geometry must be {}")
            f["label"] = _str(payload, "label", ptr, required=True)
            cls = CategoryAnnotation
        elif kind == "multicategory":
            if geom:
                raise _Bad(gptr, "a multicategory's geometry must be {}")
            labels = _list(payload, "labels", ptr, required=True)
            if not all(isinstance(x, str) for x in labels):
                raise _Bad(f"{ptr}/labels", "labels must be a list of strings")
            f["labels"] = list(labels)
            cls = MultiCategoryAnnotation
        else:  # mask
            url = _str(payload, "mask_url", ptr, required=True)
            assert url is not None
            self._contain(url, f"{ptr}/mask_url", "mask_url")
            if self.check_files:
                self._check_file(url, f"{ptr}/mask_url", "mask")
            segments = []
            seen: set[int] = set()
            for n, s in enumerate(_list(payload, "annotations", ptr)):
                sp = f"{ptr}/annotations/{n}"
                _obj(s, sp, "segment", frozenset({"label", "index", "metadata"}))
                index = s.get("index")
                if not isinstance(index, int) or isinstance(index, bool) or index < 0:
                    raise _Bad(f"{sp}/index", f"segment index must be a whole number >= 0, got {_tname(index)}")
                if index in seen:
                    raise _Bad(f"{sp}/index", f"segment index {index} appears twice in this mask")
                seen.add(index)
                segments.append(Segment.model_construct(label=_str(s, "label", sp, required=True), index=index,
                                                        metadata=dict(_dict(s, "metadata", sp)), attributes={}))
            f.update(mask=IndexMask(location=self.location(url), encoding="index"), annotations=segments,
                     metadata={}, track_reference_id=None)
            cls = SegmentationAnnotation
        f["attributes"] = attributes
        ext = payload.get(EXT)
        if ext is None:
            for k in _OPTIONAL_FIELDS[cls]:
                f.setdefault(k, None)
            f.setdefault("metadata", {})
            return cls.model_construct(**f)
        return _with_extension(cls, f, _obj(ext, f"{ptr}/{EXT}", "annobridge extension", _EXT_ANN_KEYS),
                               f"{ptr}/{EXT}")

    # ---------------------------------------------------------------- scenes

    def scene(self, obj: dict[str, Any]) -> Iterator[DatasetItem]:
        try:
            _obj(obj, "/", "scene payload", _SCENE_KEYS)
            ref = self._ref(obj, "")
            if ref in self.header.scenes:
                raise _Bad("/reference_id", f"scene reference_id {ref!r} is used twice",
                           fix="write each scene on one line")
            frames = _list(obj, "frames", "")
            ext = _obj(obj.get(EXT, {}), f"/{EXT}", "annobridge extension", frozenset({"attributes"}))
            attributes = {k: obj[k] for k in SCENE_NATIVE_ATTRIBUTES if k in obj}
            attributes.update(_dict(ext, "attributes", f"/{EXT}"))
            cats = []
            for key in ("annotations", "predictions"):
                for n, p in enumerate(_list(obj, key, "")):
                    cats.append(self.scene_category(p, f"/{key}/{n}", ref, key == "predictions"))
            scene = Scene.model_construct(reference_id=ref, metadata=dict(_dict(obj, "metadata", "")),
                                          annotations=cats, attributes=attributes)
        except _Bad as bad:
            self.context.error(self.error(bad, obj.get("reference_id") if isinstance(obj.get("reference_id"), str) else None))
            return
        self.header.scenes[ref] = scene
        for index, frame in enumerate(frames):
            ptr = f"/frames/{index}"
            if isinstance(frame, dict) and ("reference_id" in frame or "url" in frame):  # a video frame
                item = self.item(frame, ptr, FrameRef.model_construct(scene_reference_id=ref, index=index,
                                                                      sensor="camera"), None)
                if item is not None:
                    yield item
                continue
            if not isinstance(frame, dict):
                self.context.error(self.error(_Bad(ptr, f"a frame must be an object sensor -> item, got {_tname(frame)}"), ref))
                continue
            for sensor, payload in frame.items():
                item = self.item(payload, f"{ptr}/{_escape(sensor)}",
                                 FrameRef.model_construct(scene_reference_id=ref, index=index, sensor=sensor), sensor)
                if item is not None:
                    yield item

    def scene_category(self, p: Any, ptr: str, scene_ref: str, prediction: bool) -> SceneCategoryAnnotation:
        _obj(p, ptr, "scene category payload", _SCENE_CAT_KEYS if prediction else _SCENE_CAT_KEYS - _PRED_KEYS)
        if p.get("type", "category") != "category":
            raise _Bad(f"{ptr}/type", f"a scene annotation must be of type \"category\", got {_tname(p.get('type'))}")
        pref = _str(p, "reference_id", ptr)
        if pref is not None and pref != scene_ref:
            raise _Bad(f"{ptr}/reference_id", f"reference_id {pref!r} differs from the scene's {scene_ref!r}")
        if _dict(p, "geometry", ptr):
            raise _Bad(f"{ptr}/geometry", "a scene category's geometry must be {}")
        f: dict[str, Any] = {
            "label": _str(p, "label", ptr, required=True), "reference_id": scene_ref,
            "taxonomy_name": _str(p, "taxonomy_name", ptr), "metadata": dict(_dict(p, "metadata", ptr)),
            "attributes": {"task_id": p["task_id"]} if p.get("task_id") is not None else {},
            "confidence": _num(p, "confidence", ptr, required=False), "class_pdf": p.get("class_pdf"),
            "annotation_id": None, "group_id": None, "track_reference_id": None,
        }
        if EXT in p:
            return _with_extension(SceneCategoryAnnotation, f, _obj(p[EXT], f"{ptr}/{EXT}", "annobridge extension",
                                                                    _EXT_ANN_KEYS), f"{ptr}/{EXT}")
        return SceneCategoryAnnotation.model_construct(**f)


def _loads(line: str | bytes) -> Any:
    """One payload line, parsed under core.limits (finite numbers, bounded ints and depth)."""
    return load_json(line)


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _label(payload: dict[str, Any], ptr: str) -> str:
    label = payload.get("label")
    if not isinstance(label, str):
        raise _Bad(f"{ptr}/label", f"label must be a string, got {_tname(label)}")
    return label


_NUMBER_TYPES = frozenset({int, float})


def _vertices(geom: dict[str, Any], ptr: str, minimum: int) -> list[float]:
    verts = _list(geom, "vertices", ptr, required=True)
    try:  # fast path: one comprehension, types checked in bulk
        flat = [c for v in verts for c in (v["x"], v["y"])]
        ok = _NUMBER_TYPES.issuperset(map(type, flat)) and all(len(v) == 2 for v in verts)
    except (TypeError, KeyError):
        ok = False
    if not ok:  # find the first bad vertex and say what is wrong with it
        for n, v in enumerate(verts):
            if not isinstance(v, dict) or len(v) != 2:
                raise _Bad(f"{ptr}/vertices/{n}", f"a vertex is {{\"x\", \"y\"}}, got {_tname(v)}")
            x, y = v.get("x"), v.get("y")
            if not (_is_num(x) and _is_num(y)):
                raise _Bad(f"{ptr}/vertices/{n}", f"vertex x and y must be numbers, got {_tname(x)}, {_tname(y)}")
        raise _Bad(f"{ptr}/vertices", "vertices must be a list of {\"x\", \"y\"} objects")
    if len(verts) < minimum:
        raise _Bad(f"{ptr}/vertices", f"needs at least {minimum} vertices, got {len(verts)}")
    return flat


def _keypoints(geom: dict[str, Any], ptr: str) -> dict[str, Any]:
    names = _list(geom, "names", ptr, required=True)
    if not all(isinstance(n, str) for n in names):
        raise _Bad(f"{ptr}/names", "keypoint names must be strings")
    if len(set(names)) != len(names):
        raise _Bad(f"{ptr}/names", "keypoint names must be unique")
    kps = _list(geom, "keypoints", ptr, required=True)
    if len(kps) != len(names):
        raise _Bad(f"{ptr}/keypoints", f"{len(kps)} keypoints for {len(names)} names; expected one per name")
    flat: list[float] = []
    for n, kp in enumerate(kps):
        kptr = f"{ptr}/keypoints/{n}"
        _obj(kp, kptr, "keypoint", frozenset({"x", "y", "visible"}))
        x, y, visible = kp.get("x"), kp.get("y"), kp.get("visible")
        if not isinstance(visible, bool):
            raise _Bad(f"{kptr}/visible", f"visible must be true or false, got {_tname(visible)}")
        if x is None and y is None:
            if visible:
                raise _Bad(kptr, "a visible keypoint needs x and y")
            flat.extend((0, 0, 0))
        elif _is_num(x) and _is_num(y):
            flat.extend((x, y, 2 if visible else 1))
        else:
            raise _Bad(kptr, f"keypoint x and y must be numbers (or both null), got {_tname(x)}, {_tname(y)}")
    skeleton = geom.get("skeleton")
    edges = None
    if skeleton is not None:
        if not isinstance(skeleton, list):
            raise _Bad(f"{ptr}/skeleton", f"skeleton must be a list of [a, b] pairs, got {_tname(skeleton)}")
        edges = []
        for n, e in enumerate(skeleton):
            if (not isinstance(e, list) or len(e) != 2 or not all(isinstance(i, int) and not isinstance(i, bool)
                                                                   and 0 <= i < len(names) for i in e)):
                raise _Bad(f"{ptr}/skeleton/{n}", f"a skeleton edge is 2 keypoint indices in 0..{len(names) - 1} "
                           f"(0-based), got {e!r}")
            edges.append((e[0], e[1]))
    return {"keypoints": flat, "names": list(names), "skeleton": edges}


def _point3d(geom: dict[str, Any], key: str, ptr: str) -> Point3D:
    p = _obj(geom.get(key), f"{ptr}/{key}", key, frozenset({"x", "y", "z"}))
    sub = f"{ptr}/{key}"
    return Point3D.model_construct(x=_num(p, "x", sub), y=_num(p, "y", sub), z=_num(p, "z", sub))


def _validation_problem(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = "/".join(str(p) for p in err["loc"])
    return f"{loc}: {err['msg']}" if loc else err["msg"]


def _with_extension(cls: type, f: dict[str, Any], ext: dict[str, Any], ptr: str) -> Any:
    """Apply an ``annobridge`` extension to the fields read from the payload; validate the result."""
    for key in ("group_id", "annotation_id", "metadata", "track_reference_id", "confidence", "class_pdf", "frame",
                "skeleton"):
        if key in ext:
            f[key] = ext[key]
    if "attributes" in ext:
        attrs = ext["attributes"]
        if not isinstance(attrs, dict):
            raise _Bad(f"{ptr}/attributes", f"attributes must be an object, got {_tname(attrs)}")
        f["attributes"] = {**f.get("attributes", {}), **attrs}
    if "rings" in ext:
        if cls is not PolygonAnnotation or not isinstance(ext["rings"], list):
            raise _Bad(f"{ptr}/rings", "rings (a list of flat rings) belong to a polygon only")
        f["rings"] = f["rings"] + ext["rings"]
    if "unlabelled_xy" in ext:
        xy = ext["unlabelled_xy"]
        if cls is not KeypointsAnnotation or not isinstance(xy, dict):
            raise _Bad(f"{ptr}/unlabelled_xy", "unlabelled_xy ({index: [x, y]}) belongs to keypoints only")
        flat = list(f["keypoints"])
        for k, v in xy.items():
            try:
                i = int(k)
                if flat[3 * i + 2] != 0 or not (isinstance(v, list) and len(v) == 2 and all(_is_num(c) for c in v)):
                    raise ValueError
            except (ValueError, IndexError):
                raise _Bad(f"{ptr}/unlabelled_xy/{k}", "expected the index of a not-labelled keypoint -> [x, y]") from None
            flat[3 * i], flat[3 * i + 1] = v
        f["keypoints"] = flat
    if "segment_attributes" in ext:
        sa = ext["segment_attributes"]
        if cls is not SegmentationAnnotation or not isinstance(sa, dict):
            raise _Bad(f"{ptr}/segment_attributes", "segment_attributes ({index: {...}}) belongs to a mask only")
        by_index = {s.index: s for s in f["annotations"]}
        for k, v in sa.items():
            seg = by_index.get(int(k)) if str(k).isdigit() else None
            if seg is None or not isinstance(v, dict):
                raise _Bad(f"{ptr}/segment_attributes/{k}", "expected a segment index of this mask -> {attributes}")
            seg.attributes = dict(v)
    data = {k: v for k, v in f.items() if v is not None or k in ("annotation_id",)}
    if "mask" in data:
        data["mask"] = f["mask"]
    try:
        ann = cls.model_validate(data)
    except ValidationError as exc:
        raise _Bad(ptr, f"extension does not fit the annotation: {_validation_problem(exc)}") from exc
    if "annotation_id" in ext and ext["annotation_id"] is None:
        ann.annotation_id = None
    for key in ("vertices", "rings", "keypoints"):  # numbers as read (validation made ints floats)
        if key in f:
            setattr(ann, key, f[key])
    return ann


def _sidecar_for(jsonl: Path) -> Path:
    return jsonl.with_name(jsonl.stem + SIDECAR_SUFFIX) if jsonl.suffix == ".jsonl" else jsonl.with_name(jsonl.name + SIDECAR_SUFFIX)


def _read_sidecar(path: Path, header: DatasetHeader) -> None:
    data = load_json(path.read_bytes(), file=path)  # finite numbers, bounded ints and depth
    try:
        _obj(data, "/", "dataset sidecar", frozenset({"name", "taxonomies", EXT}))
        name = _str(data, "name", "")
        if name and not header.name:
            header.name = name
        known = {t.name for t in header.taxonomies}
        for n, t in enumerate(_list(data, "taxonomies", "")):
            p = f"/taxonomies/{n}"
            _obj(t, p, "taxonomy", frozenset({"taxonomy_name", "taxonomy_type", "labels"}))
            labels = _list(t, "labels", p, required=True)
            try:
                tax = Taxonomy(name=t.get("taxonomy_name"), type=t.get("taxonomy_type", "category"), labels=labels)
            except ValidationError as exc:
                raise _Bad(p, _validation_problem(exc)) from exc
            if tax.name not in known:
                header.taxonomies.append(tax)
                known.add(tax.name)
        ext = _obj(data.get(EXT, {}), f"/{EXT}", "annobridge extension", frozenset({"categories", "info"}))
        ids = {c.id for c in header.categories}
        for n, c in enumerate(_list(ext, "categories", f"/{EXT}")):
            try:
                cat = Category.model_validate(c)
            except ValidationError as exc:
                raise _Bad(f"/{EXT}/categories/{n}", _validation_problem(exc)) from exc
            if cat.id in ids:
                continue
            header.categories.append(cat)
            ids.add(cat.id)
        header.info.update(_dict(ext, "info", f"/{EXT}"))
    except _Bad as bad:
        raise ReadError(bad.problem, file=path, where="#" + bad.pointer, fix=bad.fix) from None


def _sources(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.glob("*.jsonl") if p.is_file())
        if not files:
            raise ReadError("folder holds no .jsonl files", file=path,
                            fix="give a Nucleus .jsonl file or a folder of them")
        return files
    return [path]


def read(path: Path, options: NucleusReadOptions, context: Context) -> Dataset:
    """Read Nucleus payload lines (a file, or every ``*.jsonl`` of a folder) lazily."""
    header = DatasetHeader()
    files = _sources(path)
    for f in files:
        sidecar = _sidecar_for(f)
        if sidecar.is_file():
            _read_sidecar(sidecar, header)
    return Dataset(header=header, items=_read_items(files, options, context, header))


def _read_items(files: list[Path], options: NucleusReadOptions, context: Context,
                header: DatasetHeader) -> Iterator[DatasetItem]:
    seen: dict[str, str] = {}
    for f in files:
        reader = _Reader(f, context, options.check_files, header, seen)
        yield from reader.items()


# --------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class _Job:
    """One item's work, picklable for ``context.map``."""

    item: DatasetItem
    seq: int
    base: str
    masks_dir: str
    clouds_dir: str
    strict: bool
    in_scene: bool
    final_base: str
    """The output's final folder (the engine stages elsewhere): outside references are relative to it."""
    renumber_segments: bool
    media_root: str | None = None
    """Point clouds are copied only from inside this folder (the source's; None for in-memory items)."""


@dataclass
class _Done:
    scene: FrameRef | None
    kind: str  # "image" | "pointcloud"
    payload: dict[str, Any]
    ext: dict[str, Any]
    drops: list[tuple[str, str, int]]


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe(ref: str) -> str:
    return _SAFE.sub("_", ref)[:80] or "item"


def _camera_params(cp: Any) -> Any:
    """``CameraParams.to_payload()``: required keys, then truthy optional ones, then the model."""
    if not isinstance(cp, dict):
        return cp
    out = {k: cp[k] for k in ("position", "heading", "fx", "fy", "cx", "cy") if k in cp}
    for key, axes in (("position", "xyz"), ("heading", "xyzw")):
        v = out.get(key)
        if isinstance(v, dict) and set(v) == set(axes):
            out[key] = {a: v[a] for a in axes}
    out.update({k: cp[k] for k in CAMERA_PARAM_OPTIONAL if cp.get(k)})
    if cp.get("camera_model"):
        out["camera_model"] = cp["camera_model"]
    return out


class _Drops:
    def __init__(self) -> None:
        self.items: Counter[tuple[str, str]] = Counter()

    def add(self, what: str, reason: str, n: int = 1) -> None:
        self.items[(what, reason)] += n

    def as_list(self) -> list[tuple[str, str, int]]:
        return [(w, r, n) for (w, r), n in self.items.items()]


def _item_job(job: _Job) -> _Done:
    """Build one item's payload; write its masks and point cloud. Runs in a worker under --workers."""
    item = job.item
    drops = _Drops()
    base = Path(job.base)
    ref = item.reference_id
    payload: dict[str, Any] = {"metadata": item.metadata, "reference_id": ref}
    attrs = dict(item.attributes)
    if "embedding_info" in attrs:
        payload["embedding_info"] = attrs.pop("embedding_info")
    if item.width is not None:
        payload["width"] = item.width
    if item.height is not None:
        payload["height"] = item.height
    kind = "image"
    cloud = item.pointcloud_location
    if cloud is not None and local_path(cloud) is not None:
        kind = "pointcloud"
        # copied into NAME.pointclouds/ only from inside the source (core.paths.media_file)
        src, skip = media_file(cloud, Path(job.media_root) if job.media_root else None)
        if src is None:
            drops.add("point cloud file", f"{skip}; not copied, its location is kept as given")
        else:
            target = Path(job.clouds_dir) / f"{job.seq:06d}-{_safe(ref)}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            if src.suffix == ".json":
                shutil.copyfile(src, target)
            else:
                try:
                    write_points_json(load_points(src), target)
                except ReadError as exc:
                    raise WriteError(f"cannot convert the point cloud: {exc.problem}", file=src, item=ref,
                                     fix=exc.fix) from exc
            cloud = relative_location(target, base)
    elif cloud is not None:
        kind = "pointcloud"
    location = cloud if cloud is not None else item.image_location  # images: exactly as given
    if job.in_scene:
        if location is not None:
            payload["url"] = location
        payload["type"] = kind
        cp = item.metadata.get("camera_params")
        if cp:
            payload["camera_params"] = _camera_params(cp)
    elif location is not None:
        payload["pointcloud_url" if cloud is not None else "image_url"] = location
    for k in ITEM_NATIVE_ATTRIBUTES:
        if k in attrs:
            payload[k] = attrs.pop(k)
    ext: dict[str, Any] = {}
    if attrs:
        if job.strict:
            drops.add("item attributes", "Nucleus items have no attributes", 1)
        else:
            ext["attributes"] = attrs
    for key, anns, prediction in (("annotations", item.annotations, False),
                                  ("predictions", item.predictions, True)):
        native, extra = _annotation_payloads(anns, ref, prediction, job, drops)
        if native or key == "annotations":
            payload[key] = native
        if extra:
            ext[key] = extra
    return _Done(item.scene, kind, payload, ext, drops.as_list())


def _generated_id(ref: str, kind: str, n: int, prediction: bool, taken: set[str]) -> str:
    aid = f"{ref}-{'pred-' if prediction else ''}{kind}-{n}"
    k = 1
    while aid in taken:
        aid = f"{ref}-{'pred-' if prediction else ''}{kind}-{n}-{k}"
        k += 1
    taken.add(aid)
    return aid


def _annotation_payloads(anns: list[Any], ref: str, prediction: bool, job: _Job,
                         drops: _Drops) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    prefix = "prediction:" if prediction else ""
    non_nucleus = NON_NUCLEUS_PREDICTION_KINDS if prediction else NON_NUCLEUS_KINDS
    taken = {a.annotation_id for a in anns if a.annotation_id is not None}
    native: list[dict[str, Any]] = []
    extra: list[dict[str, Any]] = []
    for n, ann in enumerate(anns):
        if ann.type in non_nucleus:
            if job.strict:
                drops.add(prefix + ann.type, f"Nucleus has no {ann.type} {'predictions' if prediction else 'annotations'}")
            else:
                extra.append({"at": n, "annotation": ann.model_dump(mode="json")})
            continue
        if ann.type == "cuboid" and ann.frame != "lidar" and job.strict:
            drops.add(prefix + "cuboid", "camera-frame cuboid: Nucleus cuboids are in the point cloud's frame "
                      "(convert with calibration)")
            continue
        native.append(_annotation_payload(ann, ref, n, prediction, job, drops, taken))
    return native, extra


def _annotation_payload(ann: Any, ref: str, n: int, prediction: bool, job: _Job, drops: _Drops,
                        taken: set[str]) -> dict[str, Any]:
    t = ann.type
    prefix = "prediction:" if prediction else ""
    ext: dict[str, Any] = {}
    attrs = ann.attributes
    server: dict[str, Any] = {}
    if attrs and not _SERVER_SET.isdisjoint(attrs):
        attrs = dict(attrs)
        server = {k: attrs.pop(k) for k in SERVER_KEYS if k in attrs}
    if attrs:
        ext["attributes"] = attrs
    if ann.group_id is not None:
        ext["group_id"] = ann.group_id
    aid = ann.annotation_id
    if aid is None and t == "box":
        aid = auto_annotation_id(ann.model_copy(update={"reference_id": ref}))
    elif aid is None and t not in ("category", "multicategory"):
        aid = _generated_id(ref, t, n, prediction, taken)
        ext["annotation_id"] = None
    p: dict[str, Any]
    if t == "box":
        p = {"label": ann.label, "type": "box",
             "geometry": {"x": ann.x, "y": ann.y, "width": ann.width, "height": ann.height},
             "reference_id": ref, "annotation_id": aid, "metadata": ann.metadata,
             "embedding_vector": ann.embedding_vector, "track_reference_id": ann.track_reference_id,
             "task_id": server.pop("task_id", None)}
    elif t in ("line", "polygon"):
        flat = ann.vertices if t == "line" else ann.rings[0]
        verts = [{"x": flat[i], "y": flat[i + 1]} for i in range(0, len(flat), 2)]
        p = {"label": ann.label, "type": t, "geometry": {"vertices": verts}, "reference_id": ref,
             "annotation_id": aid, "metadata": ann.metadata}
        if t == "polygon":
            p["embedding_vector"] = ann.embedding_vector
            if len(ann.rings) > 1:
                ext["rings"] = [list(r) for r in ann.rings[1:]]
        p["track_reference_id"] = ann.track_reference_id
        p["task_id"] = server.pop("task_id", None)
    elif t == "keypoints":
        kp = ann.keypoints
        points = []
        unlabelled: dict[str, list[float]] = {}
        for i in range(0, len(kp), 3):
            v = int(kp[i + 2])
            if v == 0:
                points.append({"x": None, "y": None, "visible": False})
                if kp[i] or kp[i + 1]:
                    unlabelled[str(i // 3)] = [kp[i], kp[i + 1]]
            else:
                points.append({"x": kp[i], "y": kp[i + 1], "visible": v == 2})
        if unlabelled:
            ext["unlabelled_xy"] = unlabelled
        skeleton = None if ann.skeleton is None else [list(e) for e in ann.skeleton]
        if prediction and skeleton is None:
            skeleton = []
            ext["skeleton"] = None
        p = {"label": ann.label, "type": "keypoints",
             "geometry": {"keypoints": points, "names": list(ann.names), "skeleton": skeleton},
             "reference_id": ref, "annotation_id": aid, "metadata": ann.metadata,
             "track_reference_id": ann.track_reference_id, "task_id": server.pop("task_id", None)}
    elif t == "cuboid":
        pos, dim = ann.position, ann.dimensions
        p = {"label": ann.label, "type": "cuboid",
             "geometry": {"position": {"x": pos.x, "y": pos.y, "z": pos.z},
                          "dimensions": {"x": dim.x, "y": dim.y, "z": dim.z}, "yaw": ann.yaw},
             "reference_id": ref}
        if aid:
            p["annotation_id"] = aid
        if ann.metadata:
            p["metadata"] = ann.metadata
        if ann.track_reference_id:
            p["track_reference_id"] = ann.track_reference_id
        task = server.pop("task_id", None)
        if task:
            p["task_id"] = task
        if ann.frame != "lidar":
            ext["frame"] = ann.frame
    elif t in ("category", "multicategory"):
        p = {"label": ann.label} if t == "category" else {"labels": list(ann.labels)}
        p.update({"type": t, "geometry": {}, "reference_id": ref, "metadata": ann.metadata,
                  "track_reference_id": ann.track_reference_id, "task_id": server.pop("task_id", None)})
        if ann.taxonomy_name is not None:
            p["taxonomy_name"] = ann.taxonomy_name
        if aid is not None:
            ext["annotation_id"] = aid
    elif t == "segmentation":
        mask, segments = ann.mask, list(ann.annotations)
        if job.renumber_segments:
            mask, segments = _renumbered(ann, ref, drops, prefix)
        segs = []
        seg_attrs = {}
        for s in segments:
            sp: dict[str, Any] = {"label": s.label, "index": s.index}
            if s.metadata:
                sp["metadata"] = s.metadata
            if s.attributes:
                seg_attrs[str(s.index)] = s.attributes
            segs.append(sp)
        if seg_attrs:
            ext["segment_attributes"] = seg_attrs
        p = {"type": "mask", "mask_url": _store_mask(mask, job, prediction, ref),
             "annotations": segs, "annotation_id": aid, "reference_id": ref}
        if ann.metadata:
            ext["metadata"] = ann.metadata
        if ann.track_reference_id is not None:
            ext["track_reference_id"] = ann.track_reference_id
    else:  # pragma: no cover - guarded by _annotation_payloads
        raise WriteError(f"cannot write annotation type {t!r} as Nucleus", item=ref)
    has_conf = prediction and t != "segmentation"
    if has_conf:
        if ann.confidence is not None:
            p["confidence"] = ann.confidence
        if ann.class_pdf is not None:
            p["class_pdf"] = ann.class_pdf
    else:
        if ann.confidence is not None:
            ext["confidence"] = ann.confidence
        if ann.class_pdf is not None:
            ext["class_pdf"] = ann.class_pdf
    p.update(server)
    if ext:
        if job.strict:
            for key, value in ext.items():
                if key == "annotation_id" and value is None:
                    continue  # an explicit id where there was none: nothing is lost
                if key == "skeleton":
                    continue  # no skeleton written as []: nothing is lost
                drops.add(f"{prefix}{t}:{key}", _STRICT_REASONS.get(key, f"Nucleus {t} payloads have no {key}"))
        else:
            p[EXT] = ext
    return p


_STRICT_REASONS = {
    "attributes": "Nucleus annotations have no attributes",
    "group_id": "Nucleus has no group_id linking annotations of one object",
    "rings": "Nucleus polygons have one ring; rings after the first are dropped",
    "frame": "Nucleus cuboids have no coordinate frame",
    "unlabelled_xy": "Nucleus writes not-labelled keypoints without coordinates",
    "segment_attributes": "Nucleus segments have no attributes",
    "annotation_id": "Nucleus categories have no annotation_id",
}


def _renumbered(ann: SegmentationAnnotation, ref: str, drops: _Drops, prefix: str) -> tuple[IndexMask, list[Segment]]:
    """Segments renumbered 1..n (pixels of no segment -> 0) when the mask does not fit in 8 bits.

    The original index is kept in each segment's ``attributes["original_index"]``.
    """
    if ann.mask.location is not None and not ann.mask.is_loaded and local_path(ann.mask.location) is None:
        return ann.mask, list(ann.annotations)  # a remote mask: nothing to renumber
    array = ann.mask.load()
    if not array.size or int(array.max()) < 256:
        return ann.mask, list(ann.annotations)
    if len(ann.annotations) > 255:
        raise WriteError(f"segmentation has {len(ann.annotations)} segments; an 8-bit Nucleus mask holds 255",
                         item=ref, fix="write fewer segments per item, or a format with wider masks")
    new_of = {s.index: n for n, s in enumerate(ann.annotations, start=1)}
    values, inverse = np.unique(array, return_inverse=True)
    lut = np.array([new_of.get(int(v), 0) for v in values], dtype=np.uint8)
    mask = IndexMask.from_array(lut[inverse].reshape(array.shape))
    segments = [s.model_copy(update={"index": new_of[s.index],
                                     "attributes": {**s.attributes, "original_index": s.index}})
                for s in ann.annotations]
    drops.add(f"{prefix}segmentation:index", "renumbered 1..n to fit an 8-bit Nucleus mask "
              "(original index kept in the segment's attributes)")
    return mask, segments


def _store_mask(mask: IndexMask, job: _Job, prediction: bool, ref: str) -> str:
    """Write the mask as an 8-bit PNG in the masks folder; a remote URL is kept as it is.

    Raises:
        WriteError: the mask is not the item's size or needs more than 8 bits. (Values no
            segment labels are void in the model and written as they are.)
    """
    if mask.location is not None and not mask.is_loaded and local_path(mask.location) is None:
        return mask.location
    try:
        array = narrow_mask(mask.load(), 8)
    except WriteError as exc:
        raise WriteError(f"segmentation mask: {exc.problem}; Nucleus masks are 8-bit (index <= 255)",
                         item=ref, file=mask.location,
                         fix="renumber the segments with --option renumber-segments=true, or write a format "
                         "with wider masks") from exc
    except ReadError:
        raise
    item = job.item
    if item.width is not None and item.height is not None and array.shape != (item.height, item.width):
        raise WriteError(f"segmentation mask is {array.shape[1]}x{array.shape[0]} but the image is "
                         f"{item.width}x{item.height}", item=ref, file=mask.location,
                         fix="a Nucleus mask has the image's size: resize it (nearest neighbour)")
    target = Path(job.masks_dir) / f"{job.seq:06d}-{_safe(ref)}{'-pred' if prediction else ''}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(array)).save(target, format="PNG")
    return relative_location(target, Path(job.base))


@dataclass
class _SceneBuffer:
    ref: str
    frames: dict[int, list[_Done]] = field(default_factory=dict)

    def add(self, done: _Done) -> None:
        assert done.scene is not None
        self.frames.setdefault(done.scene.index, []).append(done)


def _with_ext(payload: dict[str, Any], ext: dict[str, Any]) -> dict[str, Any]:
    if ext:
        payload[EXT] = ext
    return payload


def _scene_payload(buf: _SceneBuffer, scene: Scene | None, strict: bool, report: Any,
                   incomplete: bool = False, frame_rate: int | None = None) -> dict[str, Any]:
    indices = sorted(buf.frames)
    frames = [buf.frames[i] for i in indices]
    lidar = any(d.kind == "pointcloud" for f in frames for d in f)
    video = not lidar and all(len(f) == 1 for f in frames)
    payload: dict[str, Any] = {"reference_id": buf.ref}
    attrs = dict(scene.attributes) if scene is not None else {}
    native = {k: attrs.pop(k) for k in SCENE_NATIVE_ATTRIBUTES if k in attrs}
    metadata = scene.metadata if scene is not None else {}

    def frame_item(position: int, index: int, done: _Done, sensor_ext: bool) -> dict[str, Any]:
        ext = dict(done.ext)
        if index != position:
            ext["frame_index"] = index
        sensor = done.scene.sensor if done.scene is not None else "camera"
        if sensor_ext and sensor != "camera":
            ext["sensor"] = sensor
        if strict:
            if "frame_index" in ext:
                report.drop("scene frame index", "Nucleus frames are numbered 0, 1, 2, ...")
            if "sensor" in ext:
                report.drop("scene frame sensor", "Nucleus video frames have no sensor name")
            ext = {}
        return _with_ext(done.payload, ext)

    if video:
        if "frame_rate" in native:
            payload["frame_rate"] = native["frame_rate"]
        elif frames and frame_rate is not None:
            payload["frame_rate"] = frame_rate
            report.notes.append(f"video scene {buf.ref!r} has no frame rate: wrote frame_rate={frame_rate} "
                                "(Nucleus needs one for a scene of image frames; set it with --option frame-rate=N)")
        if metadata:
            payload["metadata"] = metadata
        for k in ("video_url", "upload_to_scale"):
            if k in native:
                payload[k] = native[k]
        payload["frames"] = [frame_item(pos, i, f[0], True) for pos, (i, f) in enumerate(zip(indices, frames))]
        if "tracks" in native:
            payload["tracks"] = native["tracks"]
    else:
        out_frames = []
        odd: list[int] = []
        lidar_sensors: set[str] = set()
        for pos, (i, f) in enumerate(zip(indices, frames)):
            frame: dict[str, Any] = {}
            clouds = 0
            for done in f:
                sensor = done.scene.sensor if done.scene is not None else "camera"
                if sensor in frame:
                    raise WriteError(f"scene {buf.ref!r} frame {i} has two items for sensor {sensor!r}",
                                     item=done.payload["reference_id"], fix="give each sensor of a frame its own name")
                if done.kind == "pointcloud":
                    clouds += 1
                    lidar_sensors.add(sensor)
                frame[sensor] = frame_item(pos, i, done, False)
            if lidar and clouds != 1:
                if not incomplete:
                    raise WriteError(f"lidar scene {buf.ref!r} frame {i} has {clouds} point clouds, Nucleus needs "
                                     "exactly 1", fix="give every frame of a lidar scene one point-cloud item, or "
                                     "write it anyway (not uploadable) with --option incomplete-lidar-scenes=true")
                odd.append(i)
            out_frames.append(frame)
        if odd:
            report.notes.append(f"lidar scene {buf.ref!r}: frames {odd} do not have exactly one point cloud; "
                                "written as they are (incomplete-lidar-scenes), Nucleus will refuse this scene")
        if len(lidar_sensors) > 1:
            raise WriteError(f"lidar scene {buf.ref!r} uses several lidar sensor names {sorted(lidar_sensors)}; "
                             "Nucleus needs one", fix="name the point-cloud sensor the same in every frame")
        payload["frames"] = out_frames
        for k in ("tracks", "frame_rate", "video_url", "upload_to_scale"):
            if k in native:
                payload[k] = native[k]
        if metadata:
            payload["metadata"] = metadata
    _scene_categories(payload, scene, buf.ref, strict, report)
    if attrs:
        if strict:
            report.drop("scene attributes", "Nucleus scenes have no attributes")
        else:
            payload[EXT] = {"attributes": attrs}
    return payload


def _scene_categories(payload: dict[str, Any], scene: Scene | None, ref: str, strict: bool, report: Any) -> None:
    if scene is None:
        return
    anns, preds = [], []
    for ann in scene.annotations:
        attrs = dict(ann.attributes)
        task = attrs.pop("task_id", None)
        p: dict[str, Any] = {"label": ann.label, "type": "category", "geometry": {}, "reference_id": ref,
                             "metadata": ann.metadata, "task_id": task}
        if ann.taxonomy_name is not None:
            p["taxonomy_name"] = ann.taxonomy_name
        ext: dict[str, Any] = {}
        if attrs:
            ext["attributes"] = attrs
        for key in ("annotation_id", "group_id", "track_reference_id", "class_pdf"):
            if getattr(ann, key) is not None:
                ext[key] = getattr(ann, key)
        if ann.confidence is not None:
            p["confidence"] = ann.confidence
            preds.append(p)
        else:
            anns.append(p)
        if ext:
            if strict:
                for key in ext:
                    report.drop(f"scene_category:{key}", f"Nucleus scene categories have no {key}")
            else:
                p[EXT] = ext
    if anns:
        payload["annotations"] = anns
    if preds:
        payload["predictions"] = preds


def _metadata_bools(value: Any) -> tuple[Any, int]:
    """A metadata value with every boolean (also nested) as "true"/"false", and how many there were."""
    if isinstance(value, bool):
        return ("true" if value else "false"), 1
    if isinstance(value, dict):
        out, n = {}, 0
        for k, v in value.items():
            out[k], m = _metadata_bools(v)
            n += m
        return out, n
    if isinstance(value, list):
        items = [_metadata_bools(v) for v in value]
        return [v for v, _ in items], sum(m for _, m in items)
    return value, 0


def _line_bools(line: dict[str, Any]) -> int:
    """Convert metadata booleans of one output line in place (items, annotations, segments, scenes)."""
    n = 0
    holders: list[dict[str, Any]] = [line]
    for frame in line.get("frames", []):
        holders.extend(frame.values() if "reference_id" not in frame else [frame])
    for holder in list(holders):
        for key in ("annotations", "predictions"):
            for p in holder.get(key, []):
                holders.append(p)
                if p.get("type") == "mask":
                    holders.extend(p.get("annotations", []))
    for holder in holders:
        if isinstance(holder, dict) and isinstance(holder.get("metadata"), dict):
            holder["metadata"], m = _metadata_bools(holder["metadata"])
            n += m
    return n


_NON_FINITE = re.compile(rb'(?<![A-Za-z0-9_"])-?(?:NaN|Infinity)(?![A-Za-z0-9_"])')


def _encode(line: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON of one payload line, keys in insertion order.

    pydantic-core's serializer (Rust, ~6x the standard library on float-heavy geometry) does
    the work; a line it cannot serialize, or where a NaN/Infinity may have slipped in, is
    encoded again by the standard library, which raises ValueError/TypeError on such values.
    """
    try:
        out = to_json(line, inf_nan_mode="constants")
    except PydanticSerializationError:
        out = None
    if out is None or ((b"NaN" in out or b"Infinity" in out) and _NON_FINITE.search(out)):
        return json.dumps(line, allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return out


def _drop_unplaced(item: DatasetItem, report: Any) -> None:
    """Report an item the writer leaves out, with its annotations per kind."""
    reason = "the item has no image or point cloud (the Nucleus client needs image_url or pointcloud_url)"
    report.drop("item", reason)
    for ann in item.annotations:
        report.drop(ann.type, reason)
    for ann in item.predictions:
        report.drop("prediction:" + ann.type, reason)


def write(dataset: Dataset, destination: Path, options: NucleusWriteOptions, context: Context) -> None:
    """Write one payload a line; masks, point clouds and the sidecar go beside ``destination``."""
    stem = destination.stem if destination.suffix == ".jsonl" else destination.name
    base = destination.parent
    strict = options.strict
    report = context.report
    masks_dir = base / f"{stem}.masks"
    clouds_dir = base / f"{stem}.pointclouds"
    final_base = os.path.abspath((context.final_destination or destination).parent)
    root = source_root(dataset.source)
    media_root = str(root) if root is not None else None

    schema = ScopeSchema("items")
    unplaced: list[str] = []

    def jobs() -> Iterator[_Job]:
        for seq, item in enumerate(dataset.items):
            if item.scene is None and item.image_location is None and item.pointcloud_location is None:
                _drop_unplaced(item, report)  # the client refuses an item without a location
                unplaced.append(item.reference_id)
                continue
            schema.add(item.reference_id, item.metadata)
            yield _Job(item, seq, str(base), str(masks_dir), str(clouds_dir), strict, item.scene is not None,
                       final_base, options.renumber_segments, media_root)

    header = dataset.header
    written_scenes: set[str] = set()
    buf: _SceneBuffer | None = None
    def dumps(line: dict[str, Any]) -> bytes:
        if options.booleans_as_strings:
            n = _line_bools(line)
            report.drop("metadata booleans", 'written as the strings "true"/"false" (booleans-as-strings)', n)
        try:
            return _encode(line) + b"\n"
        except (ValueError, TypeError) as exc:  # NaN/inf, or a value JSON has no form for (in attributes)
            raise WriteError(f"cannot write a value as JSON: {exc}", file=context.final_destination or destination,
                             item=line.get("reference_id"), fix="Nucleus payloads hold finite numbers, "
                             "strings, lists and objects only") from exc

    with open(destination, "wb") as out:
        def flush() -> None:
            nonlocal buf
            if buf is not None:
                out.write(dumps(_scene_payload(buf, header.scenes.get(buf.ref), strict, report,
                                               options.incomplete_lidar_scenes, options.frame_rate)))
                written_scenes.add(buf.ref)
                buf = None

        for done in context.map(_item_job, jobs()):
            for what, reason, n in done.drops:
                report.drop(what, reason, n)
            if done.scene is None:
                flush()
                out.write(dumps(_with_ext(done.payload, {} if strict else done.ext)))
                continue
            sref = done.scene.scene_reference_id
            if buf is None or buf.ref != sref:
                flush()
                if sref in written_scenes:
                    raise WriteError(f"the frames of scene {sref!r} do not come one after the other",
                                     item=done.payload["reference_id"],
                                     fix="order the items so that each scene's frames are consecutive")
                buf = _SceneBuffer(sref)
            buf.add(done)
        flush()
        for ref, scene in header.scenes.items():
            if ref not in written_scenes:  # a scene without frames in the stream
                out.write(dumps(_scene_payload(_SceneBuffer(ref), scene, strict, report)))
    schema.check()  # a key with two types: Nucleus indexes one type per key (nothing is kept)
    if unplaced:
        report.items_written -= len(unplaced)
        report.notes.append(f"{len(unplaced)} items have no image or point cloud and were not written "
                            f"(the Nucleus client refuses them), e.g. {unplaced[0]!r}")
    _write_sidecar(header, base / f"{stem}{SIDECAR_SUFFIX}", strict, report)


def _write_sidecar(header: DatasetHeader, path: Path, strict: bool, report: Any) -> None:
    data: dict[str, Any] = {}
    if header.name:
        data["name"] = header.name
    if header.taxonomies:
        data["taxonomies"] = [{"taxonomy_name": t.name, "taxonomy_type": t.type, "labels": list(t.labels)}
                              for t in header.taxonomies]
    ext: dict[str, Any] = {}
    if header.categories:
        ext["categories"] = [c.model_dump(mode="json") for c in header.categories]
    if header.info:
        ext["info"] = header.info
    if ext and strict:
        if header.categories:
            report.drop("header categories", "Nucleus datasets have no category list with ids",
                        len(header.categories))
        if header.info:
            report.drop("dataset info", "Nucleus datasets have no free dataset info")
        ext = {}
    if ext:
        data[EXT] = ext
    if data:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(data, fh, ensure_ascii=False, indent=1)
            fh.write("\n")


# --------------------------------------------------------------------------- detection


def _looks_like_payload(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            first = fh.readline(1 << 20)
            while first and not first.strip():
                first = fh.readline(1 << 20)
    except OSError:
        return False
    head = first.lstrip()
    if not head.startswith("{") or head.startswith('{"annobridge_header"'):
        return False
    try:
        obj = json.loads(first)
    except ValueError:  # a line longer than the probe: judge by its start
        return '"reference_id"' in first[:4096] and '"annobridge_header"' not in first[:64]
    if not isinstance(obj, dict) or "annobridge_header" in obj:
        return False
    if not isinstance(obj.get("reference_id", obj.get("ref_id")), str):
        return False
    keys = set(obj)
    return bool(keys & {"frames", "video_url", "image_url", "pointcloud_url", "annotations", "predictions", "metadata"})


def detect(path: Path) -> bool:
    """A ``.jsonl`` file (or a folder of them) whose first line is a Nucleus item or scene payload."""
    if path.is_dir():
        files = sorted(p for p in path.glob("*.jsonl") if p.is_file())
        return bool(files) and _looks_like_payload(files[0])
    return path.is_file() and path.suffix == ".jsonl" and _looks_like_payload(path)


FORMAT = Format(
    name="nucleus",
    description="Scale Nucleus payloads: one item or scene a line (JSONL), 8-bit masks, pointcloud JSON",
    capabilities=Capabilities.full(),
    read=read,
    write=write,
    detect=detect,
    read_options=NucleusReadOptions,
    write_options=NucleusWriteOptions,
    output="file",
)


@hookimpl
def register_formats() -> list[Format]:
    return [FORMAT]


__all__ = ["FORMAT", "NucleusReadOptions", "NucleusWriteOptions", "detect", "read", "write"]
