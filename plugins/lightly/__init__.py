"""Lightly: the ``.lightly`` datasource folder (``lightly``) and the single-task
predictions folder of labelformat / LightlyStudio (``lightly-task``).

Two formats, because their layouts differ: ``lightly`` is the LightlyOne Worker's
``.lightly/`` folder holding item metadata *and* any number of prediction tasks, keyed by
media paths relative to an input datasource; ``lightly-task`` is one prediction task in a
folder beside ``images/``, without ``tasks.json`` and without metadata. Both share the
prediction encoding below.

``lightly`` — the path is the ``.lightly`` folder itself (a folder holding ``metadata/``
and/or ``predictions/``)::

    .lightly/metadata/schema.json                 [{"name", "path", "defaultValue", "valueDataType"}]
    .lightly/metadata/<media path>.json           {"file_name", "type", "metadata"}
    .lightly/predictions/tasks.json               ["task", ...]
    .lightly/predictions/<task>/schema.json       {"task_type", "categories": [{"id", "name"}]}
    .lightly/predictions/<task>/<media path>.json {"file_name", "predictions": [...]}

* ``<media path>`` is the media file's path relative to the input datasource with its last
  extension replaced by ``.json``; ``file_name`` keeps the extension. An item's
  ``reference_id`` is ``file_name`` without its last extension (``subdir/image_1``); the
  exact ``file_name`` is kept in ``attributes["file_name"]`` and written back from there.
  Writing picks ``file_name`` as: the image path relative to the ``input`` write option
  (when the image lies under it), else ``attributes["file_name"]`` when its stem is the
  reference id, else the reference id when it ends in an image extension (``image_1.png``
  -> ``metadata/image_1.json``), else the reference id plus the image's extension (``.png``
  by default). What the Lightly files cannot say — a remote image location (Nucleus
  ``image_url``), a reference id that is not ``file_name`` without its extension, the image
  size of an item with masks (Lightly RLE has none) — goes to ``.lightly/annobridge-origins.json``
  (``{"items": {file_name: {...}}}``; Lightly reads only ``metadata/`` and ``predictions/``)
  and is restored on reading;
  ``attributes["lightly_tasks"]`` lists the tasks that have a file for the item, so an
  empty ``predictions`` list is written back.
* ``type`` is ``image``, ``video`` or ``frame``. A video is a :class:`Scene` (its
  metadata = the video-level file); its frames are items with a :class:`FrameRef`, named
  ``<video without extension>-<frame index padded to len(str(n_frames))>-<extension>.png``
  (``subdir/video_1-099-mp4.png``). The frame count comes from the ``frames`` option, or
  ``Scene.attributes["n_frames"]``, or (writing) the video's frame list in the dataset
  (highest frame index + 1) — it is never guessed from the padding. Reading checks the
  padding against a known count, else that one video's frame files agree on it.
  The video-level file applies to the video's frames (Lightly's documented rule): reading,
  a frame lacking a key (nested keys too) takes the video's value before schema defaults
  are filled; writing, a frame file holds only the values that differ from its video's,
  and the video-level file is written as it was.
* Metadata schema: written from the inferred types with the five documented
  ``valueDataType``\\ s — numeric-int -> ``NUMERIC_INT`` (default ``0``), numeric-float ->
  ``NUMERIC_FLOAT`` (``0.0``; ints on the key are written as floats), categorical/text ->
  ``CATEGORICAL_STRING`` (``"undefined"``), boolean -> ``CATEGORICAL_BOOLEAN`` (``false``);
  ``CATEGORICAL_INT`` only from a given schema. Booleans stay JSON booleans (Lightly has a
  boolean type; the ``"true"``/``"false"`` strings of ``core.metadata.bool_to_string`` are for
  formats that need strings). Reading also accepts
  ``CATEGORICAL_DATETIME``, ``CATEGORICAL_TIMESTAMP`` and ``OTHER_STRING``. Nested values
  get dotted paths (``weather.temperature``); a lat/lon dict gets one numeric entry per
  coordinate. Lists, dicts without typed leaves, nulls and ``context_attachments`` are
  written in the files but get no schema entry. The schema read is kept in
  ``header.info["lightly"]["metadata_schema"]`` and reused on writing (names, types,
  defaults); the ``schema-file`` write option names a user schema file that overrides both. A
  key holding two types across the dataset is a ``MetadataTypeError``.
* Every item, frame and video gets a metadata file (``{}`` when it has no metadata), so the
  item list survives a round trip.
* Reading fills schema defaults (``fill-defaults``, on by default, as the Worker does): a
  schema path missing from an item's metadata, or null, reads as its ``defaultValue``.
  With the ``input`` option (the input datasource root) every media file must exist,
  media without any ``.lightly`` file become items with the defaults, image sizes are read
  from the image headers, and ``image_location`` points into it.
  Saving a folder back (``annobridge metadata import|compute``) after reading it with
  defaults writes those defaults into the files (same values for the Worker); read with
  ``fill-defaults=false`` to keep the files sparse.
* Predictions: one task per prediction kind, named by ``attributes["lightly_task"]``
  (kept on reading) or the ``task`` write option or the kind's default name. Singletons:

  ================== ================================ =====================================
  task_type          canonical                        singleton
  ================== ================================ =====================================
  object-detection   BoxAnnotation                    category_id, bbox [x,y,w,h], score,
                                                      probabilities (opt.)
  classification     CategoryAnnotation               category_id, score (opt.), probabilities
  semantic-segmentation SegmentationAnnotation        one per Segment: category_id,
                     (index mask + Segments)          segmentation (Lightly RLE), score
  instance-segmentation ObjectMaskAnnotation          category_id, bbox, segmentation, score
  keypoint-detection KeypointsAnnotation              category_id, keypoints [x,y,s]*k,
                                                      score, bbox (opt.)
  ================== ================================ =====================================

  ``confidence`` <-> ``score``; ``class_pdf`` <-> ``probabilities`` ordered by category id
  (position *i* = the task's *i*-th category by id; absent labels are 0.0; a new task that
  writes vectors lists every header category, so every vector has one length). Category ids
  are kept (gaps allowed; from ``header.categories``, new labels get the next free id); a
  task schema that was read is written back as it was.
  Lightly RLE is row-major, size-less, starting with a run of 0s (:func:`rle_encode`); it is
  decoded to pixels, never copied from COCO counts. Segment scores live in
  ``Segment.attributes["score"]``. Keypoint detection (not in the docs; API model only):
  the third number per point is a score, kept in ``attributes["keypoint_scores"]``;
  decided: reading gives visibility 2 (0 when x = y = s = 0), writing gives s from
  ``keypoint_scores`` else 1.0 (0.0 and x = y = 0 for unlabelled points); category keypoint
  names/skeleton are written as ``keypointNames``/``keypointSkeleton`` (0-based) in the
  task schema (``keypoint_names``/``keypoint_skeleton`` accepted too).
* Ground truth: Lightly holds predictions only. Ground truth is written as predictions
  only with the ``score`` option (its score); without it ground truth is dropped and
  reported — never a silent 0.0. A prediction without a confidence needs the option too
  (else WriteError); classification may have no score. ``as-annotations`` (read) returns
  the predictions as ground truth (scores kept as ``confidence``).
* Clipping: boxes (and keypoints) are clipped to x, y >= 0 and, when the item's size is
  known, to the image; the count is in the report (``prediction:box:clipped``).

Workers (``--workers N``, ``--executor dask``; ``converters/sharded.py``) read a ``lightly``
folder in parts: a unit is one media file's metadata file and prediction files (fetched by the
worker itself from a remote source) and its ``annobridge-origins.json`` entries. What spans the
dataset is read once by the driver and carried in the plan: the metadata schema, the task
schemas (the header's categories), the file of every video that has frames (its metadata
applies to the frames, its scene is theirs, whichever part reads them) and, for a video whose
frame names disagree on the padding, the first frame the others are checked against. The
filled-defaults note is summed over the parts. The writer is not written in parts: a metadata
file can only be written once the whole dataset's types are known (ints on a float key become
floats), a frame's name waits for its video's frame count, and new labels get category ids in
the order they appear; its per-item prediction encoding already runs on the workers
(``Context.map``). A ``lightly-task`` folder is read in parts likewise: a unit is one
prediction file, the task schema is read by the driver.

``lightly-task`` — the path is the predictions folder (``schema.json`` plus one JSON per
image, recursively), images at ``images`` (default ``<path>/../images``). One task only:
the writer takes the kind given by ``task-type``, else the kind of the first prediction
seen (ground truth counts with the ``score`` option); other kinds and item metadata are
dropped and reported. The task's ``schema.json`` is written as read when the dataset came
from a task folder.

What is lost: item width/height (read back from the images only), annotation ids and
metadata, attributes other than those named, MultiCategory/polygon/line/cuboid kinds,
scene categories, keypoint visibility 1 (becomes 2), ground truth vs prediction.
"""

from __future__ import annotations

from pathlib import Path

from annobridge.core.formats import Capabilities, Format, LazyFunction, lazy_exports
from annobridge.core.hookspecs import hookimpl
from annobridge.plugins.lightly.common import KINDS, split_ext  # noqa: F401  (split_ext re-exported)

# The options models (pydantic), the reader and the writer (the model, Pillow) are
# imported on first use, not to list formats.
__getattr__ = lazy_exports(__name__, {
    "options": ("LightlyReadOptions", "LightlyWriteOptions", "LightlyTaskReadOptions",
                "LightlyTaskWriteOptions"),
    "read": ("parse_frame_file_name", "read_task_folder", "rle_decode"),
    "write": ("frame_file_name", "rle_encode", "write_task_folder"),
})


def detect(path: Path) -> bool:
    return path.is_dir() and ((path / "metadata" / "schema.json").is_file()
                              or (path / "predictions" / "tasks.json").is_file())


def detect_task_folder(path: Path) -> bool:
    schema = path / "schema.json"
    if not path.is_dir() or not schema.is_file() or (path / "tasks.json").exists():
        return False
    with open(schema, encoding="utf-8", errors="replace") as fh:
        return '"task_type"' in fh.read(4096)


CAPS = Capabilities(annotation_types=KINDS, prediction_types=KINDS, item_metadata=True, scenes=True)


FORMAT = Format(
    name="lightly",
    description="Lightly .lightly datasource folder: metadata/ (schema.json + per-file JSON) and predictions/ tasks",
    capabilities=CAPS,
    read=LazyFunction(f"{__name__}.read", "read"),
    write=LazyFunction(f"{__name__}.write", "write"),
    detect=detect,
    read_options=LazyFunction(f"{__name__}.options", "LightlyReadOptions"),
    write_options=LazyFunction(f"{__name__}.options", "LightlyWriteOptions"),
    output="directory",
    shards=LazyFunction(f"{__name__}.read", "shards"),
)


TASK_FORMAT = Format(
    name="lightly-task",
    description="Lightly single-task predictions folder (labelformat / LightlyStudio): schema.json + per-image JSON",
    capabilities=Capabilities(annotation_types=KINDS, prediction_types=KINDS),
    read=LazyFunction(f"{__name__}.read", "read_task_folder"),
    write=LazyFunction(f"{__name__}.write", "write_task_folder"),
    detect=detect_task_folder,
    read_options=LazyFunction(f"{__name__}.options", "LightlyTaskReadOptions"),
    write_options=LazyFunction(f"{__name__}.options", "LightlyTaskWriteOptions"),
    output="directory",
    shards=LazyFunction(f"{__name__}.read", "task_shards"),
)


@hookimpl
def register_formats() -> list[Format]:
    return [FORMAT, TASK_FORMAT]

