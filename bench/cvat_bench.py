"""Benchmark: CVAT for images XML -> CVAT and -> canonical JSONL against two floors.

Floors, measured in the same run: expat parsing the file with no handlers (what any
streaming reader must pay), and ``xml.etree.ElementTree.parse`` building the whole DOM (what
a non-streaming reader holds in memory). Data is generated (seeded) with annobridge's own
CVAT writer: 640x480 images, 10 shapes each (boxes, polygons of 8-30 vertices, polylines).
After the conversions, the outputs are read back and their shape counts checked.

    python bench/cvat_bench.py             # 10,000 images / 100,000 shapes
    python bench/cvat_bench.py --large     # 100,000 images / 1,000,000 shapes
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import print_table, run_case

DATA = Path(__file__).resolve().parent / "data"
SHAPES = 10


def generate(n_items: int, path: Path) -> None:
    import annobridge
    from annobridge.core.model import BoxAnnotation, DatasetItem, LineAnnotation, PolygonAnnotation

    rnd = random.Random(42)

    def ring(x: int, y: int) -> list[float]:
        out: list[float] = []
        for _ in range(rnd.randint(8, 30)):
            out += [round(x + rnd.random() * 100, 2), round(y + rnd.random() * 100, 2)]
        return out

    def items():
        for i in range(n_items):
            anns = []
            for k in range(SHAPES):
                x, y = rnd.randint(0, 500), rnd.randint(0, 380)
                attrs = {"occluded": k % 2, "z_order": k}
                if k % 3 == 0:
                    anns.append(PolygonAnnotation(label=f"c{k}", rings=[ring(x, y)], attributes=attrs))
                elif k % 3 == 1:
                    anns.append(LineAnnotation(label=f"c{k}", vertices=ring(x, y)[:8], attributes=attrs))
                else:
                    anns.append(BoxAnnotation(label=f"c{k}", x=x, y=y, width=rnd.randint(1, 140),
                                              height=rnd.randint(1, 100), attributes=attrs))
            yield DatasetItem(reference_id=f"img{i:07d}", image_location=f"img{i:07d}.jpg", width=640, height=480,
                              annotations=anns)

    path.parent.mkdir(parents=True, exist_ok=True)
    annobridge.save(annobridge.Dataset(items=items()), path, "cvat", overwrite=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true")
    args = parser.parse_args()
    n = 100_000 if args.large else 10_000
    src = DATA / f"cvat-{n}.xml"
    if not src.exists():
        generate(n, src)
    out = DATA / "out"
    out.mkdir(parents=True, exist_ok=True)
    floor = run_case("floor: expat, no handlers", f"""
        from xml.parsers import expat
        p = expat.ParserCreate()
        with open({str(src)!r}, "rb") as fh:
            p.ParseFile(fh)
    """)
    dom = run_case("ElementTree.parse (whole DOM)", f"""
        import xml.etree.ElementTree as ET
        root = ET.parse({str(src)!r}).getroot()
        assert sum(len(image) for image in root.iter("image")) == {n * SHAPES}
    """)
    cases = [dom]
    targets = {"cvat": out / "x.cvat.xml", "jsonl": out / "x.cvat.jsonl"}
    for fmt, dst in targets.items():
        cases.append(run_case(f"cvat -> {fmt}", f"""
            import annobridge
            annobridge.convert({str(src)!r}, {str(dst)!r}, src_format="cvat", dst_format={fmt!r}, overwrite=True)
        """))
    cases.append(run_case("read only (iterate items)", f"""
        import annobridge
        assert sum(len(i.annotations) for i in annobridge.load({str(src)!r}, "cvat", stream=True).items) == {n * SHAPES}
    """))
    import annobridge

    for fmt, dst in targets.items():  # check what was written
        count = sum(len(i.annotations) for i in annobridge.load(dst, fmt, stream=True).items)
        assert count == n * SHAPES, (fmt, count)
    print_table(f"CVAT for images, {n} images / {n * SHAPES} shapes ({src.stat().st_size / 2**20:.0f} MB); "
                "outputs read back and counted", floor, cases)


if __name__ == "__main__":
    main()
