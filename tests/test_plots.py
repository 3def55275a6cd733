"""``annobridge inspect --plots``: summary.json checked against the dataset, charts are real PNGs."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

import annobridge
from tests.conftest import FIXTURES
from tests.test_cli import run

COCO = FIXTURES / "coco" / "synthetic" / "instances.json"
JSONL = FIXTURES / "jsonl" / "all-kinds" / "dataset.jsonl"


def _shoelace(ring: list[float]) -> float:
    pts = list(zip(ring[0::2], ring[1::2]))
    return abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1]))) / 2


def _plots(tmp: Path, src: Path) -> dict:
    run("inspect", str(src), "--plots", str(tmp / "plots"), "-q")
    summary = json.loads((tmp / "plots" / "summary.json").read_text())
    assert summary["charts"]
    for name in summary["charts"]:
        with Image.open(tmp / "plots" / name) as img:
            assert img.format == "PNG" and img.width > 100
    return summary


def test_coco_summary_matches_the_dataset(tmp_path: Path) -> None:
    summary = _plots(tmp_path, COCO)
    items = annobridge.load(COCO).items
    assert summary["items"] == len(items)
    anns = [a for it in items for a in it.annotations]
    assert summary["annotations_per_label"] == dict(Counter(a.label for a in anns))
    assert summary["annotations_per_kind"] == dict(sorted(Counter(a.type for a in anns).items()))
    per_item = Counter(str(len(it.annotations)) for it in items)
    assert summary["annotations_per_item"] == dict(per_item)
    polygons = [sum(_shoelace(r) for r in a.rings) for a in anns if a.type == "polygon"]
    assert summary["polygon_area"]["count"] == len(polygons)
    assert summary["polygon_area"]["max"] == pytest.approx(max(polygons), rel=1e-9)
    assert summary["polygon_area"]["mean"] == pytest.approx(sum(polygons) / len(polygons), rel=1e-9)
    masks = [int(a.to_array().sum()) for a in anns if a.type == "object_mask"]
    assert sum(summary["mask_area"]["histogram"]["counts"]) == len(masks)
    assert summary["mask_area"]["min"] == min(masks) and summary["mask_area"]["max"] == max(masks)
    # keypoint visibility straight from the raw COCO file, not through the reader
    raw = json.loads(COCO.read_text())
    names = {c["id"]: c.get("keypoints") or [] for c in raw["categories"]}
    want: dict[str, Counter] = {}
    for a in raw["annotations"]:
        for n, name in enumerate(names[a["category_id"]]):
            if a.get("keypoints"):
                v = a["keypoints"][3 * n + 2]
                want.setdefault(name, Counter())[("not_labelled", "hidden", "visible")[v]] += 1
    got = {name: {k: n for k, n in c.items() if n} for name, c in summary["keypoint_visibility"].items()}
    assert got == {name: dict(c) for name, c in want.items()}
    assert "keypoint_visibility.png" in summary["charts"] and "areas.png" in summary["charts"]


def test_boxes_metadata_and_latlon(tmp_path: Path) -> None:
    summary = _plots(tmp_path, JSONL)
    boxes = [a for it in annobridge.load(JSONL).items for a in (*it.annotations, *it.predictions)
             if a.type == "box"]
    assert summary["box_width"]["count"] == len(boxes)
    assert summary["box_aspect_ratio"]["mean"] == pytest.approx(
        sum(b.width / b.height for b in boxes) / len(boxes))
    assert summary["latlon"]["points"] == [[49.0, 8.4]]
    night = summary["metadata"]["items"]["night"]
    assert night == {"type": "boolean", "histogram": [["false", 1]]}
    assert summary["metadata"]["items"]["lat"]["type"] == "numeric-float"
    assert {"latlon.png", "box_sizes.png", "metadata_items_night.png"} <= set(summary["charts"])


def test_missing_matplotlib_names_the_extra(tmp_path: Path) -> None:
    blocker = tmp_path / "block" / "matplotlib"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('blocked for the test')\n")
    proc = run("inspect", str(JSONL), "--plots", str(tmp_path / "p"),
               env={"PYTHONPATH": str(blocker.parent)}, check_code=1)
    assert "annobridge[plots]" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "p").exists()
