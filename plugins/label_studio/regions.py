"""Label Studio regions <-> model annotations: percent <-> pixel geometry and the names of things.

Label Studio keeps coordinates in percent of ``original_width`` / ``original_height``; a
rectangle's ``x, y`` is its own top-left corner and ``rotation`` (degrees, clockwise with y
down) turns it about that corner. The model keeps pixels and turns oriented boxes about
their centre; the functions here convert both ways and nothing else (the package docstring
has the full mapping).
"""

from __future__ import annotations

import math
from typing import Any

KINDS = frozenset({"box", "oriented_box", "polygon", "keypoints", "object_mask", "category", "multicategory"})
"""Model kinds Label Studio image regions hold."""

LABELS_KEY = {
    "rectanglelabels": "rectanglelabels", "polygonlabels": "polygonlabels",
    "keypointlabels": "keypointlabels", "brushlabels": "brushlabels",
    "rectangle": None, "polygon": None, "keypoint": None, "brush": None,
}
"""Region types this plugin maps, and the ``value`` key of their labels (None: unlabelled tool)."""

GEOMETRY_KEYS = {
    "rectangle": ("x", "y", "width", "height", "rotation"),
    "polygon": ("points",),
    "keypoint": ("x", "y"),
    "brush": ("rle", "format"),
}
"""``value`` keys that become geometry, per tool (the ``...labels`` types share their tool's)."""

TYPE_FOR_KIND = {"box": "rectanglelabels", "oriented_box": "rectanglelabels", "polygon": "polygonlabels",
                 "keypoints": "keypointlabels", "object_mask": "brushlabels"}
"""The region type the writer gives each model kind."""

FROM_NAME_FOR_KIND = {"box": "label", "oriented_box": "label", "polygon": "polygon",
                      "keypoints": "keypoint", "object_mask": "brush", "category": "choice",
                      "multicategory": "taxonomy"}
"""The control tag name (``from_name``) the writer uses when the annotation names none."""


def tool(region_type: str) -> str:
    """``rectanglelabels`` -> ``rectangle``: the drawing tool behind a region type."""
    return region_type.removesuffix("labels")


def size_option(value: str | None) -> tuple[int, int] | None:
    """``(width, height)`` of a ``WIDTHxHEIGHT`` option value, None when unset.

    Raises:
        ValueError: the value is not two positive integers joined by ``x``.
    """
    if value is None:
        return None
    parts = value.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"expected WIDTHxHEIGHT in pixels such as 640x480, got {value!r}")
    return int(parts[0]), int(parts[1])


def normal_rotation(degrees: float) -> float:
    """The same angle in ``(-180, 180]`` (how the model reads it)."""
    r = math.fmod(degrees, 360.0)
    if r <= -180.0:
        r += 360.0
    elif r > 180.0:
        r -= 360.0
    return r


def studio_rotation(degrees: float) -> float:
    """The same angle in ``[0, 360)``, as Label Studio keeps it."""
    r = math.fmod(degrees, 360.0)
    if r < 0:
        r += 360.0
    return 0.0 if r >= 360.0 else r


def rectangle_to_model(value: dict[str, Any], width: int, height: int) -> dict[str, float]:
    """A rectangle's fields in pixels: ``x, y, width, height`` when unrotated, else the
    oriented box's ``cx, cy, width, height, rotation`` (centre-based)."""
    x = value["x"] * width / 100
    y = value["y"] * height / 100
    w = value["width"] * width / 100
    h = value["height"] * height / 100
    rotation = normal_rotation(float(value.get("rotation") or 0))
    if rotation == 0:
        return {"x": x, "y": y, "width": w, "height": h}
    t = math.radians(rotation)
    c, s = math.cos(t), math.sin(t)
    return {"cx": x + w / 2 * c - h / 2 * s, "cy": y + w / 2 * s + h / 2 * c,
            "width": w, "height": h, "rotation": rotation}


def box_to_studio(x: float, y: float, w: float, h: float, width: int, height: int) -> dict[str, float]:
    """An axis-aligned box in pixels as Label Studio percent ``x, y, width, height, rotation``."""
    return {"x": x * 100 / width, "y": y * 100 / height,
            "width": w * 100 / width, "height": h * 100 / height, "rotation": 0}


def oriented_box_to_studio(cx: float, cy: float, w: float, h: float, rotation: float,
                           width: int, height: int) -> dict[str, float]:
    """A centre-based oriented box in pixels as Label Studio's corner-based percent rectangle."""
    t = math.radians(rotation)
    c, s = math.cos(t), math.sin(t)
    x = cx - w / 2 * c + h / 2 * s
    y = cy - w / 2 * s - h / 2 * c
    out = box_to_studio(x, y, w, h, width, height)
    out["rotation"] = studio_rotation(rotation)
    return out


def points_to_model(points: list[list[float]], width: int, height: int) -> list[float]:
    """``[[x%, y%], ...]`` -> a flat pixel ring ``[x0, y0, x1, y1, ...]``."""
    return [v for x, y in points for v in (x * width / 100, y * height / 100)]


def points_to_studio(ring: list[float], width: int, height: int) -> list[list[float]]:
    """A flat pixel ring -> ``[[x%, y%], ...]``."""
    return [[ring[i] * 100 / width, ring[i + 1] * 100 / height] for i in range(0, len(ring), 2)]
