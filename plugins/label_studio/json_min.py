"""Label Studio's JSON-MIN export, turned into full tasks so one reader serves both.

JSON-MIN (label_studio_converter ``convert_to_json_min``) writes one flat record per task
and annotation: the task's ``data`` keys, ``id``, and per control tag its regions under the
tag's name (a list of ``{x, y, width, height, rotation, rectanglelabels, original_width,
original_height}``-style values without ``type``; a single choice as a bare string), plus
``annotator``, ``annotation_id``, ``created_at``, ``updated_at``, ``lead_time``.

Which keys are regions is not written down; here it is a key whose value is a list of
region values (recognised by their ``...labels`` key or geometry), a ``{"choices": [...]}`` or
``{"taxonomy": [...]}`` object, or a key a labeling config (``config=FILE``) names as a
control tag (then a bare string is a choice). Everything else is task data. Records of one
task ``id`` (several annotators) become one task.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from annobridge.core.errors import ReadError

WHERE = "__annobridge_where"
"""Key a built region carries with its place in the JSON-MIN file, for error messages."""

RECORD_FIELDS = {"annotator": "completed_by", "annotation_id": "id", "created_at": "created_at",
                 "updated_at": "updated_at", "lead_time": "lead_time"}
"""JSON-MIN record keys -> annotation record keys."""

LABEL_KEYS = ("rectanglelabels", "polygonlabels", "keypointlabels", "brushlabels")


def looks_like_json_min(doc: Any) -> bool:
    """A list whose first record has no ``data`` but JSON-MIN's annotation keys."""
    return (isinstance(doc, list) and bool(doc) and isinstance(doc[0], dict) and "data" not in doc[0]
            and ("annotation_id" in doc[0] or "annotator" in doc[0]))


def control_names(config: Path) -> dict[str, str]:
    """Control tag name -> tag type (lower case) of a labeling config, e.g. ``{"label": "rectanglelabels"}``.

    Raises:
        ReadError: the file is not XML.
    """
    try:
        root = ET.parse(config).getroot()
    except (ET.ParseError, OSError) as exc:
        raise ReadError(f"cannot read the labeling config: {exc}", file=config,
                        fix="give the project's labeling config XML (Settings > Labeling Interface > Code)") from exc
    return {el.get("name", ""): el.tag.lower() for el in root.iter() if el.get("name") and el.get("toName")}


def _region_type(value: dict[str, Any], control: str | None) -> str | None:
    for key in LABEL_KEYS:
        if key in value:
            return key
    if control in LABEL_KEYS or control in ("rectangle", "polygon", "keypoint", "brush"):
        return control
    if "choices" in value:
        return "choices"
    if "taxonomy" in value:
        return "taxonomy"
    if "rle" in value:
        return "brush"
    if "points" in value:
        return "polygon"
    if {"x", "y", "width", "height"} <= value.keys():
        return "rectangle"
    if {"x", "y"} <= value.keys():
        return "keypoint"
    return None


def _regions(key: str, value: Any, control: str | None, where: str) -> list[dict[str, Any]] | None:
    """The full regions a JSON-MIN value holds, or None when it is task data."""
    if control in ("choices", "taxonomy") and isinstance(value, str):
        value = {"choices": [value]}
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, dict) and _region_type(v, control) for v in values):
        return None
    out = []
    for i, v in enumerate(values):
        v = dict(v)
        region: dict[str, Any] = {"type": _region_type(v, control), "from_name": key, "to_name": "image"}
        for size in ("original_width", "original_height"):
            if size in v:
                region[size] = v.pop(size)
        region["value"] = v
        region[WHERE] = f"{where}/{key}" + (f"/{i}" if isinstance(value, list) else "")
        out.append(region)
    return out


def to_tasks(records: list[Any], controls: dict[str, str]) -> list[Any]:
    """Full tasks from JSON-MIN records (records of one task id merged, in first-seen order)."""
    tasks: dict[Any, dict[str, Any]] = {}
    out: list[Any] = []
    for n, rec in enumerate(records):
        if not isinstance(rec, dict):
            out.append(rec)  # the task reader reports it
            continue
        data: dict[str, Any] = {}
        result: list[dict[str, Any]] = []
        annotation: dict[str, Any] = {}
        for key, value in rec.items():
            if key in RECORD_FIELDS:
                annotation[RECORD_FIELDS[key]] = value
            elif key not in ("id", "agreement"):
                regions = _regions(key, value, controls.get(key), f"#/{n}")
                if regions is None:
                    data[key] = value
                else:
                    result.extend(regions)
        task_id = rec.get("id", f"#{n}")
        task = tasks.get(task_id)
        if task is None:
            task = {"data": data, "annotations": []}
            if "id" in rec:
                task["id"] = rec["id"]
            if "agreement" in rec:
                task["agreement"] = rec["agreement"]
            tasks[task_id] = task
            out.append(task)
        if result or annotation.get("id") is not None:
            task["annotations"].append({**annotation, "result": result})
    return out
