"""Reading KITTI: the object layout (``kitti``) and tracking sequences (``kitti-tracking``),
streamed frame by frame. The row grammar is in the package docstring."""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annobridge.core import camera
from annobridge.core.errors import ReadError
from annobridge.core.formats import Context, HeaderScan, Shards
from annobridge.core.limits import MAX_INT_DIGITS
from annobridge.core.model import (
    BoxAnnotation,
    Category,
    CuboidAnnotation,
    Dataset,
    DatasetHeader,
    DatasetItem,
    FrameRef,
    Point3D,
    Scene,
)
from annobridge.core.paths import contained
from annobridge.plugins.kitti import SPLIT_DIRS
from annobridge.plugins.kitti import calib as kitti_calib
from annobridge.plugins.kitti.common import (
    OBJECT_STYLE,
    TRACKING_STYLE,
    Style,
    _image_size,
    _transform,
    load_label_map,
    render_numbers,
)

if TYPE_CHECKING:
    from annobridge.plugins.kitti import KittiReadOptions

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")
FIELDS = ("truncated", "occluded", "alpha", "left", "top", "right", "bottom",
          "height", "width", "length", "x", "y", "z", "rotation_y", "score")
LIDAR_SENSOR = "lidar"


# --------------------------------------------------------------------------- row parsing


@dataclass
class Row:
    """One parsed label row: class name, the numeric tokens as written and their values."""

    name: str
    tokens: list[str]
    values: list[float]
    prefix: list[str] = field(default_factory=list)  # tracking: frame, track id

    @property
    def is_prediction(self) -> bool:
        return len(self.values) == 15


def _num(tok: str) -> int | float:
    """A token as written: int without a decimal point or exponent, else float."""
    if "." in tok or "e" in tok or "E" in tok:
        return float(tok)
    return int(tok)


def parse_row(line: str, path: Path, lineno: int, *, prefix: int = 0) -> Row:
    """Split a label line into name and numbers; ``prefix`` leading integer columns
    (tracking: frame and track id).

    Raises:
        ReadError: wrong column count or a non-numeric field, naming file and line.
    """
    tokens = line.split()
    where = f"line {lineno}"
    head = tokens[:prefix]
    for i, tok in enumerate(head):
        if not re.fullmatch(r"-?\d+", tok) or len(tok) > MAX_INT_DIGITS:
            what = ("frame", "track id")[i]
            raise ReadError(f"column {i + 1} ({what}) is not an integer: {tok!r}", file=path, where=where,
                            fix="tracking rows start with 'frame track_id type ...'")
    rest = tokens[prefix:]
    n = len(rest)
    expected = f"{15 + prefix} columns (ground truth) or {16 + prefix} (with score)"
    if n < 15:
        raise ReadError(f"row has {len(tokens)} columns, expected {expected}", file=path, where=where)
    if kitti_calib.is_number(rest[0]):
        raise ReadError(f"column {prefix + 1} (type) is the number {rest[0]!r}, expected a class name; "
                        f"row has {len(tokens)} columns, expected {expected}", file=path, where=where)
    for k in (15, 14):
        if n - k >= 1 and not kitti_calib.is_number(rest[n - k - 1]):
            nums = rest[n - k:]
            if kitti_calib.all_numbers(nums):
                values = [float(t) for t in nums]
                for col, (tok, v) in enumerate(zip(nums, values), start=prefix + n - k + 1):
                    if not math.isfinite(v) or len(tok) > MAX_INT_DIGITS:
                        raise ReadError(f"column {col} is {tok[:40]!r}, out of range", file=path, where=where,
                                        fix="every number in a KITTI row must be finite and at most "
                                            f"{MAX_INT_DIGITS} characters long")
                return Row(" ".join(rest[: n - k]) if n - k > 1 else rest[0], nums, values, head)
    if n in (15, 16):
        for col, tok in enumerate(rest[1:], start=1):
            if not kitti_calib.is_number(tok):
                raise ReadError(f"column {prefix + col + 1} ({FIELDS[col - 1]}) is not a number: {tok!r}",
                                file=path, where=where, fix="every column after the type is a number")
    raise ReadError(f"row has {len(tokens)} columns, expected {expected} "
                    "(a class name, possibly with spaces, then only numbers)", file=path, where=where)


def _valid_3d(values: list[float]) -> bool:
    h, w, l, x, y, z, ry = values[7:14]
    if (h, w, l) == (-1.0, -1.0, -1.0):
        return False
    if -1000.0 in (x, y, z) or ry == -10.0:
        return False
    return True


# --------------------------------------------------------------------------- reading


@dataclass
class FrameFiles:
    stem: str
    label: Path | None = None
    results: Path | None = None
    image: Path | None = None
    velodyne: Path | None = None
    calib: Path | None = None


@dataclass
class Layout:
    split_dir: Path
    split: str | None
    root: Path
    label_dir: Path | None
    results_dir: Path | None
    image_dir: Path | None
    velodyne_dir: Path | None
    calib_dir: Path | None
    only: str | None = None  # a single label file was given: its stem


def _first_dir(base: Path, names: tuple[str, ...]) -> Path | None:
    for n in names:
        if (base / n).is_dir():
            return base / n
    return None


def _loose(labels: Path, images: Path | None, only: str | None = None) -> Layout:
    """A folder of label files without the KITTI layout (a results/submission folder,
    labelformat's ``labels/``): images by stem in ``images``, else an ``images/`` beside it."""
    if images is None and labels.name != "images":
        images = _first_dir(labels.parent, ("images",))
    return Layout(labels, None, labels, labels, None, images, None, None, only)


def resolve_layout(path: Path, split: str | None, images: Path | None = None) -> Layout:
    """Find the split folder and its subfolders under ``path``."""
    if path.is_file() and path.suffix.lower() == ".txt":
        return _loose(path.parent, images, path.stem)
    if not path.is_dir():
        raise ReadError("a KITTI dataset is a folder or a label file", file=path,
                        fix="pass the KITTI root, its training/ folder, a folder of label files or one")
    if any((path / d).is_dir() for d in SPLIT_DIRS):
        split_dir = path
    elif split is not None:
        split_dir = path / split
        if not split_dir.is_dir():
            raise ReadError(f"no {split}/ folder", file=path)
    elif (path / "training").is_dir():
        split_dir = path / "training"
    elif (path / "testing").is_dir():
        split_dir = path / "testing"
    elif any(p.suffix == ".txt" for p in path.iterdir()):
        return _loose(path, images)
    elif (path / "labels").is_dir():  # labelformat: labels/ + images/
        return _loose(path / "labels", images or _first_dir(path, ("images",)))
    else:
        raise ReadError("no KITTI folders found (label_2/, image_2/, velodyne/, calib/, training/)",
                        file=path, fix="pass the KITTI root or its training/ folder")
    name = split_dir.name if split_dir.name in ("training", "testing") else None
    root = split_dir.parent if name else split_dir
    return Layout(split_dir, name, root, _first_dir(split_dir, ("label_2", "label_02")),
                  _first_dir(split_dir, ("results",)), _first_dir(split_dir, ("image_2", "image_02")),
                  _first_dir(split_dir, ("velodyne",)), _first_dir(split_dir, ("calib",)))


def _names(folder: Path | None, exts: tuple[str, ...]) -> dict[str, str]:
    """stem -> file path (a plain string: listings of thousands of files stay small)."""
    if folder is None:
        return {}
    out: dict[str, str] = {}
    with os.scandir(folder) as it:
        for e in it:
            stem, ext = os.path.splitext(e.name)
            if ext.lower() in exts and stem not in out and e.is_file():
                if e.is_symlink():  # a link out of the folder is refused (core.paths.contained)
                    contained(folder, e.name, what="file", file=e.path)
                out[stem] = e.path
    return out


def _images_by_stem(folder: Path, stems: set[str]) -> dict[str, str]:
    """Images of the given label stems anywhere under ``folder`` (labelformat keeps them in
    subfolders); the first by sorted path wins."""
    out: dict[str, str] = {}
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            stem, ext = os.path.splitext(name)
            if ext.lower() in IMAGE_EXTS and stem in stems and stem not in out:
                out[stem] = os.path.join(root, name)
    return out


def _stems(folder: Path | None, exts: tuple[str, ...]) -> dict[str, Path]:
    return {k: Path(v) for k, v in _names(folder, exts).items()}


def _imagesets(layout: Layout) -> dict[str, list[str]]:
    """stem -> list names, from ImageSets/ beside or inside the split folder."""
    out: dict[str, list[str]] = {}
    for base in (layout.root, layout.split_dir):
        folder = base / "ImageSets"
        if folder.is_dir():
            for f in sorted(folder.glob("*.txt")):
                for line in f.read_text(encoding="utf-8", errors="replace").split():
                    out.setdefault(line.strip(), []).append(f.stem)
            break
    return out


def _scan_names(paths: list[Path], prefix: int, mapping: dict[str, str | None]) -> list[Category]:
    return _categories(_class_names(paths, prefix, mapping))


def _categories(names: Iterable[str]) -> list[Category]:
    return [Category.model_construct(id=i, name=n, supercategory=None, keypoints=None, skeleton=None,
                                     attributes={}) for i, n in enumerate(dict.fromkeys(names), start=1)]


def _class_names(paths: Iterable[Path], prefix: int, mapping: dict[str, str | None]) -> list[str]:
    """The class names of the rows of ``paths`` (after ``mapping``), each once, in order of
    first appearance: the header's categories (ids from 1 in this order)."""
    seen: dict[str, None] = {}
    for p in paths:
        with open(p, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                toks = line.split()[prefix:]
                if len(toks) < 15:
                    continue
                k = len(toks) - 14
                if k >= 2 and all(kitti_calib.is_number(t) for t in toks[-15:]) and not kitti_calib.is_number(toks[-16]):
                    k -= 1
                name = " ".join(toks[:k])
                if name in mapping:
                    if mapping[name] is None:
                        continue
                    name = mapping[name]
                seen.setdefault(name, None)
    return list(seen)


@dataclass
class _ReadState:
    options: KittiReadOptions
    mapping: dict[str, str | None]
    context: Context
    style: Style


def _calib_or_none(path: Path | None, context: Context) -> camera.Calib | None:
    if path is None:
        return None
    try:
        return kitti_calib.read_calib_cached(path)
    except ReadError as err:
        context.error(err)
        return None


def _frame_transform(calib: camera.Calib | None, calib_path: Path | None, label_path: Path,
                     frame_opt: str, has_3d: bool) -> camera.Transform | None:
    if frame_opt == "camera":
        return None
    t = _transform(calib)
    if t is None and frame_opt == "lidar" and has_3d:
        if calib is None:
            raise ReadError("no calibration for this label file, and frame=lidar asks for LiDAR-frame cuboids",
                            file=label_path, fix=f"add {calib_path} or read with --option frame=camera")
        raise ReadError(f"calibration lacks {', '.join(kitti_calib.missing_3d_keys(calib))}", file=calib_path,
                        fix="P2, R0_rect and Tr_velo_to_cam are needed for LiDAR-frame cuboids")
    return t


def _row_annotations(row: Row, path: Path, lineno: int, ref: str, gid: str, t: camera.Transform | None,
                     state: _ReadState) -> tuple[BoxAnnotation, CuboidAnnotation | None] | None:
    """The box (and cuboid) of one row; None when the label map drops the class."""
    name = row.name
    if name in state.mapping:
        mapped = state.mapping[name]
        if mapped is None:  # read, then dropped: counted as both, per kind, so written = read - dropped
            report = state.context.report
            prefix = "prediction:" if row.is_prediction else ""
            kinds = ["box"] + (["cuboid"] if name.lower() != "dontcare" and _valid_3d(row.values) else [])
            for kind in kinds:
                report.read[prefix + kind] = report.read.get(prefix + kind, 0) + 1
                report.drop(prefix + kind, f"label map drops class {name!r}")
            return None
        name = mapped
    v = row.values
    tok = row.tokens
    dont_care = row.name.lower() == "dontcare"
    left, top, right, bottom = v[3:7]
    if right < left or bottom < top:
        raise ReadError(f"box has right < left or bottom < top: left {tok[3]}, top {tok[4]}, "
                        f"right {tok[5]}, bottom {tok[6]}", file=path, where=f"line {lineno}",
                        fix="columns 5-8 are left, top, right, bottom in pixels")
    h, w, l = v[7:10]
    if not dont_care and (h, w, l) != (-1.0, -1.0, -1.0) and min(h, w, l) < 0 and v[11] != -1000.0:
        raise ReadError(f"negative dimension: height {tok[7]}, width {tok[8]}, length {tok[9]}",
                        file=path, where=f"line {lineno}",
                        fix="dimensions are >= 0 metres, all -1 when unknown (or y = -1000 for BEV-only rows)")
    has_3d = not dont_care and _valid_3d(v)
    attrs: dict[str, Any] = {"truncated": _num(tok[0]), "occluded": _num(tok[1]), "alpha": _num(tok[2])}
    if dont_care:
        attrs["dont_care"] = True
    confidence = None
    if row.is_prediction:
        score = _num(tok[14])
        attrs["score"] = score
        confidence = min(max(float(score), 0.0), 1.0)
    geom = tuple(v[7:14]) if has_3d else None
    style = state.style
    expect = render_numbers(truncated=attrs["truncated"], occluded=attrs["occluded"], alpha=attrs["alpha"],
                            bbox=(left, top, right, bottom), geom=geom, dont_care=dont_care,
                            score=attrs.get("score"), text=None, style=style)
    if expect != tok:
        attrs["kitti_text"] = " ".join(tok)
    ints = all("." not in x and "e" not in x.lower() for x in tok[3:7])
    bx: float = int(tok[3]) if ints else left
    by: float = int(tok[4]) if ints else top
    # rounded at 1e-9 px: the difference of two decimal numbers carries float noise
    # (810.73 - 712.40 = 98.33000000000004) that would otherwise reach other formats
    bw: float = int(tok[5]) - int(tok[3]) if ints else round(right - left, 9)
    bh: float = int(tok[6]) - int(tok[4]) if ints else round(bottom - top, 9)
    box = BoxAnnotation.model_construct(
        type="box", label=name, x=bx, y=by, width=bw, height=bh, reference_id=ref,
        annotation_id=f"{gid}-box", group_id=gid, track_reference_id=None, metadata={},
        attributes=attrs, confidence=confidence, class_pdf=None, embedding_vector=None)
    cuboid = None
    if has_3d:
        x, y, z, ry = v[10:14]
        if t is not None:
            (cx, cy, cz), yaw = camera.camera_to_lidar(t, (x, y, z), h, ry)
            frame = "lidar"
        else:
            cx, cy, cz, yaw, frame = x, y - h / 2.0, z, 0.0 - ry, "camera"  # 0.0 - ry: no -0.0
        cuboid = CuboidAnnotation.model_construct(
            type="cuboid", label=name, reference_id=ref, annotation_id=f"{gid}-cuboid", group_id=gid,
            track_reference_id=None, metadata={}, attributes={},
            confidence=confidence, class_pdf=None,
            position=Point3D.model_construct(x=cx, y=cy, z=cz),
            dimensions=Point3D.model_construct(x=l, y=w, z=h), yaw=yaw, frame=frame)
    return box, cuboid


def _read_rows(path: Path, prefix: int, context: Context, strict: bool = False) -> list[tuple[int, Row]]:
    """The rows of one label file. Rows with and without a score in one file are read as the
    frame's predictions and ground truth, with a warning (``strict`` refuses them)."""
    rows: list[tuple[int, Row]] = []
    kind: tuple[int, bool] | None = None
    mixed: ReadError | None = None
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = parse_row(line, path, lineno, prefix=prefix)
                if kind is None:
                    kind = (lineno, row.is_prediction)
                elif kind[1] != row.is_prediction and (strict or mixed is None):
                    have = "with a score (prediction)" if row.is_prediction else "without a score (ground truth)"
                    first = "with" if kind[1] else "without"
                    mixed = ReadError(f"row is {have} but line {kind[0]} is {first} a score; a file holds "
                                      "ground truth or predictions, not both", file=path, where=f"line {lineno}",
                                      fix="put predictions (16 columns) in their own files")
                    if strict:
                        raise mixed
            except ReadError as err:
                context.error(err)
                continue
            rows.append((lineno, row))
    if mixed is not None and not strict:
        context.warn(f"{mixed.location}: {mixed.problem}; read as the frame's predictions and ground truth "
                     "(--option strict=true refuses it)")
    return rows


def read(path: Path, options: KittiReadOptions, context: Context) -> Dataset:
    """Read a KITTI object-benchmark folder; items are built lazily, frame by frame."""
    layout, frames, header, sets = _listing(path, options)
    state = _ReadState(options, load_label_map(options.label_map), context, OBJECT_STYLE)
    expected_calib_dir = layout.calib_dir or layout.split_dir / "calib"
    return Dataset(header=header, items=_object_items(iter(frames), layout.split, sets, header, state,
                                                      expected_calib_dir))


def _listing(path: Path, options: KittiReadOptions, *, scan: bool = True) -> tuple[
        Layout, list[FrameFiles], DatasetHeader, dict[str, list[str]]]:
    """The layout, the files of every frame, the header (categories from every label file,
    unless not ``scan``: then the workers find them, :func:`shards`) and the image sets: what
    is read before the first item."""
    mapping = load_label_map(options.label_map)
    layout = resolve_layout(path, options.split, options.images)
    labels = _names(layout.label_dir, (".txt",))
    if layout.only is not None:
        labels = {layout.only: labels[layout.only]}
    results = _names(layout.results_dir, (".txt",))
    loose = layout.image_dir is not None and layout.label_dir == layout.split_dir
    images = _images_by_stem(layout.image_dir, set(labels)) if loose else _names(layout.image_dir, IMAGE_EXTS)
    velodyne = _names(layout.velodyne_dir, (".bin",)) if options.velodyne else {}
    calibs = _names(layout.calib_dir, (".txt",))
    stems = sorted(set(labels) | set(results) | set(images) | set(velodyne))
    if layout.only is not None:
        stems = [layout.only]
    names = _class_names([Path(labels[s]) for s in sorted(labels)]
                         + [Path(results[s]) for s in sorted(results)], 0, mapping) if scan else []
    header = DatasetHeader(categories=_categories(names), info={"kitti": {"split": layout.split}})

    def opt(d: dict[str, str], s: str) -> Path | None:
        v = d.get(s)
        return None if v is None else Path(v)

    frames = [FrameFiles(s, opt(labels, s), opt(results, s), opt(images, s), opt(velodyne, s), opt(calibs, s))
              for s in stems]
    return layout, frames, header, _imagesets(layout)


_FRAME_FILES = ("label", "results", "image", "velodyne", "calib")


def shards(path: Path, options: KittiReadOptions, context: Context) -> Shards:
    """The source as frames that workers read apart (``converters/sharded.py``): a unit is a
    frame's stem, its files relative to ``path`` (a frame's image and point cloud stay
    together) and, for a remote source, the size of its velodyne scan, which the reader only
    checks: a worker fetches the scan only when its bytes are used (a writer converting or
    copying it), not to read the frame. The categories are left to the workers' first pass
    (:func:`_scan_part`): no label file is read here."""
    from annobridge.core import storage

    layout, frames, header, sets = _listing(path, options, scan=False)
    root = path if path.is_dir() else path.parent
    remote = storage.url_of(root) is not None  # a lazy copy: its placeholders have the objects' sizes
    units = []
    fetchable = True
    for ff in frames:
        rel = {}
        for key in _FRAME_FILES:
            p = getattr(ff, key)
            if p is None:
                continue
            try:
                rel[key] = p.relative_to(root).as_posix()
            except ValueError:  # an images= folder elsewhere: read where it is
                rel[key] = str(p)
                fetchable = False
        units.append((ff.stem, rel, os.stat(ff.velodyne).st_size if remote and ff.velodyne is not None else None))
    calib_dir = layout.calib_dir or layout.split_dir / "calib"
    read = functools.partial(_read_frames, options, layout.split, sets, calib_dir.relative_to(root).as_posix()
                             if calib_dir.is_relative_to(root) else str(calib_dir))
    scan = HeaderScan(functools.partial(_scan_part, load_label_map(options.label_map)), _merge_scans, _label_files)
    return Shards(units=units, read=read, root=root, header=header,
                  files=_frame_file_list if fetchable else None, scan=scan)


_Unit = tuple[str, dict[str, str], int | None]
"""A frame's stem, its files (key -> path relative to the source) and its velodyne scan's size
(a remote source's; None otherwise)."""


def _frame_file_list(unit: _Unit) -> list[Any]:
    from annobridge.core.storage import Sized

    stem, rel, size = unit
    return [Sized(p, size) if key == "velodyne" and size is not None else p for key, p in rel.items()]


def _label_files(unit: _Unit) -> list[str]:
    return [unit[1][k] for k in ("label", "results") if k in unit[1]]


def _scan_part(mapping: dict[str, str | None], root: Path, units: list[_Unit]) -> tuple[list[str], list[str]]:
    """The class names of some frames' label files and of their results files."""
    return tuple(_class_names([root / u[1][key] for u in units if key in u[1]], 0, mapping)  # type: ignore[return-value]
                 for key in ("label", "results"))


def _merge_scans(header: DatasetHeader, parts: list[tuple[list[str], list[str]]]) -> None:
    """The categories as one process lists them: every label file's names, then the results'."""
    header.categories = _categories([*(n for labels, _ in parts for n in labels),
                                     *(n for _, results in parts for n in results)])


def _read_frames(options: KittiReadOptions, split: str | None, sets: dict[str, list[str]], calib_dir: str,
                 root: Path, units: list[_Unit], header: DatasetHeader,
                 context: Context) -> Iterator[DatasetItem]:
    """The items of some frames (:func:`shards`), read under ``root``."""
    state = _ReadState(options, load_label_map(options.label_map), context, OBJECT_STYLE)
    frames = (FrameFiles(stem, **{k: root / v for k, v in rel.items()}) for stem, rel, _ in units)
    return _object_items(frames, split, sets, header, state, root / calib_dir)


def _object_items(frames: Iterator[FrameFiles], split: str | None, sets: dict[str, list[str]],
                  header: DatasetHeader, state: _ReadState, calib_dir: Path) -> Iterator[DatasetItem]:
    for ff in frames:
        yield from _frame_items(ff, split, sets, header, state, calib_dir)


def _frame_items(ff: FrameFiles, split: str | None, sets: dict[str, list[str]], header: DatasetHeader,
                 state: _ReadState, calib_dir: Path) -> Iterator[DatasetItem]:
    stem = ff.stem
    calib = _calib_or_none(ff.calib, state.context)
    gt_boxes: list[Any] = []
    gt_cuboids: list[Any] = []
    pr_boxes: list[Any] = []
    pr_cuboids: list[Any] = []
    label_is_gt = True
    t: camera.Transform | None = None
    t_checked = False
    sources = [(p, i) for i, p in enumerate((ff.label, ff.results)) if p is not None]
    row_no = 0
    for src, which in sources:
        rows = _read_rows(src, 0, state.context, state.options.strict)
        if which == 0 and rows and rows[0][1].is_prediction:
            label_is_gt = False
        for lineno, row in rows:
            if not t_checked and row.name.lower() != "dontcare" and _valid_3d(row.values):
                t_checked = True
                try:
                    t = _frame_transform(calib, ff.calib or calib_dir / f"{stem}.txt", src,
                                         state.options.frame, True)
                except ReadError as err:
                    state.context.error(err)
            gid = f"{stem}-{row_no}"
            row_no += 1
            try:
                made = _row_annotations(row, src, lineno, stem, gid, t, state)
            except ReadError as err:
                state.context.error(err)
                continue
            if made is None:
                continue
            box, cub = made
            if row.is_prediction:
                pr_boxes.append(box)
                if cub is not None:
                    pr_cuboids.append(cub)
            else:
                gt_boxes.append(box)
                if cub is not None:
                    gt_cuboids.append(cub)
    attrs: dict[str, Any] = {"kitti_frame": stem}
    if split:
        attrs["kitti_split"] = split
    if calib is not None:
        attrs["kitti_calib"] = calib
    if stem in sets:
        attrs["kitti_imagesets"] = sets[stem]
    if ff.label is None or not label_is_gt:
        attrs["kitti_label_file"] = False
    width, height = _image_size(ff.image)
    metadata: dict[str, Any] = {}
    if t is None and state.options.frame != "camera":
        t = _transform(calib)
    if t is not None:
        metadata["camera_params"] = camera.camera_params_of(t)
    img_loc = str(ff.image) if ff.image is not None else None
    if ff.velodyne is not None and not _velodyne_ok(ff.velodyne, state.context):
        ff.velodyne = None
    if ff.velodyne is None:
        yield DatasetItem.model_construct(
            reference_id=stem, image_location=img_loc, pointcloud_location=None, width=width, height=height,
            metadata=metadata, attributes=attrs, annotations=gt_boxes + gt_cuboids,
            predictions=pr_boxes + pr_cuboids, scene=None)
        return
    header.scenes[stem] = Scene.model_construct(reference_id=stem, metadata={}, annotations=[], attributes={})
    pc_ref = f"{stem}-{LIDAR_SENSOR}"
    for a in (*gt_cuboids, *pr_cuboids):
        a.reference_id = pc_ref
    pc_attrs = {k: v for k, v in attrs.items() if k != "kitti_imagesets"}
    yield DatasetItem.model_construct(
        reference_id=pc_ref, image_location=None, pointcloud_location=str(ff.velodyne), width=None,
        height=None, metadata={}, attributes=pc_attrs, annotations=gt_cuboids, predictions=pr_cuboids,
        scene=FrameRef.model_construct(scene_reference_id=stem, index=0, sensor=LIDAR_SENSOR))
    yield DatasetItem.model_construct(
        reference_id=stem, image_location=img_loc, pointcloud_location=None, width=width, height=height,
        metadata=metadata, attributes=attrs, annotations=gt_boxes, predictions=pr_boxes,
        scene=FrameRef.model_construct(scene_reference_id=stem, index=0, sensor="image_2"))


def _velodyne_ok(path: Path, context: Context) -> bool:
    size = path.stat().st_size
    if size % 16:
        context.error(ReadError(f"velodyne file has {size} bytes, not a multiple of 16 (4 float32 a point)",
                                file=path, fix="the file is truncated or not a KITTI velodyne scan"))
        return False
    return True


# --------------------------------------------------------------------------- tracking reading


def read_tracking(path: Path, options: KittiReadOptions, context: Context) -> Dataset:
    """Read a KITTI tracking folder: one scene per sequence, frames in order."""
    mapping = load_label_map(options.label_map)
    if any((path / d).is_dir() for d in ("label_02", "image_02", "velodyne", "calib")):
        split_dir = path
    else:
        split_dir = path / (options.split or ("training" if (path / "training").is_dir() else "testing"))
    if not split_dir.is_dir():
        raise ReadError("no KITTI tracking folders found (label_02/, image_02/)", file=path)
    label_dir = _first_dir(split_dir, ("label_02", "label_2"))
    image_dir = _first_dir(split_dir, ("image_02", "image_2"))
    velo_dir = _first_dir(split_dir, ("velodyne",)) if options.velodyne else None
    calib_dir = _first_dir(split_dir, ("calib",))
    labels = _stems(label_dir, (".txt",))
    results = _stems(_first_dir(split_dir, ("results",)), (".txt",))
    seqs = set(labels) | set(results)
    for d in (image_dir, velo_dir):
        if d is not None:
            seqs.update(e.name for e in os.scandir(d) if e.is_dir())
    split = split_dir.name if split_dir.name in ("training", "testing") else None
    header = DatasetHeader(categories=_scan_names([labels[s] for s in sorted(labels)]
                                                  + [results[s] for s in sorted(results)], 2, mapping),
                           info={"kitti": {"split": split}})
    state = _ReadState(options, mapping, context, TRACKING_STYLE)
    return Dataset(header=header, items=_tracking_items(sorted(seqs), labels, results, image_dir, velo_dir,
                                                        calib_dir, split, header, state))


def _tracking_items(seqs: list[str], labels: dict[str, Path], results: dict[str, Path], image_dir: Path | None,
                    velo_dir: Path | None,
                    calib_dir: Path | None, split: str | None, header: DatasetHeader,
                    state: _ReadState) -> Iterator[DatasetItem]:
    for seq in seqs:
        calib_path = calib_dir / f"{seq}.txt" if calib_dir is not None else None
        calib = _calib_or_none(calib_path if calib_path is not None and calib_path.is_file() else None,
                               state.context)
        label_path = labels.get(seq) or results.get(seq)
        by_frame: dict[int, list[tuple[int, Row, Path]]] = {}
        for src in (labels.get(seq), results.get(seq)):
            if src is not None:
                for lineno, row in _read_rows(src, 2, state.context, state.options.strict):
                    by_frame.setdefault(int(row.prefix[0]), []).append((lineno, row, src))
        images = _stems(image_dir / seq if image_dir and (image_dir / seq).is_dir() else None, IMAGE_EXTS)
        clouds = _stems(velo_dir / seq if velo_dir and (velo_dir / seq).is_dir() else None, (".bin",))
        frames = [int(s) for s in (*images, *clouds) if s.isdigit()] + list(by_frame)
        if any(f < 0 for f in by_frame):
            bad = min(by_frame)
            state.context.error(ReadError(f"frame {bad} is negative", file=label_path,
                                          where=f"line {by_frame[bad][0][0]}"))
            frames = [f for f in frames if f >= 0]
        last = max(frames, default=-1)
        header.scenes[seq] = Scene.model_construct(reference_id=seq, metadata={}, annotations=[],
                                                   attributes={"kitti_sequence": seq})
        t: camera.Transform | None = None
        if any(r.name.lower() != "dontcare" and _valid_3d(r.values) for rows in by_frame.values() for _, r, _ in rows):
            try:
                t = _frame_transform(calib, calib_path or Path(f"calib/{seq}.txt"), label_path or Path(seq),
                                     state.options.frame, True)
            except ReadError as err:
                state.context.error(err)
        elif state.options.frame != "camera":
            t = _transform(calib)
        cam = camera.camera_params_of(t) if t is not None else None
        for f in range(last + 1):
            name = f"{f:06d}"
            ref = f"{seq}-{name}"
            gt, gc, pb, pc = [], [], [], []
            for k, (lineno, row, src) in enumerate(by_frame.get(f, [])):
                gid = f"{ref}-{k}"
                try:
                    made = _row_annotations(row, src, lineno, ref, gid, t, state)
                except ReadError as err:
                    state.context.error(err)
                    continue
                if made is None:
                    continue
                box, cub = made
                tid = int(row.prefix[1])
                box.attributes["track_id"] = tid
                if tid >= 0:
                    box.track_reference_id = f"{seq}:{tid}"
                    if cub is not None:
                        cub.track_reference_id = box.track_reference_id
                (pb if row.is_prediction else gt).append(box)
                if cub is not None:
                    (pc if row.is_prediction else gc).append(cub)
            attrs: dict[str, Any] = {"kitti_frame": name, "kitti_sequence": seq}
            if split:
                attrs["kitti_split"] = split
            if calib is not None:
                attrs["kitti_calib"] = calib
            img = images.get(name)
            width, height = _image_size(img)
            cloud = clouds.get(name)
            if cloud is not None and not _velodyne_ok(cloud, state.context):
                cloud = None
            if cloud is not None:
                pc_ref = f"{ref}-{LIDAR_SENSOR}"
                for a in (*gc, *pc):
                    a.reference_id = pc_ref
                yield DatasetItem.model_construct(
                    reference_id=pc_ref, image_location=None, pointcloud_location=str(cloud), width=None,
                    height=None, metadata={}, attributes=dict(attrs), annotations=gc, predictions=pc,
                    scene=FrameRef.model_construct(scene_reference_id=seq, index=f, sensor=LIDAR_SENSOR))
                img_anns, img_preds = gt, pb
            else:
                img_anns, img_preds = gt + gc, pb + pc
            yield DatasetItem.model_construct(
                reference_id=ref, image_location=str(img) if img else None, pointcloud_location=None,
                width=width, height=height, metadata={"camera_params": cam} if cam else {},
                attributes=attrs, annotations=img_anns, predictions=img_preds,
                scene=FrameRef.model_construct(scene_reference_id=seq, index=f, sensor="image_02"))
