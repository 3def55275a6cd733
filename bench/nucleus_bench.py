"""Benchmark: Nucleus -> Nucleus and Nucleus -> canonical JSONL against the floor.

The floor is ``orjson.loads`` then ``orjson.dumps`` of every line of the same file in one
process. Imports are not timed (start-up is ``bench/startup_bench.py``'s business): the
ratios compare the work per line. CPU time is printed beside wall time. Data is generated (seeded) with annobridge's own Nucleus writer: 640x480 images,
8 annotations each (boxes, polygons of 8-30 vertices, a 17-keypoint person every other item),
10% of the items with a box prediction.

    python bench/nucleus_bench.py            # 5,000 items / 40,000 annotations
    python bench/nucleus_bench.py --large    # 50,000 items / 400,000 annotations
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import print_table, run_case

DATA = Path(__file__).resolve().parent / "data"
SETUP = """
import annobridge, annobridge.converters.api
import annobridge.plugins.nucleus.read, annobridge.plugins.nucleus.write, annobridge.plugins.jsonl.write
"""
NAMES = [f"kp{i}" for i in range(17)]


def generate(n_items: int, path: Path) -> None:
    from annobridge.core.model import (
        BoxAnnotation,
        DatasetItem,
        KeypointsAnnotation,
        PolygonAnnotation,
    )

    import annobridge

    rnd = random.Random(42)

    def items():
        for i in range(n_items):
            anns = []
            for k in range(8):
                x, y = rnd.randint(0, 500), rnd.randint(0, 380)
                if k % 2:
                    nv = rnd.randint(8, 30)
                    ring = []
                    for _ in range(nv):
                        ring += [round(x + rnd.random() * 100, 2), round(y + rnd.random() * 100, 2)]
                    anns.append(PolygonAnnotation(label=f"c{k}", rings=[ring], annotation_id=f"{i}-{k}"))
                elif k == 0 and i % 2:
                    kps = []
                    for _ in range(17):
                        kps += [round(x + rnd.random() * 50, 2), round(y + rnd.random() * 50, 2), rnd.choice((0, 1, 2))]
                    anns.append(KeypointsAnnotation(label="person", keypoints=kps, names=NAMES, annotation_id=f"{i}-{k}"))
                else:
                    anns.append(BoxAnnotation(label=f"c{k}", x=x, y=y, width=rnd.randint(1, 140),
                                              height=rnd.randint(1, 100), annotation_id=f"{i}-{k}"))
            preds = [BoxAnnotation(label="c0", x=1, y=2, width=3, height=4, confidence=0.5)] if i % 10 == 0 else []
            yield DatasetItem(reference_id=f"img{i:07d}", image_location=f"s3://bench/img{i:07d}.jpg",
                              width=640, height=480, metadata={"i": i}, annotations=anns, predictions=preds)

    path.parent.mkdir(parents=True, exist_ok=True)
    annobridge.save(annobridge.Dataset(items=items()), path, "nucleus", overwrite=True)


def check(src: Path, out: Path, n: int) -> None:
    """A fast run that drops data is no win: the data was written by annobridge's Nucleus
    writer, so Nucleus -> Nucleus must give it back byte for byte, and the JSONL must hold
    every item and annotation."""
    if (out / "x.nucleus.jsonl").read_bytes() != src.read_bytes():
        raise SystemExit(f"nucleus -> nucleus: {out / 'x.nucleus.jsonl'} differs from {src}")
    import orjson

    lines = (out / "x.jsonl.jsonl").read_bytes().splitlines()[1:]  # the first line is the header
    anns = sum(len(orjson.loads(line)["annotations"]) for line in lines)
    if len(lines) != n or anns != 8 * n:
        raise SystemExit(f"nucleus -> jsonl: {len(lines)} items and {anns} annotations, expected {n} and {8 * n}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    n = 50_000 if args.large else 5_000
    src = DATA / f"nucleus-{n}.jsonl"
    if not src.exists():
        generate(n, src)
    out = DATA / "out"
    out.mkdir(parents=True, exist_ok=True)
    floor = run_case("floor: orjson loads+dumps per line", setup="import orjson", code=f"""
        with open({str(src)!r}, "rb") as fh, open({str(out / 'floor.jsonl')!r}, "wb") as dst:
            for line in fh:
                dst.write(orjson.dumps(orjson.loads(line)) + b"\\n")
    """)
    cases = []
    for name, fmt in (("nucleus -> nucleus", "nucleus"), ("nucleus -> jsonl", "jsonl")):
        cases.append(run_case(name, setup=SETUP, code=f"""
            annobridge.convert({str(src)!r}, {str(out / ('x.' + fmt + '.jsonl'))!r}, src_format="nucleus",
                               dst_format={fmt!r}, overwrite=True, workers={args.workers})
        """))
    check(src, out, n)
    print_table(f"Nucleus, {n} items / {8 * n} annotations ({src.stat().st_size / 2**20:.0f} MB)", floor, cases)


if __name__ == "__main__":
    main()
