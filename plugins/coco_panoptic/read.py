"""Reading COCO panoptic JSON and checking its PNGs (the mapping is in the package docstring)."""

from __future__ import annotations

import functools
import json
import os
import re
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from annobridge.core.errors import ReadError
from annobridge.core.formats import Context, Shards
from annobridge.core.limits import _has_long_integer, json_decoder, load_json, load_json_lazily, open_image
from annobridge.core.masks import rgb_ids
from annobridge.core.model import (
    Category,
    Dataset,
    DatasetHeader,
    DatasetItem,
    IndexMask,
    Segment,
    SegmentationAnnotation,
    construct,
    construct_with_defaults,
)
from annobridge.core.paths import contained
from annobridge.core.segmentation import mask_runs
from annobridge.plugins.coco_panoptic.common import INFO_KEY, MAX_ID, _is_int, _masks_dir, keep_decoded, take_decoded

if TYPE_CHECKING:
    from annobridge.plugins.coco_panoptic import PanopticReadOptions

_DECODER = json_decoder()  # refuses NaN, Infinity, 1e400 and huge integers
_WS = re.compile(r"[ \t\n\r]*")


class _LazyArray(Sequence):
    """A JSON array kept undecoded: each element is parsed when it is accessed (and not kept).

    The panoptic JSON is held as its bytes plus one reference per element (msgspec ``Raw``
    views, or offsets into the text on the fallback path) instead of as Python objects (about
    five times smaller), so memory grows with the file, not with its parse.

    Args:
        elements: one entry per element, handed to ``decode`` with its index.
        decode: ``(index, entry) -> value``.
    """

    def __init__(self, elements: Sequence[Any], decode: Callable[[int, Any], Any]) -> None:
        self._elements = elements
        self._decode = decode

    def __len__(self) -> int:
        return len(self._elements)

    def __getitem__(self, k: int) -> Any:  # type: ignore[override]
        return self._decode(k, self._elements[k])

    def __iter__(self) -> Iterator[Any]:
        decode = self._decode
        for k, entry in enumerate(self._elements):
            yield decode(k, entry)


_ANY = msgspec.json.Decoder()


def _typed(raw: bytes, path: Path) -> dict[str, Any] | None:
    """The top-level object (:func:`core.limits.load_json_lazily`), ``images``/``annotations``
    as :class:`_LazyArray` of ``Raw`` views into ``raw`` (checked JSON, numbers decoded only
    when an element is).

    None when the document is refused, is not an object, or lacks either list (the caller
    falls back). A number msgspec refuses inside an element (``1e400``) is found when the
    element is decoded: :func:`load_json` then names it with the element's JSON pointer.
    """
    top = load_json_lazily(raw, "images", "annotations")
    if top is None:
        return None
    for key in ("images", "annotations"):
        top[key] = _LazyArray(top[key], _element_decoder(path, key))
    return top


def _element_decoder(path: Path, key: str) -> Callable[[int, msgspec.Raw], Any]:
    def decode(k: int, raw: msgspec.Raw) -> Any:
        try:
            return _ANY.decode(raw)
        except (msgspec.DecodeError, RecursionError):  # refused: the strict loader names why
            return load_json(bytes(raw), file=path, where=f"#/{key}/{k}")

    return decode


def _scan(text: str) -> dict[str, Any] | None:
    """The top-level object with ``images``/``annotations`` as :class:`_LazyArray`; every other
    value parsed. None when the text is not a plain JSON object (the caller falls back to
    ``json.loads``, which reports the error)."""
    ws = _WS.match
    try:
        i = ws(text, 0).end()
        if text[i : i + 1] != "{":
            return None
        out: dict[str, Any] = {}
        i = ws(text, i + 1).end()
        if text[i : i + 1] == "}":
            return out
        while True:
            key, i = _DECODER.raw_decode(text, i)
            i = ws(text, i).end()
            if not isinstance(key, str) or text[i : i + 1] != ":":
                return None
            i = ws(text, i + 1).end()
            if key in ("images", "annotations") and text[i : i + 1] == "[":
                offsets = array("q")
                i = ws(text, i + 1).end()
                if text[i : i + 1] == "]":
                    i += 1
                else:
                    while True:
                        offsets.append(i)
                        _, i = _DECODER.raw_decode(text, i)
                        i = ws(text, i).end()
                        c = text[i : i + 1]
                        i = ws(text, i + 1).end()
                        if c == "]":
                            break
                        if c != ",":
                            return None
                out[key] = _LazyArray(offsets, lambda _, start: _DECODER.raw_decode(text, start)[0])
            else:
                out[key], i = _DECODER.raw_decode(text, i)
            i = ws(text, i).end()
            c = text[i : i + 1]
            i = ws(text, i + 1).end()
            if c == "}":
                return out if i == len(text) else None
            if c != ",":
                return None
    except (json.JSONDecodeError, IndexError, RecursionError):
        return None


def _load(path: Path) -> Any:
    """The panoptic document with ``images``/``annotations`` decoded lazily: msgspec views (fast)
    unless a number has 19 digits or more (the standard-library scanner keeps such integers
    exact, as before); a document neither accepts goes to :func:`load_json`, which reports."""
    with open(path, "rb") as fh:
        raw = fh.read()
    if not _has_long_integer(raw):
        data = _typed(raw, path)
    else:
        try:
            data = _scan(raw.decode("utf-8"))
        except UnicodeDecodeError:
            data = None
    if data is None:  # not a plain object: let the strict loader report the problem
        data = load_json(raw, file=path)
    return data


def read(path: Path, options: PanopticReadOptions, context: Context) -> Dataset:
    """Read the JSON and yield one item per image, checking each PNG on the way.

    ``images`` and ``annotations`` stay JSON text until each element is needed.
    """
    header, data, masks, check = _parse(path, options, context)
    return Dataset(header=header, items=_items(path, data, masks, header.categories, context, check),
                   total=len(data["images"]))


def _parse(path: Path, options: PanopticReadOptions,
           context: Context) -> tuple[DatasetHeader, dict[str, Any], Path, bool]:
    data = _load(path)
    if not isinstance(data, dict):
        raise ReadError(f"top level is a {type(data).__name__}, expected an object with "
                        "images, annotations and categories", file=path)
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), (list, _LazyArray)):
            raise ReadError(f"{key!r} is missing or not a list", file=path, where=f"#/{key}",
                            fix="a COCO panoptic file has images, annotations and categories lists")
    categories = _read_categories(path, data["categories"], context)
    info = {k: v for k, v in data.items() if k not in ("images", "annotations", "categories")}
    header = DatasetHeader(categories=categories, info={INFO_KEY: info})
    masks = Path(options.masks) if options.masks else _masks_dir(path)
    if not masks.is_absolute() and options.masks:
        masks = path.parent / masks
    return header, data, masks, options.check_masks or context.collect_errors


def _read_categories(path: Path, raw: list[Any], context: Context) -> list[Category]:
    out: list[Category] = []
    seen: set[int] = set()
    for n, cat in enumerate(raw):
        where = f"#/categories/{n}"
        if not isinstance(cat, dict) or not _is_int(cat.get("id")) or not isinstance(cat.get("name"), str):
            context.error(ReadError("category needs an integer id and a string name", file=path, where=where))
            continue
        if cat["id"] in seen:
            context.error(ReadError(f"category id {cat['id']} appears twice", file=path, where=where))
            continue
        seen.add(cat["id"])
        isthing = cat.get("isthing", 0)
        if isthing not in (0, 1) or isinstance(isthing, float):
            context.error(ReadError(f"isthing is {cat['isthing']!r}, expected 0 or 1", file=path,
                                    where=f"{where}/isthing", fix="1 = countable thing, 0 = stuff"))
            continue
        attrs = {k: v for k, v in cat.items() if k not in ("id", "name", "supercategory")}
        sup = cat.get("supercategory")
        if sup is not None and not isinstance(sup, str):
            attrs["supercategory"] = sup
            sup = None
        out.append(Category(id=cat["id"], name=cat["name"], supercategory=sup, attributes=attrs))
    return out


class PanopticMask(IndexMask):
    """An :class:`IndexMask` on an RGB panoptic PNG that reuses the reader's decode.

    When the reader checks a PNG in this thread it keeps the decoded ids of that one PNG
    (``common.keep_decoded``); the first :meth:`load` of the same mask takes them instead of
    decoding the file again. Everywhere else (other processes, later loads) it is a plain
    lazy mask.
    """

    def load(self) -> np.ndarray:
        if self._array is None and self.location is not None:
            cached = take_decoded(self.location)
            if cached is not None:
                self._array = cached[0]
        return super().load()


@dataclass
class _ImagePlan:
    """One image as checked in the main process, plus the PNG check the worker does."""

    n: int
    image: dict[str, Any]
    reference_id: str
    ann_index: int | None = None
    ann: dict[str, Any] | None = None
    png: str | None = None
    segments: list[Segment] = field(default_factory=list)
    check: bool = True


def _items(path: Path, data: dict[str, Any], masks: Path, categories: list[Category],
           context: Context, check: bool = True) -> Iterator[DatasetItem]:
    for plan, result in context.map(_inspect_png, _plans(path, data, masks, categories, context, check)):
        yield _build_item(path, plan, result, context)


def shards(path: Path, options: PanopticReadOptions, context: Context) -> Shards:
    """The images, checked against the JSON, as units that workers read (decode their PNGs)
    apart (``converters/sharded.py``); a unit's file is its PNG, relative to the JSON's folder."""
    header, data, masks, check = _parse(path, options, context)
    plans = list(_plans(path, data, masks, header.categories, context, check, segments=False))
    root = path.parent
    for plan in plans:
        if plan.png is not None and Path(plan.png).is_relative_to(root):
            plan.png = Path(plan.png).relative_to(root).as_posix()
        elif plan.png is not None:
            plan.png = str(Path(plan.png).resolve())
    return Shards(units=plans, read=functools.partial(_read_part, path.name), root=root, header=header,
                  files=_png_of, total=len(plans))


def _png_of(plan: _ImagePlan) -> list[str]:
    return [plan.png] if plan.png is not None and not Path(plan.png).is_absolute() else []


def _read_part(name: str, root: Path, plans: list[_ImagePlan], header: DatasetHeader,
               context: Context) -> Iterator[DatasetItem]:
    path = root / name
    cats = {c.id: c for c in header.categories}
    for plan in plans:
        if plan.png is not None:
            plan.png = str(root / plan.png)
        _plan_segments(path, plan, cats, context)
        yield _build_item(path, *_inspect_png(plan), context)


def _plans(path: Path, data: dict[str, Any], masks: Path, categories: list[Category],
           context: Context, check: bool, segments: bool = True) -> Iterator[_ImagePlan]:
    """Each image's plan: its entry and its annotation checked, and (``segments``) the
    annotation's segments; without, :func:`_plan_segments` checks them where the PNG is read."""
    cats = {c.id: c for c in categories}
    images = data["images"]
    by_image: dict[Any, int] = {}
    image_ids: set[Any] = set()
    for m, img in enumerate(images):
        if isinstance(img, dict) and isinstance(img.get("id"), (int, str)):
            image_ids.add(img["id"])
    for k, ann in enumerate(data["annotations"]):
        where = f"#/annotations/{k}"
        if not isinstance(ann, dict) or not isinstance(ann.get("image_id"), (int, str)):
            context.error(ReadError("annotation needs an image_id", file=path, where=where))
            continue
        iid = ann["image_id"]
        if iid not in image_ids:
            context.error(ReadError(f"image_id {iid!r} is not in images", file=path, where=where,
                                    fix="add the image entry or remove the annotation"))
            continue
        if iid in by_image:
            context.error(ReadError(f"image_id {iid!r} has a second annotation "
                                    f"(the first is #/annotations/{by_image[iid]})",
                                    file=path, where=where, fix="a panoptic image has one annotation"))
            continue
        by_image[iid] = k

    def plans() -> Iterator[_ImagePlan]:
        seen_ids: set[Any] = set()
        for n, img in enumerate(images):
            where = f"#/images/{n}"
            if not isinstance(img, dict) or not isinstance(img.get("id"), (int, str)):
                context.error(ReadError("image needs an id", file=path, where=where))
                continue
            if img["id"] in seen_ids:
                context.error(ReadError(f"image id {img['id']!r} appears twice", file=path, where=where))
                continue
            seen_ids.add(img["id"])
            for key in ("width", "height"):
                if key in img and img[key] is not None and (not _is_int(img[key]) or img[key] < 0):
                    context.error(ReadError(f"{key} is {img[key]!r}, expected a non-negative integer",
                                            file=path, where=where))
                    img = {k: v for k, v in img.items() if k != key}
            ref = str(img["id"])
            plan = _ImagePlan(n=n, image=img, reference_id=ref, check=check)
            k = by_image.get(img["id"])
            if k is not None:
                _plan_annotation(path, masks, plan, k, data["annotations"][k], context)
                if segments:
                    _plan_segments(path, plan, cats, context)
            yield plan

    return plans()


def _plan_annotation(path: Path, masks: Path, plan: _ImagePlan, k: int, ann: dict[str, Any],
                     context: Context) -> None:
    where = f"#/annotations/{k}"
    fname = ann.get("file_name")
    infos = ann.get("segments_info")
    if not isinstance(fname, str) or not fname:
        context.error(ReadError("annotation has no PNG file_name", file=path, where=where,
                                item=plan.reference_id))
        return
    if not isinstance(infos, list):
        context.error(ReadError("segments_info is missing or not a list", file=path,
                                where=f"{where}/segments_info", item=plan.reference_id))
        return
    try:
        png = contained(masks, fname, what="file_name", file=path, where=where, item=plan.reference_id)
    except ReadError as exc:
        context.error(exc)
        return
    plan.ann_index, plan.ann, plan.png = k, ann, str(png)


def _plan_segments(path: Path, plan: _ImagePlan, cats: dict[int, Category], context: Context) -> None:
    """The segments of ``plan``'s annotation, checked (a worker's job when read in parts: the
    driver's listing stays short, and raw dicts cross to the workers faster than models)."""
    if plan.ann is None:
        return
    where = f"#/annotations/{plan.ann_index}"
    seen: dict[int, int] = {}
    plan.segments = []
    for j, info in enumerate(plan.ann["segments_info"]):  # decoded JSON: exact types (bool is not int)
        sid = info.get("id") if type(info) is dict else info
        if type(sid) is not int or not 0 < sid <= MAX_ID:
            context.error(ReadError(f"segment id is {sid!r}, expected an integer 1..{MAX_ID}",
                                    file=path, where=f"{where}/segments_info/{j}", item=plan.reference_id))
            continue
        if sid in seen:
            context.error(ReadError(f"segment id {sid} appears twice (first at segments_info/{seen[sid]})",
                                    file=path, where=f"{where}/segments_info/{j}", item=plan.reference_id,
                                    fix="segment ids are unique per image"))
            continue
        cid = info.get("category_id")
        cat = cats.get(cid) if type(cid) is int else None
        if cat is None:
            context.error(ReadError(f"segment {sid}: category_id {cid!r} is not in categories",
                                    file=path, where=f"{where}/segments_info/{j}", item=plan.reference_id,
                                    fix="add the category or fix the category_id"))
            continue
        problem = _segment_field_problem(info)
        if problem:
            context.error(ReadError(f"segment {sid}: {problem}", file=path,
                                    where=f"{where}/segments_info/{j}", item=plan.reference_id))
            continue
        seen[sid] = j
        attrs = dict(info)
        del attrs["id"]
        if "isthing" not in attrs and "isthing" in cat.attributes:
            attrs["isthing"] = cat.attributes["isthing"]
        plan.segments.append(construct(Segment, {"label": cat.name, "index": sid, "metadata": {},
                                                  "attributes": attrs}))


def _segment_field_problem(info: dict[str, Any]) -> str | None:
    """What is wrong with the types of a segment's ``bbox``, ``area``, ``iscrowd``, or None."""
    bbox = info.get("bbox")
    if bbox is not None and bbox != [] and not (type(bbox) is list and len(bbox) == 4
                                                and set(map(type, bbox)) <= _NUMBER_TYPES):
        # [] is what Mapillary Vistas (via datumaro) writes: kept as given
        return f"bbox is {bbox!r}, expected 4 numbers [x, y, width, height] (or [])"
    if "area" in info and type(info["area"]) not in _NUMBER_TYPES:
        return f"area is {info['area']!r}, expected a number of pixels"
    if "iscrowd" in info and (type(info["iscrowd"]) is not int or info["iscrowd"] not in (0, 1)):
        return f"iscrowd is {info['iscrowd']!r}, expected 0 or 1"
    return None


_NUMBER_TYPES = frozenset({int, float})
"""JSON numbers decode to exactly these types (``true`` is a bool, not an int)."""


def _inspect_png(plan: _ImagePlan) -> tuple[_ImagePlan, dict[str, Any] | None]:
    """Worker: decode a panoptic PNG and return its mode, size and id counts (no pixels)."""
    if plan.png is None:
        return plan, None
    if not plan.check:
        return plan, {"unchecked": True}
    if not os.path.lexists(plan.png):
        return plan, {"missing": True}
    try:
        with open_image(plan.png, what="panoptic PNG", item=plan.reference_id) as img:
            mode, size, fmt = img.mode, img.size, img.format
            iw, ih = plan.image.get("width"), plan.image.get("height")
            if mode not in ("RGB", "RGBA") or (iw is not None and iw != size[0]) or (ih is not None and ih != size[1]):
                return plan, {"mode": mode, "size": size}  # refused by _check_png, never decoded
            ids = rgb_ids(img)
    except ReadError as exc:
        return plan, {"unreadable": exc.problem}
    keep_decoded(plan.png, ids, mode == "RGB" and fmt == "PNG")
    values, _, lengths = mask_runs(ids)
    uniq, inv = np.unique(values, return_inverse=True)
    counts = np.bincount(inv, weights=lengths).astype(np.int64)
    return plan, {"mode": mode, "size": size, "ids": dict(zip(uniq.tolist(), counts.tolist()))}


def _build_item(path: Path, plan: _ImagePlan, result: dict[str, Any] | None,
                context: Context) -> DatasetItem:
    img = plan.image
    attrs = {k: v for k, v in img.items() if k not in ("id", "file_name", "width", "height")}
    if isinstance(img["id"], str):
        attrs["id"] = img["id"]  # a string id (the reference id alone would read back as int)
    fname = img.get("file_name")
    annotations: list[Any] = []
    if plan.ann is not None and result is not None:
        seg = _check_png(path, plan, result, context)
        if seg is not None:
            annotations.append(seg)
    return construct_with_defaults(DatasetItem, reference_id=plan.reference_id,
                                   image_location=fname if isinstance(fname, str) else None,
                                   width=img.get("width"), height=img.get("height"),
                                   attributes=attrs, annotations=annotations)


def _check_png(path: Path, plan: _ImagePlan, result: dict[str, Any],
               context: Context) -> SegmentationAnnotation | None:
    png = plan.png
    where = f"#/annotations/{plan.ann_index}"
    ref = plan.reference_id
    extra = {k: v for k, v in plan.ann.items() if k not in ("image_id", "segments_info")}
    if result.get("unchecked"):
        return construct_with_defaults(SegmentationAnnotation, mask=IndexMask(location=png, encoding="rgb"),
                                       annotations=list(plan.segments), reference_id=ref, attributes=extra)
    if result.get("missing"):
        context.error(ReadError("panoptic PNG does not exist", file=png, where=where, item=ref,
                                fix=f"put {plan.ann['file_name']} in the PNG folder or pass --option masks=DIR"))
        return None
    if "unreadable" in result:
        context.error(ReadError(result["unreadable"], file=png, item=ref))
        return None
    w, h = result["size"]
    iw, ih = plan.image.get("width"), plan.image.get("height")
    if (iw is not None and iw != w) or (ih is not None and ih != h):
        context.error(ReadError(f"PNG is {w}x{h}, the image entry says {iw}x{ih} (width x height)",
                                file=png, where=f"#/images/{plan.n}", item=ref,
                                fix="panoptic PNGs have the size of their image"))
        return None
    if "ids" not in result:
        context.error(ReadError(f"PNG has mode {result['mode']}, expected RGB (id = R + 256*G + 65536*B)",
                                file=png, where=where, item=ref,
                                fix="save panoptic masks as 8-bit RGB PNGs"))
        return None
    counts: dict[int, int] = result["ids"]
    listed = {s.index for s in plan.segments}
    for value, n in counts.items():
        if value != 0 and value not in listed:
            context.error(ReadError(f"PNG holds segment id {value} ({n} pixels) with no segments_info entry",
                                    file=png, where=f"{where}/segments_info", item=ref,
                                    fix="add the segment to segments_info or paint its pixels black (void)"))
    segments = []
    for j, s in enumerate(plan.segments):
        if s.index not in counts:
            context.error(ReadError(f"segment id {s.index} ({s.label}) is listed but not in the PNG",
                                    file=png, where=f"{where}/segments_info",
                                    item=ref, fix="remove the entry or fix its id"))
            continue
        segments.append(s)
    return construct_with_defaults(SegmentationAnnotation, mask=PanopticMask(location=png, encoding="rgb"),
                                   annotations=segments, reference_id=ref, attributes=extra)


