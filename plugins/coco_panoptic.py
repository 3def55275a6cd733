"""``coco-panoptic``: COCO panoptic segmentation, a JSON file plus a folder of RGB PNGs.

Files (cocodataset/panopticapi ``README.md`` and ``panopticapi/utils.py``):
    ``NAME.json``: ``images``, ``annotations`` (one per image: ``image_id``, ``file_name``,
    ``segments_info``), ``categories`` (``id``, ``name``, ``supercategory``, ``isthing``,
    ``color``), and ``info``/``licenses``/any other top-level keys.
    ``NAME/``: the PNG folder (the JSON's path without ``.json``; read option ``masks``
    points elsewhere). One 8-bit RGB PNG per annotation, named by the annotation's
    ``file_name`` — read from it and written to it, never derived. Segment id
    ``= R + 256·G + 65536·B`` (channels widened before combining), 0 = void.

Canonical model:
    One item per image: ``reference_id`` = ``str(image id)`` (as the coco plugin does; a
    string id is also kept in ``attributes["id"]`` so it is written back as a string),
    ``image_location`` = ``file_name`` as written (not resolved), ``width``/``height``;
    every other image key in ``attributes``. Writing, the image id is the reference id
    (an int when it is a plain decimal integer). The annotation becomes one
    :class:`SegmentationAnnotation`: an :class:`IndexMask` with ``encoding="rgb"`` pointing at
    the PNG (decoded lazily, as uint32) and one :class:`Segment` per ``segments_info`` entry:
    ``index`` = segment id, ``label`` = category name, ``attributes`` = ``category_id``,
    ``iscrowd``, ``area``, ``bbox`` and any extra keys as given, plus ``isthing`` from the
    category. The annotation's ``file_name`` and extra keys go to the segmentation's
    ``attributes``. Categories keep ``supercategory``; ``isthing``, ``color`` and extra keys
    go to ``Category.attributes``; top-level keys other than images/annotations/categories
    go to ``header.info["coco_panoptic"]``.

Reading checks every PNG (decoded through ``context.map``, so ``--workers`` parallelises
it; read option ``check-masks=false`` skips this decode for trusted data): a PNG that is missing or not RGB, whose size differs from its image entry, that holds
a non-zero id with no ``segments_info`` entry, or misses an id listed there; plus a
duplicate segment id and an unknown ``category_id``. Each is a :class:`ReadError` naming the
file, the JSON pointer and the segment, recorded through ``context.error`` so
``annobridge validate`` lists them all.

Writing: segment ids are kept when the mask is RGB-encoded (panoptic ids) and generated the
panopticapi way otherwise (``IdGenerator``: a stuff segment gets its category colour, a
thing its colour or, when taken in the image, the colour jittered by up to ±30 per channel;
seeded per item so output is reproducible) — write option ``segment-ids=auto|keep|generate``.
``area`` is written as the exact pixel count (a differing source value is replaced and
reported), ``bbox`` as given or computed from the pixels when absent. A PNG whose ids are
kept and that needs no change is copied byte for byte. Categories without ``color`` use a
colour derived from their id for id generation (not written); without ``isthing`` they are
written as things (``isthing: 1``); labels missing from the header categories become new
categories (reported in the notes). Masks are decoded/encoded through ``context.map``.

What is lost: item and annotation metadata, segment metadata, ``Segment.attributes
["isthing"]`` (a category fact, written on the category), the raw values of pixels that
have no segment (void in the model too; written as 0), segments without pixels (reported),
the order of ``annotations`` when it differed from the order of ``images`` (written in
image order), every annotation kind
other than segmentation (use ``--task panoptic`` to rasterise object masks first).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
import zlib
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict

from annobridge.core import storage
from annobridge.core.errors import ReadError, WriteError
from annobridge.core.formats import Capabilities, Context, Format, Shards, local_path
from annobridge.core.hookspecs import hookimpl
from annobridge.core.limits import json_decoder, load_json, open_image
from annobridge.core.masks import read_mask_png
from annobridge.core.model import (
    Category,
    Dataset,
    DatasetHeader,
    DatasetItem,
    IndexMask,
    Segment,
    SegmentationAnnotation,
)
from annobridge.core.paths import contained
from annobridge.core.segmentation import mask_runs, mask_stats, relabel

logger = logging.getLogger(__name__)

INFO_KEY = "coco_panoptic"
MAX_ID = 2**24 - 1
_SEGMENT_KEYS = ("id", "category_id", "iscrowd", "bbox", "area")
_CATEGORY_KEYS = ("id", "name", "supercategory", "isthing", "color")


class PanopticReadOptions(BaseModel):
    """``masks``: the PNG folder (default: the JSON path without ``.json``).
    ``check_masks``: decode every PNG while reading to check it against its JSON (default);
    ``false`` skips that decode for trusted data (``annobridge validate`` always checks)."""

    model_config = ConfigDict(extra="forbid")
    masks: str | None = None
    check_masks: bool = True


class PanopticWriteOptions(BaseModel):
    """``segment_ids``: ``auto`` keeps ids of RGB-encoded (panoptic) masks and generates
    them otherwise; ``keep`` always keeps mask values as ids; ``generate`` always generates."""

    model_config = ConfigDict(extra="forbid")
    segment_ids: Literal["auto", "keep", "generate"] = "auto"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _masks_dir(path: Path) -> Path:
    return path.with_suffix("") if path.suffix.lower() == ".json" else path.with_name(path.name + ".masks")


# --------------------------------------------------------------------------- reading


_DECODER = json_decoder()  # refuses NaN, Infinity, 1e400 and huge integers
_WS = re.compile(r"[ \t\n\r]*")


class _LazyArray(Sequence):
    """A JSON array kept as text: each element is parsed when it is accessed (and not kept).

    The panoptic JSON is held as one string plus element offsets instead of as Python
    objects (about five times smaller), so memory grows with the file, not with its parse.
    """

    def __init__(self, text: str, offsets: array) -> None:
        self._text = text
        self._offsets = offsets

    def __len__(self) -> int:
        return len(self._offsets)

    def __getitem__(self, k: int) -> Any:  # type: ignore[override]
        return _DECODER.raw_decode(self._text, self._offsets[k])[0]

    def __iter__(self) -> Iterator[Any]:
        for start in self._offsets:
            yield _DECODER.raw_decode(self._text, start)[0]


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
                out[key] = _LazyArray(text, offsets)
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
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    data = _scan(text) if text is not None else None
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


_LAST_DECODED: dict[str, tuple[np.ndarray, bool]] = {}
"""The ids the reader's PNG check decoded last, by PNG path, and whether the file is a plain
RGB PNG that a writer may copy (one entry, this process only)."""


class PanopticMask(IndexMask):
    """An :class:`IndexMask` on an RGB panoptic PNG that reuses the reader's decode.

    When the reader checks a PNG in this process (``workers=1``) it keeps the decoded ids
    of that one PNG; the first :meth:`load` of the same mask takes them instead of decoding
    the file again. Everywhere else (other processes, later loads) it is a plain lazy mask.
    """

    def load(self) -> np.ndarray:
        if self._array is None and self.location is not None:
            cached = _LAST_DECODED.pop(self.location, None)
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
    plans = list(_plans(path, data, masks, header.categories, context, check))
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
    for plan in plans:
        if plan.png is not None:
            plan.png = str(root / plan.png)
        yield _build_item(path, *_inspect_png(plan), context)


def _plans(path: Path, data: dict[str, Any], masks: Path, categories: list[Category],
           context: Context, check: bool) -> Iterator[_ImagePlan]:
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
                _plan_annotation(path, masks, plan, k, data["annotations"][k], cats, context)
            yield plan

    return plans()


def _plan_annotation(path: Path, masks: Path, plan: _ImagePlan, k: int, ann: dict[str, Any],
                     cats: dict[int, Category], context: Context) -> None:
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
    seen: dict[int, int] = {}
    for j, info in enumerate(infos):
        w = f"{where}/segments_info/{j}"
        if not isinstance(info, dict) or not _is_int(info.get("id")) or not (0 < info["id"] <= MAX_ID):
            got = info.get("id") if isinstance(info, dict) else info
            context.error(ReadError(f"segment id is {got!r}, expected an integer 1..{MAX_ID}",
                                    file=path, where=w, item=plan.reference_id))
            continue
        sid = info["id"]
        if sid in seen:
            context.error(ReadError(f"segment id {sid} appears twice (first at segments_info/{seen[sid]})",
                                    file=path, where=w, item=plan.reference_id,
                                    fix="segment ids are unique per image"))
            continue
        cid = info.get("category_id")
        cat = cats.get(cid) if _is_int(cid) else None
        if cat is None:
            context.error(ReadError(f"segment {sid}: category_id {cid!r} is not in categories",
                                    file=path, where=w, item=plan.reference_id,
                                    fix="add the category or fix the category_id"))
            continue
        problem = _segment_field_problem(info)
        if problem:
            context.error(ReadError(f"segment {sid}: {problem}", file=path, where=w, item=plan.reference_id))
            continue
        seen[sid] = j
        attrs = {key: v for key, v in info.items() if key != "id"}
        if "isthing" not in attrs and "isthing" in cat.attributes:
            attrs["isthing"] = cat.attributes["isthing"]
        plan.segments.append(Segment.model_construct(label=cat.name, index=sid, attributes=attrs))


def _segment_field_problem(info: dict[str, Any]) -> str | None:
    """What is wrong with the types of a segment's ``bbox``, ``area``, ``iscrowd``, or None."""
    bbox = info.get("bbox")
    if bbox is not None and bbox != [] and not (isinstance(bbox, list) and len(bbox) == 4
                                                and all(_is_number(v) for v in bbox)):
        # [] is what Mapillary Vistas (via datumaro) writes: kept as given
        return f"bbox is {bbox!r}, expected 4 numbers [x, y, width, height] (or [])"
    if "area" in info and not _is_number(info["area"]):
        return f"area is {info['area']!r}, expected a number of pixels"
    if "iscrowd" in info and (info["iscrowd"] not in (0, 1) or isinstance(info["iscrowd"], (bool, float))):
        return f"iscrowd is {info['iscrowd']!r}, expected 0 or 1"
    return None


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


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
            rgb = np.asarray(img, dtype=np.uint32)
    except ReadError as exc:
        return plan, {"unreadable": exc.problem}
    ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
    _LAST_DECODED.clear()
    _LAST_DECODED[plan.png] = (ids, mode == "RGB" and fmt == "PNG")
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
    return DatasetItem.model_construct(
        reference_id=plan.reference_id,
        image_location=fname if isinstance(fname, str) else None,
        width=img.get("width"), height=img.get("height"),
        attributes=attrs, annotations=annotations,
    )


def _check_png(path: Path, plan: _ImagePlan, result: dict[str, Any],
               context: Context) -> SegmentationAnnotation | None:
    png = plan.png
    where = f"#/annotations/{plan.ann_index}"
    ref = plan.reference_id
    extra = {k: v for k, v in plan.ann.items() if k not in ("image_id", "segments_info")}
    if result.get("unchecked"):
        return SegmentationAnnotation.model_construct(
            mask=IndexMask(location=png, encoding="rgb"), annotations=list(plan.segments),
            reference_id=ref, attributes=extra,
        )
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
    return SegmentationAnnotation.model_construct(
        mask=PanopticMask(location=png, encoding="rgb"), annotations=segments,
        reference_id=ref, attributes=extra,
    )


# --------------------------------------------------------------------------- id generation


def rgb2id(color: tuple[int, int, int] | list[int]) -> int:
    """panopticapi ``rgb2id``: ``R + 256·G + 65536·B``."""
    return int(color[0]) + 256 * int(color[1]) + 65536 * int(color[2])


def default_color(category_id: int) -> tuple[int, int, int]:
    """A stable colour for a category without ``color`` (derived from its id)."""
    h = zlib.crc32(f"annobridge-category-{category_id}".encode())
    return (h & 255) or 1, (h >> 8) & 255, (h >> 16) & 255


class IdGenerator:
    """panopticapi's ``IdGenerator`` (utils.py), seeded, for one image.

    A stuff segment gets exactly its category colour (stuff colours are reserved up
    front); a thing gets its colour if unused in the image, else the colour jittered by up
    to ±30 per channel until unused. Unlike panopticapi a second segment of one stuff
    category is jittered too (instead of silently sharing an id), and black (id 0) is
    never handed out.
    """

    def __init__(self, stuff_colors: frozenset[tuple[int, int, int]], seed: int) -> None:
        self.taken: set[tuple[int, int, int]] = set(stuff_colors) | {(0, 0, 0)}
        self.used_stuff: set[tuple[int, int, int]] = set()
        self.rng = np.random.default_rng(seed)

    def get_id(self, color: tuple[int, int, int], isthing: bool) -> int:
        color = tuple(int(c) for c in color)  # type: ignore[assignment]
        if not isthing and color not in self.used_stuff and color != (0, 0, 0):
            self.used_stuff.add(color)
            return rgb2id(color)
        if color not in self.taken:
            self.taken.add(color)
            return rgb2id(color)
        base = np.asarray(color, dtype=np.int64)
        while True:
            c = tuple(int(v) for v in np.clip(base + self.rng.integers(-30, 31, size=3), 0, 255))
            if c not in self.taken:
                self.taken.add(c)  # type: ignore[arg-type]
                return rgb2id(c)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- writing


@dataclass
class _PngJob:
    """What the worker needs to write one panoptic PNG."""

    reference_id: str
    file_name: str
    dst: str
    location: str | None
    encoding: str
    array: np.ndarray | None
    segments: list[tuple[int, int, tuple[int, int, int]]]  # (index, isthing, colour)
    generate: bool
    stuff_colors: frozenset[tuple[int, int, int]]
    expected: tuple[int | None, int | None] | None = None  # the item's size: a larger PNG is refused undecoded


def _write_png(job: _PngJob) -> dict[str, Any]:
    """Worker: decode the source mask, assign ids, write the RGB PNG, return per-segment stats."""
    copy_from = None
    if job.location is not None and local_path(job.location) is None:  # a URL: fetched here, now
        try:
            job.location = str(storage.media_copy(job.location))
        except ReadError as exc:
            raise ReadError(exc.problem, file=exc.file, fix=exc.fix, item=job.reference_id) from None
    cached = _LAST_DECODED.pop(job.location, None) if job.location is not None else None
    if job.array is not None:
        arr = job.array
    elif cached is not None and job.encoding == "rgb":
        arr = cached[0]
        copy_from = job.location if cached[1] and not job.generate else None
    elif job.encoding == "rgb" and not job.generate and job.location is not None:
        with open_image(job.location, what="panoptic PNG", item=job.reference_id, expected=job.expected) as img:
            if img.mode not in ("RGB", "RGBA"):
                raise ReadError(f"panoptic PNG has mode {img.mode}, expected RGB", file=job.location,
                                item=job.reference_id)
            copy_from = job.location if img.mode == "RGB" and img.format == "PNG" else None
            rgb = np.asarray(img, dtype=np.uint32)
        arr = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
    else:
        arr = read_mask_png(job.location, job.encoding, expected=job.expected,  # type: ignore[arg-type]
                            item=job.reference_id)
    stats = mask_stats(arr).as_dict()
    mapping: dict[int, int] = {}
    out_segments: dict[int, tuple[int, int, list[int]]] = {}
    gen = IdGenerator(job.stuff_colors, zlib.crc32(job.reference_id.encode())) if job.generate else None
    for index, isthing, color in job.segments:
        if index not in stats:
            continue
        new = gen.get_id(color, bool(isthing)) if gen is not None else index
        mapping[index] = new
        area, bbox = stats[index]
        out_segments[index] = (new, area, bbox)
    unlisted = sum(n for v, (n, _) in stats.items() if v not in mapping and (v != 0 or gen is not None))
    identity = gen is None and unlisted == 0
    Path(job.dst).parent.mkdir(parents=True, exist_ok=True)
    if identity and copy_from is not None:
        shutil.copyfile(copy_from, job.dst)
    else:
        if identity:
            out = arr
        else:
            out, _ = relabel(arr, mapping)
        if out.size and int(out.max()) > MAX_ID:
            raise WriteError(f"segment id {int(out.max())} does not fit in 24-bit RGB",
                             file=job.dst, item=job.reference_id, fix="pass --option segment-ids=generate")
        a = out.astype(np.uint32, copy=False)
        rgb8 = np.empty(a.shape + (3,), dtype=np.uint8)
        rgb8[..., 0] = a & 255
        rgb8[..., 1] = (a >> 8) & 255
        rgb8[..., 2] = (a >> 16) & 255
        Image.fromarray(rgb8).save(job.dst, format="PNG")
    return {"segments": out_segments, "unlisted": unlisted, "shape": arr.shape}


@dataclass
class _WriteState:
    categories: list[dict[str, Any]]
    by_name: dict[str, dict[str, Any]]
    by_id: dict[int, dict[str, Any]]
    stuff_colors: frozenset[tuple[int, int, int]]
    added: list[str] = field(default_factory=list)

    def category_for(self, segment: Segment) -> dict[str, Any]:
        cid = segment.attributes.get("category_id")
        cat = self.by_id.get(cid) if _is_int(cid) else None
        if cat is None or cat["name"] != segment.label:
            cat = self.by_name.get(segment.label, cat)
        if cat is None:
            new_id = max(self.by_id, default=0) + 1
            isthing = int(bool(segment.attributes.get("isthing", 1)))
            cat = {"id": new_id, "name": segment.label, "supercategory": segment.label,
                   "isthing": isthing, "color": list(default_color(new_id))}
            self.categories.append(cat)
            self.by_id[new_id] = cat
            self.by_name[segment.label] = cat
            self.added.append(segment.label)
        return cat


def _category_json(cat: Category) -> dict[str, Any]:
    out: dict[str, Any] = {"id": cat.id, "name": cat.name}
    if cat.supercategory is not None:
        out["supercategory"] = cat.supercategory
    out.update(cat.attributes)
    out.setdefault("isthing", 1)
    return out


def _color(cat: dict[str, Any]) -> tuple[int, int, int]:
    color = cat.get("color")
    if isinstance(color, (list, tuple)) and len(color) == 3 and all(_is_int(c) for c in color):
        return tuple(int(c) for c in color)  # type: ignore[return-value]
    return default_color(cat["id"])


def write(dataset: Dataset, destination: Path, options: PanopticWriteOptions, context: Context) -> None:
    """Write ``destination`` (JSON) and its PNG folder; PNGs go through ``context.map``."""
    masks = _masks_dir(destination)
    masks.mkdir(parents=True, exist_ok=True)
    cats = [_category_json(c) for c in dataset.header.categories]
    state = _WriteState(
        categories=cats, by_name={c["name"]: c for c in cats}, by_id={c["id"]: c for c in cats},
        stuff_colors=frozenset(_color(c) for c in cats if not c["isthing"]),
    )
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    used_ids: set[Any] = set()
    used_pngs: set[str] = set()
    area_fixed = 0

    def jobs() -> Iterator[tuple[DatasetItem, SegmentationAnnotation | None, _PngJob | None]]:
        for item in dataset.items:
            seg = next((a for a in item.annotations if a.type == "segmentation"), None)
            if seg is None:
                yield item, None, None
                continue
            png = seg.attributes.get("file_name")
            if not isinstance(png, str) or not png:
                stem = Path(item.image_location or item.reference_id).stem or "mask"
                png, k = f"{stem}.png", 1
                while png in used_pngs:
                    png, k = f"{stem}_{k}.png", k + 1
            elif png in used_pngs:
                raise WriteError(f"two items write the same PNG {png!r}", item=item.reference_id,
                                 fix="give each segmentation its own attributes['file_name']")
            used_pngs.add(png)
            mode = options.segment_ids
            generate = mode == "generate" or (mode == "auto" and seg.mask.encoding != "rgb")
            segs = []
            for s in seg.annotations:
                cat = state.category_for(s)
                segs.append((s.index, int(bool(cat["isthing"])), _color(cat)))
            if not generate:
                bad = [s.index for s in seg.annotations if not (0 < s.index <= MAX_ID)]
                if bad:
                    raise WriteError(f"segment index {bad[0]} cannot be a panoptic id (1..{MAX_ID})",
                                     item=item.reference_id, fix="pass --option segment-ids=generate")
            location = seg.mask.location
            dst = contained(masks, png, what="segmentation file_name", item=item.reference_id, error=WriteError)
            job = _PngJob(
                reference_id=item.reference_id, file_name=png, dst=str(dst),
                location=location if not seg.mask.is_loaded else None,
                encoding=seg.mask.encoding, array=seg.mask.load() if seg.mask.is_loaded else None,
                segments=segs, generate=generate, stuff_colors=state.stuff_colors,
                expected=(item.width, item.height),
            )
            yield item, seg, job

    for (item, seg, job), result in _map_jobs(jobs(), context):
        iid = image_id_of(item)
        if iid in used_ids:
            raise WriteError(f"two items have image id {iid!r}", item=item.reference_id,
                             fix="reference ids must be unique")
        used_ids.add(iid)
        width, height = item.width, item.height
        if result is not None:
            mh, mw = result["shape"]
            if (width is not None and width != mw) or (height is not None and height != mh):
                raise WriteError(f"the segmentation mask is {mw}x{mh}, the item is {width}x{height} "
                                 "(width x height)", item=item.reference_id,
                                 fix="a panoptic PNG has the size of its image")
            height, width = mh, mw
        image = {"id": iid, "file_name": _image_file_name(item), "width": width, "height": height}
        image.update({k: v for k, v in item.attributes.items() if k != "id"})
        images.append({k: v for k, v in image.items() if v is not None})
        if seg is None:
            continue
        infos = []
        for s in seg.annotations:
            got = result["segments"].get(s.index)
            if got is None:
                context.report.drop("segment", "coco-panoptic segments need pixels; the segment has none")
                continue
            new_id, area, bbox = got
            cat = state.category_for(s)
            info: dict[str, Any] = {"id": new_id, "category_id": cat["id"],
                                    "iscrowd": s.attributes.get("iscrowd", 0)}
            given_bbox = s.attributes.get("bbox")
            info["bbox"] = given_bbox if given_bbox is not None else bbox
            given_area = s.attributes.get("area")
            if isinstance(given_area, (int, float)) and not isinstance(given_area, bool) and given_area == area:
                info["area"] = given_area
            else:
                if given_area is not None:
                    area_fixed += 1
                info["area"] = area
            info.update({k: v for k, v in s.attributes.items()
                         if k not in _SEGMENT_KEYS and k not in ("isthing",)})
            infos.append(info)
        if result["unlisted"]:  # unlabelled (void) in the model too: nothing is lost
            logger.debug("%s: %d pixels without a segment written as void (0)",
                         item.reference_id, result["unlisted"])
        ann = {"image_id": iid, "file_name": job.file_name, "segments_info": infos}
        ann.update({k: v for k, v in seg.attributes.items() if k not in ("file_name", "image_id")})
        annotations.append(ann)
    if area_fixed:
        context.report.drop("attribute:area", "replaced by the exact pixel count of the PNG", area_fixed)
    for label in state.added:
        context.report.notes.append(f"coco-panoptic: added category {label!r} (not in the header)")
    info = dict(dataset.header.info.get(INFO_KEY) or {})
    doc = {**info, "images": images, "annotations": annotations, "categories": state.categories}
    with open(destination, "w", encoding="utf-8") as out:
        json.dump(doc, out, separators=(",", ":"))


def _map_jobs(entries: Iterator[tuple[DatasetItem, Any, _PngJob | None]],
              context: Context) -> Iterator[tuple[tuple[DatasetItem, Any, _PngJob | None], Any]]:
    """Run the PNG jobs through ``context.map`` and pair each result with its entry, in order."""
    from collections import deque

    held: deque[tuple[DatasetItem, Any, _PngJob | None]] = deque()

    def feed() -> Iterator[_PngJob | None]:
        for entry in entries:
            held.append(entry)
            yield entry[2]

    for result in context.map(_write_or_none, feed()):
        yield held.popleft(), result


def _write_or_none(job: _PngJob | None) -> dict[str, Any] | None:
    return None if job is None else _write_png(job)


def image_id_of(item: DatasetItem) -> int | str:
    """The COCO image id of an item (as the coco plugin does): ``attributes["id"]`` when it
    is the reference id as a string, else the reference id as an int when it is a plain
    decimal integer, else the reference id itself."""
    ref = item.reference_id
    orig = item.attributes.get("id")
    if isinstance(orig, str) and orig == ref:
        return orig
    if ref.isascii() and ref.isdigit() and (ref == "0" or ref[0] != "0"):
        return int(ref)
    return ref


def _image_file_name(item: DatasetItem) -> str:
    loc = item.image_location
    if loc is None:
        return item.reference_id
    if "://" in loc or Path(loc).is_absolute():
        return Path(loc.split("?")[0]).name
    return loc


# --------------------------------------------------------------------------- detection


def detect(path: Path) -> bool:
    """A ``.json`` file whose first 4 MB mention ``segments_info``."""
    if not path.is_file() or path.suffix.lower() != ".json":
        return False
    with open(path, "rb") as fh:
        head = fh.read(4 << 20)
    return b'"segments_info"' in head


FORMAT = Format(
    name="coco-panoptic",
    description="COCO panoptic segmentation: JSON + folder of RGB PNGs (id = R + 256G + 65536B)",
    capabilities=Capabilities(annotation_types=frozenset({"segmentation"})),
    read=read,
    write=write,
    detect=detect,
    read_options=PanopticReadOptions,
    write_options=PanopticWriteOptions,
    output="file",
    shards=shards,
)


@hookimpl
def register_formats() -> list[Format]:
    return [FORMAT]
