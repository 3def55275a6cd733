"""Write the canonical model as a Pascal VOC tree.

The spec is the package docstring (``plugins/pascal_voc/__init__.py``).
"""

from __future__ import annotations

import io
import logging
import os
import shutil
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import numpy as np
from PIL import Image

from annobridge.core.derive import object_mask_to_box
from annobridge.core.errors import WriteError
from annobridge.core.formats import Context
from annobridge.core.model import (
    BoxAnnotation,
    Category,
    Dataset,
    DatasetItem,
    ObjectMaskAnnotation,
    SegmentationAnnotation,
)
from annobridge.core.paths import contained
from annobridge.plugins.pascal_voc.common import (
    IGNORED,
    INFO_KEY,
    OBJECT_KEYS,
    VOC_CLASSES,
    VOC_COLORMAP,
    VOC_ACTIONS,
    VOC_PERSON_PARTS,
    VOID,
    Coordinates,
    LabelEntry,
    corner_texts,
    format_labelmap,
)
from annobridge.plugins.pascal_voc.read import derived_flag

logger = logging.getLogger(__name__)

MAX_CLASSES = VOID  # class indices 0..254; 255 is void


# --------------------------------------------------------------------------- XML text


_PADS = ["\t" * n for n in range(8)]


def _el(tag: str, text: Any, depth: int) -> str:
    pad = _PADS[depth]
    if text is None:
        return f"{pad}<{tag} />\n"
    text = str(text)
    if "&" in text or "<" in text or ">" in text:
        text = escape(text)
    return f"{pad}<{tag}>{text}</{tag}>\n"


def _tree_text(node: dict[str, Any], depth: int) -> str:
    """An element kept from the source (see ``read.element_tree``), re-indented."""
    tag = node["tag"]
    attrib = "".join(f" {k}={quoteattr(str(v))}" for k, v in (node.get("attrib") or {}).items())
    pad = "\t" * depth
    children = node.get("children")
    if children:
        inner = "".join(_tree_text(c, depth + 1) for c in children)
        return f"{pad}<{tag}{attrib}>\n{inner}{pad}</{tag}>\n"
    text = node.get("text")
    if text is None:
        return f"{pad}<{tag}{attrib} />\n"
    return f"{pad}<{tag}{attrib}>{escape(text)}</{tag}>\n"


def _with_extra(known: list[str], extra: Any, depth: int) -> str:
    """Known children in the devkit's order, with kept unknown ones back at their positions."""
    out = list(known)
    if isinstance(extra, list):
        for node in sorted((n for n in extra if isinstance(n, dict) and "tag" in n),
                           key=lambda n: n.get("at", len(out))):
            at = node.get("at")
            pos = at if isinstance(at, int) and 0 <= at <= len(out) else len(out)
            out.insert(pos, _tree_text(node, depth))
    return "".join(out)


def _flag_text(value: Any) -> str:
    if value is True or value is False:
        return "1" if value else "0"
    return str(value)


# --------------------------------------------------------------------------- class list


@dataclass
class ClassList:
    """Class names in mask-index order (0 = background), grown as new labels appear."""

    entries: list[LabelEntry]
    index: dict[str, int]
    forced: bool  # the source had a labelmap.txt, or the header's classes are not VOC's

    @classmethod
    def from_header(cls, categories: list[Category], had_labelmap: bool) -> ClassList:
        cats = sorted(categories, key=lambda c: c.id)
        names = [c.name for c in cats]
        if not names or set(names) <= set(VOC_CLASSES) and not any(c.attributes for c in cats):
            entries = [LabelEntry(n) for n in VOC_CLASSES]
            forced = had_labelmap
        else:
            entries = [] if "background" in names else [LabelEntry("background")]
            for c in cats:
                color = c.attributes.get("color")
                rgb = tuple(color) if isinstance(color, (list, tuple)) and len(color) == 3 else None
                entries.append(LabelEntry(c.name, rgb,  # type: ignore[arg-type]
                                          [str(p) for p in c.attributes.get("parts") or []],
                                          [str(a) for a in c.attributes.get("actions") or []]))
            if "background" in names:  # keep the background at index 0
                entries.sort(key=lambda e: e.name != "background")
            forced = True
        return cls(entries, {e.name: i for i, e in enumerate(entries)}, forced)

    def of(self, label: str) -> int:
        i = self.index.get(label)
        if i is None:
            i = len(self.entries)
            self.entries.append(LabelEntry(label))
            self.index[label] = i
            self.forced = True
        return i

    def add_part(self, parent: str, part: str) -> None:
        entry = self.entries[self.of(parent)]
        if part not in entry.parts:
            entry.parts.append(part)
            if not (parent == "person" and part in VOC_PERSON_PARTS):
                self.forced = True

    def palette(self) -> list[int]:
        colors = list(VOC_COLORMAP)
        for i, e in enumerate(self.entries[:MAX_CLASSES]):
            if e.color is not None:
                colors[i] = e.color
        return [c for rgb in colors for c in rgb]

    def labelmap(self) -> str:
        """Every class with its colour (datumaro reads mask colours from here and only from
        here once the file exists), then datumaro's ``ignored`` line for VOC's void 255."""
        entries = [LabelEntry(e.name, e.color or VOC_COLORMAP[i % 256], e.parts, e.actions)
                   for i, e in enumerate(self.entries)]
        if IGNORED not in self.index:
            entries.append(LabelEntry(IGNORED, VOC_COLORMAP[VOID]))
        return format_labelmap(entries)


# --------------------------------------------------------------------------- writer


@dataclass
class Writer:
    dest: Path
    coordinates: Coordinates
    media: str
    split: str
    class_lists: bool | None
    context: Context
    classes: ClassList
    info: dict[str, Any]
    lists: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    flag_rows: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # split -> class -> rows
    filenames: set[str] = field(default_factory=set)
    source_dir: Path | None = None  # where relative image locations of the source start
    drops: dict[tuple[str, str], int] = field(default_factory=dict)

    def drop(self, what: str, reason: str, n: int = 1) -> None:
        """Count a loss; the counts go to the report when the writer finishes (one report call
        per kind instead of one per object)."""
        key = (what, reason)
        self.drops[key] = self.drops.get(key, 0) + n

    def path(self, folder: str, name: str, item: str) -> Path:
        return contained(self.dest / folder, name, what=f"{folder} file name", item=item, error=WriteError)

    def with_box(self, mask: ObjectMaskAnnotation, n: int, heads: list[BoxAnnotation], head_groups: set[Any],
                 item: DatasetItem) -> ObjectMaskAnnotation:
        """A SegmentationObject value is the position of its object's XML box: a mask with no box
        in its group gets one derived from it (its COCO bbox, else its extent) and appended to
        ``heads``, so the object is written whole (reported as converted)."""
        if mask.group_id is not None and mask.group_id in head_groups:
            return mask
        group = mask.group_id if mask.group_id is not None else f"{item.reference_id}:mask{n}"
        mask = mask.model_copy(update={"group_id": group})
        box = object_mask_to_box(mask, item, [])
        if box is None:  # an empty mask: nothing to box; write_object_png reports it
            return mask
        heads.append(box)
        head_groups.add(group)
        self.context.report.convert("object_mask", "box", 1, consumed=0, made=1)
        return mask

    def write_item(self, item: DatasetItem) -> None:
        ref = item.reference_id
        if any(c in ref for c in "\n\r\t") or ref != ref.strip():
            raise WriteError("a VOC id cannot hold line breaks, tabs or surrounding spaces (ImageSets "
                             "lists are one id per line)", item=ref)
        xml_path = self.path("Annotations", ref + ".xml", ref)
        boxes = [a for a in item.annotations if isinstance(a, BoxAnnotation)]
        heads = [b for b in boxes if not b.attributes.get("part")]
        parts: dict[str, list[BoxAnnotation]] = {}
        head_groups = {b.group_id for b in heads if b.group_id is not None}
        for b in boxes:
            if b.attributes.get("part"):
                if b.group_id in head_groups:
                    parts.setdefault(b.group_id, []).append(b)  # type: ignore[arg-type]
                else:
                    self.drop("box", "a <part> box whose object box (same group_id) is missing")
        seg = next((a for a in item.annotations if isinstance(a, SegmentationAnnotation)), None)
        masks = [self.with_box(m, n, heads, head_groups, item)
                 for n, m in enumerate(a for a in item.annotations if isinstance(a, ObjectMaskAnnotation))]
        class_arr = self.write_class_png(item, seg) if seg is not None else None
        wrote_objects = self.write_object_png(item, heads, masks, class_arr) if masks else False
        attrs = item.attributes
        filename = attrs.get("voc_filename")
        if not isinstance(filename, str):
            filename = self.filename_for(item)
        segmented = attrs.get("segmented", 1 if (class_arr is not None or wrote_objects) else 0)
        root = []
        if "voc_folder" in attrs:
            root.append(_el("folder", attrs["voc_folder"], 1))
        root.append(_el("filename", filename, 1))
        if item.width is not None and item.height is not None and not attrs.get("voc_no_size"):
            size = _el("width", item.width, 2) + _el("height", item.height, 2)
            if attrs.get("depth") is not None:
                size += _el("depth", attrs["depth"], 2)
            root.append(f"\t<size>\n{size}\t</size>\n")
        root.append(_el("segmented", _flag_text(segmented), 1))
        for b in heads:
            root.append(self.object_xml(b, parts.get(b.group_id, []) if b.group_id else [], ref))
        text = "<annotation>\n" + _with_extra(root, attrs.get("voc_extra"), 1) + "</annotation>\n"
        xml_path.parent.mkdir(parents=True, exist_ok=True)
        xml_path.write_text(text, encoding="utf-8")
        self.record_lists(item, heads, seg is not None or wrote_objects)
        self.copy_media(item, filename)

    def filename_for(self, item: DatasetItem) -> str:
        """The image's own base name (COCO ``file_name``...), else ``<id>.jpg``; a base name
        another item already took becomes ``<id>`` + its suffix."""
        loc = item.image_location
        name = loc.replace("\\", "/").rsplit("/", 1)[-1] if loc else ""
        if not name or name in self.filenames or "/" in item.reference_id:
            name = item.reference_id + (Path(name).suffix or ".jpg")
        self.filenames.add(name)
        return name

    def bndbox(self, b: BoxAnnotation, depth: int) -> str:
        texts = corner_texts(b.x, b.y, b.width, b.height, self.coordinates)
        kept = b.attributes.get("voc_text")
        if isinstance(kept, dict):
            for k, t in kept.items():
                if k in texts and isinstance(t, str) and _same_number(t, texts[k]):
                    texts[k] = t
        pad = "\t" * depth
        inner = "".join(_el(k, texts[k], depth + 1) for k in ("xmin", "ymin", "xmax", "ymax"))
        return f"{pad}<bndbox>\n{inner}{pad}</bndbox>\n"

    def object_xml(self, b: BoxAnnotation, parts: list[BoxAnnotation], ref: str) -> str:
        a = b.attributes
        known = [_el("name", b.label, 2)]
        if "pose" in a:
            known.append(_el("pose", a["pose"], 2))
        for key in ("truncated", "difficult", "occluded"):
            if key in a:
                known.append(_el(key, _flag_text(a[key]), 2))
        known.append(self.bndbox(b, 2))
        for p in parts:
            self.classes.add_part(b.label, p.label)
            known.append(f"\t\t<part>\n{_el('name', p.label, 3)}{self.bndbox(p, 3)}\t\t</part>\n")
            self.report_attributes(p, skip={"part", "voc_text"})
        actions = a.get("actions")
        if isinstance(actions, dict):
            inner = "".join(_el(k, _flag_text(v), 3) for k, v in actions.items())
            known.append(f"\t\t<actions>\n{inner}\t\t</actions>\n")
            entry = self.classes.entries[self.classes.of(b.label)]
            for k in actions:
                if k not in entry.actions:
                    entry.actions.append(k)
                    if not (b.label == "person" and k in VOC_ACTIONS):
                        self.classes.forced = True
        else:
            self.classes.of(b.label)
        extra_attrs = []
        for k, v in a.items():
            if k in OBJECT_KEYS:
                continue
            if isinstance(v, (dict, list)):
                self.drop(f"attribute:{k}", "VOC <attributes> hold text values, not lists or objects")
                continue
            if not isinstance(v, str) and v is not None:
                self.drop(f"attribute:{k} type", "VOC <attributes> hold text: read back as a string")
            extra_attrs.append(f"\t\t\t<attribute>\n{_el('name', k, 4)}{_el('value', _flag_text(v) if v is not None else None, 4)}\t\t\t</attribute>\n")
        if extra_attrs:
            known.append("\t\t<attributes>\n" + "".join(extra_attrs) + "\t\t</attributes>\n")
        extra = a.get("voc_extra")
        return "\t<object>\n" + ("".join(known) if extra is None else _with_extra(known, extra, 2)) + "\t</object>\n"

    def report_attributes(self, b: BoxAnnotation, skip: set[str]) -> None:
        lost = [k for k in b.attributes if k not in skip]
        for k in lost:
            self.drop(f"attribute:{k}", "a VOC <part> holds a name and a bndbox only")

    # ---- masks

    def write_class_png(self, item: DatasetItem, seg: SegmentationAnnotation) -> np.ndarray:
        arr = seg.mask.load()
        lut: dict[int, int] = {}
        labels: dict[str, int] = {}
        for s in seg.annotations:
            idx = self.classes.of(s.label)
            if idx >= MAX_CLASSES:
                raise WriteError(f"class {s.label!r} would get mask index {idx}; a VOC mask holds 255 "
                                 "classes (255 is void)", item=item.reference_id)
            lut[s.index] = idx
            labels[s.label] = labels.get(s.label, 0) + 1
        merged = sum(n - 1 for n in labels.values())
        if merged:
            self.drop("segment", "SegmentationClass holds one value per class: segments of one "
                      "label are merged (instance identity is lost)", merged)
        out = np.full(arr.shape, VOID, dtype=np.uint8)
        if arr.size:
            values, inverse = np.unique(arr, return_inverse=True)
            mapped = np.array([lut.get(int(v), VOID) for v in values], dtype=np.uint8)
            out = mapped[inverse].reshape(arr.shape)
        self.save_png(out, self.path("SegmentationClass", item.reference_id + ".png", item.reference_id))
        return out

    def write_object_png(self, item: DatasetItem, heads: list[BoxAnnotation],
                         masks: list[ObjectMaskAnnotation], class_arr: np.ndarray | None) -> bool:
        position = {b.group_id: k for k, b in enumerate(heads, 1) if b.group_id is not None}
        placed: list[tuple[int, ObjectMaskAnnotation]] = []
        taken: set[int] = set()
        for m in masks:
            k = position.get(m.group_id) if m.group_id is not None else None
            if k is None:
                inst = m.attributes.get("voc_instance")
                if isinstance(inst, int) and len(heads) < inst < VOID and inst not in taken:
                    k = inst
            if k is None or k in taken or k >= VOID:
                self.drop("object_mask", "a SegmentationObject value is the position of the object's "
                          "XML box: the mask has no box with its group_id (or a second mask for it)")
                continue
            taken.add(k)
            placed.append((k, m))
        if not placed:
            return False
        h, w = placed[0][1].size
        out = np.zeros((h, w), dtype=np.uint8)
        overlap = 0
        for k, m in placed:
            if tuple(m.size) != (h, w):
                self.drop("object_mask", "its size differs from the item's other masks")
                continue
            binary = m.to_array().astype(bool)
            overlap += int(np.count_nonzero(binary & (out != 0)))
            out[binary] = k
        if overlap:
            self.drop("object_mask pixel", "SegmentationObject holds one object per pixel: overlaps "
                      "go to the later object", overlap)
        if class_arr is not None and class_arr.shape == out.shape:
            out[(class_arr == VOID) & (out == 0)] = VOID
        self.save_png(out, self.path("SegmentationObject", item.reference_id + ".png", item.reference_id),
                      instances=True)
        return True

    def save_png(self, arr: np.ndarray, path: Path, instances: bool = False) -> None:
        img = Image.frombytes("P", (arr.shape[1], arr.shape[0]), np.ascontiguousarray(arr, np.uint8).tobytes())
        img.putpalette([c for rgb in VOC_COLORMAP for c in rgb] if instances else self.classes.palette())
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        path.write_bytes(buf.getvalue())

    # ---- lists and media

    def record_lists(self, item: DatasetItem, heads: list[BoxAnnotation], has_masks: bool) -> None:
        ref = item.reference_id
        sets = item.attributes.get("voc_imagesets")
        if not isinstance(sets, dict) or not sets:
            split = item.attributes.get("split")
            split = split if isinstance(split, str) and split else self.split
            sets = {"Main": [split]}
            if has_masks:
                sets["Segmentation"] = [split]
        for folder, splits in sets.items():
            for s in splits if isinstance(splits, list) else []:
                self.lists.setdefault((str(folder), str(s)), []).append(ref)
        if self.class_lists is False:
            return
        flags = item.attributes.get("voc_class_flags") or {}
        for s in sets.get("Main", []) if isinstance(sets.get("Main"), list) else []:
            given = flags.get(s, {}) if isinstance(flags, dict) else {}
            rows = self.flag_rows.setdefault(s, {})
            for cls in self.class_list_names(s):
                flag = given.get(cls, derived_flag(heads, cls))
                rows.setdefault(cls, []).append(f"{ref} {int(flag):2d}")

    def class_list_names(self, split: str) -> list[str]:
        if self.class_lists is True:
            return [e.name for e in self.classes.entries[1:]]
        lists = self.info.get("class_lists") or {}
        return list(lists.get(split, [])) if isinstance(lists, dict) else []

    def copy_media(self, item: DatasetItem, filename: str) -> None:
        if self.media == "none":
            return
        src = item.image_location
        if src and "://" not in src and not os.path.isfile(src) and self.source_dir is not None:
            src = str(self.source_dir / src)  # a location as written in the source (COCO file_name)
        if not src or "://" in src or not os.path.isfile(src):
            verb = "copied" if self.media == "copy" else "linked"
            self.drop("image file", f"missing or not a local file; not {verb} into JPEGImages/")
            return
        target = self.path("JPEGImages", filename, item.reference_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        if self.media == "copy":
            shutil.copyfile(src, target)
        else:
            os.symlink(os.path.abspath(src), target)

    def finish(self) -> None:
        for (folder, split), refs in sorted(self.lists.items()):
            path = self.path(f"ImageSets/{folder}", split + ".txt", "")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(r + "\n" for r in refs), encoding="utf-8")
        for split, per_class in sorted(self.flag_rows.items()):
            for cls, rows in per_class.items():
                if "/" in cls or "\\" in cls:
                    self.drop("per-class list", "a class name with a path separator cannot name "
                              "ImageSets/Main/<class>_<split>.txt")
                    continue
                path = self.path("ImageSets/Main", f"{cls}_{split}.txt", "")
                path.write_text("".join(r + "\n" for r in rows), encoding="utf-8")
        other = self.info.get("other_imagesets") or {}
        for name, text in other.items() if isinstance(other, dict) else ():
            path = self.path("ImageSets", name, "")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        if self.classes.forced:
            bad = [n for e in self.classes.entries for n in (e.name, *e.parts, *e.actions)
                   if ":" in n or "\n" in n or (n != e.name and "," in n)]
            if bad:
                raise WriteError(f"name {bad[0]!r} cannot be written to labelmap.txt (':' and line breaks "
                                 "separate its fields, ',' its parts and actions)",
                                 file=(self.context.final_destination or self.dest) / "labelmap.txt",
                                 fix="rename the class")
            (self.dest / "labelmap.txt").write_text(self.classes.labelmap(), encoding="utf-8")
        for (what, reason), n in self.drops.items():
            self.context.report.drop(what, reason, n)


def _same_number(a: str, b: str) -> bool:
    try:
        return Decimal(a.strip()) == Decimal(b)
    except InvalidOperation:
        return False


def write(dataset: Dataset, destination: Path, coordinates: Coordinates, media: str, split: str,
          class_lists: bool | None, context: Context) -> None:
    info = dataset.header.info.get(INFO_KEY) or {}
    info = info if isinstance(info, dict) else {}
    classes = ClassList.from_header(dataset.header.categories, bool(info.get("labelmap")))
    destination.mkdir(parents=True, exist_ok=True)
    writer = Writer(destination, coordinates, media, split, class_lists, context, classes, info)
    if dataset.source:
        src = Path(dataset.source)
        writer.source_dir = src if src.is_dir() else src.parent
    for item in dataset.items:
        writer.write_item(item)
    writer.finish()
