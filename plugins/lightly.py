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

import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator

from annobridge.core.errors import ReadError, WriteError
from annobridge.core.formats import Capabilities, Context, Format
from annobridge.core.hookspecs import hookimpl
from annobridge.core.limits import load_json, open_image
from annobridge.core.metadata import (
    MISSING,
    FieldStats,
    check_consistent,
    flatten,
    get_path,
    set_path,
    value_kind,
)
from annobridge.core.model import (
    BoxAnnotation,
    Category,
    CategoryAnnotation,
    Dataset,
    DatasetHeader,
    DatasetItem,
    FrameRef,
    IndexMask,
    KeypointsAnnotation,
    ObjectMaskAnnotation,
    Scene,
    Segment,
    SegmentationAnnotation,
)
from annobridge.core.paths import contained, path_problem, safe_name

logger = logging.getLogger(__name__)

WRITE_VALUE_TYPES = ("NUMERIC_INT", "NUMERIC_FLOAT", "CATEGORICAL_INT", "CATEGORICAL_STRING",
                     "CATEGORICAL_BOOLEAN")
"""The five ``valueDataType``\\ s of the datasource metadata docs (written)."""
READ_VALUE_TYPES = WRITE_VALUE_TYPES + ("CATEGORICAL_DATETIME", "CATEGORICAL_TIMESTAMP", "OTHER_STRING")
"""Also accepted on reading: the three further values of the Platform API enum."""

TASK_TYPES = ("object-detection", "classification", "semantic-segmentation",
              "instance-segmentation", "keypoint-detection")
KIND_TASK = {"box": "object-detection", "category": "classification",
             "segmentation": "semantic-segmentation", "object_mask": "instance-segmentation",
             "keypoints": "keypoint-detection"}
DEFAULT_TASK_NAMES = {"object-detection": "object_detection", "classification": "classification",
                      "semantic-segmentation": "semantic_segmentation",
                      "instance-segmentation": "instance_segmentation",
                      "keypoint-detection": "keypoint_detection"}
KINDS = frozenset(KIND_TASK)

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"})
_FRAME_RE = re.compile(r"^(?P<video>.+)-(?P<index>\d+)-(?P<ext>[A-Za-z0-9]+)\.png$")
_DEFAULTS = {"NUMERIC_INT": 0, "NUMERIC_FLOAT": 0.0, "CATEGORICAL_STRING": "undefined",
             "CATEGORICAL_BOOLEAN": False, "CATEGORICAL_INT": 0}


# --------------------------------------------------------------------------- fast construction

_DEFAULTS_CACHE: dict[type, list[tuple[str, Any, bool]]] = {}


def _build(cls: Any, **fields: Any) -> Any:
    """``cls.model_construct`` with every field given: pydantic's own default lookup is slow."""
    spec = _DEFAULTS_CACHE.get(cls)
    if spec is None:
        spec = []
        for name, info in cls.model_fields.items():
            if info.default_factory is not None:
                spec.append((name, info.default_factory, True))
            else:
                spec.append((name, info.default, False))
        _DEFAULTS_CACHE[cls] = spec
    for name, default, factory in spec:
        if name not in fields:
            fields[name] = default() if factory else default
    return cls.model_construct(**fields)


# --------------------------------------------------------------------------- RLE


def rle_encode(mask: np.ndarray) -> list[int]:
    """Lightly RLE of a 2D binary mask: row-major runs, starting with the number of 0s.

    ``[[0,0,1,1],[0,1,1,1],[0,0,0,1]]`` -> ``[2, 2, 1, 3, 3, 1]``; no size is stored.
    """
    flat = np.asarray(mask).ravel(order="C").astype(bool)
    if flat.size == 0:
        return []
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    runs = np.diff(bounds).tolist()
    if flat[0]:
        runs.insert(0, 0)
    return [int(r) for r in runs]


def rle_decode(counts: list[int], height: int, width: int) -> np.ndarray:
    """Decode Lightly RLE to a ``(height, width)`` uint8 0/1 array.

    Raises:
        ValueError: the counts are not non-negative ints or do not sum to height x width.
    """
    if any(not isinstance(c, int) or isinstance(c, bool) or c < 0 for c in counts):
        raise ValueError("segmentation counts must be integers >= 0")
    total = sum(counts)
    if total != height * width:
        raise ValueError(f"segmentation counts sum to {total}, expected height x width = "
                         f"{height} x {width} = {height * width}")
    values = np.zeros(len(counts), dtype=np.uint8)
    values[1::2] = 1
    return np.repeat(values, counts).reshape(height, width)


# --------------------------------------------------------------------------- names


def split_ext(file_name: str) -> tuple[str, str]:
    """``("subdir/a.b", ".png")`` for ``subdir/a.b.png``: split at the last dot of the name."""
    head, sep, name = file_name.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return file_name, ""
    return f"{head}{sep}{stem}", f".{ext}"


def frame_file_name(video_file_name: str, index: int, n_frames: int) -> str:
    """``subdir/video_1-099-mp4.png`` for frame 99 of a 200-frame ``subdir/video_1.mp4``."""
    stem, ext = split_ext(video_file_name)
    width = len(str(n_frames))
    return f"{stem}-{index:0{width}d}-{ext.lstrip('.')}.png"


def parse_frame_file_name(file_name: str) -> tuple[str, int, int] | None:
    """``(video file name, frame index, padding digits)``, or None if not a frame name."""
    m = _FRAME_RE.match(file_name)
    if m is None:
        return None
    return f"{m['video']}.{m['ext']}", int(m["index"]), len(m["index"])


def _json_rel(file_name: str) -> str:
    return split_ext(file_name)[0] + ".json"


# --------------------------------------------------------------------------- options


def _parse_frames(value: Any) -> Any:
    if isinstance(value, str):
        out: dict[str, int] = {}
        for part in filter(None, (p.strip() for p in value.split(","))):
            name, sep, n = part.rpartition("=")
            if not sep or not n.strip().isdigit():
                raise ValueError(f"{part!r}: expected VIDEO=N_FRAMES, e.g. subdir/video_1.mp4=200")
            out[name.strip()] = int(n)
        return out
    return value


class LightlyReadOptions(BaseModel):
    """Options for reading ``lightly``.

    Args:
        input: the input datasource root (media files); enables media checks and sizes.
        fill_defaults: fill schema defaults for missing/null schema paths (Worker behaviour).
        frames: frame counts per video file name, ``"a.mp4=200,b/c.mp4=99"``.
        as_annotations: read predictions as ground truth.
    """

    model_config = ConfigDict(extra="forbid")
    input: Path | None = None
    fill_defaults: bool = True
    frames: dict[str, int] = {}
    as_annotations: bool = False

    _frames = field_validator("frames", mode="before")(classmethod(lambda cls, v: _parse_frames(v)))


class LightlyWriteOptions(BaseModel):
    """Options for writing ``lightly``.

    Args:
        schema_file: a metadata ``schema.json`` whose entries override names, types and defaults.
        score: score written for ground truth and unscored predictions; without it ground
            truth is dropped (reported) and an unscored prediction is an error.
        task: task name for predictions without ``attributes["lightly_task"]`` (one kind).
        frames: frame counts per video file name, ``"a.mp4=200"``.
        input: root the image locations are made relative to, for ``file_name``.
        video_extension: extension of videos whose scene has no ``file_name`` attribute.
    """

    model_config = ConfigDict(extra="forbid")
    schema_file: Path | None = None
    score: float | None = None
    task: str | None = None
    frames: dict[str, int] = {}
    input: Path | None = None
    video_extension: str = "mp4"

    _frames = field_validator("frames", mode="before")(classmethod(lambda cls, v: _parse_frames(v)))

    @field_validator("score")
    @classmethod
    def _unit(cls, v: float | None) -> float | None:
        if v is not None and not 0.0 <= v <= 1.0:
            raise ValueError(f"a score lies in 0..1, got {v}")
        return v


class LightlyTaskReadOptions(BaseModel):
    """Options for reading ``lightly-task``: ``images`` folder (default ``../images``),
    ``as_annotations`` to read the predictions as ground truth."""

    model_config = ConfigDict(extra="forbid")
    images: Path | None = None
    as_annotations: bool = False


class LightlyTaskWriteOptions(BaseModel):
    """Options for writing ``lightly-task``: ``task_type`` to pick the one task written,
    ``score`` as for ``lightly``, ``input`` root for relative ``file_name``\\ s."""

    model_config = ConfigDict(extra="forbid")
    task_type: Literal["object-detection", "classification", "semantic-segmentation",
                       "instance-segmentation", "keypoint-detection"] | None = None
    score: float | None = None
    input: Path | None = None

    @field_validator("score")
    @classmethod
    def _unit(cls, v: float | None) -> float | None:
        if v is not None and not 0.0 <= v <= 1.0:
            raise ValueError(f"a score lies in 0..1, got {v}")
        return v


# --------------------------------------------------------------------------- JSON helpers


def _load_json(path: Path, base: Path | None = None) -> Any:
    return load_json(path.read_bytes(), file=path)  # finite numbers, bounded ints and depth


def _json_files(folder: Path, skip_top: frozenset[str] = frozenset()) -> dict[str, Path]:
    """``relative stem -> path`` of every ``*.json`` below ``folder`` (sorted walk)."""
    out: dict[str, Path] = {}
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        rel_root = os.path.relpath(root, folder)
        for name in sorted(files):
            if not name.endswith(".json"):
                continue
            rel = name if rel_root == "." else f"{rel_root}/{name}".replace(os.sep, "/")
            if rel in skip_top:
                continue
            out[rel[: -len(".json")]] = Path(root) / name
    return out


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# --------------------------------------------------------------------------- metadata schema


@dataclass
class SchemaEntry:
    """One ``schema.json`` entry."""

    name: str
    path: str
    value_type: str
    default: Any = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "path": self.path}
        if self.default is not None:
            out["defaultValue"] = self.default
        out["valueDataType"] = self.value_type
        return out


def value_fits(value_type: str, value: Any) -> bool:
    """Whether ``value`` has the Python type a ``valueDataType`` implies."""
    if value_type in ("NUMERIC_INT", "CATEGORICAL_INT"):
        return _is_int(value)
    if value_type in ("NUMERIC_FLOAT", "CATEGORICAL_TIMESTAMP"):
        return _is_num(value)
    if value_type == "CATEGORICAL_BOOLEAN":
        return isinstance(value, bool)
    return isinstance(value, str)


def read_metadata_schema(path: Path) -> list[SchemaEntry]:
    """Parse a metadata ``schema.json``.

    Raises:
        ReadError: not a list of entries, a missing ``path``/``valueDataType``, an unknown
            ``valueDataType`` or a ``defaultValue`` of the wrong type (names the entry).
    """
    data = _load_json(path)
    if not isinstance(data, list):
        raise ReadError(f"expected a JSON list of schema entries, got {value_kind(data)}", file=path,
                        fix='each entry: {"name", "path", "defaultValue", "valueDataType"}')
    entries = []
    for n, e in enumerate(data):
        where = f"#/{n}"
        if not isinstance(e, dict):
            raise ReadError(f"expected an object, got {value_kind(e)}", file=path, where=where)
        p = e.get("path")
        if not isinstance(p, str) or not p:
            raise ReadError("entry has no string 'path'", file=path, where=where)
        vt = e.get("valueDataType")
        if vt not in READ_VALUE_TYPES:
            raise ReadError(f"unknown valueDataType {vt!r}", file=path, where=f"{where}/valueDataType",
                            fix="use one of " + ", ".join(WRITE_VALUE_TYPES))
        default = e.get("defaultValue")
        if default is not None and not value_fits(vt, default):
            raise ReadError(f"defaultValue {default!r} is not a valid {vt} value", file=path,
                            where=f"{where}/defaultValue")
        name = e.get("name") if isinstance(e.get("name"), str) else p
        entries.append(SchemaEntry(name, p, vt, default))
    return entries


def build_metadata_schema(fields: dict[str, FieldStats], given: list[SchemaEntry]) -> list[SchemaEntry]:
    """Schema entries for the typed leaves in ``fields``; ``given`` entries win for their path.

    Raises:
        WriteError: data at a given path does not fit its ``valueDataType``.
    """
    by_path = {e.path: e for e in given}
    out: list[SchemaEntry] = []
    for path, fs in sorted(fields.items()):
        inferred = fs.inferred
        entry = by_path.pop(path, None)
        if entry is not None:
            bad = _misfit(entry.value_type, fs)
            if bad:
                raise WriteError(f'metadata key "{path}" is declared {entry.value_type} but holds '
                                 f'{bad[0]} on item "{bad[1]}"',
                                 fix="change the schema or the values")
            out.append(entry)
            continue
        vt = {"numeric-int": "NUMERIC_INT", "numeric-float": "NUMERIC_FLOAT",
              "categorical": "CATEGORICAL_STRING", "text": "CATEGORICAL_STRING",
              "boolean": "CATEGORICAL_BOOLEAN"}.get(inferred)
        if vt is not None:
            out.append(SchemaEntry(path, path, vt, _DEFAULTS[vt]))
    out.extend(by_path.values())  # given entries without values: kept
    return out


def _misfit(value_type: str, fs: FieldStats) -> tuple[str, str] | None:
    for kind, owner in fs.examples.items():
        if kind == "null":
            continue
        if kind == "numeric":
            ok = value_type in ("NUMERIC_FLOAT", "CATEGORICAL_TIMESTAMP") or (
                value_type in ("NUMERIC_INT", "CATEGORICAL_INT") and fs.all_int)
            label = "a number" if not ok or fs.all_int else "a float"
            if not ok:
                return ("a float" if not fs.all_int else label), owner
        elif kind == "string":
            if value_type not in ("CATEGORICAL_STRING", "OTHER_STRING", "CATEGORICAL_DATETIME"):
                return "a string", owner
        elif kind == "boolean":
            if value_type != "CATEGORICAL_BOOLEAN":
                return "a boolean", owner
        else:
            return f"a {kind}", owner
    return None


def fill_defaults(metadata: dict[str, Any], schema: list[SchemaEntry],
                  filled: Counter[str] | None = None) -> dict[str, Any]:
    """``metadata`` with every unresolvable or null schema path set to its default; each
    path filled is counted in ``filled``."""
    out = metadata
    for e in schema:
        if e.default is None:
            continue
        current = get_path(out, e.path)
        if current is MISSING or current is None:
            if out is metadata:
                out = json.loads(json.dumps(metadata))
            try:
                set_path(out, e.path, e.default)
                if filled is not None:
                    filled[e.path] += 1
            except ValueError:
                logger.debug("schema path %s cannot be set in %r", e.path, metadata)
    return out


# --------------------------------------------------------------------------- predictions: read


@dataclass
class TaskSchema:
    """One task's ``schema.json``: its type and categories (id order kept)."""

    name: str
    task_type: str
    categories: list[dict[str, Any]]

    @property
    def by_id(self) -> dict[int, dict[str, Any]]:
        return {c["id"]: c for c in self.categories}

    def sorted_names(self) -> list[str]:
        return [c["name"] for c in sorted(self.categories, key=lambda c: c["id"])]


def read_task_schema(path: Path, name: str) -> TaskSchema:
    """Parse ``<task>/schema.json``.

    Raises:
        ReadError: missing file, unknown ``task_type``, bad or duplicate category ids.
    """
    if not path.is_file():
        raise ReadError(f"task {name!r} has no schema.json", file=path,
                        fix='write {"task_type": ..., "categories": [{"id": 0, "name": ...}]} there')
    data = _load_json(path)
    if not isinstance(data, dict):
        raise ReadError(f"expected a JSON object, got {value_kind(data)}", file=path)
    tt = data.get("task_type")
    if tt not in TASK_TYPES:
        raise ReadError(f"unknown task_type {tt!r}", file=path, where="#/task_type",
                        fix="use one of " + ", ".join(TASK_TYPES))
    cats = data.get("categories")
    if not isinstance(cats, list):
        raise ReadError("'categories' must be a list of {id, name}", file=path, where="#/categories")
    seen: set[int] = set()
    for n, c in enumerate(cats):
        where = f"#/categories/{n}"
        if not isinstance(c, dict) or not _is_int(c.get("id")) or c["id"] < 0:
            raise ReadError("category needs an integer id >= 0", file=path, where=where)
        if not isinstance(c.get("name"), str) or not c["name"]:
            raise ReadError("category needs a non-empty name", file=path, where=where)
        if c["id"] in seen:
            raise ReadError(f"category id {c['id']} appears twice", file=path, where=where)
        seen.add(c["id"])
        names = c.get("keypointNames", c.get("keypoint_names"))
        if names is not None and (not isinstance(names, list) or not all(isinstance(x, str) for x in names)
                                  or len(set(names)) != len(names)):
            raise ReadError("keypointNames must be a list of distinct strings", file=path, where=where)
        skeleton = c.get("keypointSkeleton", c.get("keypoint_skeleton"))
        if skeleton is not None:
            k = len(names) if names is not None else None
            if not isinstance(skeleton, list) or not all(
                    isinstance(e, list) and len(e) == 2 and all(_is_int(i) and i >= 0 and (k is None or i < k)
                                                                for i in e) for e in skeleton):
                raise ReadError("keypointSkeleton must be a list of [i, j] pairs of 0-based keypoint indices",
                                file=path, where=where)
    return TaskSchema(name, tt, cats)


def _category(task: TaskSchema, cid: Any, file: Path, where: str) -> dict[str, Any]:
    if not _is_int(cid) or cid not in task.by_id:
        raise ReadError(f"category_id {cid!r} is not in the schema of task {task.name!r}",
                        file=file, where=where, fix="add the category to the task's schema.json")
    return task.by_id[cid]


def _class_pdf(task: TaskSchema, probs: Any, file: Path, where: str) -> dict[str, float] | None:
    if probs is None:
        return None
    names = task.sorted_names()
    if not isinstance(probs, list) or len(probs) != len(names) or not all(_is_num(p) for p in probs):
        raise ReadError(f"probabilities must be {len(names)} numbers (one per category, by id), "
                        f"got {probs!r}", file=file, where=where)
    return {n: float(p) for n, p in zip(names, probs)}


def _score(s: Any, file: Path, where: str, required: bool) -> float | None:
    if s is None:
        if required:
            raise ReadError("prediction has no score", file=file, where=where,
                            fix="add a score in 0..1")
        return None
    if not _is_num(s) or not 0 <= s <= 1:
        raise ReadError(f"score must be a number in 0..1, got {s!r}", file=file, where=where)
    return float(s)


def _bbox(b: Any, file: Path, where: str) -> list[float]:
    if not isinstance(b, list) or len(b) != 4 or not all(_is_num(v) for v in b):
        raise ReadError(f"bbox must be 4 numbers [x, y, w, h], got {b!r}", file=file, where=where)
    if b[2] < 0 or b[3] < 0:
        raise ReadError(f"bbox width and height must be >= 0, got {b!r}", file=file, where=where)
    return b


def parse_predictions(task: TaskSchema, singles: list[Any], file: Path, ref: str,
                      size: tuple[int, int] | None) -> list[Any]:
    """Canonical annotations of one prediction file's singletons for ``task``.

    ``size`` is ``(width, height)`` (needed for segmentation). Raises ReadError naming file
    and ``#/predictions/<n>``.
    """
    out: list[Any] = []
    tt = task.task_type
    seg_mask: np.ndarray | None = None
    segments: list[Segment] = []
    for n, s in enumerate(singles):
        where = f"#/predictions/{n}"
        if not isinstance(s, dict):
            raise ReadError(f"expected an object, got {value_kind(s)}", file=file, where=where)
        cat = _category(task, s.get("category_id"), file, f"{where}/category_id")
        label = cat["name"]
        pdf = _class_pdf(task, s.get("probabilities"), file, f"{where}/probabilities")
        common: dict[str, Any] = {"reference_id": ref, "attributes": {"lightly_task": task.name}}
        if pdf is not None:
            common["class_pdf"] = pdf
        if tt == "object-detection":
            x, y, w, h = _bbox(s.get("bbox"), file, f"{where}/bbox")
            conf = _score(s.get("score"), file, f"{where}/score", False)
            box = _build(BoxAnnotation, label=label, x=x, y=y, width=w, height=h, confidence=conf, **common)
            box.annotation_id = f"{task.name}-{n}"
            out.append(box)
        elif tt == "classification":
            conf = _score(s.get("score"), file, f"{where}/score", False)
            out.append(_build(CategoryAnnotation, label=label, confidence=conf,
                              annotation_id=f"{task.name}-{n}", **common))
        elif tt in ("semantic-segmentation", "instance-segmentation"):
            if size is None:
                raise ReadError("segmentation needs the image size, which is unknown", file=file,
                                where=where, fix="pass the input datasource with --option input=DIR")
            counts = s.get("segmentation")
            if not isinstance(counts, list):
                raise ReadError("segmentation must be a list of run lengths", file=file,
                                where=f"{where}/segmentation")
            try:
                binary = rle_decode(counts, size[1], size[0])
            except ValueError as exc:
                raise ReadError(str(exc), file=file, where=f"{where}/segmentation") from exc
            conf = _score(s.get("score"), file, f"{where}/score", False)
            if tt == "semantic-segmentation":
                if seg_mask is None:
                    seg_mask = np.zeros((size[1], size[0]), dtype=np.uint32)
                index = len(segments) + 1
                seg_mask[binary.astype(bool)] = index
                attrs: dict[str, Any] = {}
                if conf is not None:
                    attrs["score"] = conf
                if pdf is not None:
                    attrs["probabilities"] = pdf
                segments.append(_build(Segment, label=label, index=index, metadata={}, attributes=attrs))
            else:
                attrs = dict(common["attributes"])
                if "bbox" in s:
                    attrs["bbox"] = _bbox(s.get("bbox"), file, f"{where}/bbox")
                common["attributes"] = attrs
                ann = ObjectMaskAnnotation.from_array(binary, label=label, confidence=conf, **common)
                ann.annotation_id = f"{task.name}-{n}"
                out.append(ann)
        else:  # keypoint-detection
            kp = s.get("keypoints")
            if not isinstance(kp, list) or len(kp) < 3 or len(kp) % 3 or not all(_is_num(v) for v in kp):
                raise ReadError(f"keypoints must be [x, y, s] triplets, got {kp!r}", file=file,
                                where=f"{where}/keypoints")
            k = len(kp) // 3
            names = cat.get("keypointNames") or cat.get("keypoint_names") or [str(i) for i in range(k)]
            if len(names) != k:
                raise ReadError(f"{k} keypoints but category {label!r} names {len(names)}", file=file,
                                where=f"{where}/keypoints")
            skeleton = cat.get("keypointSkeleton") or cat.get("keypoint_skeleton")
            flat: list[float] = []
            scores: list[float] = []
            for i in range(0, len(kp), 3):
                x, y, sc = kp[i], kp[i + 1], kp[i + 2]
                v = 0 if x == 0 and y == 0 and sc == 0 else 2
                flat.extend((x, y, v))
                scores.append(sc)
            attrs = dict(common["attributes"], keypoint_scores=scores)
            if "bbox" in s:
                attrs["bbox"] = _bbox(s.get("bbox"), file, f"{where}/bbox")
            common["attributes"] = attrs
            conf = _score(s.get("score"), file, f"{where}/score", False)
            out.append(_build(
                KeypointsAnnotation, label=label, keypoints=flat, names=list(names),
                skeleton=[tuple(e) for e in skeleton] if skeleton else None,
                confidence=conf, annotation_id=f"{task.name}-{n}", **common))
    if seg_mask is not None:
        scores = {seg.attributes.get("score") for seg in segments}
        seg_conf = scores.pop() if len(scores) == 1 else None
        if seg_conf is not None:  # one score for every segment: the segmentation's confidence
            for seg in segments:
                del seg.attributes["score"]
        out.append(_build(
            SegmentationAnnotation, mask=IndexMask.from_array(seg_mask), annotations=segments, reference_id=ref,
            annotation_id=f"{task.name}-seg", attributes={"lightly_task": task.name}, confidence=seg_conf))
    return out


def _json_object(path: Path) -> dict[str, Any]:
    data = _load_json(path)
    if not isinstance(data, dict):
        raise ReadError(f"expected a JSON object, got {value_kind(data)}", file=path)
    return data


def _file_name_of(data: dict[str, Any], path: Path, what: str) -> str:
    fn = data.get("file_name")
    if not isinstance(fn, str) or not fn:
        raise ReadError(f"{what} file has no 'file_name'", file=path,
                        fix="add the media path relative to the input datasource, e.g. subdir/image_1.png")
    return fn


def _prediction_file(path: Path, task: TaskSchema) -> tuple[str, list[Any]]:
    data = _json_object(path)
    fn = _file_name_of(data, path, "prediction")
    preds = data.get("predictions")
    if not isinstance(preds, list):
        raise ReadError("'predictions' must be a list", file=path, where="#/predictions")
    return fn, preds


def _image_size(path: Path | None) -> tuple[int, int] | None:
    """The image's header size; None when it is missing or unreadable (the size is informative)."""
    if path is None or not path.is_file():
        return None
    try:
        with open_image(path) as img:
            return img.size
    except ReadError:
        return None


# --------------------------------------------------------------------------- read: lightly


@dataclass
class _Entry:
    """What the folder holds for one media file (stem = file name without extension)."""

    stem: str
    metadata_file: Path | None = None
    prediction_files: list[tuple[TaskSchema, Path]] = field(default_factory=list)


def _resolve_folder(path: Path) -> Path:
    if (path / "metadata").is_dir() or (path / "predictions").is_dir():
        return path
    if (path / ".lightly").is_dir():
        raise ReadError("this is the datasource root, not the .lightly folder", file=path,
                        fix=f"read {path / '.lightly'} and pass --option input={path}")
    raise ReadError("not a .lightly folder: it has neither metadata/ nor predictions/", file=path)


def read(path: Path, options: LightlyReadOptions, context: Context) -> Dataset:
    """Read a ``.lightly`` folder; the schemas are read now, the per-file JSON lazily."""
    folder = _resolve_folder(path)
    info: dict[str, Any] = {}
    schema: list[SchemaEntry] = []
    entries: dict[str, _Entry] = {}
    md_dir = folder / "metadata"
    if md_dir.is_dir():
        schema_path = md_dir / "schema.json"
        if not schema_path.is_file():
            raise ReadError("metadata folder has no schema.json", file=md_dir,
                            fix="write a schema.json listing each metadata path and valueDataType")
        schema = read_metadata_schema(schema_path)
        info["metadata_schema"] = [e.to_json() for e in schema]
        for stem, p in _json_files(md_dir, frozenset({"schema.json"})).items():
            entries.setdefault(stem, _Entry(stem)).metadata_file = p
    tasks: list[TaskSchema] = []
    pred_dir = folder / "predictions"
    if pred_dir.is_dir():
        tasks_path = pred_dir / "tasks.json"
        if not tasks_path.is_file():
            raise ReadError("predictions folder has no tasks.json", file=pred_dir,
                            fix='write the task names there: ["my_task"]')
        names = _load_json(tasks_path)
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise ReadError("tasks.json must be a list of task names", file=tasks_path)
        for name in names:
            contained(pred_dir, name, what="task name", file=tasks_path)
            if not (pred_dir / name).is_dir():
                raise ReadError(f"task {name!r} is listed but has no folder", file=tasks_path,
                                fix=f"create {pred_dir / name}/schema.json or remove the task")
            try:
                tasks.append(read_task_schema(pred_dir / name / "schema.json", name))
            except ReadError as exc:
                if exc.problem.startswith("task "):
                    raise ReadError(f"task {name!r} listed in tasks.json has no schema.json",
                                    file=tasks_path, fix=f"create {pred_dir / name / 'schema.json'}") from None
                raise
        info["tasks"] = {t.name: {"task_type": t.task_type, "categories": t.categories} for t in tasks}
        for t in tasks:
            for stem, p in _json_files(pred_dir / t.name, frozenset({"schema.json"})).items():
                entries.setdefault(stem, _Entry(stem)).prediction_files.append((t, p))
    input_root = options.input
    if input_root is not None:
        if not input_root.is_dir():
            raise ReadError("input datasource folder does not exist", file=input_root)
        media: dict[str, str] = {}
        for stem, fn in _media_files(input_root, folder):
            if stem in media:
                raise ReadError(f"media files {media[stem]!r} and {fn!r} share the Lightly file name {stem}.json",
                                file=input_root, fix="rename one of them")
            media[stem] = fn
            entries.setdefault(stem, _Entry(stem))
    header = DatasetHeader(categories=_header_categories(tasks), info={"lightly": info} if info else {})
    base = input_root if input_root is not None else folder.parent
    origins = _load_json(folder / ORIGINS_FILE).get("items", {}) if (folder / ORIGINS_FILE).is_file() else {}
    return Dataset(header=header, items=_read_items(folder, entries, schema, tasks, options, base, header, context,
                                                    origins))


def _media_files(root: Path, skip: Path) -> Iterator[tuple[str, str]]:
    skip = skip.resolve()
    for r, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if (Path(r) / d).resolve() != skip and not d.startswith("."))
        for name in sorted(files):
            ext = os.path.splitext(name)[1].lower()
            if ext in IMAGE_EXTENSIONS or ext in VIDEO_EXTENSIONS:
                rel = os.path.relpath(Path(r) / name, root).replace(os.sep, "/")
                yield split_ext(rel)[0], rel


def _header_categories(tasks: list[TaskSchema]) -> list[Category]:
    out: dict[str, Category] = {}
    ids: set[int] = set()
    for t in tasks:
        for c in sorted(t.categories, key=lambda c: c["id"]):
            if c["name"] in out or c["id"] in ids:
                continue
            kp = c.get("keypointNames") or c.get("keypoint_names")
            sk = c.get("keypointSkeleton") or c.get("keypoint_skeleton")
            out[c["name"]] = Category(id=c["id"], name=c["name"], keypoints=kp,
                                      skeleton=[tuple(e) for e in sk] if sk else None)
            ids.add(c["id"])
    return sorted(out.values(), key=lambda c: c.id)


def _read_items(folder: Path, entries: dict[str, _Entry], schema: list[SchemaEntry],
                tasks: list[TaskSchema], options: LightlyReadOptions, base: Path,
                header: DatasetHeader, context: Context,
                origins: dict[str, dict[str, Any]]) -> Iterator[DatasetItem]:
    frame_widths: dict[str, tuple[int, str]] = {}
    videos: dict[str, dict[str, Any]] = {}  # video reference id -> its file's own metadata
    filled: Counter[str] = Counter()
    for stem in sorted(entries):  # a video's stem sorts before its frames' (it is their prefix)
        entry = entries[stem]
        try:
            result = _read_entry(entry, schema, options, base, header, frame_widths, filled, videos)
        except ReadError as exc:
            context.error(exc)
            continue
        if result is None:
            continue
        item, predictions = result
        origin = origins.get(item.attributes.get("file_name")) if item.scene is None else None
        if isinstance(origin, dict):  # written by annobridge: what file_name cannot say
            item.reference_id = origin.get("reference_id", item.reference_id)
            item.image_location = origin.get("image_location", item.image_location)
            if item.width is None and _is_int(origin.get("width")) and _is_int(origin.get("height")):
                item.width, item.height = origin["width"], origin["height"]  # decodes mask RLE
        if predictions:
            size = (item.width, item.height) if item.width is not None and item.height is not None else None
            anns: list[Any] = []
            for task, p in predictions:
                try:
                    fn, singles = _prediction_file(p, task)
                    _check_mirror(p, entry.stem, fn)
                    if fn != item.attributes.get("file_name"):
                        raise ReadError(f"file_name {fn!r} differs from the metadata file's "
                                        f"{item.attributes.get('file_name')!r}", file=p, where="#/file_name")
                    anns.extend(parse_predictions(task, singles, p, item.reference_id, size))
                except ReadError as exc:
                    context.error(exc)
            item.attributes["lightly_tasks"] = [task.name for task, _ in predictions]
            field_name = "annotations" if options.as_annotations else "predictions"
            setattr(item, field_name, anns)
        yield item
    if filled:  # the Worker's behaviour, but not what the files say: counted
        context.report.notes.append(
            f"filled schema defaults (fill-defaults=true) for {sum(filled.values())} values: "
            + ", ".join(f"{path} {n}" for path, n in sorted(filled.items())))


def _inherit(own: dict[str, Any], video: dict[str, Any]) -> dict[str, Any]:
    """A frame's metadata: its own values, and the video's for the keys (nested too) it lacks."""
    out = dict(video)
    for key, value in own.items():
        out[key] = _inherit(value, video[key]) if isinstance(value, dict) and isinstance(video.get(key), dict) else value
    return out


def _own(frame: dict[str, Any], video: dict[str, Any]) -> dict[str, Any]:
    """What :func:`_inherit` cannot derive: the frame's values that differ from its video's,
    so a frame file does not repeat the video-level file."""
    out: dict[str, Any] = {}
    for key, value in frame.items():
        if key in video and video[key] == value:
            continue
        if isinstance(value, dict) and isinstance(video.get(key), dict):
            value = _own(value, video[key])
            if not value:  # only the video's values: nothing of its own
                continue
        out[key] = value
    return out


def _check_mirror(path: Path, stem: str, file_name: str) -> None:
    rel = stem + ".json"
    expected = _json_rel(file_name)
    if rel != expected:
        raise ReadError(f"file is at {rel!r} but its file_name {file_name!r} puts it at {expected!r}",
                        file=path, where="#/file_name",
                        fix="the JSON path must mirror the media path with .json as extension")


def _read_entry(entry: _Entry, schema: list[SchemaEntry], options: LightlyReadOptions, base: Path,
                header: DatasetHeader, frame_widths: dict[str, tuple[int, str]],
                filled: Counter[str] | None = None, videos: dict[str, dict[str, Any]] | None = None
                ) -> tuple[DatasetItem, list[tuple[TaskSchema, Path]]] | None:
    kind = None
    metadata: dict[str, Any] = {}
    file_name: str | None = None
    if entry.metadata_file is not None:
        p = entry.metadata_file
        data = _json_object(p)
        file_name = _file_name_of(data, p, "metadata")
        kind = data.get("type")
        if kind not in ("image", "video", "frame"):
            raise ReadError(f"type must be 'image', 'video' or 'frame', got {kind!r}", file=p, where="#/type")
        metadata = data.get("metadata", {})
        if not isinstance(metadata, dict):
            raise ReadError(f"'metadata' must be an object, got {value_kind(metadata)}", file=p, where="#/metadata")
        _check_mirror(p, entry.stem, file_name)
        for e in schema:
            v = get_path(metadata, e.path)
            if v is not MISSING and v is not None and not value_fits(e.value_type, v):
                raise ReadError(f"metadata {e.path!r} is {v!r}, not a {e.value_type} value as the schema says",
                                file=p, where="#/metadata/" + e.path.replace(".", "/"))
    elif entry.prediction_files:
        task, p = entry.prediction_files[0]
        file_name, _ = _prediction_file(p, task)
    else:  # a media file of the input datasource without any .lightly file
        file_name = _find_media(base, entry.stem)
    frame = parse_frame_file_name(file_name) if kind in (None, "frame") else None
    if kind is None:
        ext = split_ext(file_name)[1].lower()
        kind = "video" if ext in VIDEO_EXTENSIONS else ("frame" if frame else "image")
    if kind == "frame" and frame is None:
        raise ReadError(f"frame file_name {file_name!r} is not <video>-<frame>-<ext>.png", file=entry.metadata_file,
                        where="#/file_name", fix="name frames like subdir/video_1-099-mp4.png")
    if options.input is not None:
        media = file_name if kind != "frame" else frame[0]  # type: ignore[index]
        if not (options.input / media).is_file():
            raise ReadError(f"media file {media!r} does not exist in the input datasource {options.input}",
                            file=entry.metadata_file or entry.prediction_files[0][1], where="#/file_name",
                            fix="remove the stale file or fix file_name")
    if kind == "frame" and videos is not None:  # the video-level file applies to its frames
        metadata = _inherit(metadata, videos.get(split_ext(frame[0])[0], {}))  # type: ignore[index]
    elif kind == "video" and videos is not None:
        videos[split_ext(file_name)[0]] = metadata
    if options.fill_defaults:
        metadata = fill_defaults(metadata, schema, filled)
    if kind == "video":
        ref = split_ext(file_name)[0]
        scene = header.scenes.get(ref) or Scene(reference_id=ref)
        scene.metadata = metadata
        scene.attributes["file_name"] = file_name
        n = options.frames.get(file_name)
        if n is not None:
            scene.attributes["n_frames"] = n
        header.scenes[ref] = scene
        return None
    image = contained(base, file_name, what="file_name", file=entry.metadata_file, item=entry.stem)
    size = _image_size(image) if kind == "image" else None
    item = _build(DatasetItem, 
        reference_id=entry.stem, image_location=str(image), pointcloud_location=None,
        width=size[0] if size else None, height=size[1] if size else None,
        metadata=metadata, attributes={"file_name": file_name}, annotations=[], predictions=[], scene=None)
    if kind == "frame":
        video, index, width = frame  # type: ignore[misc]
        ref = split_ext(video)[0]
        n = options.frames.get(video)
        where_file = entry.metadata_file or entry.prediction_files[0][1]
        if n is not None:
            if width != len(str(n)):
                raise ReadError(f"frame number {file_name.rsplit('-', 2)[-2]!r} has {width} digits, expected "
                                f"{len(str(n))} for a video of {n} frames", file=where_file, where="#/file_name",
                                fix="pad the frame number to len(str(number of frames)) digits")
            if index >= n:
                raise ReadError(f"frame {index} is beyond the video's {n} frames", file=where_file)
        else:
            first = frame_widths.setdefault(ref, (width, file_name))
            if first[0] != width:
                raise ReadError(f"frame number padded to {width} digits but {first[1]!r} of the same video "
                                f"uses {first[0]}", file=where_file, where="#/file_name",
                                fix="pad every frame number to len(str(number of frames)) digits")
        if ref not in header.scenes:
            attrs: dict[str, Any] = {"file_name": video}
            if n is not None:
                attrs["n_frames"] = n
            header.scenes[ref] = Scene(reference_id=ref, attributes=attrs)
        item.scene = FrameRef(scene_reference_id=ref, index=index)
    return item, entry.prediction_files


def _find_media(base: Path, stem: str) -> str:
    parent = (base / stem).parent
    name = Path(stem).name
    for cand in sorted(parent.iterdir()):
        if cand.stem == name and cand.suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS:
            return os.path.relpath(cand, base).replace(os.sep, "/")
    raise ReadError("media file vanished while reading", file=base / stem)


def detect(path: Path) -> bool:
    return path.is_dir() and ((path / "metadata" / "schema.json").is_file()
                              or (path / "predictions" / "tasks.json").is_file())


# --------------------------------------------------------------------------- write: predictions


class _Tasks:
    """Task names, types and categories decided while writing, and the per-file payloads."""

    def __init__(self, header: DatasetHeader, known: dict[str, Any], default_name: str | None) -> None:
        self.header_ids = {c.name: c.id for c in header.categories}
        self.header_cats = {c.name: c for c in header.categories}
        self.known = known
        self.default_name = default_name
        self.force_name: str | None = None  # lightly-task: every prediction goes to one task
        self.tasks: dict[str, TaskSchema] = {}
        self.pdf_written: set[str] = set()  # tasks whose category list is fixed for vectors
        self._vectors: dict[str, bool] = {}  # tasks for which a probability vector was written

    def task_for(self, ann: Any) -> TaskSchema:
        tt = KIND_TASK[ann.type]
        name = ann.attributes.get("lightly_task") if isinstance(ann.attributes, dict) else None
        if self.force_name is not None:
            name = self.force_name
        elif not isinstance(name, str) or not name:
            name = self.default_name or DEFAULT_TASK_NAMES[tt]
        if path_problem(name) is not None:  # a task name is a folder under predictions/
            raise WriteError(f"task name {name!r} is not inside predictions/: {path_problem(name)}",
                             item=ann.reference_id, fix="task names are plain folder names")
        task = self.tasks.get(name)
        if task is None:
            given = self.known.get(name)
            cats = [dict(c) for c in given["categories"]] if given and given.get("task_type") == tt else []
            task = self.tasks[name] = TaskSchema(name, tt, cats)
            if cats:
                self.pdf_written.add(name)  # a schema that was read: its category list stays
        elif task.task_type != tt:
            raise WriteError(f"task {name!r} would hold both {task.task_type} and {tt} predictions",
                             item=ann.reference_id, fix="give each kind its own task name")
        return task

    def category_id(self, task: TaskSchema, label: str) -> int:
        for c in task.categories:
            if c["name"] == label:
                return c["id"]
        if task.name in self.pdf_written and self._vectors.get(task.name):
            raise _LateLabel(f"label {label!r} is not among the categories of task {task.name!r}, whose "
                             "probability vectors were already written; list every label in the header "
                             "categories to keep it")
        used = {c["id"] for c in task.categories}
        cid = self.header_ids.get(label)
        if cid is None or cid in used:
            cid = max(used | set(self.header_ids.values()), default=-1) + 1
        entry: dict[str, Any] = {"id": cid, "name": label}
        hc = self.header_cats.get(label)
        if task.task_type == "keypoint-detection" and hc is not None and hc.keypoints:
            entry["keypointNames"] = list(hc.keypoints)
            if hc.skeleton:
                entry["keypointSkeleton"] = [list(e) for e in hc.skeleton]
        task.categories.append(entry)
        return cid

    def probabilities(self, task: TaskSchema, pdf: dict[str, float] | None) -> list[float] | None:
        if not pdf:
            return None
        if task.name not in self.pdf_written:  # a new task: every header category, before the first vector
            for name in sorted(self.header_ids, key=self.header_ids.__getitem__):
                self.category_id(task, name)
        for label in pdf:
            self.category_id(task, label)
        self.pdf_written.add(task.name)
        self._vectors[task.name] = True
        return [float(pdf.get(n, 0.0)) for n in task.sorted_names()]


@dataclass
class _Job:
    """Everything needed to encode one item's prediction files (picklable)."""

    file_name: str
    size: tuple[int, int] | None
    singles: dict[str, list[tuple[str, dict[str, Any], Any]]]  # task -> (kind, fields, payload)


def _encode_job(job: _Job) -> tuple[str, dict[str, list[dict[str, Any]]], int]:
    """Build the singletons of one file; masks are encoded here (runs in a worker)."""
    out: dict[str, list[dict[str, Any]]] = {}
    clipped = 0
    for task, singles in job.singles.items():
        rows = out.setdefault(task, [])
        for kind, fields, payload in singles:
            row = dict(fields)
            if kind == "segmentation":
                arr = payload
                row["segmentation"] = rle_encode(arr)
            elif kind == "object_mask":
                arr = payload.to_array()
                row["segmentation"] = rle_encode(arr)
                if "bbox" not in row:
                    ys, xs = np.nonzero(arr)
                    row["bbox"] = ([int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                                    int(ys.max() - ys.min() + 1)] if xs.size else [0, 0, 0, 0])
            if "bbox" in row:
                row["bbox"], c = _clip_box(row["bbox"], job.size)
                clipped += c
            rows.append(_ordered(row))
    return job.file_name, out, clipped


def _ordered(row: dict[str, Any]) -> dict[str, Any]:
    order = ("category_id", "bbox", "keypoints", "segmentation", "score", "probabilities")
    return {k: row[k] for k in order if k in row}


def _clip_box(b: list[float], size: tuple[int, int] | None) -> tuple[list[float], int]:
    x, y, w, h = b
    if x >= 0 and y >= 0 and (size is None or (x + w <= size[0] and y + h <= size[1])):
        return list(b), 0  # inside: untouched (no float noise from recomputing)
    x1, y1 = x + w, y + h
    nx, ny = max(x, 0), max(y, 0)
    if size is not None:
        W, H = size
        nx, ny = min(nx, W), min(ny, H)
        x1, y1 = min(x1, W), min(y1, H)
    return [nx, ny, max(x1 - nx, 0), max(y1 - ny, 0)], 1


class _LateLabel(Exception):
    """A label that would extend a task's categories after probability vectors were written."""


class _PredictionWriter:
    """Turns items' predictions (and ground truth, with a score) into per-task files."""

    def __init__(self, header: DatasetHeader, options: Any, context: Context,
                 default_task: str | None, only_task_type: str | None = None) -> None:
        known = header.info.get("lightly", {}).get("tasks", {}) if isinstance(header.info.get("lightly"), dict) else {}
        self.tasks = _Tasks(header, known, default_task)
        self.options = options
        self.context = context
        self.only = only_task_type
        self.clipped = 0
        self.keypoints_clipped = 0

    def job(self, item: DatasetItem, file_name: str) -> _Job:
        size = (item.width, item.height) if item.width is not None and item.height is not None else None
        singles: dict[str, list[tuple[str, dict[str, Any], Any]]] = {}
        score_opt = self.options.score
        report = self.context.report
        for source, anns in (("gt", item.annotations), ("pred", item.predictions)):
            prefix = "" if source == "gt" else "prediction:"
            for ann in anns:
                if self.only is not None and KIND_TASK.get(ann.type) != self.only:
                    report.drop(prefix + ann.type, f"lightly-task holds one task ({self.only}) only")
                    continue
                if source == "gt" and score_opt is None:
                    report.drop(ann.type, "Lightly holds predictions only; pass --option score=S to "
                                "write ground truth as predictions with score S")
                    continue
                task = self.tasks.task_for(ann)
                conf = ann.confidence if source == "pred" and ann.confidence is not None else (
                    score_opt if source == "gt" else None)
                try:
                    made = list(self._singles(ann, task, conf, item))
                except _LateLabel as exc:  # Lightly vectors have one entry per category, fixed once written
                    report.drop(prefix + ann.type, str(exc))
                    continue
                singles.setdefault(task.name, []).extend(made)
        tasks_seen = item.attributes.get("lightly_tasks") if isinstance(item.attributes, dict) else None
        if self.only is None and isinstance(tasks_seen, list):  # files with an empty list stay
            for name in tasks_seen:
                if name in self.tasks.tasks or name in self.tasks.known:
                    if name not in self.tasks.tasks:
                        given = self.tasks.known[name]
                        self.tasks.tasks[name] = TaskSchema(name, given["task_type"],
                                                            [dict(c) for c in given["categories"]])
                    singles.setdefault(name, [])
        return _Job(file_name, size, singles)

    def _score(self, conf: float | None, ann: Any, required: bool = True) -> dict[str, Any]:
        if conf is None:
            conf = self.options.score
        if conf is None:
            if not required:
                return {}
            raise WriteError(f"a {ann.type} prediction has no confidence and Lightly needs a score",
                             item=ann.reference_id, fix="pass --option score=S to write score S")
        return {"score": conf}

    def _singles(self, ann: Any, task: TaskSchema, conf: float | None, item: DatasetItem
                 ) -> Iterator[tuple[str, dict[str, Any], Any]]:
        t = ann.type
        if t in ("segmentation", "object_mask"):
            shape = ann.mask.load().shape if t == "segmentation" else (ann.size[0], ann.size[1])
            if item.width is not None and item.height is not None and shape != (item.height, item.width):
                raise WriteError(f"{t} mask is {shape[1]}x{shape[0]} but the image is {item.width}x{item.height}; "
                                 "Lightly RLE has no size and is decoded with the image's",
                                 item=item.reference_id, fix="resize the mask to the image")
        if t == "segmentation":
            arr = ann.mask.load()
            for seg in ann.annotations:
                s_conf = seg.attributes.get("score", conf)
                fields = {"category_id": self.tasks.category_id(task, seg.label)}
                fields.update(self._score(s_conf, ann))
                probs = self.tasks.probabilities(task, seg.attributes.get("probabilities"))
                if probs is not None:
                    fields["probabilities"] = probs
                yield "segmentation", fields, (arr == seg.index)
            return
        fields = {"category_id": self.tasks.category_id(task, ann.label)}
        fields.update(self._score(conf, ann, required=t != "category"))
        probs = self.tasks.probabilities(task, ann.class_pdf)
        if probs is not None:
            fields["probabilities"] = probs
        bbox = ann.attributes.get("bbox") if isinstance(ann.attributes, dict) else None
        if t == "box":
            fields["bbox"] = [ann.x, ann.y, ann.width, ann.height]
            yield t, fields, None
        elif t == "category":
            yield t, fields, None
        elif t == "object_mask":
            if isinstance(bbox, list) and len(bbox) == 4:
                fields["bbox"] = list(bbox)
            yield t, fields, ann
        elif t == "keypoints":
            scores = ann.attributes.get("keypoint_scores")
            kp = ann.keypoints
            k = len(kp) // 3
            if not (isinstance(scores, list) and len(scores) == k):
                scores = None
            flat: list[float] = []
            for i in range(k):
                x, y, v = kp[3 * i], kp[3 * i + 1], int(kp[3 * i + 2])
                if v == 0:
                    flat.extend((0, 0, 0.0 if scores is None else scores[i]))
                    continue
                if x < 0 or y < 0:
                    self.keypoints_clipped += 1
                    x, y = max(x, 0), max(y, 0)
                flat.extend((x, y, 1.0 if scores is None else scores[i]))
            fields["keypoints"] = flat
            if isinstance(bbox, list) and len(bbox) == 4:
                fields["bbox"] = list(bbox)
            cats = {c["name"]: c for c in task.categories}
            c = cats.get(ann.label)
            if c is not None and "keypointNames" not in c and "keypoint_names" not in c:
                c["keypointNames"] = list(ann.names)
                if ann.skeleton:
                    c["keypointSkeleton"] = [list(e) for e in ann.skeleton]
            yield t, fields, None

    def finish(self, folder: Path) -> list[str]:
        """Write each task's schema.json; returns the task names."""
        for task in self.tasks.tasks.values():
            task_dir = contained(folder, task.name, what="task name", error=WriteError)
            task_dir.mkdir(parents=True, exist_ok=True)
            cats = sorted(task.categories, key=lambda c: c["id"])
            _write_json(task_dir / "schema.json", {"task_type": task.task_type, "categories": cats})
        if self.clipped:
            self.context.report.drop("prediction:box:clipped",
                                     "box clipped to x, y >= 0 and the image (Lightly refuses values outside)",
                                     self.clipped)
        if self.keypoints_clipped:
            self.context.report.drop("prediction:keypoint:clipped", "keypoint moved to x, y >= 0",
                                     self.keypoints_clipped)
        return list(self.tasks.tasks)


_MADE_DIRS: set[str] = set()


def _write_json(path: Path, data: Any) -> None:
    parent = str(path.parent)
    if parent not in _MADE_DIRS or not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        if len(_MADE_DIRS) > 100_000:
            _MADE_DIRS.clear()
        _MADE_DIRS.add(parent)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(data, ensure_ascii=False) + "\n")


def _staged(root: Path, rel: str) -> Path:
    """``root / rel`` for a file the writer makes; never outside ``root`` (core.paths)."""
    return contained(root, rel, what="file name", error=WriteError)


def _item_file_name(item: DatasetItem, root: Path | None) -> str:
    """The item's Lightly file name; an id that is no safe relative path goes through safe_name."""
    name = _item_file_name_as_given(item, root)
    if path_problem(name) is None:
        return name
    ext = split_ext(name)[1]
    return safe_name(item.reference_id) + (ext if ext.lower() in IMAGE_EXTENSIONS else ".png")


def _item_file_name_as_given(item: DatasetItem, root: Path | None) -> str:
    if root is not None and item.image_location and "://" not in item.image_location:
        try:
            rel = os.path.relpath(Path(item.image_location).resolve(), root.resolve())
            if not rel.startswith(".."):
                return rel.replace(os.sep, "/")
        except ValueError:
            pass
    fn = item.attributes.get("file_name") if isinstance(item.attributes, dict) else None
    if isinstance(fn, str) and fn and split_ext(fn)[0] == item.reference_id:
        return fn
    if split_ext(item.reference_id)[1].lower() in IMAGE_EXTENSIONS:
        return item.reference_id  # the id names the image already: image_1.png -> image_1.json
    ext = Path(item.image_location).suffix if item.image_location else ""
    if not ext or ext.lower() not in IMAGE_EXTENSIONS:
        ext = ".png"
    return item.reference_id + ext


# --------------------------------------------------------------------------- write: lightly


def write(dataset: Dataset, destination: Path, options: LightlyWriteOptions, context: Context) -> None:
    """Write ``destination`` as a ``.lightly`` folder (metadata/ and predictions/ as needed)."""
    destination.mkdir(parents=True, exist_ok=True)
    header = dataset.header
    lightly_info = header.info.get("lightly") if isinstance(header.info.get("lightly"), dict) else {}
    preds = _PredictionWriter(header, options, context, options.task)
    pred_dir = destination / "predictions"
    md_records = MetadataBuffer(destination / ".annobridge-metadata-buffer.jsonl")
    # frames wait for their video's frame count (it sets the width of their file names); they
    # wait as (reference id, scene, frame index, metadata, job), not as whole items
    frames: list[tuple[str, str, int, dict[str, Any], Any]] = []
    names_seen: dict[str, str] = {}
    scene_frames: dict[str, int] = {}
    origins: dict[str, dict[str, Any]] = {}

    def jobs() -> Iterator[_Job]:
        for item in dataset.items:
            if item.scene is not None:
                scene_frames[item.scene.scene_reference_id] = max(
                    scene_frames.get(item.scene.scene_reference_id, 0), item.scene.index + 1)
                frames.append((item.reference_id, item.scene.scene_reference_id, item.scene.index,
                               item.metadata, preds.job(item, "")))
                continue
            fn = _item_file_name(item, options.input)
            _claim(names_seen, fn, item.reference_id)
            origin = _origin(item, fn, options.input)
            if origin:
                origins[fn] = origin
            md_records.add(item.reference_id, fn, "image", item.metadata)  # a file keeps the item
            job = preds.job(item, fn)
            if job.singles:
                yield job

    for fn, per_task, clipped in context.map(_encode_job, jobs()):
        preds.clipped += clipped
        for task, rows in per_task.items():
            _write_json(_staged(pred_dir, f"{task}/{_json_rel(fn)}"), {"file_name": fn, "predictions": rows})
    # videos and frames
    scenes = header.scenes
    for ref, scene in scenes.items():
        if scene.annotations:
            context.report.drop("scene_category", "Lightly holds no scene categories", len(scene.annotations))
    video_names: dict[str, tuple[str, int | None]] = {}
    for ref in set(scenes) | set(scene_frames):
        scene = scenes.get(ref)
        vfn = scene.attributes.get("file_name") if scene is not None else None
        if not isinstance(vfn, str):
            vfn = f"{ref}.{options.video_extension.lstrip('.')}"
        n = options.frames.get(vfn)
        if n is None and scene is not None and _is_int(scene.attributes.get("n_frames")):
            n = scene.attributes["n_frames"]
        if n is None:
            n = scene_frames.get(ref)
        if n is not None and scene_frames.get(ref, 0) > n:
            raise WriteError(f"video {vfn!r} has {n} frames but the dataset has frame {scene_frames[ref] - 1}",
                             fix="pass the right count with --option frames=VIDEO=N")
        video_names[ref] = (vfn, n)
        _claim(names_seen, vfn, ref)
        md_records.add(ref, vfn, "video", scene.metadata if scene is not None else {})
    frame_jobs = []
    for ref, scene_ref, index, metadata, job in frames:
        vfn, n = video_names[scene_ref]
        fn = frame_file_name(vfn, index, n or index + 1)
        _claim(names_seen, fn, ref)
        scene = scenes.get(scene_ref)
        md_records.add(ref, fn, "frame", _own(metadata, scene.metadata if scene else {}))
        if job.singles:
            job.file_name = fn
            frame_jobs.append(job)
    for fn, per_task, clipped in context.map(_encode_job, frame_jobs):
        preds.clipped += clipped
        for task, rows in per_task.items():
            _write_json(_staged(pred_dir, f"{task}/{_json_rel(fn)}"), {"file_name": fn, "predictions": rows})
    task_names = preds.finish(pred_dir)
    if task_names:
        _write_json(pred_dir / "tasks.json", task_names)
    given = read_metadata_schema(options.schema_file) if options.schema_file else [
        SchemaEntry(e.get("name", e["path"]), e["path"], e["valueDataType"], e.get("defaultValue"))
        for e in lightly_info.get("metadata_schema", []) if e.get("valueDataType") in READ_VALUE_TYPES]
    md_records.finish(destination / "metadata", given)
    if origins:
        _write_json(destination / ORIGINS_FILE, {"items": origins})


def _origin(item: DatasetItem, file_name: str, root: Path | None) -> dict[str, Any]:
    """What the reader cannot derive from ``file_name``: a remote image location (Nucleus
    ``image_url``), a reference id other than ``file_name`` without its extension, and the
    image size of an item with masks (to decode their RLE without the ``input`` option)."""
    out: dict[str, Any] = {}
    if item.reference_id != split_ext(file_name)[0]:
        out["reference_id"] = item.reference_id
    loc = item.image_location
    if loc and ("://" in loc or (root is None and not os.path.isabs(loc))):
        out["image_location"] = loc
    if item.width is not None and item.height is not None and any(
            p.type in ("segmentation", "object_mask") for p in (*item.predictions, *item.annotations)):
        out.update(width=item.width, height=item.height)  # Lightly RLE has no size
    return out


ORIGINS_FILE = "annobridge-origins.json"
"""Beside ``metadata/`` and ``predictions/`` (Lightly reads neither it nor other extra files):
per ``file_name``, the remote image location and reference id the Lightly files cannot hold."""


def _claim(seen: dict[str, str], file_name: str, owner: str) -> None:
    key = split_ext(file_name)[0]
    if key in seen and seen[key] != owner:
        raise WriteError(f"items {seen[key]!r} and {owner!r} both map to the Lightly file {key}.json",
                         fix="give the items distinct reference ids or image paths")
    seen[key] = owner


class MetadataBuffer:
    """Collects per-file metadata while items stream by: types are inferred on the way, the
    records wait in a JSON-lines file (not in memory) until the schema is known, because
    ints on a float key must be written as floats."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fields: dict[str, FieldStats] = {}
        self.count = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in finish()

    def add(self, owner: str, file_name: str, kind: str, metadata: dict[str, Any]) -> None:
        for path, value in flatten(metadata, expand_geo=True):
            fs = self.fields.get(path)
            if fs is None:
                fs = self.fields[path] = FieldStats(path)
            fs.add(value, owner)
        self._fh.write(json.dumps([file_name, kind, metadata], ensure_ascii=False) + "\n")
        self.count += 1

    def finish(self, folder: Path, given: list[SchemaEntry]) -> None:
        """Check one type per key, write ``schema.json`` and one file per record.

        Raises:
            MetadataTypeError: a key holds two types across the records.
            WriteError: values do not fit a given schema entry.
        """
        self._fh.close()
        try:
            if not self.count and not given:
                return
            check_consistent(self.fields)
            schema = build_metadata_schema(self.fields, given)
            floats = [e.path for e in schema if e.value_type in ("NUMERIC_FLOAT", "CATEGORICAL_TIMESTAMP")]
            _write_json(folder / "schema.json", [e.to_json() for e in schema])
            with open(self.path, encoding="utf-8") as fh:
                for line in fh:
                    fn, kind, md = json.loads(line)
                    _write_json(_staged(folder, _json_rel(fn)),
                                {"file_name": fn, "type": kind, "metadata": _widened(md, floats)})
        finally:
            self.path.unlink(missing_ok=True)


def _widened(md: dict[str, Any], float_paths: list[str]) -> dict[str, Any]:
    out = md
    for p in float_paths:
        v = get_path(out, p)
        if _is_int(v):
            if out is md:
                out = json.loads(json.dumps(md))
            set_path(out, p, float(v))
    return out


# --------------------------------------------------------------------------- lightly-task


def read_task_folder(path: Path, options: LightlyTaskReadOptions, context: Context) -> Dataset:
    """Read a single-task predictions folder (labelformat / LightlyStudio)."""
    if not path.is_dir():
        raise ReadError("expected the predictions folder (holding schema.json)", file=path)
    task = read_task_schema(path / "schema.json", path.name)
    images = options.images if options.images is not None else path.parent / "images"
    header = DatasetHeader(categories=_header_categories([task]),
                           info={"lightly": {"tasks": {task.name: {"task_type": task.task_type,
                                                                   "categories": task.categories}}}})
    files = _json_files(path, frozenset({"schema.json"}))
    return Dataset(header=header, items=_task_items(files, task, images, options, context), total=len(files))


def _task_items(files: dict[str, Path], task: TaskSchema, images: Path, options: LightlyTaskReadOptions,
                context: Context) -> Iterator[DatasetItem]:
    check = images.is_dir()
    for p in files.values():
        try:
            fn, singles = _prediction_file(p, task)
            contained(images, fn, what="file_name", file=p, item=split_ext(fn)[0])
            if check and not (images / fn).is_file():
                raise ReadError(f"image {fn!r} does not exist in {images}", file=p, where="#/file_name",
                                fix="fix file_name or pass --option images=DIR")
            size = _image_size(images / fn) if check else None
            ref = split_ext(fn)[0]
            anns = parse_predictions(task, singles, p, ref, size)
        except ReadError as exc:
            context.error(exc)
            continue
        yield _build(DatasetItem, 
            reference_id=ref, image_location=str(images / fn), pointcloud_location=None,
            width=size[0] if size else None, height=size[1] if size else None, metadata={},
            attributes={"file_name": fn}, scene=None,
            annotations=anns if options.as_annotations else [],
            predictions=[] if options.as_annotations else anns)


def write_task_folder(dataset: Dataset, destination: Path, options: LightlyTaskWriteOptions,
                      context: Context) -> None:
    """Write one task: ``schema.json`` and one JSON per image at ``<file_name>.json``."""
    destination.mkdir(parents=True, exist_ok=True)
    items = iter(dataset.items)
    only = options.task_type
    buffered: list[DatasetItem] = []
    if only is None:  # the only kind present decides; look ahead until one is seen
        for item in items:
            buffered.append(item)
            kinds = [a.type for a in item.predictions] + (
                [a.type for a in item.annotations] if options.score is not None else [])
            kinds = [k for k in kinds if k in KIND_TASK]
            if kinds:
                only = KIND_TASK[kinds[0]]
                break
    only = only or "object-detection"
    name = destination.name
    preds = _PredictionWriter(dataset.header, options, context, name, only)
    known = preds.tasks.known
    if name not in known:  # a task folder read under another name: reuse its schema
        same = [t for t in known.values() if t.get("task_type") == only]
        if len(same) == 1:
            preds.tasks.known = {**known, name: same[0]}
    preds.tasks.force_name = name

    def jobs() -> Iterator[_Job]:
        seen: dict[str, str] = {}
        import itertools

        for item in itertools.chain(buffered, items):
            if item.metadata:
                context.report.drop("item metadata", "lightly-task holds no item metadata")
            fn = _item_file_name(item, options.input)
            _claim(seen, fn, item.reference_id)
            yield preds.job(item, fn)

    for fn, per_task, clipped in context.map(_encode_job, jobs()):
        preds.clipped += clipped
        rows = per_task.get(name, [])
        _write_json(_staged(destination, _json_rel(fn)), {"file_name": fn, "predictions": rows})
    if not preds.tasks.tasks:
        preds.tasks.tasks[name] = TaskSchema(name, only, [
            {"id": c.id, "name": c.name} for c in dataset.header.categories])
    task = preds.tasks.tasks[name]
    cats = sorted(task.categories, key=lambda c: c["id"])
    _write_json(destination / "schema.json", {"task_type": task.task_type, "categories": cats})
    if preds.clipped:
        context.report.drop("prediction:box:clipped",
                            "box clipped to x, y >= 0 and the image (Lightly refuses values outside)", preds.clipped)


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
    read=read,
    write=write,
    detect=detect,
    read_options=LightlyReadOptions,
    write_options=LightlyWriteOptions,
    output="directory",
)

TASK_FORMAT = Format(
    name="lightly-task",
    description="Lightly single-task predictions folder (labelformat / LightlyStudio): schema.json + per-image JSON",
    capabilities=Capabilities(annotation_types=KINDS, prediction_types=KINDS),
    read=read_task_folder,
    write=write_task_folder,
    detect=detect_task_folder,
    read_options=LightlyTaskReadOptions,
    write_options=LightlyTaskWriteOptions,
    output="directory",
)


@hookimpl
def register_formats() -> list[Format]:
    return [FORMAT, TASK_FORMAT]
