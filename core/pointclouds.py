"""Point clouds: read lazily from disk, never all clouds of a dataset at once.

An item's ``pointcloud_location`` names a file; :func:`load_points` reads it as an
``(n, 4)`` float32 array of x, y, z (metres) and intensity ``i``:

* ``.bin``: KITTI velodyne, little-endian float32 x, y, z, reflectance (16 bytes a point).
* ``.json``: Nucleus pointcloud JSON ``{"points": [{"x", "y", "z", "i"}, ...]}``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import orjson

from annobridge.core.errors import ReadError
from annobridge.core.model import LidarPoint


def load_points(location: str | os.PathLike[str]) -> np.ndarray:
    """The cloud at ``location`` as an ``(n, 4)`` float32 array (x, y, z, i)."""
    path = Path(location)
    if path.suffix == ".bin":
        size = path.stat().st_size
        if size % 16:
            raise ReadError(f"velodyne file has {size} bytes, not a multiple of 16 (4 float32 a point)",
                            file=path, fix="the file is truncated or not a KITTI velodyne scan")
        return np.fromfile(path, dtype="<f4").reshape(-1, 4)
    if path.suffix == ".json":
        try:
            with open(path, encoding="utf-8") as fh:
                points = json.load(fh)["points"]
            return np.array([[p["x"], p["y"], p["z"], p.get("i") or 0.0] for p in points],
                            dtype=np.float32).reshape(-1, 4)
        except (ValueError, KeyError, TypeError) as exc:
            raise ReadError(f"not a Nucleus pointcloud JSON: {exc}", file=path,
                            fix='expected {"points": [{"x":..,"y":..,"z":..,"i":..}, ...]}') from exc
    raise ReadError(f"unknown point cloud file type {path.suffix!r}", file=path,
                    fix="use KITTI .bin or Nucleus pointcloud .json")


def lidar_points(location: str | os.PathLike[str]) -> list[LidarPoint]:
    """The cloud as :class:`LidarPoint` objects (a view for users; slow for big clouds)."""
    return [LidarPoint.model_construct(x=float(x), y=float(y), z=float(z), i=float(i))
            for x, y, z, i in load_points(location)]


def write_points_json(points: np.ndarray, path: str | os.PathLike[str]) -> None:
    """Write an ``(n, 4)`` array as Nucleus pointcloud JSON.

    Each value is the shortest decimal that reads back as the same float32 (orjson formats
    whole columns in Rust; only the row template runs in Python), so clouds round-trip exactly.
    """
    cols = np.ascontiguousarray(np.asarray(points, dtype=np.float32).reshape(-1, 4).T)
    rows = b""
    if cols.shape[1]:
        text = [orjson.dumps(cols[k], option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].split(b",") for k in range(4)]
        rows = b",".join([b'{"x":%b,"y":%b,"z":%b,"i":%b}' % r for r in zip(*text)])
    with open(path, "wb") as fh:
        fh.write(b'{"points":[' + rows + b"]}")
