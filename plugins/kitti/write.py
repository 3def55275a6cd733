"""Writing KITTI: the object layout (``kitti``) and tracking sequences (``kitti-tracking``),
one frame at a time (``write_frame`` runs in a worker with --workers)."""

from __future__ import annotations

import functools
import math
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annobridge.core import camera
from annobridge.core.errors import FormatError, WriteError
from annobridge.core.formats import Context
from annobridge.core.model import BoxAnnotation, CuboidAnnotation, Dataset, DatasetItem
from annobridge.core.paths import media_file, safe_name, source_root, write_new_file
from annobridge.core.pointclouds import load_points
from annobridge.plugins.kitti import calib as kitti_calib
from annobridge.plugins.kitti.common import (
    OBJECT_STYLE,
    TRACKING_STYLE,
    Style,
    _image_size,
    _fixed,
    _score_fmt,
    _transform,
    load_label_map,
    row_text,
)

if TYPE_CHECKING:
    from annobridge.plugins.kitti import KittiWriteOptions

KITTI_ATTRIBUTES = frozenset({"truncated", "occluded", "alpha", "dont_care", "score", "kitti_text", "track_id"})


# --------------------------------------------------------------------------- writing


@dataclass
class FrameJob:
    """Everything one frame's writer needs (picklable, for ``context.map``)."""

    stem: str
    items: list[DatasetItem]
    calib: camera.Calib | None
    split_dir: Path
    media: str
    mapping: dict[str, str | None]
    style: Style
    tracking: tuple[str, int] | None = None  # (sequence, frame)
    write_label_file: bool = True
    track_ids: dict[str, int] = field(default_factory=dict)  # track_reference_id -> KITTI track id
    media_root: Path | None = None  # media are copied only from inside it (core.paths.media_file)


@dataclass
class FrameResult:
    """What a frame's writer hands back to the driver (from a worker with --workers)."""

    stem: str
    split_dir: Path
    gt_rows: list[str]  # the tracking layout's rows, for the driver's sequence files (empty
    pred_rows: list[str]  # in the object layout: its frame writes its own files)
    drops: list[tuple[str, str, int]]
    imagesets: list[str]
    ref: str = ""  # the frame's first item
    scene: str | None = None  # its scene, for a frame past a scene's first (the object layout has no sequences)


def _label_of(label: str, mapping: dict[str, str | None]) -> str | None:
    if label in mapping:
        return mapping[label]
    return label


def _cuboid_camera(c: CuboidAnnotation, t: camera.Transform | None, ref: str) -> tuple[float, ...]:
    """(h, w, l, x, y, z, ry) of a canonical cuboid."""
    l, w, h = c.dimensions.x, c.dimensions.y, c.dimensions.z
    p = (c.position.x, c.position.y, c.position.z)
    if c.frame == "camera":
        return (h, w, l, p[0], p[1] + h / 2.0, p[2], camera.wrap_angle(-c.yaw) if abs(c.yaw) > math.pi else -c.yaw)
    if t is None:
        raise WriteError("a LiDAR-frame cuboid needs calibration to become a KITTI label row", item=ref,
                         fix="pass --option calib=FILE (one calib file, or a folder of <frame>.txt), or "
                             "keep attributes['kitti_calib'] / metadata['camera_params'] on the items")
    loc, ry = camera.lidar_to_camera(t, p, h, c.yaw)
    return (h, w, l, loc[0], loc[1], loc[2], ry)


def _rows_for(anns: list[Any], prediction: bool, t: camera.Transform | None, size: tuple[int | None, int | None],
              job: FrameJob, ref: str, drops: list[tuple[str, str, int]]) -> list[str]:
    """The label rows of a frame's annotations (or predictions); the losses go into ``drops``."""
    if not anns:
        return []
    if job.tracking is None:
        rows = _plain_rows(anns, prediction, job, drops)
        if rows is not None:
            return rows
    return _general_rows(*_boxes_cuboids(anns), prediction, t, size, job, ref, drops)


def _general_rows(boxes: list[BoxAnnotation], cuboids: list[CuboidAnnotation], prediction: bool,
                  t: camera.Transform | None, size: tuple[int | None, int | None], job: FrameJob, ref: str,
                  drops: list[tuple[str, str, int]]) -> list[str]:
    """Any frame's rows, one :func:`_render` per object (:func:`_plain_rows` is the common case's)."""
    lost: dict[str, int] = {}  # attribute key -> rows that lose it (one report entry per key)
    if cuboids:
        rows = _paired_rows(boxes, cuboids, prediction, t, size, job, ref, drops, lost)
    else:  # a 2D dataset: nothing to pair
        made = [_render(b, None, prediction, t, size, job, ref, drops, lost) for b in boxes]
        rows = [row for row in made if row is not None]
    drops.extend((f"attribute:{key}", _NO_FIELD, n) for key, n in lost.items())
    return rows


@functools.lru_cache(maxsize=4096)
def _plain_head(label: str) -> str | None:
    """A plain row's text up to its box (``Car -1 -1 -10 ``), or None when the class needs
    :func:`_render` (DontCare, or a name it refuses)."""
    if _label_problem(label) or label.lower() == "dontcare":
        return None
    return label + " -1 -1 -10 "


def _plain_rows(anns: list[Any], prediction: bool, job: FrameJob, drops: list[tuple[str, str, int]]) -> list[str] | None:
    """The rows of a frame of plain boxes in one loop (400,000 rows on a large COCO set):
    rows made from other formats, with no cuboid, no KITTI attribute, no DontCare and no
    track column. Each row and each loss equals :func:`_render`'s (tests/test_kitti_plain_rows.py);
    None, having changed nothing, when an object needs :func:`_general_rows` (which then also
    raises any error)."""
    style = job.style
    box_format, decimals, tail = style.box_format, style.decimals, " " + style.sentinel_text[False]
    mapping = job.mapping
    kitti = KITTI_ATTRIBUTES
    rows: list[str] = []
    append = rows.append
    mapped_out: list[tuple[str, str, int]] = []
    lost: dict[str, int] = {}
    for b in anns:
        if b.type != "box":
            return None
        label = b.label
        if mapping:
            label = mapping.get(label, label)
            if label is None:
                mapped_out.append((("prediction:box" if prediction else "box"), f"label map drops class {b.label!r}", 1))
                continue
        head = _plain_head(label)
        if head is None:
            return None
        x0, y0, w, h = float(b.x), float(b.y), float(b.width), float(b.height)
        attrs = b.attributes
        if attrs:
            if not kitti.isdisjoint(attrs):
                return None
            for key, value in attrs.items():  # what _count_lost counts
                if key == "area":
                    if isinstance(value, (int, float)):
                        v = float(value)
                        d = abs(v - w * h)
                        if d <= 1e-6 or d <= 1e-6 * abs(v):  # <= 1e-6 * max(1, |v|)
                            continue
                elif key == "iscrowd":
                    if value == 0:
                        continue
                lost[key] = lost.get(key, 0) + 1
        box = box_format % (x0, y0, x0 + w, y0 + h)
        if "-" in box:  # a value that rounds to -0 loses its sign (common._fixed)
            box = " ".join([_fixed(v, decimals) for v in (x0, y0, x0 + w, y0 + h)])
        if prediction:
            conf = b.confidence
            append(head + box + tail + " " + _score_fmt(conf if conf is not None else 1.0, style))
        else:
            append(head + box + tail)
    drops.extend(mapped_out)
    drops.extend((f"attribute:{key}", _NO_FIELD, n) for key, n in lost.items())
    return rows


def _paired_rows(boxes: list[BoxAnnotation], cuboids: list[CuboidAnnotation], prediction: bool,
                 t: camera.Transform | None, size: tuple[int | None, int | None], job: FrameJob, ref: str,
                 drops: list[tuple[str, str, int]], lost: dict[str, int]) -> list[str]:
    """The rows of a frame with cuboids: each box joined with its object's cuboid."""
    by_group: dict[str, CuboidAnnotation] = {}
    by_track: dict[str, CuboidAnnotation] = {}
    for c in cuboids:
        if c.group_id is not None:
            by_group.setdefault(c.group_id, c)
        if c.track_reference_id is not None:
            by_track.setdefault(c.track_reference_id, c)
    used: set[int] = set()
    rows: list[str] = []
    kind = "prediction:" if prediction else ""
    pairs: list[CuboidAnnotation | None] = []
    for b in boxes:
        c = by_group.get(b.group_id) if b.group_id is not None else None
        if c is None and b.track_reference_id is not None:
            c = by_track.get(b.track_reference_id)
        if c is not None and id(c) in used:
            c = None
        if c is not None:
            used.add(id(c))
        pairs.append(c)
    if t is not None and any(c is None for c in pairs) and len(used) < len(cuboids):
        _pair_by_overlap(boxes, pairs, [c for c in cuboids if id(c) not in used], used, t, size, ref)
    for b, c in zip(boxes, pairs):
        row = _render(b, c, prediction, t, size, job, ref, drops, lost)
        if row is not None:
            rows.append(row)
        elif c is not None:
            drops.append((kind + "cuboid", "its class is dropped by the label map", 1))
    for c in cuboids:
        if id(c) not in used:
            row = _render(None, c, prediction, t, size, job, ref, drops, lost)
            if row is not None:
                rows.append(row)
    return rows


_NONE: dict[str, Any] = {}  # the attributes of a row without a box (never written to)
_ABSENT = object()
_NO_FIELD = "KITTI label rows have no field for it"


def _count_lost(ann: BoxAnnotation | CuboidAnnotation, lost: dict[str, int]) -> bool:
    """Count into ``lost`` each attribute of ``ann`` a label row cannot carry: any but the
    KITTI ones, less those that carry no information beyond the box (COCO ``iscrowd`` 0, an
    ``area`` equal to the box's width x height). Runs once per row; returns whether ``ann``
    has any KITTI attribute (the row reads them only then)."""
    kitti = False
    for key, value in ann.attributes.items():
        if key in KITTI_ATTRIBUTES:
            kitti = True
            continue
        if key == "iscrowd":
            if value == 0:
                continue
        elif key == "area" and ann.type == "box" and isinstance(value, (int, float)):
            wh = float(ann.width) * float(ann.height)  # type: ignore[union-attr]
            if abs(float(value) - wh) <= 1e-6 * max(1.0, abs(float(value))):
                continue
        lost[key] = lost.get(key, 0) + 1
    return kitti


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _pair_by_overlap(boxes: list[BoxAnnotation], pairs: list[CuboidAnnotation | None],
                     free: list[CuboidAnnotation], used: set[int], t: camera.Transform,
                     size: tuple[int | None, int | None], ref: str) -> None:
    """Join boxes and cuboids that carry no shared id (e.g. Nucleus data without the
    annobridge extension): same label and IoU >= 0.5 between the box and the cuboid's
    projection, best overlaps first."""
    candidates = []
    for c in free:
        h, w, l, x, y, z, ry = _cuboid_camera(c, t, ref)
        proj = camera.box_2d(t.P2, camera.corners_camera((x, y, z), h, w, l, ry), size[0], size[1])
        if proj is None:
            continue
        for i, b in enumerate(boxes):
            if pairs[i] is None and b.label == c.label and not b.attributes.get("dont_care"):
                bb = (float(b.x), float(b.y), float(b.x) + float(b.width), float(b.y) + float(b.height))
                iou = _iou(bb, proj)
                if iou >= 0.5:
                    candidates.append((iou, i, c))
    for _, i, c in sorted(candidates, key=lambda k: -k[0]):
        if pairs[i] is None and id(c) not in used:
            pairs[i] = c
            used.add(id(c))


@functools.lru_cache(maxsize=4096)
def _label_problem(label: str) -> str | None:
    """Why a class name would not read back as itself from a label row, or None."""
    words = label.split()
    if not words:
        return "it is empty"
    if " ".join(words) != label:
        return "it has leading, trailing, repeated or non-space whitespace"
    if kitti_calib.is_number(words[0]) or kitti_calib.is_number(words[-1]):
        return "its first or last word is a number, which reads back as a column"
    return None


def _render(b: BoxAnnotation | None, c: CuboidAnnotation | None, prediction: bool, t: camera.Transform | None,
            size: tuple[int | None, int | None], job: FrameJob, ref: str,
            drops: list[tuple[str, str, int]], lost: dict[str, int]) -> str | None:
    """One label row (runs once per object: 400,000 times on a large COCO set); ``lost``
    counts the attributes it cannot carry (:func:`_count_lost`)."""
    main = b if b is not None else c
    assert main is not None
    label = _label_of(main.label, job.mapping) if job.mapping else main.label
    if label is None:
        drops.append((("prediction:" if prediction else "") + main.type, f"label map drops class {main.label!r}", 1))
        return None
    problem = _label_problem(label)
    if problem:
        raise WriteError(f"label {label!r} cannot be a KITTI class name: {problem}", item=ref,
                         fix="rename the class with --option label-map=FILE")
    attrs = b.attributes if b is not None else _NONE
    kitti = _count_lost(b, lost) if attrs else False  # type: ignore[arg-type]
    if c is not None and c.attributes:
        _count_lost(c, lost)
    if kitti:  # a row read from KITTI: its own columns (rows made from other formats have none)
        text = attrs.get("kitti_text")
        tokens = text.split() if isinstance(text, str) else None
        n_expected = 15 if prediction else 14
        if tokens is not None and (len(tokens) != n_expected or not all(kitti_calib.is_number(x) for x in tokens)):
            tokens = None
        dont_care = bool(attrs.get("dont_care")) or label.lower() == "dontcare"
        truncated, occluded, alpha = attrs.get("truncated", -1), attrs.get("occluded", -1), attrs.get("alpha", _ABSENT)
    else:
        tokens, dont_care, truncated, occluded, alpha = None, label.lower() == "dontcare", -1, -1, _ABSENT
    geom = _cuboid_camera(c, t, ref) if c is not None and not dont_care else None
    if b is not None:
        x0, y0 = float(b.x), float(b.y)
        bbox = (x0, y0, x0 + float(b.width), y0 + float(b.height))
    else:
        kind = ("prediction:" if prediction else "") + main.type
        if t is None:
            drops.append((kind, "no P2 calibration to project the cuboid to a 2D box; row written with a 0 0 0 0 box", 1))
            bbox = (0.0, 0.0, 0.0, 0.0)
        else:
            h, w, l, x, y, z, ry = geom  # type: ignore[misc]
            got = camera.box_2d(t.P2, camera.corners_camera((x, y, z), h, w, l, ry), size[0], size[1])
            if got is None:
                drops.append((kind, "cuboid is not visible in image 2 (behind the camera or outside the image)", 1))
                return None
            bbox = got
    if alpha is _ABSENT:
        alpha = camera.alpha_of(geom[3:6], geom[6]) if geom is not None else -10
    score = None
    if prediction:
        conf = main.confidence
        raw = attrs.get("score") if kitti else None
        if isinstance(raw, (int, float)) and not isinstance(raw, bool) and (
                conf is None or abs(min(max(float(raw), 0.0), 1.0) - conf) < 1e-12):
            score = raw
        else:
            score = conf if conf is not None else 1.0
    nums = row_text(truncated, occluded, alpha, bbox, geom, dont_care, score, tokens, job.style)
    head = ""
    if job.tracking is not None:
        tid = attrs.get("track_id")
        if not isinstance(tid, int):
            tid = -1 if dont_care else _track_number(main.track_reference_id, job)
        head = f"{job.tracking[1]} {tid} "
    return head + label + " " + nums


def _track_number(track_ref: str | None, job: FrameJob) -> int:
    if track_ref is None:
        return -1
    return job.track_ids.get(track_ref, -1)


def write_frame(job: FrameJob) -> FrameResult:
    """Render one KITTI frame's rows and copy its media (runs in a worker with --workers)."""
    drops: list[tuple[str, str, int]] = []
    if len(job.items) == 1:  # most frames: one image (or one point cloud)
        one = job.items[0]
        images, clouds = ([one], []) if one.pointcloud_location is None else ([], [one])
    else:
        images = [i for i in job.items if i.pointcloud_location is None]
        clouds = [i for i in job.items if i.pointcloud_location is not None]
    image = images[0] if images else None
    for extra in images[1:]:
        drops.append(("image item", "KITTI keeps one camera image per frame (image_2)", 1))
        for a in extra.annotations:
            drops.append((a.type, "on an extra camera image of the frame", 1))
        for a in extra.predictions:
            drops.append(("prediction:" + a.type, "on an extra camera image of the frame", 1))
    cloud = clouds[0] if clouds else None
    for extra in clouds[1:]:
        drops.append(("pointcloud item", "KITTI keeps one point cloud per frame", 1))
    ref = (image or cloud).reference_id  # type: ignore[union-attr]
    calib = job.calib
    if calib is None and image is not None and isinstance(image.metadata.get("camera_params"), dict):
        try:
            calib = camera.calib_from_camera_params(image.metadata["camera_params"])  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError) as exc:
            raise WriteError(f"metadata camera_params is not in the Nucleus form: {exc}", item=ref) from exc
    t = _transform(calib)
    for it in (image, cloud):
        if it is not None and it.metadata and any(k != "camera_params" for k in it.metadata):
            drops.append(("item metadata", "KITTI holds no item metadata (camera_params become calib)", 1))
    size = (image.width, image.height) if image is not None else (None, None)
    image_src, image_skip = None, ""
    if image is not None and (size[0] is None or job.media == "copy"):  # else the image is not needed
        image_src, image_skip = media_file(image.image_location, job.media_root)
    if image is not None and size[0] is None and image_src is not None:
        size = _image_size(image_src)
    members = [i for i in (image, cloud) if i is not None]
    gt_rows = _rows_for(_annotations(members, "annotations"), False, t, size, job, ref, drops)
    pr_rows = _rows_for(_annotations(members, "predictions"), True, t, size, job, ref, drops)
    sd = job.split_dir
    if job.tracking is None:  # the frame's own files; its rows need not go back to the driver
        sep, name = os.sep, job.stem + ".txt"  # (an f-string: os.path.join costs 1 us a call)
        if gt_rows or (job.write_label_file and not pr_rows):
            _write_text(f"{sd}{sep}label_2{sep}{name}", gt_rows)
        if pr_rows:
            _write_text(f"{sd}{sep}results{sep}{name}", pr_rows)
        if calib is not None:
            _write_text(f"{sd}{sep}calib{sep}{name}", [kitti_calib.format_calib(calib).removesuffix("\n")])
        gt_rows, pr_rows = [], []
    if job.media == "copy":
        img_parts: tuple[str, ...]
        velo_parts: tuple[str, ...]
        if job.tracking is None:
            img_parts, velo_parts, name = ("image_2",), ("velodyne",), job.stem
        else:
            seq, f = job.tracking
            img_parts, velo_parts, name = ("image_02", seq), ("velodyne", seq), f"{f:06d}"
        if image is not None and image.image_location:
            if image_src is not None:
                img_dir = sd.joinpath(*img_parts)  # made only for a file copied (most frames copy none)
                img_dir.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(image_src, img_dir / f"{name}{image_src.suffix.lower() or '.png'}")
            elif image_skip == "missing" or image_skip == "not a local file":
                drops.append(("image file", "missing or not a local file; not copied into image_2/", 1))
            else:
                drops.append(("image file", f"{image_skip}; not copied into image_2/", 1))
        src, cloud_skip = media_file(cloud.pointcloud_location if cloud is not None else None, job.media_root)
        if cloud is not None and src is None:
            drops.append(("point cloud file", f"{cloud_skip}; not copied into velodyne/", 1))
        elif cloud is not None and src is not None:
            velo_dir = sd.joinpath(*velo_parts)
            velo_dir.mkdir(parents=True, exist_ok=True)
            if src.suffix == ".bin":
                shutil.copyfile(src, velo_dir / f"{name}.bin")
            else:
                load_points(src).astype("<f4").tofile(velo_dir / f"{name}.bin")
    named = (image or cloud).attributes.get("kitti_imagesets")  # type: ignore[union-attr]
    sets = [s for s in named if isinstance(s, str)] if named else []
    first = job.items[0]
    later = first.scene.scene_reference_id if first.scene is not None and first.scene.index > 0 else None
    return FrameResult(job.stem, job.split_dir, gt_rows, pr_rows, drops, sets, first.reference_id, later)


def _boxes_cuboids(anns: list[Any]) -> tuple[list[BoxAnnotation], list[CuboidAnnotation]]:
    """The boxes and the cuboids among a frame's annotations (or predictions)."""
    boxes = [a for a in anns if a.type == "box"]
    if len(boxes) == len(anns):  # a 2D frame: one pass
        return boxes, []
    return boxes, [a for a in anns if a.type == "cuboid"]


def _annotations(members: list[DatasetItem], field: str) -> list[Any]:
    """The ``annotations`` or ``predictions`` of a frame's items, in order."""
    if len(members) == 1:
        return getattr(members[0], field)
    return [a for i in members for a in getattr(i, field)]


def _write_text(path: str, rows: list[str]) -> None:
    """Write ``rows`` as lines (:func:`~annobridge.core.paths.write_new_file`: the folder is
    made only when the open finds it missing)."""
    write_new_file(path, "\n".join(rows) + "\n" if rows else "")


def _frames(items: Iterator[DatasetItem]) -> Iterator[list[DatasetItem]]:
    """Consecutive items of the same scene frame (or single items)."""
    group: list[DatasetItem] = []
    key: Any = None
    for item in items:
        k = (item.scene.scene_reference_id, item.scene.index) if item.scene is not None else ("", id(item))
        if group and k != key:
            yield group
            group = []
        key = k
        group.append(item)
    if group:
        yield group


def _safe_stem(name: str) -> str:
    """A frame or sequence file name from an id: one component, never ``..`` (core.paths)."""
    return safe_name(name.replace("/", "_").replace("\\", "_").replace("\n", "_"))


class _CalibSource:
    def __init__(self, option: Path | None) -> None:
        self.option = option
        self.single: camera.Calib | None = None
        if option is not None:
            if option.is_file():
                self.single = kitti_calib.read_calib(option)
            elif not option.is_dir():
                raise FormatError("calib option: no such file or folder", file=option)

    def get(self, stem: str, items: list[DatasetItem]) -> camera.Calib | None:
        for it in items:
            c = it.attributes.get("kitti_calib")
            if isinstance(c, dict) and c:
                return c
        if self.single is not None:
            return self.single
        if self.option is not None:
            p = self.option / f"{stem}.txt"
            if p.is_file():
                return kitti_calib.read_calib(p)
        return None


def _record(context: Context, res: FrameResult) -> None:
    """Report a frame's drops (already one entry per lost attribute key: the frame counts its
    rows, :func:`_rows_for`)."""
    drop = context.report.drop
    for what, reason, n in res.drops:
        drop(what, reason, n)


def write(dataset: Dataset, destination: Path, options: KittiWriteOptions, context: Context) -> None:
    """Write the KITTI object layout under ``destination``."""
    jobs = _object_jobs(iter(dataset.items), destination, options, source_root(dataset.source))
    done = (_written(res, context) for res in context.map(write_frame, jobs))
    finish(done, dataset, destination, options, context)


class WrittenFrames:
    """What the driver needs of the frames a worker wrote (``Format.parts``), in columns: a
    part's frames cross back as a few lists, not one object each (50,000 frames: 0.01 s of
    pickling instead of 0.2 s, most of it the driver's). Iterates as :func:`_written` tuples."""

    __slots__ = ("stems", "refs", "imagesets", "scenes")

    def __init__(self) -> None:
        self.stems: list[str] = []
        self.refs: list[str] = []
        self.imagesets: list[list[str] | tuple[()]] = []
        self.scenes: list[str | None] = []

    def add(self, res: FrameResult) -> None:
        self.stems.append(res.stem)
        self.refs.append(res.ref)
        self.imagesets.append(res.imagesets or ())  # one shared () for the frames in no image set
        self.scenes.append(res.scene)

    def __iter__(self) -> Iterator[tuple[str, str, list[str] | tuple[()], str | None]]:
        return zip(self.stems, self.refs, self.imagesets, self.scenes)

    def __getstate__(self) -> tuple[Any, ...]:
        return self.stems, self.refs, self.imagesets, self.scenes

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.stems, self.refs, self.imagesets, self.scenes = state


def _object_jobs(items: Iterator[DatasetItem], destination: Path, options: KittiWriteOptions,
                 media_root: Path | None) -> Iterator[FrameJob]:
    mapping = load_label_map(options.label_map)
    calibs = _CalibSource(options.calib)
    destination.mkdir(parents=True, exist_ok=True)
    split_dirs: dict[str, Path] = {}
    for group in _frames(items):
        stem = split = None
        label_file = True
        for it in group:  # the first kitti_frame, the first kitti_split; any kitti_label_file false
            attrs = it.attributes
            if not attrs:
                continue
            s = attrs.get("kitti_frame")
            if stem is None and isinstance(s, str) and s and "kitti_sequence" not in attrs:
                stem = s
            s = attrs.get("kitti_split")
            if split is None and s in ("training", "testing"):
                split = s
            if attrs.get("kitti_label_file", True) is False:
                label_file = False
        if stem is None:
            imgs = [i for i in group if i.pointcloud_location is None] if len(group) > 1 else group
            stem = (imgs[0] if imgs else group[0]).reference_id
        stem = _safe_stem(stem)
        if split is None:
            split = options.split
        split_dir = split_dirs.get(split)
        if split_dir is None:
            split_dir = split_dirs[split] = destination / split
        yield FrameJob(stem, group, calibs.get(stem, group), split_dir, options.media, mapping,
                       OBJECT_STYLE, None, label_file, media_root=media_root)


def _written(res: FrameResult, context: Context) -> tuple[str, str, list[str], str | None]:
    """A frame written here: its drops reported, and what :func:`finish` needs of it
    (file stem, first item's reference id, image sets, scene past its first frame)."""
    _record(context, res)
    return res.stem, res.ref, res.imagesets, res.scene


def write_part(items: Iterator[DatasetItem], destination: Path, options: KittiWriteOptions, dataset: Dataset,
               context: Context) -> WrittenFrames:
    """In a worker: write the frames of one shard's items (``Format.parts``)."""
    out = WrittenFrames()
    for job in _object_jobs(items, destination, options, source_root(dataset.source)):
        res = write_frame(job)
        _record(context, res)
        out.add(res)
    return out


def finish(frames: Iterable[tuple[str, str, list[str], str | None]], dataset: Dataset, destination: Path,
           options: KittiWriteOptions, context: Context) -> None:
    """In the driver, over every frame in order (:func:`_written`): one file name per frame,
    the image sets."""
    used: set[str] = set()
    imagesets: dict[str, list[str]] = {}
    multi_frame_scenes: set[str] = set()
    for stem, ref, sets, scene in frames:
        if stem in used:
            raise WriteError(f"two frames would both be written as {stem}.txt", item=ref,
                             fix="give items unique reference ids (or kitti_frame attributes)")
        used.add(stem)
        if scene is not None:
            multi_frame_scenes.add(scene)
        for s in sets:
            imagesets.setdefault(s, []).append(stem)
    if multi_frame_scenes:
        context.report.drop("scene", "the KITTI object layout has no sequences; each frame is written on its own",
                            len(multi_frame_scenes))
    if dataset.header.scenes and any(s.metadata for s in dataset.header.scenes.values()):
        context.report.drop("scene metadata", "KITTI holds no scene metadata",
                            sum(1 for s in dataset.header.scenes.values() if s.metadata))
    destination.mkdir(parents=True, exist_ok=True)
    for name, stems in imagesets.items():
        (destination / "ImageSets").mkdir(exist_ok=True)
        (destination / "ImageSets" / f"{name}.txt").write_text("".join(s + "\n" for s in stems), encoding="utf-8")
    if not any(destination.iterdir()):
        (destination / options.split).mkdir()


def write_tracking(dataset: Dataset, destination: Path, options: KittiWriteOptions, context: Context) -> None:
    """Write the KITTI tracking layout: ``label_02/SSSS.txt`` per scene."""
    mapping = load_label_map(options.label_map)
    calibs = _CalibSource(options.calib)
    media_root = source_root(dataset.source)
    destination.mkdir(parents=True, exist_ok=True)
    seq_names: dict[str, str] = {}
    loose = [0]
    handles: dict[str, Any] = {}
    calib_written: set[str] = set()
    tracks: dict[str, dict[str, int]] = {}

    def seq_of(scene_ref: str) -> str:
        if scene_ref not in seq_names:
            name = _safe_stem(scene_ref)
            if name in seq_names.values():
                raise WriteError(f"two scenes map to sequence {name}", item=scene_ref)
            seq_names[scene_ref] = name
        return seq_names[scene_ref]

    def jobs() -> Iterator[FrameJob]:
        for group in _frames(iter(dataset.items)):
            first = group[0]
            if first.scene is not None:
                seq, f = seq_of(first.scene.scene_reference_id), first.scene.index
            else:
                seq, f = "0000", loose[0]
                loose[0] += 1
            split = next((i.attributes.get("kitti_split") for i in group
                          if i.attributes.get("kitti_split") in ("training", "testing")), options.split)
            calib = calibs.get(seq, group)
            ids = tracks.setdefault(seq, {})
            frame_ids: dict[str, int] = {}
            for it in group:
                for a in (*it.annotations, *it.predictions):
                    tref = a.track_reference_id
                    if tref is None or tref in frame_ids:
                        continue
                    if tref not in ids:
                        raw = a.attributes.get("track_id")
                        tail = tref.rsplit(":", 1)[-1]
                        wanted = raw if isinstance(raw, int) and raw >= 0 else (int(tail) if tail.isdigit() else None)
                        if wanted is None or wanted in ids.values():
                            wanted = max(ids.values(), default=-1) + 1
                        ids[tref] = wanted
                    frame_ids[tref] = ids[tref]
            if calib is not None and seq not in calib_written:
                calib_written.add(seq)
                (destination / split / "calib").mkdir(parents=True, exist_ok=True)
                (destination / split / "calib" / f"{seq}.txt").write_text(kitti_calib.format_calib(calib), encoding="utf-8")
            yield FrameJob(f"{seq}/{f:06d}", group, calib, destination / split, options.media,
                           mapping, TRACKING_STYLE, (seq, f), track_ids=frame_ids, media_root=media_root)

    try:
        for res in context.map(write_frame, jobs()):
            _record(context, res)
            seq = res.stem.split("/")[0]
            for kind, rows in (("label_02", res.gt_rows), ("results", res.pred_rows)):
                key = f"{kind}/{seq}"
                if key not in handles:
                    if kind == "results" and not rows:
                        continue
                    folder = res.split_dir / kind
                    folder.mkdir(parents=True, exist_ok=True)
                    handles[key] = open(folder / f"{seq}.txt", "w", encoding="utf-8", newline="\n")
                if rows:
                    handles[key].write("".join(r + "\n" for r in rows))
    finally:
        for h in handles.values():
            h.close()
    if not any(destination.iterdir()):
        (destination / options.split).mkdir()
