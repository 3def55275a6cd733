"""Derivation benchmark: COCO polygons/RLE -> KITTI boxes at scale, and mask -> polygon per mask.

1. The large generated COCO set (``bench/coco_generate.py``: 50,000 images, 400,000 objects,
   cached in ``bench/data/``) converted to KITTI (``media=none``) with ``--derive auto`` and
   ``--derive none``, each in a fresh interpreter beside the floor measured in the same run
   (``json.load`` of the file: the least any converter of it must do). The label rows written
   are counted and checked: with ``auto`` every object with geometry must become a row.
2. mask -> polygon (``core/derive.py`` ``mask_to_rings``, scikit-image) on the first 10,000
   RLE masks of the set: time per mask (decode included) and the mean IoU of
   mask -> polygon -> mask; OpenCV ``findContours`` (pixel-centre contours) beside it when
   ``cv2`` is importable (it is not a dependency).

Usage::

    python bench/derive_bench.py [--masks 10000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from coco_bench import OUT, dataset  # noqa: E402
from measure import print_table, run_case  # noqa: E402

FLOOR = """
import json
with open({src!r}, encoding="utf-8") as fh:
    json.load(fh)
"""

CONVERT = """
from annobridge.converters import engine
report = engine.convert({src!r}, {dst!r}, src_format="coco", dst_format="kitti", overwrite=True,
                        write_options={{"media": "none"}}, derive={derive!r})
import json
with open({dst!r} + ".report.json", "w") as fh:
    json.dump(report.model_dump(), fh)
"""

STAGE = """
import json, time
from annobridge.converters import engine
from annobridge.core.formats import ConversionReport
from annobridge.core.plugins import get_registry
caps = get_registry().get("kitti").capabilities
spent = {{}}
for derive in ("auto", "none"):
    report = ConversionReport()
    total = 0.0
    for item in engine.read_dataset({src!r}, "coco").items:
        start = time.perf_counter()
        engine.fit_to(item, caps, "kitti", report, derive=derive)
        total += time.perf_counter() - start
    spent[derive] = {{"seconds": total, "converted": sum(report.converted.values())}}
with open({out!r}, "w") as fh:
    json.dump(spent, fh)
"""

MASKS = """
import json, time
import numpy as np
from pycocotools import mask as mask_utils
from annobridge.core.derive import mask_to_rings, polygon_to_rle
with open({src!r}, encoding="utf-8") as fh:
    data = json.load(fh)
size = {{i["id"]: (i["height"], i["width"]) for i in data["images"]}}
rles = []
for a in data["annotations"]:
    s = a.get("segmentation")
    if isinstance(s, dict):
        h, w = size[a["image_id"]]
        rles.append(mask_utils.frPyObjects(s, h, w) if isinstance(s["counts"], list) else
                    {{"size": s["size"], "counts": s["counts"].encode()}})
    if len(rles) == {n}:
        break
del data
start = time.perf_counter()
out = [mask_to_rings(mask_utils.decode(r))[0] for r in rles]
per_mask = (time.perf_counter() - start) / len(rles)
ious = [float(mask_utils.iou([polygon_to_rle(p, *r["size"])], [r], [0])[0][0]) if p else 0.0
        for p, r in zip(out, rles)]
result = {{"masks": len(rles), "ms_per_mask": per_mask * 1000, "mean_iou": float(np.mean(ious)),
           "min_iou": float(np.min(ious)), "vertices_per_mask": float(np.mean([sum(len(q) // 2 for q in p) for p in out]))}}
try:
    import cv2
except ImportError:
    cv2 = None
if cv2 is not None:
    start = time.perf_counter()
    cv = []
    for r in rles:
        cs, _ = cv2.findContours(mask_utils.decode(r), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv.append([(c.reshape(-1, 2) + 0.5).ravel().tolist() for c in cs if len(c) >= 3])
    result["cv2_ms_per_mask"] = (time.perf_counter() - start) / len(rles) * 1000
    cv_ious = [float(mask_utils.iou([polygon_to_rle(p, *r["size"])], [r], [0])[0][0]) if p else 0.0
               for p, r in zip(cv, rles)]
    result["cv2_mean_iou"] = float(np.mean(cv_ious))
with open({out!r}, "w") as fh:
    json.dump(result, fh)
"""


def count_rows(folder: Path) -> int:
    return sum(1 for p in (folder / "training" / "label_2").glob("*.txt")
               for line in p.read_text().splitlines() if line.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--masks", type=int, default=10_000)
    args = parser.parse_args()
    src = dataset("large")
    OUT.mkdir(exist_ok=True)
    with open(src, encoding="utf-8") as fh:
        anns = json.load(fh)["annotations"]
    objects = len(anns)
    with_geometry = sum(1 for a in anns if a.get("bbox") or a.get("segmentation"))
    del anns

    floor = run_case("json.load floor", FLOOR.format(src=str(src)))
    results, rows = [], {}
    for derive in ("auto", "none"):
        dst = OUT / f"derive_kitti_{derive}"
        results.append(run_case(f"coco -> kitti --derive {derive}",
                                CONVERT.format(src=str(src), dst=str(dst), derive=derive)))
        rows[derive] = count_rows(dst)
        report = json.loads(Path(str(dst) + ".report.json").read_text())
        print(f"--derive {derive}: {rows[derive]:,} rows written of {objects:,} objects "
              f"({with_geometry:,} with geometry); converted {report['converted']}")
        shutil.rmtree(dst)
    print_table(f"COCO ({src.name}, {objects:,} objects) -> KITTI", floor, results)
    if rows["auto"] != with_geometry:
        raise SystemExit(f"FAIL: {rows['auto']:,} rows written, expected {with_geometry:,}")
    print(f"OK: every object with geometry became a KITTI row ({rows['auto']:,})")

    out = OUT / "derive_stage.json"
    run_case("fit_to stage", STAGE.format(src=str(src), out=str(out)))
    stage = json.loads(out.read_text())
    extra = stage["auto"]["seconds"] - stage["none"]["seconds"]
    print(f"\nthe engine's fit_to stage alone (timed around each call): --derive auto "
          f"{stage['auto']['seconds']:.2f} s ({stage['auto']['converted']:,} conversions), --derive none "
          f"{stage['none']['seconds']:.2f} s: {extra:.2f} s more, "
          f"{extra / max(stage['auto']['converted'], 1) * 1e6:.1f} us per derived box")

    out = OUT / "derive_masks.json"
    m = run_case("mask -> polygon", MASKS.format(src=str(src), n=args.masks, out=str(out)))
    res = json.loads(out.read_text())
    print(f"\nmask -> polygon (scikit-image marching squares) on {res['masks']:,} RLE masks: "
          f"{res['ms_per_mask']:.2f} ms per mask (decode included), mean IoU {res['mean_iou']:.4f} "
          f"(min {res['min_iou']:.4f}), {res['vertices_per_mask']:.0f} vertices per mask; "
          f"case wall {m.wall:.1f} s, peak {m.rss / 2**20:.0f} MB")
    if "cv2_ms_per_mask" in res:
        print(f"OpenCV findContours (pixel centres + 0.5): {res['cv2_ms_per_mask']:.2f} ms per mask, "
              f"mean IoU {res['cv2_mean_iou']:.4f}")


if __name__ == "__main__":
    main()
