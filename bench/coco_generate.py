"""Generate a synthetic COCO instances + keypoints file, reproducibly (seeded).

640x480 images, the 80 COCO thing categories with their real ids (gaps included), the
person category with the 17 COCO keypoints and skeleton. Each annotation has a bbox; most
have polygons (1-2 rings of 8-30 vertices), some are bbox-only (``segmentation: []``),
about 2% are crowds with an uncompressed RLE and 2% non-crowd objects with a compressed
RLE; persons carry keypoints with all three visibility states. ``area`` is the polygon's
shoelace area (non-integer, as in the released COCO files).

Usage::

    python bench/coco_generate.py OUT.json --images 5000 --annotations 40000 [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path

from pycocotools import mask as mask_utils

W, H = 640, 480
MISSING_IDS = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}
CATEGORY_IDS = [i for i in range(1, 91) if i not in MISSING_IDS]
KEYPOINTS = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
             "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
             "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle"]
SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8],
            [7, 9], [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]


def categories() -> list[dict]:
    cats = []
    for n, cid in enumerate(CATEGORY_IDS):
        cat = {"supercategory": "person" if cid == 1 else f"super{n // 8}", "id": cid,
               "name": "person" if cid == 1 else f"class_{cid}"}
        if cid == 1:
            cat["keypoints"] = KEYPOINTS
            cat["skeleton"] = SKELETON
        cats.append(cat)
    return cats


def _ring(rng: random.Random, cx: float, cy: float, rx: float, ry: float) -> list[float]:
    n = rng.randint(8, 30)
    out = []
    for j in range(n):
        t = 2 * math.pi * j / n
        r = rng.uniform(0.7, 1.0)
        out.append(round(min(max(cx + r * rx * math.cos(t), 0), W), 2))
        out.append(round(min(max(cy + r * ry * math.sin(t), 0), H), 2))
    return out


def _shoelace(ring: list[float]) -> float:
    xs, ys = ring[0::2], ring[1::2]
    return abs(sum(xs[i] * ys[i - 1] - xs[i - 1] * ys[i] for i in range(len(xs)))) / 2


def _rect_runs(x0: int, y0: int, x1: int, y1: int) -> list[int]:
    """Uncompressed column-major RLE of a filled rectangle [x0, x1) x [y0, y1)."""
    runs = [x0 * H + y0]
    for x in range(x0, x1):
        runs.append(y1 - y0)
        runs.append(H - (y1 - y0) if x < x1 - 1 else H - y1 + (W - x1) * H)
    return runs


def annotation(rng: random.Random, ann_id: int, image_id: int) -> dict:
    cid = 1 if rng.random() < 0.25 else rng.choice(CATEGORY_IDS[1:])
    w = rng.uniform(10, 200)
    h = rng.uniform(10, 200)
    x = rng.uniform(0, W - w)
    y = rng.uniform(0, H - h)
    ann: dict = {"id": ann_id, "image_id": image_id, "category_id": cid, "iscrowd": 0}
    roll = rng.random()
    if roll < 0.02:
        x0, y0, x1, y1 = int(x), int(y), int(x + w), int(y + h)
        ann["segmentation"] = {"size": [H, W], "counts": _rect_runs(x0, y0, x1, y1)}
        ann["iscrowd"] = 1
        ann["area"] = float((x1 - x0) * (y1 - y0))
        ann["bbox"] = [x0, y0, x1 - x0, y1 - y0]
    elif roll < 0.04:
        ring = _ring(rng, x + w / 2, y + h / 2, w / 2, h / 2)
        rle = mask_utils.merge(mask_utils.frPyObjects([ring], H, W))
        ann["segmentation"] = {"size": [H, W], "counts": rle["counts"].decode("ascii")}
        ann["area"] = float(mask_utils.area(rle))
        ann["bbox"] = [float(v) for v in mask_utils.toBbox(rle)]
    elif roll < 0.14:
        ann["segmentation"] = []
        ann["area"] = round(w * h, 3)
        ann["bbox"] = [round(x, 2), round(y, 2), round(w, 2), round(h, 2)]
    else:
        rings = [_ring(rng, x + w / 2, y + h / 2, w / 2, h / 2)]
        if rng.random() < 0.15:
            rings.append(_ring(rng, x + w / 4, y + h / 4, w / 5, h / 5))
        ann["segmentation"] = rings
        ann["area"] = sum(_shoelace(r) for r in rings)
        xs = [v for r in rings for v in r[0::2]]
        ys = [v for r in rings for v in r[1::2]]
        ann["bbox"] = [min(xs), min(ys), round(max(xs) - min(xs), 2), round(max(ys) - min(ys), 2)]
    if cid == 1:
        kps: list[float] = []
        for _ in KEYPOINTS:
            v = rng.choice((0, 1, 2, 2))
            if v == 0:
                kps.extend((0, 0, 0))
            else:
                kps.extend((int(rng.uniform(x, x + w)), int(rng.uniform(y, y + h)), v))
        ann["keypoints"] = kps
        ann["num_keypoints"] = sum(1 for v in kps[2::3] if v > 0)
    return ann


def generate(n_images: int, n_annotations: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    images = [{"license": 1 + i % 8, "file_name": f"{i + 1:012d}.jpg",
               "coco_url": f"http://images.cocodataset.org/val2017/{i + 1:012d}.jpg",
               "height": H, "width": W, "date_captured": "2013-11-14 17:02:52",
               "flickr_url": f"http://farm.example.org/{i + 1}.jpg", "id": i + 1}
              for i in range(n_images)]
    anns = [annotation(rng, k + 1, rng.randint(1, max(1, n_images - 1)))
            for k in range(n_annotations)]  # the last image has no annotation
    return {
        "info": {"description": "annobridge synthetic COCO", "version": "1.0", "year": 2026,
                 "contributor": "bench/coco_generate.py", "date_created": "2026/01/01"},
        "licenses": [{"url": f"http://example.org/license/{i}", "id": i, "name": f"License {i}"}
                     for i in range(1, 9)],
        "images": images,
        "annotations": anns,
        "categories": categories(),
    }


def stuff(n_images: int, seed: int = 0) -> dict:
    """A COCO-Stuff style file: per image, one compressed RLE per stuff category (92-183)."""
    from pycocotools import mask as mask_utils
    import numpy as np

    rng = random.Random(seed)
    images, anns = [], []
    for i in range(n_images):
        h, w = rng.randint(20, 60), rng.randint(20, 80)
        images.append({"id": i + 1, "file_name": f"stuff_{i + 1}.png", "height": h, "width": w})
        labels = np.zeros((h, w), dtype=np.uint8)
        cuts = sorted(rng.sample(range(1, w), 2))
        labels[:, cuts[0]:cuts[1]] = 1
        labels[:, cuts[1]:] = 2
        labels[rng.randint(0, h - 1):, :] = 3
        for k, cid in enumerate(rng.sample(range(92, 184), 4)):
            m = np.asfortranarray((labels == k).astype(np.uint8))
            if not m.any():
                continue
            rle = mask_utils.encode(m)
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": cid,
                         "segmentation": {"size": [h, w], "counts": rle["counts"].decode("ascii")},
                         "area": float(mask_utils.area(rle)),
                         "bbox": [float(v) for v in mask_utils.toBbox(rle)], "iscrowd": 0})
    cats = [{"supercategory": "stuff", "id": c, "name": "other" if c == 183 else f"stuff_{c}"}
            for c in range(92, 184)]
    return {"info": {"description": "annobridge synthetic COCO-Stuff"}, "licenses": [],
            "images": images, "annotations": anns, "categories": cats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--annotations", type=int, default=40000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stuff", action="store_true", help="write a COCO-Stuff style file")
    args = parser.parse_args()
    data = stuff(args.images, args.seed) if args.stuff else generate(args.images, args.annotations, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(data, fh)


if __name__ == "__main__":
    main()
