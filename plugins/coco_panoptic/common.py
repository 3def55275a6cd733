"""What the COCO panoptic reader and writer share: keys, limits and the panoptic id helpers."""

from __future__ import annotations

import threading
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

INFO_KEY = "coco_panoptic"
MAX_ID = 2**24 - 1


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _masks_dir(path: Path) -> Path:
    return path.with_suffix("") if path.suffix.lower() == ".json" else path.with_name(path.name + ".masks")


class _LastDecoded(threading.local):
    """The ids the reader's PNG check decoded last (one PNG, this thread only), for the writer
    or :meth:`~annobridge.plugins.coco_panoptic.read.PanopticMask.load` of the same PNG to take
    instead of decoding it again: reading and writing one item run one after the other in one
    thread (one process, or a worker writing its part). Per thread, so that threaded workers
    (a Dask worker with several threads) never take each other's."""

    path: str | None = None
    ids: np.ndarray | None = None
    copyable: bool = False


_LAST_DECODED = _LastDecoded()


def keep_decoded(path: str, ids: np.ndarray, copyable: bool) -> None:
    """Keep the ids just decoded from ``path`` (replacing the last kept); ``copyable``: the file
    is a plain RGB PNG that a writer keeping its ids may copy byte for byte."""
    _LAST_DECODED.path, _LAST_DECODED.ids, _LAST_DECODED.copyable = path, ids, copyable


def take_decoded(path: str) -> tuple[np.ndarray, bool] | None:
    """The ids kept for ``path`` and whether it is copyable (given once), or None."""
    last = _LAST_DECODED
    if last.path != path or last.ids is None:
        return None
    ids, copyable = last.ids, last.copyable
    last.path, last.ids = None, None
    return ids, copyable


def rgb2id(color: tuple[int, int, int] | list[int]) -> int:
    """panopticapi ``rgb2id``: ``R + 256·G + 65536·B``."""
    return int(color[0]) + 256 * int(color[1]) + 65536 * int(color[2])


def default_color(category_id: int) -> tuple[int, int, int]:
    """A stable colour for a category without ``color`` (derived from its id)."""
    h = zlib.crc32(f"annobridge-category-{category_id}".encode())
    return (h & 255) or 1, (h >> 8) & 255, (h >> 16) & 255

