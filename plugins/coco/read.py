"""Reading COCO JSON and COCO results lists (the mapping is in the package docstring)."""

from __future__ import annotations

import functools
import gc
from collections.abc import Iterable, Iterator
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
import numpy as np
import orjson

from annobridge.core.errors import ReadError
from annobridge.core.formats import Context, Shards
from annobridge.core.limits import freeze_parsed, load_json, load_json_element, load_json_lazily, thaw_parsed
from annobridge.core.model import (
    BoxAnnotation,
    Category,
    CategoryAnnotation,
    Dataset,
    DatasetHeader,
    DatasetItem,
    KeypointsAnnotation,
    ObjectMaskAnnotation,
    PolygonAnnotation,
    construct,
)
from annobridge.plugins.coco.common import (
    _DEFAULT_TOP,
    _MISSING,
    ABSENT,
    GROUP_KEY,
    LOCATION_KEY,
    PREDICTIONS_KEY,
    REFERENCE_KEY,
    _is_int,
    generated_names,
)

if TYPE_CHECKING:
    from annobridge.core.report import ConversionReport
    from annobridge.plugins.coco import CocoReadOptions

_NUM = (int, float)
_ID = (int, str)
_ID_TYPES = frozenset(_ID)
_VISIBILITY = frozenset({0, 1, 2})
_CATEGORY_CORE = frozenset({"id", "name", "supercategory", "keypoints", "skeleton"})


# --------------------------------------------------------------------------- fast models

_new = object.__new__
_setattr = object.__setattr__
_make = construct


_POLYGON_FIELDS = set(PolygonAnnotation.model_fields)
_KEYPOINTS_FIELDS = set(KeypointsAnnotation.model_fields)
_BOX_FIELDS = set(BoxAnnotation.model_fields)


def _base(ref: str, aid: str, gid: str, attrs: dict[str, Any], conf: Any, kind: str,
          label: str) -> dict[str, Any]:
    return {"reference_id": ref, "annotation_id": aid, "group_id": gid,
            "track_reference_id": None, "metadata": {}, "attributes": attrs,
            "confidence": conf, "class_pdf": None, "type": kind, "label": label}


# --------------------------------------------------------------------------- JSON


def _load_json(path: Path, lazy: tuple[str, ...] = ()) -> tuple[Any, bytes | None]:
    """Parse a JSON file, then freeze the garbage collector's view of what it built.

    With ``lazy`` (``("annotations",)``), those lists are kept unparsed, one ``msgspec.Raw`` per
    record, and the file's bytes are returned too for :func:`load_json_element`; when the
    file needs the careful parse (see :func:`load_json_lazily`) everything is parsed and
    the bytes are None.

    The parsed tree holds many container objects that only die by reference counting;
    without freezing it (:func:`~annobridge.core.limits.freeze_parsed`), every full collection
    triggered while items are built would walk all of them again. :func:`_items` thaws it
    when it is done.
    """
    raw = path.read_bytes()
    data = load_json_lazily(raw, *lazy) if lazy else None
    if data is not None:
        freeze_parsed()
        return data, raw
    data = load_json(raw, file=path)  # finite numbers, bounded ints and depth
    freeze_parsed()
    return data, None


# --------------------------------------------------------------------------- reading


class _Cat:
    __slots__ = ("label", "names", "skeleton", "k", "shared", "free", "extend", "adapted", "prefixes")

    def __init__(self, label: str, names: list[str] | None, skeleton: list[tuple[int, int]] | None):
        self.label = label
        self.names = names
        self.skeleton = skeleton
        self.k = len(names) if names is not None else 0
        self.shared = False  # another category has the same name: keep category_id
        self.free = False  # results without ground truth: any keypoint count, names "0", "1"...
        self.extend = False  # short_keypoints=keep: more points than names get names "k", "k+1"...
        self.adapted = 0  # annotations read with a prefix or an extension of the names
        self.prefixes: dict[int, list[str]] = {}

    def names_for(self, m: int) -> list[str] | None:
        """Names for ``m`` keypoints: all names, a prefix (short_keypoints=prefix), or made up."""
        if self.free:
            if m not in self.prefixes:
                self.prefixes[m] = [str(j) for j in range(m)]
            return self.prefixes[m]
        if m > self.k and self.extend:
            if m not in self.prefixes:
                self.prefixes[m] = generated_names(self.names or [], m)
            return self.prefixes[m]
        if self.names is None or m > self.k:
            return None
        if m not in self.prefixes:
            self.prefixes[m] = self.names[:m]
        return self.prefixes[m]


def _parse_categories(raw: Any, path: Path, options: CocoReadOptions,
                      context: Context) -> tuple[list[Category], dict[int, _Cat]]:
    if raw is None:
        return [], {}
    if type(raw) is not list:
        context.error(ReadError(f"categories is {type(raw).__name__}, expected a list",
                                file=path, where="#/categories"))
        return [], {}
    cats: list[Category] = []
    index: dict[int, _Cat] = {}
    names_used: dict[str, int] = {}
    dropped = 0
    edge_mode = options.mode("bad_skeleton_edges")
    for i, c in enumerate(raw):
        where = f"#/categories/{i}"
        if type(c) is not dict:
            context.error(ReadError(f"category is {type(c).__name__}, expected an object",
                                    file=path, where=where))
            continue
        cid, name = c.get("id"), c.get("name")
        if not _is_int(cid):
            context.error(ReadError(f"category id is {cid!r}, expected an integer", file=path,
                                    where=where))
            continue
        if type(name) is not str:
            context.error(ReadError(f"category {cid} has name {name!r}, expected a string",
                                    file=path, where=where))
            continue
        if cid in index:
            context.error(ReadError(f"category id {cid} is used twice", file=path, where=where,
                                    fix="category ids must be unique"))
            continue
        names = c.get("keypoints")
        if names is not None and (type(names) is not list
                                  or not all(type(n) is str for n in names)):
            context.error(ReadError("keypoints must be a list of names", file=path,
                                    where=f"{where}/keypoints"))
            continue
        k = len(names) if names is not None else 0
        skeleton_raw = c.get("skeleton")
        skeleton: list[tuple[int, int]] | None = None
        if skeleton_raw is not None:
            skeleton = []
            if type(skeleton_raw) is not list:
                context.error(ReadError("skeleton must be a list of [a, b] pairs", file=path,
                                        where=f"{where}/skeleton"))
                continue
            kept_raw = False
            for j, edge in enumerate(skeleton_raw):
                if (type(edge) is not list or len(edge) != 2
                        or not all(_is_int(e) for e in edge)):
                    context.error(ReadError(f"skeleton edge is {edge!r}, expected [a, b] integers",
                                            file=path, where=f"{where}/skeleton/{j}"))
                    continue
                a, b = edge
                if not (1 <= a <= k and 1 <= b <= k):
                    if edge_mode == "drop":
                        dropped += 1
                        continue
                    if edge_mode == "keep":
                        kept_raw = True
                        continue
                    context.error(ReadError(
                        f"skeleton edge {edge} is out of range: COCO skeleton indices are "
                        f"1-based, 1..{k} for the {k} keypoint names of category {cid}",
                        file=path, where=f"{where}/skeleton/{j}",
                        fix="fix the edge (0-based skeletons must be shifted by 1), or read "
                            "with --option bad-skeleton-edges=drop or keep"))
                    continue
                skeleton.append((a - 1, b - 1))
            # after a bad edge the category stays, with its valid edges, so that validate
            # checks its annotations too (a normal read has raised already)
        sup = c.get("supercategory")
        attrs = {key: v for key, v in c.items() if key not in _CATEGORY_CORE}
        if skeleton_raw is not None and kept_raw:
            attrs["skeleton"] = skeleton_raw  # written back verbatim by the writer
            context.report.notes.append(
                f"warning: category {cid} ({name!r}) has skeleton edges outside 1..{k}; the skeleton "
                "is kept verbatim for COCO and only its valid edges reach other formats "
                "(--option strict=true refuses it)")
        if "supercategory" in c and type(sup) is not str:
            attrs["supercategory"] = sup
            sup = None
        cats.append(Category(id=cid, name=name, supercategory=sup, keypoints=names,
                             skeleton=skeleton, attributes=attrs))
        index[cid] = _Cat(name, names, skeleton)
        index[cid].extend = options.mode("short_keypoints") == "keep"
        names_used[name] = names_used.get(name, 0) + 1
    if dropped:
        context.report.drop("skeleton edge", "index out of range 1..k (bad-skeleton-edges=drop)",
                            dropped)
    for cat in index.values():
        cat.shared = names_used[cat.label] > 1
    return cats, index


def _parse_images(raw: Any, path: Path, context: Context,
                  strict: bool = False) -> tuple[list[tuple[Any, DatasetItem]], dict[Any, int]]:
    """(COCO id, item without annotations) per image, and COCO id -> position.

    A size written as a whole float (``640.0``, as some exporters do) is read as the integer,
    with a warning; ``strict`` refuses it."""
    if raw is None:
        return [], {}
    if type(raw) is not list:
        context.error(ReadError(f"images is {type(raw).__name__}, expected a list", file=path,
                                where="#/images"))
        return [], {}
    out: list[tuple[Any, DatasetItem]] = []
    index: dict[Any, int] = {}
    refs: dict[str, int] = {}
    floats = 0
    for i, img in enumerate(raw):
        if type(img) is not dict:
            context.error(ReadError(f"image is {type(img).__name__}, expected an object",
                                    file=path, where=f"#/images/{i}"))
            continue
        iid = img.get("id")
        where = f"#/images/{i}"
        if type(iid) not in _ID:
            context.error(ReadError(f"image id is {iid!r}, expected an integer or a string",
                                    file=path, where=where))
            continue
        ref = str(iid)
        spelled = img.get(REFERENCE_KEY)
        if type(spelled) is str and spelled:
            ref = spelled
        if ref in refs:
            context.error(ReadError(f"image id {iid!r} is used twice: #/images/{refs[ref]} and "
                                    f"{where}", file=path, where=where,
                                    fix="image ids must be unique"))
            continue
        width, height, file_name = img.get("width"), img.get("height"), img.get("file_name", _MISSING)
        if not strict and float in (type(width), type(height)):
            kinds = (type(width), type(height))
            width, height = _whole(width), _whole(height)
            floats += kinds != (type(width), type(height))
        problem = None
        if (type(width) is not int or width < 0) and width is not None:
            problem = f"image width is {width!r}, expected a non-negative integer"
        if (type(height) is not int or height < 0) and height is not None:
            problem = f"image height is {height!r}, expected a non-negative integer"
        if type(file_name) is not str and file_name is not None and file_name is not _MISSING:
            problem = f"file_name is {file_name!r}, expected a string"
        if problem:
            context.error(ReadError(problem, file=path, where=where, item=ref))
            continue
        refs[ref] = i
        index[iid] = len(out)
        out.append((iid, _image_item(img, iid, ref, width, height, file_name)))
    if floats:
        context.warn(f"{path}#/images: {floats} images give width or height as a whole float (640.0); read as "
                     "integers (--option strict=true refuses them)")
    return out, index


def _image_item(img: dict[str, Any], iid: Any, ref: str, width: Any, height: Any, file_name: Any) -> DatasetItem:
    """The item of a checked image record (which it takes for its attributes)."""
    attrs = img  # the reader owns the parsed record: the rest of it is the attributes
    del attrs["id"]
    attrs.pop("width", None)
    attrs.pop("height", None)
    if file_name is _MISSING:
        file_name = None
        attrs[ABSENT] = ["file_name"]
    else:
        del attrs["file_name"]
    if type(iid) is str or ref != str(iid):
        attrs["id"] = iid
        attrs.pop(REFERENCE_KEY, None)
    location = attrs.pop(LOCATION_KEY, None)
    if type(location) is str and location:  # the file_name is kept for writing back
        attrs["file_name"], file_name = file_name, location
    return _make(DatasetItem, {
        "reference_id": ref, "image_location": file_name, "pointcloud_location": None,
        "width": width, "height": height, "metadata": {}, "attributes": attrs,
        "annotations": [], "predictions": [], "scene": None})


class _ImageHead(msgspec.Struct):
    """What :class:`_LazyImages` checks of an image record kept unparsed."""

    id: Any = None
    width: Any = None
    height: Any = None
    file_name: Any = _MISSING
    reference: Any = msgspec.field(default=None, name=REFERENCE_KEY)


_image_head = msgspec.json.Decoder(_ImageHead).decode


class _LazyImages:
    """The images of a file read in parts (:func:`shards`), as :func:`_parse_images`'s list of
    ``(COCO id, item)``, each made when its part asks for it: the driver only checks the
    records' ids, references and sizes (50,000 images: 0.06 s instead of 0.35 s before the
    workers can start), and each forked worker makes the items of its own part."""

    def __init__(self, raws: list[Any], refs: list[str], raw: bytes, path: Path) -> None:
        self.raws = raws
        self.refs = refs
        self.raw = raw  # the file's bytes, for load_json_element to name a record it refuses
        self.path = path

    @classmethod
    def of(cls, raws: list[Any], raw: bytes, path: Path) -> tuple[_LazyImages, dict[Any, int]] | None:
        """The images and their index, or None when any record needs :func:`_parse_images`
        (which names the problem, or warns of a size written as a float)."""
        try:
            heads = list(map(_image_head, raws))
        except (msgspec.DecodeError, RecursionError):
            return None
        ids = list(map(_HEAD_ID, heads))  # C-level passes: this runs before any worker can start
        sizes = [*map(_HEAD_WIDTH, heads), *map(_HEAD_HEIGHT, heads)]
        ints = sizes if set(map(type, sizes)) == {int} else [v for v in sizes if v is not None]
        names = [n for n in map(_HEAD_FILE, heads) if type(n) is not str]
        if (not set(map(type, ids)) <= _ID_TYPES or not _within_64_bits(ids)
                or set(map(type, ints)) - {int} or (ints and (min(ints) < 0 or not _within_64_bits(ints)))
                or any(n is not None and n is not _MISSING for n in names)):
            return None
        spelled = list(map(_HEAD_REFERENCE, heads))
        if set(spelled) == {None}:
            refs = list(map(str, ids))
        else:
            refs = [r if type(r) is str and r else str(i) for r, i in zip(spelled, ids)]
        if len(set(refs)) != len(refs):
            return None
        return cls(raws, refs, raw, path), dict(zip(ids, range(len(ids))))

    def __len__(self) -> int:
        return len(self.raws)

    def __getitem__(self, pos: int) -> tuple[Any, DatasetItem]:
        try:
            img = _loads(memoryview(self.raws[pos]))
        except orjson.JSONDecodeError:  # a number out of range
            img = load_json_element(self.raws[pos], self.raw, file=self.path, where=f"#/images/{pos}")
        iid = img["id"]
        return iid, _image_item(img, iid, self.refs[pos], img.get("width"), img.get("height"),
                                img.get("file_name", _MISSING))

    def __setitem__(self, pos: int, value: None) -> None:
        self.raws[pos] = value


def _whole(value: Any) -> Any:
    """``640.0`` -> ``640``; anything else as it is."""
    return int(value) if type(value) is float and value.is_integer() and value >= 0 else value


def read(path: Path, options: CocoReadOptions, context: Context, parts: bool = False) -> Dataset:
    """Read a COCO ground-truth or results file; items are built lazily, image by image
    (``parts``: for :func:`shards`, the images too are parsed only when their part is read).

    Raises:
        ReadError: the file is not JSON, or (outside validation) the first problem found.
    """
    enabled = gc.isenabled()
    gc.disable()  # the records and items built here are acyclic (50,000 items: a third faster)
    try:
        return _read(path, options, context, parts)
    except BaseException:
        thaw_parsed()  # _load_json froze the parse; no item generator will thaw it
        raise
    finally:
        if enabled:
            gc.enable()


def _read(path: Path, options: CocoReadOptions, context: Context, parts: bool = False) -> Dataset:
    data, raw = _load_json(path, lazy=("annotations", "images") if parts else ("annotations",))
    if type(data) is list:
        return _read_results(path, data, options, context)
    if type(data) is not dict:
        raise ReadError(f"top level is {type(data).__name__}, expected an object (ground truth) "
                        "or a list (results)", file=path, where="#")
    categories, cats = _parse_categories(data.get("categories"), path, options, context)
    records = data.get("images")
    lazy_images = _LazyImages.of(records, raw, path) if parts and raw is not None else None
    if lazy_images is not None:
        images, image_index = lazy_images
    else:
        if parts and raw is not None:  # kept unparsed, but a record needs the careful parse
            records = [load_json_element(r, raw, file=path, where=f"#/images/{i}") for i, r in enumerate(records)]
        images, image_index = _parse_images(records, path, context, options.strict)
    top = {k: v for k, v in data.items() if k not in ("images", "annotations", "categories")}
    header = DatasetHeader(categories=categories,
                           info={"coco": {"top": top, "keys": [k for k in data if k != PREDICTIONS_KEY]}})
    sources = []
    for key, results in (("annotations", False), (PREDICTIONS_KEY, True)):
        records = data.get(key)
        if records is None:
            continue
        if type(records) is not list:
            context.error(ReadError(f"{key} is {type(records).__name__}, expected a list",
                                    file=path, where=f"#/{key}"))
            continue
        lazy = raw if key == "annotations" else None
        buckets = _bucket_lazy(records, image_index) if lazy is not None else None
        if lazy is not None and buckets is None:  # a problem: parse all now, to name each one
            records = [load_json_element(r, lazy, file=path, where=f"#/{key}/{i}")
                       for i, r in enumerate(records)]
            lazy = None
        if buckets is None:
            buckets = _bucket(records, image_index, path, context, results=results, prefix=f"#/{key}")
        # boxes straight from the records only while every group is its record's own: a
        # spelled group id could join two records, which the engine's derivation resolves
        boxes = context.boxes_on_read if lazy is not None and _GROUP_BYTES not in lazy else frozenset()
        sources.append(_Source(records, buckets, results, f"#/{key}", lazy, boxes))
    top.pop(PREDICTIONS_KEY, None)
    del data, raw
    return Dataset(header=header, items=_Parsed(path, images, sources, cats, context,
                                                options.mode("short_keypoints") != "error"),
                   total=len(images))  # one item per image: the progress bar's total


def _bucket(anns: list[Any], image_index: dict[Any, int], path: Path, context: Context,
            *, results: bool, prefix: str,
            create_images: list[tuple[Any, DatasetItem]] | None = None) -> list[list[int]]:
    """Annotation positions per image position; checks ids and image ids.

    ``prefix`` is the JSON pointer of the list (``#/annotations``, or ``#`` for a bare
    results list).
    """
    if create_images is None:
        fast = _bucket_fast(anns, image_index, results)
        if fast is not None:
            return fast
    buckets: list[list[int]] = [[] for _ in range(len(image_index))]
    seen: dict[Any, int] = {}
    for i, a in enumerate(anns):
        if type(a) is not dict:
            context.error(ReadError(f"annotation is {type(a).__name__}, expected an object",
                                    file=path, where=f"{prefix}/{i}"))
            continue
        if not results:
            aid = a.get("id")
            if type(aid) not in _ID:
                context.error(ReadError(f"annotation id is {aid!r}, expected an integer",
                                        file=path, where=f"{prefix}/{i}",
                                        fix="give every annotation a unique positive integer id"))
                continue
            first = seen.setdefault(aid, i)
            if first != i:
                context.error(ReadError(
                    f"annotation id {aid!r} is used twice: {prefix}/{first} and "
                    f"{prefix}/{i}", file=path, where=f"{prefix}/{i}",
                    fix="annotation ids must be unique (pycocotools silently keeps only one)"))
                continue
        iid = a.get("image_id")
        pos = image_index.get(iid) if type(iid) in _ID else None
        if pos is None:
            if create_images is not None and type(iid) in _ID:
                pos = _new_image(iid, create_images, image_index, buckets)
            else:
                where = "the ground truth's images" if results else "images"
                context.error(ReadError(f"image_id {iid!r} does not exist in {where}", file=path,
                                        where=f"{prefix}/{i}",
                                        fix="add the image, or fix the annotation's image_id"))
                continue
        buckets[pos].append(i)
    return buckets


def _bucket_fast(anns: list[Any], image_index: dict[Any, int], results: bool) -> list[list[int]] | None:
    """:func:`_bucket` for a file with no problem (C-level passes); None sends the caller
    to the careful loop, which names every problem."""
    try:
        ids = None if results else [a["id"] for a in anns]
        image_ids = [a["image_id"] for a in anns]
    except (KeyError, TypeError):
        return None
    return _bucket_ids(ids, image_ids, image_index)


_INT64 = Annotated[int, msgspec.Meta(ge=-(1 << 63), le=(1 << 63) - 1)]


class _Head(msgspec.Struct, gc=False):
    """What bucketing needs of a ground-truth record kept unparsed (the rest is skipped),
    checked as it is decoded: an integer or string id and image id (integers within 64 bits,
    as orjson, which parses the records, reads them; a larger one takes the careful path)."""

    id: _INT64 | str
    image_id: _INT64 | str


_head = msgspec.json.Decoder(_Head).decode


def _bucket_lazy(anns: list[msgspec.Raw], image_index: dict[Any, int]) -> list[list[int]] | None:
    """:func:`_bucket_fast` for ground-truth records kept unparsed; None on any problem."""
    try:
        heads = list(map(_head, anns))
    except (msgspec.DecodeError, RecursionError):  # not an object, a missing or bad id (ValidationError)
        return None
    return _bucket_ids(list(map(_HEAD_ID, heads)), list(map(_HEAD_IMAGE_ID, heads)), image_index, typed=True)


def _within_64_bits(values: list[Any]) -> bool:
    ints = values if set(map(type, values)) == {int} else [v for v in values if type(v) is int]
    return not ints or (min(ints) >= -(1 << 63) and max(ints) < (1 << 64))


_HEAD_ID, _HEAD_IMAGE_ID = attrgetter("id"), attrgetter("image_id")
_HEAD_WIDTH, _HEAD_HEIGHT, _HEAD_FILE, _HEAD_REFERENCE = map(attrgetter, ("width", "height", "file_name", "reference"))


def _bucket_ids(ids: list[Any] | None, image_ids: list[Any], image_index: dict[Any, int], *,
                typed: bool = False) -> list[list[int]] | None:
    """Annotation positions per image position, from the records' ids and image ids in
    C-level passes; None when any id is missing, of a wrong type (unless ``typed``: checked
    already), or used twice, or any image id names no image."""
    if not typed and not set(map(type, image_ids)) <= _ID_TYPES:
        return None
    if ids is not None and ((not typed and not set(map(type, ids)) <= _ID_TYPES) or len(set(ids)) != len(ids)):
        return None
    positions = list(map(image_index.get, image_ids))
    if None in positions:
        return None
    # a stable sort by image position, cut at each image's count (a Python loop appending to
    # 50,000 lists in random order took five times longer, most of it in cache misses); up
    # to 65,536 images numpy sorts 16-bit positions by radix (400,000: 2 ms instead of 30)
    at = np.array(positions, dtype=np.uint16 if len(image_index) <= 1 << 16 else np.int64)
    order = np.argsort(at, kind="stable").tolist()
    ends = np.cumsum(np.bincount(at, minlength=len(image_index))).tolist()
    return [order[start:end] for start, end in zip([0, *ends[:-1]], ends)]


def _new_image(iid: Any, images: list[tuple[Any, DatasetItem]], index: dict[Any, int],
               buckets: list[list[int]]) -> int:
    ref = str(iid)
    attrs = {"id": iid} if type(iid) is str else {}
    item = _make(DatasetItem, {
        "reference_id": ref, "image_location": None, "pointcloud_location": None,
        "width": None, "height": None, "metadata": {}, "attributes": attrs,
        "annotations": [], "predictions": [], "scene": None})
    index[iid] = len(images)
    images.append((iid, item))
    buckets.append([])
    return index[iid]


def _read_results(path: Path, data: list[Any], options: CocoReadOptions,
                  context: Context) -> Dataset:
    if options.gt is not None:
        gt_path = Path(options.gt)
        if not gt_path.exists():
            raise ReadError("ground-truth file given with gt= does not exist", file=gt_path)
        gt, _ = _load_json(gt_path)
        if type(gt) is not dict:
            raise ReadError("gt= must be a COCO ground-truth object, not a results list",
                            file=gt_path, where="#")
        categories, cats = _parse_categories(gt.get("categories"), gt_path, options, context)
        images, image_index = _parse_images(gt.get("images"), gt_path, context, options.strict)
        top = {k: v for k, v in gt.items() if k not in ("images", "annotations", "categories")}
        keys = list(gt)
        del gt
        buckets = _bucket(data, image_index, path, context, results=True, prefix="#")
    else:
        images, image_index = [], {}
        buckets = _bucket(data, image_index, path, context, results=True, prefix="#",
                          create_images=images)
        ids = sorted({a.get("category_id") for a in data
                      if type(a) is dict and _is_int(a.get("category_id"))})
        categories = [Category(id=c, name=str(c)) for c in ids]
        cats = {c: _Cat(str(c), None, None) for c in ids}
        for cat in cats.values():
            cat.free = True
        top, keys = {}, list(_DEFAULT_TOP)
    header = DatasetHeader(categories=categories,
                           info={"coco": {"top": top, "keys": keys, "results": True}})
    return Dataset(header=header, items=_Parsed(path, images, [_Source(data, buckets, True, "#")],
                                                cats, context, options.mode("short_keypoints") != "error"),
                   total=len(images))


class _Source:
    """One list of COCO records to convert: ground truth or results, and its JSON pointer.

    With ``raw`` (the file's bytes), the records are unparsed ``msgspec.Raw`` slices of it,
    each parsed when its image is converted: the whole tree is never held at once.

    With ``boxes`` (``Context.boxes_on_read``: kinds the target gets as boxes), a record of
    such a kind that carries a ``bbox`` becomes that box once checked; ``read_as`` counts them
    per kind for the report.
    """

    __slots__ = ("records", "buckets", "results", "prefix", "raw", "boxes", "read_as")

    def __init__(self, records: list[Any], buckets: list[list[int]], results: bool, prefix: str,
                 raw: bytes | None = None, boxes: frozenset[str] = frozenset()):
        self.records = records
        self.buckets = buckets
        self.results = results
        self.prefix = prefix
        self.raw = raw
        self.boxes = boxes
        self.read_as: dict[str, int] = {}


class _Parsed:
    """The parsed file items are made from, image by image: iterated once by a reader, or
    cut into parts by :func:`shards` for local workers forked from this process."""

    def __init__(self, path: Path, images: list[tuple[Any, DatasetItem]], sources: list[_Source],
                 cats: dict[int, _Cat], context: Context, short: bool) -> None:
        self.args = (path, images, sources, cats, context, short)

    def __iter__(self) -> Iterator[DatasetItem]:
        return _items(*self.args)

    def part(self, positions: list[int], context: Context) -> Iterator[DatasetItem]:
        path, images, sources, cats, _, short = self.args
        enabled = gc.isenabled()
        gc.disable()  # as in _items: the models built here are acyclic
        try:
            for src in sources:  # this process's copy counts this part's boxes read from records
                src.read_as = {}
            yield from _convert_items(path, images, sources, cats, context, short, positions)
            for src in sources:  # every item of the part has been counted by the engine now
                for kind, n in src.read_as.items():
                    context.report.read_as(kind, "box", n)
        finally:
            if enabled:
                gc.enable()


def shards(path: Path, options: CocoReadOptions, context: Context) -> Shards | None:
    """The parsed file's images as units for local workers forked from this process, which
    inherit the parse (``converters/sharded.py``); None on Dask, whose workers cannot."""
    if context.executor != "process":
        return None
    dataset = read(path, options, context, parts=True)
    parsed = dataset.items
    assert isinstance(parsed, _Parsed)
    return Shards(units=list(range(len(parsed.args[1]))), read=functools.partial(_read_part, parsed),
                  root=path.parent, header=dataset.header, portable=False, total=dataset.total)


def _read_part(parsed: _Parsed, root: Path, units: list[int], header: DatasetHeader,
               context: Context) -> Iterator[DatasetItem]:
    return parsed.part(units, context)


def _items(path: Path, images: list[tuple[Any, DatasetItem]], sources: list[_Source],
           cats: dict[int, _Cat], context: Context, short: bool) -> Iterator[DatasetItem]:
    enabled = gc.isenabled()
    gc.disable()  # the records and models built here are acyclic: reference counting frees them
    try:
        yield from _convert_items(path, images, sources, cats, context, short)
        for src in sources:  # every item has been counted by the engine now
            for kind, n in src.read_as.items():
                context.report.read_as(kind, "box", n)
        for cid, cat in cats.items():
            if cat.adapted and not cat.free:
                context.report.notes.append(
                    f"warning: {cat.adapted} annotations of category {cid} ({cat.label!r}) have another "
                    f"number of keypoints than its {cat.k} names: read with the first names, points "
                    "beyond the names named by their 0-based index (--option strict=true refuses them)")
    finally:
        thaw_parsed()
        if enabled:
            gc.enable()


def _convert_items(path: Path, images: list[tuple[Any, DatasetItem]], sources: list[_Source],
                   cats: dict[int, _Cat], context: Context, short: bool,
                   positions: Iterable[int] | None = None) -> Iterator[DatasetItem]:
    report = context.report
    # keypoints the target drops once their object has a box (Context.dropped_on_read) are
    # left out where boxes are read from the records: the same conditions make them exact
    dropping = [context.dropped_on_read.get("keypoints") if src.boxes else None for src in sources]
    kinds = [src.boxes | _KEYPOINTS if reason else src.boxes for src, reason in zip(sources, dropping)]
    for pos in range(len(images)) if positions is None else positions:
        item = images[pos][1]
        images[pos] = None  # type: ignore[call-overload]  # the consumer owns the item now
        ref = item.reference_id
        for src, boxes, reason in zip(sources, kinds, dropping):
            results, prefix, records, raw = src.results, src.prefix, src.records, src.raw
            read_as = src.read_as
            out = item.predictions if results else item.annotations
            first = -1 if reason is not None and "keypoints" not in report.read else None
            bucket = src.buckets[pos]
            batch = _batch(records, bucket) if raw is not None and len(bucket) > 1 else None
            for n, i in enumerate(bucket):
                a = records[i]
                records[i] = None  # free the source record as soon as it is converted
                if batch is not None:
                    a = batch[n]
                elif raw is not None:  # load_json_element, with its fast path inline
                    try:
                        a = _loads(memoryview(a))
                    except orjson.JSONDecodeError:  # a number out of range
                        a = load_json_element(a, raw, file=path, where=f"{prefix}/{i}")
                made = _annotation(a, i, ref, cats, path, context, results, short, prefix, boxes, read_as)
                if made is not None:
                    out += made
                if first == -1 and _DROPPED in read_as:
                    first = len(out)
            if reason is not None and _DROPPED in read_as:
                _count_dropped(report, out, first, read_as.pop(_DROPPED), reason)
            src.buckets[pos] = None  # type: ignore[call-overload]
        yield item
        del item


_loads = orjson.loads


def _batch(records: list[Any], bucket: list[int]) -> list[Any] | None:
    """The unparsed records of one image parsed in one call, or None when any needs the
    careful parse one by one (:func:`load_json_element`)."""
    try:
        return _loads(b"[%b]" % b",".join([records[i] for i in bucket]))  # type: ignore[no-any-return]
    except orjson.JSONDecodeError:
        return None


_KEYPOINTS = frozenset({"keypoints"})
_DROPPED = "keypoints dropped"  # a key of _Source.read_as: the item's keypoints left out


def _count_dropped(report: ConversionReport, anns: list[Any], first: int | None, n: int, reason: str) -> None:
    """Count ``n`` keypoints left out of one item as read and dropped, as the engine would
    have (``first``: where the first of all would have been in ``anns``, so that the report
    lists the kinds in the order the engine meets them)."""
    read = report.read
    if first is not None and first >= 0:
        for a in anns[:first]:
            read.setdefault(a.type, 0)
    read["keypoints"] = read.get("keypoints", 0) + n
    report.drop("keypoints", reason, n)


_GROUP_BYTES = GROUP_KEY.encode()


def _rle_total(counts: str) -> int | None:
    """Sum of the runs of a compressed RLE string, or None if it is malformed.

    The decoding of maskApi.c ``rleFrString`` (5-bit little-endian groups, bit 0x20 =
    "more", bit 0x10 of the last group = sign, values from index 3 on are deltas to the
    value two places back), vectorised with numpy: a few microseconds whatever the length.
    """
    try:
        raw = counts.encode("ascii")
    except UnicodeEncodeError:
        return None
    if not raw:
        return 0
    c = np.frombuffer(raw, dtype=np.uint8).astype(np.int64) - 48
    if c.min() < 0 or c.max() > 63:
        return None
    more = (c & 0x20) != 0
    if more[-1]:
        return None  # the last value is cut off
    ends = np.flatnonzero(~more)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts + 1
    if lengths.max() > 12:
        return None  # beyond 60 bits: not a run length
    k = np.arange(c.size) - np.repeat(starts, lengths)
    x = np.add.reduceat((c & 0x1F) << (5 * k), starts)
    x = np.where((c[ends] & 0x10) != 0, x - (np.int64(1) << (5 * lengths)), x)
    runs = x.copy()
    runs[1::2] = np.cumsum(x[1::2])  # odd: value + run two back, from index 3 on
    runs[2::2] = np.cumsum(x[2::2])  # even from index 2: index 2 raw, then deltas
    if runs.min() < 0:
        return None
    return int(runs.sum())


def _annotation(a: dict[str, Any], i: int, ref: str, cats: dict[int, _Cat], path: Path,
                context: Context, results: bool, short: bool, prefix: str,
                boxes: frozenset[str] = frozenset(), read_as: dict[str, int] | None = None) -> list[Any] | None:
    """The canonical annotations of one COCO record, or None after reporting a problem.

    The hot path of reading: checks are C-level where possible (``sum`` proves a list
    holds numbers) and models are built with :func:`_make`. A polygon or mask of a kind in
    ``boxes`` (see :class:`_Source`) becomes the record's box after its checks, as the
    engine's derivation would make it (``core.derive.polygon_to_box``: the ``bbox`` first),
    counted in ``read_as``; a crowd region stays for the engine, which reports its flag.
    With ``"keypoints"`` in ``boxes`` (``Context.dropped_on_read``), the keypoints of a record
    read as a box are checked and left out, counted in ``read_as`` under ``_DROPPED``.
    """
    cid = a.get("category_id")
    cat = cats.get(cid) if type(cid) is int else None
    if cat is None:
        return _bad(context, path, f"{prefix}/{i}", ref, f"category_id {cid!r} does not exist in categories",
                    "add the category, or fix the annotation's category_id")
    # The reader owns the parsed record and drops it after this call: the core keys are
    # popped and what is left (area, iscrowd, unknown keys) becomes the attributes as is.
    attrs = a
    del attrs["category_id"]
    attrs.pop("image_id", None)
    bbox_raw = attrs.pop("bbox", _MISSING)
    bbox = None if bbox_raw is _MISSING else bbox_raw
    seg = attrs.pop("segmentation", _MISSING)
    kps = attrs.pop("keypoints", _MISSING)
    num = attrs.pop("num_keypoints", _MISSING)
    if results:
        gid = str(i + 1)
        conf = attrs.pop("score", None)
        if conf is not None and (type(conf) not in _NUM or not 0 <= conf <= 1):
            return _bad(context, path, f"{prefix}/{i}", ref, f"score is {conf!r}, expected a number in 0..1",
                        "scores must be probabilities in 0..1")
    else:
        aid = attrs.pop("id")
        gid = str(aid)
        conf = None
        spelled = attrs.pop(GROUP_KEY, None)
        if type(spelled) is str and spelled and spelled != gid:
            gid = spelled
            attrs["id"] = aid
        elif type(aid) is str:
            attrs["id"] = aid
        if "area" not in attrs or "iscrowd" not in attrs or bbox_raw is _MISSING or (
                kps is not _MISSING and num is _MISSING):
            absent = [k for k, v in (("bbox", bbox_raw is _MISSING), ("area", "area" not in attrs),
                                     ("iscrowd", "iscrowd" not in attrs)) if v]
            if kps is not _MISSING and num is _MISSING:
                absent.append("num_keypoints")
            if absent:
                attrs[ABSENT] = absent
    label = cat.label
    if cat.shared:
        attrs["category_id"] = cid

    if bbox is not None:
        try:
            ok = type(bbox) is list and len(bbox) == 4 and type(sum(bbox)) in _NUM
        except TypeError:
            ok = False
        if not ok:
            n = len(bbox) if type(bbox) is list else type(bbox).__name__
            return _bad(context, path, f"{prefix}/{i}", ref, f"bbox has {n} numbers, expected 4 [x, y, w, h]"
                        if type(bbox) is list else f"bbox is {n}, expected 4 numbers [x, y, w, h]")
        if bbox[2] < 0 or bbox[3] < 0:
            return _bad(context, path, f"{prefix}/{i}", ref,
                        f"bbox {bbox} has negative width or height, expected w, h >= 0",
                        "bbox is [x, y, width, height], not [x1, y1, x2, y2]")
    elif bbox_raw is not _MISSING:
        attrs["bbox"] = None

    main = None
    if type(seg) is list and seg:
        for r, ring in enumerate(seg):
            if type(ring) is not list:
                return _bad(context, path, f"{prefix}/{i}", ref, f"segmentation[{r}] is {type(ring).__name__}, "
                            "expected a polygon [x1, y1, x2, y2, ...]")
            n = len(ring)
            if n < 6 or n & 1:
                return _bad(context, path, f"{prefix}/{i}", ref, f"polygon {r} has {n} numbers, expected "
                            "an even count of at least 6 (3 points)",
                            "drop degenerate polygons (pycocotools reads 4 numbers as a box)")
            try:
                sum(ring)
            except TypeError:
                return _bad(context, path, f"{prefix}/{i}", ref, f"polygon {r} holds a non-number")
        if bbox is not None and "polygon" in boxes and not attrs.get("iscrowd"):
            read_as["polygon"] = read_as.get("polygon", 0) + 1  # type: ignore[index]
            main, bbox = _box(ref, gid, attrs, conf, label, bbox), None  # the bbox is the geometry now
        else:
            main = _polygon(ref, gid, attrs, conf, label, seg)
    elif type(seg) is dict:
        size, counts = seg.get("size"), seg.get("counts")
        if (type(size) is not list or len(size) != 2 or not all(_is_int(v) and v >= 0 for v in size)):
            return _bad(context, path, f"{prefix}/{i}", ref, f"RLE size is {size!r}, expected [height, width]")
        h, w = size
        if type(counts) is list:
            try:
                total = sum(counts)  # a float anywhere makes the sum a float
                ok = type(total) is int and (not counts or min(counts) >= 0)
            except TypeError:
                total, ok = -1, False
            if not ok:
                return _bad(context, path, f"{prefix}/{i}", ref, "RLE counts must be non-negative integers")
        elif type(counts) is str:
            total = _rle_total(counts)
            if total is None:
                return _bad(context, path, f"{prefix}/{i}", ref, "compressed RLE counts string is malformed")
        else:
            return _bad(context, path, f"{prefix}/{i}", ref, f"RLE counts is {type(counts).__name__}, expected "
                        "a list of run lengths or a compressed string")
        if total != h * w:
            return _bad(context, path, f"{prefix}/{i}", ref, f"RLE counts sum to {total}, expected height x "
                        f"width = {h} x {w} = {h * w}")
        if bbox is not None and "object_mask" in boxes and not attrs.get("iscrowd"):
            read_as["object_mask"] = read_as.get("object_mask", 0) + 1  # type: ignore[index]
            main, bbox = _box(ref, gid, attrs, conf, label, bbox), None
        else:
            main = _make(ObjectMaskAnnotation, {**_base(ref, gid, gid, attrs, conf, "object_mask",
                                                        label), "size": (h, w), "counts": counts})
    elif seg is not _MISSING:
        if type(seg) is list or seg is None:
            attrs["segmentation"] = seg
        else:
            return _bad(context, path, f"{prefix}/{i}", ref, f"segmentation is {type(seg).__name__}, expected "
                        "a list of polygons or an RLE object")

    kp_ann = None
    if kps is not _MISSING and kps is not None:
        k = cat.k
        names, skeleton = cat.names, cat.skeleton
        if type(kps) is list and len(kps) != 3 * k and len(kps) % 3 == 0 and (
                cat.free or (short and len(kps) < 3 * k) or cat.extend):
            names = cat.names_for(len(kps) // 3)
            cat.adapted += 1
            m = len(names)  # type: ignore[arg-type]
            skeleton = None if skeleton is None else [e for e in skeleton if max(e) < m]
            k = m
        if type(kps) is not list or len(kps) != 3 * k:
            n = len(kps) if type(kps) is list else type(kps).__name__
            return _bad(context, path, f"{prefix}/{i}", ref, f"keypoints has {n} numbers, expected 3 x {k} "
                        f"keypoints of category {cid} = {3 * k}",
                        "each keypoint is x, y, v in the order of the category's keypoint names"
                        + ("" if results or len(kps) > 3 * k else
                           "; to read a shorter list as the first names (Human-Art), use "
                           "--option short-keypoints=prefix or keep"))
        try:
            sum(kps)
        except TypeError:
            return _bad(context, path, f"{prefix}/{i}", ref, "keypoints hold a non-number")
        vis = kps[2::3]
        if not _VISIBILITY.issuperset(vis):
            return _bad(context, path, f"{prefix}/{i}", ref, "keypoint visibility must be 0, 1 or 2, got "
                        f"{sorted(set(vis) - _VISIBILITY)[:3]}")
        if num is not _MISSING and (results or num != len(vis) - vis.count(0)):
            attrs["num_keypoints"] = num  # CrowdPose counts differently: keep the file's value
        if "keypoints" in boxes and (type(main) is BoxAnnotation or (main is None and bbox is not None)):
            # the object's box is all the target makes of it: the engine would drop these
            read_as[_DROPPED] = read_as.get(_DROPPED, 0) + 1  # type: ignore[index]
            return [main or _box(ref, gid, attrs, conf, label, bbox)]  # type: ignore[arg-type]
        kp_ann = _new(KeypointsAnnotation)
        _setattr(kp_ann, "__dict__", {
            "reference_id": ref, "annotation_id": gid + ":keypoints", "group_id": gid,
            "track_reference_id": None, "metadata": {},
            # keypoints alone carry the record's attributes
            "attributes": attrs if main is None and bbox is None else {},
            "confidence": conf, "class_pdf": None, "type": "keypoints", "label": label,
            "keypoints": kps, "names": names, "skeleton": skeleton})
        _setattr(kp_ann, "__pydantic_fields_set__", _KEYPOINTS_FIELDS)
        _setattr(kp_ann, "__pydantic_extra__", None)
        _setattr(kp_ann, "__pydantic_private__", None)
    else:
        if kps is None:
            attrs["keypoints"] = None
        if num is not _MISSING:
            attrs["num_keypoints"] = num

    if main is None:
        if bbox is not None:
            main = _box(ref, gid, attrs, conf, label, bbox)
        elif kp_ann is None:
            main = _make(CategoryAnnotation, {**_base(ref, gid, gid, attrs, conf, "category",
                                                      label), "taxonomy_name": None})
    elif bbox is not None:
        attrs["bbox"] = bbox
    if main is None:
        return [kp_ann]
    return [main] if kp_ann is None else [main, kp_ann]


def _box(ref: str, gid: str, attrs: dict[str, Any], conf: Any, label: str, bbox: list[Any]) -> BoxAnnotation:
    box = _new(BoxAnnotation)
    _setattr(box, "__dict__", {
        "reference_id": ref, "annotation_id": gid, "group_id": gid,
        "track_reference_id": None, "metadata": {}, "attributes": attrs,
        "confidence": conf, "class_pdf": None, "type": "box", "label": label,
        "x": bbox[0], "y": bbox[1], "width": bbox[2], "height": bbox[3],
        "embedding_vector": None})
    _setattr(box, "__pydantic_fields_set__", _BOX_FIELDS)
    _setattr(box, "__pydantic_extra__", None)
    _setattr(box, "__pydantic_private__", None)
    return box  # type: ignore[no-any-return]


def _polygon(ref: str, gid: str, attrs: dict[str, Any], conf: Any, label: str,
             rings: list[Any]) -> PolygonAnnotation:
    polygon = _new(PolygonAnnotation)
    _setattr(polygon, "__dict__", {
        "reference_id": ref, "annotation_id": gid, "group_id": gid, "track_reference_id": None,
        "metadata": {}, "attributes": attrs, "confidence": conf, "class_pdf": None,
        "type": "polygon", "label": label, "rings": rings, "embedding_vector": None})
    _setattr(polygon, "__pydantic_fields_set__", _POLYGON_FIELDS)
    _setattr(polygon, "__pydantic_extra__", None)
    _setattr(polygon, "__pydantic_private__", None)
    return polygon  # type: ignore[no-any-return]


def _bad(context: Context, path: Path, where: str, ref: str, problem: str,
         fix: str | None = None) -> None:
    context.error(ReadError(problem, file=path, where=where, item=ref, fix=fix))
    return None


