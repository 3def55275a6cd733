"""Lightly read/write speed and memory against a floor measured in the same run.

Usage: ``.venv/bin/python bench/lightly_bench.py [N_ITEMS]`` (default 5000). Builds a
``.lightly`` folder with N images' metadata (nested keys) and an object-detection task
(5 boxes per image), then measures, each in a fresh interpreter:

* floor: importing annobridge and ``json.load`` of every file (the parsing any reader must do);
* read: ``annobridge.load(..., stream=True)`` and iterate every item;
* convert lightly -> jsonl and jsonl -> lightly (schema inference, widening, writes), the
  latter against a floor that reads and rewrites the same files.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import print_table, run_case  # noqa: E402


def build(folder: Path, n: int) -> None:
    import annobridge
    from annobridge.core.model import BoxAnnotation, Category, Dataset, DatasetHeader, DatasetItem

    items = (
        DatasetItem(reference_id=f"d{i % 50}/img_{i:06d}", image_location=f"d{i % 50}/img_{i:06d}.jpg",
                    width=640, height=480,
                    metadata={"court": f"c{i % 7}", "game": i % 113, "weather": {"t": i % 40 + 0.5, "sky": "low"},
                              "night": i % 2 == 0},
                    predictions=[BoxAnnotation(label=("car", "bird")[k % 2], x=10 * k, y=5 * k, width=20, height=30,
                                               confidence=0.5) for k in range(5)])
        for i in range(n)
    )
    header = DatasetHeader(categories=[Category(id=1, name="car"), Category(id=4, name="bird")])
    annobridge.save(Dataset(header=header, items=items), folder / ".lightly", "lightly")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build(root, n)
        src = root / ".lightly"
        floor = run_case("floor: import + json.load every file", f"""
            import json, os
            import annobridge  # the import is part of every case
            for r, _, fs in os.walk({str(src)!r}):
                for f in fs:
                    with open(os.path.join(r, f)) as fh:
                        json.load(fh)
        """)
        read = run_case("read lightly (stream)", f"""
            import annobridge
            for _ in annobridge.load({str(src)!r}, "lightly", stream=True).items:
                pass
        """)
        to_jsonl = run_case("convert lightly -> jsonl", f"""
            import annobridge
            annobridge.convert({str(src)!r}, {str(root / 'out.jsonl')!r}, dst_format="jsonl")
        """)
        back = run_case("convert jsonl -> lightly", f"""
            import annobridge
            annobridge.convert({str(root / 'out.jsonl')!r}, {str(root / 'again' / '.lightly')!r}, dst_format="lightly")
        """)
        print_table(f"lightly read, {n} items x 5 boxes + nested metadata", floor, [read, to_jsonl])
        write_floor = run_case("floor: import + write the same files", f"""
            import json, os
            import annobridge
            src, dst = {str(src)!r}, {str(root / 'copy')!r}
            for r, _, fs in os.walk(src):
                out = os.path.join(dst, os.path.relpath(r, src))
                os.makedirs(out, exist_ok=True)
                for f in fs:
                    with open(os.path.join(r, f)) as fh:
                        data = json.load(fh)
                    with open(os.path.join(out, f), "w") as fh:
                        fh.write(json.dumps(data) + "\\n")
        """)
        print_table("lightly write (the floor also reads the files back)", write_floor, [back])


if __name__ == "__main__":
    main()
