"""Figures about a dataset, as ``summary.json`` and PNG charts (``annobridge inspect --plots``).

:class:`DatasetFigures` counts while the items stream past (one pass, nothing held but the
numbers); :meth:`DatasetFigures.summary` gives the figures as plain JSON data and
:func:`write_plots` draws them with matplotlib, an optional dependency
(``pip install 'annobridge[plots]'``).

Figures: annotations per label, per kind and per item; box widths, heights and aspect ratios
(width / height); object-mask, segment and polygon areas in pixels; keypoint visibility per
keypoint name; per metadata field its type and a histogram or top-values count; every
latitude/longitude pair found in item metadata.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from annobridge.core.errors import AnnobridgeError
from annobridge.core.metadata import ScopeSchema, flatten, geo_point, value_kind
from annobridge.core.model import DatasetItem
from annobridge.core.paths import safe_name

BINS = 20
"""Bins of every numeric histogram in summary.json and the charts."""
VISIBILITY = ("not_labelled", "hidden", "visible")
"""Keypoint visibility 0, 1, 2 by name."""


def labels_of(ann: Any) -> list[str]:
    """The labels an annotation carries (a segmentation: one per segment)."""
    if ann.type == "multicategory":
        return list(ann.labels)
    if ann.type == "segmentation":
        return [s.label for s in ann.annotations]
    return [ann.label]


def polygon_area(rings: Iterable[list[float]]) -> float:
    """Shoelace area in square pixels, summed over the rings (the parts of one object)."""
    total = 0.0
    for ring in rings:
        xs, ys = np.asarray(ring[0::2]), np.asarray(ring[1::2])
        total += abs(float(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1)))) / 2
    return total


def numeric_summary(values: list[float]) -> dict[str, Any]:
    """count, min, max, mean, median and a :data:`BINS`-bin histogram (edges and counts)."""
    if not values:
        return {"count": 0}
    a = np.asarray(values, dtype=np.float64)
    counts, edges = np.histogram(a, bins=BINS)
    return {"count": int(a.size), "min": float(a.min()), "max": float(a.max()),
            "mean": float(a.mean()), "median": float(np.median(a)),
            "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}}


@dataclass
class DatasetFigures:
    """Counts and measures gathered one item at a time (:meth:`add` or :meth:`counted`).

    With ``measure=False`` only items, kinds and labels are counted (no mask is decoded).
    """

    measure: bool = True
    items: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    labels: Counter[str] = field(default_factory=Counter)
    per_item: Counter[int] = field(default_factory=Counter)
    box_width: list[float] = field(default_factory=list)
    box_height: list[float] = field(default_factory=list)
    mask_area: list[float] = field(default_factory=list)
    polygon_area: list[float] = field(default_factory=list)
    keypoints: dict[str, Counter[str]] = field(default_factory=dict)
    latlon: list[tuple[float, float]] = field(default_factory=list)
    object_labels: Counter[str] = field(default_factory=Counter)  # a KITTI row's box and cuboid: one
    objects: set[tuple[str, str, str]] = field(default_factory=set)

    def add(self, item: DatasetItem) -> None:
        self.items += 1
        self.per_item[len(item.annotations) + len(item.predictions)] += 1
        owner = item.scene.scene_reference_id if item.scene is not None else item.reference_id
        for group, prefix in ((item.annotations, ""), (item.predictions, "prediction:")):
            for ann in group:
                self.kinds[prefix + ann.type] += 1
                key = (owner, prefix, ann.group_id)
                one_object = ann.group_id is None or key not in self.objects
                self.objects.add(key)
                for label in labels_of(ann):
                    self.labels[prefix + label] += 1
                    if one_object:
                        self.object_labels[prefix + label] += 1
                if self.measure:
                    self._measure(ann)
        if self.measure and item.metadata:
            point = geo_point(item.metadata)
            if point is not None:
                self.latlon.append(point)
            for _, value in flatten(item.metadata):
                if value_kind(value) == "geo":
                    self.latlon.append(geo_point(value))  # type: ignore[arg-type]

    def _measure(self, ann: Any) -> None:
        t = ann.type
        if t == "box":
            self.box_width.append(float(ann.width))
            self.box_height.append(float(ann.height))
        elif t == "polygon":
            self.polygon_area.append(polygon_area(ann.rings))
        elif t == "object_mask":
            from pycocotools import mask as mask_utils

            self.mask_area.append(float(mask_utils.area(ann.rle())))
        elif t == "segmentation":
            values, counts = np.unique(ann.mask.load(), return_counts=True)
            area = dict(zip(values.tolist(), counts.tolist()))
            self.mask_area.extend(float(area.get(s.index, 0)) for s in ann.annotations)
        elif t == "keypoints":
            kp = ann.keypoints
            for n, name in enumerate(ann.names):
                self.keypoints.setdefault(name, Counter())[VISIBILITY[int(kp[3 * n + 2])]] += 1

    def counted(self, items: Iterable[DatasetItem]) -> Iterator[DatasetItem]:
        """``items`` unchanged, each added on the way (for a one-pass stream)."""
        for item in items:
            self.add(item)
            yield item

    def summary(self, scopes: dict[str, ScopeSchema] | None = None) -> dict[str, Any]:
        """Every figure as JSON data; ``scopes`` (from ``infer_schema``) adds the metadata."""
        aspect = [w / h for w, h in zip(self.box_width, self.box_height) if h > 0]
        out: dict[str, Any] = {
            "items": self.items,
            "annotations_per_kind": dict(sorted(self.kinds.items())),
            "annotations_per_label": dict(self.labels.most_common()),
            "annotations_per_item": {str(n): c for n, c in sorted(self.per_item.items())},
            "box_width": numeric_summary(self.box_width),
            "box_height": numeric_summary(self.box_height),
            "box_aspect_ratio": numeric_summary(aspect),
            "mask_area": numeric_summary(self.mask_area),
            "polygon_area": numeric_summary(self.polygon_area),
            "keypoint_visibility": {name: {v: c.get(v, 0) for v in VISIBILITY}
                                    for name, c in self.keypoints.items()},
            "latlon": {"count": len(self.latlon),
                       "points": [[lat, lon] for lat, lon in self.latlon]},
            "metadata": {},
        }
        for scope, schema in (scopes or {}).items():
            if schema.fields:
                out["metadata"][scope] = {
                    path: {"type": fs.inferred, "histogram": [[label, n] for label, n in fs.histogram(BINS, BINS)]}
                    for path, fs in sorted(schema.fields.items())
                }
        return out


def pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise AnnobridgeError("charts need matplotlib, which is not installed",
                              fix="pip install 'annobridge[plots]'") from exc
    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _bar(plt: Any, path: Path, counts: dict[str, int], title: str, xlabel: str) -> None:
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(counts) + 2), 4))
    ax.bar(range(len(counts)), list(counts.values()), color="#4878d0")
    ax.set_xticks(range(len(counts)), [k[:24] for k in counts], rotation=60, ha="right", fontsize=8)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _hist(plt: Any, path: Path, panels: list[tuple[str, dict[str, Any]]], title: str) -> None:
    panels = [(name, s) for name, s in panels if s["count"]]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    for ax, (name, s) in zip(axes[0], panels):
        edges, counts = s["histogram"]["edges"], s["histogram"]["counts"]
        ax.stairs(counts, edges, fill=True, color="#4878d0")
        ax.set_xlabel(name)
        ax.set_ylabel("count")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write_plots(summary: dict[str, Any], out_dir: str | os.PathLike[str]) -> list[Path]:
    """``summary.json`` and one PNG chart per figure that has data, in ``out_dir``.

    Returns:
        The files written, ``summary.json`` first.

    Raises:
        AnnobridgeError: matplotlib is not installed (names the ``plots`` extra).
    """
    plt = pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    charts: list[str] = []

    def chart(name: str) -> Path:
        charts.append(name)
        return out / name

    s = summary
    if s["annotations_per_label"]:
        _bar(plt, chart("annotations_per_label.png"), s["annotations_per_label"], "annotations per label", "label")
        _bar(plt, chart("annotations_per_kind.png"), s["annotations_per_kind"], "annotations per kind", "kind")
    if s["items"]:
        _bar(plt, chart("annotations_per_item.png"), s["annotations_per_item"], "items by annotation count",
             "annotations on the item")
    if s["box_width"]["count"]:
        _hist(plt, chart("box_sizes.png"), [("width (px)", s["box_width"]), ("height (px)", s["box_height"]),
                                            ("aspect ratio (w/h)", s["box_aspect_ratio"])], "boxes")
    if s["mask_area"]["count"] or s["polygon_area"]["count"]:
        _hist(plt, chart("areas.png"), [("mask area (px)", s["mask_area"]),
                                        ("polygon area (px)", s["polygon_area"])], "areas")
    if s["keypoint_visibility"]:
        names = list(s["keypoint_visibility"])
        fig, ax = plt.subplots(figsize=(max(6, 0.4 * len(names) + 2), 4))
        bottom = np.zeros(len(names))
        for vis, color in zip(VISIBILITY, ("#bbbbbb", "#ee854a", "#6acc64")):
            values = np.array([s["keypoint_visibility"][n][vis] for n in names])
            ax.bar(range(len(names)), values, bottom=bottom, label=vis.replace("_", " "), color=color)
            bottom += values
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
        ax.set_title("keypoint visibility per keypoint")
        ax.legend()
        fig.tight_layout()
        fig.savefig(chart("keypoint_visibility.png"), dpi=80)
        plt.close(fig)
    for scope, fields in s["metadata"].items():
        for path, f in fields.items():
            if f["histogram"]:
                _bar(plt, chart(f"metadata_{scope}_{safe_name(path)}.png"), dict(f["histogram"]),
                     f"{scope} metadata {path} ({f['type']})", path)
    if s["latlon"]["count"]:
        lat = [p[0] for p in s["latlon"]["points"]]
        lon = [p[1] for p in s["latlon"]["points"]]
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.scatter(lon, lat, s=8, color="#d65f5f")
        ax.set_xlabel("longitude")
        ax.set_ylabel("latitude")
        ax.set_aspect(1 / max(math.cos(math.radians(float(np.mean(lat)))), 0.1))
        ax.set_title("item locations")
        fig.tight_layout()
        fig.savefig(chart("latlon.png"), dpi=80)
        plt.close(fig)
    summary_path = out / "summary.json"
    summary_path.write_text(json.dumps({**s, "charts": charts}, indent=2), encoding="utf-8")
    written.append(summary_path)
    written.extend(out / c for c in charts)
    return written
