"""The Python API: ``load``, ``save``, ``convert``, ``validate``, ``consolidate``, and the
dataset operations ``relabel``, ``merge``, ``split``.

Formats are named the same way everywhere, as on the command line: ``from_format`` is the
format of what is read, ``to_format`` the format of what is written. The older names
(``format`` for load/save/validate, ``src_format``/``dst_format`` for convert) still work.
Options are dicts (``{"gt": "instances.json"}``) or instances of the format's options model.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any, Literal, overload

from pydantic import BaseModel

from annobridge.converters import engine
from annobridge.converters.datasetops import (
    LabelMap,
    merge,
    read_label_map,
    relabel,
    split,
    update_scene_metadata,
)
from annobridge.core.errors import AnnobridgeError, ValidationWarning
from annobridge.core.formats import ConversionReport, Context
from annobridge.core.model import Dataset, DatasetItem, MaterializedDataset
from annobridge.core.segmentation import consolidate

Options = dict[str, Any] | BaseModel | None
"""A format's options: a dict of option names (kebab- or snake_case) or its pydantic model."""


def _one(new: str | None, old: str | None, new_name: str, old_name: str) -> str | None:
    if new is not None and old is not None and new != old:
        raise TypeError(f"give {new_name} or its old name {old_name}, not both")
    return new if new is not None else old


@overload
def load(path: str | os.PathLike[str], from_format: str | None = None, options: Options = None, *,
         stream: Literal[False] = False, format: str | None = None) -> MaterializedDataset: ...
@overload
def load(path: str | os.PathLike[str], from_format: str | None = None, options: Options = None, *,
         stream: Literal[True], format: str | None = None) -> Dataset: ...


def load(
    path: str | os.PathLike[str],
    from_format: str | None = None,
    options: Options = None,
    *,
    stream: bool = False,
    format: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> Dataset:
    """Read a dataset. The format is detected when not given.

    Args:
        path: a file or folder in a known format.
        from_format: a format name (``annobridge formats`` lists them); detected when None.
            ``format`` is the old name.
        options: the format's read options (``{"gt": "instances.json"}`` or the options model).
        stream: keep items as a one-shot lazy iterator instead of a list.
        storage_options: fsspec filesystem arguments when ``path`` is a URL (``s3://...``).

    Returns:
        A :class:`MaterializedDataset` (``items`` is a list), or with ``stream=True`` a
        :class:`Dataset` whose items are read while iterated.

    Raises:
        FormatError: the format is unknown or cannot be detected.
        ReadError: the input is malformed (the message names file and position).
    """
    fmt = _one(from_format, format, "from_format", "format")
    dataset = engine.read_dataset(path, fmt, options, context=Context(storage_options=dict(storage_options or {})))
    if stream:
        return dataset
    items = list(dataset.items)
    return MaterializedDataset(header=dataset.header, items=items, source=dataset.source,
                               format=dataset.format, total=len(items))


def save(
    data: Dataset | Iterable[DatasetItem],
    path: str | os.PathLike[str],
    to_format: str | None = None,
    options: Options = None,
    *,
    overwrite: bool = False,
    workers: int = 1,
    derive: str = "auto",
    geometry: str | None = None,
    format: str | None = None,
    executor: str = "process",
    storage_options: dict[str, Any] | None = None,
) -> ConversionReport:
    """Write a dataset (or plain items) atomically in ``to_format``; returns what was
    converted and dropped.

    ``derive="auto"`` converts annotations the format cannot hold into a kind it holds
    (``geometry`` = ``"box"``, ``"polygon"`` or ``"mask"`` prefers one); ``"none"`` drops them.
    ``format`` is the old name of ``to_format``. ``path`` may be a URL (``s3://...``, with
    fsspec ``storage_options``); ``executor`` is ``"process"``, ``"dask"`` or ``"dask://HOST:PORT"``.

    Raises:
        WriteError: ``path`` exists and ``overwrite`` is False, or writing failed (nothing
            is left behind).
    """
    fmt = _one(to_format, format, "to_format", "format")
    if fmt is None:
        raise TypeError("save() needs to_format, the format to write")
    dataset = data if isinstance(data, Dataset) else Dataset(items=list(data))
    ctx = Context(workers=workers, executor=executor, storage_options=dict(storage_options or {}))
    return engine.write_dataset(dataset, path, fmt, options, overwrite=overwrite, context=ctx,
                                derive=derive, geometry=geometry)


def convert(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    to_format: str | None = None,
    *,
    from_format: str | None = None,
    read_options: Options = None,
    write_options: Options = None,
    map_labels: LabelMap | str | os.PathLike[str] | None = None,
    keep_labels: Iterable[str] | None = None,
    src_format: str | None = None,
    dst_format: str | None = None,
    **engine_options: Any,
) -> ConversionReport:
    """Convert ``source`` to ``destination`` in one streaming pass; returns the report.

    Args:
        source, destination: paths; ``from_format`` is detected when None.
        to_format: the format to write (``dst_format`` is its old name; ``src_format`` is
            the old name of ``from_format``).
        read_options, write_options: the formats' options (dicts or options models).
        map_labels: old label -> new label (``None`` removes), or a JSON/CSV file of them.
        keep_labels: keep only annotations with these labels (after mapping); every removed
            annotation is reported.
        engine_options: ``overwrite``, ``workers``, ``executor``, ``storage_options``,
            ``progress``, ``task`` ... as
            :func:`annobridge.converters.engine.convert` takes them.
    """
    dst = _one(to_format, dst_format, "to_format", "dst_format")
    if dst is None:
        raise TypeError("convert() needs to_format, the format to write")
    src = _one(from_format, src_format, "from_format", "src_format")
    if map_labels is not None or keep_labels is not None:
        engine_options["transform"] = label_transform(map_labels, keep_labels)
    return engine.convert(source, destination, src_format=src, dst_format=dst,
                          read_options=read_options, write_options=write_options, **engine_options)


def label_transform(map_labels: LabelMap | str | os.PathLike[str] | None,
                    keep_labels: Iterable[str] | None) -> Callable[[Dataset, Context], Dataset]:
    """A step for :func:`engine.convert` mapping and filtering labels, reporting removals."""
    mapping = read_label_map(map_labels) if isinstance(map_labels, (str, os.PathLike)) else map_labels
    keep = list(keep_labels) if keep_labels is not None else None

    def step(dataset: Dataset, context: Context) -> Dataset:
        return relabel(dataset, mapping, keep, report=context.report)
    return step


def validate(
    path: str | os.PathLike[str],
    from_format: str | None = None,
    options: Options = None,
    *,
    format: str | None = None,
    write_to: str | None = None,
    write_options: Options = None,
    warnings: bool = False,
) -> list[AnnobridgeError]:
    """Every problem found reading ``path``, in one run (empty when it is valid), and every
    one that writing it in ``write_to`` (default: its own format; ``""``: reading only) would
    refuse. With ``warnings=True`` the list ends with a :class:`ValidationWarning` for each
    thing kept as given but noted (a Nucleus mask pixel value no segment labels, ...), which
    does not make the dataset invalid. ``format`` is the old name of ``from_format``."""
    return engine.validate(path, _one(from_format, format, "from_format", "format"), options,
                           write_to=write_to, write_options=write_options, warnings=warnings)


__all__ = ["AnnobridgeError", "consolidate", "convert", "load", "merge", "read_label_map", "relabel",
           "save", "split", "update_scene_metadata", "validate", "ValidationWarning"]
