"""What the COCO panoptic reader and writer share: keys, limits and the panoptic id helpers."""

from __future__ import annotations

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


_LAST_DECODED: dict[str, tuple[np.ndarray, bool]] = {}
"""The ids the reader's PNG check decoded last, by PNG path, and whether the file is a plain
RGB PNG that a writer may copy (one entry, this process only)."""


def rgb2id(color: tuple[int, int, int] | list[int]) -> int:
    """panopticapi ``rgb2id``: ``R + 256·G + 65536·B``."""
    return int(color[0]) + 256 * int(color[1]) + 65536 * int(color[2])


def default_color(category_id: int) -> tuple[int, int, int]:
    """A stable colour for a category without ``color`` (derived from its id)."""
    h = zlib.crc32(f"annobridge-category-{category_id}".encode())
    return (h & 255) or 1, (h >> 8) & 255, (h >> 16) & 255

