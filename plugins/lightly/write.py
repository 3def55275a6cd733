"""Lightly: the datasource writer and the task-folder writer (see the package docstring)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from annobridge.core.errors import WriteError
from annobridge.core.formats import Context
from annobridge.core.metadata import FieldStats, flatten, get_path, set_path, type_conflicts
from annobridge.core.model import Dataset, DatasetHeader, DatasetItem
from annobridge.core.paths import contained, path_problem, safe_name
from annobridge.plugins.lightly.common import (
    IMAGE_EXTENSIONS,
    KIND_TASK,
    ORIGINS_FILE,
    READ_VALUE_TYPES,
    SchemaEntry,
    TaskSchema,
    _is_int,
    _json_rel,
    read_metadata_schema,
    split_ext,
)

if TYPE_CHECKING:
    from annobridge.plugins.lightly import LightlyTaskWriteOptions, LightlyWriteOptions


DEFAULT_TASK_NAMES = {"object-detection": "object_detection", "classification": "classification",
                      "semantic-segmentation": "semantic_segmentation",
                      "instance-segmentation": "instance_segmentation",
                      "keypoint-detection": "keypoint_detection"}


_DEFAULTS = {"NUMERIC_INT": 0, "NUMERIC_FLOAT": 0.0, "CATEGORICAL_STRING": "undefined",
             "CATEGORICAL_BOOLEAN": False, "CATEGORICAL_INT": 0}


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


def frame_file_name(video_file_name: str, index: int, n_frames: int) -> str:
    """``subdir/video_1-099-mp4.png`` for frame 99 of a 200-frame ``subdir/video_1.mp4``."""
    stem, ext = split_ext(video_file_name)
    width = len(str(n_frames))
    return f"{stem}-{index:0{width}d}-{ext.lstrip('.')}.png"


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


def _light(job: _Job) -> bool:
    """A file with no mask to encode (``Context.map``'s ``here``: built in the driver)."""
    return not any(kind in ("segmentation", "object_mask") for singles in job.singles.values()
                   for kind, _, _ in singles)


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
                conf = ann.confidence if source == "pred" and ann.confidence is not None else (
                    score_opt if source == "gt" else None)
                try:
                    task = self.tasks.task_for(ann)
                    made = list(self._singles(ann, task, conf, item))
                except _LateLabel as exc:  # Lightly vectors have one entry per category, fixed once written
                    report.drop(prefix + ann.type, str(exc))
                    continue
                except WriteError as exc:  # validating: recorded, and the other annotations are checked
                    self.context.error(exc)
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
            if not _claimed(names_seen, fn, item.reference_id, context):
                continue
            origin = _origin(item, fn, options.input)
            if origin:
                origins[fn] = origin
            md_records.add(item.reference_id, fn, "image", item.metadata)  # a file keeps the item
            job = preds.job(item, fn)
            if job.singles:
                yield job

    for fn, per_task, clipped in context.map(_encode_job, jobs(), here=_light):
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
    for fn, per_task, clipped in context.map(_encode_job, frame_jobs, here=_light):
        preds.clipped += clipped
        for task, rows in per_task.items():
            _write_json(_staged(pred_dir, f"{task}/{_json_rel(fn)}"), {"file_name": fn, "predictions": rows})
    task_names = preds.finish(pred_dir)
    if task_names:
        _write_json(pred_dir / "tasks.json", task_names)
    given = read_metadata_schema(options.schema_file) if options.schema_file else [
        SchemaEntry(e.get("name", e["path"]), e["path"], e["valueDataType"], e.get("defaultValue"))
        for e in lightly_info.get("metadata_schema", []) if e.get("valueDataType") in READ_VALUE_TYPES]
    md_records.finish(destination / "metadata", given, context)
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


def _claim(seen: dict[str, str], file_name: str, owner: str) -> None:
    key = split_ext(file_name)[0]
    if key in seen and seen[key] != owner:
        raise WriteError(f"items {seen[key]!r} and {owner!r} both map to the Lightly file {key}.json",
                         item=owner, fix="give the items distinct reference ids or image paths")
    seen[key] = owner


def _claimed(seen: dict[str, str], file_name: str, owner: str, context: Context) -> bool:
    """:func:`_claim`; validating, a clash is recorded and the item skipped (False)."""
    try:
        _claim(seen, file_name, owner)
    except WriteError as exc:
        context.error(exc)
        return False
    return True


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

    def finish(self, folder: Path, given: list[SchemaEntry], context: Context) -> None:
        """Check one type per key, write ``schema.json`` and one file per record.

        Raises:
            MetadataTypeError: a key holds two types across the records (validating, each
                such key is recorded through ``context.error`` and nothing is written).
            WriteError: values do not fit a given schema entry.
        """
        self._fh.close()
        try:
            if not self.count and not given:
                return
            conflicts = type_conflicts(self.fields)
            for conflict in conflicts:
                context.error(conflict)
            if conflicts:
                return
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
            if _claimed(seen, fn, item.reference_id, context):
                yield preds.job(item, fn)

    for fn, per_task, clipped in context.map(_encode_job, jobs(), here=_light):
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

