"""Writing COCO JSON and COCO results lists (the mapping is in the package docstring)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from annobridge.core import derive
from annobridge.core.formats import Context
from annobridge.core.model import (
    Category,
    Dataset,
    DatasetHeader,
    DatasetItem,
    KeypointsAnnotation,
)
from annobridge.core.paths import path_problem, source_root
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
    from annobridge.plugins.coco import CocoWriteOptions

_GT_SPECIAL = frozenset({ABSENT, "category_id", "bbox", "segmentation", "keypoints",
                         "num_keypoints", "id", "image_id"})
_RES_SPECIAL = _GT_SPECIAL - {"id"}


def _dumps(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj)
    except TypeError:  # integers beyond 64 bits
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


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
            ad = ann.__dict__
            t = ad["type"]
            if t == "keypoints":
                kp = ann
            elif t == "box":
                box = ann
            else:
                main = ann
            if (ad["track_reference_id"] is not None or ad["class_pdf"] is not None
                    or ad.get("embedding_vector") is not None or ad.get("taxonomy_name") is not None):
                self._count_losses(ad)
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
        cid = attrs.get("category_id") if attrs else None
        cid = self.by_name.get(label) if cid is None else self.category_id(label, attrs)
        if cid is None:
            cid = self.category_id(label, attrs)
        rec: dict[str, Any]
        if results:
            rec = {"image_id": image_id, "category_id": cid}
        else:
            gid = d["group_id"]
            canonical = gid is not None and gid.isdigit() and gid.isascii() and (gid[0] != "0" or gid == "0")
            if canonical:
                oid: Any = int(gid)  # str(oid) == gid
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
            if gid is not None and not (canonical and "id" in rec) and str(rec.get("id")) != gid:
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


def _light(payload: tuple[Any, ...]) -> bool:
    """An item with no mask to measure (``Context.map``'s ``here``: encoded in the driver; a box's
    area or a polygon's costs less than sending the item to a worker)."""
    return not any(job[2] is not None and job[2].type == "object_mask" for job in payload[3])


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
    # orjson's bytes keep a 4 KB buffer however short the output: kept in a list, the image
    # records of 50,000 images held 200 MB, so they go to a file like the annotations
    images = _Stream(destination.parent, destination.name + ".images")
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

        for image_bytes, gt_bytes, gt_pending, pred_bytes in context.map(_encode_item, prepared(), here=_light):
            images.add(image_bytes)
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
        images.discard()
        gt.discard()
        preds.discard()


def _write_gt(destination: Path, coco_info: dict[str, Any], images: _Stream, gt: _Stream,
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
                out.write(b"[")
                images.copy_to(out)
                out.write(b"]")
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


