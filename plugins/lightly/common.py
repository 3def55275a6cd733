"""Lightly: what the reader and the writer both need (constants, schema entries, JSON helpers)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annobridge.core.errors import ReadError

# core.limits (msgspec, orjson) and core.metadata are imported where they are used: the
# package declaration imports this module to list formats.


WRITE_VALUE_TYPES = ("NUMERIC_INT", "NUMERIC_FLOAT", "CATEGORICAL_INT", "CATEGORICAL_STRING",
                     "CATEGORICAL_BOOLEAN")
"""The five ``valueDataType``\\ s of the datasource metadata docs (written)."""


READ_VALUE_TYPES = WRITE_VALUE_TYPES + ("CATEGORICAL_DATETIME", "CATEGORICAL_TIMESTAMP", "OTHER_STRING")
"""Also accepted on reading: the three further values of the Platform API enum."""


KIND_TASK = {"box": "object-detection", "category": "classification",
             "segmentation": "semantic-segmentation", "object_mask": "instance-segmentation",
             "keypoints": "keypoint-detection"}


KINDS = frozenset(KIND_TASK)


IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})


def split_ext(file_name: str) -> tuple[str, str]:
    """``("subdir/a.b", ".png")`` for ``subdir/a.b.png``: split at the last dot of the name."""
    head, sep, name = file_name.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return file_name, ""
    return f"{head}{sep}{stem}", f".{ext}"


def _json_rel(file_name: str) -> str:
    return split_ext(file_name)[0] + ".json"


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


def _load_json(path: str | Path) -> Any:
    from annobridge.core.limits import load_json

    with open(path, "rb") as fh:
        return load_json(fh.read(), file=path)  # finite numbers, bounded ints and depth


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


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
    from annobridge.core.metadata import value_kind

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


ORIGINS_FILE = "annobridge-origins.json"
"""Beside ``metadata/`` and ``predictions/`` (Lightly reads neither it nor other extra files):
per ``file_name``, the remote image location and reference id the Lightly files cannot hold."""

