"""Writing Nucleus payloads (the mapping is in the package docstring)."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from PIL import Image
from pydantic_core import PydanticSerializationError, to_json

from annobridge.core.errors import FormatError, ReadError, WriteError
from annobridge.core.formats import Context, local_path, relative_location
from annobridge.core.masks import narrow_mask
from annobridge.core.metadata import ScopeSchema
from annobridge.core.model import (
    Dataset,
    DatasetHeader,
    DatasetItem,
    FrameRef,
    IndexMask,
    Scene,
    Segment,
    SegmentationAnnotation,
    auto_annotation_id,
)
from annobridge.core.paths import media_file, source_root
from annobridge.core.pointclouds import load_points, write_points_json
from annobridge.core.storage import cached_file, filesystem, join_url, protocol
from annobridge.plugins.nucleus.common import (
    EXT,
    ITEM_NATIVE_ATTRIBUTES,
    SCENE_NATIVE_ATTRIBUTES,
    SERVER_KEYS,
    SIDECAR_SUFFIX,
)

if TYPE_CHECKING:
    from annobridge.plugins.nucleus import NucleusWriteOptions

_SERVER_SET = frozenset(SERVER_KEYS)
NON_NUCLEUS_KINDS = frozenset({"object_mask", "oriented_box"})
NON_NUCLEUS_PREDICTION_KINDS = frozenset({"object_mask", "oriented_box", "multicategory"})
CAMERA_PARAM_OPTIONAL = ("k1", "k2", "k3", "k4", "p1", "p2")


@dataclass(slots=True)
class _Job:
    """One item's work, picklable for ``context.map`` (not frozen: a frozen dataclass is ~20x
    slower to make, and one is made per item)."""

    item: DatasetItem
    seq: int
    base: str
    masks_dir: str
    clouds_dir: str
    strict: bool
    in_scene: bool
    final_base: str
    """The output's final folder (the engine stages elsewhere): outside references are relative to it."""
    renumber_segments: str
    """``auto``: renumber a mask's segments 1..n when an index does not fit in 8 bits; ``true``:
    always; ``false``: never (such a mask is a WriteError)."""
    media_root: str | None = None
    """Point clouds are copied only from inside this folder (the source's; None for in-memory items)."""
    mask_url: str | None = None
    """Where the masks will be uploaded (a URL prefix), or None for local paths."""
    pointcloud_url: str | None = None
    collect: bool = False
    """Validating: a problem of one annotation is recorded (``_Done.errors``) and the item goes
    on; masks are also checked for pixel values no segment labels."""


@dataclass
class _Done:
    scene: FrameRef | None
    kind: str  # "image" | "pointcloud"
    payload: dict[str, Any]
    ext: dict[str, Any]
    drops: list[tuple[str, str, int]]
    converted: list[tuple[str, str, int]] = field(default_factory=list)
    errors: list[ReadError | WriteError] = field(default_factory=list)
    warnings: list[WriteError] = field(default_factory=list)
    plain: bool = False
    """Every value of ``payload`` and ``ext`` is plain JSON with finite numbers (``_encode``);
    a scene's line, made of several items and the scene's own values, is never taken as plain."""


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
    """What one item job records for the report: drops, conversions, and (validating) the
    problems found and the warnings."""

    __slots__ = ("converted", "errors", "items", "plain", "warnings")

    def __init__(self) -> None:  # plain dicts and lists: one is made per item
        self.items: dict[tuple[str, str], int] = {}
        self.converted: dict[tuple[str, str], int] = {}
        self.errors: list[ReadError | WriteError] = []
        self.warnings: list[WriteError] = []
        self.plain = True
        """No value seen so far stops the fast encoder (``_Done.plain``)."""

    def add(self, what: str, reason: str, n: int = 1) -> None:
        self.items[(what, reason)] = self.items.get((what, reason), 0) + n

    def as_list(self) -> list[tuple[str, str, int]]:
        return [(w, r, n) for (w, r), n in self.items.items()]


def _item_job(job: _Job) -> _Done:
    """Build one item's payload; write its masks and point cloud. Runs in a worker under --workers."""
    item = job.item
    drops = _Drops()
    ref = item.reference_id
    drops.plain = (_plain(item.metadata) and _plain(item.attributes) and _plain(item.width)
                   and _plain(item.height))
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
    if cloud is not None and (local_path(cloud) is not None or (not cloud.endswith(".json") and cached_file(cloud))):
        kind = "pointcloud"  # a local cloud, or one of a fetched remote source Nucleus cannot read (.bin)
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
            cloud = join_url(job.pointcloud_url, target.name) if job.pointcloud_url else relative_location(target, Path(job.base))
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
            drops.plain = drops.plain and _plain(extra)
    return _Done(item.scene, kind, payload, ext, drops.as_list(),
                 [(w, r, n) for (w, r), n in drops.converted.items()], drops.errors, drops.warnings,
                 drops.plain)


def _light(job: _Job) -> bool:
    """A payload with no mask to store and no point cloud to convert: built in the driver, as
    sending the item to a worker and its payload back costs more (``Context.map``'s ``here``)."""
    item = job.item
    return item.pointcloud_location is None and not any(
        a.type == "segmentation" for a in (*item.annotations, *item.predictions))


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
    taken: set[str] | None = None  # the ids given, made when an id must be generated
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
        if taken is None and ann.annotation_id is None:
            taken = {a.annotation_id for a in anns if a.annotation_id is not None}
        try:
            native.append(_annotation_payload(ann, ref, n, prediction, job, drops, taken))
        except (ReadError, WriteError) as exc:  # a mask that cannot be decoded or held
            if exc.item is None:  # a mask file's own error: say whose mask it is
                exc = type(exc)(exc.problem, file=exc.file, where=exc.where, item=ref, fix=exc.fix)
            if not job.collect:
                raise exc from None
            drops.errors.append(exc)  # validating: this annotation is left out, the others checked
    return native, extra


def _annotation_payload(ann: Any, ref: str, n: int, prediction: bool, job: _Job, drops: _Drops,
                        taken: set[str] | None) -> dict[str, Any]:
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
        assert taken is not None  # made by _annotation_payloads for an annotation without id
        aid = _generated_id(ref, t, n, prediction, taken)
        ext["annotation_id"] = None
    p: dict[str, Any]
    numbers: Any = ()  # the annotation's numbers, checked finite for the fast encoder
    if t == "box":
        numbers = (ann.x, ann.y, ann.width, ann.height)
        p = {"label": ann.label, "type": "box",
             "geometry": {"x": ann.x, "y": ann.y, "width": ann.width, "height": ann.height},
             "reference_id": ref, "annotation_id": aid, "metadata": ann.metadata,
             "embedding_vector": ann.embedding_vector, "track_reference_id": ann.track_reference_id,
             "task_id": server.pop("task_id", None)}
    elif t in ("line", "polygon"):
        flat = ann.vertices if t == "line" else ann.rings[0]
        numbers = flat if t == "line" or len(ann.rings) == 1 else [c for r in ann.rings for c in r]
        coords = iter(flat)
        verts = [{"x": x, "y": y} for x, y in zip(coords, coords, strict=True)]
        p = {"label": ann.label, "type": t, "geometry": {"vertices": verts}, "reference_id": ref,
             "annotation_id": aid, "metadata": ann.metadata}
        if t == "polygon":
            p["embedding_vector"] = ann.embedding_vector
            if len(ann.rings) > 1:
                ext["rings"] = [list(r) for r in ann.rings[1:]]
        p["track_reference_id"] = ann.track_reference_id
        p["task_id"] = server.pop("task_id", None)
    elif t == "keypoints":
        kp = numbers = ann.keypoints
        if ann.skeleton:
            numbers = [*kp, *(i for edge in ann.skeleton for i in edge)]
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
        numbers = (pos.x, pos.y, pos.z, dim.x, dim.y, dim.z, ann.yaw)
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
        if job.renumber_segments != "false":
            mask, segments = _renumbered(ann, ref, drops, prefix, force=job.renumber_segments == "true")
        segs = []
        seg_attrs = {}
        for s in segments:
            if not (_plain(s.index) and _plain(s.metadata) and _plain(s.attributes)):
                drops.plain = False
            sp: dict[str, Any] = {"label": s.label, "index": s.index}
            if s.metadata:
                sp["metadata"] = s.metadata
            if s.attributes:
                seg_attrs[str(s.index)] = s.attributes
            segs.append(sp)
        if seg_attrs:
            ext["segment_attributes"] = seg_attrs
        p = {"type": "mask", "mask_url": _store_mask(mask, job, prediction, ref, segments, drops, ann.mask.location),
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
    if drops.plain:
        drops.plain = _annotation_plain(ann, numbers, p.get("embedding_vector"))
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


RENUMBERED = "segmentation renumbered 1..n"
"""The conversion a renumbered mask is counted as (``report.converted``)."""


def _renumbered(ann: SegmentationAnnotation, ref: str, drops: _Drops, prefix: str,
                force: bool = False) -> tuple[IndexMask, list[Segment]]:
    """Segments renumbered 1..n (pixels of no segment -> 0) when the mask does not fit in 8 bits
    (or always, ``force``); counted as a conversion.

    The original index is kept in each segment's ``attributes["original_index"]``.

    Raises:
        WriteError: more than 255 segments, which no 8-bit mask holds.
    """
    if ann.mask.location is not None and not ann.mask.is_loaded and local_path(ann.mask.location) is None:
        return ann.mask, list(ann.annotations)  # a remote mask: nothing to renumber
    array = ann.mask.load()
    if not array.size or (not force and int(array.max()) < 256):
        return ann.mask, list(ann.annotations)
    if len(ann.annotations) > 255:
        raise WriteError(f"segmentation has {len(ann.annotations)} segments and an index above 255; an 8-bit "
                         "Nucleus mask holds 255 segments", item=ref, file=ann.mask.location,
                         fix="write fewer segments per item, or a format with wider masks")
    new_of = {s.index: n for n, s in enumerate(ann.annotations, start=1)}
    values, inverse = np.unique(array, return_inverse=True)
    lut = np.array([new_of.get(int(v), 0) for v in values], dtype=np.uint8)
    mask = IndexMask.from_array(lut[inverse].reshape(array.shape))
    segments = [s.model_copy(update={"index": new_of[s.index],
                                     "attributes": {**s.attributes, "original_index": s.index}})
                for s in ann.annotations]
    key = (f"{prefix}segmentation", RENUMBERED)
    drops.converted[key] = drops.converted.get(key, 0) + 1
    return mask, segments


def _store_mask(mask: IndexMask, job: _Job, prediction: bool, ref: str, segments: list[Segment],
                drops: _Drops, origin: str | None) -> str:
    """Write the mask as an 8-bit PNG in the masks folder; a remote URL is kept as it is.

    Validating (``job.collect``), a pixel value that no segment labels is a warning: the
    Nucleus guide wants "a Segment for each unique pixel value in the mask", but the model
    reads such pixels as unlabelled (void), as COCO panoptic's 0 is, so convert keeps them.

    Args:
        origin: the file the mask was read from (``mask`` may be a renumbered copy), for messages.

    Raises:
        WriteError: the mask is not the item's size or needs more than 8 bits.
    """
    if mask.location is not None and not mask.is_loaded and local_path(mask.location) is None:
        return mask.location
    try:
        array = narrow_mask(mask.load(), 8)
    except WriteError as exc:
        raise WriteError(f"segmentation mask: {exc.problem}; Nucleus masks are 8-bit (index <= 255)",
                         item=ref, file=mask.location,
                         fix="leave --option renumber-segments at auto (it renumbers up to 255 segments), "
                         "or write a format with wider masks") from exc
    except ReadError:
        raise
    item = job.item
    if item.width is not None and item.height is not None and array.shape != (item.height, item.width):
        raise WriteError(f"segmentation mask is {array.shape[1]}x{array.shape[0]} but the image is "
                         f"{item.width}x{item.height}", item=ref, file=mask.location,
                         fix="a Nucleus mask has the image's size: resize it (nearest neighbour)")
    if job.collect:
        present = np.flatnonzero(np.bincount(array.ravel(), minlength=256))
        unlabelled = sorted(set(present.tolist()) - {s.index for s in segments})
        if unlabelled:
            drops.warnings.append(WriteError(
                f"pixel values {unlabelled} have no segment (read as unlabelled); the Nucleus guide "
                "wants a Segment for each pixel value in the mask", item=ref, file=origin,
                fix="add a Segment for each value (index 0 too, e.g. label 'background')"))
    target = Path(job.masks_dir) / f"{job.seq:06d}-{_safe(ref)}{'-pred' if prediction else ''}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(array)).save(target, format="PNG")
    if job.mask_url:
        return join_url(job.mask_url, target.name)
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
_ORJSON_EXACT = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS
"""orjson options under which it refuses (TypeError) every type it would write otherwise than
pydantic-core (a UTC datetime: ``+00:00`` against ``Z``); it writes the rest byte for byte alike."""


def _plain(value: Any) -> bool:
    """Whether a free value (metadata, attributes, ...) is plain JSON with finite numbers: dicts,
    lists, tuples, strings, ints, bools, None and finite floats. orjson writes such a value as
    pydantic-core does, and anything else (NaN, a datetime, a set, a str subclass) is left to
    the exact encoder (``_encode``)."""
    t = type(value)
    if t is dict:
        return all(map(_plain, value.values()))
    if t is list or t is tuple:
        return all(map(_plain, value))
    if t is float:
        return value - value == 0.0  # NaN and +-inf give NaN
    return t is str or t is int or t is bool or value is None


def _annotation_plain(ann: Any, numbers: Any, embedding: list[float] | None) -> bool:
    """``_plain`` for what a payload takes from one annotation: its numbers (``numbers``: the
    geometry's, a skeleton's; ``embedding``; confidence), class_pdf, metadata and attributes;
    its other fields are strings (labels and ids are taken to be). The numbers are summed in C:
    a NaN or infinity survives a sum; an overflow or a non-number says False, which only costs
    the exact encoder."""
    metadata, attrs, conf, pdf = ann.metadata, ann.attributes, ann.confidence, ann.class_pdf
    try:
        total = sum(numbers, conf or 0)
        if embedding:
            total += sum(embedding)
        if not math.isfinite(total):
            return False
    except (TypeError, OverflowError):
        return False
    return (not metadata or _plain(metadata)) and (not attrs or _plain(attrs)) and (pdf is None or _plain(pdf))


def _encode(line: dict[str, Any], plain: bool) -> bytes:
    """Compact UTF-8 JSON of one payload line, keys in insertion order, and its newline.

    A ``plain`` line (every float-typed model field and free value checked finite and plain
    by the item job: ``_Done.plain``) is written by orjson, which writes NaN and infinities as
    null, so they must not reach it. The others go to pydantic-core's serializer (Rust, it
    writes exactly what orjson does and more types); a line it cannot serialize, or where a
    NaN/Infinity may have slipped in, is encoded again by the standard library, which raises
    ValueError/TypeError on such values.
    """
    if plain:
        try:
            return orjson.dumps(line, option=_ORJSON_EXACT | orjson.OPT_APPEND_NEWLINE)
        except TypeError:  # a type orjson leaves to pydantic-core (an int past 64 bits, a non-str key)
            pass
    try:
        out = to_json(line, inf_nan_mode="constants")
    except PydanticSerializationError:
        out = None
    if out is None or ((b"NaN" in out or b"Infinity" in out) and _NON_FINITE.search(out)):
        out = json.dumps(line, allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return out + b"\n"


def _remote_folder(url: str | None, option: str, context: Context) -> Path | None:
    """The local folder whose files the engine uploads to ``url`` on success (None without a URL)."""
    if url is None:
        return None
    if protocol(url) is None:
        raise FormatError(f"--option {option}={url} is not a URL",
                          fix=f"give a URL prefix such as s3://bucket/prefix/ (Nucleus reads {option.split('-')[0]}s "
                          "from remote storage); leave the option out to write them beside the output")
    filesystem(url, context.storage_options)  # a missing package fails before any item is written
    return context.side_output(url)
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
    masks_dir = _remote_folder(options.mask_url, "mask-url", context) or base / f"{stem}.masks"
    clouds_dir = _remote_folder(options.pointcloud_url, "pointcloud-url", context) or base / f"{stem}.pointclouds"
    final_base = os.path.abspath((context.final_destination or destination).parent)
    root = source_root(dataset.source)
    media_root = str(root) if root is not None else None

    schema = ScopeSchema("items", kinds_only=True)  # for conflicts(): kinds only
    unplaced: list[str] = []

    def jobs() -> Iterator[_Job]:
        for seq, item in enumerate(dataset.items):
            if item.scene is None and item.image_location is None and item.pointcloud_location is None:
                _drop_unplaced(item, report)  # the client refuses an item without a location
                unplaced.append(item.reference_id)
                continue
            schema.add(item.reference_id, item.metadata)
            yield _Job(item, seq, str(base), str(masks_dir), str(clouds_dir), strict, item.scene is not None,
                       final_base, options.renumber_segments, media_root, options.mask_url,
                       options.pointcloud_url, context.collect_errors)

    header = dataset.header
    written_scenes: set[str] = set()
    buf: _SceneBuffer | None = None
    def dumps(line: dict[str, Any], plain: bool = False) -> bytes:
        if options.booleans_as_strings:
            n = _line_bools(line)
            report.drop("metadata booleans", 'written as the strings "true"/"false" (booleans-as-strings)', n)
        try:
            return _encode(line, plain)
        except (ValueError, TypeError) as exc:  # NaN/inf, or a value JSON has no form for (in attributes)
            raise WriteError(f"cannot write a value as JSON: {exc}", file=context.final_destination or destination,
                             item=line.get("reference_id"), fix="Nucleus payloads hold finite numbers, "
                             "strings, lists and objects only") from exc

    with open(destination, "wb", buffering=1 << 20) as out:  # a few large writes, not one per 8 KiB
        def flush() -> None:
            nonlocal buf
            if buf is not None:
                out.write(dumps(_scene_payload(buf, header.scenes.get(buf.ref), strict, report,
                                               options.incomplete_lidar_scenes, options.frame_rate)))
                written_scenes.add(buf.ref)
                buf = None

        for done in context.map(_item_job, jobs(), here=_light):
            for what, reason, n in done.drops:
                report.drop(what, reason, n)
            for source, target, n in done.converted:
                report.convert(source, target, n, consumed=0, made=0)
            for problem in done.errors:
                context.error(problem)
            for finding in done.warnings:
                context.warn(finding)
            if done.scene is None:
                flush()
                out.write(dumps(_with_ext(done.payload, {} if strict else done.ext), done.plain))
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
    for conflict in schema.conflicts():  # Nucleus indexes one type per key (nothing is kept)
        context.error(conflict)
    if any(kind.endswith(RENUMBERED) for kind in report.converted):
        report.notes.append("segments renumbered 1..n to fit 8-bit Nucleus masks; each keeps its index in "
                            'attributes["original_index"] (--option renumber-segments=false refuses instead)')
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
