"""Peak memory of per-item formats does not grow with the number of items.

Generates the same KITTI shape (``bench/kitti_generate.py``) and the same COCO panoptic shape
(``bench/panoptic_generate.py``, small images) at two sizes ten times apart and runs each
conversion between per-item formats on both (every per-item format is read and written:
KITTI, Nucleus, jsonl, Lightly, CVAT, YOLO, Pascal VOC, COCO panoptic), each in a fresh interpreter, printing
peak RSS at both sizes and their ratio. Flat means the ratio stays near 1 (what grows is
bounded state such as the list of written file names, a few bytes per item). Each output is
re-read and its item count checked, so a conversion that writes nothing cannot look lean.

    python bench/memory_flat.py [--frames 500] [--objects 8] [--points 2000]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from measure import run_case

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "memory_flat"
OUT = HERE / "out" / "memory_flat"

# (source format, source name, destination format, destination name); the sources of later
# steps are outputs of earlier ones
CHAIN = [
    ("kitti", "kitti", "nucleus", "nucleus.jsonl"),
    ("nucleus", "nucleus.jsonl", "nucleus", "nucleus2.jsonl"),
    ("kitti", "kitti", "kitti", "kitti2"),
    ("kitti", "kitti", "jsonl", "canonical.jsonl"),
    ("jsonl", "canonical.jsonl", "lightly", "lightly"),
    ("lightly", "lightly", "jsonl", "from-lightly.jsonl"),
    ("jsonl", "canonical.jsonl", "cvat", "cvat.xml"),
    ("cvat", "cvat.xml", "jsonl", "from-cvat.jsonl"),
    ("jsonl", "canonical.jsonl", "yolo", "yolo"),  # read back with images=image_2 (YOLO needs image sizes)
    ("yolo", "yolo", "jsonl", "from-yolo.jsonl"),
    ("jsonl", "canonical.jsonl", "pascal-voc", "voc"),
    ("pascal-voc", "voc", "jsonl", "from-voc.jsonl"),
    ("coco-panoptic", "panoptic", "jsonl", "panoptic.jsonl"),
    ("jsonl", "panoptic.jsonl", "coco-panoptic", "panoptic2.json"),
]


def convert_code(src: Path, src_fmt: str, dst: Path, dst_fmt: str, read_options: dict | None) -> str:
    return f"""
import annobridge
annobridge.convert({str(src)!r}, {str(dst)!r}, from_format={src_fmt!r}, to_format={dst_fmt!r},
                   read_options={read_options!r})
"""


def count_items(path: Path, fmt: str, read_options: dict | None) -> int:
    code = (f"import annobridge\nprint(sum(1 for _ in annobridge.load({str(path)!r}, "
            f"from_format={fmt!r}, options={read_options!r}, stream=True).items))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=HERE)  # not the checkout root: its annobridge/ would shadow the install
    return int(done.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--objects", type=int, default=8)
    parser.add_argument("--points", type=int, default=2000)
    args = parser.parse_args()
    sizes = [args.frames, args.frames * 10]
    peaks: dict[tuple[str, int], float] = {}
    for n in sizes:
        root = DATA / str(n)
        if not (root / "training" / "label_2").is_dir():
            subprocess.run([sys.executable, str(HERE / "kitti_generate.py"), str(root), "--frames", str(n),
                            "--objects", str(args.objects), "--points", str(args.points)], check=True)
        panoptic = DATA / f"panoptic-{n}"
        if not (panoptic / "panoptic.json").is_file():
            subprocess.run([sys.executable, str(HERE / "panoptic_generate.py"), str(panoptic), "--images", str(n),
                            "--width", "64", "--height", "48"], check=True)
        out = OUT / str(n)
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        for src_fmt, src_name, dst_fmt, dst_name in CHAIN:
            src = {"kitti": root, "panoptic": panoptic / "panoptic.json"}.get(src_name, out / src_name)
            dst = out / dst_name
            options = {"yolo": {"images": str(root / "training" / "image_2")}}
            r = run_case(f"{src_fmt}->{dst_fmt}", convert_code(src, src_fmt, dst, dst_fmt, options.get(src_fmt)))
            got = count_items(dst, dst_fmt, options.get(dst_fmt))
            assert got >= n, f"{src_fmt}->{dst_fmt} at {n} frames wrote {got} items"
            peaks[(f"{src_fmt} -> {dst_fmt}", n)] = r.rss / 2**20
    print(f"\npeak RSS (MB) at {sizes[0]} and {sizes[1]} frames ({args.objects} objects, "
          f"{args.points} points each)")
    print(f"{'conversion':<22} {sizes[0]:>8} {sizes[1]:>8} {'ratio':>6}")
    for src_fmt, _, dst_fmt, _ in CHAIN:
        name = f"{src_fmt} -> {dst_fmt}"
        a, b = peaks[(name, sizes[0])], peaks[(name, sizes[1])]
        print(f"{name:<22} {a:8.0f} {b:8.0f} {b / a:6.2f}")


if __name__ == "__main__":
    main()
