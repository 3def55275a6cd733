"""Writing metadata onto a dataset in place: import from a table, compute from images.

Pure library code (no click, no printing): the ``annobridge metadata`` commands are thin
layers over :func:`import_metadata` and :func:`compute_metadata`. Both read the whole
dataset first, check everything, and only then save it back in its own format through
:func:`annobridge.converters.engine.write_dataset` (atomic, ``overwrite=True``): when any
row fails, nothing is written.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annobridge.converters import engine
from annobridge.core.errors import FormatError, MetadataTypeError, ReadError
from annobridge.core.formats import ConversionReport, Context
from annobridge.core.limits import open_image
from annobridge.core.metadata import (
    UPDATE_MODES,
    check_consistent,
    infer_fields,
    read_metadata_table,
)
from annobridge.core.model import Dataset, DatasetItem, item_path
from annobridge.core.plugins import FormatRegistry, call_each, get_plugin_manager


@dataclass
class MetadataResult:
    """What a metadata command did."""

    format: str
    items: int = 0
    updated: int = 0
    skipped_unknown: list[str] = field(default_factory=list)
    skipped_no_image: list[str] = field(default_factory=list)
    report: ConversionReport | None = None


def _load(path: Path, format: str | None, options: dict[str, Any] | None,
          registry: FormatRegistry) -> tuple[Dataset, str]:
    fmt = engine.resolve_reader(path, format, registry)
    if fmt.write is None:
        raise FormatError(f"format {fmt.name!r} cannot be written, so metadata cannot be saved back")
    if not fmt.capabilities.item_metadata:
        raise FormatError(f"format {fmt.name!r} holds no item metadata",
                          fix="convert the dataset to a format that does (jsonl, lightly, nucleus)")
    dataset = engine.read_dataset(path, fmt.name, options, context=Context(), registry=registry)
    return dataset.materialize(), fmt.name


def _names(item: DatasetItem, root: Path) -> set[str]:
    names = {item.reference_id}
    fn = item.attributes.get("file_name") if isinstance(item.attributes, dict) else None
    if isinstance(fn, str):
        names.update({fn, os.path.basename(fn)})
    if item.image_location:
        loc = item.image_location
        names.update({loc, os.path.basename(loc)})
        p = item_path(item)
        if p is not None:
            try:
                names.add(os.path.relpath(p, root).replace(os.sep, "/"))
            except ValueError:
                pass
    return names


def _save(dataset: Dataset, path: Path, fmt: str, write_options: dict[str, Any] | None,
          registry: FormatRegistry) -> ConversionReport:
    dataset.source = None
    dataset.format = None
    return engine.write_dataset(dataset, path, fmt, write_options, overwrite=True,
                                context=Context(), registry=registry)


def import_metadata(
    path: str | os.PathLike[str],
    table: str | os.PathLike[str],
    *,
    key: str = "file_name",
    table_kind: str | None = None,
    replace: bool = False,
    skip_unknown: bool = False,
    scenes: bool = False,
    format: str | None = None,
    read_options: dict[str, Any] | None = None,
    write_options: dict[str, Any] | None = None,
    registry: FormatRegistry | None = None,
) -> MetadataResult:
    """Write per-file metadata from a CSV/JSON table onto a dataset and save it back.

    A row's key matches an item by reference id, image location, the image path relative
    to the dataset's folder, the image's base name (when unique) or ``attributes["file_name"]``.

    Args:
        path: the dataset, in any readable and writable format holding item metadata.
        table: the CSV or JSON file (see :func:`annobridge.core.metadata.read_metadata_table`).
        key: the table column naming the file.
        table_kind: ``"csv"`` or ``"json"``; from the suffix when None.
        replace: replace each matched item's metadata (keys not in the row are deleted);
            default merge (top-level keys added or overwritten).
        skip_unknown: skip rows naming no item (counted) instead of failing.
        scenes: rows name scenes by reference id (Nucleus ``update_scene_metadata``) instead
            of items.

    Raises:
        ReadError: a bad row, an unknown or ambiguous file name (nothing is written).
        MetadataTypeError: the result would hold a key with two types.
    """
    reg = registry if registry is not None else FormatRegistry.from_manager(get_plugin_manager())
    path = Path(path)
    rows = read_metadata_table(table, key, table_kind)
    dataset, fmt = _load(path, format, read_options, reg)
    if scenes:
        return _import_scene_metadata(dataset, fmt, path, rows, key, table, replace, skip_unknown,
                                      write_options, reg)
    items: list[DatasetItem] = dataset.items  # type: ignore[assignment]
    root = path if path.is_dir() else path.parent
    index: dict[str, list[int]] = {}
    for n, item in enumerate(items):
        for name in _names(item, root):
            index.setdefault(name, []).append(n)
    result = MetadataResult(format=fmt, items=len(items))
    update = UPDATE_MODES["replace" if replace else "merge"]
    planned: dict[int, dict[str, Any]] = {}
    for row in rows:
        hits = sorted(set(index.get(row.key, [])))
        if not hits:
            if skip_unknown:
                result.skipped_unknown.append(row.key)
                continue
            raise ReadError(f"{key} {row.key!r} names no item of the dataset {path}", file=table,
                            where=row.where, fix="fix the name, or pass --skip-unknown to skip such rows")
        if len(hits) > 1:
            refs = ", ".join(repr(items[i].reference_id) for i in hits[:3])
            raise ReadError(f"{key} {row.key!r} matches several items ({refs})", file=table,
                            where=row.where, fix="use the full relative path or the reference id")
        i = hits[0]
        if i in planned:
            raise ReadError(f"{key} {row.key!r} names item {items[i].reference_id!r}, already set by another row",
                            file=table, where=row.where)
        planned[i] = update(items[i].metadata, row.metadata)
    for i, md in planned.items():
        items[i] = items[i].model_copy(update={"metadata": md})
    _check_items(items)
    result.updated = len(planned)
    result.report = _save(dataset, path, fmt, write_options, reg)
    return result


def _import_scene_metadata(dataset: Dataset, fmt: str, path: Path, rows: list[Any], key: str,
                           table: str | os.PathLike[str], replace: bool, skip_unknown: bool,
                           write_options: dict[str, Any] | None, reg: FormatRegistry) -> MetadataResult:
    """:func:`import_metadata` for scenes: each row names a scene reference id."""
    from annobridge.converters.datasetops import update_scene_metadata

    result = MetadataResult(format=fmt, items=len(dataset.header.scenes))
    mapping: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.key not in dataset.header.scenes:
            if skip_unknown:
                result.skipped_unknown.append(row.key)
                continue
            raise ReadError(f"{key} {row.key!r} names no scene of the dataset {path}", file=table,
                            where=row.where, fix="use the scene's reference id, or pass --skip-unknown")
        if row.key in mapping:
            raise ReadError(f"{key} {row.key!r} names a scene already set by another row", file=table,
                            where=row.where)
        mapping[row.key] = row.metadata
    result.updated = len(update_scene_metadata(dataset.header, mapping, replace=replace))
    fields = infer_fields((ref, sc.metadata) for ref, sc in dataset.header.scenes.items())
    check_consistent(fields, "scene")
    result.report = _save(dataset, path, fmt, write_options, reg)
    return result


def _check_items(items: list[DatasetItem]) -> None:
    fields = infer_fields((it.reference_id, it.metadata) for it in items)
    try:
        check_consistent(fields)
    except MetadataTypeError as exc:
        raise MetadataTypeError(exc.problem, fix=exc.fix) from None


def available_stats(registry_pm: Any | None = None) -> list[str]:
    """Every stat name offered by a plugin's ``metadata_stats`` hook."""
    pm = registry_pm or get_plugin_manager()
    names: list[str] = []
    for _, offered in call_each(pm, "metadata_stats"):
        for name in offered or []:
            if name not in names:
                names.append(name)
    return names


def compute_metadata(
    path: str | os.PathLike[str],
    stats: list[str],
    *,
    format: str | None = None,
    read_options: dict[str, Any] | None = None,
    write_options: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
    plugin_manager: Any | None = None,
) -> MetadataResult:
    """Compute image statistics with the ``compute_metadata`` hook, merge them into each
    item's metadata and save the dataset back. Items without a readable local image are
    skipped and listed.

    Raises:
        FormatError: a stat name no plugin offers.
        MetadataTypeError: a computed key clashes in type with existing metadata.
    """

    pm = plugin_manager or get_plugin_manager()
    known = available_stats(pm)
    unknown = [s for s in stats if s not in known]
    if unknown:
        raise FormatError(f"unknown stat(s) {', '.join(unknown)}", fix=f"known stats: {', '.join(known)}")
    reg = FormatRegistry.from_manager(pm)
    path = Path(path)
    dataset, fmt = _load(path, format, read_options, reg)
    items: list[DatasetItem] = dataset.items  # type: ignore[assignment]
    result = MetadataResult(format=fmt, items=len(items))
    for n, item in enumerate(items):
        p = item_path(item)
        if p is None or not p.is_file():
            result.skipped_no_image.append(item.reference_id)
        else:
            with open_image(p, item=item.reference_id) as img:
                img.load()
                outputs = [out for _, out in call_each(pm, "compute_metadata", item=item, image=img,
                                                         stats=list(stats))]
            computed: dict[str, Any] = {}
            for out in reversed(outputs):  # trylast built-ins come last: others win
                if out:
                    computed.update(out)
            if computed:
                items[n] = item.model_copy(update={"metadata": UPDATE_MODES["merge"](item.metadata, computed)})
                result.updated += 1
        if progress is not None:
            progress(n + 1, len(items))
    _check_items(items)
    result.report = _save(dataset, path, fmt, write_options, reg)
    return result
