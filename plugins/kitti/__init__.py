"""``kitti`` (object benchmark) and ``kitti-tracking``: 2D boxes, 3D cuboids, calibration,
velodyne point clouds, tracks. Spec: the KITTI object and tracking devkits' ``readme.txt``
(label columns, calibration files), as summarised below.

Both formats live in this package (they share the row parser, the geometry in
``calib.py``, ``core/camera.py`` and the writer); ``kitti-tracking`` is a second :class:`Format`.

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

import logging
import os
import re
from pathlib import Path

from annobridge.core.formats import Capabilities, Format, LazyFunction, Parts, lazy_exports
from annobridge.core.hookspecs import hookimpl

__all__ = [
    "CAPS", "FIELDS", "FORMAT", "IMAGE_EXTS", "KITTI_ATTRIBUTES", "LIDAR_SENSOR", "OBJECT_STYLE", "SENTINEL_3D",
    "SPLIT_DIRS", "TRACKING_DONTCARE_3D", "TRACKING_FORMAT", "TRACKING_STYLE", "FrameFiles", "FrameJob", "FrameResult",
    "KittiReadOptions", "KittiWriteOptions", "Layout", "Row", "Style", "detect", "detect_tracking",
    "load_label_map", "parse_row", "read_tracking", "register_formats",
    "render_numbers", "resolve_layout", "write_frame", "write_tracking",
]
"""Public names of the package (the reader's, the writer's and the shared ones re-exported;
the reader and writer themselves are the submodules ``read`` and ``write``)."""

# The options models (pydantic), the reader and the writer (numpy, the model) are
# imported on first use, not to list formats.
__getattr__ = lazy_exports(__name__, {
    "options": ("KittiReadOptions", "KittiWriteOptions"),
    "common": ("OBJECT_STYLE", "SENTINEL_3D", "TRACKING_DONTCARE_3D", "TRACKING_STYLE", "Style",
               "load_label_map", "render_numbers"),
    "read": ("FIELDS", "IMAGE_EXTS", "LIDAR_SENSOR", "FrameFiles", "Layout", "Row", "parse_row",
             "read_tracking", "resolve_layout"),
    "write": ("KITTI_ATTRIBUTES", "FrameJob", "FrameResult", "write_frame", "write_tracking"),
})

logger = logging.getLogger(__name__)

SPLIT_DIRS = ("label_2", "label_02", "image_2", "image_02", "velodyne", "calib", "results")
"""The folders of a KITTI split (``training/``, ``testing/``, or the folder given). Here, not
in the reader: detection runs for every source and must not import the reader."""


# --------------------------------------------------------------------------- detect


def detect(path: Path) -> bool:
    """A folder with ``label_2``/``image_2``+``calib``/``velodyne`` (or such a ``training/``),
    or label files without that layout whose first row is a KITTI row: a ``.txt`` file, a
    folder of them, or a folder holding ``labels/`` (labelformat)."""
    if path.is_file():
        return path.suffix.lower() == ".txt" and _kitti_rows(path)
    if not path.is_dir():
        return False
    if not any((path / d).is_dir() for d in (*SPLIT_DIRS, "training", "testing")):
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
    from annobridge.plugins.kitti.calib import is_number

    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            line = next((t for t in fh if t.strip()), "")
    except OSError:
        return False
    toks = line.split()
    if len(toks) < 15 or is_number(toks[0]):
        return False
    tail = 15 if len(toks) >= 16 and all(is_number(t) for t in toks[-15:]) else 14
    return all(is_number(t) for t in toks[-tail:])


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


def detect_tracking(path: Path) -> bool:
    if not path.is_dir():
        return False
    return any(_looks_tracking(b) for b in (path, path / "training", path / "testing"))


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
    read=LazyFunction(f"{__name__}.read", "read"),
    write=LazyFunction(f"{__name__}.write", "write"),
    shards=LazyFunction(f"{__name__}.read", "shards"),
    parts=Parts(LazyFunction(f"{__name__}.write", "write_part"), LazyFunction(f"{__name__}.write", "finish"),
                keeps_ids=False),
    detect=detect,
    read_options=LazyFunction(f"{__name__}.options", "KittiReadOptions"),
    write_options=LazyFunction(f"{__name__}.options", "KittiWriteOptions"),
    output="directory",
)

TRACKING_FORMAT = Format(
    name="kitti-tracking",
    description="KITTI tracking: label_02/SSSS.txt sequences with track ids, image_02/SSSS, velodyne/SSSS",
    capabilities=CAPS,
    read=LazyFunction(f"{__name__}.read", "read_tracking"),
    write=LazyFunction(f"{__name__}.write", "write_tracking"),
    detect=detect_tracking,
    read_options=LazyFunction(f"{__name__}.options", "KittiReadOptions"),
    write_options=LazyFunction(f"{__name__}.options", "KittiWriteOptions"),
    output="directory",
)


@hookimpl
def register_formats() -> list[Format]:
    return [FORMAT, TRACKING_FORMAT]
