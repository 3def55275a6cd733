"""Reading Nucleus payloads (the mapping is in the package docstring)."""

from __future__ import annotations

import functools
import itertools
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError

from annobridge.core.errors import ReadError
from annobridge.core.formats import Context, Shards, local_path
from annobridge.core.limits import load_json
from annobridge.core.model import (
    Annotation,
    BoxAnnotation,
    Category,
    CategoryAnnotation,
    CuboidAnnotation,
    Dataset,
    DatasetHeader,
    DatasetItem,
    FrameRef,
    IndexMask,
    KeypointsAnnotation,
    LineAnnotation,
    MultiCategoryAnnotation,
    Point3D,
    PolygonAnnotation,
    Scene,
    SceneCategoryAnnotation,
    Segment,
    SegmentationAnnotation,
    Taxonomy,
    annotation_id_problem,
    construct_with_defaults,
)
from annobridge.core.paths import contained
from annobridge.core.storage import join_url
from annobridge.plugins.nucleus.common import (
    EXT,
    ITEM_NATIVE_ATTRIBUTES,
    SCENE_NATIVE_ATTRIBUTES,
    SERVER_KEYS,
    SIDECAR_SUFFIX,
)
from annobridge.plugins.nucleus.fast import fast_item

if TYPE_CHECKING:
    from annobridge.plugins.nucleus import NucleusReadOptions

_ANNOTATION = TypeAdapter(Annotation)


class _Bad(Exception):
    """A problem inside one payload, at a JSON pointer relative to the line."""

    def __init__(self, pointer: str, problem: str, fix: str | None = None) -> None:
        super().__init__(problem)
        self.pointer = pointer
        self.problem = problem
        self.fix = fix


def _tname(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"[:60]
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _obj(value: Any, ptr: str, what: str, allowed: frozenset[str] | None = None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Bad(ptr, f"{what} must be a JSON object, got {_tname(value)}")
    if allowed is not None and not allowed.issuperset(value):
        for key in value:
            if key not in allowed:
                raise _Bad(f"{ptr.rstrip('/')}/{key}", f"unknown key {key!r} in {what}; Nucleus has "
                           + ", ".join(sorted(allowed - {EXT})),
                           fix="remove it, or keep extra data under \"annobridge\"")
    return value


def _num(obj: dict[str, Any], key: str, ptr: str, *, required: bool = True, default: Any = None) -> Any:
    if key not in obj or obj[key] is None:
        if required:
            raise _Bad(f"{ptr}/{key}", f"{key} is missing, expected a number")
        return default
    v = obj[key]
    if not _is_num(v):
        raise _Bad(f"{ptr}/{key}", f"{key} must be a number, got {_tname(v)}")
    return v


def _str(obj: dict[str, Any], key: str, ptr: str, *, required: bool = False) -> str | None:
    v = obj.get(key)
    if v is None:
        if required:
            raise _Bad(f"{ptr}/{key}", f"{key} is missing, expected a string")
        return None
    if not isinstance(v, str):
        raise _Bad(f"{ptr}/{key}", f"{key} must be a string, got {_tname(v)}")
    return v


def _dict(obj: dict[str, Any], key: str, ptr: str) -> dict[str, Any]:
    v = obj.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise _Bad(f"{ptr}/{key}", f"{key} must be a JSON object, got {_tname(v)}")
    return v


def _list(obj: dict[str, Any], key: str, ptr: str, *, required: bool = False) -> list[Any]:
    v = obj.get(key)
    if v is None:
        if required:
            raise _Bad(f"{ptr}/{key}", f"{key} is missing, expected a list")
        return []
    if not isinstance(v, list):
        raise _Bad(f"{ptr}/{key}", f"{key} must be a list, got {_tname(v)}")
    return v


_BASE_KEYS = frozenset({"label", "type", "geometry", "reference_id", "annotation_id", "metadata",
                        "track_reference_id", *SERVER_KEYS, EXT})
_PRED_KEYS = frozenset({"confidence", "class_pdf"})
_KEYS = {
    "box": _BASE_KEYS | {"embedding_vector"},
    "polygon": _BASE_KEYS | {"embedding_vector"},
    "line": _BASE_KEYS,
    "keypoints": _BASE_KEYS,
    "cuboid": _BASE_KEYS,
    "category": (_BASE_KEYS - {"annotation_id"}) | {"taxonomy_name"},
    "multicategory": (_BASE_KEYS - {"annotation_id", "label"}) | {"labels", "taxonomy_name"},
    "mask": frozenset({"type", "mask_url", "annotations", "annotation_id", "reference_id", *SERVER_KEYS, EXT}),
}
_OPTIONAL_FIELDS = {
    cls: tuple(k for k in ("annotation_id", "group_id", "track_reference_id", "confidence", "class_pdf",
                           "taxonomy_name", "embedding_vector") if k in cls.model_fields)
    for cls in (BoxAnnotation, LineAnnotation, PolygonAnnotation, KeypointsAnnotation, CuboidAnnotation,
                CategoryAnnotation, MultiCategoryAnnotation, SegmentationAnnotation)
}
_KEYS_PRED = {kind: keys | (_PRED_KEYS if kind != "mask" else frozenset()) for kind, keys in _KEYS.items()}
_BOX_GEOM = frozenset({"x", "y", "width", "height"})
_VERTEX_GEOM = frozenset({"vertices"})
_KEYPOINTS_GEOM = frozenset({"keypoints", "names", "skeleton"})
_CUBOID_GEOM = frozenset({"position", "dimensions", "yaw"})
_EXT_ANN_KEYS = frozenset({"attributes", "group_id", "annotation_id", "metadata", "track_reference_id",
                           "confidence", "class_pdf", "rings", "frame", "skeleton", "unlabelled_xy",
                           "segment_attributes"})
_ITEM_KEYS = frozenset({"metadata", "reference_id", "ref_id", "image_url", "pointcloud_url", "width", "height",
                        "annotations", "predictions", EXT, *ITEM_NATIVE_ATTRIBUTES})
_FRAME_ITEM_KEYS = _ITEM_KEYS | {"url", "type", "camera_params"}
_SCENE_KEYS = frozenset({"reference_id", "frames", "metadata", "annotations", "predictions", EXT,
                         *SCENE_NATIVE_ATTRIBUTES})
_SCENE_CAT_KEYS = frozenset({"label", "type", "geometry", "reference_id", "metadata", "task_id",
                             "taxonomy_name", "confidence", "class_pdf", EXT})


@dataclass
class _Reader:
    """Parses one file's lines; holds what is needed to name places in errors."""

    path: Path
    context: Context
    check_files: bool
    header: DatasetHeader
    seen_items: dict[str, str] = field(default_factory=dict)
    lineno: int = 0
    strict: bool = False
    unknown: int = 0
    """Payloads with keys Nucleus does not define (kept as attributes), for one warning ..."""
    first_unknown: str = ""
    """... naming the first of them."""
    folder: str = ""  # the file's folder below the source root (for Context.remote_root)

    @property
    def base(self) -> Path:
        return self.path.absolute().parent

    def where(self, pointer: str = "") -> str:
        return f"line {self.lineno}, #{pointer}" if pointer else f"line {self.lineno}"

    def extra_keys(self, obj: dict[str, Any], ptr: str, what: str, allowed: frozenset[str]) -> dict[str, Any]:
        """The keys of a payload that Nucleus does not define: kept (the caller makes them
        attributes) and noted, or, with ``strict``, refused."""
        if allowed.issuperset(obj):
            return {}
        if self.strict:
            _obj(obj, ptr, what, allowed)
        extra = {k: v for k, v in obj.items() if k not in allowed}
        if not self.unknown:
            self.first_unknown = f"{next(iter(extra))!r} in a {what} ({self.where(ptr)})"
        self.unknown += 1
        return extra

    def error(self, bad: _Bad, item: str | None) -> ReadError:
        return ReadError(bad.problem, file=self.path, where=self.where(bad.pointer), item=item, fix=bad.fix)

    def location(self, loc: str | None) -> str | None:
        if loc is None:
            return None
        if self.context.remote_root is not None and "://" not in loc and not loc.startswith("/"):
            return self._remote(loc)  # a worker's copy holds only the .jsonl: the URL, fetched on use
        p = local_path(loc, self.base)
        return loc if p is None else str(p)

    def _remote(self, loc: str) -> str:
        assert self.context.remote_root is not None  # _contain kept loc inside the file's folder
        return join_url(self.context.remote_root, posixpath.normpath(posixpath.join(self.folder, loc)))

    # ---------------------------------------------------------------- items

    def items(self) -> Iterator[DatasetItem]:
        # bytes: a line that is not UTF-8 is one error, not the end; 256 KiB reads, not 8 KiB ones
        with open(self.path, "rb", buffering=1 << 18) as fh:
            for self.lineno, line in enumerate(fh, start=1):
                yield from self.line(line)
        self._warn_unknown()

    def lines(self, where: list[tuple[int, int]]) -> Iterator[DatasetItem]:
        """The items of the lines at these (byte offset, line number) places."""
        with open(self.path, "rb") as fh:
            for offset, self.lineno in where:
                fh.seek(offset)
                yield from self.line(fh.readline())
        self._warn_unknown()

    def _warn_unknown(self) -> None:
        if self.unknown:
            self.context.warn(f"{self.path}: {self.unknown} payloads have keys Nucleus does not define, "
                              f"first {self.first_unknown}; kept as attributes (written back under "
                              f'"{EXT}") (--option strict=true refuses them)')

    def line(self, line: bytes) -> Iterator[DatasetItem]:
        """The items of one line (an item payload, or a scene payload's frames)."""
        if not line or line.isspace():  # (line.strip() would copy every line)
            return
        item = fast_item(line, self.seen_items, f"line {self.lineno}")
        if item is not None:
            yield item
            return
        try:
            obj = _loads(line)
        except ReadError as exc:
            truncated = not line.endswith(b"\n")
            self.context.error(ReadError(
                f"invalid JSON: {exc.problem}" + (" (the line is cut short)" if truncated else ""),
                file=self.path, where=self.where(),
                fix=exc.fix or "each line must be one complete JSON object (a Nucleus item or scene payload)",
            ))
            return
        if not isinstance(obj, dict):
            self.context.error(ReadError(f"a line must be a JSON object, got {_tname(obj)}",
                                         file=self.path, where=self.where()))
            return
        if "frames" in obj or "video_url" in obj:
            yield from self.scene(obj)
        else:
            item = self.item(obj, "", None, None)
            if item is not None:
                yield item

    def _ref(self, obj: dict[str, Any], ptr: str) -> str:
        ref = obj.get("reference_id", obj.get("ref_id"))
        if not isinstance(ref, str) or not ref:
            raise _Bad(f"{ptr}/reference_id", f"reference_id must be a non-empty string, got {_tname(ref)}",
                       fix="every Nucleus item needs a reference_id")
        return ref

    def item(self, obj: Any, ptr: str, scene: FrameRef | None, frame_sensor: str | None) -> DatasetItem | None:
        ref = None
        try:
            allowed = _FRAME_ITEM_KEYS if scene is not None else _ITEM_KEYS | {"url", "type"}
            extra = self.extra_keys(_obj(obj, ptr or "/", "item payload"), ptr or "/", "item payload", allowed)
            ref = self._ref(obj, ptr)
            if ref in self.seen_items:
                raise _Bad(f"{ptr}/reference_id", f"reference_id {ref!r} is used twice (first at {self.seen_items[ref]})",
                           fix="reference ids must be unique in a dataset")
            self.seen_items[ref] = self.where(ptr)
            metadata = dict(_dict(obj, "metadata", ptr))
            image = _str(obj, "image_url", ptr)
            cloud = _str(obj, "pointcloud_url", ptr)
            url = _str(obj, "url", ptr)
            kind = _str(obj, "type", ptr)
            if kind is not None and kind not in ("image", "pointcloud"):
                raise _Bad(f"{ptr}/type", f"item type must be \"image\" or \"pointcloud\", got {kind!r}")
            if url is not None:
                if image or cloud:
                    raise _Bad(f"{ptr}/url", "give url or image_url/pointcloud_url, not both")
                if kind == "pointcloud" or (kind is None and url.endswith(".json")):
                    cloud = url
                else:
                    image = url
            if image and cloud:
                raise _Bad(ptr or "/", "an item has image_url or pointcloud_url, not both")
            self._contain(cloud, f"{ptr}/url" if url else f"{ptr}/pointcloud_url", "pointcloud_url")
            if "camera_params" in obj and "camera_params" not in metadata:
                metadata["camera_params"] = _dict(obj, "camera_params", ptr)
            width = _num(obj, "width", ptr, required=False)
            height = _num(obj, "height", ptr, required=False)
            for key, v in (("width", width), ("height", height)):
                if v is not None and (not isinstance(v, int) or v < 0):
                    raise _Bad(f"{ptr}/{key}", f"{key} must be a whole number >= 0, got {v}")
            attributes = {k: obj[k] for k in ITEM_NATIVE_ATTRIBUTES if k in obj}
            attributes.update(extra)
            ext = _obj(obj.get(EXT, {}), f"{ptr}/{EXT}", "annobridge extension",
                       frozenset({"attributes", "annotations", "predictions", "sensor", "frame_index"}))
            attributes.update(_dict(ext, "attributes", f"{ptr}/{EXT}"))
            if not isinstance(ext.get("sensor", ""), str):
                raise _Bad(f"{ptr}/{EXT}/sensor", f"sensor must be a string, got {_tname(ext['sensor'])}")
            fi = ext.get("frame_index", 0)
            if not isinstance(fi, int) or isinstance(fi, bool) or fi < 0:
                raise _Bad(f"{ptr}/{EXT}/frame_index", f"frame_index must be a whole number >= 0, got {_tname(fi)}")
            if cloud is not None and self.check_files:
                self._check_file(cloud, f"{ptr}/url" if url else f"{ptr}/pointcloud_url", "point cloud")
        except _Bad as bad:
            self.context.error(self.error(bad, ref))
            return None
        assert ref is not None
        anns = self.annotations(obj, ptr, ref, ext, predictions=False)
        preds = self.annotations(obj, ptr, ref, ext, predictions=True)
        if scene is not None:
            sensor = ext.get("sensor", frame_sensor or "camera")
            index = ext.get("frame_index", scene.index)
            scene = construct_with_defaults(FrameRef, scene_reference_id=scene.scene_reference_id, index=index, sensor=sensor)
        item = construct_with_defaults(DatasetItem, 
            reference_id=ref, image_location=image, pointcloud_location=self.location(cloud),
            width=width, height=height, metadata=metadata, attributes=attributes,
            annotations=anns, predictions=preds, scene=scene,
        )
        for ann in (*anns, *preds):
            if ann.type == "segmentation":  # a mask may not declare more pixels than its item
                ann.mask.expect_size(width, height)
        problem = annotation_id_problem(item)
        if problem:
            self.context.error(ReadError(problem, file=self.path, where=self.where(ptr), item=ref,
                                         fix="give every annotation of an item its own annotation_id"))
            return None
        return item

    def _contain(self, loc: str | None, ptr: str, what: str) -> None:
        """A local path must stay inside the .jsonl file's folder (core.paths.contained)."""
        if loc is None or "://" in loc:
            return
        try:
            contained(self.base, loc, what=what)
        except ReadError as exc:
            raise _Bad(ptr, exc.problem, fix=exc.fix) from exc

    def _check_file(self, loc: str, ptr: str, what: str) -> None:
        if self.context.remote_root is not None:
            return  # remote: a missing file is named when it is fetched
        p = local_path(loc, self.base)
        if p is not None and not p.is_file():
            raise _Bad(ptr, f"{what} file {str(p)!r} does not exist",
                       fix=f"put the {what} file there, or fix its path (relative paths start at the .jsonl folder)")

    def annotations(self, obj: dict[str, Any], ptr: str, ref: str, ext: dict[str, Any],
                    *, predictions: bool) -> list[Any]:
        key = "predictions" if predictions else "annotations"
        out: list[Any] = []
        try:
            payloads = _list(obj, key, ptr)
            extras = _list(ext, key, f"{ptr}/{EXT}")
        except _Bad as bad:
            self.context.error(self.error(bad, ref))
            return out
        for n, payload in enumerate(payloads):
            p = f"{ptr}/{key}/{n}"
            try:
                out.append(self.annotation(payload, p, ref, predictions))
            except _Bad as bad:
                self.context.error(self.error(bad, ref))
        for n, extra in enumerate(extras):
            p = f"{ptr}/{EXT}/{key}/{n}"
            try:
                _obj(extra, p, "extension annotation", frozenset({"at", "annotation"}))
                at = extra.get("at")
                if not isinstance(at, int) or isinstance(at, bool) or at < 0:
                    raise _Bad(f"{p}/at", f"at must be a position >= 0, got {_tname(at)}")
                try:
                    ann = _ANNOTATION.validate_python(extra.get("annotation"))
                except ValidationError as exc:
                    raise _Bad(f"{p}/annotation", _validation_problem(exc)) from exc
                if ann.reference_id not in (None, ref):
                    raise _Bad(f"{p}/annotation/reference_id",
                               f"reference_id {ann.reference_id!r} differs from the item's {ref!r}")
                ann.reference_id = ref
                out.insert(min(at, len(out)), ann)
            except _Bad as bad:
                self.context.error(self.error(bad, ref))
        return out

    def annotation(self, payload: Any, ptr: str, ref: str, prediction: bool) -> Any:
        if not isinstance(payload, dict):
            raise _Bad(ptr, f"an annotation payload must be a JSON object, got {_tname(payload)}")
        kind = payload.get("type")
        if kind == "segmentation" or (kind is None and "mask_url" in payload):
            kind = "mask"
        if kind not in _KEYS:
            raise _Bad(f"{ptr}/type", f"unknown annotation type {_tname(kind)}; expected one of "
                       + ", ".join(sorted(_KEYS)))
        allowed = (_KEYS_PRED if prediction else _KEYS)[kind]
        extra = self.extra_keys(payload, ptr, f"{kind} payload", allowed)
        pref = _str(payload, "reference_id", ptr)
        if pref is not None and pref != ref:
            raise _Bad(f"{ptr}/reference_id", f"reference_id {pref!r} differs from the item's {ref!r}",
                       fix="an item carries only its own annotations")
        f: dict[str, Any] = {"reference_id": ref}
        if kind != "mask":
            f["metadata"] = dict(_dict(payload, "metadata", ptr))
            f["track_reference_id"] = _str(payload, "track_reference_id", ptr)
        attributes = {k: payload[k] for k in SERVER_KEYS if payload.get(k) is not None}
        attributes.update(extra)
        if kind not in ("category", "multicategory"):
            f["annotation_id"] = _str(payload, "annotation_id", ptr)
        if prediction and kind != "mask":
            conf = _num(payload, "confidence", ptr, required=False)
            if conf is not None and not 0 <= conf <= 1:
                raise _Bad(f"{ptr}/confidence", f"confidence must lie in [0, 1], got {conf}")
            f["confidence"] = conf
            pdf = payload.get("class_pdf")
            if pdf is not None:
                if not isinstance(pdf, dict) or not all(_is_num(v) for v in pdf.values()):
                    raise _Bad(f"{ptr}/class_pdf", f"class_pdf must map labels to probabilities, got {_tname(pdf)}",
                               fix="Nucleus's class_pdf is a dict label -> probability, not a list")
                f["class_pdf"] = dict(pdf)
        if kind in ("category", "multicategory"):
            f["taxonomy_name"] = _str(payload, "taxonomy_name", ptr)
        geom = payload.get("geometry")
        if kind != "mask":
            geom = _obj(geom if geom is not None else {}, f"{ptr}/geometry", f"{kind} geometry")
        gptr = f"{ptr}/geometry"
        if kind == "box":
            _obj(geom, gptr, "box geometry", _BOX_GEOM)
            f.update(label=_label(payload, ptr), x=_num(geom, "x", gptr), y=_num(geom, "y", gptr),
                     width=_num(geom, "width", gptr), height=_num(geom, "height", gptr))
            if f["width"] < 0 or f["height"] < 0:
                raise _Bad(gptr, f"box width and height must be >= 0, got {f['width']}, {f['height']}")
            emb = payload.get("embedding_vector")
            if emb is not None and not (isinstance(emb, list) and all(_is_num(v) for v in emb)):
                raise _Bad(f"{ptr}/embedding_vector", f"embedding_vector must be a list of numbers, got {_tname(emb)}")
            f["embedding_vector"] = emb
            cls: type = BoxAnnotation
        elif kind in ("line", "polygon"):
            _obj(geom, gptr, f"{kind} geometry", _VERTEX_GEOM)
            flat = _vertices(geom, gptr, 2 if kind == "line" else 3)
            f["label"] = _label(payload, ptr)
            if kind == "line":
                f["vertices"] = flat
                cls = LineAnnotation
            else:
                f["rings"] = [flat]
                emb = payload.get("embedding_vector")
                if emb is not None and not (isinstance(emb, list) and all(_is_num(v) for v in emb)):
                    raise _Bad(f"{ptr}/embedding_vector", f"embedding_vector must be a list of numbers, got {_tname(emb)}")
                f["embedding_vector"] = emb
                cls = PolygonAnnotation
        elif kind == "keypoints":
            _obj(geom, gptr, "keypoints geometry", _KEYPOINTS_GEOM)
            f.update(label=_label(payload, ptr), **_keypoints(geom, gptr))
            if prediction and f["skeleton"] is None:  # the client needs one; the model holds None
                if self.strict:
                    raise _Bad(f"{gptr}/skeleton", "a keypoints prediction needs a skeleton (Nucleus requires it)",
                               fix="write \"skeleton\": [] when there is none, or read without strict=true")
                self.context.warn(self.error(_Bad(f"{gptr}/skeleton", "a keypoints prediction has no skeleton, "
                                                  "which the Nucleus client requires; read as none (written "
                                                  "back as [])"), ref))
            cls = KeypointsAnnotation
        elif kind == "cuboid":
            _obj(geom, gptr, "cuboid geometry", _CUBOID_GEOM)
            f.update(label=_label(payload, ptr), position=_point3d(geom, "position", gptr),
                     dimensions=_point3d(geom, "dimensions", gptr), yaw=_num(geom, "yaw", gptr), frame="lidar")
            d = f["dimensions"]
            if min(d.x, d.y, d.z) < 0:
                raise _Bad(f"{gptr}/dimensions", f"cuboid dimensions must be >= 0, got {d.x}, {d.y}, {d.z}")
            cls = CuboidAnnotation
        elif kind == "category":
            if geom:
                raise _Bad(gptr, "a category's geometry must be {}")
            f["label"] = _str(payload, "label", ptr, required=True)
            cls = CategoryAnnotation
        elif kind == "multicategory":
            if geom:
                raise _Bad(gptr, "a multicategory's geometry must be {}")
            labels = _list(payload, "labels", ptr, required=True)
            if not all(isinstance(x, str) for x in labels):
                raise _Bad(f"{ptr}/labels", "labels must be a list of strings")
            f["labels"] = list(labels)
            cls = MultiCategoryAnnotation
        else:  # mask
            url = _str(payload, "mask_url", ptr, required=True)
            assert url is not None
            self._contain(url, f"{ptr}/mask_url", "mask_url")
            if self.check_files:
                self._check_file(url, f"{ptr}/mask_url", "mask")
            segments = []
            seen: set[int] = set()
            for n, s in enumerate(_list(payload, "annotations", ptr)):
                sp = f"{ptr}/annotations/{n}"
                _obj(s, sp, "segment", frozenset({"label", "index", "metadata"}))
                index = s.get("index")
                if not isinstance(index, int) or isinstance(index, bool) or index < 0:
                    raise _Bad(f"{sp}/index", f"segment index must be a whole number >= 0, got {_tname(index)}")
                if index in seen:
                    raise _Bad(f"{sp}/index", f"segment index {index} appears twice in this mask")
                seen.add(index)
                segments.append(construct_with_defaults(Segment, label=_str(s, "label", sp, required=True), index=index,
                                                        metadata=dict(_dict(s, "metadata", sp)), attributes={}))
            f.update(mask=IndexMask(location=self.location(url), encoding="index"), annotations=segments,
                     metadata={}, track_reference_id=None)
            cls = SegmentationAnnotation
        f["attributes"] = attributes
        ext = payload.get(EXT)
        if ext is None:
            for k in _OPTIONAL_FIELDS[cls]:
                f.setdefault(k, None)
            f.setdefault("metadata", {})
            return construct_with_defaults(cls, **f)
        return _with_extension(cls, f, _obj(ext, f"{ptr}/{EXT}", "annobridge extension", _EXT_ANN_KEYS),
                               f"{ptr}/{EXT}")

    # ---------------------------------------------------------------- scenes

    def scene(self, obj: dict[str, Any]) -> Iterator[DatasetItem]:
        try:
            extra = self.extra_keys(_obj(obj, "/", "scene payload"), "/", "scene payload", _SCENE_KEYS)
            ref = self._ref(obj, "")
            if ref in self.header.scenes:
                raise _Bad("/reference_id", f"scene reference_id {ref!r} is used twice",
                           fix="write each scene on one line")
            frames = _list(obj, "frames", "")
            ext = _obj(obj.get(EXT, {}), f"/{EXT}", "annobridge extension", frozenset({"attributes"}))
            attributes = {k: obj[k] for k in SCENE_NATIVE_ATTRIBUTES if k in obj}
            attributes.update(extra)
            attributes.update(_dict(ext, "attributes", f"/{EXT}"))
            cats = []
            for key in ("annotations", "predictions"):
                for n, p in enumerate(_list(obj, key, "")):
                    cats.append(self.scene_category(p, f"/{key}/{n}", ref, key == "predictions"))
            scene = construct_with_defaults(Scene, reference_id=ref, metadata=dict(_dict(obj, "metadata", "")),
                                          annotations=cats, attributes=attributes)
        except _Bad as bad:
            self.context.error(self.error(bad, obj.get("reference_id") if isinstance(obj.get("reference_id"), str) else None))
            return
        self.header.scenes[ref] = scene
        for index, frame in enumerate(frames):
            ptr = f"/frames/{index}"
            if isinstance(frame, dict) and ("reference_id" in frame or "url" in frame):  # a video frame
                item = self.item(frame, ptr, construct_with_defaults(FrameRef, scene_reference_id=ref, index=index,
                                                                      sensor="camera"), None)
                if item is not None:
                    yield item
                continue
            if not isinstance(frame, dict):
                self.context.error(self.error(_Bad(ptr, f"a frame must be an object sensor -> item, got {_tname(frame)}"), ref))
                continue
            for sensor, payload in frame.items():
                item = self.item(payload, f"{ptr}/{_escape(sensor)}",
                                 construct_with_defaults(FrameRef, scene_reference_id=ref, index=index, sensor=sensor), sensor)
                if item is not None:
                    yield item

    def scene_category(self, p: Any, ptr: str, scene_ref: str, prediction: bool) -> SceneCategoryAnnotation:
        _obj(p, ptr, "scene category payload", _SCENE_CAT_KEYS if prediction else _SCENE_CAT_KEYS - _PRED_KEYS)
        if p.get("type", "category") != "category":
            raise _Bad(f"{ptr}/type", f"a scene annotation must be of type \"category\", got {_tname(p.get('type'))}")
        pref = _str(p, "reference_id", ptr)
        if pref is not None and pref != scene_ref:
            raise _Bad(f"{ptr}/reference_id", f"reference_id {pref!r} differs from the scene's {scene_ref!r}")
        if _dict(p, "geometry", ptr):
            raise _Bad(f"{ptr}/geometry", "a scene category's geometry must be {}")
        f: dict[str, Any] = {
            "label": _str(p, "label", ptr, required=True), "reference_id": scene_ref,
            "taxonomy_name": _str(p, "taxonomy_name", ptr), "metadata": dict(_dict(p, "metadata", ptr)),
            "attributes": {"task_id": p["task_id"]} if p.get("task_id") is not None else {},
            "confidence": _num(p, "confidence", ptr, required=False), "class_pdf": p.get("class_pdf"),
            "annotation_id": None, "group_id": None, "track_reference_id": None,
        }
        if EXT in p:
            return _with_extension(SceneCategoryAnnotation, f, _obj(p[EXT], f"{ptr}/{EXT}", "annobridge extension",
                                                                    _EXT_ANN_KEYS), f"{ptr}/{EXT}")
        return construct_with_defaults(SceneCategoryAnnotation, **f)


def _loads(line: str | bytes) -> Any:
    """One payload line, parsed under core.limits (finite numbers, bounded ints and depth)."""
    return load_json(line)


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _label(payload: dict[str, Any], ptr: str) -> str:
    label = payload.get("label")
    if not isinstance(label, str):
        raise _Bad(f"{ptr}/label", f"label must be a string, got {_tname(label)}")
    return label


_NUMBER_TYPES = frozenset({int, float})


def _vertices(geom: dict[str, Any], ptr: str, minimum: int) -> list[float]:
    verts = _list(geom, "vertices", ptr, required=True)
    try:  # fast path: one comprehension, types checked in bulk
        flat = [c for v in verts for c in (v["x"], v["y"])]
        ok = _NUMBER_TYPES.issuperset(map(type, flat)) and all(len(v) == 2 for v in verts)
    except (TypeError, KeyError):
        ok = False
    if not ok:  # find the first bad vertex and say what is wrong with it
        for n, v in enumerate(verts):
            if not isinstance(v, dict) or len(v) != 2:
                raise _Bad(f"{ptr}/vertices/{n}", f"a vertex is {{\"x\", \"y\"}}, got {_tname(v)}")
            x, y = v.get("x"), v.get("y")
            if not (_is_num(x) and _is_num(y)):
                raise _Bad(f"{ptr}/vertices/{n}", f"vertex x and y must be numbers, got {_tname(x)}, {_tname(y)}")
        raise _Bad(f"{ptr}/vertices", "vertices must be a list of {\"x\", \"y\"} objects")
    if len(verts) < minimum:
        raise _Bad(f"{ptr}/vertices", f"needs at least {minimum} vertices, got {len(verts)}")
    return flat


def _keypoints(geom: dict[str, Any], ptr: str) -> dict[str, Any]:
    names = _list(geom, "names", ptr, required=True)
    if not all(isinstance(n, str) for n in names):
        raise _Bad(f"{ptr}/names", "keypoint names must be strings")
    if len(set(names)) != len(names):
        raise _Bad(f"{ptr}/names", "keypoint names must be unique")
    kps = _list(geom, "keypoints", ptr, required=True)
    if len(kps) != len(names):
        raise _Bad(f"{ptr}/keypoints", f"{len(kps)} keypoints for {len(names)} names; expected one per name")
    flat: list[float] = []
    for n, kp in enumerate(kps):
        kptr = f"{ptr}/keypoints/{n}"
        _obj(kp, kptr, "keypoint", frozenset({"x", "y", "visible"}))
        x, y, visible = kp.get("x"), kp.get("y"), kp.get("visible")
        if not isinstance(visible, bool):
            raise _Bad(f"{kptr}/visible", f"visible must be true or false, got {_tname(visible)}")
        if x is None and y is None:
            if visible:
                raise _Bad(kptr, "a visible keypoint needs x and y")
            flat.extend((0, 0, 0))
        elif _is_num(x) and _is_num(y):
            flat.extend((x, y, 2 if visible else 1))
        else:
            raise _Bad(kptr, f"keypoint x and y must be numbers (or both null), got {_tname(x)}, {_tname(y)}")
    skeleton = geom.get("skeleton")
    edges = None
    if skeleton is not None:
        if not isinstance(skeleton, list):
            raise _Bad(f"{ptr}/skeleton", f"skeleton must be a list of [a, b] pairs, got {_tname(skeleton)}")
        edges = []
        for n, e in enumerate(skeleton):
            if (not isinstance(e, list) or len(e) != 2 or not all(isinstance(i, int) and not isinstance(i, bool)
                                                                   and 0 <= i < len(names) for i in e)):
                raise _Bad(f"{ptr}/skeleton/{n}", f"a skeleton edge is 2 keypoint indices in 0..{len(names) - 1} "
                           f"(0-based), got {e!r}")
            edges.append((e[0], e[1]))
    return {"keypoints": flat, "names": list(names), "skeleton": edges}


def _point3d(geom: dict[str, Any], key: str, ptr: str) -> Point3D:
    p = _obj(geom.get(key), f"{ptr}/{key}", key, frozenset({"x", "y", "z"}))
    sub = f"{ptr}/{key}"
    return construct_with_defaults(Point3D, x=_num(p, "x", sub), y=_num(p, "y", sub), z=_num(p, "z", sub))


def _validation_problem(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = "/".join(str(p) for p in err["loc"])
    return f"{loc}: {err['msg']}" if loc else err["msg"]


def _with_extension(cls: type, f: dict[str, Any], ext: dict[str, Any], ptr: str) -> Any:
    """Apply an ``annobridge`` extension to the fields read from the payload; validate the result."""
    for key in ("group_id", "annotation_id", "metadata", "track_reference_id", "confidence", "class_pdf", "frame",
                "skeleton"):
        if key in ext:
            f[key] = ext[key]
    if "attributes" in ext:
        attrs = ext["attributes"]
        if not isinstance(attrs, dict):
            raise _Bad(f"{ptr}/attributes", f"attributes must be an object, got {_tname(attrs)}")
        f["attributes"] = {**f.get("attributes", {}), **attrs}
    if "rings" in ext:
        if cls is not PolygonAnnotation or not isinstance(ext["rings"], list):
            raise _Bad(f"{ptr}/rings", "rings (a list of flat rings) belong to a polygon only")
        f["rings"] = f["rings"] + ext["rings"]
    if "unlabelled_xy" in ext:
        xy = ext["unlabelled_xy"]
        if cls is not KeypointsAnnotation or not isinstance(xy, dict):
            raise _Bad(f"{ptr}/unlabelled_xy", "unlabelled_xy ({index: [x, y]}) belongs to keypoints only")
        flat = list(f["keypoints"])
        for k, v in xy.items():
            try:
                i = int(k)
                if flat[3 * i + 2] != 0 or not (isinstance(v, list) and len(v) == 2 and all(_is_num(c) for c in v)):
                    raise ValueError
            except (ValueError, IndexError):
                raise _Bad(f"{ptr}/unlabelled_xy/{k}", "expected the index of a not-labelled keypoint -> [x, y]") from None
            flat[3 * i], flat[3 * i + 1] = v
        f["keypoints"] = flat
    if "segment_attributes" in ext:
        sa = ext["segment_attributes"]
        if cls is not SegmentationAnnotation or not isinstance(sa, dict):
            raise _Bad(f"{ptr}/segment_attributes", "segment_attributes ({index: {...}}) belongs to a mask only")
        by_index = {s.index: s for s in f["annotations"]}
        for k, v in sa.items():
            seg = by_index.get(int(k)) if str(k).isdigit() else None
            if seg is None or not isinstance(v, dict):
                raise _Bad(f"{ptr}/segment_attributes/{k}", "expected a segment index of this mask -> {attributes}")
            seg.attributes = dict(v)
    data = {k: v for k, v in f.items() if v is not None or k in ("annotation_id",)}
    if "mask" in data:
        data["mask"] = f["mask"]
    try:
        ann = cls.model_validate(data)
    except ValidationError as exc:
        raise _Bad(ptr, f"extension does not fit the annotation: {_validation_problem(exc)}") from exc
    if "annotation_id" in ext and ext["annotation_id"] is None:
        ann.annotation_id = None
    for key in ("vertices", "rings", "keypoints"):  # numbers as read (validation made ints floats)
        if key in f:
            setattr(ann, key, f[key])
    return ann


def _sidecar_for(jsonl: Path) -> Path:
    return jsonl.with_name(jsonl.stem + SIDECAR_SUFFIX) if jsonl.suffix == ".jsonl" else jsonl.with_name(jsonl.name + SIDECAR_SUFFIX)


def _read_sidecar(path: Path, header: DatasetHeader) -> None:
    data = load_json(path.read_bytes(), file=path)  # finite numbers, bounded ints and depth
    try:
        _obj(data, "/", "dataset sidecar", frozenset({"name", "taxonomies", EXT}))
        name = _str(data, "name", "")
        if name and not header.name:
            header.name = name
        known = {t.name for t in header.taxonomies}
        for n, t in enumerate(_list(data, "taxonomies", "")):
            p = f"/taxonomies/{n}"
            _obj(t, p, "taxonomy", frozenset({"taxonomy_name", "taxonomy_type", "labels"}))
            labels = _list(t, "labels", p, required=True)
            try:
                tax = Taxonomy(name=t.get("taxonomy_name"), type=t.get("taxonomy_type", "category"), labels=labels)
            except ValidationError as exc:
                raise _Bad(p, _validation_problem(exc)) from exc
            if tax.name not in known:
                header.taxonomies.append(tax)
                known.add(tax.name)
        ext = _obj(data.get(EXT, {}), f"/{EXT}", "annobridge extension", frozenset({"categories", "info"}))
        ids = {c.id for c in header.categories}
        for n, c in enumerate(_list(ext, "categories", f"/{EXT}")):
            try:
                cat = Category.model_validate(c)
            except ValidationError as exc:
                raise _Bad(f"/{EXT}/categories/{n}", _validation_problem(exc)) from exc
            if cat.id in ids:
                continue
            header.categories.append(cat)
            ids.add(cat.id)
        header.info.update(_dict(ext, "info", f"/{EXT}"))
    except _Bad as bad:
        raise ReadError(bad.problem, file=path, where="#" + bad.pointer, fix=bad.fix) from None


def _sources(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.glob("*.jsonl") if p.is_file())
        if not files:
            raise ReadError("folder holds no .jsonl files", file=path,
                            fix="give a Nucleus .jsonl file or a folder of them")
        return files
    return [path]


def read(path: Path, options: NucleusReadOptions, context: Context) -> Dataset:
    """Read Nucleus payload lines (a file, or every ``*.jsonl`` of a folder) lazily."""
    header = DatasetHeader()
    files = _sources(path)
    for f in files:
        sidecar = _sidecar_for(f)
        if sidecar.is_file():
            _read_sidecar(sidecar, header)
    return Dataset(header=header, items=_read_items(files, options, context, header))


def shards(path: Path, options: NucleusReadOptions, context: Context) -> Shards:
    """The payload lines as units that workers read apart (``converters/sharded.py``): (file
    relative to the source, byte offset, line number, end offset) of each non-blank line,
    found by a scan for newlines. Reference ids used twice across parts are found by the
    driver."""
    dataset = read(path, options, context)
    files = _sources(path)
    root = path if path.is_dir() else path.parent
    units = []
    for f in files:
        name = f.relative_to(root).as_posix()
        with open(f, "rb") as fh:
            offset = 0
            for lineno, line in enumerate(fh, start=1):
                if line.strip():
                    units.append((name, offset, lineno, offset + len(line)))
                offset += len(line)
    return Shards(units=units, read=functools.partial(_read_lines, options), root=root, header=dataset.header,
                  files=_file_of, unique_refs=True)


def _file_of(unit: tuple[str, int, int, int]) -> list[tuple[str, int, int]]:
    """The unit's line: a worker fetches only the bytes of its lines."""
    return [(unit[0], unit[1], unit[3])]


def _read_lines(options: NucleusReadOptions, root: Path, units: list[tuple[str, int, int, int]],
                header: DatasetHeader, context: Context) -> Iterator[DatasetItem]:
    seen: dict[str, str] = {}
    for name, group in itertools.groupby(units, key=lambda u: u[0]):
        reader = _Reader(root / name, context, options.check_files, header, seen, strict=options.strict,
                         folder=posixpath.dirname(name))
        yield from reader.lines([(offset, lineno) for _, offset, lineno, _ in group])


def _read_items(files: list[Path], options: NucleusReadOptions, context: Context,
                header: DatasetHeader) -> Iterator[DatasetItem]:
    seen: dict[str, str] = {}
    for f in files:
        reader = _Reader(f, context, options.check_files, header, seen, strict=options.strict)
        yield from reader.items()
