"""``project()``: what a round trip must preserve, as plain comparable data.

A projection keeps, per item, what the format's Capabilities say it holds, and normalises
what formats legitimately choose for themselves: annotation order within an item, ids,
format attributes, and the raw values of an index mask (a panoptic writer may renumber
segments; what must survive is which label each pixel carries).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from annobridge.core.formats import Capabilities
from annobridge.core.model import Dataset, DatasetItem


def _r(v: float | None) -> float | None:
    """Round to 6 decimals; ``+ 0.0`` turns -0.0 (a tiny negative rounding error) into 0.0."""
    return None if v is None else round(float(v), 6) + 0.0


def _geometry(ann: Any) -> Any:
    t = ann.type
    if t == "box":
        return (_r(ann.x), _r(ann.y), _r(ann.width), _r(ann.height))
    if t == "oriented_box":
        return (_r(ann.cx), _r(ann.cy), _r(ann.width), _r(ann.height), _r(ann.rotation))
    if t == "polygon":
        return tuple(tuple(_r(v) for v in ring) for ring in ann.rings)
    if t == "line":
        return tuple(_r(v) for v in ann.vertices)
    if t == "keypoints":
        kp = ann.keypoints
        pts = []
        for i in range(0, len(kp), 3):
            v = int(kp[i + 2])
            pts.append((None, None, 0) if v == 0 else (_r(kp[i]), _r(kp[i + 1]), v))
        return (tuple(ann.names), tuple(pts), tuple(tuple(e) for e in ann.skeleton or ()))
    if t == "cuboid":
        p, d = ann.position, ann.dimensions
        return (ann.frame, _r(p.x), _r(p.y), _r(p.z), _r(d.x), _r(d.y), _r(d.z), _r(ann.yaw))
    if t == "multicategory":
        return tuple(sorted(ann.labels))
    if t == "object_mask":
        return (tuple(ann.size), ann.to_array().tobytes())
    if t == "segmentation":
        arr = ann.mask.load()
        labels = {s.index: s.label for s in ann.annotations}
        names = sorted(set(labels.values()))
        code = {name: i + 1 for i, name in enumerate(names)}
        lut = np.vectorize(lambda v: code.get(labels.get(int(v), ""), 0), otypes=[np.int64])
        return (tuple(names), arr.shape, lut(arr).tobytes() if arr.size else b"")
    return None


def project_annotation(ann: Any, caps: Capabilities) -> tuple:
    label = getattr(ann, "label", None)
    meta = tuple(sorted(ann.metadata.items())) if caps.annotation_metadata else ()
    conf = _r(ann.confidence)
    return (ann.type, label, repr(_geometry(ann)), conf, repr(meta))


def project_item(item: DatasetItem, caps: Capabilities) -> dict[str, Any]:
    return {
        "reference_id": item.reference_id,
        "size": (item.width, item.height),
        "metadata": item.metadata if caps.item_metadata else None,
        "annotations": sorted(project_annotation(a, caps) for a in item.annotations),
        "predictions": sorted(project_annotation(a, caps) for a in item.predictions),
    }


def project(dataset: Dataset | list[DatasetItem], caps: Capabilities) -> list[dict[str, Any]]:
    """Items as comparable dicts, sorted by reference id."""
    items = dataset.items if isinstance(dataset, Dataset) else dataset
    return sorted((project_item(i, caps) for i in items), key=lambda d: d["reference_id"])


FLOAT_TOLERANCE = 1e-9
"""Relative and absolute tolerance for floats that went through arithmetic or linear algebra:
the last digit of a rotation depends on the BLAS kernel the CPU runs (AVX-512 vs Haswell)."""


def assert_close(got: Any, want: Any, path: str = "$", tol: float = FLOAT_TOLERANCE) -> None:
    """Assert two nested structures are equal, floats within ``tol`` (relative and absolute).

    Ints, strings, bools and None compare exactly; a float compares close to a float or an int.
    The assertion message names the JSON-style path of the first difference.
    """
    import math

    if isinstance(got, float) or isinstance(want, float):
        ok = (isinstance(got, (int, float)) and isinstance(want, (int, float))
              and not isinstance(got, bool) and not isinstance(want, bool)
              and math.isclose(got, want, rel_tol=tol, abs_tol=tol))
        assert ok, f"{path}: {got!r} != {want!r} (tolerance {tol})"
    elif isinstance(got, dict) and isinstance(want, dict):
        assert got.keys() == want.keys(), f"{path}: keys {sorted(got)} != {sorted(want)}"
        for k in got:
            assert_close(got[k], want[k], f"{path}.{k}", tol)
    elif isinstance(got, (list, tuple)) and isinstance(want, (list, tuple)):
        assert len(got) == len(want), f"{path}: length {len(got)} != {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close(g, w, f"{path}[{i}]", tol)
    else:
        assert got == want, f"{path}: {got!r} != {want!r}"
