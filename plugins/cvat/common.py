"""What the CVAT reader and writer share: attribute keys, number text, CVAT's mask RLE and
the skeleton ``<svg>`` of a label.

CVAT's mask RLE (``<mask rle="..." left top width height>``): run lengths over the
``width x height`` box at ``left, top``, **row-major**, alternating background and
foreground and starting with background (a box whose first pixel is foreground starts
with a 0 run). :func:`rle_to_box` and :func:`box_to_rle` are exact inverses.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

# Annotation attribute keys (see the spec in plugins/cvat/__init__.py).
OCCLUDED = "occluded"
Z_ORDER = "z_order"
SOURCE = "source"
KEYFRAME = "keyframe"
LABEL_ATTRIBUTES = "label_attributes"
ELLIPSE = "cvat_ellipse"
POINTS_SHAPE = "cvat_points"
MASK_BOX = "cvat_mask_box"
ELEMENTS = "cvat_elements"
TRACK_ATTRS = "cvat_track"
XML_EXTRA = "cvat_xml"
SHAPE_XML_KEYS = frozenset({"label", "occluded", "z_order", "source", "group_id", "frame", "outside", "keyframe",
                            "xtl", "ytl", "xbr", "ybr", "rotation", "points", "cx", "cy", "rx", "ry",
                            "rle", "left", "top", "width", "height"})
"""XML attributes of a shape element that the mapping reads; others are kept in ``cvat_xml``."""
# Item attribute keys.
IMAGE_ATTRS = "cvat"
OUTSIDE = "cvat_outside"
# Category attribute keys.
COLOR = "color"
LABEL_TYPE = "cvat_type"
ATTRIBUTE_SPECS = "cvat_attributes"
SVG = "cvat_svg"
SUBLABELS = "cvat_elements"
LABEL_EXTRA = "cvat_extra"

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif",
                              ".jpe", ".jp2", ".pbm", ".pgm", ".ppm", ".pcd", ".bin"})
"""Extensions dropped from an image name to make the item's reference id."""


def number_text(v: float | int) -> str:
    """The shortest text that reads back as the same number (``4``, ``4.5``, ``0.1``)."""
    if type(v) is float:
        text = repr(v)
        return text[:-2] if text.endswith(".0") else text
    if type(v) is int:
        return str(v)
    if isinstance(v, bool):
        return str(int(v))
    return number_text(float(v) if not float(v).is_integer() else int(v))


def clean(v: float) -> float:
    """A value computed by subtraction or halving, rounded at 1e-9 px so that arithmetic
    noise (``98.33000000000004``) does not travel on to other formats."""
    return round(v, 9) + 0.0


def rle_to_box(counts: list[int], width: int, height: int) -> np.ndarray:
    """Decode CVAT's row-major run lengths into a ``(height, width)`` uint8 array of 0/1."""
    flat = np.zeros(width * height, dtype=np.uint8)
    ends = np.cumsum(counts)
    starts = ends - np.asarray(counts)
    for s, e in zip(starts[1::2], ends[1::2]):
        flat[s:e] = 1
    return flat.reshape(height, width)


def box_to_rle(box: np.ndarray) -> list[int]:
    """CVAT's run lengths of a 2D 0/1 array, row-major, starting with a background run."""
    flat = np.asarray(box, dtype=bool).ravel()
    if flat.size == 0:
        return []
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    runs = np.diff(bounds).tolist()
    return ([0] + runs) if flat[0] else runs


def tight_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """``left, top, width, height`` of the foreground, or None for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


_SVG_TAG = re.compile(r"<(line|circle)\b([^>]*)>")
_SVG_ATTR = re.compile(r"([\w:-]+)\s*=\s*\"([^\"]*)\"")


def svg_edges(svg: str, names: list[str]) -> list[tuple[int, int]]:
    """Skeleton edges (0-based indices into ``names``) drawn in a CVAT skeleton ``<svg>``.

    Circles map ``data-node-id`` to ``data-label-name``; lines join two node ids
    (``data-node-from``, ``data-node-to``). Edges whose nodes name no element are skipped.
    """
    node_name: dict[str, str] = {}
    lines: list[tuple[str, str]] = []
    for tag, body in _SVG_TAG.findall(svg):
        attrs = dict(_SVG_ATTR.findall(body))
        if tag == "circle" and "data-node-id" in attrs:
            node_name[attrs["data-node-id"]] = attrs.get("data-label-name", attrs["data-node-id"])
        elif tag == "line" and "data-node-from" in attrs and "data-node-to" in attrs:
            lines.append((attrs["data-node-from"], attrs["data-node-to"]))
    index = {n: i for i, n in enumerate(names)}
    edges = []
    for a, b in lines:
        ia, ib = index.get(node_name.get(a, "")), index.get(node_name.get(b, ""))
        if ia is not None and ib is not None:
            edges.append((ia, ib))
    return edges


def make_svg(names: list[str], edges: list[tuple[int, int]]) -> str:
    """A CVAT skeleton ``<svg>`` for ``names`` (nodes on a circle) and ``edges`` (0-based):
    what CVAT's label editor writes, so the skeleton opens in CVAT."""
    n = max(len(names), 1)
    pos = [(50 + 40 * math.cos(2 * math.pi * i / n), 50 + 40 * math.sin(2 * math.pi * i / n))
           for i in range(len(names))]
    parts = []
    for a, b in edges:
        (x1, y1), (x2, y2) = pos[a], pos[b]
        parts.append(f'<line x1="{x1:.3f}" y1="{y1:.3f}" x2="{x2:.3f}" y2="{y2:.3f}" stroke="black" '
                     f'data-type="edge" data-node-from="{a + 1}" stroke-width="0.5" data-node-to="{b + 1}"></line>')
    for i, name in enumerate(names):
        x, y = pos[i]
        label = name.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
        parts.append(f'<circle r="1.5" stroke="black" fill="#b3b3b3" cx="{x:.3f}" cy="{y:.3f}" stroke-width="0.1" '
                     f'data-type="element node" data-element-id="{i + 1}" data-node-id="{i + 1}" '
                     f'data-label-name="{label}"></circle>')
    return "".join(parts)


def tree(elem: Any) -> list[Any]:
    """A parsed element as JSON: ``[tag, text, [children...]]`` (text None when blank)."""
    text = elem.text if elem.text and elem.text.strip() else None
    return [elem.tag, text, [tree(c) for c in elem.children]]


def raw(elem: Any) -> list[Any]:
    """A parsed element kept verbatim as JSON: ``[tag, {attributes}, text, [children...]]``."""
    text = elem.text if elem.text and elem.text.strip() else None
    return [elem.tag, dict(elem.attrib), text, [raw(ch) for ch in elem.children]]
