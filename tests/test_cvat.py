"""CVAT for images / for video 1.1 XML: real fixtures, exact round trips (canonical and XML),
CVAT's mask RLE, tracks and outside keyframes, errors, and datumaro's ``cvat`` importer as
an independent reader of what we write."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import annobridge
from annobridge.converters.engine import read_dataset
from annobridge.core.errors import ReadError, WriteError
from annobridge.core.formats import Context
from annobridge.core.model import (
    BoxAnnotation,
    Category,
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
)
from annobridge.core.plugins import get_registry
from annobridge.plugins.cvat import common
from annobridge.plugins.cvat import detect as detect_cvat
from tests.conftest import FIXTURES
from tests.projection import assert_close, project
from tests.strategies import LABELS, annotations_for, limits_for

CVAT = FIXTURES / "cvat"
CASES = {
    "docs-images": "annotations.xml",
    "docs-video": "annotations.xml",
    "datumaro-images": "train.xml",
    "datumaro-video": "annotations.xml",
}
CAPS = get_registry().get("cvat").capabilities


def _load(path: Path, **options: Any) -> Dataset:
    return annobridge.load(path, "cvat", options or None).materialize()


def _dump(ds: Dataset) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    return [i.model_dump(mode="json") for i in ds.items], ds.header.model_dump(mode="json")


# --------------------------------------------------------------------------- real fixtures


@pytest.mark.parametrize("case", sorted(CASES))
def test_fixture_reads_as_its_expected_jsonl(case: str) -> None:
    got = _load(CVAT / case / CASES[case])
    want = annobridge.load(CVAT / case / "expected.jsonl", "jsonl").materialize()
    assert _dump(got) == _dump(want)


@pytest.mark.parametrize("case", sorted(CASES))
def test_fixture_round_trip_is_exact_in_the_model(case: str, tmp_path: Path) -> None:
    first = _load(CVAT / case / CASES[case])
    report = annobridge.save(first, tmp_path / "out.xml", "cvat")
    assert report.dropped == {}, report.summary()
    assert _dump(_load(tmp_path / "out.xml")) == _dump(first)


def _shapes(path: Path) -> list[tuple]:
    """Every image/track shape of a CVAT file as comparable tuples (numbers as floats)."""
    out = []
    root = ET.parse(path).getroot()

    def norm(e: ET.Element) -> tuple:
        attrs = {}
        for k, v in e.attrib.items():
            if k == "points":
                v = tuple(float(x) for p in v.split(";") for x in p.split(","))
            elif k == "rle":
                v = tuple(int(x) for x in v.split(","))
            else:
                try:
                    v = float(v)
                except ValueError:
                    pass
            attrs[k] = v
        return (e.tag, tuple(sorted(attrs.items())), (e.text or "").strip(), tuple(norm(c) for c in e))

    for top in root:
        if top.tag in ("image", "track"):
            out.append(norm(top))
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_fixture_xml_is_written_back_shape_for_shape(case: str, tmp_path: Path) -> None:
    """Every image, track, keyframe flag, outside keyframe, attribute value and mask run
    comes back; only number spelling (``3.00`` -> ``3``) may differ."""
    src = CVAT / case / CASES[case]
    annobridge.save(_load(src), tmp_path / "out.xml", "cvat")
    assert _shapes(tmp_path / "out.xml") == _shapes(src)
    labels = [[(c.tag, (c.text or "").strip()) for c in label] for label in ET.parse(src).getroot().iter("label")]
    back = [[(c.tag, (c.text or "").strip()) for c in label] for label in
            ET.parse(tmp_path / "out.xml").getroot().iter("label")]
    assert back == labels


def test_docs_example_holds_every_element_kind() -> None:
    (item,) = _load(CVAT / "docs-images" / "annotations.xml").items
    kinds = [(a.type, a.label) for a in item.annotations]
    assert kinds == [("box", "plate"), ("polygon", "car"), ("line", "traffic_line"), ("line", "traffic_line"),
                     ("keypoints", "wheel"), ("category", "good_frame"), ("keypoints", "s1"),
                     ("object_mask", "car")]
    box, polygon, *_, points, tag, skeleton, mask = item.annotations
    assert (box.x, box.y) == (797.33, 870.92)
    assert_close([box.width, box.height], [965.52 - 797.33, 928.94 - 870.92])
    assert box.attributes == {"occluded": 0, "z_order": 4}
    assert len(polygon.rings[0]) == 2 * 69
    assert points.attributes["cvat_points"] is True and points.names == ["1", "2", "3", "4"]
    assert tag.attributes == {"source": "manual"}
    assert skeleton.names == ["1", "2", "3"] and skeleton.skeleton == [(1, 2), (0, 1)]
    assert skeleton.keypoints == [54.47, 94.81, 2, 68.02, 162.34, 2, 125.87, 62.85, 2]
    arr = mask.to_array()
    assert arr.shape == (1200, 1600) and int(arr.sum()) == 149
    assert common.tight_box(arr) == (707, 888, 13, 15)


def test_mask_rle_is_written_back_run_for_run(tmp_path: Path) -> None:
    src = CVAT / "docs-images" / "annotations.xml"
    annobridge.save(_load(src), tmp_path / "out.xml", "cvat")
    want = next(ET.parse(src).getroot().iter("mask")).attrib
    got = next(ET.parse(tmp_path / "out.xml").getroot().iter("mask")).attrib
    assert [int(v) for v in got["rle"].split(",")] == [int(v) for v in want["rle"].split(",")]
    assert [got[k] for k in ("left", "top", "width", "height")] == ["707", "888", "13", "15"]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.data())
def test_cvat_rle_decodes_and_encodes_exactly(w: int, h: int, data: st.DataObject) -> None:
    box = np.array(data.draw(st.lists(st.integers(0, 1), min_size=w * h, max_size=w * h)), np.uint8).reshape(h, w)
    runs = common.box_to_rle(box)
    assert sum(runs) == w * h and all(r > 0 for r in runs[1:])
    assert (common.rle_to_box(runs, w, h) == box).all()


def test_a_mask_box_larger_than_the_foreground_is_kept(tmp_path: Path) -> None:
    xml = _xml('<image id="0" name="a.png" width="6" height="4">'
               '<mask label="x" rle="7, 2, 3" left="1" top="1" width="4" height="3"/></image>')
    path = tmp_path / "a.xml"
    path.write_text(xml)
    (item,) = _load(path).items
    (mask,) = item.annotations
    assert mask.attributes["cvat_mask_box"] == [1, 1, 4, 3]
    assert np.argwhere(mask.to_array()).tolist() == [[2, 4], [3, 1]]
    annobridge.save(Dataset.of([item]), tmp_path / "out.xml", "cvat")
    assert next(ET.parse(tmp_path / "out.xml").getroot().iter("mask")).attrib["rle"] == "7, 2, 3"


def test_video_tracks_frames_and_outside_keyframes() -> None:
    ds = _load(CVAT / "datumaro-video" / "annotations.xml")
    frames = [(i.reference_id, i.scene.index, [(a.type, a.track_reference_id) for a in i.annotations])
              for i in ds.items]
    assert frames == [("frame_000010", 10, [("box", "0"), ("keypoints", "1")]),
                      ("frame_000013", 13, [("line", "2")]),
                      ("frame_000016", 16, []),
                      ("frame_000019", 19, [])]
    assert list(ds.header.scenes) == ["v1"] and ds.items[0].width == 25 and ds.items[0].height == 20
    outside = [(f.reference_id, [o["track"]["id"] for o in f.attributes.get("cvat_outside", [])]) for f in ds.items]
    assert outside == [("frame_000010", []), ("frame_000013", ["0", "1"]), ("frame_000016", ["0", "2"]),
                       ("frame_000019", [])]
    assert ds.items[0].annotations[1].attributes["label_attributes"] == {"hgl": "hgkf"}


def test_video_skeleton_all_outside_is_no_object() -> None:
    ds = _load(CVAT / "docs-video" / "annotations.xml")
    per_frame = {i.scene.index: sorted(a.label for a in i.annotations) for i in ds.items}
    assert per_frame == {0: ["car", "s1"], 1: [], 6: ["car", "s1"], 7: [], 13: ["car", "s1"], 14: []}
    s1 = next(a for a in ds.items[4].annotations if a.label == "s1")
    assert s1.attributes["keyframe"] == 0 and s1.attributes["source"] == "manual"


# --------------------------------------------------------------------------- writing from other data


def _frames(n: int, anns: dict[int, list[Any]], size: tuple[int, int] = (16, 12)) -> Dataset:
    items = [DatasetItem(reference_id=f"frame_{i:06d}", width=size[0], height=size[1], annotations=anns.get(i, []),
                         scene=FrameRef(scene_reference_id="s", index=i)) for i in range(n)]
    return Dataset(header=DatasetHeader(scenes={"s": Scene(reference_id="s")}), items=items)


def test_video_writer_ends_tracks_with_outside_keyframes(tmp_path: Path) -> None:
    box = lambda x: BoxAnnotation(label="car", x=x, y=1, width=2, height=2, track_reference_id="7")  # noqa: E731
    ds = _frames(6, {0: [box(1)], 1: [box(2)], 3: [box(4)], 5: [box(5)]})
    report = annobridge.save(ds, tmp_path / "v.xml", "cvat")
    assert report.dropped == {}
    (track,) = ET.parse(tmp_path / "v.xml").getroot().iter("track")
    flags = [(int(s.get("frame")), s.get("outside"), s.get("keyframe")) for s in track]
    assert flags == [(0, "0", "1"), (1, "0", "1"), (2, "1", "1"), (3, "0", "1"), (4, "1", "1"), (5, "0", "1")]
    back = _load(tmp_path / "v.xml")
    assert project(back, CAPS) == project(ds, CAPS)
    assert [a.track_reference_id for i in back.items for a in i.annotations] == ["7"] * 4


def test_video_mode_needs_frames_of_one_scene(tmp_path: Path) -> None:
    ds = Dataset.of([DatasetItem(reference_id="a", width=4, height=4)])
    with pytest.raises(WriteError, match=r'item "a".*one scene.*mode=images'):
        annobridge.save(ds, tmp_path / "v.xml", "cvat", {"mode": "video"})


def test_images_mode_reports_tracks_and_scenes(tmp_path: Path) -> None:
    ds = _frames(2, {0: [BoxAnnotation(label="car", x=1, y=1, width=2, height=2, track_reference_id="1")]})
    report = annobridge.save(ds, tmp_path / "i.xml", "cvat", {"mode": "images"})
    assert report.dropped == {
        "scene frame reference": {"CVAT for images holds no scenes (write mode=video for one scene)": 2},
        "track_reference_id": {"CVAT for images holds no tracks (write mode=video)": 1}}


@st.composite
def _videos(draw: st.DrawFn) -> Dataset:
    """Frames of one scene, one size, each annotation on a track numbered by its place."""
    n = draw(st.integers(1, 5))
    limits = limits_for("cvat")
    kinds = CAPS.annotation_types - {"category"}
    anns: dict[int, list[Any]] = {}
    tracks: dict[tuple, str] = {}  # a CVAT track has one label and one shape kind
    for f in range(n):
        drawn = draw(annotations_for(kinds, f"frame_{f:06d}", 16, 12, limits, False, False))
        anns[f] = []
        for k, a in enumerate(drawn):
            if a.type == "keypoints" and not any(a.keypoints[2::3]):
                continue  # a skeleton with every element outside is CVAT's "no object here"
            tid = tracks.setdefault((a.type, a.label, k), str(len(tracks)))
            anns[f].append(a.model_copy(update={"track_reference_id": tid}))
    ds = _frames(n, anns)
    ds.header.categories = [Category(id=i + 1, name=name) for i, name in enumerate(LABELS)]
    return ds


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_videos())
def test_video_round_trip_is_lossless(ds: Dataset) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        report = annobridge.save(ds, Path(tmp) / "v.xml", "cvat")
        assert report.dropped == {}, report.summary()
        back = _load(Path(tmp) / "v.xml")
    assert project(back, CAPS) == project(ds, CAPS)
    tracks = sorted((i.scene.index, a.track_reference_id) for i in back.items for a in i.annotations)
    assert tracks == sorted((i.scene.index, a.track_reference_id) for i in ds.items for a in i.annotations)


def test_coco_keypoints_become_a_skeleton_with_its_edges(tmp_path: Path) -> None:
    kp = KeypointsAnnotation(label="person", keypoints=[1, 2, 2, 3, 4, 1, 0, 0, 0], names=["a", "b", "c"],
                             skeleton=[(0, 1), (1, 2)])
    ds = Dataset.of([DatasetItem(reference_id="img", image_location="img.jpg", width=9, height=9,
                                 annotations=[kp])])
    annobridge.save(ds, tmp_path / "k.xml", "cvat")
    back = _load(tmp_path / "k.xml")
    cat = back.header.category_named("person")
    assert cat.keypoints == ["a", "b", "c"] and cat.skeleton == [(0, 1), (1, 2)]
    assert cat.attributes["cvat_type"] == "skeleton"
    (got,) = back.items[0].annotations
    assert project(back, CAPS) == project(ds, CAPS) and got.skeleton == [(0, 1), (1, 2)]


def test_oriented_box_ellipse_and_multi_ring_polygon(tmp_path: Path) -> None:
    xml = _xml('<image id="0" name="a.png" width="40" height="30">'
               '<box label="x" xtl="10" ytl="10" xbr="20" ybr="14" rotation="30.5"/>'
               '<ellipse label="x" cx="20" cy="15" rx="8" ry="4" rotation="10"/></image>')
    (tmp_path / "a.xml").write_text(xml)
    (item,) = _load(tmp_path / "a.xml").items
    obox, ellipse = item.annotations
    assert isinstance(obox, OrientedBoxAnnotation)
    assert (obox.cx, obox.cy, obox.width, obox.height, obox.rotation) == (15, 12, 10, 4, 30.5)
    assert isinstance(ellipse, PolygonAnnotation) and ellipse.attributes["cvat_ellipse"] == [20, 15, 8, 4, 10]
    assert len(ellipse.rings[0]) == 64 and ellipse.rings[0][:2] == pytest.approx([20 + 8 * np.cos(np.radians(10)),
                                                                                  15 + 8 * np.sin(np.radians(10))])
    two = PolygonAnnotation(label="x", rings=[[0, 0, 4, 0, 4, 4], [10, 10, 14, 10, 14, 14]])
    item = item.model_copy(update={"annotations": [obox, ellipse, two]})
    report = annobridge.save(Dataset.of([item]), tmp_path / "out.xml", "cvat")
    assert report.dropped == {"polygon ring": {"a CVAT polygon has one ring: further rings were written as "
                                               "polygons of the same group": 1}}
    root = ET.parse(tmp_path / "out.xml").getroot()
    assert [(e.tag, e.get("rotation"), e.get("group_id")) for e in root.find("image")] == [
        ("box", "30.5", None), ("ellipse", "10", None), ("polygon", None, "1"), ("polygon", None, "1")]


def test_non_integer_group_ids_are_renumbered_and_noted(tmp_path: Path) -> None:
    anns = [BoxAnnotation(label="x", x=0, y=0, width=1, height=1, group_id="a", annotation_id="1"),
            LineAnnotation(label="x", vertices=[0, 0, 1, 1], group_id="a"),
            BoxAnnotation(label="x", x=0, y=0, width=1, height=1, group_id="3", annotation_id="2")]
    report = annobridge.save(Dataset.of([DatasetItem(reference_id="p", annotations=anns)]), tmp_path / "g.xml", "cvat")
    groups = [e.get("group_id") for e in ET.parse(tmp_path / "g.xml").getroot().find("image")]
    assert groups == ["4", "4", "3"]
    assert any("group ids" in n for n in report.notes)


# --------------------------------------------------------------------------- errors and detection


def _xml(body: str, meta: str = "<meta><task><labels><label><name>x</name></label></labels></task></meta>") -> str:
    return f'<?xml version="1.0"?>\n<annotations>\n<version>1.1</version>\n{meta}\n{body}\n</annotations>\n'


@pytest.mark.parametrize(("body", "match"), [
    ('<image id="0" name="a.png"><box label="x" xtl="1" ytl="1" xbr="0" ybr="2"/></image>',
     r"a\.xml:line 5 \(item \"a\"\): <box>: xbr, ybr"),
    ('<image id="0" name="a.png">\n<polygon label="x" points="1,2;3"/></image>',
     r"line 6 \(item \"a\"\): <polygon>: points='1,2;3' is not"),
    ('<image id="0" name="a.png" width="4" height="4"><mask label="x" rle="1, 2" left="0" top="0" '
     'width="2" height="2"/></image>', r"rle runs sum to 3, expected width x height = 2 x 2 = 4"),
    ('<image id="0" name="a.png"><mask label="x" rle="4" left="0" top="0" width="2" height="2"/></image>',
     r"a mask needs the image size"),
    ('<image id="0" name="a.png"><skeleton label="x"/></image>', r"label 'x' is not a skeleton label"),
    ('<image id="0" name="a.png"><box label="x" xtl="a" ytl="1" xbr="2" ybr="2"/></image>', r"xtl='a' is not a number"),
    ('<image id="0" name="a.png"><circle label="x"/></image>', r"unknown element <circle> in <image>"),
    ('<image id="0" name="a.png"><box label="x" xtl="1" ytl="1" xbr="2" ybr="2"></image>',
     r"line 5, column \d+: not well-formed XML: mismatched tag"),
    ('<track id="0" label="x"><box frame="1" xtl="0" ytl="0" xbr="1" ybr="1"/>'
     '<box frame="1" xtl="0" ytl="0" xbr="1" ybr="1"/></track>', r"track 0 has two shapes on frame 1"),
])
def test_bad_files_get_one_clear_error(tmp_path: Path, body: str, match: str) -> None:
    path = tmp_path / "a.xml"
    path.write_text(_xml(body))
    with pytest.raises(ReadError, match=match):
        _load(path)


def test_wrong_root_version_and_entities_are_refused(tmp_path: Path) -> None:
    cases = {
        "root": ('<?xml version="1.0"?>\n<annotation><version>1.1</version></annotation>', r"line 2: the root element "
                 r"is <annotation>, expected <annotations>"),
        "version": (_xml("").replace("1.1", "1.0"), r"<version> is '1.0', expected '1.1'"),
        "empty": ("", r"empty\.xml:line 1, column 1: not well-formed XML: no element found"),
        "entity": ('<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY e "x">]>\n<annotations><version>1.1</version>'
                   '</annotations>', r"declares entities"),
    }
    for name, (text, match) in cases.items():
        path = tmp_path / f"{name}.xml"
        path.write_text(text)
        with pytest.raises(ReadError, match=match):
            _load(path)


def test_image_names_stay_inside_the_images_folder(tmp_path: Path) -> None:
    path = tmp_path / "a.xml"
    path.write_text(_xml('<image id="0" name="../../etc/passwd"/>'))
    with pytest.raises(ReadError, match=r"image name '../../etc/passwd' is not inside .*climbs out"):
        _load(path, images=str(tmp_path / "images"))
    path.write_text(_xml('<image id="0" name="sub/b.jpg"/>'))
    (item,) = _load(path, images=str(tmp_path / "images")).items
    assert item.reference_id == "sub/b" and item.image_location == str(tmp_path / "images" / "sub" / "b.jpg")


def test_detection(tmp_path: Path) -> None:
    for case, name in CASES.items():
        assert detect_cvat(CVAT / case / name)
    assert detect_cvat(CVAT / "docs-video")  # an export folder with annotations.xml
    voc = tmp_path / "voc.xml"
    voc.write_text("<annotation><folder>VOC2007</folder></annotation>")
    old = tmp_path / "old.xml"
    old.write_text(_xml("").replace("1.1", "1.0"))
    assert not detect_cvat(voc) and not detect_cvat(old) and not detect_cvat(CVAT)
    assert get_registry().detect_one(CVAT / "datumaro-images" / "train.xml").name == "cvat"


# --------------------------------------------------------------------------- independent reader


def _datumaro_items(folder: Path) -> dict[str, list[tuple]]:
    import datumaro as dm

    out = {}
    for it in dm.Dataset.import_from(str(folder), "cvat"):
        anns = []
        for a in it.annotations:
            kind = a.type.name
            geo = round(float(a.image.sum())) if kind == "mask" else tuple(round(float(v), 4) for v in a.points) \
                if hasattr(a, "points") else None
            anns.append((kind, geo))
        out[it.id] = sorted(anns, key=repr)
    return out


def _ours(ds: Dataset) -> dict[str, list[tuple]]:
    """What datumaro should see: its kind names and its geometry conventions."""
    out = {}
    for item in ds.items:
        anns = []
        for a in item.annotations:
            if a.type == "box":
                anns.append(("bbox", tuple(round(v, 4) for v in (a.x, a.y, a.x + a.width, a.y + a.height))))
            elif a.type == "oriented_box":
                anns.append(("rotated_bbox", tuple(round(v, 4) for v in (a.cx, a.cy, a.width, a.height, a.rotation))))
            elif a.type == "polygon":
                anns.append(("polygon", tuple(round(v, 4) for v in a.rings[0])))
            elif a.type == "line":
                anns.append(("polyline", tuple(round(v, 4) for v in a.vertices)))
            elif a.type == "keypoints":
                anns.append(("points", tuple(round(v, 4) for i, v in enumerate(a.keypoints) if i % 3 != 2)))
            elif a.type == "object_mask":
                anns.append(("mask", int(a.to_array().sum())))
        out[item.reference_id] = sorted(anns, key=repr)
    return out


def test_datumaro_reads_our_cvat_for_images(tmp_path: Path) -> None:
    m = np.zeros((20, 30), np.uint8)
    m[3:9, 4:12] = 1
    m[15, 20:25] = 1
    points = KeypointsAnnotation(label="wheel", keypoints=[1, 2, 2, 7.5, 8.25, 2], names=["1", "2"],
                                 attributes={"cvat_points": True})
    items = [
        DatasetItem(reference_id="a", image_location="a.png", width=30, height=20, annotations=[
            BoxAnnotation(label="car", x=1.5, y=2, width=10, height=5.25),
            OrientedBoxAnnotation(label="car", cx=15, cy=10, width=8, height=4, rotation=30),
            PolygonAnnotation(label="person", rings=[[1, 1, 5, 1, 5, 6]]),
            LineAnnotation(label="person", vertices=[0, 0, 10, 10, 20, 5]),
            points, ObjectMaskAnnotation.from_array(m, label="car")]),
        DatasetItem(reference_id="b", image_location="b.png", width=30, height=20, annotations=[
            BoxAnnotation(label="person", x=0, y=0, width=30, height=20)]),
    ]
    report = annobridge.save(Dataset.of(items), tmp_path / "annotations.xml", "cvat")
    assert report.dropped == {}
    (tmp_path / "images").mkdir()
    for name in ("a.png", "b.png"):
        Image.new("RGB", (30, 20)).save(tmp_path / "images" / name)
    assert _datumaro_items(tmp_path) == _ours(Dataset.of(items))


def test_datumaro_reads_our_cvat_for_video(tmp_path: Path) -> None:
    """Converted from the datumaro video fixture through the canonical JSONL: datumaro sees the
    same tracked shapes on the same frames in our file as in its own."""
    src = CVAT / "datumaro-video"
    annobridge.convert(src / "annotations.xml", tmp_path / "c.jsonl", dst_format="jsonl")
    annobridge.convert(tmp_path / "c.jsonl", tmp_path / "out" / "annotations.xml", dst_format="cvat")
    (tmp_path / "out" / "images").symlink_to((src / "images").resolve())
    original = tmp_path / "orig"
    original.mkdir()
    (original / "annotations.xml").write_bytes((src / "annotations.xml").read_bytes())
    (original / "images").symlink_to((src / "images").resolve())
    assert _datumaro_items(tmp_path / "out") == _datumaro_items(original)
    assert sum(len(v) for v in _datumaro_items(original).values()) == 7


def test_cli_converts_cvat_to_coco_and_reports_what_coco_cannot_hold(tmp_path: Path) -> None:
    out = tmp_path / "coco.json"
    run = subprocess.run([str(Path(sys.executable).parent / "annobridge"), "convert",
                          str(CVAT / "docs-images" / "annotations.xml"), str(out), "--to", "coco"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "dropped 2 x line: coco cannot hold line ground truth" in run.stdout
    back = annobridge.load(out, "coco").materialize()
    # the two keypoint-only objects get the extent of their points as COCO bbox (COCOeval needs
    # one), which reads back as a box beside the keypoints
    assert sorted(a.type for a in back.items[0].annotations) == [
        "box", "box", "box", "category", "keypoints", "keypoints", "object_mask", "polygon"]


def test_cuboids_are_dropped_and_reported_on_read(tmp_path: Path) -> None:
    corners = ('xtl1="0" ytl1="0" xbl1="0" ybl1="1" xtr1="1" ytr1="0" xbr1="1" ybr1="1" '
               'xtl2="2" ytl2="0" xbl2="2" ybl2="1" xtr2="3" ytr2="0" xbr2="3" ybr2="1"')
    path = tmp_path / "c.xml"
    path.write_text(_xml(f'<image id="0" name="a.png"><cuboid label="x" {corners}/>'
                         '<box label="x" xtl="0" ytl="0" xbr="1" ybr="1"/></image>'))
    ctx = Context()
    (item,) = list(read_dataset(path, "cvat", context=ctx).items)
    assert [a.type for a in item.annotations] == ["box"]
    assert ctx.report.dropped == {"cvat cuboid": {"2D cuboids (CVAT's pseudo-3D box of 8 image points) have no "
                                                  "canonical type": 1}}


def test_coco_facts_cvat_cannot_hold_are_reported(tmp_path: Path) -> None:
    report = annobridge.convert(FIXTURES / "coco" / "instances" / "instances.json", tmp_path / "c.xml",
                                dst_format="cvat")
    assert set(report.dropped) >= {"attribute:area", "attribute:iscrowd"}
    assert any("annotation ids were not kept" in n for n in report.notes)
    back = _load(tmp_path / "c.xml")
    src = annobridge.load(FIXTURES / "coco" / "instances" / "instances.json").materialize()
    rings = sorted(tuple(r) for i in src.items for a in i.annotations if a.type == "polygon" for r in a.rings)
    assert rings and sorted(tuple(a.rings[0]) for i in back.items for a in i.annotations) == rings


def test_a_label_xml_cannot_hold_is_one_clear_error(tmp_path: Path) -> None:
    ds = Dataset.of([DatasetItem(reference_id="a", annotations=[
        BoxAnnotation(label="bad\x01label", x=0, y=0, width=1, height=1)])])
    with pytest.raises(WriteError, match=r"out\.xml \(item \"a\"\): 'bad\\x01label' holds a control character"):
        annobridge.save(ds, tmp_path / "out.xml", "cvat")
    assert not (tmp_path / "out.xml").exists()


def test_project_export_track_attributes_are_written_back(tmp_path: Path) -> None:
    path = tmp_path / "p.xml"
    path.write_text(_xml('<track id="3" label="x" source="manual" task_id="7" subset="train">'
                         '<box frame="0" keyframe="1" outside="0" xtl="0" ytl="0" xbr="1" ybr="1" '
                         'annotation_type="manual"/>'
                         '<box frame="1" keyframe="1" outside="1" xtl="0" ytl="0" xbr="1" ybr="1"/></track>'))
    ds = _load(path)
    assert ds.items[0].annotations[0].attributes["cvat_track"] == {"task_id": "7", "subset": "train"}
    assert ds.items[0].annotations[0].attributes["cvat_xml"] == {"annotation_type": "manual"}
    annobridge.save(ds, tmp_path / "out.xml", "cvat")
    assert _shapes(tmp_path / "out.xml") == _shapes(path)


def test_unevenly_spaced_frames_are_noted(tmp_path: Path) -> None:
    ds = _frames(6, {0: [BoxAnnotation(label="car", x=1, y=1, width=2, height=2, track_reference_id="1")]})
    ds.items = [i for i in ds.items if i.scene.index in (0, 1, 5)]
    report = annobridge.save(ds, tmp_path / "v.xml", "cvat")
    assert any("not evenly spaced" in n for n in report.notes)
    assert [i.scene.index for i in _load(tmp_path / "v.xml").items] == [0, 1, 2, 3, 4, 5]
