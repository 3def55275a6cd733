"""Reading CVAT for images / for video 1.1 XML (the mapping is in the package docstring).

The file is parsed with expat in chunks: each child of ``<annotations>`` is built as a small
element tree with its line number when it closes, handed on and forgotten, so an image
task streams one ``<image>`` at a time. A video task is different by nature — a track
spans frames — so its tracks are collected before the frames are yielded.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from xml.parsers import expat

import numpy as np

from annobridge.core.errors import ReadError
from annobridge.core.formats import Context
from annobridge.core.model import (
    BoxAnnotation,
    Category,
    CategoryAnnotation,
    Dataset,
    DatasetHeader,
    DatasetItem,
    FrameRef,
    KeypointsAnnotation,
    LineAnnotation,
    ObjectMaskAnnotation,
    OrientedBoxAnnotation,
    PolygonAnnotation,
    Scene,
    construct,
)
from annobridge.core.paths import contained
from annobridge.plugins.cvat import annotation_file
from annobridge.plugins.cvat import common as c

logger = logging.getLogger(__name__)

SHAPES = frozenset({"box", "polygon", "polyline", "points", "ellipse", "mask", "skeleton", "cuboid"})
_CHUNK = 1 << 20


class Elem:
    """One parsed XML element: tag, attributes, children, text and the line it starts on."""

    __slots__ = ("tag", "attrib", "children", "text", "line", "_parts")

    def __init__(self, tag: str, attrib: dict[str, str], line: int) -> None:
        self.tag, self.attrib, self.line = tag, attrib, line
        self.children: list[Elem] = []
        self.text = ""
        self._parts: list[str] = []

    def child(self, tag: str) -> Elem | None:
        for ch in self.children:
            if ch.tag == tag:
                return ch
        return None

    def child_text(self, tag: str) -> str | None:
        ch = self.child(tag)
        return None if ch is None else ch.text


def top_level(path: Path) -> Iterator[Elem]:
    """Each child of the root ``<annotations>`` element, as it closes, with its subtree.

    Raises ReadError naming the line for XML that is not well formed, a root that is not
    ``<annotations>`` and entity declarations (refused, as defusedxml does).
    """
    parser = expat.ParserCreate()
    parser.buffer_text = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stack: list[Elem] = []
    done: deque[Elem] = deque()

    def start(tag: str, attrib: dict[str, str]) -> None:
        line = parser.CurrentLineNumber
        if not stack and tag != "annotations":
            raise ReadError(f"the root element is <{tag}>, expected <annotations>", file=path,
                            where=f"line {line}", fix="give a CVAT for images or for video 1.1 XML file")
        elem = Elem(tag, attrib, line)
        if len(stack) > 1:
            stack[-1].children.append(elem)
        stack.append(elem)

    def end(tag: str) -> None:
        elem = stack.pop()
        elem.text = "".join(elem._parts)
        elem._parts = []
        if len(stack) == 1:
            done.append(elem)

    def chars(data: str) -> None:
        if len(stack) > 1:
            stack[-1]._parts.append(data)

    def entity(*_: Any) -> None:
        raise ReadError("the XML declares entities, which a CVAT file never does and which are refused "
                        "(entity expansion attacks)", file=path, where=f"line {parser.CurrentLineNumber}")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.EntityDeclHandler = entity
    with open(path, "rb") as f:
        while True:
            chunk = f.read(_CHUNK)
            try:
                parser.Parse(chunk, not chunk)
            except expat.ExpatError as exc:
                raise ReadError(f"not well-formed XML: {expat.ErrorString(exc.code)}", file=path,
                                where=f"line {exc.lineno}, column {exc.offset + 1}") from exc
            while done:
                yield done.popleft()
            if not chunk:
                break


class Reader:
    """State of one read: the file, options, header and the label schema from ``<meta>``."""

    def __init__(self, path: Path, images: Path | None, context: Context) -> None:
        self.path = path
        self.images = images
        self.context = context
        self.header = DatasetHeader()
        self.elements: dict[str, list[str]] = {}  # skeleton label -> element names
        self.frame_size: tuple[int, int] | None = None  # video: (width, height)
        self.frames: list[int] = []  # video: frame numbers the task's meta names
        self.cuboids = 0
        self.video = False  # the task's <mode> is interpolation

    # ------------------------------------------------------------------ errors

    def fail(self, problem: str, elem: Elem, item: str | None = None, fix: str | None = None) -> ReadError:
        return ReadError(f"<{elem.tag}>: {problem}", file=self.path, where=f"line {elem.line}", item=item, fix=fix)

    def need(self, elem: Elem, key: str, item: str | None) -> str:
        value = elem.attrib.get(key)
        if value is None:
            raise self.fail(f"attribute {key!r} is missing", elem, item)
        return value

    def number(self, elem: Elem, key: str, item: str | None) -> float:
        text = self.need(elem, key, item)
        try:
            return float(text)
        except ValueError:
            raise self.fail(f"{key}={text!r} is not a number", elem, item) from None

    def integer(self, elem: Elem, key: str, item: str | None, default: int | None = None) -> int:
        if key not in elem.attrib and default is not None:
            return default
        text = self.need(elem, key, item)
        try:
            return int(text)
        except ValueError:
            raise self.fail(f"{key}={text!r} is not an integer", elem, item) from None

    def points(self, elem: Elem, item: str | None, least: int) -> list[float]:
        text = self.need(elem, "points", item)
        parts = text.replace(";", ",").split(",")
        try:
            if len(parts) % 2 or text.count(";") != len(parts) // 2 - 1:
                raise ValueError
            flat = list(map(float, parts))
        except ValueError:
            raise self.fail(f"points={text[:60]!r} is not 'x0,y0;x1,y1;...'", elem, item) from None
        if len(flat) < 2 * least:
            raise self.fail(f"has {len(flat) // 2} points, a {elem.tag} needs at least {least}", elem, item)
        return flat

    # ------------------------------------------------------------------ meta

    def read_meta(self, meta: Elem) -> None:
        """Labels into categories; the rest of ``<meta>`` into ``header.info["cvat"]``."""
        labels_node = None
        for node in _walk(meta):
            if node.tag == "labels":
                labels_node = node
                break
        cats: list[Category] = []
        by_name: dict[str, Category] = {}
        for label in labels_node.children if labels_node is not None else ():
            if label.tag != "label":
                continue
            cat = self.category(label, len(cats) + 1)
            parent = label.child_text("parent")
            if parent:
                owner = by_name.get(parent)
                if owner is None:
                    raise self.fail(f"label {cat.name!r} names parent {parent!r}, which is not a label "
                                    "before it", label)
                owner.attributes.setdefault(c.SUBLABELS, []).append(
                    {"name": cat.name, **{k: v for k, v in cat.attributes.items()}})
                self.elements.setdefault(parent, []).append(cat.name)
                continue
            cats.append(cat)
            by_name[cat.name] = cat
        for cat in cats:
            names = self.elements.get(cat.name)
            if names:
                cat.keypoints = names
                cat.skeleton = c.svg_edges(cat.attributes.get(c.SVG, ""), names)
        self.header.categories = cats
        placeholder = c.tree(meta)
        _blank_labels(placeholder)
        self.header.info["cvat"] = {"meta": placeholder}
        for node in _walk(meta):
            if node.tag == "original_size":
                w, h = node.child_text("width"), node.child_text("height")
                if w and h and w.strip().isdigit() and h.strip().isdigit():
                    self.frame_size = (int(w), int(h))
        task = _first(meta, "task")
        if task is not None:
            self.frames = _task_frames(task)
            self.video = (task.child_text("mode") or "").strip() == "interpolation"
            name = task.child_text("name")
            if name:
                self.header.name = name

    def category(self, label: Elem, cid: int) -> Category:
        name = label.child_text("name")
        if name is None:
            raise self.fail("a <label> has no <name>", label)
        attrs: dict[str, Any] = {}
        extra = []
        for ch in label.children:
            if ch.tag in ("name", "parent"):
                continue
            if ch.tag == "color":
                attrs[c.COLOR] = ch.text
            elif ch.tag == "type":
                attrs[c.LABEL_TYPE] = ch.text
            elif ch.tag == "svg":
                attrs[c.SVG] = ch.text
            elif ch.tag == "attributes":
                attrs[c.ATTRIBUTE_SPECS] = [{f.tag: f.text for f in spec.children}
                                            for spec in ch.children if spec.tag == "attribute"]
            else:
                extra.append(c.tree(ch))
        if extra:
            attrs[c.LABEL_EXTRA] = extra
        return Category(id=cid, name=name, attributes=attrs)

    # ------------------------------------------------------------------ shapes

    def common(self, elem: Elem, item: str) -> dict[str, Any]:
        """The attributes every shape may carry: occluded, z_order, source, its <attribute>s."""
        attrs: dict[str, Any] = {}
        a = elem.attrib
        if "occluded" in a:
            attrs[c.OCCLUDED] = self.flag(elem, "occluded", item)
        if "z_order" in a:
            attrs[c.Z_ORDER] = self.integer(elem, "z_order", item)
        if "source" in a:
            attrs[c.SOURCE] = a["source"]
        values = self.label_attributes(elem, item)
        if values is not None:
            attrs[c.LABEL_ATTRIBUTES] = values
        if elem.tag != "cuboid" and not a.keys() <= c.SHAPE_XML_KEYS:  # kept for the writer
            attrs[c.XML_EXTRA] = {k: v for k, v in a.items() if k not in c.SHAPE_XML_KEYS}
        return attrs

    def flag(self, elem: Elem, key: str, item: str | None) -> int:
        value = elem.attrib.get(key, "0")
        if value not in ("0", "1"):
            raise self.fail(f"{key}={value!r}, expected 0 or 1", elem, item)
        return int(value)

    def label_attributes(self, elem: Elem, item: str | None) -> dict[str, str] | None:
        out: dict[str, str] = {}
        for ch in elem.children:
            if ch.tag == "attribute":
                if "name" not in ch.attrib:
                    raise self.fail("attribute 'name' is missing", ch, item)
                out[ch.attrib["name"]] = ch.text
        return out if out or any(ch.tag == "attribute" for ch in elem.children) else None

    def shape(self, elem: Elem, label: str, item: str, size: tuple[int | None, int | None],
              fields: dict[str, Any]) -> Any | None:
        """One shape element as an annotation (None for a 2D cuboid, which is reported)."""
        tag = elem.tag
        attrs = fields.pop("attributes")
        base = {"label": label, "reference_id": item, "attributes": attrs, **fields}
        if tag == "box":
            xtl, ytl = self.number(elem, "xtl", item), self.number(elem, "ytl", item)
            xbr, ybr = self.number(elem, "xbr", item), self.number(elem, "ybr", item)
            if xbr < xtl or ybr < ytl:
                raise self.fail(f"xbr, ybr ({xbr}, {ybr}) lie before xtl, ytl ({xtl}, {ytl})", elem, item)
            if "rotation" in elem.attrib:
                return construct(OrientedBoxAnnotation, _defaults(
                    base, type="oriented_box", cx=c.clean((xtl + xbr) / 2), cy=c.clean((ytl + ybr) / 2),
                    width=c.clean(xbr - xtl), height=c.clean(ybr - ytl),
                    rotation=self.number(elem, "rotation", item)))
            return construct(BoxAnnotation, _defaults(base, type="box", x=xtl, y=ytl, width=c.clean(xbr - xtl),
                                                      height=c.clean(ybr - ytl), embedding_vector=None))
        if tag == "polygon":
            return construct(PolygonAnnotation, _defaults(base, type="polygon", rings=[self.points(elem, item, 3)],
                                                          embedding_vector=None))
        if tag == "polyline":
            return construct(LineAnnotation, _defaults(base, type="line", vertices=self.points(elem, item, 2)))
        if tag == "points":
            flat = self.points(elem, item, 1)
            n = len(flat) // 2
            kp: list[float] = []
            for i in range(n):
                kp += (flat[2 * i], flat[2 * i + 1], 2)
            attrs[c.POINTS_SHAPE] = True
            return construct(KeypointsAnnotation, _defaults(base, type="keypoints", keypoints=kp,
                                                            names=[str(i + 1) for i in range(n)], skeleton=None))
        if tag == "ellipse":
            cx, cy = self.number(elem, "cx", item), self.number(elem, "cy", item)
            rx, ry = self.number(elem, "rx", item), self.number(elem, "ry", item)
            rot = self.number(elem, "rotation", item) if "rotation" in elem.attrib else 0.0
            if rx < 0 or ry < 0:
                raise self.fail(f"rx, ry = {rx}, {ry}: radii must be >= 0", elem, item)
            attrs[c.ELLIPSE] = [cx, cy, rx, ry, rot]
            return construct(PolygonAnnotation, _defaults(base, type="polygon",
                                                          rings=[ellipse_ring(cx, cy, rx, ry, rot)],
                                                          embedding_vector=None))
        if tag == "mask":
            return self.mask(elem, item, size, base)
        if tag == "skeleton":
            return self.skeleton(elem, label, item, base)
        self.cuboids += 1
        return None

    def mask(self, elem: Elem, item: str, size: tuple[int | None, int | None], base: dict[str, Any]) -> Any:
        width, height = size
        if width is None or height is None:
            raise self.fail("a mask needs the image size (width and height on <image>, or "
                            "<original_size> in <meta>)", elem, item)
        left, top = self.integer(elem, "left", item), self.integer(elem, "top", item)
        w, h = self.integer(elem, "width", item), self.integer(elem, "height", item)
        text = self.need(elem, "rle", item)
        try:
            counts = [int(v) for v in text.split(",")] if text.strip() else []
        except ValueError:
            raise self.fail("rle is not a comma-separated list of integers", elem, item) from None
        if any(v < 0 for v in counts) or sum(counts) != w * h:
            raise self.fail(f"rle runs sum to {sum(counts)}, expected width x height = {w} x {h} = {w * h}",
                            elem, item)
        if left < 0 or top < 0 or left + w > width or top + h > height:
            raise self.fail(f"mask box left={left} top={top} width={w} height={h} does not fit the "
                            f"{width} x {height} image", elem, item)
        box = c.rle_to_box(counts, w, h)
        full = np.zeros((height, width), dtype=np.uint8)
        full[top:top + h, left:left + w] = box
        if c.tight_box(full) != (left, top, w, h):
            base["attributes"][c.MASK_BOX] = [left, top, w, h]
        from pycocotools import mask as mask_utils

        rle = mask_utils.encode(np.asfortranarray(full))
        return construct(ObjectMaskAnnotation, _defaults(base, type="object_mask", size=(height, width),
                                                         counts=rle["counts"].decode("ascii")))

    def skeleton(self, elem: Elem, label: str, item: str, base: dict[str, Any]) -> Any:
        names = self.elements.get(label)
        if names is None:
            raise self.fail(f"label {label!r} is not a skeleton label in <meta> (no element labels "
                            "name it as <parent>)", elem, item, fix="a skeleton's element names come from <meta>")
        found: dict[str, Elem] = {}
        for ch in elem.children:
            if ch.tag == "attribute":
                continue
            if ch.tag != "points":
                raise self.fail(f"a skeleton element is <{ch.tag}>, expected <points>", ch, item)
            name = self.need(ch, "label", item)
            if name not in names:
                raise self.fail(f"element label {name!r} is not an element of skeleton {label!r} "
                                f"(elements: {', '.join(names)})", ch, item)
            found[name] = ch
        kp: list[float] = []
        extras: dict[str, dict[str, Any]] = {}
        for name in names:
            ch = found.get(name)
            if ch is None:
                kp += (0.0, 0.0, 0)
                extras[name] = {"absent": True}
                continue
            x, y = self.points(ch, item, 1)[:2]
            outside, occluded = self.flag(ch, "outside", item), self.flag(ch, "occluded", item)
            kp += (x, y, 0 if outside else (1 if occluded else 2))
            extra: dict[str, Any] = {}
            if outside and occluded:
                extra["occluded"] = 1
            for key in ("source", "keyframe"):
                if key in ch.attrib:
                    extra[key] = ch.attrib[key] if key == "source" else self.flag(ch, key, item)
            values = self.label_attributes(ch, item)
            if values is not None:
                extra[c.LABEL_ATTRIBUTES] = values
            if extra:
                extras[name] = extra
        if extras:
            base["attributes"][c.ELEMENTS] = extras
        cat = self.header.category_named(label)
        return construct(KeypointsAnnotation, _defaults(base, type="keypoints", keypoints=kp, names=list(names),
                                                        skeleton=list(cat.skeleton or []) if cat else None))

    def shape_fields(self, elem: Elem, item: str) -> dict[str, Any]:
        fields: dict[str, Any] = {"attributes": self.common(elem, item)}
        group = elem.attrib.get("group_id")
        if group not in (None, "", "0"):
            fields["group_id"] = group
        return fields

    # ------------------------------------------------------------------ images

    def image_item(self, elem: Elem) -> DatasetItem:
        name = elem.attrib.get("name")
        if name is None:
            raise self.fail("attribute 'name' is missing", elem)
        ref = reference_of(name)
        width = self.integer(elem, "width", ref) if "width" in elem.attrib else None
        height = self.integer(elem, "height", ref) if "height" in elem.attrib else None
        location = name
        if self.images is not None:
            location = str(contained(self.images, name, what="image name", file=self.path,
                                     where=f"line {elem.line}", item=ref))
        anns: list[Any] = []
        for n, ch in enumerate(elem.children):
            if ch.tag == "tag":
                fields = self.shape_fields(ch, ref)
                attrs = fields.pop("attributes")
                anns.append(construct(CategoryAnnotation, _defaults(
                    {"label": self.need(ch, "label", ref), "reference_id": ref, "attributes": attrs,
                     "annotation_id": str(n), **fields}, type="category", taxonomy_name=None)))
            elif ch.tag in SHAPES:
                fields = self.shape_fields(ch, ref)
                fields["annotation_id"] = str(n)
                ann = self.shape(ch, self.need(ch, "label", ref), ref, (width, height), fields)
                if ann is not None:
                    anns.append(ann)
            else:
                raise self.fail(f"unknown element <{ch.tag}> in <image>", ch, ref,
                                fix="CVAT images hold box, polygon, polyline, points, ellipse, mask, "
                                    "skeleton, cuboid and tag")
        extra = {k: v for k, v in elem.attrib.items() if k not in ("name", "width", "height")}
        return construct(DatasetItem, dict(
            reference_id=ref, image_location=location, pointcloud_location=None, width=width, height=height,
            metadata={}, attributes={c.IMAGE_ATTRS: extra} if extra else {}, annotations=anns,
            predictions=[], scene=None))

    # ------------------------------------------------------------------ video

    def video_items(self, tracks: list[Elem], scene_id: str) -> Iterator[DatasetItem]:
        width, height = self.frame_size or (None, None)
        per_frame: dict[int, list[Any]] = {}
        outside: dict[int, list[dict[str, Any]]] = {}
        for track in tracks:
            self.track(track, (width, height), per_frame, outside)
        frames = sorted(set(self.frames) | set(per_frame) | set(outside))
        for frame in frames:
            ref = frame_name(frame)
            location = None
            if self.images is not None:
                location = str(contained(self.images, ref + ".png", what="frame image", file=self.path, item=ref))
            yield construct(DatasetItem, dict(
                reference_id=ref, image_location=location, pointcloud_location=None, width=width,
                height=height, metadata={}, attributes={c.OUTSIDE: outside[frame]} if frame in outside else {},
                annotations=per_frame.get(frame, []), predictions=[],
                scene=FrameRef(scene_reference_id=scene_id, index=frame)))

    def track(self, track: Elem, size: tuple[int | None, int | None], per_frame: dict[int, list[Any]],
              outside: dict[int, list[dict[str, Any]]]) -> None:
        tid = self.need(track, "id", None)
        label = self.need(track, "label", None)
        seen: set[int] = set()
        for shape in track.children:
            if shape.tag not in SHAPES:
                if shape.tag == "attribute":
                    continue
                raise self.fail(f"unknown element <{shape.tag}> in <track>", shape)
            frame = self.integer(shape, "frame", None)
            ref = frame_name(frame)
            if frame < 0:
                raise self.fail(f"frame={frame} is negative", shape, ref)
            if frame in seen:
                raise self.fail(f"track {tid} has two shapes on frame {frame}", shape, ref,
                                fix="a track holds one shape per frame")
            seen.add(frame)
            is_outside = self.flag(shape, "outside", ref) == 1 or (
                shape.tag == "skeleton" and _all_outside(shape))
            if is_outside:
                outside.setdefault(frame, []).append({"track": dict(track.attrib), "shape": c.raw(shape)})
                continue
            fields = self.shape_fields(shape, ref)
            attrs = fields["attributes"]
            attrs[c.KEYFRAME] = self.flag(shape, "keyframe", ref)
            if "source" in track.attrib:
                attrs[c.SOURCE] = track.attrib["source"]
            group = track.attrib.get("group_id")
            if group not in (None, "", "0"):
                fields["group_id"] = group
            extra = {k: v for k, v in track.attrib.items() if k not in ("id", "label", "source", "group_id")}
            if extra:  # task_id, subset of a project export
                attrs[c.TRACK_ATTRS] = extra
            fields["track_reference_id"] = tid
            fields["annotation_id"] = f"track-{tid}"
            ann = self.shape(shape, label, ref, size, fields)
            if ann is not None:
                per_frame.setdefault(frame, []).append(ann)


def _defaults(fields: dict[str, Any], **kind: Any) -> dict[str, Any]:
    """Every field of an annotation (for :func:`construct`): the base fields, ``fields``, ``kind``."""
    out: dict[str, Any] = {"reference_id": None, "annotation_id": None, "group_id": None,
                           "track_reference_id": None, "metadata": {}, "attributes": {},
                           "confidence": None, "class_pdf": None}
    out.update(fields)
    out.update(kind)
    return out


def _all_outside(skeleton: Elem) -> bool:
    pts = [ch for ch in skeleton.children if ch.tag == "points"]
    return bool(pts) and all(p.attrib.get("outside") == "1" for p in pts)


def _walk(elem: Elem) -> Iterator[Elem]:
    yield elem
    for ch in elem.children:
        yield from _walk(ch)


def _first(elem: Elem, tag: str) -> Elem | None:
    for node in _walk(elem):
        if node.tag == tag:
            return node
    return None


def _blank_labels(node: list[Any]) -> bool:
    """Empty the first ``labels`` subtree of a meta tree (the writer puts the categories there)."""
    if node[0] == "labels":
        node[2] = []
        return True
    return any(_blank_labels(ch) for ch in node[2])


def _task_frames(task: Elem) -> list[int]:
    """The frame numbers a video task's meta names: start_frame..stop_frame by the step of
    ``frame_filter`` (``step=N``), else none."""
    start, stop = task.child_text("start_frame"), task.child_text("stop_frame")
    if not (start and stop and start.strip().isdigit() and stop.strip().isdigit()):
        return []
    step = 1
    filt = (task.child_text("frame_filter") or "").strip()
    if filt.startswith("step="):
        try:
            step = max(1, int(filt[5:]))
        except ValueError:
            step = 1
    return list(range(int(start), int(stop) + 1, step))


def frame_name(frame: int) -> str:
    """The reference id of a video frame: ``frame_000010`` (CVAT's and datumaro's image names)."""
    return f"frame_{frame:06d}"


def reference_of(name: str) -> str:
    """An image name without its image extension: ``a/img0.jpg`` -> ``a/img0``."""
    suffix = PurePosixPath(name).suffix
    return name[: -len(suffix)] if suffix and suffix.lower() in c.IMAGE_EXTENSIONS else name


def ellipse_ring(cx: float, cy: float, rx: float, ry: float, rotation: float, n: int = 32) -> list[float]:
    """``n`` vertices on the ellipse (rotation in degrees clockwise on screen), flat."""
    import math

    t = math.radians(rotation)
    ct, st = math.cos(t), math.sin(t)
    ring: list[float] = []
    for k in range(n):
        a = 2 * math.pi * k / n
        x, y = rx * math.cos(a), ry * math.sin(a)
        ring += (c.clean(cx + x * ct - y * st), c.clean(cy + x * st + y * ct))
    return ring


def read(path: Path, options: Any, context: Context) -> Dataset:
    xml = annotation_file(path)
    if not xml.is_file():
        raise ReadError("no CVAT XML here", file=xml, fix="give the annotations.xml file or its folder")
    reader = Reader(xml, options.images, context)
    stream = top_level(xml)
    first: Elem | None = None
    version = None
    for elem in stream:
        if elem.tag == "version":
            version = elem.text.strip()
            if version != "1.1":
                raise ReadError(f"<version> is {version!r}, expected '1.1'", file=xml, where=f"line {elem.line}",
                                fix="export the task as 'CVAT for images 1.1' or 'CVAT for video 1.1'")
        elif elem.tag == "meta":
            reader.read_meta(elem)
        else:
            first = elem
            break
    if version is None:
        raise ReadError("there is no <version> element", file=xml, fix="CVAT 1.1 files start with <version>1.1</version>")
    reader.header.info.setdefault("cvat", {})["version"] = version
    scene_id = reader.header.name or xml.parent.name or xml.stem
    video = first.tag == "track" if first is not None else reader.video
    if video:  # the header says what it is before any item
        reader.header.info["cvat"]["mode"] = "video"
        reader.header.scenes[scene_id] = Scene(reference_id=scene_id)

    def items() -> Iterator[DatasetItem]:
        pending = [first] if first is not None else []
        rest = stream
        tracks: list[Elem] = []
        for elem in _chain(pending, rest):
            if elem.tag == "image":
                if tracks:
                    raise reader.fail("an <image> after <track>s: a file is a task for images or for "
                                      "video, not both", elem)
                yield reader.image_item(elem)
            elif elem.tag == "track":
                tracks.append(elem)
            elif elem.tag in ("meta", "version"):
                raise reader.fail("appears after the annotations; it must come first", elem)
            else:
                raise reader.fail("unknown element at the top level", elem,
                                  fix="CVAT 1.1 files hold <version>, <meta>, <image> and <track>")
        if video:
            yield from reader.video_items(tracks, scene_id)
        if reader.cuboids:
            context.report.drop("cvat cuboid", "2D cuboids (CVAT's pseudo-3D box of 8 image points) "
                                "have no canonical type", reader.cuboids)

    return Dataset(header=reader.header, items=items())


def _chain(first: list[Elem], rest: Iterator[Elem]) -> Iterator[Elem]:
    yield from first
    yield from rest
