"""Lightly: the datasource reader and the task-folder reader (see the package docstring)."""

from __future__ import annotations

import functools
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from annobridge.core.errors import ReadError
from annobridge.core.formats import Context, Shards
from annobridge.core.limits import open_image
from annobridge.core.metadata import MISSING, get_path, set_path, value_kind
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
from annobridge.core.paths import contained
from annobridge.plugins.lightly.common import (
    IMAGE_EXTENSIONS,
    ORIGINS_FILE,
    SchemaEntry,
    TaskSchema,
    _is_int,
    _is_num,
    _json_rel,
    _load_json,
    read_metadata_schema,
    split_ext,
    value_fits,
)

if TYPE_CHECKING:
    from annobridge.plugins.lightly import LightlyReadOptions, LightlyTaskReadOptions

logger = logging.getLogger(__name__)


TASK_TYPES = ("object-detection", "classification", "semantic-segmentation",
              "instance-segmentation", "keypoint-detection")


VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"})


_FRAME_RE = re.compile(r"^(?P<video>.+)-(?P<index>\d+)-(?P<ext>[A-Za-z0-9]+)\.png$")


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


def parse_frame_file_name(file_name: str) -> tuple[str, int, int] | None:
    """``(video file name, frame index, padding digits)``, or None if not a frame name."""
    m = _FRAME_RE.match(file_name)
    if m is None:
        return None
    return f"{m['video']}.{m['ext']}", int(m["index"]), len(m["index"])


def _json_files(folder: Path, skip_top: frozenset[str] = frozenset()) -> dict[str, str]:
    """``relative stem -> path`` of every ``*.json`` below ``folder``, in the order of a sorted
    ``os.walk`` (a folder's files, then its sub-folders; links to folders not followed). Paths
    are the strings ``os.scandir`` made: a listing of many thousand files spends most of its
    time making paths (Path objects, ``os.path.join``)."""
    out: dict[str, str] = {}

    def walk(path: str, prefix: str) -> None:
        try:
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:  # as os.walk: a folder that cannot be listed holds nothing
            return
        folders = []
        for e in entries:
            if e.is_dir():
                if not e.is_symlink():
                    folders.append(e)
            elif e.name.endswith(".json"):
                rel = prefix + e.name
                if rel not in skip_top:
                    out[rel[:-5]] = e.path
        for e in folders:
            walk(e.path, f"{prefix}{e.name}/")

    walk(str(folder), "")
    return out


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


def _category(task: TaskSchema, cid: Any, file: str | Path, where: str) -> dict[str, Any]:
    if not _is_int(cid) or cid not in task.by_id:
        raise ReadError(f"category_id {cid!r} is not in the schema of task {task.name!r}",
                        file=file, where=where, fix="add the category to the task's schema.json")
    return task.by_id[cid]


def _class_pdf(task: TaskSchema, probs: Any, file: str | Path, where: str) -> dict[str, float] | None:
    if probs is None:
        return None
    names = task.sorted_names()
    if not isinstance(probs, list) or len(probs) != len(names) or not all(_is_num(p) for p in probs):
        raise ReadError(f"probabilities must be {len(names)} numbers (one per category, by id), "
                        f"got {probs!r}", file=file, where=where)
    return {n: float(p) for n, p in zip(names, probs)}


def _score(s: Any, file: str | Path, where: str, required: bool) -> float | None:
    if s is None:
        if required:
            raise ReadError("prediction has no score", file=file, where=where,
                            fix="add a score in 0..1")
        return None
    if not _is_num(s) or not 0 <= s <= 1:
        raise ReadError(f"score must be a number in 0..1, got {s!r}", file=file, where=where)
    return float(s)


def _bbox(b: Any, file: str | Path, where: str) -> list[float]:
    if not isinstance(b, list) or len(b) != 4 or not all(_is_num(v) for v in b):
        raise ReadError(f"bbox must be 4 numbers [x, y, w, h], got {b!r}", file=file, where=where)
    if b[2] < 0 or b[3] < 0:
        raise ReadError(f"bbox width and height must be >= 0, got {b!r}", file=file, where=where)
    return b


def parse_predictions(task: TaskSchema, singles: list[Any], file: str | Path, ref: str,
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


def _json_object(path: str | Path) -> dict[str, Any]:
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


def _prediction_file(path: str | Path, task: TaskSchema) -> tuple[str, list[Any]]:
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


@dataclass
class _Entry:
    """What the folder holds for one media file (stem = file name without extension)."""

    stem: str
    metadata_file: str | None = None
    prediction_files: list[tuple[TaskSchema, str]] = field(default_factory=list)


def _resolve_folder(path: Path) -> Path:
    if (path / "metadata").is_dir() or (path / "predictions").is_dir():
        return path
    if (path / ".lightly").is_dir():
        raise ReadError("this is the datasource root, not the .lightly folder", file=path,
                        fix=f"read {path / '.lightly'} and pass --option input={path}")
    raise ReadError("not a .lightly folder: it has neither metadata/ nor predictions/", file=path)


@dataclass
class _Listing:
    """A ``.lightly`` folder listed: its schemas (read now) and its per-file entries (read later)."""

    folder: Path
    header: DatasetHeader
    schema: list[SchemaEntry]
    tasks: list[TaskSchema]
    entries: dict[str, _Entry]
    base: Path  # where file_name points: the input datasource, else the folder's parent
    origins: dict[str, dict[str, Any]]


def read(path: Path, options: LightlyReadOptions, context: Context) -> Dataset:
    """Read a ``.lightly`` folder; the schemas are read now, the per-file JSON lazily."""
    ls = _listing(path, options)
    return Dataset(header=ls.header, items=_read_items(ls.entries, ls.schema, options, ls.base, ls.header, context,
                                                       ls.origins))


def shards(path: Path, options: LightlyReadOptions, context: Context) -> Shards:
    """The folder as media files that workers read apart (``converters/sharded.py``).

    A unit is one media file's Lightly files (its metadata file and its prediction file per
    task, relative to the folder's parent, where ``file_name`` points unless ``input`` is
    given) and the ``annobridge-origins.json`` entries of that file. What spans the dataset is
    read here, once, and carried in the plan: the metadata schema, the task schemas and
    categories (the header), the files of the videos that have frames (their metadata
    applies to the frames, their scene is the frames' scene), and, for a video whose frame
    names disagree on the padding, its first frame (the one the others are checked against).
    The defaults a worker filled are summed by the report (``ConversionReport.tally``).
    """
    ls = _listing(path, options)
    root, name = ls.folder.parent, ls.folder.name
    origins: dict[str, dict[str, Any]] = {}
    for fn, origin in ls.origins.items():
        origins.setdefault(split_ext(fn)[0], {})[fn] = origin
    units = [(stem, f"{name}/metadata/{stem}.json" if e.metadata_file is not None else None,
              tuple((t.name, f"{name}/predictions/{t.name}/{stem}.json") for t, _ in e.prediction_files),
              origins.get(stem))
             for stem, e in sorted(ls.entries.items())]
    read = functools.partial(_read_part, ls.schema, ls.tasks, options, _videos_of(ls, options))
    return Shards(units=units, read=read, root=root, header=ls.header, files=_unit_files)


_Unit = tuple[str, str | None, tuple[tuple[str, str], ...], dict[str, dict[str, Any]] | None]
"""(stem, metadata file, ((task, prediction file), ...), origins by file_name); paths relative
to the ``.lightly`` folder's parent."""


def _unit_files(unit: _Unit) -> list[str]:
    _, metadata, predictions, _ = unit
    return ([metadata] if metadata is not None else []) + [p for _, p in predictions]


def _videos_of(ls: _Listing, options: LightlyReadOptions) -> _Videos:
    """What frames need from other files, for workers that read the frames without them."""
    videos = _Videos()
    frames: dict[str, list[tuple[str, int]]] = {}  # video ref -> (frame stem, padding), in order
    for stem in sorted(ls.entries):
        frame = parse_frame_file_name(stem + ".png")
        if frame is not None and frame[0] not in options.frames:  # a known count checks each frame alone
            frames.setdefault(split_ext(frame[0])[0], []).append((stem, frame[2]))
        elif frame is not None:
            frames.setdefault(split_ext(frame[0])[0], [])
    scratch = DatasetHeader.model_construct()
    for ref in frames:
        if ref in ls.entries:
            try:
                _read_entry(ls.entries[ref], ls.schema, options, ls.base, scratch, videos)
            except ReadError:  # the worker reading this file names the problem, in its place
                continue
    videos.scenes = dict(scratch.scenes)
    for ref, stems in frames.items():
        if len({width for _, width in stems}) < 2:
            continue  # one padding: no frame of this video can disagree with the first
        for stem, _ in stems:
            try:
                _read_entry(ls.entries[stem], ls.schema, options, ls.base, scratch, videos)
            except ReadError:
                continue
            if ref in videos.widths:
                break
    return videos


def _read_part(schema: list[SchemaEntry], tasks: list[TaskSchema], options: LightlyReadOptions,
               videos: _Videos, root: Path, units: list[_Unit], header: DatasetHeader,
               context: Context) -> Iterator[DatasetItem]:
    """The items of some media files (:func:`shards`), read under ``root`` (the folder's parent)."""
    by_name = {t.name: t for t in tasks}
    entries: dict[str, _Entry] = {}
    origins: dict[str, dict[str, Any]] = {}
    for stem, metadata, predictions, origin in units:
        entries[stem] = _Entry(stem, os.path.join(root, metadata) if metadata is not None else None,
                               [(by_name[t], os.path.join(root, p)) for t, p in predictions])
        origins.update(origin or {})
    base = options.input if options.input is not None else root
    return _read_items(entries, schema, options, base, header, context, origins, videos.copy())


def _listing(path: Path, options: LightlyReadOptions) -> _Listing:
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
    # made of checked parts (the categories validated from the task schemas): not validated
    # again, which would build the header's validator in every run (~0.01 s)
    header = DatasetHeader.model_construct(categories=_header_categories(tasks),
                                           info={"lightly": info} if info else {})
    base = input_root if input_root is not None else folder.parent
    origins = _load_json(folder / ORIGINS_FILE).get("items", {}) if (folder / ORIGINS_FILE).is_file() else {}
    return _Listing(folder, header, schema, tasks, entries, base, origins)


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


@dataclass
class _Videos:
    """What a frame takes from other files of the dataset. One process fills it while reading
    (a video sorts before its frames); for workers the driver fills it first (:func:`shards`)."""

    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)  # video ref -> its file's own metadata
    scenes: dict[str, Scene] = field(default_factory=dict)  # video ref -> the scene its file makes
    widths: dict[str, tuple[int, str]] = field(default_factory=dict)  # video ref -> first frame's padding, name

    def copy(self) -> _Videos:
        return _Videos(dict(self.metadata), dict(self.scenes), dict(self.widths))


FILLED_NOTE = "filled schema defaults (fill-defaults=true) for {total} values: {counts}"
"""The Worker's behaviour, but not what the files say: counted (summed over the workers' parts)."""


def _read_items(entries: dict[str, _Entry], schema: list[SchemaEntry], options: LightlyReadOptions, base: Path,
                header: DatasetHeader, context: Context, origins: dict[str, dict[str, Any]],
                videos: _Videos | None = None) -> Iterator[DatasetItem]:
    videos = videos or _Videos()
    filled: Counter[str] = Counter()
    for stem in sorted(entries):  # a video's stem sorts before its frames' (it is their prefix)
        entry = entries[stem]
        try:
            result = _read_entry(entry, schema, options, base, header, videos, filled)
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
    if filled:
        context.report.tally(FILLED_NOTE, filled)


def _inherit(own: dict[str, Any], video: dict[str, Any]) -> dict[str, Any]:
    """A frame's metadata: its own values, and the video's for the keys (nested too) it lacks."""
    out = dict(video)
    for key, value in own.items():
        out[key] = _inherit(value, video[key]) if isinstance(value, dict) and isinstance(video.get(key), dict) else value
    return out


def _check_mirror(path: str | Path, stem: str, file_name: str) -> None:
    rel = stem + ".json"
    expected = _json_rel(file_name)
    if rel != expected:
        raise ReadError(f"file is at {rel!r} but its file_name {file_name!r} puts it at {expected!r}",
                        file=path, where="#/file_name",
                        fix="the JSON path must mirror the media path with .json as extension")


def _read_entry(entry: _Entry, schema: list[SchemaEntry], options: LightlyReadOptions, base: Path,
                header: DatasetHeader, videos: _Videos, filled: Counter[str] | None = None
                ) -> tuple[DatasetItem, list[tuple[TaskSchema, str]]] | None:
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
    if kind == "frame":  # the video-level file applies to its frames
        metadata = _inherit(metadata, videos.metadata.get(split_ext(frame[0])[0], {}))  # type: ignore[index]
    elif kind == "video":
        videos.metadata[split_ext(file_name)[0]] = metadata
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
            first = videos.widths.setdefault(ref, (width, file_name))
            if first[0] != width:
                raise ReadError(f"frame number padded to {width} digits but {first[1]!r} of the same video "
                                f"uses {first[0]}", file=where_file, where="#/file_name",
                                fix="pad every frame number to len(str(number of frames)) digits")
        if ref not in header.scenes and ref in videos.scenes:  # read by the driver, in another part
            header.scenes[ref] = videos.scenes[ref].model_copy(deep=True)
        elif ref not in header.scenes:
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


def _task_header(path: Path) -> tuple[DatasetHeader, TaskSchema]:
    task = read_task_schema(path / "schema.json", path.name)
    return DatasetHeader(categories=_header_categories([task]),
                         info={"lightly": {"tasks": {task.name: {"task_type": task.task_type,
                                                                 "categories": task.categories}}}}), task


def read_task_folder(path: Path, options: LightlyTaskReadOptions, context: Context) -> Dataset:
    """Read a single-task predictions folder (labelformat / LightlyStudio)."""
    if not path.is_dir():
        raise ReadError("expected the predictions folder (holding schema.json)", file=path)
    header, task = _task_header(path)
    images = options.images if options.images is not None else path.parent / "images"
    files = _json_files(path, frozenset({"schema.json"}))
    return Dataset(header=header, items=_task_items(files, task, images, options, context), total=len(files))


def task_shards(path: Path, options: LightlyTaskReadOptions, context: Context) -> Shards:
    """The task folder as prediction files that workers read apart (``converters/sharded.py``):
    a unit is one file, relative to the folder's parent (where ``images`` is by default); the
    task schema is read here and carried in the plan."""
    if not path.is_dir():
        raise ReadError("expected the predictions folder (holding schema.json)", file=path)
    header, task = _task_header(path)
    units = [f"{path.name}/{stem}.json" for stem in _json_files(path, frozenset({"schema.json"}))]
    return Shards(units=units, read=functools.partial(_read_task_part, task, options), root=path.parent,
                  header=header, files=_task_file, total=len(units))


def _task_file(unit: str) -> list[str]:
    return [unit]


def _read_task_part(task: TaskSchema, options: LightlyTaskReadOptions, root: Path, units: list[str],
                    header: DatasetHeader, context: Context) -> Iterator[DatasetItem]:
    """The items of some prediction files (:func:`task_shards`), read under ``root``."""
    images = options.images if options.images is not None else root / "images"
    return _task_items({u: os.path.join(root, u) for u in units}, task, images, options, context)


def _task_items(files: dict[str, str], task: TaskSchema, images: Path, options: LightlyTaskReadOptions,
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

