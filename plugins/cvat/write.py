"""Writing CVAT for images / for video 1.1 XML (the mapping is in the package docstring).

The annotations are written first into a body file beside the destination (images stream
through one at a time; a video's frames are held to build its tracks), then the file is
put together: declaration, ``<version>``, the ``<meta>`` with every label the body used,
and the body.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any
from xml.sax.saxutils import escape

import orjson

from annobridge.core.errors import WriteError
from annobridge.core.formats import Context
from annobridge.core.model import Category, Dataset, DatasetItem, auto_annotation_id
from annobridge.core.paths import contained
from annobridge.plugins.cvat import common as c
from annobridge.plugins.cvat.read import frame_name, reference_of

logger = logging.getLogger(__name__)

_SHAPE_KEYS = frozenset({c.OCCLUDED, c.Z_ORDER, c.SOURCE, c.KEYFRAME, c.LABEL_ATTRIBUTES, c.ELLIPSE,
                         c.POINTS_SHAPE, c.MASK_BOX, c.ELEMENTS, c.TRACK_ATTRS, c.XML_EXTRA})
_ITEM_KEYS = frozenset({c.IMAGE_ATTRS, c.OUTSIDE})
_LABEL_KEYS = frozenset({c.COLOR, c.LABEL_TYPE, c.ATTRIBUTE_SPECS, c.SVG, c.SUBLABELS, c.LABEL_EXTRA})
_BAD_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_SPECIAL = re.compile(r'[&<>"\n\r\t\x00-\x08\x0b\x0c\x0e-\x1f]')
_ATTR_ENTITIES = {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}


def _q(value: Any) -> str:
    text = str(value)
    if _SPECIAL.search(text) is None:  # numbers, point lists and most names need no escaping
        return f'"{text}"'
    if _BAD_XML.search(text):
        raise WriteError(f"{text[:40]!r} holds a control character, which XML 1.0 cannot hold")
    return '"' + escape(text, _ATTR_ENTITIES) + '"'


def _text(value: Any) -> str:
    text = "" if value is None else str(value)
    if _BAD_XML.search(text):
        raise WriteError(f"{text[:40]!r} holds a control character, which XML 1.0 cannot hold")
    return escape(text)


def _open(tag: str, attrs: Iterable[tuple[str, Any]], indent: int, empty: bool = False) -> str:
    body = " ".join(f"{k}={_q(v)}" for k, v in attrs)
    return f"{'  ' * indent}<{tag}{' ' + body if body else ''}{'/>' if empty else '>'}\n"


_POINT_ZERO = re.compile(r"\.0(?=,|$)")


def _pts(flat: list[float]) -> str:
    """``x0,y0;x1,y1;...`` with each number in its shortest exact form (orjson formats the
    floats, as ``repr`` would, several times faster; ``4.0`` is written ``4``)."""
    try:
        text = orjson.dumps(flat).decode()[1:-1]
    except TypeError:  # numpy scalars or other number types
        text = "null"
    if "null" in text or "e" in text or "t" in text:  # NaN, exponents, booleans: the careful way
        texts = iter(map(c.number_text, flat))
    else:
        texts = iter(_POINT_ZERO.sub("", text).split(","))
    return ";".join(map(",".join, zip(texts, texts)))


class Writer:
    """State of one write: the labels used, skeleton schemas, counts of what was lost."""

    def __init__(self, dataset: Dataset, destination: Path, options: Any, context: Context) -> None:
        self.header = dataset.header
        self.destination = context.final_destination or destination  # where errors say the file is
        self.options = options
        self.context = context
        self.categories: dict[str, Category] = {cat.name: cat.model_copy(deep=True)
                                                for cat in self.header.categories}
        self.added: list[str] = []  # labels used but not in the header, in order of first use
        # A CVAT file's own <meta> is written back as it was, even when it omits a used label.
        self.from_cvat = isinstance(self.header.info.get("cvat"), dict) and "meta" in self.header.info["cvat"]
        self.notes: dict[str, int] = {}
        self.drops: dict[tuple[str, str], int] = {}
        self.track_groups: dict[str, str] = {}

    def drop(self, what: str, reason: str, n: int = 1) -> None:
        self.drops[(what, reason)] = self.drops.get((what, reason), 0) + n

    def note(self, text: str, n: int = 1) -> None:
        self.notes[text] = self.notes.get(text, 0) + n

    def lost(self, ann: Any, read_back_id: str) -> None:
        """Record what of ``ann`` CVAT has no place for."""
        for key in ann.attributes:
            if key not in _SHAPE_KEYS:
                self.drop(f"attribute:{key}", "CVAT shapes have no place for it")
        if getattr(ann, "embedding_vector", None) is not None:
            self.drop("embedding_vector", "CVAT holds no embeddings")
        aid = ann.annotation_id
        if aid is not None and aid != read_back_id and not (ann.type == "box" and aid == auto_annotation_id(ann)):
            self.note("annotation ids were not kept (CVAT shapes have none; read back, they are numbered by "
                      "their place)")

    def lost_in_item(self, item: DatasetItem) -> None:
        for key in item.attributes:
            if key not in _ITEM_KEYS:
                self.drop(f"item attribute:{key}", "CVAT images have no place for it")

    # ------------------------------------------------------------------ labels

    def use_label(self, label: str, ann: Any = None) -> None:
        """Record a label the body uses; a skeleton's elements come from its keypoints."""
        cat = self.categories.get(label)
        skeleton = ann is not None and ann.type == "keypoints" and not ann.attributes.get(c.POINTS_SHAPE)
        if cat is None:
            if label == "" or self.from_cvat:
                return
            cat = Category(id=len(self.categories) + 1, name=label)
            self.categories[label] = cat
            self.added.append(label)
        if skeleton:
            if not cat.keypoints:
                cat.keypoints = list(ann.names)
                cat.skeleton = list(ann.skeleton or [])
            elif list(cat.keypoints) != list(ann.names):
                raise WriteError(f"keypoints of label {label!r} are named {ann.names}, but the label's "
                                 f"skeleton has elements {cat.keypoints}", file=self.destination,
                                 item=ann.reference_id, fix="a CVAT skeleton label has one set of elements")

    def labels_xml(self, indent: int) -> str:
        out = []
        for cat in self.categories.values():
            if cat.supercategory is not None:
                self.drop("category supercategory", "CVAT labels have no supercategory")
            for key in cat.attributes:
                if key not in _LABEL_KEYS:
                    self.drop(f"category attribute:{key}", "CVAT labels have no place for it")
            out.append(self.label_xml(cat, None, indent))
            if cat.keypoints:
                subs = {s.get("name"): s for s in cat.attributes.get(c.SUBLABELS, [])}
                for name in cat.keypoints:
                    sub = subs.get(name, {"name": name, c.LABEL_TYPE: "points"})
                    out.append(self.label_xml(Category(id=0, name=name, attributes={
                        k: v for k, v in sub.items() if k != "name"}), cat.name, indent))
        return "".join(out)

    def label_xml(self, cat: Category, parent: str | None, indent: int) -> str:
        a = cat.attributes
        pad = "  " * (indent + 1)
        lines = [f"{'  ' * indent}<label>\n", f"{pad}<name>{_text(cat.name)}</name>\n"]
        if a.get(c.COLOR) is not None:
            lines.append(f"{pad}<color>{_text(a[c.COLOR])}</color>\n")
        kind = a.get(c.LABEL_TYPE) or ("skeleton" if cat.keypoints and parent is None else None)
        if kind is not None:
            lines.append(f"{pad}<type>{_text(kind)}</type>\n")
        if c.ATTRIBUTE_SPECS in a:
            lines.append(f"{pad}<attributes>\n")
            for spec in a[c.ATTRIBUTE_SPECS]:
                lines.append(f"{pad}  <attribute>\n")
                lines += [f"{pad}    <{k}>{_text(v)}</{k}>\n" for k, v in spec.items()]
                lines.append(f"{pad}  </attribute>\n")
            lines.append(f"{pad}</attributes>\n")
        if cat.keypoints and parent is None:
            svg = a.get(c.SVG)
            stored = c.svg_edges(svg, list(cat.keypoints)) if svg else None
            if svg is None or stored != list(cat.skeleton or []):
                svg = c.make_svg(list(cat.keypoints), list(cat.skeleton or []))
            lines.append(f"{pad}<svg>{_text(svg)}</svg>\n")
        if parent is not None:
            lines.append(f"{pad}<parent>{_text(parent)}</parent>\n")
        for node in a.get(c.LABEL_EXTRA, []):
            lines.append(_tree_xml(node, indent + 1))
        lines.append(f"{'  ' * indent}</label>\n")
        return "".join(lines)

    def meta_xml(self, mode: str, frames: list[int], size: int, frame_size: tuple[int, int] | None) -> str:
        stored = self.header.info.get("cvat", {}).get("meta") if isinstance(self.header.info.get("cvat"), dict) else None
        if stored:
            return _tree_xml(stored, 1, labels=lambda indent: self.labels_xml(indent))
        pad = "    "
        lines = ["  <meta>\n", "    <task>\n"]
        lines.append(f"{pad}  <name>{_text(self.header.name or 'annobridge')}</name>\n")
        lines.append(f"{pad}  <size>{size}</size>\n")
        lines.append(f"{pad}  <mode>{'interpolation' if mode == 'video' else 'annotation'}</mode>\n")
        if mode == "video" and frames:
            lines.append(f"{pad}  <start_frame>{frames[0]}</start_frame>\n")
            lines.append(f"{pad}  <stop_frame>{frames[-1]}</stop_frame>\n")
            step = _step(frames)
            lines.append(f"{pad}  <frame_filter>{f'step={step}' if step > 1 else ''}</frame_filter>\n")
        lines.append(f"{pad}  <labels>\n{self.labels_xml(4)}{pad}  </labels>\n")
        if mode == "video" and frame_size is not None:
            lines.append(f"{pad}  <original_size>\n{pad}    <width>{frame_size[0]}</width>\n"
                         f"{pad}    <height>{frame_size[1]}</height>\n{pad}  </original_size>\n")
        lines += ["    </task>\n", "  </meta>\n"]
        return "".join(lines)

    # ------------------------------------------------------------------ shapes

    def common(self, ann: Any) -> list[tuple[str, Any]]:
        attrs: list[tuple[str, Any]] = []
        a = ann.attributes
        if c.OCCLUDED in a:
            occ = a[c.OCCLUDED]
            if occ not in (0, 1, True, False):
                self.drop("attribute:occluded", "CVAT's occluded is 0 or 1: other levels were written as 1")
            attrs.append(("occluded", int(bool(occ))))
        return attrs

    def geometry(self, ann: Any, item: DatasetItem) -> tuple[str, list[tuple[str, Any]]]:
        """The element name and geometry attributes of one annotation."""
        t = ann.type
        if t == "box":
            return "box", [("xtl", c.number_text(ann.x)), ("ytl", c.number_text(ann.y)),
                           ("xbr", c.number_text(c.clean(ann.x + ann.width))),
                           ("ybr", c.number_text(c.clean(ann.y + ann.height)))]
        if t == "oriented_box":
            hw, hh = ann.width / 2, ann.height / 2
            return "box", [("xtl", c.number_text(c.clean(ann.cx - hw))), ("ytl", c.number_text(c.clean(ann.cy - hh))),
                           ("xbr", c.number_text(c.clean(ann.cx + hw))), ("ybr", c.number_text(c.clean(ann.cy + hh))),
                           ("rotation", c.number_text(ann.rotation))]
        if t == "polygon":
            if element_tag(ann) == "ellipse":
                cx, cy, rx, ry, rot = ann.attributes[c.ELLIPSE]
                geo = [("cx", c.number_text(cx)), ("cy", c.number_text(cy)), ("rx", c.number_text(rx)),
                       ("ry", c.number_text(ry))]
                if rot:
                    geo.append(("rotation", c.number_text(rot)))
                return "ellipse", geo
            return "polygon", [("points", _pts(ann.rings[0]))]
        if t == "line":
            return "polyline", [("points", _pts(ann.vertices))]
        if t == "keypoints" and ann.attributes.get(c.POINTS_SHAPE):
            kp = ann.keypoints
            if any(kp[i] != 2 for i in range(2, len(kp), 3)):
                self.drop("keypoint visibility", "a CVAT <points> shape has no per-point visibility: "
                          "hidden or unlabelled points were written as visible")
            flat = [v for i in range(0, len(kp), 3) for v in (kp[i], kp[i + 1])]
            return "points", [("points", _pts(flat))]
        if t == "keypoints":
            return "skeleton", []
        if t == "object_mask":
            return "mask", self.mask(ann, item)
        raise AssertionError(t)

    def mask(self, ann: Any, item: DatasetItem) -> list[tuple[str, Any]]:
        h, w = ann.size
        if (item.height, item.width) != (h, w) and item.width is not None and item.height is not None:
            raise WriteError(f"mask size {w} x {h} differs from the image size {item.width} x {item.height}",
                             file=self.destination, item=item.reference_id,
                             fix="CVAT masks are placed on the image: give masks of the image's size")
        arr = ann.to_array()
        box = c.tight_box(arr)
        kept = ann.attributes.get(c.MASK_BOX)
        if isinstance(kept, list) and len(kept) == 4 and all(isinstance(v, int) for v in kept):
            left, top, bw, bh = kept
            inside = 0 <= left and 0 <= top and left + bw <= w and top + bh <= h and bw > 0 and bh > 0
            if inside and (box is None or (left <= box[0] and top <= box[1] and box[0] + box[2] <= left + bw
                                           and box[1] + box[3] <= top + bh)):
                box = (left, top, bw, bh)
        if box is None:  # an empty mask: one background run over one pixel
            box = (0, 0, 1, 1)
        left, top, bw, bh = box
        runs = c.box_to_rle(arr[top:top + bh, left:left + bw])
        return [("rle", ", ".join(str(r) for r in runs)), ("left", left), ("top", top),
                ("width", bw), ("height", bh)]

    def label_attributes(self, ann: Any, indent: int) -> str:
        values = ann.attributes.get(c.LABEL_ATTRIBUTES)
        if not isinstance(values, dict):
            return ""
        pad = "  " * indent
        return "".join(f"{pad}<attribute name={_q(k)}>{_text(v)}</attribute>\n" for k, v in values.items())

    def skeleton_elements(self, ann: Any, indent: int, video: bool) -> str:
        extras = ann.attributes.get(c.ELEMENTS) or {}
        kp = ann.keypoints
        out = []
        for i, name in enumerate(ann.names):
            extra = extras.get(name) or {}
            if extra.get("absent"):
                continue
            v = int(kp[3 * i + 2])
            attrs: list[tuple[str, Any]] = [("label", name)]
            if "source" in extra:
                attrs.append(("source", extra["source"]))
            if video:
                attrs.append(("keyframe", extra.get("keyframe", 1)))
            attrs += [("outside", int(v == 0)), ("occluded", int(v == 1 or bool(extra.get("occluded")))),
                      ("points", _pts([kp[3 * i], kp[3 * i + 1]]))]
            inner = ""
            values = extra.get(c.LABEL_ATTRIBUTES)
            if isinstance(values, dict):
                pad = "  " * (indent + 1)
                inner = "".join(f"{pad}<attribute name={_q(k)}>{_text(x)}</attribute>\n" for k, x in values.items())
            out.append(_element("points", attrs, inner, indent))
        return "".join(out)

    def shape_xml(self, ann: Any, item: DatasetItem, indent: int, head: list[tuple[str, Any]],
                  tail: list[tuple[str, Any]], video: bool = False) -> str:
        """One shape element: ``head`` attributes, geometry, ``tail`` attributes, children."""
        tag, geo = self.geometry(ann, item)
        attrs = head + ([] if tag == "skeleton" else self.common(ann)) + geo + tail
        inner = self.skeleton_elements(ann, indent + 1, video) if tag == "skeleton" else ""
        inner += self.label_attributes(ann, indent + 1)
        return _element(tag, attrs, inner, indent)

    # ------------------------------------------------------------------ images

    def image_xml(self, item: DatasetItem, index: int) -> str:
        name = self.image_name(item)
        extra = item.attributes.get(c.IMAGE_ATTRS)
        extra = dict(extra) if isinstance(extra, dict) else {}
        attrs: list[tuple[str, Any]] = [("id", extra.pop("id", index)), ("name", name)]
        attrs += list(extra.items())
        if item.width is not None and item.height is not None:
            attrs += [("width", item.width), ("height", item.height)]
        inner = []
        rings = 0
        groups = {"": str(max((int(a.group_id) for a in item.annotations
                               if a.group_id is not None and a.group_id.isdigit()), default=0))}
        self.lost_in_item(item)
        for ann in item.annotations:
            label = getattr(ann, "label", "")
            self.use_label(label, ann)
            self.lost(ann, str(len(inner)))
            tail = self.tail(ann, groups)
            if ann.type == "category":
                head: list[tuple[str, Any]] = [("label", label)]
                if c.SOURCE in ann.attributes:
                    head.append(("source", ann.attributes[c.SOURCE]))
                if ann.taxonomy_name is not None:
                    self.drop("taxonomy_name", "CVAT tags have no taxonomy")
                inner.append(_element("tag", head + tail,
                                      self.label_attributes(ann, 3), 2))
                continue
            head = [("label", label)]
            if c.SOURCE in ann.attributes:
                head.append(("source", ann.attributes[c.SOURCE]))
            if ann.type == "polygon" and len(ann.rings) > 1:  # one polygon per ring, in one group
                if all(k != "group_id" for k, _ in tail):
                    tail = tail + [("group_id", self.new_group(groups))]
                for ring in ann.rings:
                    inner.append(self.shape_xml(ann.model_copy(update={"rings": [ring]}), item, 2, head, tail))
                rings += len(ann.rings) - 1
                continue
            inner.append(self.shape_xml(ann, item, 2, head, tail))
        if rings:
            self.drop("polygon ring", "a CVAT polygon has one ring: further rings were written as polygons "
                      "of the same group", rings)
        if item.scene is not None:
            self.drop("scene frame reference", "CVAT for images holds no scenes (write mode=video for one scene)")
        tracked = sum(1 for a in item.annotations if a.track_reference_id is not None)
        if tracked:
            self.drop("track_reference_id", "CVAT for images holds no tracks (write mode=video)", tracked)
        return _element("image", attrs, "".join(inner), 1)

    def tail(self, ann: Any, groups: dict[str, str]) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        if c.Z_ORDER in ann.attributes:
            out.append(("z_order", ann.attributes[c.Z_ORDER]))
        if ann.group_id is not None:
            out.append(("group_id", self.group(ann.group_id, groups)))
        extra = ann.attributes.get(c.XML_EXTRA)
        if isinstance(extra, dict):
            out += [(k, v) for k, v in extra.items() if k not in c.SHAPE_XML_KEYS]
        return out

    def group(self, gid: str, groups: dict[str, str]) -> str:
        """CVAT group ids are positive integers: others get the next free number of the image."""
        if gid.isdigit() and gid != "0":
            return gid
        if gid not in groups:
            groups[gid] = self.new_group(groups)
            self.note("group ids that are not positive integers were renumbered (CVAT group ids are integers)")
        return groups[gid]

    @staticmethod
    def new_group(groups: dict[str, str]) -> str:
        """A group number above every one ``groups`` holds (``groups[""]`` is the highest in use)."""
        n = str(int(groups.get("", "0")) + 1)
        groups[""] = n
        return n

    def image_name(self, item: DatasetItem) -> str:
        loc = item.image_location
        name = loc if loc is not None else item.reference_id
        images = self.options.images
        if images is not None and loc is not None and "://" not in loc:
            rel = os.path.relpath(os.path.abspath(loc), os.path.abspath(images))
            name = str(contained(images, rel.replace(os.sep, "/"), what="image location", item=item.reference_id,
                                 error=WriteError).relative_to(images)).replace(os.sep, "/")
        if reference_of(name) != item.reference_id:
            self.note("items were renamed: CVAT names an image by its file name, and its reference id is "
                      "that name without the extension")
        return name

    # ------------------------------------------------------------------ video

    def video_body(self, items: list[DatasetItem], out: IO[str]) -> tuple[list[int], tuple[int, int] | None]:
        scene_ids = {i.scene.scene_reference_id for i in items if i.scene is not None}
        for item in items:
            if item.scene is None or len(scene_ids) > 1:
                raise WriteError("CVAT for video holds the frames of one scene; this item is "
                                 + ("not a frame" if item.scene is None else
                                    f"a frame of scene {item.scene.scene_reference_id!r} of {len(scene_ids)}"),
                                 file=self.destination, item=item.reference_id,
                                 fix="write --option mode=images, or one scene per file")
        by_frame: dict[int, DatasetItem] = {}
        for item in items:
            frame = item.scene.index  # type: ignore[union-attr]
            if frame in by_frame:
                raise WriteError(f"two items are frame {frame} of the scene", file=self.destination,
                                 item=item.reference_id)
            by_frame[frame] = item
            if item.reference_id != frame_name(frame):
                self.note("frames were renamed frame_NNNNNN after their frame number (CVAT for video names "
                          "no frames)")
        frames = sorted(by_frame)
        if frames and frames != list(range(frames[0], frames[-1] + 1, _step(frames))):
            self.note("frame numbers are not evenly spaced: CVAT numbers a video's frames from start_frame to "
                      "stop_frame by one step, so the frames between come back as items without annotations")
        sized = next((i for i in items if i.width is not None and i.height is not None), None)
        tracks: dict[str, list[tuple[int, Any]]] = {}
        track_attrs: dict[str, dict[str, str]] = {}
        loose: list[tuple[int, Any]] = []
        kinds: dict[str, tuple[str, str]] = {}
        split: dict[tuple[str, tuple[str, str]], str] = {}
        for frame in frames:
            item = by_frame[frame]
            self.lost_in_item(item)
            for ann in item.annotations:
                if ann.type == "category":
                    self.drop("category", "CVAT for video holds no tags")
                    continue
                if ann.type == "keypoints" and not ann.attributes.get(c.POINTS_SHAPE) and not any(ann.keypoints[2::3]):
                    self.drop("keypoints", "a skeleton with no labelled point is CVAT's 'outside' on a video frame")
                    continue
                self.use_label(ann.label, ann)
                if ann.track_reference_id is None:
                    loose.append((frame, ann))
                    continue
                kind = (ann.label, element_tag(ann))
                tid = ann.track_reference_id
                first_kind = kinds.setdefault(tid, kind)
                if kind != first_kind:  # a CVAT track has one label and one shape kind
                    tid = split.setdefault((tid, kind), f"{tid}\x00{len(split)}")
                    self.note("tracks whose label or shape kind changed were split into one track per kind")
                tracks.setdefault(tid, []).append((frame, ann))
            for entry in item.attributes.get(c.OUTSIDE) or []:
                tid = str(entry["track"].get("id"))
                tracks.setdefault(tid, []).append((frame, entry))
                track_attrs.setdefault(tid, entry["track"])
        ids = self.track_ids(list(tracks), len(loose))
        numbered = [(ids[t], shapes, track_attrs.get(t, {})) for t, shapes in tracks.items()]
        start = max((int(i) for i, _, _ in numbered), default=-1) + 1
        numbered += [(str(start + n), [shape], {}) for n, shape in enumerate(loose)]
        for tid, shapes, stored in sorted(numbered, key=lambda p: int(p[0])):
            out.write(self.track_xml(tid, shapes, frames, by_frame, stored))
        return frames, (sized.width, sized.height) if sized is not None else None  # type: ignore[return-value]

    def track_ids(self, ids: list[str], loose: int) -> dict[str, str]:
        """CVAT track ids are integers: integer ids are kept, others get the next free numbers."""
        if loose:
            self.note("annotations without a track became one-frame tracks (CVAT for video holds tracks only)",
                      loose)
        out = {t: t for t in ids if t.isdigit()}
        nxt = max((int(t) for t in out), default=-1) + 1
        for t in ids:
            if t not in out:
                out[t] = str(nxt)
                nxt += 1
                if "\x00" not in t:
                    self.note("track ids that are not integers were renumbered (CVAT track ids are integers)")
        return out

    def track_xml(self, tid: str, shapes: list[tuple[int, Any]], frames: list[int],
                  by_frame: dict[int, DatasetItem], stored: dict[str, str]) -> str:
        """One ``<track>``: its shapes by frame, outside keyframes kept or added."""
        shapes.sort(key=lambda p: p[0])
        visible = [a for _, a in shapes if not isinstance(a, dict)]
        first = visible[0] if visible else None
        label = first.label if first is not None else stored.get("label", "")
        attrs: list[tuple[str, Any]] = [("id", tid), ("label", label)]
        source = first.attributes.get(c.SOURCE) if first is not None else stored.get("source")
        if source is not None:
            attrs.append(("source", source))
        group = first.group_id if first is not None else stored.get("group_id")
        if group is not None:
            attrs.append(("group_id", self.group(str(group), self.track_groups)))
        extra = first.attributes.get(c.TRACK_ATTRS) if first is not None else {
            k: v for k, v in stored.items() if k not in ("id", "label", "source", "group_id")}
        if isinstance(extra, dict):
            attrs += list(extra.items())
        taken = {f for f, _ in shapes}
        position = {f: n for n, f in enumerate(frames)}
        inner = []
        for frame, ann in shapes:
            if not isinstance(ann, dict):
                self.lost(ann, f"track-{tid}")
            if isinstance(ann, dict):
                node = ann["shape"]
                inner.append(_raw_xml(node, 2))
                continue
            inner.append(self.tracked_xml(ann, frame, by_frame[frame], outside=0))
            nxt = position[frame] + 1
            if nxt < len(frames) and frames[nxt] not in taken:  # CVAT keeps a shape until an outside keyframe
                inner.append(self.tracked_xml(ann, frames[nxt], by_frame[frames[nxt]], outside=1))
                taken.add(frames[nxt])
        return _element("track", attrs, "".join(inner), 1)

    def tracked_xml(self, ann: Any, frame: int, item: DatasetItem, outside: int) -> str:
        key = 1 if outside else ann.attributes.get(c.KEYFRAME, 1)
        head: list[tuple[str, Any]] = [("frame", frame), ("keyframe", int(bool(key)))]
        tag = element_tag(ann)
        if tag != "skeleton":
            head.append(("outside", outside))
        tail = [t for t in self.tail(ann, {}) if t[0] != "group_id"]  # a track holds the group
        if outside and tag == "skeleton":
            ann = ann.model_copy(update={"keypoints": [v if (i % 3) != 2 else 0 for i, v in enumerate(ann.keypoints)]})
        return self.shape_xml(ann, item, 2, head, tail, video=True)


def element_tag(ann: Any) -> str:
    """The CVAT element an annotation is written as."""
    t = ann.type
    if t == "polygon":
        ellipse = ann.attributes.get(c.ELLIPSE)
        return "ellipse" if isinstance(ellipse, list) and len(ellipse) == 5 and len(ann.rings) == 1 else "polygon"
    if t == "keypoints":
        return "points" if ann.attributes.get(c.POINTS_SHAPE) else "skeleton"
    return {"box": "box", "oriented_box": "box", "polygon": "polygon", "line": "polyline",
            "object_mask": "mask", "category": "tag"}[t]


def _element(tag: str, attrs: list[tuple[str, Any]], inner: str, indent: int) -> str:
    if not inner:
        return _open(tag, attrs, indent, empty=True)
    return f"{_open(tag, attrs, indent)}{inner}{'  ' * indent}</{tag}>\n"


def _raw_xml(node: list[Any], indent: int) -> str:
    """An element kept verbatim by the reader (``[tag, attrs, text, children]``)."""
    tag, attrs, text, children = node
    inner = _text(text) if text is not None and not children else ""
    if children:
        inner = "".join(_raw_xml(ch, indent + 1) for ch in children)
        return f"{_open(tag, attrs.items(), indent)}{inner}{'  ' * indent}</{tag}>\n"
    if inner:
        return f"{_open(tag, attrs.items(), indent)[:-1]}{inner}</{tag}>\n"
    return _open(tag, attrs.items(), indent, empty=True)


def _tree_xml(node: list[Any], indent: int, labels: Any = None) -> str:
    """A meta subtree kept by the reader (``[tag, text, children]``); ``labels(indent)`` fills
    the first ``<labels>``."""
    tag, text, children = node
    pad = "  " * indent
    if tag == "labels" and labels is not None:
        return f"{pad}<labels>\n{labels(indent + 1)}{pad}</labels>\n"
    if not children:
        return f"{pad}<{tag}>{_text(text)}</{tag}>\n"
    inner = []
    for ch in children:
        inner.append(_tree_xml(ch, indent + 1, labels))
        if ch[0] == "labels":
            labels = None
    return f"{pad}<{tag}>\n{''.join(inner)}{pad}</{tag}>\n"


def _step(frames: list[int]) -> int:
    step = 0
    for a, b in zip(frames, frames[1:]):
        step = math.gcd(step, b - a)
    return step or 1


def _peek(items: Iterable[DatasetItem]) -> tuple[DatasetItem | None, Iterator[DatasetItem]]:
    it = iter(items)
    first = next(it, None)

    def chained() -> Iterator[DatasetItem]:
        if first is not None:
            yield first
        yield from it

    return first, chained()


def write(dataset: Dataset, destination: Path, options: Any, context: Context) -> None:
    w = Writer(dataset, destination, options, context)
    first, items = _peek(dataset.items)
    mode = options.mode
    if mode == "auto":
        info = dataset.header.info.get("cvat")
        from_video = isinstance(info, dict) and info.get("mode") == "video"
        mode = "video" if (from_video or (first is not None and first.scene is not None
                                          and len(dataset.header.scenes) == 1)) else "images"
    body = destination.with_name(destination.name + ".body")  # in the engine's staging folder
    try:
        size = _write_file(w, mode, items, body, destination)
    except WriteError as err:
        if err.file is None:
            err.file = str(w.destination)
        raise
    finally:
        body.unlink(missing_ok=True)
    for (what, reason), n in w.drops.items():
        context.report.drop(what, reason, n)
    for text, n in w.notes.items():
        context.report.notes.append(f"{n} x {text}")
    if w.added:
        context.report.notes.append(f"labels not in the dataset's categories were added to <meta>: "
                                    f"{', '.join(w.added)}")
    logger.debug("wrote %d CVAT %s items to %s", size, mode, destination)


def _write_file(w: Writer, mode: str, items: Iterator[DatasetItem], body: Path, destination: Path) -> int:
    """The body (images or tracks) first, then the file: declaration, version, meta, body.
    Returns the number of items written."""
    frames: list[int] = []
    frame_size = None
    size = 0
    with open(body, "w", encoding="utf-8") as out:
        if mode == "video":
            held = list(items)
            size = len(held)
            frames, frame_size = w.video_body(held, out)
        else:
            for n, item in enumerate(items):
                try:
                    out.write(w.image_xml(item, n))
                except WriteError as err:
                    err.item = err.item or item.reference_id
                    raise
                size += 1
    with open(destination, "w", encoding="utf-8") as f:
        f.write('<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>\n')
        f.write(w.meta_xml(mode, frames, size, frame_size))
        with open(body, encoding="utf-8") as src:
            shutil.copyfileobj(src, f)
        f.write("</annotations>\n")
    return size
