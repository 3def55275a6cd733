"""Synthetic KITTI-format data for the KITTI tests (no KITTI content: generated numbers).

``synthetic_calib`` builds a calibration shaped like the real ones (a near-permutation
Velodyne -> camera with a small tilt, a small rectifying rotation, P2 with camera 2's
offset); ``object_row`` builds a label row whose 2D box is the clipped projection of its
3D box, so geometry tests can demand exact agreement.
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

import numpy as np

from annobridge.core import camera
from annobridge.plugins.kitti import calib as kitti_calib


def _rot(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def synthetic_calib(seed: int = 0) -> camera.Calib:
    """A plausible KITTI calibration (values rounded to 7 significant digits like KITTI's)."""
    rng = np.random.default_rng(seed)
    perm = np.array([[0, -1, 0], [0, 0, -1], [1, 0, 0]], dtype=float)  # velo -> camera axes
    tilt = _rot(*(rng.uniform(-0.015, 0.015, 3)))
    r_velo = tilt @ perm
    t_velo = np.array([-0.004, -0.076, -0.27]) + rng.uniform(-0.01, 0.01, 3)
    r0 = _rot(*(rng.uniform(-0.01, 0.01, 3)))
    f = 721.5377 + rng.uniform(-15, 15)
    k = np.array([[f, 0, 609.5593], [0, f, 172.854], [0, 0, 1]])
    offset = np.array([0.06, -0.0003, 0.0027]) + rng.uniform(-0.001, 0.001, 3)
    p2 = np.hstack([k, (k @ offset).reshape(3, 1)])
    p0 = np.hstack([k, np.zeros((3, 1))])
    p1 = np.hstack([k, np.array([[-0.54 * f], [0], [0]])])
    p3 = np.hstack([k, (k @ (offset + np.array([-0.54, 0, 0]))).reshape(3, 1)])

    def r7(m: np.ndarray) -> list[float]:
        return [float(f"{v:.6e}") for v in np.asarray(m).reshape(-1)]

    return {"P0": r7(p0), "P1": r7(p1), "P2": r7(p2), "P3": r7(p3), "R0_rect": r7(r0),
            "Tr_velo_to_cam": r7(np.hstack([r_velo, t_velo.reshape(3, 1)])),
            "Tr_imu_to_velo": r7(np.hstack([np.eye(3), np.array([[-0.81], [0.32], [-0.8]])]))}


def object_fields(rng: np.random.Generator, calib: camera.Calib, width: int = 1242,
                  height: int = 375) -> dict | None:
    """One visible object with a consistent 2D box (None when it projects outside)."""
    t = camera.Transform(calib)
    h, w, l = rng.uniform(1.2, 2.0), rng.uniform(0.5, 2.0), rng.uniform(0.6, 5.0)
    x, z = rng.uniform(-12, 12), rng.uniform(5, 60)
    y = rng.uniform(1.4, 2.0)
    ry = rng.uniform(-math.pi, math.pi)
    h, w, l, x, y, z, ry = (round(v, 2) for v in (h, w, l, x, y, z, ry))
    box = camera.box_2d(t.P2, camera.corners_camera((x, y, z), h, w, l, ry), width, height)
    if box is None:
        return None
    return {"h": h, "w": w, "l": l, "x": x, "y": y, "z": z, "ry": ry, "box": box,
            "alpha": camera.alpha_of((x, y, z), ry)}


def object_row(name: str, o: dict, truncated: float = 0.0, occluded: int = 0,
               score: float | None = None) -> str:
    b = o["box"]
    row = (f"{name} {truncated:.2f} {occluded} {o['alpha']:.2f} {b[0]:.2f} {b[1]:.2f} {b[2]:.2f} {b[3]:.2f} "
           f"{o['h']:.2f} {o['w']:.2f} {o['l']:.2f} {o['x']:.2f} {o['y']:.2f} {o['z']:.2f} {o['ry']:.2f}")
    return row + (f" {score:.4f}" if score is not None else "")


def tiny_png(path: Path, width: int, height: int) -> None:
    """A valid grey PNG of the given size (all zero), written without PIL."""
    raw = b"".join(b"\x00" + b"\x00" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)


def cloud(path: Path, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-40, 40, (n, 4)).astype("<f4")
    pts[:, 3] = rng.uniform(0, 1, n)
    path.parent.mkdir(parents=True, exist_ok=True)
    pts.tofile(path)
    return pts


def make_object_root(root: Path, frames: int = 3, objects: int = 4, points: int = 64, seed: int = 0,
                     velodyne: bool = True) -> None:
    """A ``training/`` KITTI root with label_2, calib, image_2, velodyne and ImageSets."""
    rng = np.random.default_rng(seed)
    tr = root / "training"
    train_ids = []
    for f in range(frames):
        stem = f"{f:06d}"
        calib = synthetic_calib(seed + f)
        (tr / "calib").mkdir(parents=True, exist_ok=True)
        (tr / "calib" / f"{stem}.txt").write_text(kitti_calib.format_calib(calib))
        rows = []
        while len(rows) < objects:
            o = object_fields(rng, calib)
            if o is not None:
                rows.append(object_row(("Car", "Pedestrian", "Cyclist")[len(rows) % 3], o))
        if f % 2:
            rows.append("DontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10")
        (tr / "label_2").mkdir(parents=True, exist_ok=True)
        (tr / "label_2" / f"{stem}.txt").write_text("".join(r + "\n" for r in rows))
        tiny_png(tr / "image_2" / f"{stem}.png", 1242, 375)
        if velodyne:
            cloud(tr / "velodyne" / f"{stem}.bin", points, seed + f)
        if f % 2 == 0:
            train_ids.append(stem)
    (root / "ImageSets").mkdir(exist_ok=True)
    (root / "ImageSets" / "train.txt").write_text("".join(s + "\n" for s in train_ids))
