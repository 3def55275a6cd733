"""Benchmark: reading a large COCO panoptic JSON (no PNG work) against ``msgspec`` decoding it.

The JSON is generated (seeded): ``--images`` images with 10-40 segments each (the default,
35,000 images, is about 75 MB, the size the issue measured). The reader runs with
``check-masks=false`` so only the JSON is read; every item is built. Cases run in fresh
interpreters (``bench/measure.py``), side by side in one run:

    floor              ``msgspec.json.decode`` of the whole file (Python objects, nothing else)
    stdlib scanner     the reader's fallback scanner (the reader before typed decoding: the
                       standard library with checking hooks, element by element)
    panoptic read      the reader as it is, iterating every item

    python bench/panoptic_json_bench.py [--images 35000]

CPU time is printed beside wall time: on a shared machine compare CPU.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from measure import print_table, run_case  # noqa: E402


def generate(path: Path, images: int) -> None:
    rnd = random.Random(7)
    cats = [{"id": i, "name": f"cat{i}", "supercategory": "s", "isthing": int(i < 80),
             "color": [rnd.randrange(256) for _ in range(3)]} for i in range(1, 134)]
    imgs, anns = [], []
    for i in range(images):
        imgs.append({"id": 100000 + i, "file_name": f"{100000 + i:012d}.jpg", "width": 640, "height": 480})
        segs = []
        for sid in rnd.sample(range(1, 2**24), rnd.randint(10, 40)):
            x, y = rnd.randint(0, 600), rnd.randint(0, 440)
            w, h = rnd.randint(1, 640 - x), rnd.randint(1, 480 - y)
            segs.append({"id": sid, "category_id": rnd.randint(1, 133),
                         "iscrowd": 0, "bbox": [x, y, w, h], "area": rnd.randint(1, w * h)})
        anns.append({"image_id": 100000 + i, "file_name": f"{100000 + i:012d}.png", "segments_info": segs})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"info": {"description": "bench"}, "licenses": [], "images": imgs,
                                "annotations": anns, "categories": cats}))


FLOOR = """
import msgspec
with open({src!r}, "rb") as fh:
    doc = msgspec.json.decode(fh.read())
assert len(doc["images"]) == {n}
"""

STDLIB = """
from annobridge.plugins.coco_panoptic.read import _scan
with open({src!r}, "rb") as fh:
    doc = _scan(fh.read().decode("utf-8"))
n = sum(1 for _ in doc["images"]) + sum(len(a["segments_info"]) for a in doc["annotations"])
assert n > {n}
"""

READ = """
from pathlib import Path
from annobridge.converters import engine
ds = engine.read_dataset(Path({src!r}), "coco-panoptic", options={{"check_masks": False}})
items = segments = 0
for item in ds.items:
    items += 1
    segments += sum(len(a.annotations) for a in item.annotations)
assert items == {n} and segments > items, (items, segments)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=30_000)
    args = parser.parse_args()
    src = HERE / "data" / f"panoptic-json-{args.images}.json"
    if not src.exists():
        generate(src, args.images)
    fill = {"src": str(src), "n": args.images}
    floor = run_case("floor: msgspec.json.decode", FLOOR.format(**fill))
    cases = [run_case("stdlib scanner (before)", STDLIB.format(**fill)),
             run_case("panoptic read (check-masks=false)", READ.format(**fill))]
    print_table(f"COCO panoptic JSON, {args.images} images ({src.stat().st_size / 2**20:.0f} MB)", floor, cases)


if __name__ == "__main__":
    main()
