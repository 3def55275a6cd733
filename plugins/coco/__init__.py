"""``coco``: COCO object detection / instance segmentation / keypoints / stuff JSON, and
COCO results files.

Files:
    A ground-truth file is one JSON object with ``images``, ``annotations``,
    ``categories`` and usually ``info`` and ``licenses``; a stuff-segmentation file is
    the same JSON with one RLE annotation per (image, stuff category). A results file is
    a bare JSON list of ``{image_id, category_id, bbox | segmentation | keypoints,
    score}``. Read option ``gt=PATH`` pairs a results file with its ground truth for
    image file names, sizes and category names.

Mapping (one COCO annotation -> canonical annotations sharing ``group_id = str(id)``):
    * the main geometry, ``annotation_id = str(id)``:
      ``PolygonAnnotation`` (all polygons of the object as rings) for a non-empty polygon
      list; ``ObjectMaskAnnotation`` for an RLE (uncompressed ``counts`` kept as a list,
      compressed as a str, crowd or not); else ``BoxAnnotation`` from ``bbox``; else,
      when there is neither geometry nor keypoints (image-level label files), a
      ``CategoryAnnotation``.
    * ``KeypointsAnnotation`` (``annotation_id = f"{id}:keypoints"``) when ``keypoints``
      is present: flat ``[x, y, v] * k`` exactly as written (all three visibility
      states, coordinates of v=0 points too), names and 0-based skeleton of the category.
    * ``attributes`` of the first annotation of the group hold ``area`` and
      ``iscrowd`` as written (never recomputed), ``bbox`` when the main geometry is not
      a box, ``segmentation`` when it is present but holds no geometry (``[]`` or
      ``null``), ``id`` when the COCO id is a string, every unknown annotation key, and
      ``coco_absent``: the standard keys (``bbox``, ``area``, ``iscrowd``,
      ``num_keypoints``) the source left out, so that the writer does not add them.
      ``num_keypoints`` is recomputed on write (count of v > 0); a value in the file that
      disagrees with that count (CrowdPose leaves out head and neck) is kept in
      ``attributes["num_keypoints"]`` and written back instead.
    * Predictions (results files) are the same, with ``confidence = score``; a result
      without ``score`` (stuff results) is a prediction without confidence. Results have
      no ids: ``group_id`` is ``str(index + 1)`` as pycocotools ``loadRes`` numbers them;
      an ``id`` key in a result is kept as an attribute.
    * Items: one per image, ``reference_id = str(image id)`` (ids above 2**32 and string
      ids survive; a string id is also kept in ``attributes["id"]``),
      ``image_location = file_name`` as written (not resolved), ``width``/``height``;
      every other image key (license, coco_url, flickr_url, date_captured, unknown keys)
      in ``attributes``. Images without annotations are items without annotations.
    * Header: ``categories`` with ids as given (gaps and 0 allowed), ``supercategory``,
      keypoint names and the skeleton converted 1-based -> 0-based, unknown category
      keys in ``Category.attributes``; ``info``, ``licenses`` and unknown top-level keys
      in ``header.info["coco"]["top"]`` (with the top-level key order).

Writing:
    A ground-truth file, unless the items were read from a COCO results file or write
    option ``results=true`` is given: then a results list of the predictions (ground truth
    in it is reported as dropped; image records and category names are not part of a
    results list, which the report notes). Predictions written into a ground-truth file go
    under the extra top-level key ``annobridge_predictions`` as a results list (pycocotools
    and other COCO readers ignore it; this reader reads it back as predictions), so
    nothing is lost. Ids are integers, as pycocotools ``COCOeval`` and datumaro expect:
    an image's id is its reference id when that is an integer (``"000123"`` -> 123), else
    the next unused integer from 1 up in item order, the reference id kept under the image
    key ``annobridge_reference_id`` (a string id read from COCO stays a string). Annotation
    ids are kept when ``group_id`` is an integer not used yet; other groups get new ids
    from 1 up, skipping used ids, the group id kept under ``annobridge_group_id``. The
    reader restores both (reference id, group id) and keeps the COCO id in
    ``attributes["id"]``, so COCO -> COCO writes the same ids again. For annotations
    that did not come from COCO, the writer adds ``bbox`` to polygons and masks (polygon
    vertex extents, RLE ``toBbox``; ``core/derive.py``) and to keypoint-only objects (the
    extent of the labelled keypoints), so ``COCOeval`` finds a ``bbox`` on every object
    (reading such a file back gives the object a box beside its keypoints), ``area``
    (pycocotools pixel count of the rasterised polygon or RLE; ``w*h`` of the box
    otherwise) and ``iscrowd = 0``.
    Labels missing from the header's categories get new category ids.

What is lost: item and annotation ``metadata``, ``track_reference_id``, ``class_pdf``,
``embedding_vector``, ``taxonomy_name`` and non-COCO annotation ids (all reported), the
order of annotations in the file (written grouped by image, in image order), the key
order inside records, and prediction ids (results have none). ``file_name`` is kept as
written (COCO does not record the image root it is relative to) and is not resolved.

Image locations that ``file_name`` cannot hold: a location that is absolute or climbs out of
its folder with ``..`` (a KITTI or Nucleus source read from an absolute path) is written as
``file_name`` relative to the source's folder when it lies under it, else as its base name
(COCO readers such as datumaro join ``file_name`` to an images folder and refuse absolute
paths); the full location goes under the image key ``annobridge_image_location``, which
the reader restores as ``image_location`` — so COCO -> COCO keeps every location. URLs and
relative paths are written as given.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from annobridge.core.formats import Capabilities, Format, LazyFunction, lazy_exports
from annobridge.core.hookspecs import hookimpl

__all__ = ["FORMAT", "KINDS", "CocoReadOptions", "CocoWriteOptions", "_rle_total", "detect",
           "register_formats"]

# The reader and writer (numpy, the model) are imported on first use, not to list formats.
__getattr__ = lazy_exports(__name__, {"read": ("_rle_total",)})

logger = logging.getLogger(__name__)

KINDS = frozenset({"box", "polygon", "object_mask", "keypoints", "category"})


class CocoReadOptions(BaseModel):
    """``--option`` keys for reading COCO.

    Args:
        gt: for a results file, the ground-truth JSON giving image file names, sizes and
            category names (results are then checked against it, as ``loadRes`` does).
        bad_skeleton_edges: a skeleton edge whose index is outside 1..k (CrowdPose ships a
            17-point skeleton with 14 keypoints; datumaro writes 0-based edges under an
            empty name list): ``keep`` (default) keeps the category's skeleton verbatim in
            ``Category.attributes["skeleton"]`` (written back as given), leaves such edges
            out of the canonical skeleton and notes it in the report; ``drop`` drops them
            (reported as dropped); ``error`` refuses the file.
        short_keypoints: keypoints whose length is not 3 x the category's keypoint count:
            ``keep`` (default) reads a shorter list as the first names of the category
            (Human-Art stores 17 COCO points under a 21-name category) and names the points
            beyond the category's names ``"k"`` (their 0-based index; datumaro's
            ``coco_person_keypoints`` export has categories with ``keypoints: []``), noted
            in the report; ``prefix`` reads shorter lists only; ``error`` refuses the file.
        strict: refuse what the file leaves inconsistent instead of keeping it: both
            options above become ``error`` unless given otherwise, and an image size written
            as a whole float (``640.0``) is refused instead of read as the integer
            (docs/refusals.md).
    """

    model_config = ConfigDict(extra="forbid")
    gt: Path | None = None
    bad_skeleton_edges: Literal["keep", "error", "drop"] = "keep"
    short_keypoints: Literal["keep", "error", "prefix"] = "keep"
    strict: bool = False

    def mode(self, option: str) -> str:
        """The effective mode of ``bad_skeleton_edges`` or ``short_keypoints``."""
        given = option in self.model_fields_set
        return "error" if self.strict and not given else getattr(self, option)


class CocoWriteOptions(BaseModel):
    """``--option`` keys for writing COCO.

    Args:
        results: ``true`` writes a results list (the predictions), ``false`` a
            ground-truth file; unset: a results list when the items hold predictions and no
            ground truth.
    """

    model_config = ConfigDict(extra="forbid")
    results: bool | None = None


# --------------------------------------------------------------------------- detect


def detect(path: Path) -> bool:
    """A ``.json`` file that starts like a COCO object or a COCO results list."""
    if not path.is_file() or path.suffix.lower() != ".json":
        return False
    with open(path, "rb") as fh:
        head = fh.read(1 << 20)
    start = head.lstrip()[:1]
    if b'"segments_info"' in head:
        return False  # COCO panoptic
    if start == b"[":
        return b'"image_id"' in head and b'"category_id"' in head
    if start == b"{":
        return b'"images"' in head or (b'"annotations"' in head and b'"image_id"' in head)
    return False


FORMAT = Format(
    name="coco",
    description="COCO detection / instance segmentation / keypoints / stuff JSON and results lists",
    capabilities=Capabilities(annotation_types=KINDS, prediction_types=KINDS,
                              attributes=frozenset({"iscrowd", "area", "bbox", "category_id", "num_keypoints"})),
    read=LazyFunction(f"{__name__}.read", "read"),
    write=LazyFunction(f"{__name__}.write", "write"),
    detect=detect,
    read_options=CocoReadOptions,
    write_options=CocoWriteOptions,
)


@hookimpl
def register_formats() -> list[Format]:
    return [FORMAT]
