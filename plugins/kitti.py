"""``kitti`` (object benchmark) and ``kitti-tracking``: 2D boxes, 3D cuboids, calibration,
velodyne point clouds, tracks. Spec: the KITTI object and tracking devkits' ``readme.txt``
(label columns, calibration files), as summarised below.

Both formats live in this module (they share the row parser, the geometry in
``_kitti_calib.py``, ``core/camera.py`` and the writer); ``kitti-tracking`` is a second :class:`Format`.

Files read (object benchmark, ``kitti``)
    ``PATH`` is a KITTI root holding ``training/`` and/or ``testing/`` (option ``split``,
    default ``training`` when present), a split folder itself, or label ``.txt`` files
    without that layout: a folder of them (a results/submission folder), a folder holding
    ``labels/`` (labelformat: ``labels/`` + ``images/``), or one label file. Those are
    detected when their first row is a KITTI row; their images are found by stem anywhere
    under read option ``images``, else under an ``images/`` folder beside the labels. In a split folder:
    ``label_2/NNNNNN.txt`` (``label_02/`` accepted), ``results/NNNNNN.txt`` (16-column
    prediction files, optional), ``calib/NNNNNN.txt``, ``image_2/NNNNNN.png`` (any image
    extension; the size comes from the header, the image is never decoded),
    ``velodyne/NNNNNN.bin`` and ``ImageSets/*.txt`` (beside or inside the split folder).
    Frames are the sorted union of the label, image and velodyne stems.

Label rows
    ``type truncated occluded alpha left top right bottom h w l x y z rotation_y [score]``.
    A class name may contain spaces: the name is everything before the trailing 14 (ground
    truth) or 15 (prediction) numbers; a name whose last word is a number is therefore read
    as a prediction. 15-column rows are ground truth (``item.annotations``), 16-column rows
    predictions (``item.predictions``); one file must not mix them.

    Each row becomes a :class:`BoxAnnotation` (``x = left``, ``y = top``,
    ``width = right - left``, ``height = bottom - top``, no +1) with ``attributes``
    ``truncated``/``occluded``/``alpha`` as written (int when written without a decimal
    point, sentinels -1/-10 kept), ``dont_care: true`` on ``DontCare`` rows, and for
    predictions ``score`` = the raw score (any range). ``confidence`` = the score clipped
    to [0, 1]; the writer writes the raw score back while ``confidence`` still equals its
    clipped value, else ``confidence``. When the row's text is not what the writer would
    produce from the values (4 decimals, ``1.0``, ``0`` for a box corner, -1 instead of
    -1000 sentinels) the row's numbers are kept verbatim in ``attributes["kitti_text"]`` and
    the writer reuses each token whose value is unchanged, so rows round-trip byte for byte.

    Where the 3D fields are valid (not DontCare, dimensions not -1 -1 -1, no -1000 in the
    location, rotation_y not -10) the row also becomes a :class:`CuboidAnnotation` with the
    same ``group_id`` (``"<frame>-<row>"``) and the same label/confidence:

    * with calibration (``calib/NNNNNN.txt`` with P2, R0_rect, Tr_velo_to_cam): ``frame =
      "lidar"``, centre = exact inverse of the padded ``R0_rect · Tr_velo_to_cam`` applied to
      the geometric centre ``(x, y - h/2, z)``, dimensions (l, w, h), yaw = heading
      ``(cos ry, 0, -sin ry)`` rotated into LiDAR, projected on its ground plane;
    * without: ``frame = "camera"``, position = geometric centre in rectified camera 0,
      ``yaw = -rotation_y`` (as ``core/model.py`` documents). Read option ``frame=lidar``
      makes a missing calibration an error instead.

Items emitted per frame
    Without ``velodyne/NNNNNN.bin`` (or with ``velodyne=false``): one image item,
    ``reference_id = NNNNNN``, holding the boxes and the cuboids; no scene.
    With a velodyne file: a one-frame scene ``NNNNNN`` (``header.scenes``) with two items,
    first the pointcloud item ``NNNNNN-lidar`` (``scene = FrameRef("NNNNNN", 0, "lidar")``,
    the cuboids, points read lazily by ``core/pointclouds.py``), then the image item
    ``NNNNNN`` (``FrameRef("NNNNNN", 0, "image_2")``, the 2D boxes). Box and cuboid of one
    object share ``group_id``. Both items carry ``attributes["kitti_frame"]`` and, when
    present, ``attributes["kitti_calib"]`` = ``{key: [row-major values]}`` (P0..P3,
    R0_rect, Tr_velo_to_cam, Tr_imu_to_velo, unknown keys too); the image item gets
    ``metadata["camera_params"]`` (Nucleus form, camera 2 in the LiDAR frame, see
    ``core.camera.camera_params``) when calibration is present, and
    ``attributes["kitti_imagesets"]`` (list names) / ``attributes["kitti_split"]``.
    Categories: one pre-scan of the label files lists the class names (ids from 1 in order
    of first appearance).

Writing (both formats, ``DEST`` is a folder)
    ``DEST/<split>/label_2/<stem>.txt`` (ground truth, 15 columns), ``results/<stem>.txt``
    (predictions, 16 columns), ``calib/<stem>.txt``, ``image_2/<stem><ext>`` and
    ``velodyne/<stem>.bin`` (copied, ``media=none`` to skip; Nucleus ``.json`` clouds are
    converted to ``.bin``; a missing or remote image is reported, not copied),
    ``DEST/ImageSets/<name>.txt``. A label file is written for every frame except those
    that hold only predictions or were read without one (``kitti_label_file: false``).
    Items of one scene frame (same scene and index, consecutive in the stream) are joined
    into one KITTI frame: rows follow the image item's boxes in order, each joined with the
    cuboid of the same ``group_id``, else the same ``track_reference_id``, else (data with
    no shared ids, e.g. plain Nucleus) the same-label cuboid whose projected box overlaps
    it most (IoU >= 0.5); cuboids without a box are appended, their 2D box projected from
    the 8 corners (edges cut at z = 1 cm) with P2 and clipped to the image (not clipped
    when the image size is unknown; a cuboid not visible in image 2 is dropped and
    reported). The stem is
    ``attributes["kitti_frame"]``, else the image item's reference id, else the pointcloud
    item's ('/' becomes '_'). Calibration comes from ``attributes["kitti_calib"]``, else
    option ``calib`` (one file for all frames, or a folder of ``<stem>.txt``), else the
    image's ``metadata["camera_params"]`` (R0_rect = I, P2 = [K | 0], Tr_velo_to_cam = the
    inverse camera pose; Nucleus knows camera 2 only, so locations are then in camera 2's
    frame, ~6 cm from KITTI's rectified camera 0, while projections agree); a LiDAR-frame
    cuboid without any of them is a :class:`WriteError` naming the item. Unknown annotation
    attributes (COCO ``iscrowd`` 1, a polygon's ``area``...) are reported as dropped. Missing truncated/occluded
    are written -1, a missing alpha is computed (``ry - atan2(x, z)``) or -10, absent 3D
    fields are the sentinels ``-1 -1 -1 -1000 -1000 -1000 -10``.

Projection vs. hand-drawn boxes
    Projecting the 8 corners with P2 reproduces generated labels to their 2 decimals, but
    real KITTI 2D boxes are drawn by hand: on the real OpenPCDet sample labels (4 objects,
    truncated 0) the projection differs by up to 9.6 px (a pedestrian, whose body is not
    its cuboid), 2.1 px for vehicles. The reader never replaces a written box by a
    projection; only cuboids without a box get a projected one.

Tracking (``kitti-tracking``)
    ``training/label_02/SSSS.txt`` rows ``frame track_id type truncated occluded alpha
    bbox h w l x y z ry [score]`` (17/18 columns; ``truncated`` read as any number, both
    readme variants), ``image_02/SSSS/FFFFFF.png``, ``velodyne/SSSS/FFFFFF.bin``,
    ``calib/SSSS.txt`` (keys with or without colon, ``R_rect``/``Tr_velo_cam`` spellings).
    A sequence is a scene ``SSSS`` with frames ``0..last`` (frames without rows included);
    items ``SSSS-FFFFFF`` (sensor ``image_02``) and ``SSSS-FFFFFF-lidar``; the track id
    becomes ``track_reference_id = "SSSS:<id>"`` (raw id in ``attributes["track_id"]``,
    DontCare -1 gives no track). DontCare 3D columns are never interpreted (real files
    hold them shifted). ``results/SSSS.txt`` (18 columns) are read as predictions. Frames
    missing a velodyne file keep their cuboids on the image item. Writing: a scene is a
    sequence (``label_02/<scene>.txt``, its first frame's calibration in
    ``calib/<scene>.txt`` with the object-benchmark key spellings), frames numbered by
    ``FrameRef.index``; items outside scenes become frames 0, 1, ... of sequence ``0000``.
    Track ids: ``attributes["track_id"]``, else the number after the last ':' of
    ``track_reference_id``, else the next free id of the sequence. Rows are written per
    frame in stream order (the reader groups them by frame, so a file whose rows are not
    sorted by frame comes back sorted). Default number formatting is 6 decimals as in
    the released files.

What is lost
    Item metadata other than ``camera_params`` (reported), annotation metadata, annotation
    kinds other than box/cuboid (reported by the engine), scene metadata and the grouping
    of frames into scenes for ``kitti`` (reported), extra camera images of a frame
    (reported), labels written as given (no escaping: a label with a newline is an error).

Options
    ``label-map=FILE`` (read and write): JSON object ``{"source": "target"}`` or text
    lines ``source<TAB>target`` (or ``source target`` when neither contains spaces);
    unlisted names pass through; a JSON ``null`` target drops the class (reported). The CLI
    gives the option to both sides of a KITTI -> KITTI conversion, so the map is applied on
    reading and again on writing: use targets that are not themselves sources.
    Read: ``split``, ``frame=auto|lidar|camera``, ``velodyne=true|false``. Write: ``split``,
    ``calib=FILE|FOLDER``, ``media=copy|none``.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from annobridge.core import camera
from annobridge.core.errors import FormatError, ReadError, WriteError
from annobridge.core.formats import Capabilities, Context, Format
from annobridge.core.hookspecs import hookimpl
from annobridge.core.limits import MAX_INT_DIGITS, open_image
from annobridge.core.model import (
    BoxAnnotation,
    Category,
    CuboidAnnotation,
    Dataset,
    DatasetHeader,
    DatasetItem,
    FrameRef,
    Point3D,
    Scene,
)
from annobridge.core.paths import contained, media_file, safe_name, source_root
from annobridge.core.pointclouds import load_points
from annobridge.plugins import _kitti_calib as kitti_calib

logger = logging.getLogger(__name__)

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")
FIELDS = ("truncated", "occluded", "alpha", "left", "top", "right", "bottom",
          "height", "width", "length", "x", "y", "z", "rotation_y", "score")
SENTINEL_3D = (-1, -1, -1, -1000, -1000, -1000, -10)
TRACKING_DONTCARE_3D = (-1000, -1000, -1000, -10, -1, -1, -1)
LIDAR_SENSOR = "lidar"
KITTI_ATTRIBUTES = frozenset({"truncated", "occluded", "alpha", "dont_care", "score", "kitti_text", "track_id"})


# --------------------------------------------------------------------------- options


class KittiReadOptions(BaseModel):
    """Options of the KITTI readers.

    Args:
        split: ``training`` or ``testing`` when PATH holds both (default: training).
        frame: ``auto`` (LiDAR frame when the frame's calibration is present, else camera),
            ``lidar`` (missing calibration is an error) or ``camera`` (never transform).
        velodyne: emit pointcloud items for ``velodyne/*.bin`` (default true).
        label_map: a class-name mapping file (see the module docstring).
        images: for a folder of label files (or one file) without the KITTI layout, the
            folder holding the images, found by stem (default: ``images/`` beside it).
    """

    model_config = ConfigDict(extra="forbid")
    split: Literal["training", "testing"] | None = None
    frame: Literal["auto", "lidar", "camera"] = "auto"
    velodyne: bool = True
    label_map: Path | None = None
    images: Path | None = None


class KittiWriteOptions(BaseModel):
    """Options of the KITTI writers.

    Args:
        split: folder to write into when the items do not say (``kitti_split``).
        calib: a calibration file for every frame, or a folder of ``<stem>.txt``.
        media: ``copy`` images and point clouds into the layout, or ``none``.
        label_map: a class-name mapping file (see the module docstring).
    """

    model_config = ConfigDict(extra="forbid")
    split: Literal["training", "testing"] = "training"
    calib: Path | None = None
    media: Literal["copy", "none"] = "copy"
    label_map: Path | None = None


def load_label_map(path: Path | None) -> dict[str, str | None]:
    """Read a ``label-map`` file: JSON object or two-column text."""
    if path is None:
        return {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(f"cannot read label map: {getattr(exc, 'strerror', None) or exc}", file=path) from exc
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise FormatError(f"label map is not valid JSON: {exc}", file=path) from exc
        bad = [k for k, v in data.items() if v is not None and not isinstance(v, str)]
        if bad:
            raise FormatError(f"label map target of {bad[0]!r} is not a string or null", file=path)
        return data
    mapping: dict[str, str | None] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise FormatError(f"expected two columns 'source<TAB>target', found {len(parts)}",
                              file=path, where=f"line {lineno}")
        mapping[parts[0].strip()] = parts[1].strip()
    return mapping


# --------------------------------------------------------------------------- row parsing


@dataclass
class Row:
    """One parsed label row: class name, the numeric tokens as written and their values."""

    name: str
    tokens: list[str]
    values: list[float]
    prefix: list[str] = field(default_factory=list)  # tracking: frame, track id

    @property
    def is_prediction(self) -> bool:
        return len(self.values) == 15


def _num(tok: str) -> int | float:
    """A token as written: int without a decimal point or exponent, else float."""
    if "." in tok or "e" in tok or "E" in tok:
        return float(tok)
    return int(tok)


def parse_row(line: str, path: Path, lineno: int, *, prefix: int = 0) -> Row:
    """Split a label line into name and numbers; ``prefix`` leading integer columns
    (tracking: frame and track id).

    Raises:
        ReadError: wrong column count or a non-numeric field, naming file and line.
    """
    tokens = line.split()
    where = f"line {lineno}"
    head = tokens[:prefix]
    for i, tok in enumerate(head):
        if not re.fullmatch(r"-?\d+", tok) or len(tok) > MAX_INT_DIGITS:
            what = ("frame", "track id")[i]
            raise ReadError(f"column {i + 1} ({what}) is not an integer: {tok!r}", file=path, where=where,
                            fix="tracking rows start with 'frame track_id type ...'")
    rest = tokens[prefix:]
    n = len(rest)
    expected = f"{15 + prefix} columns (ground truth) or {16 + prefix} (with score)"
    if n < 15:
        raise ReadError(f"row has {len(tokens)} columns, expected {expected}", file=path, where=where)
    if kitti_calib.is_number(rest[0]):
        raise ReadError(f"column {prefix + 1} (type) is the number {rest[0]!r}, expected a class name; "
                        f"row has {len(tokens)} columns, expected {expected}", file=path, where=where)
    for k in (15, 14):
        if n - k >= 1 and not kitti_calib.is_number(rest[n - k - 1]):
            nums = rest[n - k:]
            if kitti_calib.all_numbers(nums):
                values = [float(t) for t in nums]
                for col, (tok, v) in enumerate(zip(nums, values), start=prefix + n - k + 1):
                    if not math.isfinite(v) or len(tok) > MAX_INT_DIGITS:
                        raise ReadError(f"column {col} is {tok[:40]!r}, out of range", file=path, where=where,
                                        fix="every number in a KITTI row must be finite and at most "
                                            f"{MAX_INT_DIGITS} characters long")
                return Row(" ".join(rest[: n - k]) if n - k > 1 else rest[0], nums, values, head)
    if n in (15, 16):
        for col, tok in enumerate(rest[1:], start=1):
            if not kitti_calib.is_number(tok):
                raise ReadError(f"column {prefix + col + 1} ({FIELDS[col - 1]}) is not a number: {tok!r}",
                                file=path, where=where, fix="every column after the type is a number")
    raise ReadError(f"row has {len(tokens)} columns, expected {expected} "
                    "(a class name, possibly with spaces, then only numbers)", file=path, where=where)


# --------------------------------------------------------------------------- row rendering


@dataclass(frozen=True)
class Style:
    """Number formatting of a label flavour."""

    decimals: int
    ints_for_sentinels: bool  # object: "-1", "-1000"; tracking: "-1000.000000"
    dontcare_3d: tuple[int, ...]


OBJECT_STYLE = Style(2, True, SENTINEL_3D)
TRACKING_STYLE = Style(6, False, TRACKING_DONTCARE_3D)


def _fixed(v: float, decimals: int) -> str:
    """Fixed-point text; a value that rounds to zero is written without a minus sign (the
    sign of a recomputed zero is noise)."""
    text = f"{v:.{decimals}f}"
    if text.startswith("-") and not text.strip("-0."):
        return text[1:]
    return text


def _fmt(v: float, style: Style, sentinel: bool = False) -> str:
    if sentinel and style.ints_for_sentinels:
        return str(int(v))
    return _fixed(v, style.decimals)


def _attr_fmt(v: Any, style: Style) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        v = float(v)
    if isinstance(v, int):
        return str(v)
    return f"{v:.{style.decimals}f}"


def _same(v: float, tok: str) -> bool:
    return abs(v - float(tok)) <= 1e-6 * max(1.0, abs(v))


def _decimals(tok: str) -> int:
    if "e" in tok or "E" in tok:
        return 6
    return len(tok.split(".", 1)[1]) if "." in tok else 0


def render_numbers(*, truncated: Any, occluded: Any, alpha: Any,
                   bbox: tuple[float, float, float, float],
                   geom: tuple[float, ...] | None, dont_care: bool, score: Any,
                   text: list[str] | None, style: Style) -> list[str]:
    """The numeric columns of a row. ``geom`` = (h, w, l, x, y, z, ry) or None (sentinels,
    or the original text's tokens when there is one). ``text`` = the row's numbers as
    written: a token is reused when its value equals the new one."""
    out: list[str] = []
    for i, v in enumerate((truncated, occluded, alpha)):
        tok = text[i] if text else None
        if tok is not None and isinstance(v, (int, float)) and _same(float(v), tok):
            out.append(tok)
        else:
            out.append(_attr_fmt(v, style))
    for i, v in enumerate(bbox, start=3):
        out.append(_tok(v, text, i, style))
    if geom is None:
        if text:
            out.extend(text[7:14])
        else:
            out.extend(_sentinel_tokens(style, dont_care))
    else:
        out.extend(_tok(v, text, i, style) for i, v in enumerate(geom, start=7))
    if score is not None:
        if text and len(text) > 14 and isinstance(score, (int, float)) and _same(float(score), text[14]):
            out.append(text[14])
        else:
            out.append(_attr_fmt(score, style) if isinstance(score, int) else f"{float(score):.{max(style.decimals, 4)}f}")
    return out


@functools.cache
def _sentinel_tokens(style: Style, dont_care: bool) -> tuple[str, ...]:
    """The 3D columns of a row without 3D geometry, formatted once per style (every box row
    of a 2D dataset has them)."""
    sentinels = style.dontcare_3d if dont_care else SENTINEL_3D
    return tuple(_fmt(s, style, sentinel=True) for s in sentinels)


def _tok(v: float, text: list[str] | None, i: int, style: Style) -> str:
    if text:
        tok = text[i]
        if _same(v, tok):
            return tok
        d = _decimals(tok)
        return _fixed(v, max(d, style.decimals))
    return _fmt(v, style)


def _valid_3d(values: list[float]) -> bool:
    h, w, l, x, y, z, ry = values[7:14]
    if (h, w, l) == (-1.0, -1.0, -1.0):
        return False
    if -1000.0 in (x, y, z) or ry == -10.0:
        return False
    return True


# --------------------------------------------------------------------------- reading


@dataclass
class FrameFiles:
    stem: str
    label: Path | None = None
    results: Path | None = None
    image: Path | None = None
    velodyne: Path | None = None
    calib: Path | None = None


@dataclass
class Layout:
    split_dir: Path
    split: str | None
    root: Path
    label_dir: Path | None
    results_dir: Path | None
    image_dir: Path | None
    velodyne_dir: Path | None
    calib_dir: Path | None
    only: str | None = None  # a single label file was given: its stem


def _first_dir(base: Path, names: tuple[str, ...]) -> Path | None:
    for n in names:
        if (base / n).is_dir():
            return base / n
    return None


_SPLIT_DIRS = ("label_2", "label_02", "image_2", "image_02", "velodyne", "calib", "results")


def _loose(labels: Path, images: Path | None, only: str | None = None) -> Layout:
    """A folder of label files without the KITTI layout (a results/submission folder,
    labelformat's ``labels/``): images by stem in ``images``, else an ``images/`` beside it."""
    if images is None and labels.name != "images":
        images = _first_dir(labels.parent, ("images",))
    return Layout(labels, None, labels, labels, None, images, None, None, only)


def resolve_layout(path: Path, split: str | None, images: Path | None = None) -> Layout:
    """Find the split folder and its subfolders under ``path``."""
    if path.is_file() and path.suffix.lower() == ".txt":
        return _loose(path.parent, images, path.stem)
    if not path.is_dir():
        raise ReadError("a KITTI dataset is a folder or a label file", file=path,
                        fix="pass the KITTI root, its training/ folder, a folder of label files or one")
    if any((path / d).is_dir() for d in _SPLIT_DIRS):
        split_dir = path
    elif split is not None:
        split_dir = path / split
        if not split_dir.is_dir():
            raise ReadError(f"no {split}/ folder", file=path)
    elif (path / "training").is_dir():
        split_dir = path / "training"
    elif (path / "testing").is_dir():
        split_dir = path / "testing"
    elif any(p.suffix == ".txt" for p in path.iterdir()):
        return _loose(path, images)
    elif (path / "labels").is_dir():  # labelformat: labels/ + images/
        return _loose(path / "labels", images or _first_dir(path, ("images",)))
    else:
        raise ReadError("no KITTI folders found (label_2/, image_2/, velodyne/, calib/, training/)",
                        file=path, fix="pass the KITTI root or its training/ folder")
    name = split_dir.name if split_dir.name in ("training", "testing") else None
    root = split_dir.parent if name else split_dir
    return Layout(split_dir, name, root, _first_dir(split_dir, ("label_2", "label_02")),
                  _first_dir(split_dir, ("results",)), _first_dir(split_dir, ("image_2", "image_02")),
                  _first_dir(split_dir, ("velodyne",)), _first_dir(split_dir, ("calib",)))


def _names(folder: Path | None, exts: tuple[str, ...]) -> dict[str, str]:
    """stem -> file path (a plain string: listings of thousands of files stay small)."""
    if folder is None:
        return {}
    out: dict[str, str] = {}
    with os.scandir(folder) as it:
        for e in it:
            stem, ext = os.path.splitext(e.name)
            if ext.lower() in exts and stem not in out and e.is_file():
                if e.is_symlink():  # a link out of the folder is refused (core.paths.contained)
                    contained(folder, e.name, what="file", file=e.path)
                out[stem] = e.path
    return out


def _images_by_stem(folder: Path, stems: set[str]) -> dict[str, str]:
    """Images of the given label stems anywhere under ``folder`` (labelformat keeps them in
    subfolders); the first by sorted path wins."""
    out: dict[str, str] = {}
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            stem, ext = os.path.splitext(name)
            if ext.lower() in IMAGE_EXTS and stem in stems and stem not in out:
                out[stem] = os.path.join(root, name)
    return out


def _stems(folder: Path | None, exts: tuple[str, ...]) -> dict[str, Path]:
    return {k: Path(v) for k, v in _names(folder, exts).items()}


def _image_size(path: Path | None) -> tuple[int | None, int | None]:
    if path is None:
        return None, None
    with open_image(path) as im:  # header only; a broken or oversized file is a ReadError
        w, h = im.size
    return int(w), int(h)


def _imagesets(layout: Layout) -> dict[str, list[str]]:
    """stem -> list names, from ImageSets/ beside or inside the split folder."""
    out: dict[str, list[str]] = {}
    for base in (layout.root, layout.split_dir):
        folder = base / "ImageSets"
        if folder.is_dir():
            for f in sorted(folder.glob("*.txt")):
                for line in f.read_text(encoding="utf-8", errors="replace").split():
                    out.setdefault(line.strip(), []).append(f.stem)
            break
    return out


def _scan_names(paths: list[Path], prefix: int, mapping: dict[str, str | None]) -> list[Category]:
    seen: dict[str, None] = {}
    for p in paths:
        with open(p, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                toks = line.split()[prefix:]
                if len(toks) < 15:
                    continue
                k = len(toks) - 14
                if k >= 2 and all(kitti_calib.is_number(t) for t in toks[-15:]) and not kitti_calib.is_number(toks[-16]):
                    k -= 1
                name = " ".join(toks[:k])
                if name in mapping:
                    if mapping[name] is None:
                        continue
                    name = mapping[name]
                seen.setdefault(name, None)
    return [Category.model_construct(id=i, name=n, supercategory=None, keypoints=None, skeleton=None,
                                     attributes={}) for i, n in enumerate(seen, start=1)]


@dataclass
class _ReadState:
    options: KittiReadOptions
    mapping: dict[str, str | None]
    context: Context
    style: Style


def _calib_or_none(path: Path | None, context: Context) -> camera.Calib | None:
    if path is None:
        return None
    try:
        return kitti_calib.read_calib_cached(path)
    except ReadError as err:
        context.error(err)
        return None


def _transform(calib: camera.Calib | None) -> camera.Transform | None:
    if calib is None or kitti_calib.missing_3d_keys(calib):
        return None
    return camera.transform_of(calib)


def _frame_transform(calib: camera.Calib | None, calib_path: Path | None, label_path: Path,
                     frame_opt: str, has_3d: bool) -> camera.Transform | None:
    if frame_opt == "camera":
        return None
    t = _transform(calib)
    if t is None and frame_opt == "lidar" and has_3d:
        if calib is None:
            raise ReadError("no calibration for this label file, and frame=lidar asks for LiDAR-frame cuboids",
                            file=label_path, fix=f"add {calib_path} or read with --option frame=camera")
        raise ReadError(f"calibration lacks {', '.join(kitti_calib.missing_3d_keys(calib))}", file=calib_path,
                        fix="P2, R0_rect and Tr_velo_to_cam are needed for LiDAR-frame cuboids")
    return t


def _row_annotations(row: Row, path: Path, lineno: int, ref: str, gid: str, t: camera.Transform | None,
                     state: _ReadState) -> tuple[BoxAnnotation, CuboidAnnotation | None] | None:
    """The box (and cuboid) of one row; None when the label map drops the class."""
    name = row.name
    if name in state.mapping:
        mapped = state.mapping[name]
        if mapped is None:  # read, then dropped: counted as both, per kind, so written = read - dropped
            report = state.context.report
            prefix = "prediction:" if row.is_prediction else ""
            kinds = ["box"] + (["cuboid"] if name.lower() != "dontcare" and _valid_3d(row.values) else [])
            for kind in kinds:
                report.read[prefix + kind] = report.read.get(prefix + kind, 0) + 1
                report.drop(prefix + kind, f"label map drops class {name!r}")
            return None
        name = mapped
    v = row.values
    tok = row.tokens
    dont_care = row.name.lower() == "dontcare"
    left, top, right, bottom = v[3:7]
    if right < left or bottom < top:
        raise ReadError(f"box has right < left or bottom < top: left {tok[3]}, top {tok[4]}, "
                        f"right {tok[5]}, bottom {tok[6]}", file=path, where=f"line {lineno}",
                        fix="columns 5-8 are left, top, right, bottom in pixels")
    h, w, l = v[7:10]
    if not dont_care and (h, w, l) != (-1.0, -1.0, -1.0) and min(h, w, l) < 0 and v[11] != -1000.0:
        raise ReadError(f"negative dimension: height {tok[7]}, width {tok[8]}, length {tok[9]}",
                        file=path, where=f"line {lineno}",
                        fix="dimensions are >= 0 metres, all -1 when unknown (or y = -1000 for BEV-only rows)")
    has_3d = not dont_care and _valid_3d(v)
    attrs: dict[str, Any] = {"truncated": _num(tok[0]), "occluded": _num(tok[1]), "alpha": _num(tok[2])}
    if dont_care:
        attrs["dont_care"] = True
    confidence = None
    if row.is_prediction:
        score = _num(tok[14])
        attrs["score"] = score
        confidence = min(max(float(score), 0.0), 1.0)
    geom = tuple(v[7:14]) if has_3d else None
    style = state.style
    expect = render_numbers(truncated=attrs["truncated"], occluded=attrs["occluded"], alpha=attrs["alpha"],
                            bbox=(left, top, right, bottom), geom=geom, dont_care=dont_care,
                            score=attrs.get("score"), text=None, style=style)
    if expect != tok:
        attrs["kitti_text"] = " ".join(tok)
    ints = all("." not in x and "e" not in x.lower() for x in tok[3:7])
    bx: float = int(tok[3]) if ints else left
    by: float = int(tok[4]) if ints else top
    # rounded at 1e-9 px: the difference of two decimal numbers carries float noise
    # (810.73 - 712.40 = 98.33000000000004) that would otherwise reach other formats
    bw: float = int(tok[5]) - int(tok[3]) if ints else round(right - left, 9)
    bh: float = int(tok[6]) - int(tok[4]) if ints else round(bottom - top, 9)
    box = BoxAnnotation.model_construct(
        type="box", label=name, x=bx, y=by, width=bw, height=bh, reference_id=ref,
        annotation_id=f"{gid}-box", group_id=gid, track_reference_id=None, metadata={},
        attributes=attrs, confidence=confidence, class_pdf=None, embedding_vector=None)
    cuboid = None
    if has_3d:
        x, y, z, ry = v[10:14]
        if t is not None:
            (cx, cy, cz), yaw = camera.camera_to_lidar(t, (x, y, z), h, ry)
            frame = "lidar"
        else:
            cx, cy, cz, yaw, frame = x, y - h / 2.0, z, 0.0 - ry, "camera"  # 0.0 - ry: no -0.0
        cuboid = CuboidAnnotation.model_construct(
            type="cuboid", label=name, reference_id=ref, annotation_id=f"{gid}-cuboid", group_id=gid,
            track_reference_id=None, metadata={}, attributes={},
            confidence=confidence, class_pdf=None,
            position=Point3D.model_construct(x=cx, y=cy, z=cz),
            dimensions=Point3D.model_construct(x=l, y=w, z=h), yaw=yaw, frame=frame)
    return box, cuboid


def _read_rows(path: Path, prefix: int, context: Context) -> list[tuple[int, Row]]:
    rows: list[tuple[int, Row]] = []
    kind: tuple[int, bool] | None = None
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = parse_row(line, path, lineno, prefix=prefix)
                if kind is None:
                    kind = (lineno, row.is_prediction)
                elif kind[1] != row.is_prediction:
                    have = "with a score (prediction)" if row.is_prediction else "without a score (ground truth)"
                    first = "with" if kind[1] else "without"
                    raise ReadError(f"row is {have} but line {kind[0]} is {first} a score; a file holds "
                                    "ground truth or predictions, not both", file=path, where=f"line {lineno}",
                                    fix="put predictions (16 columns) in their own files")
            except ReadError as err:
                context.error(err)
                continue
            rows.append((lineno, row))
    return rows


def read(path: Path, options: KittiReadOptions, context: Context) -> Dataset:
    """Read a KITTI object-benchmark folder; items are built lazily, frame by frame."""
    mapping = load_label_map(options.label_map)
    layout = resolve_layout(path, options.split, options.images)
    labels = _names(layout.label_dir, (".txt",))
    if layout.only is not None:
        labels = {layout.only: labels[layout.only]}
    results = _names(layout.results_dir, (".txt",))
    loose = layout.image_dir is not None and layout.label_dir == layout.split_dir
    images = _images_by_stem(layout.image_dir, set(labels)) if loose else _names(layout.image_dir, IMAGE_EXTS)
    velodyne = _names(layout.velodyne_dir, (".bin",)) if options.velodyne else {}
    calibs = _names(layout.calib_dir, (".txt",))
    stems = sorted(set(labels) | set(results) | set(images) | set(velodyne))
    if layout.only is not None:
        stems = [layout.only]
    header = DatasetHeader(categories=_scan_names([Path(labels[s]) for s in sorted(labels)]
                                                  + [Path(results[s]) for s in sorted(results)], 0, mapping),
                           info={"kitti": {"split": layout.split}})
    sets = _imagesets(layout)
    state = _ReadState(options, mapping, context, OBJECT_STYLE)
    def opt(d: dict[str, str], s: str) -> Path | None:
        v = d.get(s)
        return None if v is None else Path(v)

    frames = (FrameFiles(s, opt(labels, s), opt(results, s), opt(images, s), opt(velodyne, s), opt(calibs, s))
              for s in stems)
    expected_calib_dir = layout.calib_dir or layout.split_dir / "calib"
    return Dataset(header=header, items=_object_items(frames, layout, sets, header, state, expected_calib_dir))


def _object_items(frames: Iterator[FrameFiles], layout: Layout, sets: dict[str, list[str]],
                  header: DatasetHeader, state: _ReadState, calib_dir: Path) -> Iterator[DatasetItem]:
    for ff in frames:
        yield from _frame_items(ff, layout, sets, header, state, calib_dir)


def _frame_items(ff: FrameFiles, layout: Layout, sets: dict[str, list[str]], header: DatasetHeader,
                 state: _ReadState, calib_dir: Path) -> Iterator[DatasetItem]:
    stem = ff.stem
    calib = _calib_or_none(ff.calib, state.context)
    gt_boxes: list[Any] = []
    gt_cuboids: list[Any] = []
    pr_boxes: list[Any] = []
    pr_cuboids: list[Any] = []
    label_is_gt = True
    t: camera.Transform | None = None
    t_checked = False
    sources = [(p, i) for i, p in enumerate((ff.label, ff.results)) if p is not None]
    row_no = 0
    for src, which in sources:
        rows = _read_rows(src, 0, state.context)
        if which == 0 and rows and rows[0][1].is_prediction:
            label_is_gt = False
        for lineno, row in rows:
            if not t_checked and row.name.lower() != "dontcare" and _valid_3d(row.values):
                t_checked = True
                try:
                    t = _frame_transform(calib, ff.calib or calib_dir / f"{stem}.txt", src,
                                         state.options.frame, True)
                except ReadError as err:
                    state.context.error(err)
            gid = f"{stem}-{row_no}"
            row_no += 1
            try:
                made = _row_annotations(row, src, lineno, stem, gid, t, state)
            except ReadError as err:
                state.context.error(err)
                continue
            if made is None:
                continue
            box, cub = made
            if row.is_prediction:
                pr_boxes.append(box)
                if cub is not None:
                    pr_cuboids.append(cub)
            else:
                gt_boxes.append(box)
                if cub is not None:
                    gt_cuboids.append(cub)
    attrs: dict[str, Any] = {"kitti_frame": stem}
    if layout.split:
        attrs["kitti_split"] = layout.split
    if calib is not None:
        attrs["kitti_calib"] = calib
    if stem in sets:
        attrs["kitti_imagesets"] = sets[stem]
    if ff.label is None or not label_is_gt:
        attrs["kitti_label_file"] = False
    width, height = _image_size(ff.image)
    metadata: dict[str, Any] = {}
    if t is None and state.options.frame != "camera":
        t = _transform(calib)
    if t is not None:
        metadata["camera_params"] = camera.camera_params_of(t)
    img_loc = str(ff.image) if ff.image is not None else None
    if ff.velodyne is not None and not _velodyne_ok(ff.velodyne, state.context):
        ff.velodyne = None
    if ff.velodyne is None:
        yield DatasetItem.model_construct(
            reference_id=stem, image_location=img_loc, pointcloud_location=None, width=width, height=height,
            metadata=metadata, attributes=attrs, annotations=gt_boxes + gt_cuboids,
            predictions=pr_boxes + pr_cuboids, scene=None)
        return
    header.scenes[stem] = Scene.model_construct(reference_id=stem, metadata={}, annotations=[], attributes={})
    pc_ref = f"{stem}-{LIDAR_SENSOR}"
    for a in (*gt_cuboids, *pr_cuboids):
        a.reference_id = pc_ref
    pc_attrs = {k: v for k, v in attrs.items() if k != "kitti_imagesets"}
    yield DatasetItem.model_construct(
        reference_id=pc_ref, image_location=None, pointcloud_location=str(ff.velodyne), width=None,
        height=None, metadata={}, attributes=pc_attrs, annotations=gt_cuboids, predictions=pr_cuboids,
        scene=FrameRef.model_construct(scene_reference_id=stem, index=0, sensor=LIDAR_SENSOR))
    yield DatasetItem.model_construct(
        reference_id=stem, image_location=img_loc, pointcloud_location=None, width=width, height=height,
        metadata=metadata, attributes=attrs, annotations=gt_boxes, predictions=pr_boxes,
        scene=FrameRef.model_construct(scene_reference_id=stem, index=0, sensor="image_2"))


def _velodyne_ok(path: Path, context: Context) -> bool:
    size = path.stat().st_size
    if size % 16:
        context.error(ReadError(f"velodyne file has {size} bytes, not a multiple of 16 (4 float32 a point)",
                                file=path, fix="the file is truncated or not a KITTI velodyne scan"))
        return False
    return True


def detect(path: Path) -> bool:
    """A folder with ``label_2``/``image_2``+``calib``/``velodyne`` (or such a ``training/``),
    or label files without that layout whose first row is a KITTI row: a ``.txt`` file, a
    folder of them, or a folder holding ``labels/`` (labelformat)."""
    if path.is_file():
        return path.suffix.lower() == ".txt" and _kitti_rows(path)
    if not path.is_dir():
        return False
    if not any((path / d).is_dir() for d in (*_SPLIT_DIRS, "training", "testing", "label_02")):
        folder = path / "labels" if (path / "labels").is_dir() else path
        first = next((e for e in sorted(os.scandir(folder), key=lambda e: e.name)
                      if e.name.endswith(".txt") and e.is_file()), None)
        return first is not None and _kitti_rows(Path(first.path))
    for base in (path, path / "training", path / "testing"):
        if _looks_tracking(base):
            continue
        if (base / "label_2").is_dir() or ((base / "calib").is_dir() and (
                (base / "image_2").is_dir() or (base / "velodyne").is_dir())):
            return True
        lab = base / "label_02"
        if lab.is_dir() and not _looks_tracking(base):
            return True
    return False


def _kitti_rows(path: Path) -> bool:
    """The file's first non-empty line is an object row: a class name, then 14 numbers
    (15 with a score)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            line = next((t for t in fh if t.strip()), "")
    except OSError:
        return False
    toks = line.split()
    if len(toks) < 15 or kitti_calib.is_number(toks[0]):
        return False
    tail = 15 if len(toks) >= 16 and all(kitti_calib.is_number(t) for t in toks[-15:]) else 14
    return all(kitti_calib.is_number(t) for t in toks[-tail:])


def _looks_tracking(base: Path) -> bool:
    lab = base / "label_02"
    if lab.is_dir():
        for e in os.scandir(lab):
            return bool(re.fullmatch(r"\d{4}\.txt", e.name))
    img = base / "image_02"
    if img.is_dir():
        for e in os.scandir(img):
            return e.is_dir()
    return False


# --------------------------------------------------------------------------- tracking reading


def read_tracking(path: Path, options: KittiReadOptions, context: Context) -> Dataset:
    """Read a KITTI tracking folder: one scene per sequence, frames in order."""
    mapping = load_label_map(options.label_map)
    if any((path / d).is_dir() for d in ("label_02", "image_02", "velodyne", "calib")):
        split_dir = path
    else:
        split_dir = path / (options.split or ("training" if (path / "training").is_dir() else "testing"))
    if not split_dir.is_dir():
        raise ReadError("no KITTI tracking folders found (label_02/, image_02/)", file=path)
    label_dir = _first_dir(split_dir, ("label_02", "label_2"))
    image_dir = _first_dir(split_dir, ("image_02", "image_2"))
    velo_dir = _first_dir(split_dir, ("velodyne",)) if options.velodyne else None
    calib_dir = _first_dir(split_dir, ("calib",))
    labels = _stems(label_dir, (".txt",))
    results = _stems(_first_dir(split_dir, ("results",)), (".txt",))
    seqs = set(labels) | set(results)
    for d in (image_dir, velo_dir):
        if d is not None:
            seqs.update(e.name for e in os.scandir(d) if e.is_dir())
    split = split_dir.name if split_dir.name in ("training", "testing") else None
    header = DatasetHeader(categories=_scan_names([labels[s] for s in sorted(labels)]
                                                  + [results[s] for s in sorted(results)], 2, mapping),
                           info={"kitti": {"split": split}})
    state = _ReadState(options, mapping, context, TRACKING_STYLE)
    return Dataset(header=header, items=_tracking_items(sorted(seqs), labels, results, image_dir, velo_dir,
                                                        calib_dir, split, header, state))


def _tracking_items(seqs: list[str], labels: dict[str, Path], results: dict[str, Path], image_dir: Path | None,
                    velo_dir: Path | None,
                    calib_dir: Path | None, split: str | None, header: DatasetHeader,
                    state: _ReadState) -> Iterator[DatasetItem]:
    for seq in seqs:
        calib_path = calib_dir / f"{seq}.txt" if calib_dir is not None else None
        calib = _calib_or_none(calib_path if calib_path is not None and calib_path.is_file() else None,
                               state.context)
        label_path = labels.get(seq) or results.get(seq)
        by_frame: dict[int, list[tuple[int, Row, Path]]] = {}
        for src in (labels.get(seq), results.get(seq)):
            if src is not None:
                for lineno, row in _read_rows(src, 2, state.context):
                    by_frame.setdefault(int(row.prefix[0]), []).append((lineno, row, src))
        images = _stems(image_dir / seq if image_dir and (image_dir / seq).is_dir() else None, IMAGE_EXTS)
        clouds = _stems(velo_dir / seq if velo_dir and (velo_dir / seq).is_dir() else None, (".bin",))
        frames = [int(s) for s in (*images, *clouds) if s.isdigit()] + list(by_frame)
        if any(f < 0 for f in by_frame):
            bad = min(by_frame)
            state.context.error(ReadError(f"frame {bad} is negative", file=label_path,
                                          where=f"line {by_frame[bad][0][0]}"))
            frames = [f for f in frames if f >= 0]
        last = max(frames, default=-1)
        header.scenes[seq] = Scene.model_construct(reference_id=seq, metadata={}, annotations=[],
                                                   attributes={"kitti_sequence": seq})
        t: camera.Transform | None = None
        if any(r.name.lower() != "dontcare" and _valid_3d(r.values) for rows in by_frame.values() for _, r, _ in rows):
            try:
                t = _frame_transform(calib, calib_path or Path(f"calib/{seq}.txt"), label_path or Path(seq),
                                     state.options.frame, True)
            except ReadError as err:
                state.context.error(err)
        elif state.options.frame != "camera":
            t = _transform(calib)
        cam = camera.camera_params_of(t) if t is not None else None
        for f in range(last + 1):
            name = f"{f:06d}"
            ref = f"{seq}-{name}"
            gt, gc, pb, pc = [], [], [], []
            for k, (lineno, row, src) in enumerate(by_frame.get(f, [])):
                gid = f"{ref}-{k}"
                try:
                    made = _row_annotations(row, src, lineno, ref, gid, t, state)
                except ReadError as err:
                    state.context.error(err)
                    continue
                if made is None:
                    continue
                box, cub = made
                tid = int(row.prefix[1])
                box.attributes["track_id"] = tid
                if tid >= 0:
                    box.track_reference_id = f"{seq}:{tid}"
                    if cub is not None:
                        cub.track_reference_id = box.track_reference_id
                (pb if row.is_prediction else gt).append(box)
                if cub is not None:
                    (pc if row.is_prediction else gc).append(cub)
            attrs: dict[str, Any] = {"kitti_frame": name, "kitti_sequence": seq}
            if split:
                attrs["kitti_split"] = split
            if calib is not None:
                attrs["kitti_calib"] = calib
            img = images.get(name)
            width, height = _image_size(img)
            cloud = clouds.get(name)
            if cloud is not None and not _velodyne_ok(cloud, state.context):
                cloud = None
            if cloud is not None:
                pc_ref = f"{ref}-{LIDAR_SENSOR}"
                for a in (*gc, *pc):
                    a.reference_id = pc_ref
                yield DatasetItem.model_construct(
                    reference_id=pc_ref, image_location=None, pointcloud_location=str(cloud), width=None,
                    height=None, metadata={}, attributes=dict(attrs), annotations=gc, predictions=pc,
                    scene=FrameRef.model_construct(scene_reference_id=seq, index=f, sensor=LIDAR_SENSOR))
                img_anns, img_preds = gt, pb
            else:
                img_anns, img_preds = gt + gc, pb + pc
            yield DatasetItem.model_construct(
                reference_id=ref, image_location=str(img) if img else None, pointcloud_location=None,
                width=width, height=height, metadata={"camera_params": cam} if cam else {},
                attributes=attrs, annotations=img_anns, predictions=img_preds,
                scene=FrameRef.model_construct(scene_reference_id=seq, index=f, sensor="image_02"))


def detect_tracking(path: Path) -> bool:
    if not path.is_dir():
        return False
    return any(_looks_tracking(b) for b in (path, path / "training", path / "testing"))


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
    stem: str
    split_dir: Path
    gt_rows: list[str]
    pred_rows: list[str]
    drops: list[tuple[str, str, int]]
    imagesets: list[str]


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


def _rows_for(boxes: list[BoxAnnotation], cuboids: list[CuboidAnnotation], prediction: bool,
              t: camera.Transform | None, size: tuple[int | None, int | None], job: FrameJob, ref: str,
              drops: list[tuple[str, str, int]]) -> list[str]:
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
        row = _render(b, c, prediction, t, size, job, ref, drops)
        if row is not None:
            rows.append(row)
        elif c is not None:
            drops.append((kind + "cuboid", "its class is dropped by the label map", 1))
    for c in cuboids:
        if id(c) not in used:
            row = _render(None, c, prediction, t, size, job, ref, drops)
            if row is not None:
                rows.append(row)
    return rows


def _implied(key: str, value: Any, ann: Any) -> bool:
    """Attributes that carry no information beyond the box: COCO ``iscrowd`` 0 and an
    ``area`` equal to the box's width x height."""
    if key == "iscrowd":
        return value == 0
    if key == "area" and ann.type == "box" and isinstance(value, (int, float)):
        return abs(float(value) - float(ann.width) * float(ann.height)) <= 1e-6 * max(1.0, abs(float(value)))
    return False


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
            drops: list[tuple[str, str, int]]) -> str | None:
    main = b if b is not None else c
    assert main is not None
    kind = ("prediction:" if prediction else "") + main.type
    label = _label_of(main.label, job.mapping)
    if label is None:
        drops.append((kind, f"label map drops class {main.label!r}", 1))
        return None
    problem = _label_problem(label)
    if problem:
        raise WriteError(f"label {label!r} cannot be a KITTI class name: {problem}", item=ref,
                         fix="rename the class with --option label-map=FILE")
    attrs = (b.attributes if b is not None else {}) or {}
    for holder in (b, c):
        if holder is not None:
            for key, value in holder.attributes.items():
                if key in KITTI_ATTRIBUTES or _implied(key, value, holder):
                    continue
                drops.append((f"attribute:{key}", "KITTI label rows have no field for it", 1))
    text = attrs.get("kitti_text")
    tokens = text.split() if isinstance(text, str) else None
    n_expected = 15 if prediction else 14
    if tokens is not None and (len(tokens) != n_expected or not all(kitti_calib.is_number(x) for x in tokens)):
        tokens = None
    dont_care = bool(attrs.get("dont_care")) or label.lower() == "dontcare"
    geom = _cuboid_camera(c, t, ref) if c is not None and not dont_care else None
    if b is not None:
        bbox = (float(b.x), float(b.y), float(b.x) + float(b.width), float(b.y) + float(b.height))
    else:
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
    truncated = attrs.get("truncated", -1)
    occluded = attrs.get("occluded", -1)
    if "alpha" in attrs:
        alpha = attrs["alpha"]
    elif geom is not None:
        alpha = camera.alpha_of(geom[3:6], geom[6])
    else:
        alpha = -10
    score = None
    if prediction:
        conf = main.confidence
        raw = attrs.get("score")
        if isinstance(raw, (int, float)) and not isinstance(raw, bool) and (
                conf is None or abs(min(max(float(raw), 0.0), 1.0) - conf) < 1e-12):
            score = raw
        else:
            score = conf if conf is not None else 1.0
    nums = render_numbers(truncated=truncated, occluded=occluded, alpha=alpha, bbox=bbox, geom=geom,
                          dont_care=dont_care, score=score, text=tokens, style=job.style)
    head = ""
    if job.tracking is not None:
        tid = attrs.get("track_id")
        if not isinstance(tid, int):
            tid = -1 if dont_care else _track_number(main.track_reference_id, job)
        head = f"{job.tracking[1]} {tid} "
    return head + label + " " + " ".join(nums)


def _track_number(track_ref: str | None, job: FrameJob) -> int:
    if track_ref is None:
        return -1
    return job.track_ids.get(track_ref, -1)


def write_frame(job: FrameJob) -> FrameResult:
    """Render one KITTI frame's rows and copy its media (runs in a worker with --workers)."""
    drops: list[tuple[str, str, int]] = []
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
        if it is None:
            continue
        extra = [k for k in it.metadata if k != "camera_params"]
        if extra:
            drops.append(("item metadata", "KITTI holds no item metadata (camera_params become calib)", 1))
    size = (image.width, image.height) if image is not None else (None, None)
    image_src, image_skip = media_file(image.image_location if image is not None else None, job.media_root)
    if image is not None and size[0] is None and image_src is not None:
        size = _image_size(image_src)
    members = [i for i in (image, cloud) if i is not None]
    gt_boxes = [a for i in members for a in i.annotations if a.type == "box"]
    gt_cubs = [a for i in members for a in i.annotations if a.type == "cuboid"]
    pr_boxes = [a for i in members for a in i.predictions if a.type == "box"]
    pr_cubs = [a for i in members for a in i.predictions if a.type == "cuboid"]
    gt_rows = _rows_for(gt_boxes, gt_cubs, False, t, size, job, ref, drops)  # type: ignore[arg-type]
    pr_rows = _rows_for(pr_boxes, pr_cubs, True, t, size, job, ref, drops)  # type: ignore[arg-type]
    sd = job.split_dir
    if job.tracking is None:
        if gt_rows or (job.write_label_file and not pr_rows):
            _write_text(sd / "label_2" / f"{job.stem}.txt", gt_rows)
        if pr_rows:
            _write_text(sd / "results" / f"{job.stem}.txt", pr_rows)
        if calib is not None:
            _write_text(sd / "calib" / f"{job.stem}.txt", [kitti_calib.format_calib(calib).removesuffix("\n")])
    if job.media == "copy":
        if job.tracking is None:
            img_dir, velo_dir, name = sd / "image_2", sd / "velodyne", job.stem
        else:
            seq, f = job.tracking
            img_dir, velo_dir, name = sd / "image_02" / seq, sd / "velodyne" / seq, f"{f:06d}"
        if image is not None and image.image_location:
            if image_src is not None:
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
            velo_dir.mkdir(parents=True, exist_ok=True)
            if src.suffix == ".bin":
                shutil.copyfile(src, velo_dir / f"{name}.bin")
            else:
                load_points(src).astype("<f4").tofile(velo_dir / f"{name}.bin")
    sets = [s for s in ((image or cloud).attributes.get("kitti_imagesets") or [])  # type: ignore[union-attr]
            if isinstance(s, str)]
    return FrameResult(job.stem, job.split_dir, gt_rows, pr_rows, drops, sets)


def _write_text(path: Path, rows: list[str]) -> None:
    """Write ``rows`` as lines; the folder is made only when the open finds it missing (one
    ``mkdir`` per folder, not per file: 50,000 frames paid 50,000 ``mkdir`` calls)."""
    text = "".join(r + "\n" for r in rows)
    try:
        fh = open(path, "w", encoding="utf-8", newline="\n")
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "w", encoding="utf-8", newline="\n")
    with fh:
        fh.write(text)


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
    for what, reason, n in res.drops:
        context.report.drop(what, reason, n)


def write(dataset: Dataset, destination: Path, options: KittiWriteOptions, context: Context) -> None:
    """Write the KITTI object layout under ``destination``."""
    mapping = load_label_map(options.label_map)
    calibs = _CalibSource(options.calib)
    media_root = source_root(dataset.source)
    destination.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    imagesets: dict[str, list[str]] = {}
    multi_frame_scenes: set[str] = set()

    def jobs() -> Iterator[FrameJob]:
        for group in _frames(iter(dataset.items)):
            first = group[0]
            if first.scene is not None and first.scene.index > 0:
                multi_frame_scenes.add(first.scene.scene_reference_id)
            stem = None
            for it in group:
                s = it.attributes.get("kitti_frame")
                if isinstance(s, str) and s and "kitti_sequence" not in it.attributes:
                    stem = s
                    break
            if stem is None:
                imgs = [i for i in group if i.pointcloud_location is None]
                stem = (imgs[0] if imgs else group[0]).reference_id
            stem = _safe_stem(stem)
            if stem in used:
                raise WriteError(f"two frames would both be written as {stem}.txt", item=first.reference_id,
                                 fix="give items unique reference ids (or kitti_frame attributes)")
            used.add(stem)
            split = next((i.attributes.get("kitti_split") for i in group
                          if i.attributes.get("kitti_split") in ("training", "testing")), options.split)
            label_file = all(i.attributes.get("kitti_label_file", True) is not False for i in group)
            yield FrameJob(stem, group, calibs.get(stem, group), destination / split, options.media, mapping,
                           OBJECT_STYLE, None, label_file, media_root=media_root)

    for res in context.map(write_frame, jobs()):
        _record(context, res)
        for s in res.imagesets:
            imagesets.setdefault(s, []).append(res.stem)
    if multi_frame_scenes:
        context.report.drop("scene", "the KITTI object layout has no sequences; each frame is written on its own",
                            len(multi_frame_scenes))
    if dataset.header.scenes and any(s.metadata for s in dataset.header.scenes.values()):
        context.report.drop("scene metadata", "KITTI holds no scene metadata",
                            sum(1 for s in dataset.header.scenes.values() if s.metadata))
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


# --------------------------------------------------------------------------- formats

CAPS = Capabilities(
    annotation_types=frozenset({"box", "cuboid"}),
    prediction_types=frozenset({"box", "cuboid"}),
    item_metadata=True,
    annotation_metadata=False,
    scenes=True,
    pointclouds=True,
)

FORMAT = Format(
    name="kitti",
    description="KITTI object benchmark: label_2 rows (2D box + 3D cuboid), calib, image_2, velodyne",
    capabilities=CAPS,
    read=read,
    write=write,
    detect=detect,
    read_options=KittiReadOptions,
    write_options=KittiWriteOptions,
    output="directory",
)

TRACKING_FORMAT = Format(
    name="kitti-tracking",
    description="KITTI tracking: label_02/SSSS.txt sequences with track ids, image_02/SSSS, velodyne/SSSS",
    capabilities=CAPS,
    read=read_tracking,
    write=write_tracking,
    detect=detect_tracking,
    read_options=KittiReadOptions,
    write_options=KittiWriteOptions,
    output="directory",
)


@hookimpl
def register_formats() -> list[Format]:
    return [FORMAT, TRACKING_FORMAT]
