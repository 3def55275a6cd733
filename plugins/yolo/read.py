"""Reading YOLO folders: find the layout (YAML, plain folders, darknet obj.data), then stream
one item per image or label file. The row grammar is in the package docstring."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from annobridge.core.errors import ReadError
from annobridge.core.formats import Context
from annobridge.core.limits import open_image
from annobridge.core.model import (
    BoxAnnotation,
    Category,
    Dataset,
    DatasetHeader,
    DatasetItem,
    KeypointsAnnotation,
    OrientedBoxAnnotation,
    PolygonAnnotation,
)
from annobridge.core.paths import contained, is_contained, unsafe_name

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp", ".pfm",
                            ".heic"})
"""Ultralytics' image suffixes (``IMG_FORMATS``), compared in lower case."""
SPLIT_KEYS = ("train", "val", "test")
QUAD_TOLERANCE = 1e-5
"""A 4-corner row is a rectangle when its defects are within this x max(width, height) pixels."""


@dataclass
class Split:
    """One split: its name and where its images (or, without images, its labels) are."""

    name: str | None
    folders: list[Path] = field(default_factory=list)  # image folders (or label folders)
    images: list[Path] = field(default_factory=list)  # images named by a list file
    source: str = ""  # the YAML key or list file, for messages


@dataclass
class Layout:
    """What the dataset files say besides the rows."""

    root: Path
    names: dict[int, str]
    splits: list[Split]
    task: str = "auto"
    kpt_shape: tuple[int, int] | None = None
    kpt_names: dict[int, list[str]] = field(default_factory=dict)
    skeleton: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    file: Path | None = None
    count_mismatch: ReadError | None = None
    """A class count (``nc``, darknet ``classes``) that differs from the names: the names win,
    as in Ultralytics (``data["nc"] = len(data["names"])``); ``strict`` refuses it."""


def _text(path: Path, item: str | None = None) -> str:
    """A text file's content; bytes that are not UTF-8 are a ReadError naming the file."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ReadError(f"not UTF-8 text (byte {exc.start})", file=path, item=item) from exc


# --------------------------------------------------------------------------- detection


def _yaml_in(folder: Path) -> Path | None:
    """The dataset YAML of a folder: ``data.yaml``, else the one top-level YAML with ``names``."""
    for name in ("data.yaml", "data.yml", "dataset.yaml"):
        if (folder / name).is_file():
            return folder / name
    found = [p for p in sorted(folder.glob("*.y*ml")) if p.suffix in (".yaml", ".yml") and _is_dataset_yaml(p)]
    return found[0] if found else None


def _is_dataset_yaml(path: Path) -> bool:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and "names" in data and any(k in data for k in SPLIT_KEYS)


def detect(path: Path) -> bool:
    """A dataset YAML, an ``obj.data``, or a folder holding one, or ``labels/`` + ``images/`` or
    ``labels/`` + ``classes.txt``."""
    if path.is_file():
        if path.name == "obj.data":
            return True
        return path.suffix in (".yaml", ".yml") and _is_dataset_yaml(path)
    if not path.is_dir():
        return False
    if (path / "obj.data").is_file() or _yaml_in(path) is not None:
        return True
    labels = path / "labels"
    if (path / "classes.txt").is_file() or (path / "obj.names").is_file():
        return labels.is_dir()
    # labels/ + images/ alone is also labelformat's KITTI layout: look at the first row
    return labels.is_dir() and (path / "images").is_dir() and _first_row_is_yolo(labels)


def _first_row_is_yolo(labels: Path, files: int = 20) -> bool:
    """Whether the first label row found (in at most ``files`` files) is a YOLO row: an integer
    class id, then numbers (a KITTI row starts with a class name). No rows at all: True."""
    for n, file in enumerate(labels.rglob("*.txt")):
        if n >= files:
            break
        try:
            with open(file, encoding="utf-8") as fh:
                line = next((ln for ln in fh if ln.strip()), None)
        except (OSError, UnicodeDecodeError):
            return False
        if line is None:
            continue
        head, *rest = line.split()
        try:
            int(head)
            [float(v) for v in rest]
        except ValueError:
            return False
        return True
    return True


# --------------------------------------------------------------------------- layout


def _names_from(value: Any, file: Path) -> dict[int, str]:
    if isinstance(value, list):
        return {i: str(n) for i, n in enumerate(value)}
    if isinstance(value, dict):
        try:
            return {int(k): str(v) for k, v in value.items()}
        except (TypeError, ValueError) as exc:
            raise ReadError(f"names has a key that is not a class id: {exc}", file=file, where="names",
                            fix="names is a list, or a dict of class id -> name") from exc
    raise ReadError(f"names is a {type(value).__name__}, expected a list or a dict of id -> name",
                    file=file, where="names")


def _names_file(path: Path) -> dict[int, str]:
    lines = [ln.strip() for ln in _text(path).splitlines()]
    return {i: n for i, n in enumerate(ln for ln in lines if ln)}


def _yaml_layout(file: Path) -> Layout:
    try:
        data = yaml.safe_load(_text(file))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ReadError(f"not valid YAML: {getattr(exc, 'problem', exc)}", file=file,
                        where=f"line {mark.line + 1}" if mark else None) from exc
    if not isinstance(data, dict) or "names" not in data:
        raise ReadError("the dataset YAML has no names", file=file, fix="add names: [class0, class1, ...]")
    names = _names_from(data["names"], file)
    nc = data.get("nc")
    mismatch = None
    if nc is not None and (not isinstance(nc, int) or nc != len(names)):
        mismatch = ReadError(f"nc is {nc!r} but names lists {len(names)} classes", file=file, where="nc",
                             fix="make nc equal the number of names, or remove it")
    if sorted(names) != list(range(len(names))):
        raise ReadError(f"class ids in names must be 0..{len(names) - 1}, got {sorted(names)}", file=file,
                        where="names")
    base = file.parent
    root = base
    if data.get("path"):
        # Ultralytics resolves a relative path against its own datasets folder and accepts absolute
        # ones; here the root must be a folder inside the YAML's folder, else the YAML's folder is
        if is_contained(base, str(data["path"])) and (base / str(data["path"])).is_dir():
            root = base / str(data["path"])
        else:
            logger.info("%s: path %r is not a folder inside the YAML's folder; using the YAML's folder",
                        file, data["path"])
    layout = Layout(root=root, names=names, splits=[], file=file, count_mismatch=mismatch)
    for key in SPLIT_KEYS:
        value = data.get(key)
        if not value:
            continue
        split = Split(name=key, source=f"{file.name}:{key}")
        for entry in value if isinstance(value, list) else [value]:
            _add_entry(split, root, str(entry), file, key)
        layout.splits.append(split)
    task = data.get("task")
    if task is not None:
        if task not in ("detect", "segment", "pose", "obb"):
            raise ReadError(f"task is {task!r}, expected detect, segment, pose or obb", file=file, where="task")
        layout.task = task
    if data.get("kpt_shape") is not None:
        shape = data["kpt_shape"]
        if (not isinstance(shape, list) or len(shape) != 2 or not all(isinstance(v, int) for v in shape)
                or shape[0] < 1 or shape[1] not in (2, 3)):
            raise ReadError(f"kpt_shape is {shape!r}, expected [K, 2] or [K, 3]", file=file, where="kpt_shape")
        layout.kpt_shape = (shape[0], shape[1])
        if layout.task == "auto":
            layout.task = "pose"
    for key in ("kpt_names", "skeleton"):
        value = data.get(key)
        if isinstance(value, list):
            value = {0: value} if key == "kpt_names" else {c: value for c in names}
        if isinstance(value, dict):
            try:
                for cls, v in value.items():
                    if key == "kpt_names":
                        layout.kpt_names[int(cls)] = [str(n) for n in v]
                    else:
                        layout.skeleton[int(cls)] = [(int(a), int(b)) for a, b in v]
            except (TypeError, ValueError) as exc:
                raise ReadError(f"{key} is not {{class id: [...]}}: {exc}", file=file, where=key,
                                fix="kpt_names maps a class id to names; skeleton a class id to [a, b] pairs") from exc
    kept = {k: data[k] for k in ("flip_idx", "download") if k in data}
    if kept:
        layout.info = kept
    return layout


def _add_entry(split: Split, root: Path, entry: str, file: Path, key: str) -> None:
    path = contained(root, entry, what=key, file=file, where=key)
    if path.suffix == ".txt" and path.is_file():
        split.images.extend(_list_file(path, root, key))
    elif path.is_dir():
        split.folders.append(path)
    else:
        labels = _label_path(path)
        if labels.is_dir():  # images not shipped (media=none): the labels are all there is
            split.folders.append(path)
        else:
            raise ReadError(f"{key} names {entry!r}, which is neither a folder nor a .txt image list",
                            file=file, where=key, fix="point it at images/<split> or a list file")


def _list_file(path: Path, root: Path, key: str) -> list[Path]:
    out = []
    for lineno, line in enumerate(_text(path).splitlines(), start=1):
        entry = line.strip()
        if not entry:
            continue
        base = path.parent if entry.startswith("./") else root
        image = contained(base, entry, what="image path", file=path, where=f"line {lineno}")
        if not image.exists() and entry.startswith("data/"):  # CVAT's obj.data paths start with data/
            image = contained(root, entry[5:], what="image path", file=path, where=f"line {lineno}")
        out.append(image)
    return out


def _darknet_layout(file: Path) -> Layout:
    root = file.parent
    fields: dict[str, str] = {}
    for line in _text(file).splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip()

    def resolve(value: str, what: str) -> Path:
        path = contained(root, value, what=what, file=file, where=what)
        if not path.exists() and value.startswith("data/"):
            path = contained(root, value[5:], what=what, file=file, where=what)
        return path

    names_path = resolve(fields.get("names", "obj.names"), "names")
    if not names_path.is_file():
        raise ReadError(f"names file {fields.get('names', 'obj.names')!r} not found", file=file, where="names")
    names = _names_file(names_path)
    mismatch = None
    if "classes" in fields and fields["classes"].isdigit() and int(fields["classes"]) != len(names):
        mismatch = ReadError(f"classes is {fields['classes']} but {names_path.name} has {len(names)} names",
                             file=file, where="classes", fix="make classes equal the number of names")
    splits = []
    for key in ("train", "valid", "test"):
        if key in fields:
            lst = resolve(fields[key], key)
            if lst.is_file():
                splits.append(Split(name=key, images=_list_file(lst, root, key), source=str(lst)))
    if not splits:
        for folder in sorted(root.glob("obj_*_data")):
            splits.append(Split(name=folder.name[4:-5], folders=[folder], source=str(folder)))
    return Layout(root=root, names=names, splits=splits, file=file, count_mismatch=mismatch)


def _folder_layout(root: Path) -> Layout:
    names: dict[int, str] = {}
    for candidate in ("classes.txt", "obj.names"):
        if (root / candidate).is_file():
            names = _names_file(root / candidate)
            break
    images, labels = root / "images", root / "labels"
    sub = sorted({p.name for top in (images, labels) if top.is_dir() for p in top.iterdir() if p.is_dir()})
    flat_labels = labels.is_dir() and any(p.suffix == ".txt" for p in labels.iterdir())
    if sub and not flat_labels:
        splits = [Split(name=s, folders=[images / s], source=str(images / s)) for s in sub]
    else:
        splits = [Split(name=None, folders=[images], source=str(images))]
    return Layout(root=root, names=names, splits=splits)


def find_layout(path: Path) -> Layout:
    if path.is_file():
        return _darknet_layout(path) if path.name == "obj.data" else _yaml_layout(path)
    if (path / "obj.data").is_file():
        return _darknet_layout(path / "obj.data")
    found = _yaml_in(path)
    return _yaml_layout(found) if found is not None else _folder_layout(path)


# --------------------------------------------------------------------------- items


def _label_path(image: Path) -> Path:
    """Ultralytics' rule: the last ``images`` folder becomes ``labels``, the suffix ``.txt``;
    an image with no ``images`` folder in its path has its label beside it."""
    parts = list(image.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt") if image.suffix else Path(*parts)
    return image.with_suffix(".txt") if image.suffix else image


def _ref(relative: PurePosixPath) -> str:
    """The item id: the path below the split folder without suffix, each part unescaped."""
    return "/".join(unsafe_name(p) for p in relative.with_suffix("").parts)


@dataclass
class _Entry:
    ref: str
    image: Path | None
    label: Path
    split: str | None


def _entries(layout: Layout, images_dir: Path | None) -> Iterator[_Entry]:
    for split in layout.splits:
        for image in split.images:
            yield _Entry(_ref(PurePosixPath(image.name)), image, _label_path(image), split.name)
        for folder in split.folders:
            label_folder = _label_path(folder)  # labels/<split>, or the folder itself (darknet)
            by_ref: dict[str, _Entry] = {}
            if folder.is_dir():
                for image in sorted(folder.rglob("*")):
                    if image.suffix.lower() in IMAGE_SUFFIXES and image.is_file():
                        rel = PurePosixPath(image.relative_to(folder).as_posix())
                        ref = _ref(rel)
                        label = label_folder / rel.with_suffix(".txt")
                        by_ref[ref] = _Entry(ref, image, label, split.name)
            if label_folder.is_dir():
                for label in sorted(label_folder.rglob("*.txt")):
                    rel = PurePosixPath(label.relative_to(label_folder).as_posix())
                    ref = _ref(rel)
                    if ref not in by_ref:
                        by_ref[ref] = _Entry(ref, _find_image(images_dir, split.name, rel), label, split.name)
            yield from (by_ref[k] for k in sorted(by_ref))


def _find_image(images_dir: Path | None, split: str | None, rel: PurePosixPath) -> Path | None:
    if images_dir is None:
        return None
    for base in ([images_dir / split] if split else []) + [images_dir]:
        for suffix in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"):
            for candidate in (rel.with_suffix(suffix).as_posix(), rel.with_suffix(suffix.upper()).as_posix()):
                path = contained(base, candidate, what="image path")
                if path.is_file():
                    return path
    return None


_EXIF_ORIENTATION = 0x0112


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from the image header, turned by its EXIF orientation as Ultralytics
    does (orientations 5-8 swap width and height); no pixels are decoded."""
    with open_image(path) as img:  # header checked; a broken file is a ReadError
        w, h = img.size
        try:
            orientation = img.getexif().get(_EXIF_ORIENTATION)
        except Exception:  # a broken EXIF block does not make the size unknown
            orientation = None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def parse_size(value: str) -> tuple[int, int]:
    w, _, h = value.lower().partition("x")
    return int(w), int(h)


# --------------------------------------------------------------------------- rows


@dataclass
class _RowReader:
    layout: Layout
    task: str
    context: Context

    def class_name(self, token: str, file: Path, where: str, ref: str) -> tuple[int, str]:
        try:
            value = float(token)
        except ValueError:
            value = math.nan
        if not value.is_integer() or value < 0:
            raise ReadError(f"class {token!r} is not a class id (an integer >= 0)", file=file, where=where, item=ref)
        cls = int(value)
        names = self.layout.names
        if cls not in names:
            if names or self.layout.file is not None:
                raise ReadError(f"class {cls} is not in names (0..{len(names) - 1})", file=file, where=where,
                                item=ref, fix="add the class to the dataset's names")
            return cls, str(cls)  # no names anywhere: the ids are the labels
        return cls, names[cls]

    def rows(self, file: Path, ref: str, w: int, h: int) -> tuple[list[Any], list[Any]]:
        annotations: list[Any] = []
        predictions: list[Any] = []
        text = _text(file, ref)
        for lineno, line in enumerate(text.splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            where = f"line {lineno}"
            try:
                numbers = [float(p) for p in parts[1:]]
            except ValueError as exc:
                self.context.error(ReadError(f"not a number: {exc}", file=file, where=where, item=ref))
                continue
            if any(not math.isfinite(v) for v in numbers):
                self.context.error(ReadError("a coordinate is not finite", file=file, where=where, item=ref))
                continue
            try:
                cls, label = self.class_name(parts[0], file, where, ref)
                self._row(numbers, cls, label, f"{ref}-{lineno}", ref, w, h, annotations, predictions, file, where)
            except ReadError as err:
                if err.file is None:  # raised where the file was not known: say where it was
                    err = ReadError(err.problem, file=file, where=where, item=ref, fix=err.fix)
                self.context.error(err)
        return annotations, predictions

    def _row(self, v: list[float], cls_id: int, label: str, aid: str, ref: str, w: int, h: int,
             annotations: list[Any], predictions: list[Any], file: Path, where: str) -> None:
        n = len(v)
        task = self.task
        if task == "pose":
            k, d = self.layout.kpt_shape or (0, 0)
            if n not in (4 + k * d, 5 + k * d):
                raise ReadError(f"{n + 1} numbers, expected {5 + k * d} for a pose row (class, box, "
                                f"{k} x {d} keypoint numbers) or {6 + k * d} with a confidence",
                                file=file, where=where, item=ref)
            conf = v[-1] if n == 5 + k * d else None
            target = predictions if conf is not None else annotations
            target.append(self._box(v, label, aid, ref, w, h, _conf(conf, file, where, ref), group=aid))
            if conf is not None:
                self.context.report.drop("prediction:keypoints",
                                         "a YOLO pose prediction's keypoints carry per-point scores, "
                                         "which the model cannot hold; read as a box prediction")
                return
            kp = self._keypoints(v[4:4 + k * d], k, d, w, h, file, where, ref)
            if kp is not None:
                names = self.layout.kpt_names.get(cls_id) or [str(i) for i in range(k)]
                if len(names) != k:
                    raise ReadError(f"kpt_names for class {cls_id} has {len(names)} names, kpt_shape says {k}",
                                    file=self.layout.file, where="kpt_names")
                skeleton = self.layout.skeleton.get(cls_id)
                annotations.append(KeypointsAnnotation.model_construct(
                    type="keypoints", label=label, keypoints=kp, names=names, skeleton=skeleton,
                    reference_id=ref, annotation_id=aid + ":kp", group_id=aid, track_reference_id=None,
                    metadata={}, attributes={}, confidence=None, class_pdf=None))
            return
        if n in (4, 5) and not (task == "obb"):
            conf = v[4] if n == 5 else None
            box = self._box(v, label, aid, ref, w, h, _conf(conf, file, where, ref))
            (predictions if conf is not None else annotations).append(box)
            return
        if task == "obb":
            if n not in (8, 9):
                raise ReadError(f"{n + 1} numbers, expected 9 for an OBB row (class and 4 corners) or 10 with "
                                "a confidence", file=file, where=where, item=ref)
            conf = v[8] if n == 9 else None
            quad = self._quad(v[:8], label, aid, ref, w, h, _conf(conf, file, where, ref))
            (predictions if conf is not None else annotations).append(quad)
            return
        if n < 6:
            raise ReadError(f"{n + 1} numbers, expected 5 (class cx cy w h), 6 with a confidence, or a "
                            "polygon (class and at least 3 x, y points)", file=file, where=where, item=ref)
        conf = v[-1] if n % 2 else None
        coords = v[:-1] if conf is not None else v
        ring = [c * (w if i % 2 == 0 else h) for i, c in enumerate(coords)]
        (predictions if conf is not None else annotations).append(PolygonAnnotation.model_construct(
            type="polygon", label=label, rings=[ring], reference_id=ref, annotation_id=aid, group_id=None,
            track_reference_id=None, metadata={}, attributes={}, confidence=_conf(conf, file, where, ref),
            class_pdf=None, embedding_vector=None))

    def _box(self, v: list[float], label: str, aid: str, ref: str, w: int, h: int, conf: float | None,
             group: str | None = None) -> BoxAnnotation:
        bw, bh = v[2] * w, v[3] * h
        if bw < 0 or bh < 0:
            raise ReadError(f"box size {v[2]:g} x {v[3]:g} is negative, expected w, h >= 0", item=ref)
        return BoxAnnotation.model_construct(
            type="box", label=label, x=v[0] * w - bw / 2, y=v[1] * h - bh / 2, width=bw, height=bh,
            reference_id=ref, annotation_id=aid, group_id=group, track_reference_id=None, metadata={},
            attributes={}, confidence=conf, class_pdf=None, embedding_vector=None)

    def _quad(self, v: list[float], label: str, aid: str, ref: str, w: int, h: int,
              conf: float | None) -> Any:
        px = [c * (w if i % 2 == 0 else h) for i, c in enumerate(v)]
        common = dict(label=label, reference_id=ref, annotation_id=aid, group_id=None, track_reference_id=None,
                      metadata={}, class_pdf=None, confidence=conf)
        if not is_rectangle(px, QUAD_TOLERANCE * max(w, h)):
            return PolygonAnnotation.model_construct(type="polygon", rings=[px], attributes={"yolo_quad": True},
                                                     embedding_vector=None, **common)
        fields = OrientedBoxAnnotation.fields_from_corners(px)
        if fields["rotation"] <= -180 + 1e-9:
            fields["rotation"] += 360
        return OrientedBoxAnnotation.model_construct(type="oriented_box", attributes={}, **fields, **common)

    def _keypoints(self, v: list[float], k: int, d: int, w: int, h: int, file: Path, where: str,
                   ref: str) -> list[float] | None:
        flat: list[float] = []
        labelled = False
        for i in range(k):
            x, y = v[i * d], v[i * d + 1]
            if d == 3:
                vis = v[i * d + 2]
                if vis not in (0, 1, 2):
                    raise ReadError(f"keypoint {i} has visibility {vis:g}, expected 0, 1 or 2", file=file,
                                    where=where, item=ref)
                vis = int(vis)
            else:
                vis = 0 if (x == 0 and y == 0) or x < 0 or y < 0 else 2
            if vis == 0:
                flat += [0.0, 0.0, 0]
            else:
                labelled = True
                flat += [x * w, y * h, vis]
        return flat if labelled else None


def _conf(conf: float | None, file: Path | None, where: str | None, ref: str) -> float | None:
    if conf is not None and not 0 <= conf <= 1:
        raise ReadError(f"confidence {conf:g} is outside 0..1", file=file, where=where, item=ref)
    return conf


def is_rectangle(corners: list[float], tolerance: float) -> bool:
    """Whether 4 corners (flat, in order) form a rectangle within ``tolerance`` pixels: opposite
    corners share a midpoint (a parallelogram) and the diagonals have the same length."""
    x0, y0, x1, y1, x2, y2, x3, y3 = corners
    if math.hypot(x0 + x2 - x1 - x3, y0 + y2 - y1 - y3) > tolerance:
        return False
    return abs(math.hypot(x2 - x0, y2 - y0) - math.hypot(x3 - x1, y3 - y1)) <= tolerance


# --------------------------------------------------------------------------- read


def read(path: Path, options: Any, context: Context) -> Dataset:
    layout = find_layout(path)
    if layout.count_mismatch is not None:
        if options.strict:
            raise layout.count_mismatch
        context.warn(f"{layout.count_mismatch}; the names are read, as Ultralytics does "
                     "(--option strict=true refuses it)")
    task = options.task if options.task != "auto" else layout.task
    if task == "pose" and layout.kpt_shape is None:
        raise ReadError("task pose needs kpt_shape in the dataset YAML", file=layout.file or path,
                        fix="add kpt_shape: [K, 3] (or [K, 2])")
    categories = []
    for cls, name in sorted(layout.names.items()):
        cat = Category(id=cls, name=name)
        if task == "pose" and layout.kpt_shape is not None:
            cat.keypoints = layout.kpt_names.get(cls) or [str(i) for i in range(layout.kpt_shape[0])]
            cat.skeleton = layout.skeleton.get(cls)
        categories.append(cat)
    info: dict[str, Any] = {"task": task}
    if layout.kpt_shape is not None:
        info["kpt_shape"] = list(layout.kpt_shape)
    info.update(layout.info)
    header = DatasetHeader(categories=categories, info={"yolo": info})
    images_dir = Path(options.images) if options.images else None
    fallback = parse_size(options.image_size) if options.image_size else None
    rows = _RowReader(layout, task, context)
    return Dataset(header=header, items=_items(layout, rows, images_dir, fallback, context))


def _items(layout: Layout, rows: _RowReader, images_dir: Path | None, fallback: tuple[int, int] | None,
           context: Context) -> Iterator[DatasetItem]:
    for entry in _entries(layout, images_dir):
        size = None
        if entry.image is not None and entry.image.is_file():
            try:
                size = image_size(entry.image)
            except ReadError as exc:
                if fallback is None:
                    context.error(ReadError(f"cannot read the image size: {exc.problem}", file=entry.image,
                                            item=entry.ref, fix="pass --option image-size=WxH"))
                    continue
        if size is None:
            size = fallback
        if size is None:
            context.error(ReadError("no image to take the size from: YOLO coordinates are fractions of it",
                                    file=entry.label, item=entry.ref,
                                    fix="put the image where the labels expect it, pass --option images=DIR, "
                                        "or --option image-size=WxH"))
            continue
        w, h = size
        annotations, predictions = rows.rows(entry.label, entry.ref, w, h) if entry.label.is_file() else ([], [])
        attributes = {"split": entry.split} if entry.split is not None else {}
        yield DatasetItem.model_construct(
            reference_id=entry.ref, image_location=str(entry.image) if entry.image is not None else None,
            pointcloud_location=None, width=w, height=h, metadata={}, attributes=attributes,
            annotations=annotations, predictions=predictions, scene=None)
