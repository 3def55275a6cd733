"""What a format offers, for ``annobridge formats``: capabilities and its options.

Each option is described from the format's options model: its ``--option`` name
(kebab-case), type, default, and the text its docstring's ``Args:`` section gives it (the
house style documents options there).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel

    from annobridge.core.formats import Format

_ARG = re.compile(r"^(\s+)(\w+):\s*(.*)$")


def docstring_args(model: type[BaseModel]) -> dict[str, str]:
    """``field -> description`` from a Google-style ``Args:`` section (continuations joined)."""
    out: dict[str, str] = {}
    doc = model.__doc__ or ""
    if "Args:" not in doc:
        return out
    indent: int | None = None
    current: str | None = None
    for line in doc.split("Args:", 1)[1].splitlines():
        if not line.strip():
            continue
        m = _ARG.match(line)
        if m and (indent is None or len(m.group(1)) == indent):
            indent = len(m.group(1))
            current = m.group(2)
            out[current] = m.group(3).strip()
        elif current is not None and indent is not None and len(line) - len(line.lstrip()) > indent:
            out[current] += " " + line.strip()
        else:
            break
    return out


def describe_options(model: type[BaseModel]) -> list[dict[str, Any]]:
    """One row per option: ``name`` (as ``--option`` takes it), ``type``, ``default``,
    ``required``, ``description``."""
    texts = docstring_args(model)
    rows = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        kind = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
        rows.append({
            "name": name.replace("_", "-"),
            "type": kind or str(annotation).replace("typing.", ""),
            "default": None if info.is_required() else _jsonable(info.get_default(call_default_factory=True)),
            "required": info.is_required(),
            "description": texts.get(name) or info.description or "",
        })
    return rows


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def describe_format(fmt: Format, options: bool = True) -> dict[str, Any]:
    """A format as JSON data: what it reads and writes, holds, and (unless ``options`` is false,
    which leaves the options models unimported) its options."""
    caps = fmt.capabilities
    return {
        "name": fmt.name,
        "read": fmt.read is not None,
        "write": fmt.write is not None,
        "annotations": sorted(caps.annotation_types),
        "predictions": sorted(caps.prediction_types),
        "item_metadata": caps.item_metadata,
        "annotation_metadata": caps.annotation_metadata,
        "scenes": caps.scenes,
        "pointclouds": caps.pointclouds,
        "plugin": fmt.plugin,
        "description": fmt.description,
        "output": fmt.output,
    } | ({
        "read_options": describe_options(fmt.options_model("read")) if fmt.read is not None else [],
        "write_options": describe_options(fmt.options_model("write")) if fmt.write is not None else [],
    } if options else {})
