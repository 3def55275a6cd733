"""Draw a dataset's annotations onto its images: one PNG per item (``annobridge render``).

People check a conversion by looking at it. This module draws every kind the canonical
model holds with Pillow alone:

* boxes, oriented boxes, polygons (translucent fill), lines, with the label (and the score of
  a prediction) in a tag at the object's top-left;
* per-object masks and index masks as a translucent tint, one stable colour per label (per
  instance when several segments of an index mask share a label);
* keypoints with their skeleton: visible points filled, hidden points (visibility 1) hollow,
  unlabelled points (visibility 0, no position) counted in the tag;
* 3D cuboids projected with the item's calibration (Nucleus ``camera_params`` for LiDAR-frame
  cuboids, KITTI ``P2`` for camera-frame ones), the front face crossed so a yaw error shows;
* point-cloud items as a bird's-eye view (x forward = up, y left = left) with cuboids from
  above and their heading;
* item-level categories as text in the top-left corner.

An image that cannot be read (missing, a URL, outside the images root) becomes a neutral
canvas of the item's size with a note: rendering never stops on a missing picture. Image
paths from the data go through :func:`annobridge.core.paths.contained`.

:func:`compare_items` draws the same item from two datasets side by side and rings what one
has and the other lacks (same label, same kind, envelopes overlapping by IoU >= 0.5).
"""

from __future__ import annotations

import colorsys
import io
import itertools
import logging
import math
import os
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from annobridge.core.errors import AnnobridgeError, ReadError, WriteError
from annobridge.core.model import DatasetHeader, DatasetItem
from annobridge.core.paths import contained, media_file, safe_name

logger = logging.getLogger(__name__)

CANVAS = (96, 96, 96)
"""Grey of the canvas drawn when an item's image cannot be read."""
MISSING = (255, 0, 255)
"""Magenta: the ring around an annotation the other dataset lacks (``--compare``)."""
FILL_ALPHA = 96
"""Opacity (0..255) of mask tints and polygon fills."""
DEFAULT_SIZE = (640, 480)
BEV_SIZE = 800


def color_for(key: str) -> tuple[int, int, int]:
    """A stable, saturated colour for a label or instance key (same key, same colour, in
    every run and process: crc32 of the key picks the hue)."""
    h = (zlib.crc32(key.encode("utf-8")) % 360) / 360.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.85, 1.0)
    return round(r * 255), round(g * 255), round(b * 255)


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


# --------------------------------------------------------------------------- images


def resolve_local(location: str | None, root: Path, what: str, item: str) -> tuple[Path | None, str | None]:
    """The file ``location`` names, inside ``root``, or None and a note saying why not.

    A relative location is tried against ``root`` and then as given (readers such as KITTI
    already join their source folder); either way the path must lie inside ``root``
    (:func:`annobridge.core.paths.media_file`).
    """
    if location is None:
        return None, f"no {what}"
    path, why = media_file(location, root)
    if path is not None:
        return path, None
    if why == "not a local file":
        return None, f"{what} is a URL (not fetched)"
    if why.startswith("outside"):
        logger.warning("item %r: %s %r is outside %s, not read", item, what, location, root)
        return None, f"{what} {location!r} is outside the root {str(root)!r} (not read)"
    return None, f"{what} {location!r} not found"


def _canvas_size(item: DatasetItem) -> tuple[int, int]:
    """Width and height for a canvas: the item's size, else the masks', else the extent of
    its geometry, else 640 x 480."""
    if item.width and item.height:
        return item.width, item.height
    for ann in (*item.annotations, *item.predictions):
        if ann.type == "object_mask":
            return ann.size[1], ann.size[0]  # type: ignore[union-attr]
        if ann.type == "segmentation":
            a = ann.mask.load()  # type: ignore[union-attr]
            return a.shape[1], a.shape[0]
    xs: list[float] = []
    ys: list[float] = []
    for ann in (*item.annotations, *item.predictions):
        env = envelope(ann)
        if env is not None:
            xs.append(env[2])
            ys.append(env[3])
    if xs:
        return max(64, math.ceil(max(xs)) + 8), max(64, math.ceil(max(ys)) + 8)
    return DEFAULT_SIZE


def base_image(item: DatasetItem, root: Path) -> tuple[Image.Image, str | None]:
    """The item's image as RGB, or a neutral canvas of its size and the reason for it."""
    path, note = resolve_local(item.image_location, root, "image", item.reference_id)
    if path is not None:
        try:
            with Image.open(path) as img:
                return img.convert("RGB"), None
        except (OSError, ValueError) as exc:
            note = f"image {item.image_location!r} unreadable: {exc}"
    return Image.new("RGB", _canvas_size(item), CANVAS), note


# --------------------------------------------------------------------------- geometry


def envelope(ann: Any) -> tuple[float, float, float, float] | None:
    """``x0, y0, x1, y1`` around a 2D annotation (None for kinds with no image extent)."""
    t = ann.type
    if t == "box":
        return ann.x, ann.y, ann.x + ann.width, ann.y + ann.height
    if t == "oriented_box":
        c = ann.corners()
    elif t == "line":
        c = ann.vertices
    elif t == "polygon":
        c = [v for ring in ann.rings for v in ring]
    elif t == "keypoints":
        kp = ann.keypoints
        c = [v for i in range(0, len(kp), 3) if kp[i + 2] > 0 for v in (kp[i], kp[i + 1])]
    elif t == "object_mask":
        a = ann.to_array()
        ys, xs = np.nonzero(a)
        if not len(xs):
            return None
        return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
    else:
        return None
    if not c:
        return None
    return min(c[0::2]), min(c[1::2]), max(c[0::2]), max(c[1::2])


def cuboid_corners(ann: Any) -> np.ndarray:
    """The 8 corners (8, 3) of a cuboid in its own frame. Rows 0..3 are the front face
    (+length side), in the order top-left, top-right, bottom-right, bottom-left as seen
    from the front... then rows 4..7 the back face in the same order."""
    p, d, yaw = ann.position, ann.dimensions, ann.yaw
    c, s = math.cos(yaw), math.sin(yaw)
    if ann.frame == "camera":  # x right, y down, z forward; yaw about -Y
        fwd = np.array([c, 0.0, s])
        side = np.array([-s, 0.0, c])
        up = np.array([0.0, -1.0, 0.0])
    else:  # lidar: z up, yaw about +Z
        fwd = np.array([c, s, 0.0])
        side = np.array([-s, c, 0.0])  # left
        up = np.array([0.0, 0.0, 1.0])
    centre = np.array([p.x, p.y, p.z])
    out = []
    for sx in (1, -1):
        for sy, sz in ((1, 1), (-1, 1), (-1, -1), (1, -1)):
            out.append(centre + sx * fwd * d.x / 2 + sy * side * d.y / 2 + sz * up * d.z / 2)
    return np.array(out)


def projection_of(item: DatasetItem, frame: str) -> np.ndarray | None:
    """A 3x4 matrix taking homogeneous points of ``frame`` to image pixels, from the item's
    calibration (:mod:`annobridge.core.camera`): KITTI ``attributes["kitti_calib"]`` when
    present (``P2`` for ``"camera"``, exactly ``P2 · R0_rect · Tr_velo_to_cam`` for
    ``"lidar"``, as the devkit projects), else Nucleus ``metadata["camera_params"]`` (camera
    pose in the LiDAR frame). None when the item has neither."""
    from annobridge.core import camera

    calib = item.attributes.get("kitti_calib")
    if not isinstance(calib, dict) or "P2" not in calib:
        params = item.metadata.get("camera_params")
        if not isinstance(params, dict):
            return None
        try:
            calib = camera.calib_from_camera_params(params)
        except (KeyError, TypeError, ValueError):
            return None
    try:
        p2 = np.asarray(calib["P2"], dtype=np.float64).reshape(3, 4)
        if frame == "camera":
            return p2
        return p2 @ camera.transform_of(calib).velo_to_rect
    except (KeyError, TypeError, ValueError, np.linalg.LinAlgError):
        return None


def project(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``(n, 3)`` points -> ``(n, 3)`` rows of pixel x, pixel y and depth (camera z)."""
    hom = np.hstack([points, np.ones((len(points), 1))]) @ matrix.T
    depth = hom[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.stack([hom[:, 0] / depth, hom[:, 1] / depth, depth], axis=1)


_CUBOID_EDGES = ((0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4),
                 (0, 4), (1, 5), (2, 6), (3, 7))


# --------------------------------------------------------------------------- drawing


@dataclass
class _Painter:
    """Draws annotations onto one RGBA image: tints into ``overlay``, outlines and text on
    top once the overlay is composited (:meth:`finish`)."""

    image: Image.Image
    header: DatasetHeader
    line: int = 2
    overlay: Image.Image = field(init=False)
    fills: ImageDraw.ImageDraw = field(init=False)
    strokes: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.image = self.image.convert("RGBA")
        self.overlay = Image.new("RGBA", self.image.size, (0, 0, 0, 0))
        self.fills = ImageDraw.Draw(self.overlay)
        w, h = self.image.size
        self.line = max(1, round(min(w, h) / 250))
        self.font = _font(max(10, min(w, h) // 40))

    # strokes run after the tints are composited, so outlines stay crisp
    def stroke(self, fn: Any) -> None:
        self.strokes.append(fn)

    def tint(self, mask: np.ndarray, color: tuple[int, int, int]) -> None:
        w, h = self.image.size
        m = np.zeros((h, w), dtype=bool)
        mh, mw = min(h, mask.shape[0]), min(w, mask.shape[1])
        m[:mh, :mw] = mask[:mh, :mw] != 0
        alpha = Image.fromarray((m * FILL_ALPHA).astype(np.uint8), "L")
        layer = Image.new("RGBA", self.image.size, (*color, 0))
        layer.putalpha(alpha)
        self.overlay.alpha_composite(layer)

    def tag(self, x: float, y: float, text: str, color: tuple[int, int, int]) -> None:
        def draw(d: ImageDraw.ImageDraw) -> None:
            left, top, right, bottom = d.textbbox((0, 0), text, font=self.font)
            tw, th = right - left + 4, bottom - top + 4
            ty = y - th if y - th >= 0 else y
            d.rectangle((x, ty, x + tw, ty + th), fill=color)
            dark = sum(color) > 382
            d.text((x + 2 - left, ty + 2 - top), text, fill=(0, 0, 0) if dark else (255, 255, 255),
                   font=self.font)
        self.stroke(draw)

    def draw(self, ann: Any, item: DatasetItem, prediction: bool) -> None:
        label = getattr(ann, "label", None)
        color = color_for(label) if label is not None else (255, 255, 255)
        caption = label or ""
        if prediction and ann.confidence is not None:
            caption = f"{caption} {ann.confidence:.2f}"
        lw = self.line
        t = ann.type
        if t == "box":
            x0, y0, x1, y1 = ann.x, ann.y, ann.x + ann.width, ann.y + ann.height
            self.stroke(lambda d: d.rectangle((x0, y0, x1, y1), outline=color, width=lw))
            self.tag(x0, y0, caption, color)
        elif t == "oriented_box":
            c = ann.corners()
            pts = list(zip(c[0::2], c[1::2]))
            self.stroke(lambda d: d.polygon(pts, outline=color, width=lw))
            # the box's own top edge doubled: shows which way it is turned
            self.stroke(lambda d: d.line(pts[:2], fill=(255, 255, 255), width=lw))
            self.tag(min(c[0::2]), min(c[1::2]), caption, color)
        elif t == "polygon":
            for ring in ann.rings:
                pts = list(zip(ring[0::2], ring[1::2]))
                self.fills.polygon(pts, fill=(*color, FILL_ALPHA))
                self.stroke(lambda d, pts=pts: d.polygon(pts, outline=color, width=lw))
            env = envelope(ann)
            assert env is not None
            self.tag(env[0], env[1], caption, color)
        elif t == "line":
            v = ann.vertices
            pts = list(zip(v[0::2], v[1::2]))
            self.stroke(lambda d: d.line(pts, fill=color, width=lw + 1, joint="curve"))
            self.tag(pts[0][0], pts[0][1], caption, color)
        elif t == "keypoints":
            self._keypoints(ann, color, caption)
        elif t == "object_mask":
            self.tint(ann.to_array(), color)
            env = envelope(ann)
            if env is not None:
                self.tag(env[0], env[1], caption, color)
        elif t == "segmentation":
            self._index_mask(ann)
        elif t == "cuboid":
            self._cuboid(ann, item, color, caption)
        elif t in ("category", "multicategory"):
            labels = [ann.label] if t == "category" else list(ann.labels)
            self.notes.append(("prediction: " if prediction else "") + ", ".join(labels)
                              + (f" {ann.confidence:.2f}" if prediction and ann.confidence is not None else ""))

    def _keypoints(self, ann: Any, color: tuple[int, int, int], caption: str) -> None:
        kp = ann.keypoints
        pts = [(kp[i], kp[i + 1], int(kp[i + 2])) for i in range(0, len(kp), 3)]
        skeleton = ann.skeleton
        if skeleton is None:
            cat = self.header.category_named(ann.label)
            skeleton = cat.skeleton if cat is not None else None
        r = self.line + 2
        lw = self.line

        def draw(d: ImageDraw.ImageDraw) -> None:
            for a, b in skeleton or ():
                if a < len(pts) and b < len(pts) and pts[a][2] and pts[b][2]:
                    hidden = pts[a][2] == 1 or pts[b][2] == 1
                    d.line((pts[a][:2], pts[b][:2]), fill=color, width=1 if hidden else lw)
            for x, y, v in pts:
                if v == 2:  # visible: filled, dark rim
                    d.ellipse((x - r, y - r, x + r, y + r), fill=color, outline=(0, 0, 0))
                elif v == 1:  # labelled but hidden: hollow
                    d.ellipse((x - r, y - r, x + r, y + r), outline=color, width=max(1, lw // 2))
        self.stroke(draw)
        unlabelled = sum(1 for p in pts if p[2] == 0)
        labelled = [p for p in pts if p[2]]
        if unlabelled:
            caption = f"{caption} ({unlabelled}/{len(pts)} unlabelled)"
        if labelled:
            self.tag(min(p[0] for p in labelled), min(p[1] for p in labelled) - r, caption, color)
        else:
            self.notes.append(caption)

    def _index_mask(self, ann: Any) -> None:
        array = ann.mask.load()
        per_label = Counter(s.label for s in ann.annotations)
        for seg in ann.annotations:
            key = seg.label if per_label[seg.label] == 1 else f"{seg.label}#{seg.index}"
            inside = array == seg.index
            if not inside.any():
                continue
            self.tint(inside, color_for(key))
            ys, xs = np.nonzero(inside)
            self.tag(float(xs.min()), float(ys.min()), seg.label, color_for(key))

    def _cuboid(self, ann: Any, item: DatasetItem, color: tuple[int, int, int], caption: str) -> None:
        matrix = projection_of(item, ann.frame)
        if matrix is None:
            self.notes.append(f"cuboid {caption}: no calibration to project it")
            return
        uvz = project(matrix, cuboid_corners(ann))
        if (uvz[:, 2] <= 0.01).any():
            self.notes.append(f"cuboid {caption}: behind the camera")
            return
        pts = [(float(u), float(v)) for u, v, _ in uvz]
        lw = self.line

        def draw(d: ImageDraw.ImageDraw) -> None:
            for i, j in _CUBOID_EDGES:
                d.line((pts[i], pts[j]), fill=color, width=lw)
            d.line((pts[0], pts[2]), fill=color, width=lw)  # front face crossed
            d.line((pts[1], pts[3]), fill=color, width=lw)
        self.fills.polygon(pts[:4], fill=(*color, FILL_ALPHA // 2))
        self.stroke(draw)
        self.tag(min(p[0] for p in pts), min(p[1] for p in pts), caption, color)

    def finish(self, note: str | None) -> Image.Image:
        self.image.alpha_composite(self.overlay)
        d = ImageDraw.Draw(self.image)
        for fn in self.strokes:
            fn(d)
        lines = ([note] if note else []) + self.notes
        y = 2
        for text in lines:
            left, top, right, bottom = d.textbbox((0, 0), text, font=self.font)
            d.rectangle((2, y, 6 + right - left, y + bottom - top + 4), fill=(0, 0, 0))
            d.text((4 - left, y + 2 - top), text, fill=(255, 255, 255), font=self.font)
            y += bottom - top + 6
        return self.image.convert("RGB")


def render_image_item(item: DatasetItem, root: Path, header: DatasetHeader,
                      ring: Sequence[Any] = ()) -> Image.Image:
    """The item's image with every annotation and prediction drawn; ``ring`` lists
    annotations to mark in magenta (what the other side of a comparison lacks)."""
    image, note = base_image(item, root)
    painter = _Painter(image, header)
    for ann in item.annotations:
        painter.draw(ann, item, prediction=False)
    for ann in item.predictions:
        painter.draw(ann, item, prediction=True)
    for ann in ring:
        env = envelope(ann)
        if env is not None:
            pad = painter.line * 3
            box = (env[0] - pad, env[1] - pad, env[2] + pad, env[3] + pad)
            painter.stroke(lambda d, box=box: d.rectangle(box, outline=MISSING, width=painter.line + 1))
        else:
            painter.notes.append(f"only here: {ann.type} {getattr(ann, 'label', '')}")
    return painter.finish(note)


def render_pointcloud_item(item: DatasetItem, root: Path, ring: Sequence[Any] = ()) -> Image.Image:
    """A bird's-eye view of a point-cloud item: points (brighter = higher) and cuboids from
    above, each with a line from its centre to its front. x forward is up, y left is left."""
    from annobridge.core.pointclouds import load_points

    points = np.zeros((0, 4), dtype=np.float32)
    path, note = resolve_local(item.pointcloud_location, root, "point cloud", item.reference_id)
    if path is not None:
        try:
            points = load_points(path)
        except (AnnobridgeError, OSError) as exc:
            note = f"point cloud not read: {exc}"
    cuboids = [a for a in (*item.annotations, *item.predictions) if a.type == "cuboid"]
    xy = [points[:, :2]] if len(points) else []
    for c in cuboids:
        xy.append(cuboid_corners(c)[:, :2] if c.frame == "lidar" else np.zeros((0, 2)))
    allxy = np.concatenate(xy) if xy else np.zeros((0, 2))
    if len(allxy):
        lo = np.percentile(allxy, 1, axis=0) - 2
        hi = np.percentile(allxy, 99, axis=0) + 2
        for c in cuboids:  # never cut a cuboid off
            if c.frame == "lidar":
                cc = cuboid_corners(c)[:, :2]
                lo, hi = np.minimum(lo, cc.min(0) - 1), np.maximum(hi, cc.max(0) + 1)
    else:
        lo, hi = np.array([-40.0, -40.0]), np.array([40.0, 40.0])
    span = float(max(hi - lo))
    scale = BEV_SIZE / span

    def px(x: np.ndarray | float, y: np.ndarray | float) -> tuple[Any, Any]:
        return (hi[1] - y) * scale, (hi[0] - x) * scale

    img = np.zeros((BEV_SIZE, BEV_SIZE, 3), dtype=np.uint8)
    if len(points):
        u, v = px(points[:, 0], points[:, 1])
        ui, vi = u.astype(int), v.astype(int)
        ok = (ui >= 0) & (ui < BEV_SIZE) & (vi >= 0) & (vi < BEV_SIZE)
        z = points[:, 2]
        zl, zh = np.percentile(z, 2), np.percentile(z, 98)
        shade = (80 + 175 * np.clip((z - zl) / ((zh - zl) or 1.0), 0, 1)).astype(np.uint8)
        for dv in (0, 1):  # 2 x 2 dots: single pixels vanish in a viewer's downscale
            for du in (0, 1):
                v2, u2 = np.minimum(vi[ok] + dv, BEV_SIZE - 1), np.minimum(ui[ok] + du, BEV_SIZE - 1)
                img[v2, u2] = shade[ok, None]
    image = Image.fromarray(img, "RGB")
    d = ImageDraw.Draw(image)
    font = _font(14)
    ringed = {id(a) for a in ring}
    skipped = 0
    for c in cuboids:
        if c.frame != "lidar":
            skipped += 1
            continue
        color = color_for(c.label)
        corners = cuboid_corners(c)
        outline = [px(x, y) for x, y in corners[[4, 5, 1, 0], :2]]  # one z layer, back to front
        d.polygon(outline, outline=MISSING if id(c) in ringed else color, width=3 if id(c) in ringed else 2)
        front = corners[:4, :2].mean(0)
        d.line((px(c.position.x, c.position.y), px(front[0], front[1])), fill=color, width=2)
        d.text(px(corners[:, 0].max(), corners[:, 1].max()), c.label, fill=color, font=font)
    lines = [note] if note else []
    if skipped:
        lines.append(f"{skipped} camera-frame cuboid(s) not drawn (no LiDAR frame)")
    lines.append(f"bird's-eye view, {len(points)} points, {span:.0f} m across")
    for n, text in enumerate(lines):
        d.text((4, 4 + 18 * n), text, fill=(255, 255, 255), font=font)
    return image


def render_item(item: DatasetItem, root: Path, header: DatasetHeader,
                ring: Sequence[Any] = ()) -> Image.Image:
    """:func:`render_pointcloud_item` for point clouds, :func:`render_image_item` otherwise."""
    if item.pointcloud_location is not None:
        return render_pointcloud_item(item, root, ring)
    return render_image_item(item, root, header, ring)


# --------------------------------------------------------------------------- comparing


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else float(a == b)


def _signature(ann: Any) -> tuple[str, str, tuple[float, ...] | None]:
    label = getattr(ann, "label", None) or ",".join(getattr(ann, "labels", ()) or ())
    if ann.type == "cuboid":
        p, d = ann.position, ann.dimensions
        return ann.type, label, (p.x - d.x / 2, p.y - d.y / 2, p.x + d.x / 2, p.y + d.y / 2)
    if ann.type == "segmentation":
        label = ",".join(sorted(s.label for s in ann.annotations))
    return ann.type, label, envelope(ann)


def unmatched(mine: Iterable[Any], theirs: Iterable[Any]) -> list[Any]:
    """Annotations of ``mine`` with no counterpart in ``theirs``: same kind and label and,
    when they have an extent, envelopes overlapping with IoU >= 0.5 (each used once)."""
    pool = [_signature(a) for a in theirs]
    used = [False] * len(pool)
    out = []
    for ann in mine:
        kind, label, env = _signature(ann)
        for n, (k2, l2, e2) in enumerate(pool):
            if used[n] or k2 != kind or l2 != label:
                continue
            if env is None or e2 is None or _iou(env, e2) >= 0.5:
                used[n] = True
                break
        else:
            out.append(ann)
    return out


def _kinds(anns: Sequence[Any]) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(Counter(a.type for a in anns).items())) or "nothing"


def compare_items(left: DatasetItem, right: DatasetItem, roots: tuple[Path, Path],
                  headers: tuple[DatasetHeader, DatasetHeader], names: tuple[str, str]) -> Image.Image:
    """``left`` and ``right`` side by side; each side rings (magenta) what the other lacks,
    and a caption under each names the dataset and counts what only it has."""
    if not (right.width and right.height) and left.width and left.height:  # draw both at one size
        right = right.model_copy(update={"width": left.width, "height": left.height})
    elif not (left.width and left.height) and right.width and right.height:
        left = left.model_copy(update={"width": right.width, "height": right.height})
    sides = []
    for me, other, root, header, name in zip((left, right), (right, left), roots, headers, names):
        only = unmatched([*me.annotations, *me.predictions], [*other.annotations, *other.predictions])
        sides.append((render_item(me, root, header, only), f"{name}: only here {_kinds(only)}"))
    font = _font(14)
    caption_h = 24
    w = sum(img.width for img, _ in sides) + 8
    h = max(img.height for img, _ in sides) + caption_h
    out = Image.new("RGB", (w, h), (255, 255, 255))
    d = ImageDraw.Draw(out)
    x = 0
    for img, caption in sides:
        out.paste(img, (x, 0))
        d.text((x + 4, h - caption_h + 4), caption, fill=(0, 0, 0), font=font)
        x += img.width + 8
    return out


# --------------------------------------------------------------------------- whole datasets


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def render_job(job: tuple[Any, ...]) -> bytes:
    """One output PNG (module level, so ``--workers`` can run it in another process)."""
    if job[0] == "one":
        _, item, root, header = job
        return png_bytes(render_item(item, root, header))
    _, left, right, roots, headers, names = job
    return png_bytes(compare_items(left, right, roots, headers, names))


def output_path(out_dir: Path, reference_id: str) -> Path:
    """``OUT_DIR/<reference id>.png``, the id made a safe file name and kept inside OUT_DIR."""
    return contained(out_dir, safe_name(reference_id) + ".png", what="reference_id",
                     item=reference_id, error=WriteError)


def match_items(left: Sequence[DatasetItem], right: Sequence[DatasetItem]
                ) -> tuple[list[tuple[DatasetItem, DatasetItem]], list[str], list[str]]:
    """Pairs of the same item in two datasets (by reference id, else by image or point-cloud
    file name), and the reference ids left unmatched on each side."""
    by_id = {it.reference_id: it for it in right}
    by_name: dict[str, DatasetItem] = {}
    for it in right:
        loc = it.image_location or it.pointcloud_location
        if loc:
            by_name.setdefault(os.path.basename(loc), it)
    pairs = []
    taken: set[str] = set()
    lonely_left = []
    for it in left:
        other = by_id.get(it.reference_id)
        if other is None or other.reference_id in taken:
            loc = it.image_location or it.pointcloud_location
            other = by_name.get(os.path.basename(loc)) if loc else None
        if other is None or other.reference_id in taken:
            lonely_left.append(it.reference_id)
            continue
        taken.add(other.reference_id)
        pairs.append((it, other))
    lonely_right = [it.reference_id for it in right if it.reference_id not in taken]
    return pairs, lonely_left, lonely_right


def select_items(items: Iterable[DatasetItem], count: int | None, ids: Sequence[str] | None,
                 source: str) -> list[DatasetItem]:
    """The first ``count`` items, or the items named by ``ids`` in that order (an unknown id
    is an error), keeping only those while the stream goes past."""
    if ids:
        wanted = set(ids)
        by_id: dict[str, DatasetItem] = {}
        seen: list[str] = []
        for it in items:
            if it.reference_id in wanted:
                by_id.setdefault(it.reference_id, it)
            elif len(seen) < 5:
                seen.append(it.reference_id)
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise ReadError(f"no item with reference id {', '.join(repr(m) for m in missing)}",
                            file=source, fix=f"ids in the dataset include: {', '.join(seen) or 'none'}")
        return [by_id[i] for i in ids]
    return list(items if count is None else itertools.islice(items, count))


@dataclass
class RenderResult:
    """What :func:`render_dataset` wrote and what it could not pair or draw."""

    written: list[Path] = field(default_factory=list)
    unmatched_left: list[str] = field(default_factory=list)
    unmatched_right: list[str] = field(default_factory=list)


def _root_of(source: Path, images_root: str | os.PathLike[str] | None) -> Path:
    if images_root is not None:
        return Path(images_root)
    return source if source.is_dir() else source.parent


def render_dataset(
    source: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    format: str | None = None,
    options: dict[str, Any] | None = None,
    items: int | None = None,
    ids: Sequence[str] | None = None,
    images_root: str | os.PathLike[str] | None = None,
    compare: str | os.PathLike[str] | None = None,
    compare_format: str | None = None,
    compare_images_root: str | os.PathLike[str] | None = None,
    workers: int = 1,
    overwrite: bool = False,
    registry: Any = None,
) -> RenderResult:
    """Render ``source`` (and, with ``compare``, a second dataset beside it) into ``out_dir``,
    one PNG per item named by its reference id.

    Args:
        source: the dataset; ``format`` and ``options`` as for :func:`annobridge.load`.
        out_dir: folder for the PNGs (created; an existing non-empty one needs ``overwrite``).
        items / ids: the first ``items`` items, or the items with these reference ids.
        images_root: where relative image paths are looked up (default: the dataset's folder);
            no image outside it is read.
        compare: a second dataset (``compare_format``, ``compare_images_root``) drawn to the
            right of each item it shares with ``source`` (by reference id, else file name).
            The result lists the items of either side that have no partner (for ``compare``'s
            side only when all items of ``source`` are rendered).
        workers: processes drawing the PNGs; the output is the same as with one.

    Raises:
        ReadError: a dataset cannot be read, or an id in ``ids`` names no item.
        WriteError: ``out_dir`` is not empty and ``overwrite`` is False.
    """
    from annobridge.converters import engine
    from annobridge.core.formats import Context

    src = Path(source)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise WriteError("output folder is not empty", file=out,
                         fix="pass --overwrite to write into it, or choose another folder")
    dataset = engine.read_dataset(src, format, options, context=Context(), registry=registry)
    chosen = select_items(dataset.items, items, ids, str(src))
    result = RenderResult()
    root = _root_of(src, images_root)
    jobs: list[tuple[Any, ...]]
    if compare is None:
        jobs = [("one", it, root, dataset.header) for it in chosen]
        names = [it.reference_id for it in chosen]
    else:
        other_src = Path(compare)
        other = engine.read_dataset(other_src, compare_format, None, context=Context(), registry=registry)
        other_items = list(other.items)
        pairs, result.unmatched_left, result.unmatched_right = match_items(chosen, other_items)
        if items is not None or ids:  # a selection: the other side's rest is not "unmatched"
            result.unmatched_right = []
        roots = (root, _root_of(other_src, compare_images_root))
        headers = (dataset.header, other.header)
        labels = (f"{src.name} ({dataset.format})", f"{other_src.name} ({other.format})")
        jobs = [("pair", a, b, roots, headers, labels) for a, b in pairs]
        names = [a.reference_id for a, _ in pairs]
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(workers=workers)
    try:
        for name, data in zip(names, ctx.map(render_job, jobs)):
            path = output_path(out, name)
            path.write_bytes(data)
            result.written.append(path)
    finally:
        ctx.close()
    logger.info("rendered %d item(s) into %s", len(result.written), out)
    return result
