"""What the KITTI reader and writer share: the label map, the number formatting of a row
(the reader compares a row's text with it, the writer writes it), the calibration transform
and image sizes. The row grammar is in the package docstring."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annobridge.core import camera
from annobridge.core.errors import FormatError
from annobridge.core.limits import open_image
from annobridge.plugins.kitti import calib as kitti_calib

SENTINEL_3D = (-1, -1, -1, -1000, -1000, -1000, -10)
TRACKING_DONTCARE_3D = (-1000, -1000, -1000, -10, -1, -1, -1)


def load_label_map(path: Path | None) -> dict[str, str | None]:
    """Read a ``label-map`` file: JSON object or two-column text."""
    if path is None:
        return {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(f"cannot read label map: {getattr(exc, 'strerror', None) or exc}", file=path) from exc
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise FormatError(f"label map is not valid JSON: {exc}", file=path) from exc
        bad = [k for k, v in data.items() if v is not None and not isinstance(v, str)]
        if bad:
            raise FormatError(f"label map target of {bad[0]!r} is not a string or null", file=path)
        return data
    mapping: dict[str, str | None] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise FormatError(f"expected two columns 'source<TAB>target', found {len(parts)}",
                              file=path, where=f"line {lineno}")
        mapping[parts[0].strip()] = parts[1].strip()
    return mapping


# --------------------------------------------------------------------------- row rendering


@dataclass(frozen=True)
class Style:
    """Number formatting of a label flavour."""

    decimals: int
    ints_for_sentinels: bool  # object: "-1", "-1000"; tracking: "-1000.000000"
    dontcare_3d: tuple[int, ...]

    @functools.cached_property
    def box_format(self) -> str:
        """The four box numbers in one ``%`` format (``%.2f %.2f %.2f %.2f``)."""
        return " ".join([f"%.{self.decimals}f"] * 4)

    @functools.cached_property
    def sentinel_text(self) -> tuple[str, str]:
        """The 3D columns of a row without 3D geometry (every box row of a 2D dataset has
        them), formatted once: (an object's, a DontCare row's)."""
        return " ".join(_sentinel_tokens(self, False)), " ".join(_sentinel_tokens(self, True))


OBJECT_STYLE = Style(2, True, SENTINEL_3D)
TRACKING_STYLE = Style(6, False, TRACKING_DONTCARE_3D)


def _fixed(v: float, decimals: int) -> str:
    """Fixed-point text; a value that rounds to zero is written without a minus sign (the
    sign of a recomputed zero is noise)."""
    text = f"{v:.{decimals}f}"
    if text.startswith("-") and not text.strip("-0."):
        return text[1:]
    return text


def _fmt(v: float, style: Style, sentinel: bool = False) -> str:
    if sentinel and style.ints_for_sentinels:
        return str(int(v))
    return _fixed(v, style.decimals)


def _attr_fmt(v: Any, style: Style) -> str:
    if type(v) is int:
        return str(v)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        v = float(v)
    if isinstance(v, int):
        return str(v)
    return f"{v:.{style.decimals}f}"


def _same(v: float, tok: str) -> bool:
    return abs(v - float(tok)) <= 1e-6 * max(1.0, abs(v))


def _decimals(tok: str) -> int:
    if "e" in tok or "E" in tok:
        return 6
    return len(tok.split(".", 1)[1]) if "." in tok else 0


def render_numbers(*, truncated: Any, occluded: Any, alpha: Any,
                   bbox: tuple[float, float, float, float],
                   geom: tuple[float, ...] | None, dont_care: bool, score: Any,
                   text: list[str] | None, style: Style) -> list[str]:
    """The numeric columns of a row as tokens (:func:`render_text` split at its spaces)."""
    return render_text(truncated=truncated, occluded=occluded, alpha=alpha, bbox=bbox, geom=geom,
                       dont_care=dont_care, score=score, text=text, style=style).split(" ")


def render_text(*, truncated: Any, occluded: Any, alpha: Any,
                bbox: tuple[float, float, float, float],
                geom: tuple[float, ...] | None, dont_care: bool, score: Any,
                text: list[str] | None, style: Style) -> str:
    """The numeric columns of a row, joined by single spaces. ``geom`` = (h, w, l, x, y, z, ry)
    or None (sentinels, or the original text's tokens when there is one). ``text`` = the row's
    numbers as written: a token is reused when its value equals the new one.

    Without ``text`` (every row the writer makes from other formats) the four box numbers
    are formatted by one ``%`` operation; only a negative value takes the per-number path.
    """
    return row_text(truncated, occluded, alpha, bbox, geom, dont_care, score, text, style)


def row_text(truncated: Any, occluded: Any, alpha: Any, bbox: tuple[float, float, float, float],
             geom: tuple[float, ...] | None, dont_care: bool, score: Any, text: list[str] | None,
             style: Style) -> str:
    """:func:`render_text` with positional arguments (the writer calls it once per row)."""
    if text:
        return " ".join(_tokens_like(truncated, occluded, alpha, bbox, geom, score, text, style))
    box = style.box_format % bbox
    if "-" in box:  # a value that rounds to -0 loses its sign (_fixed)
        box = " ".join(_fixed(v, style.decimals) for v in bbox)
    if type(truncated) is int and type(occluded) is int and type(alpha) is int:  # -1 -1 -10 when absent
        head = f"{truncated} {occluded} {alpha} {box} "
    else:
        head = f"{_attr_fmt(truncated, style)} {_attr_fmt(occluded, style)} {_attr_fmt(alpha, style)} {box} "
    if geom is None:
        row = head + style.sentinel_text[dont_care]
    else:
        row = head + " ".join(_fmt(v, style) for v in geom)
    if score is not None:
        row += " " + _score_fmt(score, style)
    return row


def _score_fmt(score: Any, style: Style) -> str:
    return _attr_fmt(score, style) if isinstance(score, int) else f"{float(score):.{max(style.decimals, 4)}f}"


def _tokens_like(truncated: Any, occluded: Any, alpha: Any, bbox: tuple[float, float, float, float],
                 geom: tuple[float, ...] | None, score: Any, text: list[str], style: Style) -> list[str]:
    """The columns of a row read from ``text``: each token kept when its value is unchanged."""
    out: list[str] = []
    for i, v in enumerate((truncated, occluded, alpha)):
        tok = text[i]
        if isinstance(v, (int, float)) and _same(float(v), tok):
            out.append(tok)
        else:
            out.append(_attr_fmt(v, style))
    for i, v in enumerate(bbox, start=3):
        out.append(_tok(v, text, i, style))
    if geom is None:
        out.extend(text[7:14])
    else:
        out.extend(_tok(v, text, i, style) for i, v in enumerate(geom, start=7))
    if score is not None:
        if len(text) > 14 and isinstance(score, (int, float)) and _same(float(score), text[14]):
            out.append(text[14])
        else:
            out.append(_score_fmt(score, style))
    return out


@functools.cache
def _sentinel_tokens(style: Style, dont_care: bool) -> tuple[str, ...]:
    """The 3D columns of a row without 3D geometry, formatted once per style (every box row
    of a 2D dataset has them)."""
    sentinels = style.dontcare_3d if dont_care else SENTINEL_3D
    return tuple(_fmt(s, style, sentinel=True) for s in sentinels)


def _tok(v: float, text: list[str] | None, i: int, style: Style) -> str:
    if text:
        tok = text[i]
        if _same(v, tok):
            return tok
        d = _decimals(tok)
        return _fixed(v, max(d, style.decimals))
    return _fmt(v, style)


def _image_size(path: Path | None) -> tuple[int | None, int | None]:
    if path is None:
        return None, None
    with open_image(path) as im:  # header only; a broken or oversized file is a ReadError
        w, h = im.size
    return int(w), int(h)


def _transform(calib: camera.Calib | None) -> camera.Transform | None:
    if calib is None or kitti_calib.missing_3d_keys(calib):
        return None
    return camera.transform_of(calib)
