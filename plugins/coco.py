"""``coco``: COCO object detection / instance segmentation / keypoints / stuff JSON, and
COCO results files.

Files:
    A ground-truth file is one JSON object with ``images``, ``annotations``,
    ``categories`` and usually ``info`` and ``licenses``; a stuff-segmentation file is
    the same JSON with one RLE annotation per (image, stuff category). A results file is
    a bare JSON list of ``{image_id, category_id, bbox | segmentation | keypoints,
    score}``. Read option ``gt=PATH`` pairs a results file with its ground truth for
    image file names, sizes and category names.

Mapping (one COCO annotation -> canonical annotations sharing ``group_id = str(id)``):
    * the main geometry, ``annotation_id = str(id)``:
      ``PolygonAnnotation`` (all polygons of the object as rings) for a non-empty polygon
      list; ``ObjectMaskAnnotation`` for an RLE (uncompressed ``counts`` kept as a list,
      compressed as a str, crowd or not); else ``BoxAnnotation`` from ``bbox``; else,
      when there is neither geometry nor keypoints (image-level label files), a
      ``CategoryAnnotation``.
    * ``KeypointsAnnotation`` (``annotation_id = f"{id}:keypoints"``) when ``keypoints``
      is present: flat ``[x, y, v] * k`` exactly as written (all three visibility
      states, coordinates of v=0 points too), names and 0-based skeleton of the category.
    * ``attributes`` of the first annotation of the group hold ``area`` and
      ``iscrowd`` as written (never recomputed), ``bbox`` when the main geometry is not
      a box, ``segmentation`` when it is present but holds no geometry (``[]`` or
      ``null``), ``id`` when the COCO id is a string, every unknown annotation key, and
      ``coco_absent``: the standard keys (``bbox``, ``area``, ``iscrowd``,
      ``num_keypoints``) the source left out, so that the writer does not add them.
      ``num_keypoints`` is recomputed on write (count of v > 0); a value in the file that
      disagrees with that count (CrowdPose leaves out head and neck) is kept in
      ``attributes["num_keypoints"]`` and written back instead.
    * Predictions (results files) are the same, with ``confidence = score``; a result
      without ``score`` (stuff results) is a prediction without confidence. Results have
      no ids: ``group_id`` is ``str(index + 1)`` as pycocotools ``loadRes`` numbers them;
      an ``id`` key in a result is kept as an attribute.
    * Items: one per image, ``reference_id = str(image id)`` (ids above 2**32 and string
      ids survive; a string id is also kept in ``attributes["id"]``),
      ``image_location = file_name`` as written (not resolved), ``width``/``height``;
      every other image key (license, coco_url, flickr_url, date_captured, unknown keys)
      in ``attributes``. Images without annotations are items without annotations.
    * Header: ``categories`` with ids as given (gaps and 0 allowed), ``supercategory``,
      keypoint names and the skeleton converted 1-based -> 0-based, unknown category
      keys in ``Category.attributes``; ``info``, ``licenses`` and unknown top-level keys
      in ``header.info["coco"]["top"]`` (with the top-level key order).

Writing:
    A ground-truth file, unless the items were read from a COCO results file or write
    option ``results=true`` is given: then a results list of the predictions (ground truth
    in it is reported as dropped; image records and category names are not part of a
    results list, which the report notes). Predictions written into a ground-truth file go
    under the extra top-level key ``annobridge_predictions`` as a results list (pycocotools
    and other COCO readers ignore it; this reader reads it back as predictions), so
    nothing is lost. Ids are integers, as pycocotools ``COCOeval`` and datumaro expect:
    an image's id is its reference id when that is an integer (``"000123"`` -> 123), else
    the next unused integer from 1 up in item order, the reference id kept under the image
    key ``annobridge_reference_id`` (a string id read from COCO stays a string). Annotation
    ids are kept when ``group_id`` is an integer not used yet; other groups get new ids
    from 1 up, skipping used ids, the group id kept under ``annobridge_group_id``. The
    reader restores both (reference id, group id) and keeps the COCO id in
    ``attributes["id"]``, so COCO -> COCO writes the same ids again. For annotations
    that did not come from COCO, the writer adds ``bbox`` to polygons and masks (polygon
    vertex extents, RLE ``toBbox``; ``core/derive.py``) and to keypoint-only objects (the
    extent of the labelled keypoints), so ``COCOeval`` finds a ``bbox`` on every object
    (reading such a file back gives the object a box beside its keypoints), ``area``
    (pycocotools pixel count of the rasterised polygon or RLE; ``w*h`` of the box
    otherwise) and ``iscrowd = 0``.
    Labels missing from the header's categories get new category ids.

What is lost: item and annotation ``metadata``, ``track_reference_id``, ``class_pdf``,
``embedding_vector``, ``taxonomy_name`` and non-COCO annotation ids (all reported), the
order of annotations in the file (written grouped by image, in image order), the key
order inside records, and prediction ids (results have none). ``file_name`` is kept as
written (COCO does not record the image root it is relative to) and is not resolved.

Image locations that ``file_name`` cannot hold: a location that is absolute or climbs out of
its folder with ``..`` (a KITTI or Nucleus source read from an absolute path) is written as
``file_name`` relative to the source's folder when it lies under it, else as its base name
(COCO readers such as datumaro join ``file_name`` to an images folder and refuse absolute
paths); the full location goes under the image key ``annobridge_image_location``, which
the reader restores as ``image_location`` — so COCO -> COCO keeps every location. URLs and
relative paths are written as given.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict

from annobridge.core import derive
from annobridge.core.errors import ReadError
from annobridge.core.formats import Capabilities, Context, Format
from annobridge.core.hookspecs import hookimpl
from annobridge.core.limits import load_json
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
from annobridge.core.paths import path_problem, source_root

logger = logging.getLogger(__name__)

KINDS = frozenset({"box", "polygon", "object_mask", "keypoints", "category"})
ABSENT = "coco_absent"
_NUM = (int, float)
_ID = (int, str)
_ID_TYPES = frozenset(_ID)
_VISIBILITY = frozenset({0, 1, 2})
_MISSING: Any = object()
_CATEGORY_CORE = frozenset({"id", "name", "supercategory", "keypoints", "skeleton"})
_GT_SPECIAL = frozenset({ABSENT, "category_id", "bbox", "segmentation", "keypoints",
                         "num_keypoints", "id", "image_id"})
_RES_SPECIAL = _GT_SPECIAL - {"id"}
_DEFAULT_TOP = ["info", "licenses", "images", "annotations", "categories"]
PREDICTIONS_KEY = "annobridge_predictions"
REFERENCE_KEY = "annobridge_reference_id"  # image key: the item's non-integer reference id
LOCATION_KEY = "annobridge_image_location"  # image key: a location file_name cannot hold
GROUP_KEY = "annobridge_group_id"  # annotation key: the object's non-integer group id


class CocoReadOptions(BaseModel):
    """``--option`` keys for reading COCO.

    Args:
        gt: for a results file, the ground-truth JSON giving image file names, sizes and
            category names (results are then checked against it, as ``loadRes`` does).
        bad_skeleton_edges: a skeleton edge whose index is outside 1..k (CrowdPose ships a
            17-point skeleton with 14 keypoints; datumaro writes 0-based edges under an
            empty name list): ``keep`` (default) keeps the category's skeleton verbatim in
            ``Category.attributes["skeleton"]`` (written back as given), leaves such edges
            out of the canonical skeleton and notes it in the report; ``drop`` drops them
            (reported as dropped); ``error`` refuses the file.
        short_keypoints: keypoints whose length is not 3 x the category's keypoint count:
            ``keep`` (default) reads a shorter list as the first names of the category
            (Human-Art stores 17 COCO points under a 21-name category) and names the points
            beyond the category's names ``"k"`` (their 0-based index; datumaro's
            ``coco_person_keypoints`` export has categories with ``keypoints: []``), noted
            in the report; ``prefix`` reads shorter lists only; ``error`` refuses the file.
        strict: refuse what the file leaves inconsistent instead of keeping it: both
            options above become ``error`` unless given otherwise.
    """

    model_config = ConfigDict(extra="forbid")
    gt: Path | None = None
    bad_skeleton_edges: Literal["keep", "error", "drop"] = "keep"
    short_keypoints: Literal["keep", "error", "prefix"] = "keep"
    strict: bool = False

    def mode(self, option: str) -> str:
        """The effective mode of ``bad_skeleton_edges`` or ``short_keypoints``."""
        given = option in self.model_fields_set
        return "error" if self.strict and not given else getattr(self, option)


class CocoWriteOptions(BaseModel):
    """``--option`` keys for writing COCO.

    Args:
        results: ``true`` writes a results list (the predictions), ``false`` a
            ground-truth file; unset: a results list when the items hold predictions and no
            ground truth.
    """

    model_config = ConfigDict(extra="forbid")
    results: bool | None = None


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


def _load_json(path: Path) -> Any:
    """Parse a JSON file, then freeze the garbage collector's view of what it built.

    The parsed tree holds millions of container objects that only die by reference
    counting; without :func:`gc.freeze`, every full collection triggered while items are
    built would walk all of them again (three times the whole conversion on 40k objects).
    :func:`_items` unfreezes when it is done.
    """
    data = load_json(path.read_bytes(), file=path)  # finite numbers, bounded ints and depth
    gc.freeze()
    return data


def _dumps(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj)
    except TypeError:  # integers beyond 64 bits
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


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


def generated_names(names: list[str], m: int) -> list[str]:
    """``names`` completed to ``m`` names with the 0-based index of each missing point."""
    return [*names, *(str(j) for j in range(len(names), m))]


def _is_int(v: Any) -> bool:
    return type(v) is int


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


def _parse_images(raw: Any, path: Path, context: Context) -> tuple[list[tuple[Any, DatasetItem]], dict[Any, int]]:
    """(COCO id, item without annotations) per image, and COCO id -> position."""
    if raw is None:
        return [], {}
    if type(raw) is not list:
        context.error(ReadError(f"images is {type(raw).__name__}, expected a list", file=path,
                                where="#/images"))
        return [], {}
    out: list[tuple[Any, DatasetItem]] = []
    index: dict[Any, int] = {}
    refs: dict[str, int] = {}
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
        item = _make(DatasetItem, {
            "reference_id": ref, "image_location": file_name, "pointcloud_location": None,
            "width": width, "height": height, "metadata": {}, "attributes": attrs,
            "annotations": [], "predictions": [], "scene": None})
        refs[ref] = i
        index[iid] = len(out)
        out.append((iid, item))
    return out, index


def read(path: Path, options: CocoReadOptions, context: Context) -> Dataset:
    """Read a COCO ground-truth or results file; items are built lazily, image by image.

    Raises:
        ReadError: the file is not JSON, or (outside validation) the first problem found.
    """
    try:
        return _read(path, options, context)
    except BaseException:
        gc.unfreeze()  # _load_json froze the parse; no item generator will unfreeze it
        raise


def _read(path: Path, options: CocoReadOptions, context: Context) -> Dataset:
    data = _load_json(path)
    if type(data) is list:
        return _read_results(path, data, options, context)
    if type(data) is not dict:
        raise ReadError(f"top level is {type(data).__name__}, expected an object (ground truth) "
                        "or a list (results)", file=path, where="#")
    categories, cats = _parse_categories(data.get("categories"), path, options, context)
    images, image_index = _parse_images(data.get("images"), path, context)
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
        buckets = _bucket(records, image_index, path, context, results=results, prefix=f"#/{key}")
        sources.append(_Source(records, buckets, results, f"#/{key}"))
    top.pop(PREDICTIONS_KEY, None)
    del data
    return Dataset(header=header, items=_items(path, images, sources, cats, context,
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
        if not results:
            ids = [a["id"] for a in anns]
            if not {type(v) for v in ids} <= _ID_TYPES or len(set(ids)) != len(ids):
                return None
        get = image_index.get
        positions = [get(a["image_id"]) for a in anns]
    except (KeyError, TypeError):
        return None
    if None in positions:
        return None
    buckets: list[list[int]] = [[] for _ in range(len(image_index))]
    for i, pos in enumerate(positions):
        buckets[pos].append(i)
    return buckets


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
        gt = _load_json(gt_path)
        if type(gt) is not dict:
            raise ReadError("gt= must be a COCO ground-truth object, not a results list",
                            file=gt_path, where="#")
        categories, cats = _parse_categories(gt.get("categories"), gt_path, options, context)
        images, image_index = _parse_images(gt.get("images"), gt_path, context)
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
    return Dataset(header=header, items=_items(path, images, [_Source(data, buckets, True, "#")],
                                               cats, context, options.mode("short_keypoints") != "error"),
                   total=len(images))


class _Source:
    """One list of COCO records to convert: ground truth or results, and its JSON pointer."""

    __slots__ = ("records", "buckets", "results", "prefix")

    def __init__(self, records: list[Any], buckets: list[list[int]], results: bool, prefix: str):
        self.records = records
        self.buckets = buckets
        self.results = results
        self.prefix = prefix


def _items(path: Path, images: list[tuple[Any, DatasetItem]], sources: list[_Source],
           cats: dict[int, _Cat], context: Context, short: bool) -> Iterator[DatasetItem]:
    enabled = gc.isenabled()
    gc.disable()  # the records and models built here are acyclic: reference counting frees them
    try:
        yield from _convert_items(path, images, sources, cats, context, short)
        for cid, cat in cats.items():
            if cat.adapted and not cat.free:
                context.report.notes.append(
                    f"warning: {cat.adapted} annotations of category {cid} ({cat.label!r}) have another "
                    f"number of keypoints than its {cat.k} names: read with the first names, points "
                    "beyond the names named by their 0-based index (--option strict=true refuses them)")
    finally:
        gc.unfreeze()
        if enabled:
            gc.enable()


def _convert_items(path: Path, images: list[tuple[Any, DatasetItem]], sources: list[_Source],
                   cats: dict[int, _Cat], context: Context, short: bool) -> Iterator[DatasetItem]:
    for pos in range(len(images)):
        item = images[pos][1]
        images[pos] = None  # type: ignore[call-overload]  # the consumer owns the item now
        ref = item.reference_id
        for src in sources:
            out = item.predictions if src.results else item.annotations
            records = src.records
            for i in src.buckets[pos]:
                a = records[i]
                records[i] = None  # free the source record as soon as it is converted
                made = _annotation(a, i, ref, cats, path, context, src.results, short, src.prefix)
                if made is not None:
                    out.extend(made)
            src.buckets[pos] = None  # type: ignore[call-overload]
        yield item
        del item


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
                context: Context, results: bool, short: bool, prefix: str) -> list[Any] | None:
    """The canonical annotations of one COCO record, or None after reporting a problem.

    The hot path of reading: checks are C-level where possible (``sum`` proves a list
    holds numbers) and models are built with :func:`_make`.
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
        if type(spelled) is str and spelled:
            gid = spelled
        if type(aid) is str or gid != str(aid):
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
        main = _new(PolygonAnnotation)
        _setattr(main, "__dict__", {
            "reference_id": ref, "annotation_id": gid, "group_id": gid, "track_reference_id": None,
            "metadata": {}, "attributes": attrs, "confidence": conf, "class_pdf": None,
            "type": "polygon", "label": label, "rings": seg, "embedding_vector": None})
        _setattr(main, "__pydantic_fields_set__", _POLYGON_FIELDS)
        _setattr(main, "__pydantic_extra__", None)
        _setattr(main, "__pydantic_private__", None)
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
            main = _new(BoxAnnotation)
            _setattr(main, "__dict__", {
                "reference_id": ref, "annotation_id": gid, "group_id": gid,
                "track_reference_id": None, "metadata": {}, "attributes": attrs,
                "confidence": conf, "class_pdf": None, "type": "box", "label": label,
                "x": bbox[0], "y": bbox[1], "width": bbox[2], "height": bbox[3],
                "embedding_vector": None})
            _setattr(main, "__pydantic_fields_set__", _BOX_FIELDS)
            _setattr(main, "__pydantic_extra__", None)
            _setattr(main, "__pydantic_private__", None)
        elif kp_ann is None:
            main = _make(CategoryAnnotation, {**_base(ref, gid, gid, attrs, conf, "category",
                                                      label), "taxonomy_name": None})
    elif bbox is not None:
        attrs["bbox"] = bbox
    if main is None:
        return [kp_ann]
    return [main] if kp_ann is None else [main, kp_ann]


def _bad(context: Context, path: Path, where: str, ref: str, problem: str,
         fix: str | None = None) -> None:
    context.error(ReadError(problem, file=path, where=where, item=ref, fix=fix))
    return None


# --------------------------------------------------------------------------- writing


def _int_id(text: str | None) -> int | None:
    """``int(text)`` when ``text`` is an integer written canonically ("17", "-3"), else None."""
    if text is None or not text or len(text) > 40:
        return None
    if text.isdigit() and text.isascii() and (text[0] != "0" or len(text) == 1):
        return int(text)
    body = text[1:] if text[0] == "-" else text
    if not body.isdigit() or (len(body) > 1 and body[0] == "0") or not body.isascii():
        return None
    return int(text)


def _image_id_candidate(item: DatasetItem) -> Any:
    """The COCO id an item asks for: its string id read from COCO, its integer reference
    id, the integer id COCO gave it before (``attributes["id"]``), or None."""
    ref = item.reference_id
    orig = item.attributes.get("id")
    if type(orig) is str and orig == ref:
        return orig  # a string id read from COCO: pycocotools accepts it, kept as read
    n = _int_id(ref)
    if n is not None:
        return n
    if _is_int(orig):
        return orig
    if ref.isascii() and ref.isdigit():
        return int(ref)  # "000123" (KITTI frame names): the number, the name kept
    return None


class _Writer:
    """State of one write: categories, used ids, drop counters."""

    def __init__(self, header: DatasetHeader, context: Context) -> None:
        self.context = context
        self.categories = [c.model_copy() for c in header.categories]
        self.by_id = {c.id: c for c in self.categories}
        self.by_name: dict[str, int] = {}
        for c in self.categories:
            self.by_name.setdefault(c.name, c.id)
        self.next_cat = max((c.id for c in self.categories), default=0) + 1
        self.used_ids: set[Any] = set()
        self.drops: dict[tuple[str, str], int] = {}
        self.renumbered = 0  # annotation ids COCO cannot keep (not integers, or used twice)
        self.image_ids: set[Any] = set()
        self.next_image = 1
        self.mapped_refs = 0  # reference ids written as REFERENCE_KEY beside a new integer id

    def image_id(self, item: DatasetItem) -> tuple[Any, str | None]:
        """The item's COCO image id, and its reference id when that id does not spell it.

        Integers (or a string id read from COCO) are kept; any other reference id gets the
        next unused integer from 1 up, in item order, so the same input always gets the
        same ids, and the reference id is written beside it to be restored on reading.
        """
        ref = item.reference_id
        cand = _image_id_candidate(item)
        if cand is None or cand in self.image_ids:
            while self.next_image in self.image_ids:
                self.next_image += 1
            cand = self.next_image
        self.image_ids.add(cand)
        if str(cand) == ref:
            return cand, None
        self.mapped_refs += 1
        return cand, ref

    def drop(self, what: str, reason: str, n: int = 1) -> None:
        self.drops[(what, reason)] = self.drops.get((what, reason), 0) + n

    def category_id(self, label: str, attrs: dict[str, Any]) -> int:
        cid = attrs.get("category_id")
        if _is_int(cid) and cid in self.by_id and self.by_id[cid].name == label:
            return cid
        found = self.by_name.get(label)
        if found is None:
            found = self.next_cat
            self.next_cat += 1
            cat = Category(id=found, name=label)
            self.categories.append(cat)
            self.by_id[found] = cat
            self.by_name[label] = found
        return found

    def keypoints_fit(self, cid: int, ann: KeypointsAnnotation) -> bool:
        cat = self.by_id[cid]
        if cat.keypoints is None:
            cat.keypoints = list(ann.names)
            cat.skeleton = list(ann.skeleton) if ann.skeleton else ann.skeleton
            return True
        names = ann.names
        if cat.keypoints is names or cat.keypoints == names or (
                len(names) < len(cat.keypoints) and cat.keypoints[:len(names)] == names):
            return True
        if len(names) > len(cat.keypoints) and names == generated_names(cat.keypoints, len(names)):
            return True  # read with names made up beyond the category's (short-keypoints=keep)
        self.drop("keypoints", f"keypoint names differ from category {cat.name!r}'s")
        return False

    def record(self, item: DatasetItem, image_id: Any, group: list[Any], results: bool,
               jobs: list[tuple[Any, ...]]) -> dict[str, Any]:
        """One COCO record from one group of canonical annotations.

        Ground-truth records get their ``id`` first when the group's id can be kept; the
        others are completed with a new id at the end of the write.
        """
        main = kp = box = None
        for ann in group:
            t = ann.type
            if t == "keypoints":
                kp = ann
            elif t == "box":
                box = ann
            else:
                main = ann
        first = main or box or kp
        d = first.__dict__
        label = d["label"]
        attrs = d["attributes"]
        if len(group) > 1:
            merged = None
            for ann in group:
                if ann is not first and ann.attributes:
                    if merged is None:
                        merged = dict(attrs)
                    for key, v in ann.attributes.items():
                        merged.setdefault(key, v)
                if ann.label != label:
                    self.drop(ann.type, "grouped with an annotation of another label; kept its "
                              "geometry under the first label")
            if merged is not None:
                attrs = merged
        for ann in group:
            ad = ann.__dict__
            if (ad["track_reference_id"] is not None or ad["class_pdf"] is not None
                    or ad.get("embedding_vector") is not None or ad.get("taxonomy_name") is not None):
                self._count_losses(ad)
        cid = attrs.get("category_id") if attrs else None
        cid = self.by_name.get(label) if cid is None else self.category_id(label, attrs)
        if cid is None:
            cid = self.category_id(label, attrs)
        rec: dict[str, Any]
        if results:
            rec = {"image_id": image_id, "category_id": cid}
        else:
            gid = d["group_id"]
            if gid is not None and gid.isdigit() and gid.isascii() and (gid[0] != "0" or gid == "0"):
                oid: Any = int(gid)
            else:
                attr_id = attrs.get("id")
                oid = attr_id if type(attr_id) is str and attr_id == gid else _int_id(gid)
                if oid is None and _is_int(attr_id):
                    oid = attr_id  # the integer id COCO gave this group before
            if oid is None or oid in self.used_ids:
                if gid is not None or any(a.annotation_id is not None for a in group):
                    self.renumbered += 1
                rec = {"image_id": image_id, "category_id": cid}
            else:
                self.used_ids.add(oid)
                if d["annotation_id"] != gid or len(group) > 1:
                    for ann in group:
                        aid = ann.annotation_id
                        if aid is not None and aid != gid and aid != gid + ":keypoints":
                            self.renumbered += 1
                rec = {"id": oid, "image_id": image_id, "category_id": cid}
            if gid is not None and str(rec.get("id")) != gid:
                rec[GROUP_KEY] = gid  # restored as the group id on reading
        absent = attrs.get(ABSENT, ())
        mtype = main.type if main is not None else None
        if mtype == "polygon":
            rec["segmentation"] = main.rings  # type: ignore[union-attr]
        elif mtype == "object_mask":
            rec["segmentation"] = {"size": list(main.size), "counts": main.counts}  # type: ignore[union-attr]
        elif "segmentation" in attrs:
            rec["segmentation"] = attrs["segmentation"]
        if box is not None:
            bd = box.__dict__
            rec["bbox"] = [bd["x"], bd["y"], bd["width"], bd["height"]]
        elif "bbox" in attrs:
            rec["bbox"] = attrs["bbox"]
        if kp is not None and self.keypoints_fit(cid, kp):
            kps = kp.keypoints
            rec["keypoints"] = kps
            if not results and "num_keypoints" not in absent:
                num = attrs.get("num_keypoints", _MISSING)
                if num is _MISSING:
                    vis = kps[2::3]
                    num = len(vis) - vis.count(0)
                rec["num_keypoints"] = num
        elif "keypoints" in attrs:
            rec["keypoints"] = attrs["keypoints"]
        if results:
            conf = d["confidence"]
            if conf is not None:
                rec["score"] = conf
        elif (mtype is not None and mtype != "category") or "bbox" in rec or kp is not None:
            if "bbox" not in rec and "bbox" not in absent and mtype != "category" and (
                    mtype is not None or "keypoints" in rec):
                jobs.append(("bbox", rec, main, rec.get("keypoints"), item.height, item.width))
            if "area" not in attrs and "area" not in absent:
                jobs.append(("area", rec, main, item.height, item.width))
            if "iscrowd" not in attrs and "iscrowd" not in absent:
                rec["iscrowd"] = 0
        special = _GT_SPECIAL if not results else _RES_SPECIAL
        for key, v in attrs.items():
            if key not in special or (key == "num_keypoints" and key not in rec):
                rec[key] = v
            elif key == "image_id":
                self.drop("attribute:image_id", "clashes with the COCO key")
        return rec

    def _count_losses(self, ad: dict[str, Any]) -> None:
        if ad["track_reference_id"] is not None:
            self.drop("attribute:track_reference_id", "COCO has no tracks")
        if ad["class_pdf"] is not None:
            self.drop("attribute:class_pdf", "COCO results hold one score")
        if ad.get("embedding_vector") is not None:
            self.drop("attribute:embedding_vector", "COCO has no embeddings")
        if ad.get("taxonomy_name") is not None:
            self.drop("attribute:taxonomy_name", "COCO has no taxonomies")

    def groups(self, anns: list[Any]) -> list[list[Any]]:
        """Split annotations into COCO records: by group_id, one geometry of each role."""
        out: dict[Any, list[Any]] = {}
        for ann in anns:
            gid = ann.group_id
            if gid is None:
                out[id(ann)] = [ann]
                continue
            group = out.get(gid)
            if group is None:
                out[gid] = [ann]
            elif _fits(group, ann):
                group.append(ann)
            else:
                n = 1
                while (key := (gid, n)) in out and not _fits(out[key], ann):
                    n += 1
                out.setdefault(key, []).append(ann)
        return list(out.values())


_ROLE = {"keypoints": "keypoints", "box": "box"}


def _fits(group: list[Any], ann: Any) -> bool:
    """Whether ``ann`` takes a role (main geometry, box, keypoints) still free in ``group``."""
    role = _ROLE.get(ann.type, "main")
    for g in group:
        if _ROLE.get(g.type, "main") == role:
            return False
    return True


def _compute(job: tuple[Any, ...]) -> Any:
    from pycocotools import mask as mask_utils

    if job[0] == "bbox":
        _, _rec, main, kps, h, w = job
        if main is not None and main.type == "polygon":
            box = derive.polygon_box(main.rings)
        elif main is not None and main.type == "object_mask":
            box = derive.mask_box(main)
        else:
            box = derive.keypoints_box(kps or [])
        return list(box) if box is not None else [0, 0, 0, 0]
    _, rec, main, h, w = job
    if main is not None and main.type == "polygon":
        if not h or not w:
            import math

            w = math.ceil(max(v for ring in main.rings for v in ring[0::2])) + 1
            h = math.ceil(max(v for ring in main.rings for v in ring[1::2])) + 1
        rles = mask_utils.frPyObjects([[float(v) for v in r] for r in main.rings], h, w)
        return int(mask_utils.area(mask_utils.merge(rles)))
    if main is not None and main.type == "object_mask":
        return int(mask_utils.area(main.rle()))
    bb = rec.get("bbox")
    if bb:
        return bb[2] * bb[3]
    kps = rec.get("keypoints") or []
    xs = [kps[j] for j in range(0, len(kps), 3) if kps[j + 2] > 0]
    ys = [kps[j + 1] for j in range(0, len(kps), 3) if kps[j + 2] > 0]
    return (max(xs) - min(xs)) * (max(ys) - min(ys)) if xs else 0


def _encode_item(payload: tuple[Any, ...]) -> tuple[Any, ...]:
    """Finish the records of one item (missing bbox/area) and serialise those with an id."""
    image_rec, gt, preds, jobs = payload
    if jobs:
        pending_bbox = [j for j in jobs if j[0] == "bbox"]
        for job in pending_bbox:
            job[1]["bbox"] = _compute(job)
        for job in jobs:
            if job[0] == "area":
                job[1]["area"] = _compute(job)
    kept = [r for r in gt if "id" in r]
    pending = [r for r in gt if "id" not in r] if len(kept) != len(gt) else []
    # one dumps per item: the list's brackets are cut off, its commas kept
    gt_bytes = _dumps(kept)[1:-1] if kept else b""
    pred_bytes = _dumps(preds)[1:-1] if preds else b""
    return _dumps(image_rec), gt_bytes, pending, pred_bytes


class _Stream:
    """A JSON array's elements written to a temporary file, comma separated."""

    def __init__(self, folder: Path, name: str) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
        self.path = Path(tmp)
        self.fh = os.fdopen(fd, "wb")
        self.count = 0

    def add(self, data: bytes) -> None:
        """Append one or more comma-separated elements (nothing when ``data`` is empty)."""
        if not data:
            return
        if self.count:
            self.fh.write(b",")
        self.fh.write(data)
        self.count += 1

    def copy_to(self, out: Any) -> None:
        self.fh.close()
        with open(self.path, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 22)

    def discard(self) -> None:
        if not self.fh.closed:
            self.fh.close()
        self.path.unlink(missing_ok=True)


def _file_name(location: str, root: Path | None) -> str:
    """``file_name`` for an image location: as given when it is a URL or a relative path that
    stays inside its folder; else (absolute, ``..`` out) the path relative to the source folder
    when it lies under it, else the base name (datumaro refuses absolute ``file_name``)."""
    if "://" in location or path_problem(location) is None:
        return location
    if root is not None and os.path.isabs(location):
        rel = os.path.relpath(location, os.path.abspath(root)).replace(os.sep, "/")
        if path_problem(rel) is None:
            return rel
    return os.path.basename(location.replace("\\", "/")) or location


def write(dataset: Dataset, destination: Path, options: CocoWriteOptions, context: Context) -> None:
    """Write a COCO ground-truth file or a results list (see the module docstring)."""
    header = dataset.header
    coco_info = header.info.get("coco") or {}
    w = _Writer(header, context)
    images: list[bytes] = []
    gt = _Stream(destination.parent, destination.name + ".gt")
    preds = _Stream(destination.parent, destination.name + ".results")
    pending: list[dict[str, Any]] = []
    n_gt = n_pred = n_items = n_meta = n_located = 0
    root = source_root(dataset.source)
    try:
        def prepared() -> Iterator[tuple[Any, ...]]:
            nonlocal n_gt, n_pred, n_items, n_meta, n_located
            for item in dataset.items:
                n_items += 1
                image_id, spelled = w.image_id(item)
                rec = {"id": image_id}
                if spelled is not None:
                    rec[REFERENCE_KEY] = spelled
                if item.image_location is not None:
                    rec["file_name"] = _file_name(item.image_location, root)
                elif "file_name" not in item.attributes.get(ABSENT, ()):
                    rec["file_name"] = item.reference_id
                if item.width is not None:
                    rec["width"] = item.width
                if item.height is not None:
                    rec["height"] = item.height
                for key, v in item.attributes.items():
                    if key not in ("id", ABSENT) and (key != "file_name" or _file_name(v, None) == v):
                        rec[key] = v  # a kept file_name (Lightly's, COCO's own) wins when it is relative
                if item.image_location is not None and rec["file_name"] != item.image_location:
                    rec[LOCATION_KEY] = item.image_location
                    n_located += 1
                if item.metadata:
                    n_meta += 1
                jobs: list[tuple[Any, ...]] = []
                gt_recs = []
                for group in w.groups(item.annotations):
                    gt_recs.append(w.record(item, image_id, group, False, jobs))
                pred_recs = []
                for group in w.groups(item.predictions):
                    pred_recs.append(w.record(item, image_id, group, True, jobs))
                n_gt += len(gt_recs)
                n_pred += len(pred_recs)
                yield rec, gt_recs, pred_recs, jobs

        for image_bytes, gt_bytes, gt_pending, pred_bytes in context.map(_encode_item, prepared()):
            images.append(image_bytes)
            gt.add(gt_bytes)
            pending.extend(gt_pending)
            preds.add(pred_bytes)
        results = options.results
        if results is None:
            results = bool(coco_info.get("results"))
        for (what, reason), n in w.drops.items():
            context.report.drop(what, reason, n)
        if n_meta:
            context.report.drop("item metadata", "COCO images hold no metadata", n_meta)
        if w.mapped_refs:
            context.report.notes.append(
                f"{w.mapped_refs} item reference ids are not COCO integer ids: the images got "
                f"integer ids and keep the reference id under {REFERENCE_KEY!r} (read back as the "
                "reference id)")
        if n_located:
            context.report.notes.append(
                f"{n_located} image locations are absolute or outside the destination's folder: "
                f"file_name is the path relative to the source folder (else the base name), the "
                f"location kept under {LOCATION_KEY!r} (read back as the image location)")
        if w.renumbered:
            context.report.notes.append(
                f"{w.renumbered} annotation ids were not unused integers (COCO ids are integers "
                "unique in the file, one per object); those objects got new ids from 1 up")
        if results:
            if n_gt:
                context.report.drop("ground truth annotations", "a COCO results file holds "
                                    "predictions only (write results=false for ground truth)", n_gt)
            context.report.notes.append(
                f"wrote a COCO results list: the {n_items} image records (file names, sizes) and "
                "the category names are not part of it; read it back with --option gt=<ground "
                "truth> to pair them again")
            with open(destination, "wb") as out:
                out.write(b"[")
                preds.copy_to(out)
                out.write(b"]")
        else:
            if n_pred:
                context.report.notes.append(
                    f"{n_pred} predictions were written as a results list under the top-level key "
                    f"{PREDICTIONS_KEY!r} (pycocotools ignores it); write results=true for a "
                    "standard results file")
            next_id = 1
            for r in pending:
                while next_id in w.used_ids:
                    next_id += 1
                r["id"] = next_id
                w.used_ids.add(next_id)
                r_ordered = {"id": r.pop("id"), **r}
                gt.add(_dumps(r_ordered))
            _write_gt(destination, coco_info, images, gt, preds if n_pred else None, w)
    finally:
        gt.discard()
        preds.discard()


def _write_gt(destination: Path, coco_info: dict[str, Any], images: list[bytes], gt: _Stream,
              preds: _Stream | None, w: _Writer) -> None:
    top = coco_info.get("top") or {}
    keys = [k for k in (coco_info.get("keys") or _DEFAULT_TOP)]
    for k in ("images", "annotations", "categories"):
        if k not in keys:
            keys.append(k)
    if preds is not None:
        keys.append(PREDICTIONS_KEY)
    cats = []
    for c in w.categories:
        rec: dict[str, Any] = {"id": c.id, "name": c.name}
        if c.supercategory is not None:
            rec["supercategory"] = c.supercategory
        if c.keypoints is not None:
            rec["keypoints"] = c.keypoints
        if c.skeleton is not None:
            rec["skeleton"] = [[a + 1, b + 1] for a, b in c.skeleton]
        rec.update(c.attributes)
        cats.append(rec)
    with open(destination, "wb") as out:
        out.write(b"{")
        for n, key in enumerate(keys):
            if n:
                out.write(b",")
            out.write(_dumps(key) + b":")
            if key == "images":
                out.write(b"[" + b",".join(images) + b"]")
            elif key == "annotations":
                out.write(b"[")
                gt.copy_to(out)
                out.write(b"]")
            elif key == PREDICTIONS_KEY and preds is not None:
                out.write(b"[")
                preds.copy_to(out)
                out.write(b"]")
            elif key == "categories":
                out.write(_dumps(cats))
            else:
                out.write(_dumps(top.get(key)))
        out.write(b"}")


# --------------------------------------------------------------------------- detect


def detect(path: Path) -> bool:
    """A ``.json`` file that starts like a COCO object or a COCO results list."""
    if not path.is_file() or path.suffix.lower() != ".json":
        return False
    with open(path, "rb") as fh:
        head = fh.read(1 << 20)
    start = head.lstrip()[:1]
    if b'"segments_info"' in head:
        return False  # COCO panoptic
    if start == b"[":
        return b'"image_id"' in head and b'"category_id"' in head
    if start == b"{":
        return b'"images"' in head or (b'"annotations"' in head and b'"image_id"' in head)
    return False


FORMAT = Format(
    name="coco",
    description="COCO detection / instance segmentation / keypoints / stuff JSON and results lists",
    capabilities=Capabilities(annotation_types=KINDS, prediction_types=KINDS,
                              attributes=frozenset({"iscrowd", "area", "bbox", "category_id", "num_keypoints"})),
    read=read,
    write=write,
    detect=detect,
    read_options=CocoReadOptions,
    write_options=CocoWriteOptions,
)


@hookimpl
def register_formats() -> list[Format]:
    return [FORMAT]
