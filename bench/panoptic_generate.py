"""Generate a COCO panoptic dataset for benchmarks: JSON + folder of RGB PNGs.

Each image has 10-40 segments (a random number per image): stuff regions are cells of a
Voronoi diagram drawn at quarter resolution and upscaled (so edges are stair-stepped like
real annotations), things are ellipses painted on top. Categories, colours and ids follow
the official panopticapi categories (``fixtures/coco-panoptic/panopticapi``) and its
``IdGenerator`` rule (stuff = category colour, things = colour jittered until unused).
``segments_info`` has exact ``area`` and ``bbox``.

Usage::

    python bench/panoptic_generate.py OUT_DIR [--images 2000] [--width 1024] [--height 768]
"""

from __future__ import annotations

import argparse
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
CATEGORIES = ROOT / "fixtures" / "coco-panoptic" / "panopticapi" / "panoptic_coco_categories.json"


def _image(args: tuple[int, int, int, str, list[dict[str, Any]]]) -> dict[str, Any]:
    i, width, height, png_dir, cats = args
    rng = np.random.default_rng(1000 + i)
    things = [c for c in cats if c["isthing"]]
    stuff = [c for c in cats if not c["isthing"]]
    n = int(rng.integers(10, 41))
    n_stuff = max(2, n // 4)
    n_things = n - n_stuff
    # stuff: Voronoi cells at quarter resolution
    gh, gw = (height + 3) // 4, (width + 3) // 4
    sy, sx = rng.random(n_stuff) * gh, rng.random(n_stuff) * gw
    yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32)
    best = np.full((gh, gw), np.inf, dtype=np.float32)
    cell = np.zeros((gh, gw), dtype=np.int32)
    for k in range(n_stuff):
        d = (yy - sy[k]) ** 2 + (xx - sx[k]) ** 2
        closer = d < best
        best[closer] = d[closer]
        cell[closer] = k
    label = np.repeat(np.repeat(cell, 4, axis=0), 4, axis=1)[:height, :width] + 1  # 1..n_stuff
    stuff_cats = rng.choice(len(stuff), size=n_stuff, replace=False)
    seg_cats = [stuff[j] for j in stuff_cats]
    # things: ellipses painted on top
    for k in range(n_things):
        cy, cx = rng.integers(0, height), rng.integers(0, width)
        ry, rx = rng.integers(8, max(9, height // 6)), rng.integers(8, max(9, width // 6))
        y0, y1, x0, x1 = max(0, cy - ry), min(height, cy + ry + 1), max(0, cx - rx), min(width, cx + rx + 1)
        Y, X = np.ogrid[y0:y1, x0:x1]
        inside = ((Y - cy) / ry) ** 2 + ((X - cx) / rx) ** 2 <= 1.0
        label[y0:y1, x0:x1][inside] = n_stuff + k + 1
        seg_cats.append(things[int(rng.integers(len(things)))])
    # ids: panopticapi IdGenerator rule
    taken = {(0, 0, 0)} | {tuple(c["color"]) for c in stuff}
    ids = np.zeros(len(seg_cats) + 1, dtype=np.uint32)
    for k, cat in enumerate(seg_cats, start=1):
        color = tuple(cat["color"])
        if cat["isthing"]:
            while color in taken:
                color = tuple(int(v) for v in np.clip(np.array(cat["color"]) + rng.integers(-30, 31, 3), 0, 255))
            taken.add(color)
        ids[k] = color[0] + 256 * color[1] + 65536 * color[2]
    pan = ids[label]
    # exact area / bbox per present segment
    infos = []
    flat = label.ravel()
    counts = np.bincount(flat, minlength=len(ids))
    rows = np.repeat(np.arange(height), width)
    cols = np.tile(np.arange(width), height)
    ymin = np.full(len(ids), height)
    ymax = np.full(len(ids), -1)
    xmin = np.full(len(ids), width)
    xmax = np.full(len(ids), -1)
    np.minimum.at(ymin, flat, rows)
    np.maximum.at(ymax, flat, rows)
    np.minimum.at(xmin, flat, cols)
    np.maximum.at(xmax, flat, cols)
    for k, cat in enumerate(seg_cats, start=1):
        if counts[k] == 0:
            continue
        infos.append({"id": int(ids[k]), "category_id": cat["id"], "iscrowd": 0,
                      "bbox": [int(xmin[k]), int(ymin[k]), int(xmax[k] - xmin[k] + 1), int(ymax[k] - ymin[k] + 1)],
                      "area": int(counts[k])})
    rgb = np.stack([pan & 255, (pan >> 8) & 255, (pan >> 16) & 255], axis=-1).astype(np.uint8)
    png = f"{i:012d}.png"
    Image.fromarray(rgb).save(os.path.join(png_dir, png))
    return {"image": {"id": i + 1, "file_name": f"{i:012d}.jpg", "width": width, "height": height},
            "annotation": {"image_id": i + 1, "file_name": png, "segments_info": infos}}


def generate(out: Path, images: int, width: int, height: int, workers: int = 2) -> Path:
    """Write ``out/panoptic.json`` and ``out/panoptic/*.png``; returns the JSON path."""
    cats = json.loads(CATEGORIES.read_text())
    png_dir = out / "panoptic"
    png_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(i, width, height, str(png_dir), cats) for i in range(images)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(_image, jobs, chunksize=8))
    doc = {"info": {"description": "annobridge panoptic benchmark data (generated)"}, "licenses": [],
           "images": [r["image"] for r in results],
           "annotations": [r["annotation"] for r in results], "categories": cats}
    path = out / "panoptic.json"
    path.write_text(json.dumps(doc))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--height", type=int, default=768)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    path = generate(a.out, a.images, a.width, a.height, a.workers)
    print(f"wrote {path} and {a.images} PNGs in {path.with_suffix('')}")


if __name__ == "__main__":
    main()
