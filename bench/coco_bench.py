"""COCO benchmark: annobridge conversions against the floor, side by side in one run.

The floor is ``orjson.loads`` of the file then ``orjson.dumps`` of the result, written to
a file, in one process: the least any COCO -> COCO converter must do. Every case runs in a
fresh interpreter (peak RSS is that case's alone) on data from ``bench/coco_generate.py``
(seeded, cached in ``bench/data/``):

    medium: 5,000 images / 40,000 annotations
    large:  50,000 images / 400,000 annotations

Cases: floor, COCO -> COCO, and COCO -> nucleus / kitti when those plugins are installed
(a note is printed for each that is not). Usage::

    python bench/coco_bench.py [--sizes medium large] [--workers 1]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from measure import Result, print_table, run_case  # noqa: E402

SIZES = {"medium": (5_000, 40_000), "large": (50_000, 400_000)}
DATA = HERE / "data"
OUT = HERE / "out"

FLOOR = """
import orjson
with open({src!r}, "rb") as fh:
    data = orjson.loads(fh.read())
with open({dst!r}, "wb") as fh:
    fh.write(orjson.dumps(data))
"""

CONVERT = """
from annobridge.converters import engine
engine.convert({src!r}, {dst!r}, src_format="coco", dst_format={fmt!r}, overwrite=True,
               workers={workers})
"""


def dataset(size: str) -> Path:
    n_images, n_anns = SIZES[size]
    path = DATA / f"coco_{size}.json"
    if not path.exists():
        print(f"generating {path} ({n_images} images, {n_anns} annotations)...", flush=True)
        subprocess.run([sys.executable, str(HERE / "coco_generate.py"), str(path), "--images",
                        str(n_images), "--annotations", str(n_anns), "--seed", "0"], check=True)
    return path


def installed_formats() -> set[str]:
    from annobridge.core.plugins import get_registry

    return {name for name, fmt in get_registry().formats.items() if fmt.write is not None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=["medium", "large"])
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    formats = installed_formats()
    targets = [("coco", "coco.json")]
    for fmt, name in (("nucleus", "nucleus"), ("kitti", "kitti")):
        if fmt in formats:
            targets.append((fmt, name))
        else:
            print(f"note: format {fmt!r} is not installed: COCO -> {fmt} skipped")
    for size in args.sizes:
        src = dataset(size)
        mb = src.stat().st_size / 2**20
        floor = run_case("floor (orjson loads + dumps)",
                         FLOOR.format(src=str(src), dst=str(OUT / f"floor_{size}.json")))
        results: list[Result] = []
        for fmt, name in targets:
            dst = OUT / f"{size}_{name}"
            results.append(run_case(f"COCO -> {fmt}",
                                    CONVERT.format(src=str(src), dst=str(dst), fmt=fmt,
                                                   workers=args.workers)))
        n_images, n_anns = SIZES[size]
        print_table(f"{size}: {n_images} images / {n_anns} annotations, {mb:.0f} MB "
                    f"(workers={args.workers})", floor, results)


if __name__ == "__main__":
    main()
