"""Camera geometry shared by formats and rendering: KITTI-style calibration matrices,
camera <-> LiDAR box transforms, cuboid corners, projection to image boxes, and the
Nucleus ``camera_params`` <-> calibration conversions.

Frames (the KITTI object devkit ``readme.txt``):

* rectified camera 0 ("camera"): x right, y down, z forward, metres. A KITTI label
  ``location`` is the **bottom-face centre** of the box in this frame, ``dimensions`` are
  h, w, l and ``rotation_y`` (ry) is the yaw about camera +y; the heading (length axis) is
  ``(cos ry, 0, -sin ry)``.
* Velodyne ("lidar"): x forward, y left, z up. ``X_rect = R0_rect · Tr_velo_to_cam · X_velo``
  with both matrices padded to 4×4; the inverse is the exact inverse of that 4×4 product.

The canonical LiDAR cuboid (``CuboidAnnotation``, frame ``"lidar"``) has ``position`` = the
exact inverse transform of the geometric centre ``(x, y - h/2, z)``, dimensions (l, w, h) and
``yaw = atan2(v_y, v_x)`` where ``v`` is the camera heading rotated into the LiDAR frame
(its z component, the small camera/LiDAR tilt, is dropped). The inverse
(:func:`lidar_to_camera`) solves for the ry whose rotated heading has exactly that
ground-plane direction, so camera -> LiDAR -> camera reproduces ry to ~1e-15 rad.

A calibration is ``{key: [values, row-major]}`` with KITTI's keys (``P2`` 3×4,
``R0_rect`` 3×3, ``Tr_velo_to_cam`` 3×4); reading and writing calibration *files* stays in
the KITTI plugin.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

Calib = dict[str, list[float]]
"""KITTI-style calibration: matrix name -> values in row-major order."""

_CACHE_LIMIT = 256

_TRANSFORMS: dict[int, tuple[Calib, "Transform", dict]] = {}


def transform_of(calib: Calib) -> "Transform":
    """A :class:`Transform` for ``calib``, reused while the same dict object is passed."""
    hit = _TRANSFORMS.get(id(calib))
    if hit is not None and hit[0] is calib:
        return hit[1]
    t = Transform(calib)
    if len(_TRANSFORMS) >= _CACHE_LIMIT:
        _TRANSFORMS.clear()
    _TRANSFORMS[id(calib)] = (calib, t, {})
    return t


def camera_params_of(t: "Transform") -> dict[str, Any]:
    """:func:`camera_params`, computed once per cached transform (a fresh copy each call)."""
    hit = _TRANSFORMS.get(id(t.calib))
    if hit is not None and hit[1] is t:
        if "cp" not in hit[2]:
            hit[2]["cp"] = camera_params(t)
        return copy.deepcopy(hit[2]["cp"])
    return camera_params(t)


def _pad(values: list[float], rows: int, cols: int) -> np.ndarray:
    m = np.eye(4)
    m[:rows, :cols] = np.asarray(values, dtype=np.float64).reshape(rows, cols)
    return m


class Transform:
    """Calibration matrices of one frame, precomputed for the box conversions."""

    def __init__(self, calib: Calib) -> None:
        self.calib = calib
        self.velo_to_rect = _pad(calib["R0_rect"], 3, 3) @ _pad(calib["Tr_velo_to_cam"], 3, 4)
        self.rect_to_velo = np.linalg.inv(self.velo_to_rect)
        self.P2 = np.asarray(calib["P2"], dtype=np.float64).reshape(3, 4)


def camera_to_lidar(t: Transform, loc: tuple[float, float, float], h: float,
                    ry: float) -> tuple[tuple[float, float, float], float]:
    """(bottom-centre location, h, ry) in rectified camera -> (LiDAR centre, LiDAR yaw)."""
    m = t.rect_to_velo
    x, y, z = loc
    yc = y - h / 2.0
    c = m[:3, 0] * x + m[:3, 1] * yc + m[:3, 2] * z + m[:3, 3]
    cr, sr = math.cos(ry), math.sin(ry)
    vx = m[0, 0] * cr - m[0, 2] * sr
    vy = m[1, 0] * cr - m[1, 2] * sr
    return (float(c[0]), float(c[1]), float(c[2])), math.atan2(vy, vx)


def lidar_to_camera(t: Transform, centre: tuple[float, float, float], h: float,
                    yaw: float) -> tuple[tuple[float, float, float], float]:
    """Exact inverse of :func:`camera_to_lidar`: (LiDAR centre, yaw) -> (location, ry)."""
    m = t.velo_to_rect
    cx, cy, cz = centre
    g = m[:3, 0] * cx + m[:3, 1] * cy + m[:3, 2] * cz + m[:3, 3]
    loc = (float(g[0]), float(g[1] + h / 2.0), float(g[2]))
    r = t.rect_to_velo
    sy, cyw = math.sin(yaw), math.cos(yaw)
    # heading in LiDAR for ry: cos ry * r[:,0] - sin ry * r[:,2]; its ground direction is
    # (cos yaw, sin yaw) when the component across it vanishes: a cos ry = b sin ry.
    a = -sy * r[0, 0] + cyw * r[1, 0]
    b = -sy * r[0, 2] + cyw * r[1, 2]
    ry = math.atan2(a, b)
    along = cyw * (r[0, 0] * math.cos(ry) - r[0, 2] * math.sin(ry)) + sy * (
        r[1, 0] * math.cos(ry) - r[1, 2] * math.sin(ry))
    if along < 0:
        ry = wrap_angle(ry + math.pi)
    return loc, ry


def wrap_angle(a: float) -> float:
    """Wrap to [-pi, pi)."""
    return (a + math.pi) % (2.0 * math.pi) - math.pi


def alpha_of(loc: tuple[float, float, float], ry: float) -> float:
    """Observation angle ``ry - atan2(x, z)`` wrapped to [-pi, pi) (devkit ``readme.txt``)."""
    return wrap_angle(ry - math.atan2(loc[0], loc[2]))


def corners_camera(loc: tuple[float, float, float], h: float, w: float, l: float,
                   ry: float) -> np.ndarray:
    """The 8 box corners (8, 3) in rectified camera coordinates (devkit ``computeBox3D``)."""
    xs = np.array([l, l, -l, -l, l, l, -l, -l]) / 2.0
    ys = np.array([0, 0, 0, 0, -h, -h, -h, -h], dtype=np.float64)
    zs = np.array([w, -w, -w, w, w, -w, -w, w]) / 2.0
    c, s = math.cos(ry), math.sin(ry)
    x = c * xs + s * zs + loc[0]
    z = -s * xs + c * zs + loc[2]
    return np.stack([x, ys + loc[1], z], axis=1)


_EDGES = ((0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4),
          (0, 4), (1, 5), (2, 6), (3, 7))
NEAR = 0.01


def project_corners(P2: np.ndarray, corners: np.ndarray) -> np.ndarray | None:
    """Pixel coordinates (n, 2) of the box outline in image 2, clipped at the near plane
    ``z = 0.01 m`` (edges crossing it are cut); None when the box is behind the camera."""
    front = corners[:, 2] > NEAR
    if front.all():
        pts = corners
    elif not front.any():
        return None
    else:
        kept = [corners[i] for i in range(8) if front[i]]
        for i, j in _EDGES:
            if front[i] != front[j]:
                a, b = corners[i], corners[j]
                s = (NEAR - a[2]) / (b[2] - a[2])
                kept.append(a + s * (b - a))
        pts = np.asarray(kept)
    hom = np.hstack([pts, np.ones((len(pts), 1))]) @ P2.T
    return hom[:, :2] / hom[:, 2:3]


def box_2d(P2: np.ndarray, corners: np.ndarray, width: int | None,
           height: int | None) -> tuple[float, float, float, float] | None:
    """left, top, right, bottom of the projected corners, clipped to the image when its size
    is known; None when nothing is in front of the camera or inside the image."""
    uv = project_corners(P2, corners)
    if uv is None:
        return None
    left, top = float(uv[:, 0].min()), float(uv[:, 1].min())
    right, bottom = float(uv[:, 0].max()), float(uv[:, 1].max())
    if width is not None and height is not None:
        left, right = min(max(left, 0.0), float(width)), min(max(right, 0.0), float(width))
        top, bottom = min(max(top, 0.0), float(height)), min(max(bottom, 0.0), float(height))
        if right <= left or bottom <= top:
            return None
    return left, top, right, bottom


# --------------------------------------------------------------------------- Nucleus camera params


def _quat_from_matrix(r: np.ndarray) -> dict[str, float]:
    u, _, vt = np.linalg.svd(r)
    r = u @ vt  # nearest rotation (R0_rect is given to 7 digits, not exactly orthonormal)
    w = math.sqrt(max(0.0, 1.0 + r[0, 0] + r[1, 1] + r[2, 2])) / 2.0
    x = math.sqrt(max(0.0, 1.0 + r[0, 0] - r[1, 1] - r[2, 2])) / 2.0
    y = math.sqrt(max(0.0, 1.0 - r[0, 0] + r[1, 1] - r[2, 2])) / 2.0
    z = math.sqrt(max(0.0, 1.0 - r[0, 0] - r[1, 1] + r[2, 2])) / 2.0
    x = math.copysign(x, r[2, 1] - r[1, 2])
    y = math.copysign(y, r[0, 2] - r[2, 0])
    z = math.copysign(z, r[1, 0] - r[0, 1])
    return {"x": x, "y": y, "z": z, "w": w}


def _matrix_from_quat(q: dict[str, Any]) -> np.ndarray:
    x, y, z, w = (float(q[k]) for k in ("x", "y", "z", "w"))
    n = math.sqrt(x * x + y * y + z * z + w * w)
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def camera_params(t: Transform) -> dict[str, Any]:
    """Nucleus ``camera_params`` of camera 2 in the LiDAR frame.

    ``position`` = camera 2's optical centre (P2 = K [I | k], centre = -K⁻¹·P2[:, 3] in
    rectified camera 0) mapped to LiDAR; ``heading`` = the rotation camera -> LiDAR as a
    Hamilton quaternion, camera axes x right, y down, z forward (optical axis);
    ``fx, fy, cx, cy`` from P2.
    """
    k = t.P2[:, :3]
    offset = np.linalg.solve(k, t.P2[:, 3])
    centre_rect = np.append(-offset, 1.0)
    pos = t.rect_to_velo @ centre_rect
    return {
        "position": {"x": float(pos[0]), "y": float(pos[1]), "z": float(pos[2])},
        "heading": _quat_from_matrix(t.rect_to_velo[:3, :3]),
        "fx": float(t.P2[0, 0]), "fy": float(t.P2[1, 1]),
        "cx": float(t.P2[0, 2]), "cy": float(t.P2[1, 2]),
    }


def calib_from_camera_params(params: dict[str, Any]) -> Calib:
    """A KITTI calibration equivalent to Nucleus ``camera_params`` (camera 2 pose in LiDAR).

    R0_rect = identity, Tr_velo_to_cam = inverse of the camera pose, P2 = [K | 0]. P0, P1
    and P3 are copies of P2 and Tr_imu_to_velo is the identity: placeholders, so readers
    that take lines by position find seven lines.
    """
    r = _matrix_from_quat(params["heading"])
    p = np.array([float(params["position"][k]) for k in ("x", "y", "z")])
    rt = r.T
    tr = np.hstack([rt, (-rt @ p).reshape(3, 1)])
    fx, fy, cx, cy = (float(params[k]) for k in ("fx", "fy", "cx", "cy"))
    p2 = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return {
        "P0": list(p2), "P1": list(p2), "P2": p2, "P3": list(p2),
        "R0_rect": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        "Tr_velo_to_cam": [float(v) for v in tr.reshape(-1)],
        "Tr_imu_to_velo": [1.0, 0, 0, 0, 0, 1.0, 0, 0, 0, 0, 1.0, 0],
    }
