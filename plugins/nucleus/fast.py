"""The fast path of the Nucleus reader: typed decoding of the common item line.

Most lines are one image item with box, polygon, line and keypoints payloads, as annobridge
and the Nucleus export write them. msgspec decodes such a line straight into the ``Struct``
schemas below, checking keys and types in C; Python then checks what a schema cannot say
(ranges, counts, unique names, the item's own reference id) and builds the canonical objects
with :func:`~annobridge.core.model.construct` (the dicts and lists msgspec made are fresh, so
they are used as they are).

The fast path never reports anything: a line it does not take whole (any other payload
kind or key, a scene, an extension other than keypoints' ``unlabelled_xy``, a value out of
range, a duplicate id, an integer of 19 digits or more) returns None, and the general reader
in ``read.py`` reads it again and names the file, line and field of any problem. So both
paths accept the same lines and build equal objects (``tests/test_nucleus.py`` compares them).

Integers of 19 digits or more are where the paths part: msgspec reads them as Python ints,
the general reader (``core.limits.load_json``) reads those beyond 64 bits as floats. Typed
fields refuse them in the schema (``Int``); the free values (metadata, server keys) are
walked after decoding (``_has_long_int``), which costs a tenth of scanning the line's text
for digit runs (``core.limits._has_long_integer``).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from annobridge.core.model import (
    BoxAnnotation,
    DatasetItem,
    KeypointsAnnotation,
    LineAnnotation,
    PolygonAnnotation,
    construct,
)
from annobridge.plugins.nucleus.common import SERVER_KEYS

_LONG = 10**18
"""The least integer of 19 digits."""
Int = Annotated[int, msgspec.Meta(gt=-_LONG, lt=_LONG)]
Num = Int | float  # JSON ints stay ints (a box's automatic id prints them as given)


class _Vertex(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    x: Num
    y: Num


class _Keypoint(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    visible: bool
    x: Num | None = None
    y: Num | None = None


class _BoxGeometry(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    x: Num
    y: Num
    width: Num
    height: Num


class _VertexGeometry(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    vertices: list[_Vertex]


class _KeypointsGeometry(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    keypoints: list[_Keypoint]
    names: list[str]
    skeleton: list[tuple[Int, Int]] | None = None


class _KeypointsExtension(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    unlabelled_xy: dict[str, tuple[Num, Num]]


class _Payload(msgspec.Struct, forbid_unknown_fields=True, gc=False, tag_field="type", kw_only=True):
    """Keys every payload kind has (``read._BASE_KEYS`` without the extension)."""

    label: str
    reference_id: str | None = None
    annotation_id: str | None = None
    metadata: dict[str, Any] | None = None
    track_reference_id: str | None = None
    task_id: Any = None  # common.SERVER_KEYS: kept as attributes when not null
    dataset_item_id: Any = None
    item_id: Any = None
    dataset_id: Any = None


class _Box(_Payload, tag="box"):
    geometry: _BoxGeometry
    embedding_vector: list[Num] | None = None


class _Polygon(_Payload, tag="polygon"):
    geometry: _VertexGeometry
    embedding_vector: list[Num] | None = None


class _Line(_Payload, tag="line"):
    geometry: _VertexGeometry


class _Keypoints(_Payload, tag="keypoints"):
    geometry: _KeypointsGeometry
    annobridge: _KeypointsExtension | None = None


class _BoxPrediction(_Box, tag="box"):
    confidence: Num | None = None
    class_pdf: dict[str, Num] | None = None


class _PolygonPrediction(_Polygon, tag="polygon"):
    confidence: Num | None = None
    class_pdf: dict[str, Num] | None = None


class _LinePrediction(_Line, tag="line"):
    confidence: Num | None = None
    class_pdf: dict[str, Num] | None = None


class _KeypointsPrediction(_Payload, tag="keypoints"):
    geometry: _KeypointsGeometry  # no extension: read.py validates those of predictions
    confidence: Num | None = None
    class_pdf: dict[str, Num] | None = None


class _Item(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    reference_id: str
    image_url: str | None = None
    width: Int | None = None
    height: Int | None = None
    metadata: dict[str, Any] | None = None
    annotations: list[_Box | _Polygon | _Line | _Keypoints] | None = None
    predictions: (list[_BoxPrediction | _PolygonPrediction | _LinePrediction | _KeypointsPrediction]
                  | None) = None


_DECODER = msgspec.json.Decoder(_Item)


class _Refused(Exception):
    """The line is not one the fast path takes whole."""


def fast_item(line: bytes, seen: dict[str, str], where: str) -> DatasetItem | None:
    """The item of one line, or None when ``read._Reader`` must read the line.

    Args:
        line: the raw line.
        seen: reference ids read so far -> where (updated when the item is taken).
        where: this line's place, for ``seen``.
    """
    try:
        raw = _DECODER.decode(line)
    except (msgspec.DecodeError, RecursionError):
        return None
    if raw.metadata and _has_long_int(raw.metadata):
        return None
    ref = raw.reference_id
    if not ref or ref in seen:
        return None
    width, height = raw.width, raw.height
    if (width is not None and width < 0) or (height is not None and height < 0):
        return None
    try:
        anns = [_annotation(p, ref, False) for p in raw.annotations or ()]
        preds = [_annotation(p, ref, True) for p in raw.predictions or ()]
    except _Refused:
        return None
    for anns_ in (anns, preds):  # core.model.annotation_id_problem, on ids the lists hold
        ids = [a.annotation_id for a in anns_ if a.annotation_id is not None]
        if len(ids) != len(set(ids)):
            return None
    item = construct(DatasetItem, {
        "reference_id": ref, "image_location": raw.image_url, "pointcloud_location": None,
        "width": width, "height": height, "metadata": {} if raw.metadata is None else raw.metadata,
        "attributes": {}, "annotations": anns, "predictions": preds, "scene": None,
    })
    seen[ref] = where
    return item


def _has_long_int(value: Any) -> bool:
    """Whether a free value decoded by msgspec holds an integer of 19 digits or more."""
    t = type(value)
    if t is int:
        return not -_LONG < value < _LONG
    if t is dict:
        return any(map(_has_long_int, value.values()))
    if t is list:
        return any(map(_has_long_int, value))
    return False


def _annotation(p: Any, ref: str, prediction: bool) -> Any:
    if p.reference_id is not None and p.reference_id != ref:
        raise _Refused
    conf = pdf = None
    if prediction:
        conf = p.confidence
        if conf is not None and not 0 <= conf <= 1:
            raise _Refused
        pdf = p.class_pdf
    attributes = {}
    if p.task_id is not None or p.dataset_item_id is not None or p.item_id is not None or p.dataset_id is not None:
        attributes = {k: getattr(p, k) for k in SERVER_KEYS if getattr(p, k) is not None}
        if _has_long_int(attributes):
            raise _Refused
    if p.metadata and _has_long_int(p.metadata):
        raise _Refused
    f = {"reference_id": ref, "annotation_id": p.annotation_id, "group_id": None,
         "track_reference_id": p.track_reference_id, "metadata": {} if p.metadata is None else p.metadata,
         "attributes": attributes, "confidence": conf, "class_pdf": pdf}
    # the kind's fields are set one by one (f.update(**kw) costs twice as much; this runs per annotation)
    g = p.geometry
    kind = type(p)
    if kind is _Box or kind is _BoxPrediction:
        if g.width < 0 or g.height < 0:
            raise _Refused
        f["type"], f["label"], f["x"], f["y"], f["width"], f["height"], f["embedding_vector"] = (
            "box", p.label, g.x, g.y, g.width, g.height, p.embedding_vector)
        return construct(BoxAnnotation, f)
    if kind is _Polygon or kind is _PolygonPrediction or kind is _Line or kind is _LinePrediction:
        verts = g.vertices
        flat: list[Any] = []
        add = flat.append
        for v in verts:  # a plain loop: faster than a nested comprehension's tuple per vertex
            add(v.x)
            add(v.y)
        if kind is _Line or kind is _LinePrediction:
            if len(verts) < 2:
                raise _Refused
            f["type"], f["label"], f["vertices"] = "line", p.label, flat
            return construct(LineAnnotation, f)
        if len(verts) < 3:
            raise _Refused
        f["type"], f["label"], f["rings"], f["embedding_vector"] = "polygon", p.label, [flat], p.embedding_vector
        return construct(PolygonAnnotation, f)
    names = g.names
    n = len(names)
    if len(g.keypoints) != n or len(set(names)) != n:
        raise _Refused
    flat = []
    for kp in g.keypoints:
        x, y = kp.x, kp.y
        if x is None and y is None:
            if kp.visible:
                raise _Refused
            flat.extend((0, 0, 0))
        elif x is None or y is None:
            raise _Refused
        else:
            flat.extend((x, y, 2 if kp.visible else 1))
    skeleton = g.skeleton
    if skeleton is not None:
        for a, b in skeleton:
            if not (0 <= a < n and 0 <= b < n):
                raise _Refused
    elif prediction:
        raise _Refused  # read.py warns (or refuses, strict) about it
    ext = None if prediction else p.annobridge
    if ext is not None:
        for key, xy in ext.unlabelled_xy.items():
            if not key.isdigit() or not key.isascii() or str(int(key)) != key:
                raise _Refused
            i = int(key)
            if i >= n or flat[3 * i + 2] != 0:
                raise _Refused
            flat[3 * i], flat[3 * i + 1] = xy
    f["type"], f["label"], f["keypoints"], f["names"], f["skeleton"] = "keypoints", p.label, flat, list(names), skeleton
    return construct(KeypointsAnnotation, f)
