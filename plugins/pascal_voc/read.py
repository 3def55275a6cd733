"""Read a Pascal VOC tree (or a flat folder of VOC XML files) into the canonical model.

The spec is the package docstring (``plugins/pascal_voc/__init__.py``).
"""

from __future__ import annotations

import logging
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from annobridge.core.errors import ReadError
from annobridge.core.formats import Context
from annobridge.core.limits import open_image
from annobridge.core.model import (
    BoxAnnotation,
    Category,
    Dataset,
    DatasetHeader,
    DatasetItem,
    IndexMask,
    ObjectMaskAnnotation,
    Segment,
    SegmentationAnnotation,
)
from annobridge.core.paths import contained
from annobridge.plugins.pascal_voc.common import (
    Layout,
    INFO_KEY,
    VOC_CLASSES,
    VOC_COLORMAP,
    VOID,
    Coordinates,
    LabelEntry,
    box_from_corners,
    is_integral_text,
    model_number,
    parse_coordinate,
    corner_texts,
    find_layout,
    is_voc_xml,
    read_labelmap,
)

logger = logging.getLogger(__name__)

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
_DTD = re.compile(rb"<!(DOCTYPE|ENTITY)", re.I)
KNOWN_ROOT = ("folder", "filename", "size", "segmented", "object")
KNOWN_OBJECT = ("name", "pose", "truncated", "difficult", "occluded", "bndbox", "part", "actions",
                "attributes")


def _walk(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """id (relative path without suffix, '/'-separated) -> file, for files under ``folder``."""
    out: dict[str, Path] = {}
    if not folder.is_dir():
        return out
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        rel = os.path.relpath(dirpath, folder)
        for name in filenames:
            stem, ext = os.path.splitext(name)
            if ext.lower() in suffixes:
                key = stem if rel == "." else f"{rel.replace(os.sep, '/')}/{stem}"
                out.setdefault(key, Path(dirpath) / name)
    return out


# --------------------------------------------------------------------------- ImageSets


@dataclass
class ImageSets:
    """Membership lists and per-class flags read from ``ImageSets/``."""

    member: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # id -> folder -> splits
    flags: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)  # id -> split -> class -> flag
    class_lists: dict[str, list[str]] = field(default_factory=dict)  # split -> classes with a file
    other: dict[str, str] = field(default_factory=dict)  # "Action/x_train.txt" -> text, verbatim
    order: list[str] = field(default_factory=list)


def read_imagesets(layout: Layout, classes: set[str], context: Context) -> ImageSets:
    sets = ImageSets()
    folder = layout.imagesets
    if not folder.is_dir():
        return sets
    seen: set[str] = set()

    def add(item_id: str, sub: str, split: str) -> None:
        splits = sets.member.setdefault(item_id, {}).setdefault(sub, [])
        if split not in splits:
            splits.append(split)
        if item_id not in seen:
            seen.add(item_id)
            sets.order.append(item_id)

    for sub in sorted(p.name for p in folder.iterdir() if p.is_dir()):
        files = sorted(p for p in (folder / sub).iterdir() if p.suffix == ".txt" and p.is_file())
        if sub not in ("Main", "Segmentation"):
            for f in files:
                sets.other[f"{sub}/{f.name}"] = f.read_text(encoding="utf-8")
            continue
        plain = {f.stem for f in files}
        for f in files:
            cls, _, split = f.stem.rpartition("_")
            per_class = sub == "Main" and cls and (cls in classes or split in plain)
            lines = f.read_text(encoding="utf-8").splitlines()
            if per_class:
                sets.class_lists.setdefault(split, []).append(cls)
            for n, raw in enumerate(lines, 1):
                line = raw.strip()
                if not line or line.startswith("#"):
                    continue
                if not per_class:
                    add(line, sub, f.stem)
                    continue
                parts = line.rsplit(maxsplit=1)
                if len(parts) != 2 or parts[1] not in ("1", "0", "-1"):
                    context.error(ReadError(f"per-class list line {line!r} is not '<id> <1|0|-1>'",
                                            file=f, where=f"line {n}"))
                    continue
                sets.flags.setdefault(parts[0], {}).setdefault(split, {})[cls] = int(parts[1])
                if parts[0] not in seen:
                    seen.add(parts[0])
                    sets.order.append(parts[0])
    return sets


def derived_flag(objects: list[BoxAnnotation], cls: str) -> int:
    """The devkit's image-level flag for ``cls``: 1 = a non-difficult object of it, 0 = only
    difficult ones, -1 = none."""
    found = [o for o in objects if o.label == cls]
    if not found:
        return -1
    return 1 if any(not _truthy(o.attributes.get("difficult")) for o in found) else 0


def _truthy(value: Any) -> bool:
    return value not in (None, 0, "0", "", False)


# --------------------------------------------------------------------------- XML


def _parse_xml(path: Path, item: str) -> ET.Element:
    data = path.read_bytes()
    if _DTD.search(data):
        raise ReadError("the XML declares a DOCTYPE or ENTITY; VOC annotations never do, and "
                        "entities are refused for safety", file=path, item=item)
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        line, col = exc.position
        raise ReadError(f"XML is not well-formed: {exc.msg if hasattr(exc, 'msg') else exc}",
                        file=path, where=f"line {line}, column {col + 1}", item=item) from None
    if root.tag != "annotation":
        raise ReadError(f"root element is <{root.tag}>, expected <annotation>", file=path, item=item)
    return root


def element_tree(el: ET.Element, index: int) -> dict[str, Any]:
    """An unknown element as JSON data (tag, attrib, text, children) and its position."""
    out: dict[str, Any] = {"at": index, **_tree(el)}
    return out


def _tree(el: ET.Element) -> dict[str, Any]:
    node: dict[str, Any] = {"tag": el.tag}
    if el.attrib:
        node["attrib"] = dict(el.attrib)
    children = list(el)
    if children:
        node["children"] = [_tree(c) for c in children]
    else:
        node["text"] = el.text
    return node


def _text(el: ET.Element | None) -> str | None:
    if el is None:
        return None
    return el.text if el.text is not None else ""


def _flag(text: str) -> int | str:
    t = text.strip()
    return int(t) if is_integral_text(t) else text


@dataclass
class ItemParser:
    """Turns one XML file into item fields and annotations."""

    coordinates: Coordinates
    context: Context
    warned: bool = False

    def box(self, el: ET.Element, label: str, file: Path, where: str, item: str,
            fields: dict[str, Any]) -> BoxAnnotation:
        bnd = el.find("bndbox")
        if bnd is None:
            raise ReadError("object has no <bndbox>", file=file, where=where, item=item)
        tokens = {k: _text(bnd.find(k)) for k in ("xmin", "ymin", "xmax", "ymax")}
        d = {k: parse_coordinate(t, f"bndbox/{k}", file, where) for k, t in tokens.items()}
        x, y, w, h = box_from_corners(d["xmin"], d["ymin"], d["xmax"], d["ymax"], self.coordinates)
        if self.coordinates == "devkit" and (x < 0 or y < 0) and not self.warned:
            self.warned = True
            logger.warning("%s (item %r): a corner below 1 is not a 1-based devkit pixel; if the files "
                           "were written with 0-based corners (datumaro, Roboflow, labelformat), read "
                           "with --option coordinates=corners", file, item)
        ints = {k: is_integral_text(t or "") for k, t in tokens.items()}
        if w < 0 or h < 0:
            raise ReadError(f"bndbox has xmax {tokens['xmax']} < xmin {tokens['xmin']} or ymax "
                            f"{tokens['ymax']} < ymin {tokens['ymin']}", file=file, where=where,
                            item=item, fix="swap the corners")
        values = {"x": model_number(x, ints["xmin"]), "y": model_number(y, ints["ymin"]),
                  "width": model_number(w, ints["xmin"] and ints["xmax"]),
                  "height": model_number(h, ints["ymin"] and ints["ymax"])}
        # the writer's text for these values; where the source text differs, keep it
        written = corner_texts(values["x"], values["y"], values["width"], values["height"], self.coordinates)
        text = {k: t for k, t in tokens.items() if t != written[k]}
        attrs = fields.setdefault("attributes", {})
        if text:
            attrs["voc_text"] = text
        extra = [element_tree(c, i) for i, c in enumerate(bnd) if c.tag not in tokens]
        if extra:
            self.context.report.drop("voc element", "unknown elements inside <bndbox> are not kept",
                                     len(extra))
        return BoxAnnotation.model_construct(type="box", label=label, **values, **_base(fields))

    def objects(self, root: ET.Element, file: Path, item: str) -> list[BoxAnnotation]:
        out: list[BoxAnnotation] = []
        for k, obj in enumerate(root.iterfind("object"), 1):
            where = f"<object> {k}"
            name = _text(obj.find("name"))
            if name is None:
                raise ReadError("object has no <name>", file=file, where=where, item=item)
            attrs: dict[str, Any] = {}
            extra = []
            for i, child in enumerate(obj):
                tag = child.tag
                if tag in ("pose",):
                    attrs["pose"] = _text(child)
                elif tag in ("truncated", "difficult", "occluded"):
                    attrs[tag] = _flag(_text(child) or "")
                elif tag == "actions":
                    attrs["actions"] = {a.tag: _flag(_text(a) or "") for a in child}
                elif tag == "attributes":
                    for a in child.iter("attribute"):
                        key = _text(a.find("name"))
                        if key is None:
                            raise ReadError("<attribute> has no <name>", file=file, where=where, item=item)
                        attrs[key] = _text(a.find("value"))
                elif tag not in KNOWN_OBJECT:
                    extra.append(element_tree(child, i))
            if extra:
                attrs["voc_extra"] = extra
            group = str(k)
            fields = {"attributes": attrs, "annotation_id": group, "group_id": group, "reference_id": item}
            out.append(self.box(obj, name, file, where, item, fields))
            for j, part in enumerate(obj.iterfind("part"), 1):
                pname = _text(part.find("name"))
                if pname is None:
                    raise ReadError("part has no <name>", file=file, where=f"{where} <part> {j}", item=item)
                pfields = {"attributes": {"part": True}, "annotation_id": f"{k}.{j}", "group_id": group,
                           "reference_id": item}
                out.append(self.box(part, pname, file, f"{where} <part> {j}", item, pfields))
        return out


def _base(fields: dict[str, Any]) -> dict[str, Any]:
    return {"reference_id": fields.get("reference_id"), "annotation_id": fields.get("annotation_id"),
            "group_id": fields.get("group_id"), "track_reference_id": None, "metadata": {},
            "attributes": fields.get("attributes", {}), "confidence": None, "class_pdf": None,
            "embedding_vector": None}


# --------------------------------------------------------------------------- masks


def read_index_png(path: Path, item: str, colors: dict[tuple[int, int, int], int]) -> tuple[np.ndarray, bool]:
    """A VOC mask's indices, and whether the PNG stores them directly (palette or grey).

    Palette PNGs (the devkit's) give their palette indices; RGB PNGs are mapped through
    the colormap (``colors``: colour -> index); an unknown colour is a ReadError."""
    with open_image(path, what="mask PNG", item=item) as img:  # header checked before decoding
        if img.mode in ("P", "L"):
            return np.asarray(img).astype(np.uint32), True
        if img.mode not in ("RGB", "RGBA"):
            raise ReadError(f"mask PNG has mode {img.mode}, expected a palette (P) PNG", file=path,
                            item=item)
        rgb = np.asarray(img.convert("RGB"), dtype=np.uint32)
    code = rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]
    values, inverse = np.unique(code, return_inverse=True)
    lut = np.zeros(values.size, dtype=np.uint32)
    for n, v in enumerate(values.tolist()):
        color = (v >> 16, (v >> 8) & 255, v & 255)
        if color not in colors:
            raise ReadError(f"mask colour {color} is not in the colormap", file=path, item=item,
                            fix="add the class to labelmap.txt with this colour")
        lut[n] = colors[color]
    return lut[inverse].reshape(code.shape), False


@dataclass
class MaskReader:
    classes: list[str]
    colors: dict[tuple[int, int, int], int]
    instance_colors: dict[tuple[int, int, int], int]
    context: Context
    strict: bool = False
    """Refuse a class mask value beyond the class list; otherwise it is kept as an unlabelled
    (void) value of the mask, with one warning per file."""

    def semantic(self, path: Path, item: str) -> tuple[SegmentationAnnotation, np.ndarray]:
        arr, direct = read_index_png(path, item, self.colors)
        segments = []
        unlabelled = []
        for v in np.unique(arr).tolist():
            if v == VOID:
                continue
            if v >= len(self.classes):
                if self.strict:
                    raise ReadError(f"mask value {v} has no class (the class list has {len(self.classes)})",
                                    file=path, item=item, fix="list the classes in labelmap.txt")
                unlabelled.append(v)
                continue
            segments.append(Segment(label=self.classes[v], index=v))
        if unlabelled:
            self.context.warn(ReadError(
                f"mask values {unlabelled} have no class (the class list has {len(self.classes)}); kept as "
                "unlabelled pixels (--option strict=true refuses them)", file=path, item=item,
                fix="list the classes in labelmap.txt"))
        mask = IndexMask(location=str(path)) if direct else IndexMask.from_array(arr)
        seg = SegmentationAnnotation(mask=mask, annotations=segments, reference_id=item,
                                     annotation_id="segmentation")
        return seg, arr

    def instances(self, path: Path, item: str, objects: list[BoxAnnotation],
                  classes_arr: np.ndarray | None) -> list[ObjectMaskAnnotation]:
        arr, _ = read_index_png(path, item, self.instance_colors)
        if classes_arr is not None:
            differ = int(np.count_nonzero((arr == VOID) != (classes_arr == VOID)))
            if differ:
                self.context.report.drop("SegmentationObject void pixel", "void in SegmentationObject "
                                         "is written from SegmentationClass void", differ)
        elif (arr == VOID).any():
            self.context.report.drop("SegmentationObject void pixel", "no SegmentationClass mask to "
                                     "keep the void border in", int(np.count_nonzero(arr == VOID)))
        heads = [o for o in objects if not o.attributes.get("part")]
        out = []
        for k in np.unique(arr).tolist():
            if k in (0, VOID):
                continue
            binary = arr == k
            attrs: dict[str, Any] = {}
            group = None
            if k <= len(heads):
                label, group = heads[k - 1].label, heads[k - 1].group_id
            else:
                attrs["voc_instance"] = k
                label = self._majority_class(binary, classes_arr)
            out.append(ObjectMaskAnnotation.from_array(binary, label=label, group_id=group,
                                                       annotation_id=f"{k}.mask", reference_id=item,
                                                       attributes=attrs))
        return out

    def _majority_class(self, binary: np.ndarray, classes_arr: np.ndarray | None) -> str:
        if classes_arr is None:
            return ""
        values = classes_arr[binary]
        values = values[values < len(self.classes)]
        if not values.size:
            return ""
        return self.classes[int(np.bincount(values).argmax())]


# --------------------------------------------------------------------------- reader


def image_size(path: Path) -> tuple[int, int] | None:
    """The image's header size (no pixels decoded); None when the file does not exist."""
    if not path.is_file():
        return None
    with open_image(path) as im:  # a broken or oversized file is a ReadError
        return int(im.size[0]), int(im.size[1])


def _int_field(root: ET.Element, xpath: str, file: Path, item: str) -> int | None:
    text = _text(root.find(xpath))
    if text is None or not text.strip():
        return None
    if not is_integral_text(text) or int(text) < 0:
        raise ReadError(f"<{xpath}> is {text.strip()!r}, expected a whole number >= 0", file=file, item=item)
    return int(text)


def read(path: Path, coordinates: Coordinates, context: Context, strict: bool = False) -> Dataset:
    layout = find_layout(path)
    if layout is None:
        raise ReadError("not a Pascal VOC folder: no Annotations/, ImageSets/ or Segmentation* "
                        "folder and no VOC XML files", file=path,
                        fix="point at the folder that holds Annotations/ (VOCdevkit/VOC2012)")
    entries: list[LabelEntry] | None = None
    labelmap = layout.root / "labelmap.txt"
    if labelmap.is_file():
        entries = read_labelmap(labelmap)
    if entries is None:
        categories = [Category(id=i, name=n) for i, n in enumerate(VOC_CLASSES)]
        classes = list(VOC_CLASSES)
        colors = {VOC_COLORMAP[i]: i for i in range(len(classes))}
    else:
        categories = [Category(id=i, name=e.name, attributes=e.category_attributes())
                      for i, e in enumerate(entries)]
        classes = [e.name for e in entries]
        colors = {(e.color or VOC_COLORMAP[i]): i for i, e in enumerate(entries)}
    colors.setdefault(VOC_COLORMAP[VOID], VOID)
    sets = read_imagesets(layout, set(classes), context) if not layout.flat else ImageSets()
    info: dict[str, Any] = {"labelmap": entries is not None}
    if sets.class_lists:
        info["class_lists"] = sets.class_lists
    if sets.other:
        info["other_imagesets"] = sets.other
    if layout.flat:
        info["layout"] = "flat"
    header = DatasetHeader(categories=categories, info={INFO_KEY: info})
    xmls = _walk(layout.annotations, (".xml",))
    if layout.flat:
        xmls = {k: v for k, v in xmls.items() if is_voc_xml(v)}
    class_pngs = _walk(layout.root / "SegmentationClass", (".png",)) if not layout.flat else {}
    object_pngs = _walk(layout.root / "SegmentationObject", (".png",)) if not layout.flat else {}
    # flat layouts (Kaggle, Roboflow): an image beside the XMLs without its own XML is an item too
    images = _walk(layout.images if layout.images is not None else layout.root, IMAGE_EXTS)
    ids = sorted(set(xmls) | set(sets.order) | set(class_pngs) | set(object_pngs)
                 | (set(images) if layout.flat else set()))
    masks = MaskReader(classes, colors, {c: i for i, c in enumerate(VOC_COLORMAP)}, context, strict)
    parser = ItemParser(coordinates, context)
    return Dataset(header=header, items=_items(ids, layout, xmls, class_pngs, object_pngs, sets, parser,
                                               masks, images, context), total=len(ids))


def _items(ids: list[str], layout: Layout, xmls: dict[str, Path], class_pngs: dict[str, Path],
           object_pngs: dict[str, Path], sets: ImageSets, parser: ItemParser, masks: MaskReader,
           images: dict[str, Path], context: Context) -> Iterator[DatasetItem]:
    for item_id in ids:
        try:
            yield _item(item_id, layout, xmls.get(item_id), class_pngs.get(item_id),
                        object_pngs.get(item_id), sets, parser, masks, images)
        except ReadError as err:
            context.error(err)


def _item(item_id: str, layout: Layout, xml: Path | None, class_png: Path | None, object_png: Path | None,
          sets: ImageSets, parser: ItemParser, masks: MaskReader, images: dict[str, Path]) -> DatasetItem:
    attrs: dict[str, Any] = {}
    width = height = None
    image: Path | None = None
    objects: list[BoxAnnotation] = []
    if xml is not None:
        root = _parse_xml(xml, item_id)
        extra = [element_tree(c, i) for i, c in enumerate(root) if c.tag not in KNOWN_ROOT]
        folder = _text(root.find("folder"))
        if folder is not None:
            attrs["voc_folder"] = folder
        filename = _text(root.find("filename"))
        if filename is not None:
            attrs["voc_filename"] = filename
            base = layout.images if layout.images is not None else xml.parent
            image = contained(base, filename, what="<filename>", file=xml, item=item_id)
        width = _int_field(root, "size/width", xml, item_id)
        height = _int_field(root, "size/height", xml, item_id)
        depth = _int_field(root, "size/depth", xml, item_id)
        if depth is not None:
            attrs["depth"] = depth
        if root.find("size") is None:
            attrs["voc_no_size"] = True
        segmented = _text(root.find("segmented"))
        if segmented is not None:
            attrs["segmented"] = _flag(segmented)
        if extra:
            attrs["voc_extra"] = extra
        objects = parser.objects(root, xml, item_id)
    if image is None and item_id in images:
        image = images[item_id]
    if image is not None and (width is None or height is None):
        size = image_size(image)
        if size is not None:
            width, height = size
    member = sets.member.get(item_id)
    if member:
        attrs["voc_imagesets"] = member
    flags = sets.flags.get(item_id)
    if flags:
        heads = [o for o in objects if not o.attributes.get("part")]
        differ = {split: {c: f for c, f in per.items() if f != derived_flag(heads, c)}
                  for split, per in flags.items()}
        differ = {s: d for s, d in differ.items() if d}
        if differ:
            attrs["voc_class_flags"] = differ
        for split in flags:
            splits = attrs.setdefault("voc_imagesets", {}).setdefault("Main", [])
            if split not in splits:
                splits.append(split)
    main = [s for s in attrs.get("voc_imagesets", {}).get("Main", []) if s != "trainval"]
    if len(main) == 1:
        attrs["split"] = main[0]  # the one split, as other formats (YOLO) name it
    annotations: list[Any] = list(objects)
    classes_arr = None
    if class_png is not None:
        seg, classes_arr = masks.semantic(class_png, item_id)
        annotations.append(seg)
    if object_png is not None:
        annotations.extend(masks.instances(object_png, item_id, objects, classes_arr))
    if classes_arr is not None and (width is None or height is None):
        height, width = classes_arr.shape
    return DatasetItem.model_construct(
        reference_id=item_id, image_location=str(image) if image is not None else None,
        pointcloud_location=None, width=width, height=height, metadata={}, attributes=attrs,
        annotations=annotations, predictions=[], scene=None)
