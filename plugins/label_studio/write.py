"""Writing Label Studio JSON: items -> tasks, annotations -> regions (see the package docstring)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from annobridge.core.errors import WriteError
from annobridge.core.formats import ConversionReport, Context
from annobridge.core.model import Dataset, DatasetItem
from annobridge.plugins.label_studio import brush
from annobridge.plugins.label_studio.label_config import LabelConfig
from annobridge.plugins.label_studio.read import REFERENCE_KEY
from annobridge.plugins.label_studio.regions import (
    FROM_NAME_FOR_KIND,
    LABELS_KEY,
    TYPE_FOR_KIND,
    box_to_studio,
    oriented_box_to_studio,
    points_to_studio,
    size_option,
    tool,
)


def write(dataset: Dataset, destination: Path, options: Any, context: Context) -> None:
    """Write the items as a JSON list of tasks (one task object when the source was one)."""
    single = bool((dataset.header.info.get("label_studio") or {}).get("single_task"))
    writer = _Writer(options, context.report)
    tasks = (writer.task(item, n) for n, item in enumerate(dataset.items))
    _write_tasks(tasks, destination, single)
    if writer.config is not None:
        config = destination.with_name(destination.stem + ".label_config.xml")
        config.write_text(writer.config.to_xml(), encoding="utf-8")


def _write_tasks(tasks: Iterator[dict[str, Any]], destination: Path, single: bool) -> None:
    head = list(itertools.islice(tasks, 2))
    with open(destination, "wb") as out:
        if single and len(head) == 1:
            out.write(orjson.dumps(head[0], option=orjson.OPT_INDENT_2))
            out.write(b"\n")
            return
        out.write(b"[")
        for k, task in enumerate(itertools.chain(head, tasks)):
            out.write(b",\n" if k else b"\n")
            out.write(orjson.dumps(task, option=orjson.OPT_INDENT_2))
        out.write(b"\n]\n")


def _kept(attributes: dict[str, Any]) -> dict[str, Any]:
    value = attributes.get("label_studio")
    return value if isinstance(value, dict) else {}


class _Writer:
    def __init__(self, options: Any, report: ConversionReport) -> None:
        self.options = options
        self.report = report
        self.default_size = size_option(options.image_size)
        self.config = LabelConfig() if options.write_config else None

    def task(self, item: DatasetItem, n: int) -> dict[str, Any]:
        ls = _kept(item.attributes)
        kept_task = dict(ls.get("task") or {})
        ref = item.reference_id
        meta = dict(item.metadata)
        if "id" in kept_task and str(kept_task["id"]) == ref:
            task_id = kept_task.pop("id")
        elif ref.isdigit() and str(int(ref)) == ref:
            task_id = int(ref)
            kept_task.pop("id", None)
        else:
            task_id = n + 1
            kept_task.pop("id", None)
            meta[REFERENCE_KEY] = ref
        image_key = ls.get("image_key", self.options.image_key) if ls else self.options.image_key
        data: dict[str, Any] = {}
        if image_key and item.image_location is not None:
            data[image_key] = item.image_location
        data.update(ls.get("data") or {})
        size = (item.width, item.height) if item.width and item.height else self.default_size
        task: dict[str, Any] = {"id": task_id}
        for key, anns, prediction in (("annotations", item.annotations, False), ("predictions", item.predictions, True)):
            if anns or ls.get(key) is not None or not ls:  # a list the task read had not is not added
                name = ls.get("annotations_key", key) if key == "annotations" else key
                task[name] = self._records(item, anns, ls.get(key), size, prediction)
        task["data"] = data
        if meta or not ls.get("no_meta"):
            task["meta"] = meta
        task.update(kept_task)
        if self.config is not None:
            self.config.add_task(task, image_key)
        return task

    def _records(self, item: DatasetItem, anns: list[Any], kept: list[dict[str, Any]] | None,
                 size: tuple[int, int] | None, prediction: bool) -> list[dict[str, Any]]:
        records = [dict(r) for r in kept or ()]
        groups: list[list[Any]] = [[] for _ in records]
        loose = []
        for ann in anns:
            k = _kept(ann.attributes).get("record")
            if isinstance(k, int) and 0 <= k < len(records):
                groups[k].append(ann)
            else:
                loose.append(ann)
        read_records = len(records)
        if loose:
            if not records:
                records.append({})
                groups.append([])
            groups[0].extend(loose)
        out = []
        for k, (record, group) in enumerate(zip(records, groups)):
            others = record.pop("result", None) or []
            no_result = record.pop("no_result", False)
            score = record.get("score")
            if prediction and k >= read_records:  # a new record: one score when the regions agree
                confs = {a.confidence for a in group}
                if len(confs) == 1 and None not in confs:
                    score = confs.pop()
                    record["score"] = score
            placed: list[tuple[float, int, dict[str, Any]]] = []
            for serial, ann in enumerate(group):
                index = _kept(ann.attributes).get("index")
                order = index if isinstance(index, int) else math.inf
                for region in self._regions(item, ann, size, prediction, score, serial):
                    placed.append((order, len(placed), region))
            for other in others:
                placed.append((other.get("index", math.inf), len(placed), other["result"]))
            results = [r for _, _, r in sorted(placed, key=lambda t: (t[0], t[1]))]
            ordered = {"id": record.pop("id")} if "id" in record else {}
            if results or not no_result:
                ordered["result"] = results
            out.append({**ordered, **record})
        return out

    # ------------------------------------------------------------------ one annotation

    def _regions(self, item: DatasetItem, ann: Any, size: tuple[int, int] | None, prediction: bool,
                 record_score: Any, serial: int) -> list[dict[str, Any]]:
        ls = _kept(ann.attributes)
        base = dict(ls.get("region") or {})
        kind = ann.type
        rid = base.pop("id", None) or ann.annotation_id or f"{item.reference_id}-{serial}"
        region: dict[str, Any] = {"id": rid}
        rtype = base.pop("type", None)
        image_key = _kept(item.attributes).get("image_key") or self.options.image_key
        if kind in ("category", "multicategory"):
            if rtype not in ("choices", "taxonomy") or (kind == "category" and rtype == "taxonomy"):
                rtype = "choices" if kind == "category" else "taxonomy"
            region["type"] = rtype
            region["from_name"] = base.pop("from_name", ann.taxonomy_name or FROM_NAME_FOR_KIND[kind])
            region["to_name"] = base.pop("to_name", image_key)
            values = [self._category_value(ann, rtype, ls)]
        else:
            if rtype not in LABELS_KEY or tool(rtype) != tool(TYPE_FOR_KIND[kind]):
                rtype = TYPE_FOR_KIND[kind]
            if LABELS_KEY[rtype] is None and ann.label:
                rtype = rtype + "labels"  # an unlabelled tool's region that now has a label
            region["type"] = rtype
            region["from_name"] = base.pop("from_name", FROM_NAME_FOR_KIND[kind])
            region["to_name"] = base.pop("to_name", image_key)
            if not ls:
                region["image_rotation"] = 0  # as Label Studio writes it; a read region keeps its own
            if size is None:
                raise WriteError(f"the image size of item {item.reference_id!r} is unknown: Label Studio keeps "
                                 "coordinates in percent of it", item=item.reference_id,
                                 fix="give --option image-size=WIDTHxHEIGHT or read the source with image sizes")
            w, h = ls.get("original_size") or size
            if not ls.get("no_original_size"):
                region["original_width"], region["original_height"] = w, h
            values = self._shape_values(item, ann, rtype, w, h, ls)
        region.update(base)
        out = []
        for k, value in enumerate(values):
            r = dict(region, value=value)
            if k:
                r["id"] = f"{rid}-{k}"
            if ann.metadata or (ls and not ls.get("no_meta")):
                r["meta"] = dict(ann.metadata)
            if prediction and ann.confidence is not None and (ls.get("region_score") or ann.confidence != record_score):
                r["score"] = ann.confidence
            out.append(r)
        return out

    def _labels(self, ann: Any, rtype: str, ls: dict[str, Any]) -> dict[str, Any]:
        key = LABELS_KEY[rtype]
        if key is None:
            return {}
        labels = ls.get("labels")
        if not (isinstance(labels, list) and (labels[:1] == [ann.label] or (not labels and ann.label == ""))):
            labels = [ann.label]
        return {key: labels}

    def _shape_values(self, item: DatasetItem, ann: Any, rtype: str, w: int, h: int,
                      ls: dict[str, Any]) -> list[dict[str, Any]]:
        extra = ls.get("value") or {}
        kind = ann.type
        if kind == "box":
            geometry = box_to_studio(ann.x, ann.y, ann.width, ann.height, w, h)
            if ls.get("no_rotation"):
                del geometry["rotation"]
            return [{**geometry, **extra, **self._labels(ann, rtype, ls)}]
        if kind == "oriented_box":
            geometry = oriented_box_to_studio(ann.cx, ann.cy, ann.width, ann.height, ann.rotation, w, h)
            return [{**geometry, **extra, **self._labels(ann, rtype, ls)}]
        if kind == "polygon":
            if len(ann.rings) > 1:
                self.report.drop("polygon rings", "label-studio holds one ring per polygon: each further ring "
                                 "is written as a polygon of its own", len(ann.rings) - 1)
            return [{"points": points_to_studio(ring, w, h), **extra, **self._labels(ann, rtype, ls)}
                    for ring in ann.rings]
        if kind == "keypoints":
            return self._keypoint_values(ann, rtype, w, h, extra, ls)
        mask = ann.to_array()
        if tuple(mask.shape) != (h, w):
            raise WriteError(f"an object mask of {mask.shape[1]}x{mask.shape[0]} pixels is on an image of "
                             f"{w}x{h}: a Label Studio brush covers the whole image", item=item.reference_id)
        rle = ls.get("rle")
        if not (isinstance(rle, list) and np.array_equal(_decoded(rle, w, h), mask)):
            rle = brush.encode_mask(mask)
        value = {"rle": rle, **({} if ls.get("no_format") else {"format": "rle"})}
        return [{**value, **extra, **self._labels(ann, rtype, ls)}]

    def _keypoint_values(self, ann: Any, rtype: str, w: int, h: int, extra: dict[str, Any],
                         ls: dict[str, Any]) -> list[dict[str, Any]]:
        kp = ann.keypoints
        if ann.names == [ann.label] and kp[2] == 2:
            return [{"x": kp[0] * 100 / w, "y": kp[1] * 100 / h, **extra, **self._labels(ann, rtype, ls)}]
        key = LABELS_KEY[rtype] or "keypointlabels"
        out = []
        for name, i in zip(ann.names, range(0, len(kp), 3)):
            if kp[i + 2] == 0:
                self.report.drop("keypoint", "unlabelled (visibility 0): label-studio keeps labelled points only")
                continue
            if kp[i + 2] == 1:
                self.report.drop("keypoint visibility", "label-studio has no hidden keypoints: written as visible")
            out.append({"x": kp[i] * 100 / w, "y": kp[i + 1] * 100 / h, **extra, key: [name]})
        self.report.drop("keypoints grouping", "label-studio keypoints are single points: each point is written "
                         "labelled by its name; the object's label and skeleton are lost")
        return out

    def _category_value(self, ann: Any, rtype: str, ls: dict[str, Any]) -> dict[str, Any]:
        extra = ls.get("value") or {}
        labels = [ann.label] if ann.type == "category" else list(ann.labels)
        if rtype == "choices":
            return {"choices": labels, **extra}
        paths = ls.get("paths")
        if not (isinstance(paths, list) and ["/".join(p) for p in paths] == labels):
            paths = [[label] for label in labels]
        return {"taxonomy": paths, **extra}


def _decoded(rle: list[int], w: int, h: int) -> np.ndarray | None:
    try:
        return brush.decode_mask(rle, w, h)
    except brush.BrushError:
        return None
