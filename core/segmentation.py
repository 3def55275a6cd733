"""The three views of segmentation masks, and one operation that maps between them.

Views (as in Nucleus's segmentation guide — scaleapi/nucleus-python-client
``nucleus/annotation.py``, ``SegmentationAnnotation`` — and cocodataset/panopticapi ``README.md``):

* **panoptic**: the item's one :class:`SegmentationAnnotation` whose index mask holds one
  value per *segment* (every thing instance and every stuff region its own value) with a
  :class:`Segment` per value (label, ``attributes``: ``category_id``, ``isthing``,
  ``iscrowd``...). COCO panoptic PNGs read as this view.
* **instance**: one :class:`ObjectMaskAnnotation` (COCO RLE, column-major) per thing
  instance. Stuff is kept as one mask per stuff *category* (``stuff="category"``, the
  default), dropped (``stuff="drop"``, ``--things-only``), or merged into one mask labelled
  ``background`` (``stuff="background"``). Annotation ids (and ``group_id``, which the
  coco writer uses as the COCO id) are numbered from 1 over the dataset (COCO id 0 breaks
  pycocotools matching). ``area`` and ``bbox`` are recomputed from the pixels.
* **semantic**: a :class:`SegmentationAnnotation` with one value per *class* and a
  :class:`Segment` per class present in the item: value = 1-based position of the class in
  ``header.categories`` (or in ``classes`` when given), 0 = ``background`` (a Segment
  ``background`` at index 0 labels unlabelled pixels, as in Nucleus's example; a class
  named ``background`` is that value). Instance identity is lost; the metadata of a
  class's segments is carried when they agree, else reported. ``bits=8`` (Nucleus-style, at most 255 classes besides void; more is an
  error) or ``bits=16`` (up to 65535 classes).

What "background merged" means (the Nucleus guide's example: a COCO image with 11 segments,
background, building, tree, wall, fence, pavement, person, handbag and three birds): the
instance view keeps every *countable* object as its own mask (building, tree, person,
handbag and each bird: 7) and merges everything amorphous (background, wall, fence,
pavement: the stuff) into one ``background`` mask: 8 masks with ``stuff="background"``.
The semantic view merges the three birds: 9 classes. Whether a segment is a thing comes
from ``Segment.attributes["isthing"]``, else from its category's ``attributes["isthing"]``,
else it is taken to be a thing.

Sources: an item is converted from its ground-truth ``SegmentationAnnotation`` when it has
one (panoptic or semantic index mask), else from its ``ObjectMaskAnnotation`` and
``PolygonAnnotation`` objects (instance view; polygons are rasterised with pycocotools and
need the item's width and height). Other annotations (boxes, keypoints...) pass through
unchanged; predictions are converted the same way as ground truth. An instance source
stays as it is in the instance view, except that ``things_only`` drops its stuff objects.

Rasterising instances into one mask (instance -> panoptic or semantic) cannot hold
overlaps: two objects covering one pixel is an error naming both annotations unless
``overlap="keep-first"`` (the earlier object keeps the pixel) or ``"keep-last"``. For the
semantic view only overlaps between *different* classes matter. Crowd flags (``iscrowd``)
are kept on the panoptic segments.

Everything here is pure: :func:`consolidate_item` maps one :class:`DatasetItem` to another
and returns counts of what it dropped; :func:`consolidate` streams a :class:`Dataset`
through it (via ``context.map`` so ``--workers`` parallelises it) and records the counts
in the conversion report. Masks are processed as runs of equal values (one pass over the
pixels, no per-segment full-image scans).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from annobridge.core.errors import FormatError, UnsupportedAnnotationError, WriteError
from annobridge.core.formats import Context
from annobridge.core.model import (
    Category,
    Dataset,
    DatasetHeader,
    DatasetItem,
    IndexMask,
    ObjectMaskAnnotation,
    Segment,
    SegmentationAnnotation,
)

Task = Literal["panoptic", "instance", "semantic"]
Overlap = Literal["error", "keep-first", "keep-last"]
Stuff = Literal["category", "background", "drop"]

TASKS: tuple[str, ...] = ("panoptic", "instance", "semantic")
OVERLAPS: tuple[str, ...] = ("error", "keep-first", "keep-last")
BACKGROUND = "background"

# Segment/object attributes that are recomputed from pixels when a view is built.
_GEOMETRY_KEYS = frozenset({"area", "bbox"})


# --------------------------------------------------------------------------- run helpers


def mask_runs(array: np.ndarray, *, order: Literal["C", "F"] = "C",
              split_rows: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of equal values of a 2D array in row-major (``"C"``) or column-major (``"F"``) order.

    Args:
        array: a ``(height, width)`` integer array.
        order: ``"C"`` walks rows (x fastest), ``"F"`` walks columns (y fastest, COCO RLE).
        split_rows: also start a run at every row (C) or column (F) start, so each run lies
            in one row/column (needed for bounding boxes).

    Returns:
        ``(values, starts, lengths)``: one entry per run; starts are flat offsets in ``order``.
    """
    h, w = array.shape
    flat = array.ravel(order="C") if order == "C" else np.ascontiguousarray(array.T).ravel()
    n = flat.size
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return flat[:0], empty, empty
    change = np.empty(n, dtype=bool)
    change[0] = True
    np.not_equal(flat[1:], flat[:-1], out=change[1:])
    if split_rows:
        change[:: (w if order == "C" else h)] = True
    starts = np.flatnonzero(change)
    lengths = np.diff(np.append(starts, n))
    return flat[starts], starts, lengths


@dataclass(frozen=True)
class MaskStats:
    """Per value of an index mask: pixel count and COCO box ``[x, y, w, h]`` (pixels)."""

    ids: np.ndarray
    areas: np.ndarray
    bboxes: np.ndarray  # (k, 4) int64 x, y, w, h

    def as_dict(self) -> dict[int, tuple[int, list[int]]]:
        return {int(i): (int(a), [int(v) for v in b])
                for i, a, b in zip(self.ids, self.areas, self.bboxes)}


def mask_stats(array: np.ndarray) -> MaskStats:
    """Distinct values of ``array`` with their pixel counts and tight boxes, in one pass."""
    h, w = array.shape
    values, starts, lengths = mask_runs(array, split_rows=True)
    ids, inv = np.unique(values, return_inverse=True)
    k = ids.size
    areas = np.bincount(inv, weights=lengths, minlength=k).astype(np.int64)
    rows = starts // max(w, 1)
    x0 = starts - rows * w
    x1 = x0 + lengths
    bx0 = np.full(k, w, dtype=np.int64)
    by0 = np.full(k, h, dtype=np.int64)
    bx1 = np.zeros(k, dtype=np.int64)
    by1 = np.zeros(k, dtype=np.int64)
    np.minimum.at(bx0, inv, x0)
    np.minimum.at(by0, inv, rows)
    np.maximum.at(bx1, inv, x1)
    np.maximum.at(by1, inv, rows + 1)
    bboxes = np.stack([bx0, by0, bx1 - bx0, by1 - by0], axis=1) if k else np.zeros((0, 4), np.int64)
    return MaskStats(ids=ids, areas=areas, bboxes=bboxes)


def _key_of_values(values: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    """Map each value to ``mapping[value]``; values not in ``mapping`` give -1."""
    if not mapping:
        return np.full(values.shape, -1, dtype=np.int64)
    src = np.fromiter(mapping.keys(), dtype=np.int64, count=len(mapping))
    dst = np.fromiter(mapping.values(), dtype=np.int64, count=len(mapping))
    order = np.argsort(src)
    src, dst = src[order], dst[order]
    pos = np.searchsorted(src, values)
    pos_c = np.minimum(pos, src.size - 1)
    found = src[pos_c] == values
    return np.where(found, dst[pos_c], -1)


def relabel(array: np.ndarray, mapping: dict[int, int],
            dtype: Any = np.uint32) -> tuple[np.ndarray, set[int]]:
    """A new mask where each value ``v`` becomes ``mapping[v]`` and unmapped values become 0.

    Returns:
        ``(mask, present)``: the relabelled mask and the set of non-zero values in it.
    """
    values, _, lengths = mask_runs(array)
    keys = _key_of_values(values.astype(np.int64), mapping)
    keys[keys < 0] = 0
    present = set(np.unique(keys).tolist()) - {0}
    return np.repeat(keys.astype(dtype), lengths).reshape(array.shape), present


def rle_by_key(array: np.ndarray, mapping: dict[int, int]) -> dict[int, dict[str, Any]]:
    """Compressed COCO RLEs, one per key, of the pixels whose value maps to that key.

    Args:
        array: ``(height, width)`` index mask.
        mapping: mask value -> key; several values may share a key (their pixels merge);
            values not in ``mapping`` belong to no key.

    Returns:
        key -> ``{"size": [h, w], "counts": bytes}`` for every key that has pixels.
    """
    from pycocotools import mask as mask_utils

    h, w = array.shape
    n = h * w
    values, starts, _ = mask_runs(array, order="F")
    keys = _key_of_values(values.astype(np.int64), mapping)
    # merge neighbouring runs that now share a key
    if keys.size:
        keep = np.empty(keys.size, dtype=bool)
        keep[0] = True
        np.not_equal(keys[1:], keys[:-1], out=keep[1:])
        keys, starts = keys[keep], starts[keep]
    ends = np.append(starts[1:], n)
    sel = keys >= 0
    keys, starts, ends = keys[sel], starts[sel], ends[sel]
    order = np.argsort(keys, kind="stable")
    keys, starts, ends = keys[order], starts[order], ends[order]
    out: dict[int, dict[str, Any]] = {}
    if not keys.size:
        return out
    bounds = np.flatnonzero(np.diff(keys)) + 1
    for s, e, k in zip(np.split(starts, bounds), np.split(ends, bounds), keys[np.append(0, bounds)]):
        prev = np.empty_like(e)
        prev[0] = 0
        prev[1:] = e[:-1]
        counts = np.empty(2 * s.size + 1, dtype=np.int64)
        counts[0:-1:2] = s - prev
        counts[1::2] = e - s
        counts[-1] = n - e[-1]
        out[int(k)] = mask_utils.frPyObjects({"size": [h, w], "counts": counts.tolist()}, h, w)
    return out


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class ConsolidationPlan:
    """Everything :func:`consolidate_item` needs besides the item (picklable, built once)."""

    task: Task
    stuff: Stuff = "category"
    overlap: Overlap = "error"
    bits: int = 8
    categories_by_id: dict[int, tuple[str, int | None]] = field(default_factory=dict)
    categories_by_name: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    class_index: dict[str, int] = field(default_factory=dict)

    def category_of(self, label: str, attributes: dict[str, Any]) -> tuple[int | None, int]:
        """``(category_id, isthing)`` of a segment or object (isthing defaults to 1)."""
        cid = attributes.get("category_id")
        isthing = attributes.get("isthing")
        cat_isthing = None
        if isinstance(cid, int) and cid in self.categories_by_id:
            cat_isthing = self.categories_by_id[cid][1]
        elif label in self.categories_by_name:
            cid, cat_isthing = self.categories_by_name[label]
        if isthing is None:
            isthing = cat_isthing
        return (cid if isinstance(cid, int) else None), (1 if isthing is None else int(bool(isthing)))


def make_plan(header: DatasetHeader, task: str, *, things_only: bool = False,
              stuff: str | None = None, overlap: str = "error", bits: int = 8,
              classes: Sequence[str] | None = None) -> ConsolidationPlan:
    """Check the options and build the plan for ``task`` from the dataset header.

    Raises:
        FormatError: an unknown task/overlap/stuff value, ``things_only`` with another
            ``stuff`` mode, or more classes than the semantic mask's bits can hold.
    """
    if task not in TASKS:
        raise FormatError(f"unknown segmentation task {task!r}", fix=f"choose one of {', '.join(TASKS)}")
    if overlap not in OVERLAPS:
        raise FormatError(f"unknown overlap policy {overlap!r}", fix=f"choose one of {', '.join(OVERLAPS)}")
    if things_only:
        if stuff not in (None, "drop"):
            raise FormatError(f"things-only drops stuff, it cannot also keep it as {stuff!r}")
        stuff = "drop"
    stuff = stuff or "category"
    if stuff not in ("category", "background", "drop"):
        raise FormatError(f"unknown stuff mode {stuff!r}", fix="choose category, background or drop")
    if bits not in (8, 16):
        raise FormatError(f"semantic masks are 8 or 16 bits, got {bits}")
    by_id: dict[int, tuple[str, int | None]] = {}
    by_name: dict[str, tuple[int, int | None]] = {}
    for cat in header.categories:
        isthing = cat.attributes.get("isthing")
        isthing = None if isthing is None else int(bool(isthing))
        by_id[cat.id] = (cat.name, isthing)
        by_name.setdefault(cat.name, (cat.id, isthing))
    names = list(classes) if classes is not None else list(dict.fromkeys(c.name for c in header.categories))
    class_index: dict[str, int] = {}
    if task == "semantic":
        limit = (1 << bits) - 1
        if len([n for n in names if n != BACKGROUND]) > limit:
            raise FormatError(
                f"{len(names)} classes do not fit in an {bits}-bit semantic mask "
                f"(at most {limit} classes; 0 is void)",
                fix="ask for 16-bit semantic masks (bits=16)" if bits == 8 else "merge classes",
            )
        # 0 is background, as in Nucleus's example ({"label": "bg", "index": 0})
        class_index = {name: i for i, name in enumerate((n for n in names if n != BACKGROUND), start=1)}
        if BACKGROUND in names:
            class_index[BACKGROUND] = 0
    return ConsolidationPlan(task=task, stuff=stuff, overlap=overlap, bits=bits,  # type: ignore[arg-type]
                             categories_by_id=by_id, categories_by_name=by_name,
                             class_index=class_index)


# --------------------------------------------------------------------------- item level


def consolidate_item(item: DatasetItem, plan: ConsolidationPlan) -> tuple[DatasetItem, Counter[str]]:
    """``item`` in the view ``plan.task``, and counts of what could not be kept.

    Pure: the input item is not modified. Object masks of the instance view get no
    ``annotation_id`` here; :func:`consolidate` numbers them over the dataset.

    Raises:
        UnsupportedAnnotationError: overlapping objects under ``overlap="error"``.
        WriteError: a label that is not among the semantic classes; a polygon on an item
            without width/height.
    """
    drops: Counter[str] = Counter()
    update: dict[str, Any] = {}
    for field_name in ("annotations", "predictions"):
        anns = getattr(item, field_name)
        new = _convert_list(item, anns, plan, drops)
        if new is not None:
            update[field_name] = new
    if not update:
        return item, drops
    return item.model_copy(update=update), drops


def _convert_list(item: DatasetItem, anns: list[Any], plan: ConsolidationPlan,
                  drops: Counter[str]) -> list[Any] | None:
    seg = next((a for a in anns if a.type == "segmentation"), None)
    objects = [a for a in anns if a.type in ("object_mask", "polygon")]
    if seg is not None:
        if plan.task == "panoptic":
            return None
        rest = [a for a in anns if a is not seg]
        if plan.task == "instance":
            return rest + _segmentation_to_instances(item, seg, plan, drops)
        return rest + [_segmentation_to_semantic(item, seg, plan, drops)]
    if plan.task == "instance" and plan.stuff == "drop" and objects:
        kept = [a for a in anns if a.type not in ("object_mask", "polygon")
                or plan.category_of(a.label, a.attributes)[1]]
        if len(kept) == len(anns):
            return None
        drops["object:stuff"] += len(anns) - len(kept)
        return kept
    if not objects or plan.task == "instance":
        return None
    rest = [a for a in anns if a.type not in ("object_mask", "polygon")]
    return rest + [_instances_to_index_mask(item, objects, plan, drops)]


def _pixels(mask: IndexMask) -> np.ndarray:
    """The mask's array without keeping it on ``mask`` (the caller may hold many items)."""
    if mask.is_loaded:
        return mask.load()
    array = mask.load()
    mask._array = None  # noqa: SLF001 - leave a lazy mask lazy
    return array


def _segmentation_to_instances(item: DatasetItem, seg: SegmentationAnnotation,
                               plan: ConsolidationPlan, drops: Counter[str]) -> list[ObjectMaskAnnotation]:
    from pycocotools import mask as mask_utils

    array = _pixels(seg.mask)
    mapping: dict[int, int] = {}
    # key -> (label, category_id, attributes, metadata)
    keys: list[tuple[str, int | None, dict[str, Any], dict[str, Any]]] = []
    stuff_keys: dict[str, int] = {}
    for s in seg.annotations:
        cid, isthing = plan.category_of(s.label, s.attributes)
        if isthing:
            mapping[s.index] = len(keys)
            attrs = {k: v for k, v in s.attributes.items() if k not in _GEOMETRY_KEYS and k != "isthing"}
            if cid is not None:
                attrs["category_id"] = cid
            attrs.setdefault("iscrowd", 0)
            keys.append((s.label, cid, attrs, dict(s.metadata)))
            continue
        if plan.stuff == "drop":
            drops["segment:stuff"] += 1
            continue
        label = s.label if plan.stuff == "category" else BACKGROUND
        if label not in stuff_keys:
            stuff_keys[label] = len(keys)
            scid = cid if plan.stuff == "category" else plan.categories_by_name.get(BACKGROUND, (None, None))[0]
            attrs = {"iscrowd": 0}
            if scid is not None:
                attrs = {"category_id": scid, "iscrowd": 0}
            keys.append((label, scid, attrs, {}))
        mapping[s.index] = stuff_keys[label]
    rles = rle_by_key(array, mapping)
    h, w = array.shape
    out: list[ObjectMaskAnnotation] = []
    for k, (label, _cid, attrs, metadata) in enumerate(keys):
        rle = rles.get(k)
        if rle is None:
            drops["segment:empty"] += 1
            continue
        area = int(mask_utils.area(rle))
        bbox = [int(v) for v in mask_utils.toBbox(rle)]
        attributes = dict(attrs)
        attributes["area"] = area
        attributes["bbox"] = bbox
        out.append(ObjectMaskAnnotation.model_construct(
            label=label, size=(h, w), counts=rle["counts"].decode("ascii"),
            reference_id=item.reference_id, attributes=attributes, metadata=metadata,
        ))
    return out


def _segmentation_to_semantic(item: DatasetItem, seg: SegmentationAnnotation,
                              plan: ConsolidationPlan, drops: Counter[str]) -> SegmentationAnnotation:
    array = _pixels(seg.mask)
    mapping: dict[int, int] = {}
    by_class: dict[int, list[dict[str, Any]]] = {}
    for s in seg.annotations:
        mapping[s.index] = _class_of(item, s.label, plan)
        by_class.setdefault(mapping[s.index], []).append(s.metadata)
    # a class's segments become one: their metadata is carried when they agree
    metadata = {}
    for idx, mds in by_class.items():
        if all(md == mds[0] for md in mds):
            metadata[idx] = mds[0]
        else:
            drops["segment metadata"] += sum(1 for md in mds if md)
    semantic, present = relabel(array, mapping)
    return _semantic_annotation(item, seg, semantic, present, plan, metadata)


def _class_of(item: DatasetItem, label: str, plan: ConsolidationPlan) -> int:
    idx = plan.class_index.get(label)
    if idx is None:
        raise WriteError(
            f"label {label!r} is not among the {len(plan.class_index)} semantic classes",
            item=item.reference_id,
            fix="add the label to the dataset's categories, or pass classes=[...]",
        )
    return idx


def _semantic_annotation(item: DatasetItem, like: Any, semantic: np.ndarray, present: set[int],
                         plan: ConsolidationPlan,
                         metadata: dict[int, dict[str, Any]] | None = None) -> SegmentationAnnotation:
    names = {i: n for n, i in plan.class_index.items()}
    names[0] = BACKGROUND
    if not semantic.all():  # unlabelled pixels are background, index 0
        present = {0} | present
    segments = []
    for idx in sorted(present):
        name = names[idx]
        attrs: dict[str, Any] = {}
        cat = plan.categories_by_name.get(name)
        if cat is not None:
            attrs["category_id"] = cat[0]
            if cat[1] is not None:
                attrs["isthing"] = cat[1]
        segments.append(Segment.model_construct(label=name, index=idx, attributes=attrs,
                                                metadata=dict((metadata or {}).get(idx) or {})))
    return SegmentationAnnotation.model_construct(
        # encoded here, in the worker with --workers: the main process only writes bytes
        mask=IndexMask.encoded(semantic), annotations=segments,
        reference_id=item.reference_id, annotation_id=getattr(like, "annotation_id", None),
    )


def _object_array(item: DatasetItem, ann: Any) -> np.ndarray:
    from pycocotools import mask as mask_utils

    if ann.type == "object_mask":
        return ann.to_array()
    if item.width is None or item.height is None:
        raise WriteError("a polygon can only be rasterised on an item with width and height",
                         item=item.reference_id, fix="give the item its image size")
    h, w = item.height, item.width
    rles = mask_utils.frPyObjects([list(map(float, r)) for r in ann.rings], h, w)
    return mask_utils.decode(mask_utils.merge(rles))


def _describe(ann: Any, k: int) -> str:
    aid = f"annotation {ann.annotation_id!r}" if ann.annotation_id else f"annotation #{k}"
    return f"{aid} ({ann.type} {ann.label!r})"


def _instances_to_index_mask(item: DatasetItem, objects: list[Any], plan: ConsolidationPlan,
                             drops: Counter[str]) -> SegmentationAnnotation:
    """Rasterise objects into one mask: segment per object (panoptic) or per class (semantic)."""
    out: np.ndarray | None = None
    owner: list[int] = []  # index value -> position in objects (panoptic)
    semantic = plan.task == "semantic"
    for k, ann in enumerate(objects):
        m = _object_array(item, ann).astype(bool, copy=False)
        if out is None:
            out = np.zeros(m.shape, dtype=np.uint32)
        elif m.shape != out.shape:
            raise WriteError(f"{_describe(ann, k)} has size {m.shape}, the item's other masks {out.shape}",
                             item=item.reference_id)
        value = _class_of(item, ann.label, plan) if semantic else k + 1
        taken = out[m]
        clash = taken[(taken != 0) & (taken != value)] if semantic else taken[taken != 0]
        if clash.size:
            if plan.overlap == "error":
                other = int(clash[0])
                if semantic:
                    names = {i: n for n, i in plan.class_index.items()}
                    first = next(j for j, a in enumerate(objects[:k])
                                 if a.label == names[other] and (_object_array(item, a).astype(bool) & m).any())
                else:
                    first = other - 1
                raise UnsupportedAnnotationError(
                    f"{_describe(objects[first], first)} and {_describe(ann, k)} overlap on "
                    f"{int(clash.size)} pixels; a {plan.task} mask holds one value per pixel",
                    item=item.reference_id,
                    fix="pass overlap=keep-first or overlap=keep-last (--overlap) to choose",
                )
            drops["pixel:overlap"] += int(clash.size)
            if plan.overlap == "keep-first":
                m = m & (out == 0) if not semantic else m & ((out == 0) | (out == value))
        out[m] = value
        owner.append(k)
    assert out is not None
    if semantic:
        present = set(np.unique(out).tolist()) - {0}
        return _semantic_annotation(item, None, out, present, plan)
    present = set(np.unique(out).tolist())
    segments = []
    for k, ann in enumerate(objects):
        if k + 1 not in present:
            drops[f"{ann.type}:hidden by overlap"] += 1
            continue
        cid, isthing = plan.category_of(ann.label, ann.attributes)
        attrs = {key: v for key, v in ann.attributes.items() if key not in _GEOMETRY_KEYS}
        if cid is not None:
            attrs["category_id"] = cid
        attrs.setdefault("iscrowd", 0)
        attrs["isthing"] = isthing
        segments.append(Segment.model_construct(label=ann.label, index=k + 1, attributes=attrs,
                                                metadata=dict(ann.metadata)))
    return SegmentationAnnotation.model_construct(
        mask=IndexMask.from_array(out), annotations=segments, reference_id=item.reference_id,
    )


# --------------------------------------------------------------------------- dataset level


def _one(plan: ConsolidationPlan, item: DatasetItem) -> tuple[DatasetItem, Counter[str]]:
    return consolidate_item(item, plan)


def consolidate(
    dataset: Dataset,
    task: str,
    *,
    things_only: bool = False,
    stuff: str | None = None,
    overlap: str = "error",
    bits: int = 8,
    classes: Sequence[str] | None = None,
    context: Context | None = None,
) -> Dataset:
    """``dataset`` in another segmentation view, streamed (see the module docstring).

    Args:
        dataset: any dataset; items are consumed lazily.
        task: ``"panoptic"``, ``"instance"`` or ``"semantic"``.
        things_only: instance view without stuff (same as ``stuff="drop"``).
        stuff: instance view: ``"category"`` (one mask per stuff category, default),
            ``"background"`` (all stuff in one ``background`` mask) or ``"drop"``.
        overlap: ``"error"``, ``"keep-first"`` or ``"keep-last"`` for overlapping objects.
        bits: semantic masks of 8 (Nucleus style) or 16 bits.
        classes: semantic class order (default: the header's category names).
        context: runs per-item work through ``context.map`` (``workers``) and records drops
            in ``context.report``.

    Returns:
        A new :class:`Dataset` with the same header (plus a ``background`` category when
        stuff is merged into one and the header has none) and lazily converted items.

    Raises:
        FormatError: bad options (raised at once, before any item is read).
    """
    plan = make_plan(dataset.header, task, things_only=things_only, stuff=stuff,
                     overlap=overlap, bits=bits, classes=classes)
    header = dataset.header
    if plan.task == "instance" and plan.stuff == "background" and header.category_named(BACKGROUND) is None:
        next_id = max((c.id for c in header.categories), default=0) + 1
        header = header.model_copy(update={"categories": [
            *header.categories,
            Category(id=next_id, name=BACKGROUND, supercategory=BACKGROUND, attributes={"isthing": 0}),
        ]})
        plan = make_plan(header, task, stuff="background", overlap=overlap, bits=bits, classes=classes)
    ctx = context or Context()
    return Dataset(header=header, items=_stream(dataset.items, plan, ctx),
                   source=dataset.source, format=dataset.format, total=dataset.total)


def _stream(items: Iterable[DatasetItem], plan: ConsolidationPlan, ctx: Context) -> Iterator[DatasetItem]:
    next_id = 1
    report = ctx.report
    for item, drops in ctx.map(functools.partial(_one, plan), items):
        if plan.task == "instance":
            for ann in (*item.annotations, *item.predictions):
                if ann.type == "object_mask" and ann.annotation_id is None:
                    ann.annotation_id = str(next_id)
                    if ann.group_id is None:  # the coco writer takes integer group ids as COCO ids
                        ann.group_id = ann.annotation_id
                    next_id += 1
        for what, n in drops.items():
            report.drop(what, drop_reason(what, plan.task), n)
        yield item


def drop_reason(what: str, task: str) -> str:
    """Why :func:`consolidate_item` could not keep ``what`` (a key of its drop counts)."""
    return _REASONS.get(what, f"not kept in the {task} view")


_REASONS = {
    "segment:stuff": "things-only instance view keeps no stuff",
    "object:stuff": "things-only instance view keeps no stuff",
    "segment:empty": "segment has no pixels in the mask, so it has no object mask",
    "pixel:overlap": "overlapping objects: a single index mask keeps one object per pixel",
    "object_mask:hidden by overlap": "every pixel of the object was taken by another object",
    "polygon:hidden by overlap": "every pixel of the object was taken by another object",
    "segment metadata": "the semantic view merges a class's segments, whose metadata differ",
}
