"""What the Pascal VOC reader and writer share: class list and colormap, ``labelmap.txt``,
box coordinate conventions, the exact number text, and where the parts of a VOC tree are
(found without the reader, for detection).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

from annobridge.core.errors import ReadError

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)
"""The devkit's classes in mask-index order (0 = background)."""

VOC_PERSON_PARTS: tuple[str, ...] = ("head", "hand", "foot")
VOC_ACTIONS: tuple[str, ...] = ("other", "jumping", "phoning", "playinginstrument", "reading",
                                "ridingbike", "ridinghorse", "running", "takingphoto",
                                "usingcomputer", "walking")
"""The devkit's person layout parts and actions (datumaro's default label map has them too)."""
VOID = 255
"""Mask value of void / object boundaries in SegmentationClass and SegmentationObject PNGs."""
IGNORED = "ignored"
"""datumaro's label for the void colour; a last ``labelmap.txt`` line of that name is no class."""
INFO_KEY = "pascal-voc"
"""``header.info`` key holding dataset-level VOC facts (labelmap present, class lists, other ImageSets)."""

Coordinates = Literal["devkit", "corners"]

# Object and item attribute keys the format itself interprets (everything else on an object
# goes to datumaro's <attributes> list).
OBJECT_KEYS = frozenset({"pose", "truncated", "difficult", "occluded", "actions", "part",
                         "voc_extra", "voc_text", "voc_instance"})


def colormap(n: int = 256) -> list[tuple[int, int, int]]:
    """The devkit's ``VOClabelcolormap``: index bits spread over the high bits of R, G, B."""
    out = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(7, -1, -1):
            r |= (c & 1) << j
            g |= ((c >> 1) & 1) << j
            b |= ((c >> 2) & 1) << j
            c >>= 3
        out.append((r, g, b))
    return out


VOC_COLORMAP = colormap()


# --------------------------------------------------------------------------- labelmap.txt


@dataclass
class LabelEntry:
    """One ``labelmap.txt`` line: ``name:r,g,b:part,part:action,action`` (datumaro's form)."""

    name: str
    color: tuple[int, int, int] | None = None
    parts: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)

    def category_attributes(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.color is not None:
            out["color"] = list(self.color)
        if self.parts:
            out["parts"] = list(self.parts)
        if self.actions:
            out["actions"] = list(self.actions)
        return out


def read_labelmap(path: Path) -> list[LabelEntry]:
    """Parse ``labelmap.txt``; '#' lines are comments. Raises ReadError naming the line."""
    entries: list[LabelEntry] = []
    seen: set[str] = set()
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) != 4:
            raise ReadError(f"labelmap line has {len(fields)} ':'-separated fields, expected 4 "
                            "(name:r,g,b:parts:actions)", file=path, where=f"line {n}")
        name, color_text, parts, actions = fields
        if name in seen:
            raise ReadError(f"label {name!r} is defined twice", file=path, where=f"line {n}")
        seen.add(name)
        color = None
        if color_text:
            try:
                rgb = tuple(int(c) for c in color_text.split(","))
            except ValueError:
                rgb = ()
            if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
                raise ReadError(f"label {name!r} has colour {color_text!r}, expected r,g,b in 0..255",
                                file=path, where=f"line {n}")
            color = rgb  # type: ignore[assignment]
        entries.append(LabelEntry(name, color, [p.strip() for p in parts.split(",") if p.strip()],
                                  [a.strip() for a in actions.split(",") if a.strip()]))
    if entries and entries[-1].name == IGNORED and entries[-1].color in (None, VOC_COLORMAP[VOID]):
        entries.pop()  # void (255), not a class
    return entries


def format_labelmap(entries: list[LabelEntry]) -> str:
    lines = ["# label:color_rgb:parts:actions"]
    for e in entries:
        color = ",".join(str(c) for c in e.color) if e.color else ""
        lines.append(f"{e.name}:{color}:{','.join(e.parts)}:{','.join(e.actions)}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- numbers and boxes

_SHIFT = {"devkit": Decimal(1), "corners": Decimal(0)}


def decimal_of(value: int | float) -> Decimal:
    """The shortest decimal that reads back as ``value`` (``repr``), so sums are exact in text."""
    return Decimal(int(value)) if isinstance(value, int) else Decimal(repr(float(value)))


def number_text(value: Decimal, integral: bool) -> str:
    """A coordinate as VOC text: an int stays ``48``, a float keeps its point (``540.0``)."""
    if integral:
        return str(int(value))
    text = format(value, "f")
    return text if "." in text else text + ".0"


def is_integral_text(token: str) -> bool:
    t = token.strip()
    return t.lstrip("+-").isdigit()


def parse_coordinate(token: str | None, what: str, file: Path, where: str) -> Decimal:
    if token is None or not token.strip():
        raise ReadError(f"{what} is missing or empty", file=file, where=where,
                        fix="a bndbox needs xmin, ymin, xmax and ymax")
    try:
        value = Decimal(token.strip())
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():
        raise ReadError(f"{what} is {token.strip()!r}, expected a number", file=file, where=where)
    return value


def box_from_corners(xmin: Decimal, ymin: Decimal, xmax: Decimal, ymax: Decimal,
                     coordinates: Coordinates) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """VOC corners -> ``x, y, width, height``.

    ``devkit``: pixels are 1-based and inclusive, so pixel ``i`` covers ``[i-1, i]``:
    ``x = xmin - 1``, ``width = xmax - xmin + 1``. ``corners``: the corners are the
    continuous edges already (datumaro, labelformat): ``x = xmin``, ``width = xmax - xmin``.
    """
    s = _SHIFT[coordinates]
    return xmin - s, ymin - s, xmax - xmin + s, ymax - ymin + s


def corners_from_box(x: Decimal, y: Decimal, w: Decimal, h: Decimal,
                     coordinates: Coordinates) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """The inverse of :func:`box_from_corners`."""
    s = _SHIFT[coordinates]
    return x + s, y + s, x + w, y + h


def model_number(value: Decimal, integral: bool) -> int | float:
    return int(value) if integral else float(value)


def corner_texts(x: int | float, y: int | float, w: int | float, h: int | float,
                 coordinates: Coordinates) -> dict[str, str]:
    """The ``bndbox`` text the writer gives a box: exact decimal sums of the values' shortest
    forms; ``xmin`` is whole when ``x`` is an int, ``xmax`` when ``x`` and ``width`` are."""
    xmin, ymin, xmax, ymax = corners_from_box(decimal_of(x), decimal_of(y), decimal_of(w),
                                              decimal_of(h), coordinates)
    xi, yi = isinstance(x, int), isinstance(y, int)
    return {"xmin": number_text(xmin, xi), "ymin": number_text(ymin, yi),
            "xmax": number_text(xmax, xi and isinstance(w, int)),
            "ymax": number_text(ymax, yi and isinstance(h, int))}


_ANNOTATION_ROOT = re.compile(rb"<annotation[\s>/]")


@dataclass
class Layout:
    """Where the parts of one VOC dataset are."""

    root: Path
    annotations: Path
    images: Path | None  # None: images lie beside their XML (flat layout)
    flat: bool = False

    @property
    def imagesets(self) -> Path:
        return self.root / "ImageSets"


def find_layout(path: Path) -> Layout | None:
    """The VOC tree at ``path``: a devkit root (``Annotations/``, ``ImageSets/``,
    ``SegmentationClass/``...), ``VOCdevkit/VOC20xx`` above one, or a flat folder of XMLs.
    Here, not in the reader: detection runs for every source and must not import the reader
    (ElementTree, numpy, the model)."""
    for base in _candidates(path):
        if any((base / d).is_dir() for d in ("Annotations", "SegmentationClass", "SegmentationObject")):
            return Layout(base, base / "Annotations", base / "JPEGImages")
    if path.is_dir():
        subs = sorted(p for p in path.iterdir() if p.is_dir())
        for folder in [path, *subs[:8]]:
            if any(is_voc_xml(p) for p in _first_xmls(folder)):
                return Layout(path, path, None, flat=True)
    return None


def _candidates(path: Path) -> list[Path]:
    out = [path]
    for parent in (path, path / "VOCdevkit"):
        if parent.is_dir():
            subs = [p for p in parent.iterdir() if p.is_dir() and p.name.upper().startswith("VOC")
                    and p.name != "VOCdevkit"]
            if len(subs) == 1:
                out.append(subs[0])
    return out


def _first_xmls(folder: Path, limit: int = 3) -> list[Path]:
    out = []
    for entry in os.scandir(folder):
        if entry.name.endswith(".xml") and entry.is_file():
            out.append(Path(entry.path))
            if len(out) >= limit:
                break
    return out


def is_voc_xml(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return False
    return bool(_ANNOTATION_ROOT.search(head))
