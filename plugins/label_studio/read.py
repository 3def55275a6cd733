"""Reading Label Studio JSON: tasks -> items, regions -> annotations (see the package docstring)."""

from __future__ import annotations

import gc
import json
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

from PIL import Image
from pydantic import ValidationError

from annobridge.core.errors import AnnobridgeError, ReadError
from annobridge.core.formats import Context
from annobridge.core.model import (
    BoxAnnotation,
    Category,
    CategoryAnnotation,
    Dataset,
    DatasetHeader,
    DatasetItem,
    KeypointsAnnotation,
    MultiCategoryAnnotation,
    ObjectMaskAnnotation,
    OrientedBoxAnnotation,
    PolygonAnnotation,
    Taxonomy,
)
from annobridge.core.paths import contained
from annobridge.plugins.label_studio import brush, json_min
from annobridge.plugins.label_studio.regions import (
    GEOMETRY_KEYS,
    LABELS_KEY,
    points_to_model,
    rectangle_to_model,
    size_option,
    tool,
)


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
RECORD_LISTS = ("annotations", "completions", "predictions")
REFERENCE_KEY = "annobridge_reference_id"


class _Bad(Exception):
    """A problem at a JSON pointer below the one being read (turned into a ReadError)."""

    def __init__(self, problem: str, where: str = "", fix: str | None = None) -> None:
        super().__init__(problem)
        self.problem, self.where, self.fix = problem, where, fix


def read(path: Path, options: Any, context: Context) -> Dataset:
    """Read a Label Studio JSON export (a list of tasks or one task object, or JSON-MIN)."""
    enabled = gc.isenabled()
    gc.disable()  # the parsed tree and the models are acyclic: without this, full collections walk
    try:  # the whole tree again and again while it is built and read (4x the time on 5000 tasks)
        return _read(path, options, context)
    finally:
        if enabled:
            gc.enable()


def _read(path: Path, options: Any, context: Context) -> Dataset:
    try:
        with open(path, "rb") as fh:
            doc = json.loads(fh.read())
    except ValueError as exc:
        raise ReadError(f"not valid JSON: {exc}", file=path,
                        fix="export the project from Label Studio as JSON") from exc
    single = isinstance(doc, dict)
    tasks = [doc] if single else doc
    if json_min.looks_like_json_min(doc):
        controls = json_min.control_names(options.config) if options.config is not None else {}
        tasks = json_min.to_tasks(doc, controls)
        context.report.notes.append("read a JSON-MIN export: the label-studio writer writes the full JSON export")
    if not isinstance(tasks, list):
        raise ReadError(f"the file holds a JSON {type(doc).__name__}, expected a list of tasks", file=path,
                        fix="export the project from Label Studio as JSON (a list of tasks)")
    reader = _Reader(path, options, context)
    items = []
    for n, task in enumerate(tasks):
        item = reader.task(task, "#" if single else f"#/{n}", n)
        if item is not None:
            items.append(item)
    header = DatasetHeader(
        categories=[Category(id=i + 1, name=name) for i, name in enumerate(reader.labels)],
        taxonomies=[Taxonomy(name=name, type=kind, labels=labels) for name, (kind, labels) in reader.taxonomies.items()],
        info={"label_studio": {"single_task": True}} if single else {},
    )
    kept = sum(reader.kept.values())
    if kept:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(reader.kept.items()))
        context.report.notes.append(f"kept {kept} Label Studio results with no model kind ({kinds}) "
                                    "verbatim in item attributes: only the label-studio writer uses them")
    if reader.multi_label:
        context.report.notes.append(f"{reader.multi_label} Label Studio regions have several labels: the first is "
                                    "the annotation's label, all are kept in its attributes for the label-studio writer")
    return Dataset(header=header, items=items)


class _Reader:
    """State shared by the tasks of one file: options, labels and taxonomies seen so far."""

    def __init__(self, path: Path, options: Any, context: Context) -> None:
        self.path = path
        self.options = options
        self.context = context
        self.default_size = size_option(options.image_size)
        self.labels: dict[str, None] = {}
        self.taxonomies: dict[str, tuple[str, list[str]]] = {}
        self.kept: Counter[str] = Counter()
        self.multi_label = 0

    def error(self, problem: str, where: str, item: str | None = None, fix: str | None = None) -> None:
        self.context.error(ReadError(problem, file=self.path, where=where, item=item, fix=fix))

    # ------------------------------------------------------------------ tasks

    def task(self, task: Any, where: str, n: int) -> DatasetItem | None:
        if not isinstance(task, dict):
            self.error(f"a task is a JSON object, got {type(task).__name__}", where)
            return None
        data = task.get("data")
        if not isinstance(data, dict):
            fix = ("this looks like a bare prediction: wrap it as a task "
                   '{"data": {"image": ...}, "predictions": [...]}' if "result" in task
                   else 'each task needs "data": {"image": URL, ...}')
            self.error("the task has no \"data\" object", where, fix=fix)
            return None
        meta = task.get("meta") or {}
        if not isinstance(meta, dict):
            self.error(f"meta is a {type(meta).__name__}, expected an object", f"{where}/meta")
            return None
        meta = dict(meta)
        ref = meta.pop(REFERENCE_KEY, None)
        if not isinstance(ref, str):
            ref = str(task["id"]) if isinstance(task.get("id"), (int, str)) else str(n + 1)
        image_key = self._image_key(data)
        location = data.get(image_key) if image_key else None
        if location is not None and not isinstance(location, str):
            self.error(f"data.{image_key} is a {type(location).__name__}, expected a URL or path",
                       f"{where}/data/{image_key}", ref)
            return None
        kept: dict[str, Any] = {
            "task": {k: v for k, v in task.items() if k not in ("data", "meta", *RECORD_LISTS)},
            "data": {k: v for k, v in data.items() if k != image_key},
            "image_key": image_key,
        }
        if "meta" not in task:
            kept["no_meta"] = True
        try:
            size = self._size(task, location, where, ref)
            annotations, predictions = [], []
            for key in RECORD_LISTS:
                if key not in task:
                    continue
                records = task[key]
                if not isinstance(records, list):
                    raise _Bad(f"{key} is a {type(records).__name__}, expected a list", f"{where}/{key}")
                if key == "completions":
                    kept["annotations_key"] = "completions"
                target = predictions if key == "predictions" else annotations
                kept["predictions" if key == "predictions" else "annotations"] = [
                    self._record(rec, f"{where}/{key}/{k}", k, size, target, key == "predictions", ref)
                    for k, rec in enumerate(records)
                ]
            for key in ("annotations", "predictions"):
                _unique_ids(annotations if key == "annotations" else predictions)
            return DatasetItem.model_construct(
                reference_id=ref, image_location=location, pointcloud_location=None,
                width=size[0] if size else None, height=size[1] if size else None,
                metadata=meta, attributes={"label_studio": kept}, annotations=annotations,
                predictions=predictions, scene=None,
            )
        except _Bad as bad:
            self.error(bad.problem, bad.where, ref, bad.fix)
            return None

    def _image_key(self, data: dict[str, Any]) -> str | None:
        if self.options.image_key:
            return self.options.image_key
        if "image" in data:
            return "image"
        named = [k for k, v in data.items() if isinstance(v, str)
                 and (v.startswith("data:image") or PurePosixPath(urlparse(v).path).suffix.lower() in IMAGE_SUFFIXES)]
        return named[0] if len(named) == 1 else None

    def _size(self, task: dict[str, Any], location: str | None, where: str, ref: str) -> tuple[int, int] | None:
        """The image size: from the first region that gives one, else the options, else None."""
        for key in RECORD_LISTS:
            for rec in _list(task.get(key)):
                for r in _list(rec.get("result")) if isinstance(rec, dict) else ():
                    if isinstance(r, dict) and "original_width" in r and "original_height" in r:
                        w, h = r["original_width"], r["original_height"]
                        if isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0:
                            return w, h
        if self.options.images is not None and location:
            found = self._image_file(location, where, ref)
            if found is not None:
                try:
                    with Image.open(found) as img:
                        return img.size
                except OSError as exc:
                    raise _Bad(f"cannot read the size of image {str(found)!r}: {exc}", f"{where}/data") from exc
        return self.default_size

    def _image_file(self, location: str, where: str, ref: str) -> Path | None:
        root = self.options.images
        parsed = urlparse(location)
        relative = unquote(parsed.path) if parsed.scheme or location.startswith("/") else location
        for candidate in (relative.lstrip("/"), PurePosixPath(relative).name):
            if not candidate:
                continue
            try:
                path = contained(root, candidate, what="data.image", file=self.path, where=where, item=ref)
            except AnnobridgeError:
                continue  # an absolute or climbing path: try its file name
            if path.is_file():
                return path
        return None

    # ------------------------------------------------------------------ records and regions

    def _record(self, rec: Any, where: str, k: int, size: tuple[int, int] | None, target: list[Any],
                prediction: bool, ref: str) -> dict[str, Any]:
        if not isinstance(rec, dict):
            raise _Bad(f"a record is a JSON object, got {type(rec).__name__}", where)
        results = rec.get("result", [])
        if not isinstance(results, list):
            raise _Bad(f"result is a {type(results).__name__}, expected a list of regions", f"{where}/result")
        kept = {key: v for key, v in rec.items() if key != "result"}
        kept["result"] = others = []
        if "result" not in rec:
            kept["no_result"] = True
        score = rec.get("score")
        for i, r in enumerate(results):
            rwhere = f"{where}/result/{i}"
            if not isinstance(r, dict):
                raise _Bad(f"a region is a JSON object, got {type(r).__name__}", rwhere)
            rwhere = r.pop(json_min.WHERE, rwhere)
            ann = self._region(r, rwhere, size, ref)
            if ann is None:
                others.append({"index": i, "result": r})
                self.kept[str(r.get("type"))] += 1
                continue
            ann.attributes["label_studio"]["record"] = k
            ann.attributes["label_studio"]["index"] = i
            if prediction:
                conf = r.get("score", score)
                if _is_number(conf) and 0 <= conf <= 1:
                    ann.confidence = float(conf)
                    if "score" in r:  # the writer writes the confidence back as the region's score
                        del ann.attributes["label_studio"]["region"]["score"]
                        ann.attributes["label_studio"]["region_score"] = True
            target.append(ann)
        return kept

    def _region(self, r: dict[str, Any], where: str, size: tuple[int, int] | None, ref: str) -> Any:
        """The annotation a region maps to, or None for a type the model has no kind for."""
        rtype = r.get("type")
        value = r.get("value")
        if rtype not in LABELS_KEY and rtype not in ("choices", "taxonomy"):
            return None
        if not isinstance(value, dict):
            raise _Bad(f"a {rtype} region needs a value object", f"{where}/value")
        meta = r.get("meta") or {}
        if not isinstance(meta, dict):
            raise _Bad(f"meta is a {type(meta).__name__}, expected an object", f"{where}/meta")
        kept_region = {k: v for k, v in r.items() if k not in ("value", "meta", "original_width", "original_height")}
        ls: dict[str, Any] = {"region": kept_region}
        common = {"reference_id": ref, "annotation_id": str(r["id"]) if "id" in r else None,
                  "metadata": meta, "attributes": {"label_studio": ls}}
        if "meta" not in r:
            ls["no_meta"] = True
        try:
            if rtype == "choices":
                return self._choices(value, r, ls, common, where)
            if rtype == "taxonomy":
                return self._taxonomy(value, r, ls, common, where)
            return self._shape(rtype, value, r, ls, common, where, size)
        except (KeyError, TypeError, ValueError, brush.BrushError) as exc:
            problem = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else (
                f"missing value.{exc.args[0]}" if isinstance(exc, KeyError) else str(exc))
            raise _Bad(f"bad {rtype} region: {problem}", f"{where}/value") from exc

    def _shape(self, rtype: str, value: dict[str, Any], r: dict[str, Any], ls: dict[str, Any],
               common: dict[str, Any], where: str, size: tuple[int, int] | None) -> Any:
        own = (r.get("original_width"), r.get("original_height"))
        if all(isinstance(v, int) and v > 0 for v in own):
            w, h = own
            if size and (w, h) != size:
                ls["original_size"] = [w, h]
        elif size:
            w, h = size
            if "original_width" not in r:
                ls["no_original_size"] = True
        else:
            raise _Bad(f"the {rtype} region has no original_width/original_height and the item's "
                       "image size is unknown", where,
                       fix="give --option image-size=WIDTHxHEIGHT or --option images=DIR")
        kind = tool(rtype)
        labels_key = LABELS_KEY[rtype]
        labels = value.get(labels_key, []) if labels_key else []
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise _Bad(f"value.{labels_key} must be a list of label names", f"{where}/value/{labels_key}")
        for name in labels:
            self.labels.setdefault(name, None)
        if len(labels) != 1:
            ls["labels"] = labels
            if len(labels) > 1:
                self.multi_label += 1
        label = labels[0] if labels else ""
        skip = set(GEOMETRY_KEYS[kind]) | ({labels_key} if labels_key else set())
        extra = {k: v for k, v in value.items() if k not in skip}
        if extra:
            ls["value"] = extra
        if kind == "rectangle":
            if "rotation" not in value:
                ls["no_rotation"] = True
            fields = rectangle_to_model(_numbers(value, ("x", "y", "width", "height")), w, h)
            if "rotation" in fields:
                return OrientedBoxAnnotation(label=label, **fields, **common)
            return BoxAnnotation(label=label, **fields, **common)
        if kind == "polygon":
            points = value["points"]
            if not isinstance(points, list) or not all(
                    isinstance(p, list) and len(p) == 2 and all(_is_number(v) for v in p) for p in points):
                raise _Bad("value.points must be a list of [x, y] percent pairs", f"{where}/value/points")
            return PolygonAnnotation(label=label, rings=[points_to_model(points, w, h)], **common)
        if kind == "keypoint":
            p = _numbers(value, ("x", "y"))
            return KeypointsAnnotation(label=label, names=[label],
                                       keypoints=[p["x"] * w / 100, p["y"] * h / 100, 2], **common)
        fmt = value.get("format", "rle")
        if fmt != "rle" or not isinstance(value.get("rle"), list):
            raise _Bad(f"a brush region needs value.rle (a list of bytes) in format 'rle', got format {fmt!r}",
                       f"{where}/value", fix="only Label Studio's RLE brush encoding is supported")
        if "format" not in value:
            ls["no_format"] = True
        mask = brush.decode_mask(value["rle"], w, h)
        if brush.encode_mask(mask) != value["rle"]:
            ls["rle"] = value["rle"]
        return ObjectMaskAnnotation.from_array(mask, label=label, **common)

    def _choices(self, value: dict[str, Any], r: dict[str, Any], ls: dict[str, Any],
                 common: dict[str, Any], where: str) -> Any:
        choices = value.get("choices")
        if not isinstance(choices, list) or not choices or not all(isinstance(c, str) for c in choices):
            raise _Bad("value.choices must be a non-empty list of strings", f"{where}/value/choices")
        extra = {k: v for k, v in value.items() if k != "choices"}
        if extra:
            ls["value"] = extra
        name = str(r.get("from_name", "choice"))
        self._taxonomy_labels(name, "category" if len(choices) == 1 else "multicategory", choices)
        if len(choices) == 1:
            return CategoryAnnotation(label=choices[0], taxonomy_name=name, **common)
        return MultiCategoryAnnotation(labels=choices, taxonomy_name=name, **common)

    def _taxonomy(self, value: dict[str, Any], r: dict[str, Any], ls: dict[str, Any],
                  common: dict[str, Any], where: str) -> Any:
        paths = value.get("taxonomy")
        if not isinstance(paths, list) or not paths or not all(
                isinstance(p, list) and p and all(isinstance(x, str) for x in p) for p in paths):
            raise _Bad("value.taxonomy must be a non-empty list of label paths (lists of strings)",
                       f"{where}/value/taxonomy")
        labels = ["/".join(p) for p in paths]
        if any(len(p) > 1 for p in paths):
            ls["paths"] = paths  # the writer cannot split a joined label back (names may hold "/")
        extra = {k: v for k, v in value.items() if k != "taxonomy"}
        if extra:
            ls["value"] = extra
        name = str(r.get("from_name", "taxonomy"))
        self._taxonomy_labels(name, "multicategory", labels)
        return MultiCategoryAnnotation(labels=labels, taxonomy_name=name, **common)

    def _taxonomy_labels(self, name: str, kind: str, labels: list[str]) -> None:
        old_kind, old = self.taxonomies.get(name, (kind, []))
        kind = "multicategory" if "multicategory" in (kind, old_kind) else "category"
        self.taxonomies[name] = (kind, old + [x for x in labels if x not in old])


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _numbers(value: dict[str, Any], keys: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for k in keys:
        v = value[k]
        if not _is_number(v):
            raise ValueError(f"value.{k} is {v!r}, expected a number (percent)")
        out[k] = v
    if "rotation" in value:
        if not _is_number(value["rotation"]):
            raise ValueError(f"value.rotation is {value['rotation']!r}, expected a number (degrees)")
        out["rotation"] = value["rotation"]
    return out


def _unique_ids(annotations: list[Any]) -> None:
    """Give repeated region ids (an annotator who started from a prediction) a ``#n`` suffix;
    the region keeps its own id for writing."""
    seen: Counter[str] = Counter()
    for ann in annotations:
        aid = ann.annotation_id
        if aid is None:
            continue
        seen[aid] += 1
        if seen[aid] > 1:
            ann.annotation_id = f"{aid}#{seen[aid]}"
