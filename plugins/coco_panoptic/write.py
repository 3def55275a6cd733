"""Writing COCO panoptic JSON and its RGB PNGs (the mapping is in the package docstring)."""

from __future__ import annotations

import json
import logging
import shutil
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from annobridge.core import storage
from annobridge.core.errors import ReadError, WriteError
from annobridge.core.formats import Context, PartsDiffer, local_path
from annobridge.core.limits import open_image
from annobridge.core.masks import read_mask_png, rgb_ids
from annobridge.core.model import Category, Dataset, DatasetHeader, DatasetItem, Segment, SegmentationAnnotation
from annobridge.core.paths import contained
from annobridge.core.segmentation import mask_stats, relabel
from annobridge.plugins.coco_panoptic.common import (
    INFO_KEY,
    MAX_ID,
    _is_int,
    _masks_dir,
    default_color,
    rgb2id,
    take_decoded,
)

if TYPE_CHECKING:
    from annobridge.plugins.coco_panoptic import PanopticWriteOptions

logger = logging.getLogger(__name__)

_SEGMENT_KEYS = ("id", "category_id", "iscrowd", "bbox", "area")


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


@dataclass
class _PngJob:
    """What the worker needs to write one panoptic PNG."""

    reference_id: str
    file_name: str
    dst: str
    location: str | None
    encoding: str
    array: np.ndarray | None
    segments: list[tuple[int, int, tuple[int, int, int] | None]]  # (index, isthing, colour when generating)
    generate: bool
    stuff_colors: frozenset[tuple[int, int, int]]
    expected: tuple[int | None, int | None] | None = None  # the item's size: a larger PNG is refused undecoded
    named: bool = True  # file_name came with the item (else made up from its stem)


def _write_png(job: _PngJob) -> dict[str, Any]:
    """Worker: decode the source mask, assign ids, write the RGB PNG, return per-segment stats."""
    copy_from = None
    if job.location is not None and local_path(job.location) is None:  # a URL: fetched here, now
        try:
            job.location = str(storage.media_copy(job.location))
        except ReadError as exc:
            raise ReadError(exc.problem, file=exc.file, fix=exc.fix, item=job.reference_id) from None
    cached = take_decoded(job.location) if job.location is not None else None
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
            arr = rgb_ids(img)
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
    """The categories as written: the header's, then those made for labels it lacks, in the
    order met (so a category's id depends on the items before it)."""

    categories: list[dict[str, Any]]
    by_name: dict[str, dict[str, Any]]
    by_id: dict[int, dict[str, Any]]
    stuff_colors: frozenset[tuple[int, int, int]]
    added: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, header: DatasetHeader) -> _WriteState:
        """The start every writer (one process, each part, the driver's finish) shares."""
        cats = [_category_json(c) for c in header.categories]
        return cls(categories=cats, by_name={c["name"]: c for c in cats}, by_id={c["id"]: c for c in cats},
                   stuff_colors=frozenset(_color(c) for c in cats if not c["isthing"]))

    def category_for(self, label: str, cid: Any, isthing: Any) -> dict[str, Any]:
        """The category of a segment with ``label`` and attributes ``category_id`` (``cid``) and
        ``isthing`` (1 when absent); a label met nowhere yet becomes a new category (next id)."""
        cat = self.by_id.get(cid) if _is_int(cid) else None
        if cat is None or cat["name"] != label:
            cat = self.by_name.get(label, cat)
        if cat is None:
            new_id = max(self.by_id, default=0) + 1
            cat = {"id": new_id, "name": label, "supercategory": label,
                   "isthing": int(bool(isthing)), "color": list(default_color(new_id))}
            self.categories.append(cat)
            self.by_id[new_id] = cat
            self.by_name[label] = cat
            self.added.append(label)
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


@dataclass(slots=True)
class WrittenImage:
    """One item as written (its PNG, its JSON records): what :func:`finish` needs of it, small
    and picklable, as a worker writing its part sends it back (``Format.parts``)."""

    ref: str  # the item's reference id, to name it
    image_id: int | str
    png: str | None  # the PNG file name written (None: no segmentation)
    named: bool  # the PNG name came with the item; False: made up from its stem, avoiding names used before
    image: str  # its ``images`` record, JSON text
    annotation: str | None  # its ``annotations`` record, JSON text
    labels: list[tuple[str, Any, Any, dict[str, Any]]] | None = None
    """Segments whose label the header lacks, whose category depends on the items before:
    (label, category_id, isthing, the category used)."""


class _ItemWriter:
    """Writes items' PNGs (through ``context.map``) and makes their JSON records
    (:class:`WrittenImage`), from the header's categories on: one for a whole write, or one
    per part on a worker."""

    def __init__(self, header: DatasetHeader, destination: Path, options: PanopticWriteOptions) -> None:
        self.masks = _masks_dir(destination)
        self.masks.mkdir(parents=True, exist_ok=True)
        self.state = _WriteState.of(header)
        self.header_names = frozenset(self.state.by_name)
        self.options = options
        self.used_pngs: set[str] = set()

    def written(self, items: Iterable[DatasetItem], context: Context) -> Iterator[WrittenImage]:
        for (item, seg, job, cats), result in _map_jobs(self._jobs(items), context):
            yield self._record(item, seg, job, cats, result, context)

    def _jobs(self, items: Iterable[DatasetItem]) -> Iterator[tuple[DatasetItem, Any, _PngJob | None, list[Any]]]:
        """Each item, its segmentation, the job that writes its PNG and its segments' categories
        (each resolved once, here, in order)."""
        state, used_pngs = self.state, self.used_pngs
        for item in items:
            seg = next((a for a in item.annotations if a.type == "segmentation"), None)
            if seg is None:
                yield item, None, None, []
                continue
            png = seg.attributes.get("file_name")
            named = isinstance(png, str) and bool(png)
            if not named:
                stem = Path(item.image_location or item.reference_id).stem or "mask"
                png, k = f"{stem}.png", 1
                while png in used_pngs:
                    png, k = f"{stem}_{k}.png", k + 1
            elif png in used_pngs:
                raise _same_png(png, item.reference_id)
            used_pngs.add(png)
            mode = self.options.segment_ids
            generate = mode == "generate" or (mode == "auto" and seg.mask.encoding != "rgb")
            cats = [state.category_for(*_category_keys(s)) for s in seg.annotations]
            segs = [(s.index, int(bool(cat["isthing"])), _color(cat) if generate else None)  # new ids' colours
                    for s, cat in zip(seg.annotations, cats)]
            if not generate:
                bad = [s.index for s in seg.annotations if not (0 < s.index <= MAX_ID)]
                if bad:
                    raise WriteError(f"segment index {bad[0]} cannot be a panoptic id (1..{MAX_ID})",
                                     item=item.reference_id, fix="pass --option segment-ids=generate")
            location = seg.mask.location
            dst = contained(self.masks, png, what="segmentation file_name", item=item.reference_id,
                            error=WriteError)
            job = _PngJob(
                reference_id=item.reference_id, file_name=png, dst=str(dst),
                location=location if not seg.mask.is_loaded else None,
                encoding=seg.mask.encoding, array=seg.mask.load() if seg.mask.is_loaded else None,
                segments=segs, generate=generate, stuff_colors=state.stuff_colors,
                expected=(item.width, item.height), named=named,
            )
            yield item, seg, job, cats

    def _record(self, item: DatasetItem, seg: SegmentationAnnotation | None, job: _PngJob | None,
                cats: list[dict[str, Any]], result: dict[str, Any], context: Context) -> WrittenImage:
        iid = image_id_of(item)
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
        image_json = _dumps({k: v for k, v in image.items() if v is not None})
        if seg is None or job is None:
            return WrittenImage(item.reference_id, iid, None, False, image_json, None)
        infos = []
        area_fixed = 0
        labels = None
        for s, cat in zip(seg.annotations, cats):
            if s.label not in self.header_names:  # its category may depend on the items before: finish replays it
                labels = labels or []
                labels.append((*_category_keys(s), cat))
            got = result["segments"].get(s.index)
            if got is None:
                context.report.drop("segment", "coco-panoptic segments need pixels; the segment has none")
                continue
            new_id, area, bbox = got
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
        if area_fixed:
            context.report.drop("attribute:area", "replaced by the exact pixel count of the PNG", area_fixed)
        if result["unlisted"]:  # unlabelled (void) in the model too: nothing is lost
            logger.debug("%s: %d pixels without a segment written as void (0)",
                         item.reference_id, result["unlisted"])
        ann = {"image_id": iid, "file_name": job.file_name, "segments_info": infos}
        ann.update({k: v for k, v in seg.attributes.items() if k not in ("file_name", "image_id")})
        return WrittenImage(item.reference_id, iid, job.file_name, job.named, image_json, _dumps(ann), labels)


def _category_keys(segment: Segment) -> tuple[str, Any, Any]:
    """What :meth:`_WriteState.category_for` decides a segment's category from."""
    return segment.label, segment.attributes.get("category_id"), segment.attributes.get("isthing", 1)


def _same_png(png: str, ref: str) -> WriteError:
    return WriteError(f"two items write the same PNG {png!r}", item=ref,
                      fix="give each segmentation its own attributes['file_name']")


def _dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"))


def write(dataset: Dataset, destination: Path, options: PanopticWriteOptions, context: Context) -> None:
    """Write ``destination`` (JSON) and its PNG folder; PNGs go through ``context.map``. The
    same two steps as in parts on workers: the items (:func:`write_part`), then :func:`finish`."""
    writer = _ItemWriter(dataset.header, destination, options)
    finish(writer.written(dataset.items, context), dataset, destination, options, context)


def write_part(items: Iterable[DatasetItem], destination: Path, options: PanopticWriteOptions, dataset: Dataset,
               context: Context) -> list[WrittenImage]:
    """In a worker (``Format.parts``): the PNGs of one part's items, each written right after
    the reader checked it, taking the ids that check decoded (each PNG is decoded once); returns
    their JSON records for :func:`finish`. Categories start from the header's, as in one process."""
    return list(_ItemWriter(dataset.header, destination, options).written(items, context))


def finish(written: Iterable[WrittenImage], dataset: Dataset, destination: Path, options: PanopticWriteOptions,
           context: Context) -> None:
    """In the driver, over every item's :class:`WrittenImage` in order: image ids and PNG names
    unique, the categories made for labels the header lacks replayed as one process makes them,
    then the JSON (``info``, ``images``, ``annotations``, ``categories``, as ``json.dump`` writes it).

    Raises:
        WriteError: two items have one image id or write one PNG.
        PartsDiffer: a part made a PNG name or a category otherwise than one process (it met the
            name or label without the items of the parts before it).
    """
    _masks_dir(destination).mkdir(parents=True, exist_ok=True)
    state = _WriteState.of(dataset.header)
    images = _Records(destination.with_name(destination.name + ".images.partial"))
    annotations = _Records(destination.with_name(destination.name + ".annotations.partial"))
    used_ids: set[Any] = set()
    used_pngs: set[str] = set()
    for done in written:
        if done.png is not None:
            if done.png in used_pngs:
                if not done.named:
                    raise PartsDiffer(f"a part named a PNG {done.png!r} that an item before it writes")
                raise _same_png(done.png, done.ref)
            used_pngs.add(done.png)
        for label, cid, isthing, used in done.labels or ():
            if state.category_for(label, cid, isthing) != used:
                raise PartsDiffer(f"a part made category {used['name']!r} id {used['id']} otherwise than "
                                  "the items before it")
        if done.image_id in used_ids:
            raise WriteError(f"two items have image id {done.image_id!r}", item=done.ref,
                             fix="reference ids must be unique")
        used_ids.add(done.image_id)
        images.append(done.image)
        if done.annotation is not None:
            annotations.append(done.annotation)
    for label in state.added:
        context.report.notes.append(f"coco-panoptic: added category {label!r} (not in the header)")
    info = dict(dataset.header.info.get(INFO_KEY) or {})
    doc = {**info, "images": images, "annotations": annotations, "categories": state.categories}
    with open(destination, "w", encoding="utf-8") as out:  # what json.dump(doc) writes, streamed
        out.write("{")
        for n, (key, value) in enumerate(doc.items()):
            out.write(("," if n else "") + json.dumps(key) + ":")
            if isinstance(value, _Records):
                value.copy_to(out)
            else:
                json.dump(value, out, separators=(",", ":"))
        out.write("}")


class _Records:
    """A JSON array written record by record to a file beside the output (so memory stays flat
    in the number of images), copied into the document at the end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = open(path, "w", encoding="utf-8")
        self._n = 0

    def append(self, record: str) -> None:
        """Add one record, given as its JSON text."""
        self._fh.write(("," if self._n else "") + record)
        self._n += 1

    def copy_to(self, out: Any) -> None:
        self._fh.close()
        out.write("[")
        with open(self.path, encoding="utf-8") as src:
            shutil.copyfileobj(src, out, 1 << 20)
        out.write("]")
        self.path.unlink()


def _map_jobs(entries: Iterator[tuple[DatasetItem, Any, _PngJob | None, Any]],
              context: Context) -> Iterator[tuple[tuple[DatasetItem, Any, _PngJob | None, Any], Any]]:
    """Run the PNG jobs through ``context.map`` and pair each result with its entry, in order."""
    from collections import deque

    held: deque[tuple[DatasetItem, Any, _PngJob | None, Any]] = deque()

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

