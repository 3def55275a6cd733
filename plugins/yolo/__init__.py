"""``yolo``: Ultralytics YOLO label folders — detect, segment, pose and OBB.

Files (a directory, or the dataset YAML itself)::

    data.yaml              the dataset YAML (any ``*.yaml`` at the top with ``names`` will do)
    images/<split>/<ref>.<ext>   images (only with ``--option media=copy|link`` on write)
    labels/<split>/<ref>.txt     one row per object, numbers separated by spaces

The YAML keys read and written: ``path`` (the dataset root, relative to the YAML's folder; one
that leads outside it — Ultralytics' datasets folder, an absolute path — means the YAML's folder),
``train``/``val``/``test`` (each a folder of images, a ``.txt`` list of image paths, or a YAML
list of either; relative to ``path``), ``names`` (a list, or a dict ``{id: name}``), ``nc``,
``kpt_shape`` (``[K, 2]`` or ``[K, 3]``) and ``flip_idx`` (kept as dataset info and written back).
annobridge also writes three keys Ultralytics ignores, so a round trip keeps what YOLO rows
cannot: ``task`` (``detect|segment|pose|obb``), ``kpt_names`` (``{class id: [names]}``) and
``skeleton`` (``{class id: [[a, b], ...]}``, 0-based).

Other layouts read: ``images/`` + ``labels/`` with or without split sub-folders and no YAML
(class names from ``classes.txt`` — Label Studio's YOLO export — or ``obj.names``, else the
class ids themselves); darknet / CVAT "YOLO 1.1" (``obj.data`` with ``classes``, ``names``,
``train``/``valid`` list files, labels beside their images; a ``data/`` prefix that does not
resolve is stripped, as CVAT writes it). A label file belongs to the image of the same path with
the last ``images`` folder replaced by ``labels`` (Ultralytics' rule), else beside the image.
Splits become ``item.attributes["split"]`` and are written back (``--option split=`` names the
split of items that have none; default ``train``).

Rows (coordinates normalised to 0..1 by the image width and height; x right, y down):

* detect: ``class cx cy w h`` — box centre and size.
* segment: ``class x1 y1 x2 y2 ... xn yn`` — one polygon ring of n >= 3 points. An object in
  several parts is joined into one ring the way Ultralytics' ``convert_coco`` does it
  (``merge_multi_segment``): consecutive rings are linked at their closest pair of vertices; the
  ring is walked forward from the first ring through each following ring (each closed on
  itself, middle rings from one link point to the other) and back through the middle rings'
  remaining arcs, so the joined ring goes out and back along zero-width bridges. The rings are
  not recoverable from the joined row: the loss is reported (``polygon rings``).
* pose: ``class cx cy w h px1 py1 [v1] ...`` — the box, then ``K`` points of ``kpt_shape[1]``
  numbers. Visibility ``v`` is COCO's: 0 not labelled (written ``0 0 0``), 1 labelled but
  hidden, 2 visible. With 2 numbers per point a point is unlabelled when it is ``0 0`` or
  negative (Ultralytics' rule), else visible. A pose row reads as a box and a keypoints
  annotation sharing ``group_id``; on write a keypoints annotation takes the box of its group
  (or its ``attributes["bbox"]`` from COCO), boxes without keypoints are written with all points
  ``0 0 0`` and read back as plain boxes. The writer always writes 3 numbers per point.
* obb: ``class x1 y1 x2 y2 x3 y3 x4 y4`` — the 4 corners, read as an
  :class:`~annobridge.core.model.OrientedBoxAnnotation` (corners in the order of its
  ``corners()``; rotation clockwise on screen, in ``(-180, 180]``). A quad that is not a
  rectangle in pixels (tolerance: parallelogram defect and diagonal difference within
  ``1e-5 x max(width, height)`` pixels, far above 6-digit rounding) is kept exactly as a 4-point
  polygon with ``attributes["yolo_quad"] = True`` — Ultralytics itself would fit a minimum-area
  rectangle — and written back as the same quad row in the obb task.
* predictions: the same rows with the confidence appended as the last number (Ultralytics'
  ``save_txt(save_conf=True)``: after the keypoints on pose rows). A row is a prediction when it
  has one number more than the task's row (detect 6, obb 10, pose 6 + K x D, segment an even
  count). Keypoint predictions are not held: Ultralytics writes a per-point score where ground
  truth has a visibility; such rows read as box predictions and the keypoints are reported.

Task: ``--option task=detect|segment|pose|obb`` or ``auto`` (default). Reading ``auto`` takes the
YAML's ``task``, else ``pose`` when it has ``kpt_shape``, else reads each row by its length (a
9-number row is then a 4-point polygon: only ``task=obb`` makes it an oriented box). Writing
``auto`` keeps the task a YOLO source was read with, else lets the first item with keypoints,
polygons or oriented boxes decide, in that order of preference (``pose``, ``segment``, ``obb``;
earlier box-only files are fixed up); kinds the task cannot hold are dropped and reported (box
rows beside polygon rows in one segment file, boxes in obb, other kinds). A named task narrows
the format's capabilities for that write (``Format.capabilities_for``), as does
``predictions=true`` (predictions only, else ground truth only), so the engine reports — or,
with its derivation stage, converts — whatever the task cannot hold before the writer sees it;
the writer never converts geometry itself.

Class ids are always ``0..nc-1``: the dataset's categories sorted by id take 0, 1, ...; labels
with no category follow in order of first use. Image sizes (needed to normalise) come from the
item's ``width``/``height``, else the image header (Pillow, no pixels decoded, EXIF rotation
applied as Ultralytics does), else ``--option image-size=WxH``; without any, an error names the
item. ``--option images=DIR`` on read finds images that are not beside the labels (a folder
written with ``media=none``) by their relative path. Writing copies no image unless asked
(``media=none|link|copy``; default none: the YAML names ``images/<split>`` where they belong);
images are read (for sizes, copies and links) only from inside the source dataset's folder
(``core.paths.media_file``), and one that cannot be copied is reported (``image file``).

What is lost: everything but boxes, polygons, keypoints and oriented boxes with their labels
(ids, attributes, metadata, scenes); multi-ring structure of polygons; ground truth when
writing predictions (``--option predictions=true``) and predictions otherwise; keypoint names
that differ from the task's schema (one ``kpt_shape`` per dataset). Numbers are written with
full float precision (``repr``), so values survive to about 1e-15 relative; the round-trip
tests compare at 1e-6.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from annobridge.core.formats import Capabilities, Format, LazyFunction, Parts, lazy_exports
from annobridge.core.hookspecs import hookimpl
from annobridge.plugins.yolo.common import HELD

if TYPE_CHECKING:
    from annobridge.plugins.yolo.options import YoloWriteOptions

# The options models (pydantic) are imported on first use, not to list formats.
__getattr__ = lazy_exports(__name__, {"options": ("YoloReadOptions", "YoloWriteOptions")})

# The reader and writer (yaml, Pillow, the model) are imported on first use, not to list
# formats; the package's ``read`` and ``write`` are those submodules.


def detect(path: Path) -> bool:
    """The reader's detection (``read.detect``) for a path that has what it looks for: a YAML
    or ``obj.data`` file, or a folder holding one or ``labels/``. Detection runs for every
    source: any other path is refused here, without importing the reader."""
    if path.is_dir():
        if not ((path / "labels").is_dir() or (path / "obj.data").is_file()
                or any(p.suffix in (".yaml", ".yml") for p in path.glob("*.y*ml"))):
            return False
    elif path.suffix not in (".yaml", ".yml") and path.name != "obj.data":
        return False
    from annobridge.plugins.yolo.read import detect as read_detect

    return read_detect(path)


PREDICTED = {task: kinds - {"keypoints"} for task, kinds in HELD.items()}
"""Prediction kinds: keypoint predictions carry per-point scores the model cannot hold."""


def capabilities_for(options: YoloWriteOptions) -> Capabilities:
    """What one write holds: the task's kinds, as ground truth or (``predictions=true``) as
    predictions — so the engine reports, or derives, everything else before the writer."""
    if options.predictions:
        return Capabilities(annotation_types=frozenset(), prediction_types=PREDICTED[options.task])
    return Capabilities(annotation_types=HELD[options.task], prediction_types=frozenset())


FORMAT = Format(
    name="yolo",
    description="Ultralytics YOLO labels (detect, segment, pose, OBB) with data.yaml; darknet obj.data",
    capabilities=Capabilities(annotation_types=HELD["auto"], prediction_types=PREDICTED["auto"]),
    capabilities_for=capabilities_for,  # type: ignore[arg-type]
    read=LazyFunction(f"{__name__}.read", "read"),
    shards=LazyFunction(f"{__name__}.read", "shards"),
    write=LazyFunction(f"{__name__}.write", "write"),
    parts=Parts(LazyFunction(f"{__name__}.write", "write_part"), LazyFunction(f"{__name__}.write", "finish"),
                keeps_ids=False, lead=LazyFunction(f"{__name__}.write", "lead")),
    detect=detect,
    read_options=LazyFunction(f"{__name__}.options", "YoloReadOptions"),
    write_options=LazyFunction(f"{__name__}.options", "YoloWriteOptions"),
    output="directory",
)
"""``capabilities`` is the union over tasks (what reading can give, what tests draw);
``capabilities_for`` narrows a write to its ``task`` and to ground truth or predictions."""


@hookimpl
def register_formats() -> list[Format]:
    return [FORMAT]
