"""Metadata typing: infer each field's type across a dataset, as Nucleus and Lightly do.

Types: ``numeric`` (int or float; ints on a float field are widened), ``categorical``
(strings, until a field has more than :data:`TEXT_THRESHOLD` distinct values, then
``text``), ``boolean`` (categorical; written as ``"true"``/``"false"`` where a format needs
strings), ``list`` and ``dict`` (kept and shown, not typed further; nested dicts expose
dotted paths such as ``weather.temperature``), ``null`` when only nulls were seen.
A field that is a string on one item and a number on another is a conflict.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

TEXT_THRESHOLD = 250
RESERVED_KEYS = frozenset({"context_attachments", "camera_params"})
_DISTINCT_CAP = TEXT_THRESHOLD + 1


def value_kind(value: Any) -> str:
    """The metadata kind of one value: bool is never taken as a number."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "numeric"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, dict):
        return "dict"
    return type(value).__name__


def flatten(metadata: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted path, value)`` pairs; nested dicts are walked, the dict itself is not listed."""
    for key, value in metadata.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in RESERVED_KEYS:
            yield from flatten(value, path + ".")
        else:
            yield path, value


@dataclass
class FieldStats:
    """What was seen of one metadata field."""

    path: str
    kinds: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)  # kind -> first owner seen
    distinct: Counter[Any] = field(default_factory=Counter)
    minimum: float | None = None
    maximum: float | None = None
    all_int: bool = True

    def add(self, value: Any, owner: str) -> None:
        kind = value_kind(value)
        self.kinds[kind] += 1
        self.examples.setdefault(kind, owner)
        if kind == "numeric":
            self.all_int = self.all_int and isinstance(value, int)
            self.minimum = value if self.minimum is None else min(self.minimum, value)
            self.maximum = value if self.maximum is None else max(self.maximum, value)
        if kind in ("string", "boolean", "numeric") and (
            value in self.distinct or len(self.distinct) < _DISTINCT_CAP
        ):
            self.distinct[value] += 1

    @property
    def conflict(self) -> tuple[str, str] | None:
        """Two incompatible kinds seen for this field, or None."""
        typed = [k for k in self.kinds if k != "null"]
        return (typed[0], typed[1]) if len(typed) > 1 else None

    @property
    def inferred(self) -> str:
        typed = [k for k in self.kinds if k != "null"]
        if not typed:
            return "null"
        if len(typed) > 1:
            return "conflict(" + "|".join(sorted(typed)) + ")"
        kind = typed[0]
        if kind == "numeric":
            return "numeric-int" if self.all_int else "numeric-float"
        if kind == "string":
            return "text" if len(self.distinct) > TEXT_THRESHOLD else "categorical"
        return kind


def infer_fields(owners: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, FieldStats]:
    """Field statistics over ``(owner id, metadata)`` pairs, by dotted path."""
    stats: dict[str, FieldStats] = {}
    for owner, metadata in owners:
        for path, value in flatten(metadata):
            fs = stats.get(path)
            if fs is None:
                fs = stats[path] = FieldStats(path)
            fs.add(value, owner)
    return stats
