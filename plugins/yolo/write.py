"""Writing YOLO folders: ``data.yaml`` + ``labels/<split>/<ref>.txt`` (+ images on request).

The writer streams: each item's rows are written as it arrives; the YAML, which needs every
class and the task, is written last. It holds what YOLO holds and converts no geometry: kinds
the chosen task cannot hold are reported and left out (the engine's derivation stage turns
one geometry into another before the writer sees it).

Written in parts on workers (``Format.parts``, ``converters/sharded.py``), three things of
a label file depend on the items before it: the class ids of labels beyond the header's
categories (numbered as first met), ``task=auto`` (the first item with keypoints, polygons
or oriented boxes decides; box rows written before are fixed up then) and pose's keypoint
schema (the header's, else the first keypoints met). The driver writes the first items
itself, and :func:`lead` fixes ``task=auto`` to the task they chose for every part. Each
worker then runs the one-process writer on its part from the same start (the header's
classes and schema, that task), and returns per item what it decided, adopted and numbered,
and which files still hold box rows waiting for the task (when the first items chose none).
:func:`finish` replays that in order as one process would have met it, fixes the waiting
files up once the task is known, and writes ``data.yaml``. When a part's choice differs
from the one in order before it (a part of polygons after one that chose pose, a new label
numbered differently), it raises :class:`PartsDiffer` and the engine writes the dataset
again in one process. A COCO source declares its categories (and keypoint names), and its
first items choose the task, so its parts are written once, on the workers.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from annobridge.core.derive import keypoints_box
from annobridge.core.errors import WriteError
from annobridge.core.formats import ConversionReport, Context, PartsDiffer
from annobridge.core.model import Category, Dataset, DatasetItem, KeypointsAnnotation
from annobridge.core.paths import contained, contained_text, media_file, safe_name, source_root, write_new_file
from annobridge.plugins.yolo.common import HELD, TASKS
from annobridge.plugins.yolo.read import image_size, parse_size

TASK_OF_KIND = {"polygon": "segment", "oriented_box": "obb", "keypoints": "pose"}
"""The task a non-box annotation kind asks for (``task=auto``)."""


def _num(v: float) -> str:
    """Shortest text that reads back as the same float (``0.5``, ``1e-05``)."""
    return repr(float(v))


def join_rings(rings: Sequence[Sequence[float]]) -> list[float]:
    """One ring for a polygon in several parts, joined as Ultralytics' ``merge_multi_segment``.

    Consecutive rings are linked at their closest pair of vertices (first pair in row-major
    order on ties). Forward pass: the first and last rings are rolled to start at their link
    vertex and closed on themselves (the start vertex repeated at the end); a middle ring,
    reversed when its link to the previous ring comes after its link to the next one, is rolled
    to start at the previous link and contributes the arc up to the next link. Backward pass: the
    middle rings, last to first, contribute the rest of their (closed) rings. The joined ring
    thus visits every vertex and returns along the links.
    """
    pts = [[(r[i], r[i + 1]) for i in range(0, len(r), 2)] for r in rings]
    if len(pts) == 1:
        return [c for p in pts[0] for c in p]
    links: list[list[int]] = [[] for _ in pts]
    for i in range(1, len(pts)):
        a, b = _closest(pts[i - 1], pts[i])
        links[i - 1].append(a)
        links[i].append(b)
    out: list[tuple[float, float]] = []
    closed: list[list[tuple[float, float]]] = []
    last = len(pts) - 1
    for i, idx in enumerate(links):
        ring = pts[i]
        if len(idx) == 2 and idx[0] > idx[1]:
            idx = idx[::-1]
            ring = ring[::-1]
        ring = ring[idx[0]:] + ring[:idx[0]]
        ring = ring + ring[:1]
        closed.append(ring)
        if i in (0, last):
            out += ring
        else:
            out += ring[:idx[1] - idx[0] + 1]
    for i in range(last - 1, 0, -1):
        out += closed[i][abs(links[i][1] - links[i][0]):]
    return [c for p in out for c in p]


def _closest(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> tuple[int, int]:
    best, pair = math.inf, (0, 0)
    for i, (ax, ay) in enumerate(a):
        for j, (bx, by) in enumerate(b):
            d = (ax - bx) ** 2 + (ay - by) ** 2
            if d < best:
                best, pair = d, (i, j)
    return pair


def _box_text(a: Any, w: int, h: int) -> str:
    """A box as YOLO's normalised ``cx cy w h``, in one format: ``%r`` of a float is :func:`_num`."""
    return "%r %r %r %r" % ((a.x + a.width / 2) / w, (a.y + a.height / 2) / h, a.width / w, a.height / h)


@dataclass
class _Classes:
    """Label -> class id 0..n-1: the header's categories by id, then new labels as they come."""

    names: list[str]
    index: dict[str, int] = field(default_factory=dict)
    met: list[tuple[str, int]] | None = None  # in a part: the new labels and the ids they got

    @classmethod
    def of(cls, categories: list[Category]) -> _Classes:
        ordered = sorted(categories, key=lambda c: c.id)
        names = list(dict.fromkeys(c.name for c in ordered))
        return cls(names=names, index={n: i for i, n in enumerate(names)})

    def id(self, label: str) -> int:
        cid = self.index.get(label)
        if cid is None:
            cid = self.index[label] = len(self.names)
            self.names.append(label)
            if self.met is not None:
                self.met.append((label, cid))
        return cid


@dataclass
class _Schema:
    """The dataset's one keypoint layout (YOLO's ``kpt_shape``): names and skeleton per class."""

    names: list[str] | None = None
    per_class: dict[str, tuple[list[str], list[tuple[int, int]] | None]] = field(default_factory=dict)
    adopted: list[Adoption] | None = None  # in a part: what was adopted, in order

    def adopt(self, label: str, names: list[str], skeleton: list[tuple[int, int]] | None) -> None:
        first = self.names is None
        if first:
            self.names = list(names)
        if self.adopted is not None and (first or label not in self.per_class):
            self.adopted.append((label, list(names), skeleton, first))
        self.per_class.setdefault(label, (list(names), skeleton))


Adoption = tuple[str, list[str], "list[tuple[int, int]] | None", bool]
"""A keypoint schema adopted for a class: label, names, skeleton, and whether it set the
dataset's schema (``kpt_shape``)."""


class _Writer:
    def __init__(self, dataset: Dataset, destination: Path, options: Any, context: Context) -> None:
        self.dst = destination
        self.options = options
        self.report: ConversionReport = context.report
        self.classes = _Classes.of(dataset.header.categories)
        self.schema = _Schema()
        for cat in sorted(dataset.header.categories, key=lambda c: c.id):
            if cat.keypoints:
                self.schema.adopt(cat.name, cat.keypoints, cat.skeleton)
        self.info = dict(dataset.header.info.get("yolo") or {})
        self.media_root = source_root(dataset.source)  # images are read only from inside the source
        # task=auto keeps the task a YOLO source was read with (so an empty pose folder stays pose)
        known = self.info.get("task") if self.info.get("task") in TASKS else None
        self.task: str | None = known if options.task == "auto" else options.task
        self.box_only_files: list[Path] = []  # written before auto chose the task
        self.splits: dict[str, None] = {}
        self.label_roots: dict[str, str] = {}  # split -> labels/<split>
        self.fallback = parse_size(options.image_size) if options.image_size else None

    # -- sizes and names

    def size(self, item: DatasetItem) -> tuple[int, int]:
        if item.width and item.height:
            return item.width, item.height
        image, _ = media_file(item.image_location, self.media_root)
        if image is not None:
            return image_size(image)
        if self.fallback is not None:
            return self.fallback
        raise WriteError("YOLO coordinates are fractions of the image size, and this item has none",
                         item=item.reference_id,
                         fix="give the items width/height, a readable local image, or --option image-size=WxH")

    def split_of(self, item: DatasetItem) -> str:
        split = item.attributes.get("split") or self.options.split
        if split in self.splits:  # checked already
            return split  # type: ignore[no-any-return]
        if not isinstance(split, str) or safe_name(split) != split:
            raise WriteError(f"split {split!r} cannot be a folder name", item=item.reference_id,
                             fix="use a plain name such as train, val or test")
        return split

    def relative(self, ref: str) -> str:
        """The item's path below ``labels/<split>``: its id, each ``/`` part made a safe name."""
        if "/" not in ref:
            return safe_name(ref)
        return "/".join(safe_name(p) for p in ref.split("/"))

    # -- rows

    def decide(self, kinds: set[str]) -> None:
        """``task=auto``: the first item with a non-box kind picks the task (keypoints before
        polygons before oriented boxes); box-only files already written are fixed up now (pose:
        all-unlabelled keypoints appended; obb: their boxes reported and removed)."""
        if self.task is not None:
            return
        for kind in ("keypoints", "polygon", "oriented_box"):
            if kind in kinds:
                self.task = TASK_OF_KIND[kind]
                break
        else:
            return
        self.fix_up(self.box_only_files)
        self.box_only_files = []

    def fix_up(self, paths: list[Path]) -> None:
        """Files of box rows written before the task was known, made what the task writes."""
        for path in paths:
            if self.task == "pose":
                self._pad_pose_file(path)
            elif self.task == "obb":
                rows = path.read_text(encoding="utf-8").splitlines()
                self.report.drop(("prediction:" if self.options.predictions else "") + "box",
                                 "a YOLO obb folder cannot hold box (choose another --option task=)", len(rows))
                path.write_text("", encoding="utf-8")

    def _pad_pose_file(self, path: Path) -> None:
        pad = " 0 0 0" * len(self.schema.names or ())
        lines = path.read_text(encoding="utf-8").splitlines()
        if self.options.predictions:  # the confidence stays last
            lines = [f"{head}{pad} {conf}" for head, _, conf in (ln.rpartition(" ") for ln in lines)]
        else:
            lines = [line + pad for line in lines]
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")

    def rows(self, item: DatasetItem, w: int, h: int) -> list[str]:
        # the engine has already dropped (and reported) the side this write does not hold
        anns = item.predictions if self.options.predictions else item.annotations
        if self.task is None:
            for a in anns:
                if a.type == "keypoints" and self.schema.names is None:
                    self.schema.adopt(a.label, a.names, a.skeleton)
            self.decide({a.type for a in anns})
        task = self.task or "detect"
        held = HELD[task]
        if task != "pose" and "box" in held and all(a.type == "box" for a in anns):  # boxes only: rows in order
            return self._box_rows(anns, w, h)
        prefix = "prediction:" if self.options.predictions else ""
        has_polygons = any(a.type == "polygon" for a in anns)
        grouped_boxes: dict[str, Any] = {}
        bboxes: dict[str, list[float]] = {}
        if task == "pose":
            for a in anns:
                if a.group_id is not None:
                    if a.type == "box":
                        grouped_boxes.setdefault(a.group_id, a)
                    elif isinstance(a.attributes.get("bbox"), list):
                        bboxes.setdefault(a.group_id, a.attributes["bbox"])
        used_boxes: set[int] = set()
        out: list[tuple[int, str]] = []
        for pos, a in enumerate(anns):
            kind = a.type
            why = None
            if kind not in held:
                why = f"a YOLO {task} folder cannot hold {kind} (choose another --option task=)"
            elif task == "segment" and kind == "box" and has_polygons:
                why = ("a YOLO segment label file with polygon rows cannot also hold box rows "
                       "(Ultralytics reads them as 2-point polygons)")
            elif task == "obb" and kind == "polygon" and not (a.attributes.get("yolo_quad") and len(a.rings) == 1
                                                                and len(a.rings[0]) == 8):
                why = "a YOLO obb folder holds polygons only as the non-rectangular quads it was read from"
            if why is not None:
                self.report.drop(prefix + kind, why)
                continue
            if kind == "keypoints":
                row = self._pose_row(a, w, h, grouped_boxes, bboxes, used_boxes, anns)
                if row is not None:
                    out.append((pos, row))
                continue
            if kind == "box" and task == "pose":
                continue  # written after the keypoints have claimed their boxes
            out.append((pos, self._row(a, w, h)))
        if task == "pose":
            pad = " 0 0 0" * len(self.schema.names or ())
            for pos, a in enumerate(anns):
                if a.type == "box" and id(a) not in used_boxes:
                    out.append((pos, self._row(a, w, h, pad)))
        out.sort()
        return [row for _, row in out]

    def _conf(self, a: Any) -> str:
        if not self.options.predictions:
            return ""
        if a.confidence is None:
            self.report.drop("prediction confidence", "a YOLO prediction row ends with a confidence: "
                             "a prediction without one is written with 1.0")
            return " 1.0"
        return f" {_num(a.confidence)}"

    def _box_rows(self, boxes: list[Any], w: int, h: int) -> list[str]:
        """:meth:`_row` of each box (once per object: 400,000 times on a large COCO set)."""
        index = self.classes.index
        rows = []
        for a in boxes:
            cls = index.get(a.label)
            if cls is None:
                cls = self.classes.id(a.label)
            rows.append(f"{cls} {_box_text(a, w, h)}{self._conf(a)}" if self.options.predictions
                        else f"{cls} {_box_text(a, w, h)}")
        return rows

    def _row(self, a: Any, w: int, h: int, pad: str = "") -> str:
        cls = self.classes.id(a.label)
        if a.type == "box":
            body = _box_text(a, w, h)
        elif a.type == "oriented_box":
            body = " ".join(_num(c / (w if i % 2 == 0 else h)) for i, c in enumerate(a.corners()))
        else:
            if len(a.rings) > 1:
                self.report.drop("polygon rings", "a YOLO row holds one ring: the parts were joined into one "
                                 "ring as Ultralytics does (merge_multi_segment)")
            ring = join_rings(a.rings)
            body = " ".join(_num(c / (w if i % 2 == 0 else h)) for i, c in enumerate(ring))
        return f"{cls} {body}{pad}{self._conf(a)}"

    def _pose_row(self, a: KeypointsAnnotation, w: int, h: int, grouped: dict[str, Any],
                  bboxes: dict[str, list[float]], used: set[int], anns: list[Any]) -> str | None:
        schema = self.schema.names or a.names
        if self.schema.names is None:  # the first keypoints of a named pose task: pad earlier box rows
            self.schema.adopt(a.label, a.names, a.skeleton)
            for path in self.box_only_files:
                self._pad_pose_file(path)
            self.box_only_files = []
        if len(a.names) != len(schema):
            self.report.drop("keypoints", f"YOLO holds one kpt_shape per dataset: {len(a.names)} keypoints do "
                             f"not fit the schema's {len(schema)}")
            return None
        if list(a.names) != list(schema):
            self.report.drop("keypoint names", "YOLO holds one keypoint schema per dataset: names that differ "
                             "from it are written by position under the schema's names")
        elif a.label not in self.schema.per_class:
            self.schema.adopt(a.label, a.names, a.skeleton)
        box = grouped.get(a.group_id) if a.group_id is not None else None
        if box is not None and id(box) not in used:
            used.add(id(box))
            xywh = (box.x, box.y, box.width, box.height)
        elif isinstance(a.attributes.get("bbox"), list) and len(a.attributes["bbox"]) == 4:
            xywh = tuple(a.attributes["bbox"])
        elif a.group_id is not None and a.group_id in bboxes and len(bboxes[a.group_id]) == 4:
            xywh = tuple(bboxes[a.group_id])
        elif (extent := keypoints_box(a.keypoints)) is not None:  # a pose row needs a box: the points' extent
            xywh = extent
            self.report.convert("keypoints", "box", 1, consumed=0, made=1)
        else:
            self.report.drop("keypoints", "a YOLO pose row needs the object's box, and no keypoint is labelled "
                             "to take its extent from")
            return None
        x, y, bw, bh = (float(v) for v in xywh)
        if not any(a.keypoints[2::3]):
            self.report.drop("keypoints", "a pose row whose keypoints are all unlabelled reads back as a plain box")
        kp = a.keypoints
        pts = []
        for i in range(0, len(kp), 3):
            v = int(kp[i + 2])
            pts.append("0 0 0" if v == 0 else f"{_num(kp[i] / w)} {_num(kp[i + 1] / h)} {v}")
        cls = self.classes.id(a.label)
        box_text = " ".join(_num(v) for v in ((x + bw / 2) / w, (y + bh / 2) / h, bw / w, bh / h))
        return f"{cls} {box_text} {' '.join(pts)}"

    # -- files

    def item(self, item: DatasetItem) -> tuple[str, str]:
        """Write the item's label file (and image); returns its split and the file."""
        w, h = self.size(item)
        split = self.split_of(item)
        self.splits.setdefault(split, None)
        rel = self.relative(item.reference_id)
        rows = self.rows(item, w, h)
        root = self.label_roots.get(split)
        if root is None:
            root = self.label_roots[split] = os.path.join(self.dst, "labels", split)
        label = contained_text(root, rel + ".txt", what="label path", item=item.reference_id, error=WriteError,
                               made_here=True)
        write_new_file(label, "".join([r + "\n" for r in rows]))
        if rows and (self.task is None or (self.task == "pose" and self.schema.names is None)):
            self.box_only_files.append(Path(label))  # fixed up once the task (or pose's schema) is known
        if self.options.media != "none":
            self.media(item, split, rel)
        return split, label

    def media(self, item: DatasetItem, split: str, rel: str) -> None:
        source, why = media_file(item.image_location, self.media_root)
        if source is None:  # labels are still written: report the image, as KITTI does
            self.report.drop("image file", f"{why}; not {'copied' if self.options.media == 'copy' else 'linked'} "
                             f"into images/{split}/")
            return
        target = contained(self.dst / "images" / split, rel + source.suffix.lower(), what="image path",
                           item=item.reference_id, error=WriteError)
        target.parent.mkdir(parents=True, exist_ok=True)
        if self.options.media == "copy":
            shutil.copyfile(source, target)
        else:
            os.symlink(os.path.abspath(source), target)

    def yaml(self) -> None:
        task = self.task or "detect"
        if task == "pose" and not self.schema.names:
            task = "detect"  # no keypoints were seen: the rows are plain boxes
        data: dict[str, Any] = {"path": "."}
        for split in self.splits or {self.options.split: None}:
            data[split] = f"images/{split}"
        data["nc"] = len(self.classes.names)
        data["names"] = dict(enumerate(self.classes.names))
        data["task"] = task
        if task == "pose":
            k = len(self.schema.names or ())
            data["kpt_shape"] = [k, 3]
            flip = self.info.get("flip_idx")
            if isinstance(flip, list) and len(flip) == k:
                data["flip_idx"] = flip
            names = {self.classes.index[c]: n for c, (n, _) in self.schema.per_class.items() if c in self.classes.index}
            if names:
                data["kpt_names"] = names
            skel = {self.classes.index[c]: [list(e) for e in s] for c, (_, s) in self.schema.per_class.items()
                    if s and c in self.classes.index}
            if skel:
                data["skeleton"] = skel
        (self.dst / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True),
                                            encoding="utf-8")


def write(dataset: Dataset, destination: Path, options: Any, context: Context) -> None:
    destination.mkdir(parents=True)
    writer = _Writer(dataset, destination, options, context)
    for item in dataset.items:
        writer.item(item)
    writer.yaml()


@dataclass(slots=True)
class WrittenLabel:
    """What the driver needs of an item whose label file a worker wrote (``Format.parts``)."""

    split: str
    task: str | None  # the task its rows were written for; None: box rows, before any task was known
    waiting: str | None  # the file (relative to the destination) when its box rows wait for the task
    decides: str | None = None  # task=auto: the task this item decided in its part
    met: list[tuple[str, int]] | None = None  # labels beyond the header met here, and the ids written
    adopted: list[Adoption] | None = None  # keypoint schemas adopted here


def write_part(items: Iterable[DatasetItem], destination: Path, options: Any, dataset: Dataset,
               context: Context) -> list[WrittenLabel]:
    """In a worker: the one-process writer on one part's items, from the same start; returns
    what :func:`finish` needs to replay the part's choices in order."""
    destination.mkdir(parents=True, exist_ok=True)
    writer = _Writer(dataset, destination, options, context)
    writer.classes.met, writer.schema.adopted = [], []
    out: list[WrittenLabel] = []
    files: list[str] = []
    last = None
    for item in items:
        task = writer.task
        split, label = writer.item(item)
        done = WrittenLabel(split, writer.task, None)
        if task is None and writer.task is not None:
            done.decides = writer.task
        if writer.classes.met:
            done.met, writer.classes.met = writer.classes.met, []
        if writer.schema.adopted:
            done.adopted, writer.schema.adopted = writer.schema.adopted, []
        if done == last:  # one object for equal results: pickled once, for the driver to unpickle once
            done = last
        last = done
        out.append(done)
        files.append(label)
    waiting = {str(p) for p in writer.box_only_files}  # never fixed up in this part: the task (or pose schema) came later
    if waiting:
        for i, (done, label) in enumerate(zip(out, files)):
            path = Path(label)  # as box_only_files holds it
            if str(path) in waiting:
                out[i] = WrittenLabel(done.split, None, path.relative_to(destination).as_posix(), done.decides,
                                      done.met, done.adopted)
    return out


def finish(written: Iterable[WrittenLabel], dataset: Dataset, destination: Path, options: Any,
           context: Context) -> None:
    """In the driver, over every item's :class:`WrittenLabel` in order: the task, classes and
    schema as one process meets them, the waiting files fixed up, then ``data.yaml``.

    Raises:
        PartsDiffer: a part chose otherwise than the parts before it (see the module docstring).
    """
    destination.mkdir(parents=True, exist_ok=True)
    writer = _Writer(dataset, destination, options, context)
    waiting: list[Path] = []
    for done in written:
        writer.splits.setdefault(done.split, None)
        for label, names, skeleton, first in done.adopted or ():
            if first and writer.schema.names is not None and names != writer.schema.names:
                raise PartsDiffer(f"a part adopted the keypoint schema {names} after {writer.schema.names}")
            writer.schema.adopt(label, names, skeleton)
        if done.decides is not None and writer.task is None:
            writer.task = done.decides
        if done.task is not None and done.task != writer.task:
            raise PartsDiffer(f"a part wrote task {done.task} where the items before it chose {writer.task}")
        for label, cid in done.met or ():
            if writer.classes.id(label) != cid:
                raise PartsDiffer(f"a part numbered label {label!r} {cid}, the items before it "
                                  f"{writer.classes.index[label]}")
        if done.waiting is not None:
            waiting.append(destination / done.waiting)
        if waiting and writer.task is not None and (writer.task != "pose" or writer.schema.names is not None):
            writer.fix_up(waiting)
            waiting = []
    writer.yaml()


def lead(written: list[WrittenLabel], options: Any) -> Any:
    """After the driver wrote the first items (``Parts.lead``): ``task=auto`` fixed to the task
    they chose, so that every part writes the rest for it."""
    if options.task != "auto":
        return options
    task = next((done.decides for done in written if done.decides is not None), None)
    return options if task is None else options.model_copy(update={"task": task})
