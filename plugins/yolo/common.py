"""What the YOLO package declaration and its writer share: the kinds each task's rows hold."""

from __future__ import annotations

HELD = {
    "detect": frozenset({"box"}),
    "segment": frozenset({"box", "polygon"}),
    "pose": frozenset({"box", "keypoints"}),
    "obb": frozenset({"oriented_box", "polygon"}),
}
"""Kinds each task's rows hold (obb holds only polygons that were non-rectangular OBB quads)."""
TASKS = tuple(HELD)
HELD["auto"] = frozenset().union(*HELD.values())
