"""COCO -> YOLO benchmark: rows written and time, against the ``json.load`` floor, in one run.

Data: the seeded COCO file of ``bench/coco_generate.py`` (large: 50,000 images / 400,000
objects, cached in ``bench/data/``), made boxes-only (``segmentation`` and ``keypoints``
removed, every object keeps its ``bbox``): without the engine's geometry derivation the YOLO
writer holds a polygon only in a segment folder and a box only beside no polygon, so the
full file would measure drops, not rows. Every case runs in a fresh interpreter.

Checks what was written: one label file per image and one row per object (objects == rows).
A second reference, writing as many label files of as many rows with plain Python, shows how
much of the time is the file system's.

Usage::

    python bench/yolo_bench.py [--size medium|large] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from coco_bench import DATA, OUT, SIZES, dataset  # noqa: E402
from measure import print_table, run_case  # noqa: E402

FLOOR = """
import json
with open({src!r}, "rb") as fh:
    json.load(fh)
"""

FILES = """
from pathlib import Path
out = Path({dst!r})
out.mkdir(parents=True, exist_ok=True)
row = "0 0.5 0.5 0.25 0.25\\n"
for i in range({n_images}):
    (out / f"{{i}}.txt").write_text(row * {per_image}, encoding="utf-8")
"""

CONVERT = """
from annobridge.converters import engine
report = engine.convert({src!r}, {dst!r}, src_format="coco", dst_format="yolo", overwrite=True,
                        workers={workers})
assert not report.dropped, report.summary()
"""


def boxes_only(size: str) -> tuple[Path, int, int]:
    """The generated COCO file without segmentation or keypoints; (path, images, objects).

    Made in a child process: a peak RSS reached here would be inherited by every measured case
    (Linux keeps ``ru_maxrss`` across fork and exec).
    """
    path = DATA / f"coco_{size}_boxes.json"
    src = dataset(size)
    proc = subprocess.run([sys.executable, __file__, "--make-boxes", str(src), str(path)],
                          check=True, capture_output=True, text=True)
    n_images, n_objects = (int(v) for v in proc.stdout.split())
    return path, n_images, n_objects


def make_boxes(src: Path, path: Path) -> None:
    data = json.loads(src.read_text())
    for ann in data["annotations"]:
        ann.pop("keypoints", None)
        ann.pop("num_keypoints", None)
        ann["segmentation"] = []
    for cat in data["categories"]:
        cat.pop("keypoints", None)
        cat.pop("skeleton", None)
    if not path.exists():
        path.write_text(json.dumps(data))
    print(len(data["images"]), len(data["annotations"]))


def count_rows(folder: Path) -> tuple[int, int]:
    files = rows = 0
    for label in (folder / "labels").rglob("*.txt"):
        files += 1
        with label.open("rb") as fh:
            rows += sum(1 for _ in fh)
    return files, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="large")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--make-boxes", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_boxes:
        make_boxes(*args.make_boxes)
        return
    OUT.mkdir(parents=True, exist_ok=True)
    src, n_images, n_objects = boxes_only(args.size)
    floor = run_case("floor (json.load)", FLOOR.format(src=str(src)))
    files_case = run_case(f"{n_images:,} label files of {n_objects // n_images} rows",
                          FILES.format(dst=str(OUT / "files_floor"), n_images=n_images,
                                       per_image=n_objects // n_images))
    dst = OUT / f"{args.size}_yolo"
    result = run_case("COCO (boxes) -> yolo", CONVERT.format(src=str(src), dst=str(dst), workers=args.workers))
    files, rows = count_rows(dst)
    print_table(f"{args.size}: {n_images} images / {n_objects} objects, {src.stat().st_size / 2**20:.0f} MB "
                f"(workers={args.workers})", floor, [files_case, result])
    print(f"label files written: {files} (images: {n_images}); rows written: {rows} (objects: {n_objects})")
    if files != n_images or rows != n_objects:
        raise SystemExit("the YOLO output does not hold every image and object")
    print(f"rows per second: {rows / result.wall:,.0f}")


if __name__ == "__main__":
    main()
