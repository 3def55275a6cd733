"""Test helpers for COCO panoptic: write panoptic data directly (numpy + Pillow + json, not
through annobridge), decode PNGs, normalise JSON, and compute PQ from the spec's rule."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures" / "coco-panoptic"


def official_categories() -> list[dict[str, Any]]:
    with open(FIXTURES / "panopticapi" / "panoptic_coco_categories.json", encoding="utf-8") as fh:
        return json.load(fh)


def rgb2id(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.uint32)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def id2rgb(ids: np.ndarray) -> np.ndarray:
    ids = ids.astype(np.uint32)
    return np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], axis=-1).astype(np.uint8)


def read_png_ids(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        assert img.mode == "RGB", f"{path} has mode {img.mode}"
        return rgb2id(np.asarray(img))


def write_png_ids(path: Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(id2rgb(ids)).save(path)


def normalise(doc: Any) -> Any:
    """JSON value with object keys sorted (key order does not matter in JSON)."""
    return json.loads(json.dumps(doc, sort_keys=True))


def random_label_map(rng: np.random.Generator, h: int, w: int, n: int) -> np.ndarray:
    """A (h, w) map of labels 0..n-1: Voronoi cells of n seeds (every label present)."""
    seeds_y = rng.integers(0, h, n)
    seeds_x = rng.integers(0, w, n)
    # make seeds distinct pixels so every cell owns at least its seed
    flat = np.unique(seeds_y * w + seeds_x)
    while flat.size < n:
        flat = np.unique(np.append(flat, rng.integers(0, h * w, n - flat.size)))
    sy, sx = flat // w, flat % w
    yy, xx = np.mgrid[0:h, 0:w]
    d = (yy[..., None] - sy) ** 2 + (xx[..., None] - sx) ** 2
    return d.argmin(-1)


def make_panoptic(root: Path, name: str = "panoptic", *, images: int = 3, height: int = 24,
                  width: int = 32, segments: tuple[int, int] = (3, 8), seed: int = 0,
                  void: bool = True, random_ids: bool = False) -> Path:
    """Write ``root/name.json`` + ``root/name/*.png`` with official categories and colour ids
    (panopticapi style) or, with ``random_ids``, arbitrary ids."""
    rng = np.random.default_rng(seed)
    cats = official_categories()
    things = [c for c in cats if c["isthing"]]
    stuff = [c for c in cats if not c["isthing"]]
    doc: dict[str, Any] = {"info": {"description": "generated"}, "licenses": [],
                           "images": [], "annotations": [], "categories": cats}
    for i in range(images):
        n = int(rng.integers(segments[0], segments[1] + 1))
        labels = random_label_map(rng, height, width, n)
        taken: set[int] = {0}
        infos = []
        stuff_used: set[int] = set()
        ids = np.zeros(n, dtype=np.int64)
        for k in range(n):
            pool = stuff if (k % 3 == 0 and len(stuff_used) < len(stuff)) else things
            cat = pool[int(rng.integers(len(pool)))]
            while not cat["isthing"] and cat["id"] in stuff_used:
                cat = stuff[int(rng.integers(len(stuff)))]
            if not cat["isthing"]:
                stuff_used.add(cat["id"])
            color = np.array(cat["color"])
            sid = int(color[0] + 256 * color[1] + 65536 * color[2])
            if random_ids:
                sid = int(rng.integers(1, 2**24))
            while sid in taken:
                c = np.clip(color + rng.integers(-30, 31, 3), 0, 255)
                sid = int(c[0] + 256 * c[1] + 65536 * c[2])
            taken.add(sid)
            ids[k] = sid
            infos.append({"id": sid, "category_id": cat["id"],
                          "iscrowd": int(cat["isthing"] and rng.random() < 0.1)})
        pan = ids[labels]
        if void and n > 1:
            pan[labels == n - 1] = 0  # the last cell is void
            infos = infos[:-1]
        for info in infos:
            ys, xs = np.nonzero(pan == info["id"])
            info["area"] = int(ys.size)
            info["bbox"] = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                            int(ys.max() - ys.min() + 1)]
        file_name = f"{i:012d}.jpg"
        png = f"{i:012d}.png"
        write_png_ids(root / name / png, pan)
        doc["images"].append({"id": i + 1, "file_name": file_name, "width": width, "height": height,
                              "license": 1})
        doc["annotations"].append({"image_id": i + 1, "file_name": png, "segments_info": infos})
    path = root / f"{name}.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- PQ


def pq(gt_json: Path, gt_dir: Path, pred_json: Path, pred_dir: Path) -> float:
    """Panoptic quality (All) by the matching rule of ``formats/coco_panoptic.md`` §6.

    Categories from the GT file; GT areas from the GT JSON, prediction areas from the PNG;
    match = same category, GT not crowd, IoU > 0.5 with
    union = pred_area + gt_area - intersection - (pred ∩ void); an unmatched prediction is a
    false positive unless more than half of it lies on void plus same-category crowd.
    """
    gt = json.loads(gt_json.read_text())
    pred = json.loads(pred_json.read_text())
    categories = {c["id"]: c for c in gt["categories"]}
    pred_by_image = {a["image_id"]: a for a in pred["annotations"]}
    stats: dict[int, list[float]] = defaultdict(lambda: [0.0, 0, 0, 0])  # iou, tp, fp, fn
    offset = 2**24
    for gt_ann in gt["annotations"]:
        pred_ann = pred_by_image[gt_ann["image_id"]]
        gt_ids = read_png_ids(gt_dir / gt_ann["file_name"]).astype(np.uint64)
        pred_ids = read_png_ids(pred_dir / pred_ann["file_name"]).astype(np.uint64)
        gt_segs = {s["id"]: s for s in gt_ann["segments_info"]}
        pred_segs = {s["id"]: dict(s) for s in pred_ann["segments_info"]}
        values, counts = np.unique(pred_ids, return_counts=True)
        for v, c in zip(values.tolist(), counts.tolist()):
            if v == 0:
                continue
            assert v in pred_segs, f"prediction PNG id {v} not in segments_info"
            pred_segs[v]["area"] = c
        for s in pred_segs.values():
            assert s["category_id"] in categories
        pairs, inter = np.unique(gt_ids * offset + pred_ids, return_counts=True)
        inter_of = {(int(p // offset), int(p % offset)): int(n) for p, n in zip(pairs, inter)}
        gt_matched: set[int] = set()
        pred_matched: set[int] = set()
        for (g, p), n in inter_of.items():
            if g not in gt_segs or p not in pred_segs:
                continue
            gs, ps = gt_segs[g], pred_segs[p]
            if gs["iscrowd"] == 1 or gs["category_id"] != ps["category_id"]:
                continue
            union = ps["area"] + gs["area"] - n - inter_of.get((0, p), 0)
            iou = n / union
            if iou > 0.5:
                st = stats[gs["category_id"]]
                st[0] += iou
                st[1] += 1
                gt_matched.add(g)
                pred_matched.add(p)
        crowd_by_cat: dict[int, int] = {}
        for g, gs in gt_segs.items():
            if gs["iscrowd"] == 1:
                crowd_by_cat[gs["category_id"]] = g
            elif g not in gt_matched:
                stats[gs["category_id"]][3] += 1
        for p, ps in pred_segs.items():
            if p in pred_matched:
                continue
            on_void = inter_of.get((0, p), 0)
            crowd = crowd_by_cat.get(ps["category_id"])
            on_crowd = inter_of.get((crowd, p), 0) if crowd is not None else 0
            if (on_void + on_crowd) / ps["area"] > 0.5:
                continue
            stats[ps["category_id"]][2] += 1
    values = []
    for cid in categories:
        iou, tp, fp, fn = stats.get(cid, [0.0, 0, 0, 0])
        if tp + fp + fn == 0:
            continue
        values.append(iou / (tp + 0.5 * fp + 0.5 * fn))
    return float(np.mean(values))
