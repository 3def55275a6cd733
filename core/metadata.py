"""Metadata typing: infer each field's type across a dataset, as Nucleus and Lightly do.

Values (:func:`value_kind`): ``null``, ``boolean``, ``numeric`` (int or float), ``string``,
``list``, ``dict``, plus two recognised shapes:

* ``geo``: a dict holding ``lat``/``lon`` or ``latitude``/``longitude`` numbers (decimal
  degrees, latitude in -90..90, longitude in -180..180), as Nucleus extracts for its map
  and LightlyStudio stores its ``gps_coordinate``. A nested geo dict is one field; when the
  top-level metadata itself holds the pair, the scope's :attr:`ScopeSchema.geo_paths`
  lists ``""``.
* ``context_attachments``: the reserved key (``[{"attachment": "<url>"}, ...]``, Nucleus),
  kept as it is and never flattened or typed further (so is ``camera_params``).

Inferred types (:attr:`FieldStats.inferred`), per scope (``items``, ``scenes``,
``annotations``, ``predictions``, ``segments``): ``numeric-int``/``numeric-float`` (ints on
a field that also holds floats are widened to float, never refused), ``categorical``
(strings until a field has more than :data:`TEXT_THRESHOLD` distinct values, then
``text``), ``boolean`` (categorical; a format that needs strings writes ``"true"``/
``"false"``, see :func:`bool_to_string`), ``list``, ``dict`` and ``geo`` (kept and shown,
not typed further), ``null`` when only nulls were seen. Nested dicts expose dotted paths
(``weather.temperature``); the dict itself is not a field.

Type consistency: a field holding two kinds (a string on one item, a number on another; a
bool is never taken as a number) is a conflict, raised by :func:`check_consistent` as a
:class:`~annobridge.core.errors.MetadataTypeError` naming the key, both types and an
example owner of each. Nulls never conflict.

Updates, both named: :func:`replace_metadata` (Nucleus ``append(update=True)``: keys not
resent are deleted) and :func:`merge_metadata` (LightlyStudio ``update_metadata``, Nucleus
``update_item_metadata``: top-level keys added or overwritten, a dict value replaced
wholesale, other keys untouched).

Tables (:func:`read_metadata_table`): CSV cells are typed (:func:`parse_cell`: integers,
decimals, ``true``/``false``, empty = missing; everything else a string); dotted column
names build nested dicts.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annobridge.core.errors import MetadataTypeError, ReadError
from annobridge.core.limits import MAX_INT_DIGITS, load_json

TEXT_THRESHOLD = 250
"""A string field with more than this many distinct values is ``text`` (Nucleus)."""
RESERVED_KEYS = frozenset({"context_attachments", "camera_params"})
SCOPES = ("items", "scenes", "annotations", "predictions", "segments")
GEO_KEY_PAIRS = (("lat", "lon"), ("latitude", "longitude"))
_DISTINCT_CAP = TEXT_THRESHOLD + 1
_NUMERIC_SAMPLE_CAP = 10_000
MISSING: Any = object()
"""Returned by :func:`get_path` for a path that does not resolve."""


_FLAT_TYPES = frozenset({str, int, float, bool, type(None), list, tuple})
"""Types whose metadata kind (:func:`value_kind`) is the same for every value, and that
:func:`flatten` does not walk into."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def geo_point(value: Any) -> tuple[float, float] | None:
    """``(lat, lon)`` when ``value`` is a dict holding a coordinate pair, else None."""
    if not isinstance(value, dict):
        return None
    for lat_key, lon_key in GEO_KEY_PAIRS:
        lat, lon = value.get(lat_key), value.get(lon_key)
        if _is_number(lat) and _is_number(lon) and -90 <= lat <= 90 and -180 <= lon <= 180:
            return float(lat), float(lon)
    return None


def value_kind(value: Any) -> str:
    """The metadata kind of one value; a bool is never taken as a number."""
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
        return "geo" if geo_point(value) is not None else "dict"
    return type(value).__name__


def flatten(metadata: dict[str, Any], prefix: str = "", *,
            expand_geo: bool = False) -> Iterator[tuple[str, Any]]:
    """``(dotted path, value)`` pairs; nested dicts are walked, the dict itself is not listed.

    Top-level reserved keys and empty dicts are leaves; so are geo dicts unless
    ``expand_geo`` (then ``gps.lat`` and ``gps.lon`` are listed as numbers).
    """
    for key, value in metadata.items():
        path = f"{prefix}{key}"
        if (isinstance(value, dict) and value and not (not prefix and key in RESERVED_KEYS)
                and (expand_geo or geo_point(value) is None)):
            yield from flatten(value, path + ".", expand_geo=expand_geo)
        else:
            yield path, value


def get_path(metadata: dict[str, Any], path: str) -> Any:
    """The value at a dotted path, or :data:`MISSING` when the path does not resolve."""
    node: Any = metadata
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def set_path(metadata: dict[str, Any], path: str, value: Any) -> None:
    """Set the value at a dotted path, creating nested dicts on the way (in place).

    Raises:
        ValueError: a part of the path already holds a non-dict value.
    """
    parts = path.split(".")
    node = metadata
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ValueError(f"{path!r}: {part!r} holds a {value_kind(child)}, not a dict")
        node = child
    node[parts[-1]] = value


def bool_to_string(value: bool) -> str:
    """How a boolean is written where a format needs strings: ``"true"`` / ``"false"``."""
    return "true" if value else "false"


@dataclass
class FieldStats:
    """What was seen of one metadata field (one dotted path in one scope)."""

    path: str
    kinds: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)  # kind -> first owner seen
    distinct: Counter[Any] = field(default_factory=Counter)
    minimum: float | None = None
    maximum: float | None = None
    all_int: bool = True
    numbers: list[float] = field(default_factory=list, repr=False)

    def add(self, value: Any, owner: str, *, kinds_only: bool = False) -> str:
        """Count ``value`` (of ``owner``); return its kind. ``kinds_only``: only its kind and
        first owner, enough for :attr:`conflict`."""
        kind = value_kind(value)
        self.kinds[kind] += 1
        self.examples.setdefault(kind, owner)
        if kinds_only:
            return kind
        if kind == "numeric":
            self.all_int = self.all_int and isinstance(value, int)
            self.minimum = value if self.minimum is None else min(self.minimum, value)
            self.maximum = value if self.maximum is None else max(self.maximum, value)
            if len(self.numbers) < _NUMERIC_SAMPLE_CAP:
                self.numbers.append(value)
        if kind in ("string", "boolean", "numeric") and (
            value in self.distinct or len(self.distinct) < _DISTINCT_CAP
        ):
            # keyed by (kind, value) would separate True from 1; the conflict check already does
            self.distinct[value] += 1
        return kind

    @property
    def typed_kinds(self) -> list[str]:
        """Non-null kinds seen; a geo dict next to plain dicts counts as ``dict``."""
        typed = [k for k in self.kinds if k != "null"]
        if "geo" in typed and "dict" in typed:
            typed.remove("geo")
        return typed

    @property
    def conflict(self) -> tuple[str, str] | None:
        """Two incompatible kinds seen for this field, or None."""
        typed = self.typed_kinds
        return (typed[0], typed[1]) if len(typed) > 1 else None

    @property
    def inferred(self) -> str:
        """``numeric-int``, ``numeric-float``, ``categorical``, ``text``, ``boolean``,
        ``list``, ``dict``, ``geo``, ``context_attachments``, ``null`` or ``conflict(a|b)``."""
        typed = self.typed_kinds
        if not typed:
            return "null"
        if len(typed) > 1:
            return "conflict(" + "|".join(sorted(typed)) + ")"
        if self.path in RESERVED_KEYS:
            return self.path
        kind = typed[0]
        if kind == "numeric":
            return "numeric-int" if self.all_int else "numeric-float"
        if kind == "string":
            return "text" if len(self.distinct) > TEXT_THRESHOLD else "categorical"
        return kind

    def histogram(self, bins: int = 5, top: int = 5) -> list[tuple[str, int]]:
        """A small histogram: the ``top`` most common values of a categorical or boolean
        field, or ``bins`` equal numeric ranges (from the first 10 000 numbers seen)."""
        kind = self.inferred
        if kind in ("categorical", "boolean"):
            out = [(json.dumps(v) if not isinstance(v, str) else v, n)
                   for v, n in self.distinct.most_common(top)]
            rest = sum(self.distinct.values()) - sum(n for _, n in out)
            if rest > 0:
                out.append(("(other)", rest))
            return out
        if kind.startswith("numeric") and self.numbers:
            lo, hi = float(self.minimum), float(self.maximum)  # type: ignore[arg-type]
            if lo == hi:
                return [(_fmt(lo), len(self.numbers))]
            width = (hi - lo) / bins
            counts = [0] * bins
            for v in self.numbers:
                counts[min(int((v - lo) / width), bins - 1)] += 1
            return [(f"{_fmt(lo + i * width)}..{_fmt(lo + (i + 1) * width)}", n)
                    for i, n in enumerate(counts)]
        return []


def _fmt(v: float) -> str:
    return f"{v:.4g}"


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


@dataclass
class ScopeSchema:
    """The inferred fields of one scope, and where geographic coordinates were found."""

    scope: str
    fields: dict[str, FieldStats] = field(default_factory=dict)
    geo_paths: set[str] = field(default_factory=set)
    owner_word: str = "item"
    kinds_only: bool = False
    """Record only the kinds each field holds and the first owner of each, enough for
    :meth:`conflicts` (a writer checking its output adds every item): no counts, values or
    ``geo_paths``, and metadata of a shape added before (the same keys and value types, no
    nested dict) adds nothing new, so it is passed over."""
    _shapes: set[tuple[tuple[str, ...], tuple[type, ...]]] = field(default_factory=set, init=False, repr=False,
                                                                   compare=False)

    def add(self, owner: str, metadata: dict[str, Any]) -> None:
        if self.kinds_only:
            types = tuple(map(type, metadata.values()))
            if _FLAT_TYPES.issuperset(types):  # each value's kind follows from its type
                shape = (tuple(metadata), types)
                if shape in self._shapes:
                    return
                self._shapes.add(shape)
        elif geo_point(metadata) is not None:
            self.geo_paths.add("")
        for path, value in flatten(metadata):
            fs = self.fields.get(path)
            if fs is None:
                fs = self.fields[path] = FieldStats(path)
            if fs.add(value, owner, kinds_only=self.kinds_only) == "geo" and not self.kinds_only:
                self.geo_paths.add(path)

    def check(self) -> None:
        """Raise :class:`MetadataTypeError` for the first field holding two kinds."""
        check_consistent(self.fields, self.owner_word)

    def conflicts(self) -> list[MetadataTypeError]:
        """Every field holding two kinds, one error each."""
        return type_conflicts(self.fields, self.owner_word)


_OWNER_WORDS = {"items": "item", "scenes": "scene", "annotations": "annotation",
                "predictions": "prediction", "segments": "segment"}


def check_consistent(fields: dict[str, FieldStats], owner_word: str = "item") -> None:
    """Raise :class:`MetadataTypeError` when a field holds two incompatible kinds.

    Raises:
        MetadataTypeError: names the key, both kinds and an example owner of each.
    """
    for problem in type_conflicts(fields, owner_word):
        raise problem


def type_conflicts(fields: dict[str, FieldStats], owner_word: str = "item") -> list[MetadataTypeError]:
    """One :class:`MetadataTypeError` per field holding two incompatible kinds, by key (so
    that ``validate`` lists them all)."""
    out = []
    for path, fs in sorted(fields.items()):
        pair = fs.conflict
        if pair:
            a, b = pair
            out.append(MetadataTypeError(
                f'metadata key "{path}" is {_article(a)} on {owner_word} "{fs.examples[a]}" '
                f'but {_article(b)} on {owner_word} "{fs.examples[b]}"',
                fix="use one type per key across the dataset (ints on a float key are fine)",
            ))
    return out


def _article(kind: str) -> str:
    return {"numeric": "a number", "string": "a string", "boolean": "a boolean",
            "list": "a list", "dict": "a dict", "geo": "a lat/lon dict"}.get(kind, kind)


def infer_schema(items: Iterable[Any], scenes: Iterable[Any] = (), *,
                 check: bool = False) -> dict[str, ScopeSchema]:
    """Infer the metadata schema of every scope of a dataset.

    Args:
        items: :class:`~annobridge.core.model.DatasetItem` objects (consumed once).
        scenes: :class:`~annobridge.core.model.Scene` objects, iterated after the items
            (pass ``header.scenes.values()`` of a streaming dataset).
        check: raise on the first type conflict instead of recording it.

    Returns:
        scope name (:data:`SCOPES`) -> :class:`ScopeSchema`.

    Raises:
        MetadataTypeError: with ``check=True``, a key holds two incompatible types.
    """
    schema = {s: ScopeSchema(s, owner_word=_OWNER_WORDS[s]) for s in SCOPES}
    for item in items:
        ref = item.reference_id
        if item.metadata:
            schema["items"].add(ref, item.metadata)
        for scope, anns in (("annotations", item.annotations), ("predictions", item.predictions)):
            for n, ann in enumerate(anns):
                owner = f"{ref}/{ann.annotation_id or n}"
                if ann.metadata:
                    schema[scope].add(owner, ann.metadata)
                if ann.type == "segmentation":
                    for seg in ann.annotations:
                        if seg.metadata:
                            schema["segments"].add(f"{owner}#{seg.index}", seg.metadata)
    for scene in scenes:  # after the items: a streaming reader sets scenes as it reads them
        if scene.metadata:
            schema["scenes"].add(scene.reference_id, scene.metadata)
    if check:
        for scope in schema.values():
            scope.check()
    return schema


def widen(value: Any, inferred: str) -> Any:
    """``value`` as written under a field of type ``inferred``: ints become floats on a
    ``numeric-float`` field; anything else is returned unchanged."""
    if inferred == "numeric-float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


# --------------------------------------------------------------------------- updates


def replace_metadata(current: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Replace semantics (Nucleus ``append(update=True)``): the result is ``new``; keys of
    ``current`` not in ``new`` are deleted. Neither argument is modified."""
    return json.loads(json.dumps(new))


def merge_metadata(current: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Merge semantics (LightlyStudio ``update_metadata``, Nucleus ``update_item_metadata``):
    top-level keys of ``new`` are added or overwrite (a dict value is replaced wholesale, not
    deep-merged); other keys of ``current`` are untouched. Neither argument is modified."""
    out = json.loads(json.dumps(current))
    out.update(json.loads(json.dumps(new)))
    return out


UPDATE_MODES: dict[str, Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]] = {
    "replace": replace_metadata,
    "merge": merge_metadata,
}


# --------------------------------------------------------------------------- tables

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?")


def parse_cell(text: str) -> Any:
    """Type one CSV cell: ``""`` -> :data:`MISSING`; integers -> int; decimals -> float;
    ``true``/``false`` (any case) -> bool; anything else (``nan`` included) -> the string."""
    s = text.strip()
    if s == "":
        return MISSING
    low = s.lower()
    if low in ("true", "false"):
        return low == "true"
    if _INT.fullmatch(s) and len(s) <= MAX_INT_DIGITS:  # longer: kept as text (core.limits)
        return int(s)
    if _FLOAT.fullmatch(s):
        value = float(s)
        return value if math.isfinite(value) else s
    return text


@dataclass
class MetadataRow:
    """One row of a metadata table: the key value, its metadata, and where it came from."""

    key: str
    metadata: dict[str, Any]
    where: str


def read_metadata_table(path: str | Path, key: str, kind: str | None = None) -> list[MetadataRow]:
    """Read per-file metadata from a CSV or JSON file.

    CSV: a header row; column ``key`` names the file, every other column is a (dotted) metadata
    path, cells typed by :func:`parse_cell`, empty cells left out. JSON: a list of objects
    (the ``key`` field names the file, the rest is metadata; a ``metadata`` object is taken
    as is when it is the only other field) or an object mapping file name -> metadata.

    Args:
        path: the table file.
        key: the column/field holding the file name (``file_name``).
        kind: ``"csv"`` or ``"json"``; from the suffix when None.

    Raises:
        ReadError: unreadable file, missing key column, empty or duplicated key (names row).
    """
    path = Path(path)
    kind = kind or ("csv" if path.suffix.lower() in (".csv", ".tsv") else "json")
    rows: list[MetadataRow] = []
    if kind == "csv":
        try:
            with open(path, newline="", encoding="utf-8-sig") as fh:
                reader = csv.reader(fh, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
                header = next(reader, None)
                if header is None:
                    raise ReadError("the CSV file is empty", file=path, fix=f"add a header row with a {key!r} column")
                if key not in header:
                    raise ReadError(f"no {key!r} column; columns are {header}", file=path, where="line 1",
                                    fix="name the file-name column with --key")
                k = header.index(key)
                for lineno, cells in enumerate(reader, start=2):
                    if not any(c.strip() for c in cells):
                        continue
                    where = f"line {lineno}"
                    if len(cells) != len(header):
                        raise ReadError(f"row has {len(cells)} cells, expected {len(header)} as in the header",
                                        file=path, where=where)
                    metadata: dict[str, Any] = {}
                    for name, cell in zip(header, cells):
                        if name == key:
                            continue
                        value = parse_cell(cell)
                        if value is not MISSING:
                            try:
                                set_path(metadata, name, value)
                            except ValueError as exc:
                                raise ReadError(f"column {name!r}: {exc}", file=path, where=where) from exc
                    rows.append(MetadataRow(cells[k].strip(), metadata, where))
        except UnicodeDecodeError as exc:
            raise ReadError(f"not UTF-8 text: {exc}", file=path) from exc
    else:
        data = load_json(path.read_bytes(), file=path)  # finite numbers, bounded ints and depth
        if isinstance(data, dict):
            for name, md in data.items():
                if not isinstance(md, dict):
                    raise ReadError(f"expected an object of metadata, got {value_kind(md)}",
                                    file=path, where=f"#/{name}")
                rows.append(MetadataRow(name, md, f"#/{name}"))
        elif isinstance(data, list):
            for n, obj in enumerate(data):
                where = f"#/{n}"
                if not isinstance(obj, dict) or not isinstance(obj.get(key), str):
                    raise ReadError(f"expected an object with a string {key!r}", file=path, where=where)
                rest = {k: v for k, v in obj.items() if k != key}
                if set(rest) == {"metadata"} and isinstance(rest["metadata"], dict):
                    rest = rest["metadata"]
                rows.append(MetadataRow(obj[key], rest, where))
        else:
            raise ReadError("expected a JSON list of objects or an object of file name -> metadata",
                            file=path)
    seen: dict[str, str] = {}
    for row in rows:
        if not row.key:
            raise ReadError(f"empty {key!r}", file=path, where=row.where)
        if row.key in seen:
            raise ReadError(f"{key} {row.key!r} appears twice (first at {seen[row.key]})",
                            file=path, where=row.where)
        seen[row.key] = row.where
    fields: dict[str, FieldStats] = {}
    for row in rows:
        for p, value in flatten(row.metadata):
            fields.setdefault(p, FieldStats(p)).add(value, row.where)
    try:
        check_consistent(fields, "row")
    except MetadataTypeError as exc:
        raise MetadataTypeError(exc.problem, file=path, fix=exc.fix) from None
    return rows
