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
WriteErrors. Remote mask URLs are kept as they are. With the write option
``mask-url=s3://bucket/prefix/`` (any fsspec URL) the PNGs are uploaded there instead, when
the conversion succeeds, and ``mask_url`` holds their URLs, which the Nucleus service needs;
``pointcloud-url`` does the same for the point-cloud files.

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

Write option ``renumber_segments`` (``auto``, the default): a mask with an index above 255
(panoptic ids) has its segments renumbered 1..n (pixels of no segment become 0), each segment
keeping its original index in ``attributes["original_index"]``, counted in the report as a
conversion (``segmentation -> segmentation renumbered 1..n``); only a mask with more than 255
segments is a WriteError. ``true`` renumbers every mask, ``false`` none (an index above 255 is
then a WriteError).

Pixel values no segment labels are unlabelled (void) in the model and written as they are;
the Nucleus guide asks for "a Segment for each unique pixel value in the mask" (index 0 too:
the SDK's example maps 0 to background with a segment), so ``validate`` lists each such mask as
a warning (it decodes the masks; ``convert`` does not look).

Write option ``booleans_as_strings=true`` writes metadata booleans as ``"true"``/``"false"``
(the format sheet's safe policy for Nucleus's metadata typing; reported, as it is lossy).

Locations: ``image_url`` is kept exactly as written, both ways (a relative path means what it
means to its producer, as a COCO ``file_name`` does; the Nucleus client resolves it against
its working directory). Masks and point clouds are files this format opens: relative ones
are resolved against the ``.jsonl`` folder when read, and ``.json`` clouds outside the output
are written relative to the output's folder.

Read option ``strict=true`` refuses a keypoints prediction without a ``skeleton`` (the client
requires one) and keys Nucleus does not define in an item, scene or annotation payload; by
default the first is read with no skeleton and the others are kept as attributes (written back
under ``annobridge``), each noted as a warning (docs/refusals.md). Unknown keys inside a
``geometry`` are refused either way: they may change what the geometry means.

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
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from annobridge.core.formats import Capabilities, Format, LazyFunction, lazy_exports
from annobridge.core.hookspecs import hookimpl
from annobridge.plugins.nucleus.common import (  # noqa: F401  (re-exported, as before the split)
    EXT,
    ITEM_NATIVE_ATTRIBUTES,
    SCENE_NATIVE_ATTRIBUTES,
    SERVER_KEYS,
    SIDECAR_SUFFIX,
)

# The reader and writer (numpy, the model) are imported on first use, not to list formats.
__getattr__ = lazy_exports(__name__, {
    "write": ("CAMERA_PARAM_OPTIONAL", "NON_NUCLEUS_KINDS", "NON_NUCLEUS_PREDICTION_KINDS"),
})

logger = logging.getLogger(__name__)


class NucleusReadOptions(BaseModel):
    """Options for reading Nucleus payloads."""

    model_config = ConfigDict(extra="forbid")
    check_files: bool = True
    """Check at read time that local mask and point-cloud files exist (a stat, no decode)."""
    strict: bool = False
    """Refuse what the file leaves inconsistent but annobridge can keep (a keypoints prediction
    without a skeleton, payload keys Nucleus does not define), instead of keeping it with a
    warning in the report (docs/refusals.md)."""


class NucleusWriteOptions(BaseModel):
    """Options for writing Nucleus payloads."""

    model_config = ConfigDict(extra="forbid")
    strict: bool = False
    """Write pure Nucleus: no ``annobridge`` extension keys; every loss is reported."""
    incomplete_lidar_scenes: bool = False
    """Write a lidar scene whose frames do not all have exactly one point cloud (Nucleus refuses
    it on upload; noted in the report) instead of failing."""
    renumber_segments: Literal["auto", "true", "false"] = "auto"
    """``auto``: when a mask holds an index above 255, renumber its segments 1..n (the original
    index goes to the segment's ``attributes["original_index"]``; counted as a conversion),
    failing only beyond 255 segments; ``true``: renumber every mask; ``false``: never (fail)."""

    @field_validator("renumber_segments", mode="before")
    @classmethod
    def _renumber_word(cls, value: object) -> object:
        if isinstance(value, bool):  # renumber_segments=True, as before auto existed
            return "true" if value else "false"
        return value.lower() if isinstance(value, str) else value
    booleans_as_strings: bool = False
    """Write metadata booleans as the strings ``"true"``/``"false"`` (reported; whether Nucleus
    needs this is not verified, see the format sheet)."""
    mask_url: str | None = None
    """A URL prefix (``s3://bucket/masks/``, any fsspec URL): the 8-bit mask PNGs are uploaded
    there, when the conversion succeeds, and ``mask_url`` holds their URLs, as the Nucleus
    service needs (it cannot read local files). Default: a ``NAME.masks/`` folder beside the output."""
    pointcloud_url: str | None = None
    """The same for the point-cloud JSON files (``pointcloud_url`` / frame ``url``)."""
    frame_rate: int = Field(default=1, ge=1)
    """The ``frame_rate`` of a VideoScene whose scene has none (the client's ``validate()``
    needs one for a scene of image frames); each use is noted in the report."""


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
    read=LazyFunction(f"{__name__}.read", "read"),
    write=LazyFunction(f"{__name__}.write", "write"),
    detect=detect,
    read_options=NucleusReadOptions,
    write_options=NucleusWriteOptions,
    output="file",
)


@hookimpl
def register_formats() -> list[Format]:
    return [FORMAT]


__all__ = ["FORMAT", "NucleusReadOptions", "NucleusWriteOptions", "detect", "read", "write"]
