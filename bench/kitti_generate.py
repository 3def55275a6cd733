"""Generate a KITTI object-benchmark folder for benchmarks (synthetic numbers, no KITTI content).

    python bench/kitti_generate.py OUT --frames 5000 --objects 10 --points 120000

Writes ``OUT/training/{label_2,calib,image_2,velodyne}`` and ``OUT/ImageSets/train.txt``:
every frame has ``objects`` label rows (the last one a DontCare row when objects > 1), one
shared calibration (as frames of one drive share theirs), the same small PNG (1242x375) and
a velodyne cloud of ``points`` float32 x, y, z, reflectance.
"""

from __future__ import annotations

import argparse
import math
import struct
import zlib
from pathlib import Path

import numpy as np

CALIB = """P0: 7.215377000000e+02 0.000000000000e+00 6.095593000000e+02 0.000000000000e+00 0.000000000000e+00 7.215377000000e+02 1.728540000000e+02 0.000000000000e+00 0.000000000000e+00 0.000000000000e+00 1.000000000000e+00 0.000000000000e+00
P1: 7.215377000000e+02 0.000000000000e+00 6.095593000000e+02 -3.875744000000e+02 0.000000000000e+00 7.215377000000e+02 1.728540000000e+02 0.000000000000e+00 0.000000000000e+00 0.000000000000e+00 1.000000000000e+00 0.000000000000e+00
P2: 7.215377000000e+02 0.000000000000e+00 6.095593000000e+02 4.485728000000e+01 0.000000000000e+00 7.215377000000e+02 1.728540000000e+02 2.163791000000e-01 0.000000000000e+00 0.000000000000e+00 1.000000000000e+00 2.745884000000e-03
P3: 7.215377000000e+02 0.000000000000e+00 6.095593000000e+02 -3.395242000000e+02 0.000000000000e+00 7.215377000000e+02 1.728540000000e+02 2.199936000000e+00 0.000000000000e+00 0.000000000000e+00 1.000000000000e+00 2.729905000000e-03
R0_rect: 9.999239000000e-01 9.837760000000e-03 -7.445048000000e-03 -9.869795000000e-03 9.999421000000e-01 -4.278459000000e-03 7.402527000000e-03 4.351614000000e-03 9.999631000000e-01
Tr_velo_to_cam: 7.533745000000e-03 -9.999714000000e-01 -6.166020000000e-04 -4.069766000000e-03 1.480249000000e-02 7.280733000000e-04 -9.998902000000e-01 -7.631618000000e-02 9.998621000000e-01 7.523790000000e-03 1.480755000000e-02 -2.717806000000e-01
Tr_imu_to_velo: 9.999976000000e-01 7.553071000000e-04 -2.035826000000e-03 -8.086759000000e-01 -7.854027000000e-04 9.998898000000e-01 -1.482298000000e-02 3.195559000000e-01 2.024406000000e-03 1.482454000000e-02 9.998881000000e-01 -7.997231000000e-01

"""
CLASSES = ("Car", "Pedestrian", "Cyclist", "Van", "Truck")


def png(width: int, height: int) -> bytes:
    raw = b"".join(b"\x00" + b"\x00" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def label_text(rng: np.random.Generator, objects: int) -> str:
    rows = []
    for k in range(objects):
        if objects > 1 and k == objects - 1:
            rows.append("DontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10")
            continue
        h, w, l = rng.uniform(1.2, 2.0), rng.uniform(0.5, 2.0), rng.uniform(0.6, 5.0)
        x, y, z = rng.uniform(-12, 12), rng.uniform(1.4, 2.0), rng.uniform(5, 60)
        ry = rng.uniform(-math.pi, math.pi)
        alpha = (ry - math.atan2(x, z) + math.pi) % (2 * math.pi) - math.pi
        left, top = rng.uniform(0, 1100), rng.uniform(100, 250)
        right, bottom = left + rng.uniform(10, 140), top + rng.uniform(10, 120)
        rows.append(f"{CLASSES[k % len(CLASSES)]} {rng.uniform(0, 0.5):.2f} {int(rng.integers(0, 3))} {alpha:.2f} "
                    f"{left:.2f} {top:.2f} {right:.2f} {bottom:.2f} {h:.2f} {w:.2f} {l:.2f} "
                    f"{x:.2f} {y:.2f} {z:.2f} {ry:.2f}")
    return "".join(r + "\n" for r in rows)


def generate(out: Path, frames: int, objects: int, points: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    tr = out / "training"
    for sub in ("label_2", "calib", "image_2", "velodyne"):
        (tr / sub).mkdir(parents=True, exist_ok=True)
    image = png(1242, 375)
    base = rng.uniform(-40, 40, (points, 4)).astype("<f4")
    base[:, 3] = rng.uniform(0, 1, points)
    for f in range(frames):
        stem = f"{f:06d}"
        (tr / "label_2" / f"{stem}.txt").write_text(label_text(rng, objects))
        (tr / "calib" / f"{stem}.txt").write_text(CALIB)
        (tr / "image_2" / f"{stem}.png").write_bytes(image)
        cloud = base.copy()
        cloud[:, 0] += np.float32(f % 7) * 0.01
        cloud.tofile(tr / "velodyne" / f"{stem}.bin")
    (out / "ImageSets").mkdir(exist_ok=True)
    (out / "ImageSets" / "train.txt").write_text("".join(f"{f:06d}\n" for f in range(0, frames, 2)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--objects", type=int, default=10)
    p.add_argument("--points", type=int, default=20000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    generate(a.out, a.frames, a.objects, a.points, a.seed)


if __name__ == "__main__":
    main()
