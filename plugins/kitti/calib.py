"""KITTI calibration files: parsing and formatting (helper of the ``kitti`` package).

The matrices' meaning and the box geometry built on them live in
:mod:`annobridge.core.camera`, shared with other formats and rendering.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from annobridge.core.camera import Calib, Transform
from annobridge.core.errors import ReadError

CALIB_SIZES: dict[str, int] = {
    "P0": 12, "P1": 12, "P2": 12, "P3": 12, "R0_rect": 9, "Tr_velo_to_cam": 12, "Tr_imu_to_velo": 12,
}
"""The object benchmark's calibration keys in file order, and their value counts."""

CALIB_ALIASES = {"R_rect": "R0_rect", "Tr_velo_cam": "Tr_velo_to_cam", "Tr_imu_velo": "Tr_imu_to_velo"}
"""Spellings seen in tracking calibration files (no colon), mapped to the object keys."""

NEEDED_FOR_3D = ("P2", "R0_rect", "Tr_velo_to_cam")

_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def is_number(token: str) -> bool:
    """True for a plain decimal number (no nan/inf/underscores, which ``float`` accepts)."""
    return bool(_NUMBER.match(token))


_NUMBERS = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?: [-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)*")


def all_numbers(tokens: list[str]) -> bool:
    """``all(is_number(t) for t in tokens)`` with one regex match."""
    return bool(_NUMBERS.fullmatch(" ".join(tokens)))


_CACHE: dict[str, Calib] = {}
_CACHE_LIMIT = 256


def read_calib_cached(path: Path) -> Calib:
    """:func:`read_calib`, parsed once per distinct file content (frames of one drive share
    their calibration). The returned dict is shared: treat it as read-only."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        text = fh.read()
    hit = _CACHE.get(text)
    if hit is not None:
        return hit
    calib = read_calib(path)
    if len(_CACHE) >= _CACHE_LIMIT:
        _CACHE.clear()
    _CACHE[text] = calib
    return calib


def read_calib(path: Path) -> Calib:
    """Parse a KITTI calibration file into ``{key: [values, row-major]}`` in file order.

    Keys may end with a colon or not; the tracking spellings ``R_rect``, ``Tr_velo_cam``,
    ``Tr_imu_velo`` are renamed to the object keys. Unknown keys are kept (numbers only).

    Raises:
        ReadError: a line without a key, a non-numeric value, a known key with the wrong
            number of values; the message names the file and line.
    """
    calib: Calib = {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            tokens = line.split()
            if not tokens:
                continue
            key = tokens[0]
            if is_number(key):
                raise ReadError(
                    f"line has no key: it starts with the number {key!r}; expected 'KEY: values' "
                    f"(keys {', '.join(CALIB_SIZES)})", file=path, where=f"line {lineno}",
                    fix="KITTI object calibration files name each matrix, e.g. 'P2: 12 numbers'")
            key = key[:-1] if key.endswith(":") else key
            if not key:
                raise ReadError("empty key before ':'", file=path, where=f"line {lineno}")
            key = CALIB_ALIASES.get(key, key)
            values = []
            for col, tok in enumerate(tokens[1:], start=2):
                if not is_number(tok):
                    raise ReadError(f"value {col - 1} of {key} is not a number: {tok!r}", file=path,
                                    where=f"line {lineno}",
                                    fix="a calibration line is 'KEY: v1 v2 ...' with numbers only")
                values.append(float(tok))
                if not math.isfinite(values[-1]):
                    raise ReadError(f"value {col - 1} of {key} is {tok!r}, out of range for a double",
                                    file=path, where=f"line {lineno}", fix="calibration values must be finite")
            expected = CALIB_SIZES.get(key)
            if expected is not None and len(values) != expected:
                raise ReadError(f"{key} has {len(values)} values, expected {expected}", file=path,
                                where=f"line {lineno}")
            if key in calib:
                raise ReadError(f"key {key} appears twice", file=path, where=f"line {lineno}")
            calib[key] = values
    if not missing_3d_keys(calib):
        _check_invertible(calib, path)
    return calib


def _check_invertible(calib: Calib, path: Path) -> None:
    """A LiDAR frame needs R0_rect x Tr_velo_to_cam to be invertible with finite numbers."""
    try:
        t = Transform(calib)
        ok = bool(np.isfinite(t.rect_to_velo).all() and np.isfinite(t.velo_to_rect).all())
    except np.linalg.LinAlgError:
        ok = False
    if not ok:
        raise ReadError("R0_rect x Tr_velo_to_cam is singular (no LiDAR frame can be derived)", file=path,
                        fix="check the calibration's R0_rect and Tr_velo_to_cam")


def missing_3d_keys(calib: Calib) -> list[str]:
    return [k for k in NEEDED_FOR_3D if k not in calib]


def format_calib(calib: Calib) -> str:
    """The calibration as KITTI text: known keys in the official order, then the rest,
    values in ``%.12e`` (the official files' formatting; re-reading gives the same floats)."""
    keys = [k for k in CALIB_SIZES if k in calib] + [k for k in calib if k not in CALIB_SIZES]
    lines = [f"{k}: " + " ".join("%.12e" % v for v in calib[k]) for k in keys]
    return "\n".join(lines) + "\n\n"
