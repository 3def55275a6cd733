"""COCO -> Pascal VOC benchmark against the ``json.load`` floor, side by side in one run.

Data: ``bench/coco_generate.py`` (seeded, cached in ``bench/data/``), 50,000 images /
400,000 annotations by default. Two sources:

* ``as generated``: most objects are polygons, some RLE masks, persons carry keypoints.
  VOC holds boxes (and masks tied to a box), so until the engine's derivation stage
  (polygon/mask -> box) lands, polygon and mask objects and keypoints are dropped and
  reported: only the bbox-only objects become ``<object>`` rows.
* ``boxes only``: the same file with every annotation reduced to its ``bbox`` (segmentation
  ``[]``, no keypoints): every annotation becomes an ``<object>`` row.

Floor: ``json.load`` of the source file in one process, the least any COCO reader does; a
second reference row adds creating one small file per image (VOC is one XML per image, and
creating files is most of a VOC writer's cost on a slow file system).
Every case runs in a fresh interpreter (peak RSS is that case's alone). After timing, the
script checks what was written: one XML per image and as many ``<object>`` rows as the
source has objects VOC can hold, and prints rows written and rows per second. Usage::

    python bench/voc_bench.py [--images 50000] [--annotations 400000] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from measure import Result, print_table, run_case  # noqa: E402
from peers import dataset  # noqa: E402  (the same cached generated file)

OUT = HERE / "out"

FLOOR = """
import json
with open({src!r}, "rb") as fh:
    json.load(fh)
"""

FILES_FLOOR = """
import json, os
with open({src!r}, "rb") as fh:
    data = json.load(fh)
os.makedirs({dst!r}, exist_ok=True)
for image in data["images"]:
    with open(os.path.join({dst!r}, str(image["id"]) + ".xml"), "w") as fh:
        fh.write("<annotation/>")
"""

CONVERT = """
from annobridge.converters import engine
report = engine.convert({src!r}, {dst!r}, src_format="coco", dst_format="pascal-voc", overwrite=True,
                        workers={workers})
import json
with open({report!r}, "w") as fh:
    json.dump(report.model_dump(), fh)
"""


def boxes_only(src: Path) -> Path:
    path = src.with_name(src.stem + "_boxes.json")
    if not path.exists():
        data = json.loads(src.read_text())
        for ann in data["annotations"]:
            ann["segmentation"] = []
            for key in ("keypoints", "num_keypoints"):
                ann.pop(key, None)
        path.write_text(json.dumps(data))
    return path


def expected_rows(src: Path) -> tuple[int, int]:
    """(images, annotations whose only geometry is a bbox): what VOC can hold without derivation."""
    data = json.loads(src.read_text())
    rows = sum(1 for a in data["annotations"] if a.get("bbox") and not a.get("segmentation"))
    return len(data["images"]), rows


def written_rows(dst: Path) -> tuple[int, int]:
    files = rows = 0
    for dirpath, _, names in os.walk(dst / "Annotations"):
        for name in names:
            files += 1
            with open(os.path.join(dirpath, name), encoding="utf-8") as fh:
                rows += fh.read().count("<object>")
    return files, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--annotations", type=int, default=400_000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    src = dataset(args.images, args.annotations)
    sources = [("as generated", src), ("boxes only", boxes_only(src))]
    for label, path in sources:
        floor = run_case("floor (json.load)", FLOOR.format(src=str(path)))
        dst = OUT / f"voc_{path.stem}"
        for old in (dst, OUT / f"files_{path.stem}"):  # removing 50,000 files is not the case's work
            shutil.rmtree(old, ignore_errors=True)
        report_path = OUT / f"voc_{path.stem}.report.json"
        files_floor = run_case("json.load + one small file per image",
                               FILES_FLOOR.format(src=str(path), dst=str(OUT / f"files_{path.stem}")))
        result: Result = run_case(f"COCO -> pascal-voc ({label})",
                                  CONVERT.format(src=str(path), dst=str(dst), report=str(report_path),
                                                 workers=args.workers))
        mb = path.stat().st_size / 2**20
        print_table(f"{label}: {args.images} images / {args.annotations} annotations, {mb:.0f} MB "
                    f"(workers={args.workers})", floor, [files_floor, result])
        want_files, want_rows = expected_rows(path)
        files, rows = written_rows(dst)
        report = json.loads(report_path.read_text())
        print(f"written: {files} XML files, {rows} <object> rows ({rows / result.wall:,.0f} rows/s); "
              f"expected {want_files} files, {want_rows} rows")
        for what, reasons in sorted(report["dropped"].items()):
            for reason, n in reasons.items():
                print(f"  dropped {n} x {what}: {reason}")
        if (files, rows) != (want_files, want_rows):
            raise SystemExit(f"{label}: wrote {files} files / {rows} rows, expected {want_files} / {want_rows}")


if __name__ == "__main__":
    main()
