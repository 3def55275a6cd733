"""The Python API: ``load``, ``save``, ``convert``, ``validate``, ``consolidate``."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from annobridge.converters import engine
from annobridge.core.errors import AnnobridgeError
from annobridge.core.formats import ConversionReport, Context
from annobridge.core.model import Dataset, DatasetItem
from annobridge.core.segmentation import consolidate

convert = engine.convert
validate = engine.validate


def load(
    path: str | os.PathLike[str],
    format: str | None = None,
    options: dict[str, Any] | None = None,
    *,
    stream: bool = False,
) -> Dataset:
    """Read a dataset. The format is detected when not given.

    Args:
        path: a file or folder in a known format.
        format: a format name (``annobridge formats`` lists them); detected when None.
        options: the format's read options (``{"gt": "instances.json"}``).
        stream: keep items as a one-shot lazy iterator instead of a list.

    Raises:
        FormatError: the format is unknown or cannot be detected.
        ReadError: the input is malformed (the message names file and position).
    """
    dataset = engine.read_dataset(path, format, options, context=Context())
    return dataset if stream else dataset.materialize()


def save(
    data: Dataset | Iterable[DatasetItem],
    path: str | os.PathLike[str],
    format: str,
    options: dict[str, Any] | None = None,
    *,
    overwrite: bool = False,
    workers: int = 1,
    derive: str = "auto",
    geometry: str | None = None,
) -> ConversionReport:
    """Write a dataset (or plain items) atomically in ``format``; returns what was converted
    and dropped.

    ``derive="auto"`` converts annotations the format cannot hold into a kind it holds
    (``geometry`` = ``"box"``, ``"polygon"`` or ``"mask"`` prefers one); ``"none"`` drops them.

    Raises:
        WriteError: ``path`` exists and ``overwrite`` is False, or writing failed (nothing
            is left behind).
    """
    dataset = data if isinstance(data, Dataset) else Dataset(items=list(data))
    ctx = Context(workers=workers)
    return engine.write_dataset(dataset, path, format, options, overwrite=overwrite, context=ctx,
                                derive=derive, geometry=geometry)


__all__ = ["AnnobridgeError", "consolidate", "convert", "load", "save", "validate"]
