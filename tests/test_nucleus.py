"""The ``nucleus`` format: round trips on real and own fixtures, the real Nucleus client parsing
every payload we write, strict mode, scenes and point clouds, bad input, and the CLI."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import nucleus  # the real Nucleus client (scale-nucleus, in the `test` extra)
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import annobridge
from annobridge.core.errors import FormatError, ReadError, WriteError
from annobridge.core.model import (
    ANNOTATION_TYPES,
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
    ObjectMaskAnnotation,
    Point3D,
    PolygonAnnotation,
    Scene,
    SceneCategoryAnnotation,
    Segment,
    SegmentationAnnotation,
    Taxonomy,
    auto_annotation_id,
)
from annobridge.core.plugins import FormatRegistry, get_registry
from annobridge.core.pointclouds import load_points
from annobridge.plugins.nucleus import write as nucleus_write
from nucleus import prediction as nucleus_prediction
from nucleus.annotation import Annotation as NucleusAnnotation
from nucleus.annotation import SceneCategoryAnnotation as NucleusSceneCategory
from nucleus.annotation_uploader import AnnotationUploader
from nucleus.dataset_item import DatasetItem as NucleusItem
from nucleus.prediction import SceneCategoryPrediction as NucleusSceneCategoryPrediction
from nucleus.scene import LidarScene, VideoScene
from PIL import Image

from tests.projection import project
from tests.strategies import datasets

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures" / "nucleus"
CASES = ["client-testdata", "embeddings", "all-kinds"]
LOCATION_KEYS = ("image_url", "pointcloud_url", "url", "mask_url")


CAMERA_PARAMS = {"position": {"x": 0, "y": 0, "z": 1.7}, "heading": {"w": 0.5, "x": -0.5, "y": 0.5, "z": -0.5},
                 "fx": 721.5, "fy": 721.5, "cx": 609.6, "cy": 172.9}


# --------------------------------------------------------------------------- data


def build_all_kinds(folder: Path) -> Dataset:
    """Every annotation kind, predictions, an index mask, an object mask, and a KITTI-like lidar scene
    (velodyne .bin clouds and camera images with camera_params)."""
    folder.mkdir(parents=True, exist_ok=True)
    pts = np.array([[1.5, 2.25, -0.5, 0.1], [3.0, -1.0, 0.25, 0.9], [0.1, 0.2, 0.3, 0.0]], dtype=np.float32)
    (folder / "velodyne").mkdir(exist_ok=True)
    for i in range(2):
        (pts + i).astype("<f4").tofile(folder / "velodyne" / f"{i:06d}.bin")
    mask = np.zeros((4, 6), np.uint8)
    mask[1:3, 1:4] = 1
    mask[0, 5] = 2
    header = DatasetHeader(
        name="demo",
        categories=[Category(id=0, name="person", keypoints=["nose", "eye", "ear"], skeleton=[(0, 1), (1, 2)]),
                    Category(id=3, name="car", supercategory="vehicle")],
        taxonomies=[Taxonomy(name="weather", labels=["sunny", "rainy"])],
        info={"coco": {"info": {"year": 2024}}},
        scenes={"scene-0": Scene(reference_id="scene-0", metadata={"city": "karlsruhe"},
                                 annotations=[SceneCategoryAnnotation(label="day", taxonomy_name="tod"),
                                              SceneCategoryAnnotation(label="urban", confidence=0.7)])},
    )
    img = DatasetItem(
        reference_id="img-1", image_location="https://example.com/img-1.jpg", width=6, height=4,
        metadata={"weather": "sunny", "n": 3, "ok": True}, attributes={"license": 2},
        annotations=[
            BoxAnnotation(label="car", x=1, y=2, width=3.5, height=4, metadata={"color": "red"},
                          attributes={"iscrowd": 0, "area": 14.0}, group_id="g1"),
            BoxAnnotation(label="car", x=0, y=0, width=1, height=1, annotation_id="explicit-box",
                          track_reference_id="t1", embedding_vector=[0.5, 1.0]),
            PolygonAnnotation(label="car", rings=[[1, 1, 3, 1, 3, 3], [4, 4, 5, 4, 5, 5]], group_id="g1"),
            PolygonAnnotation(label="bus", rings=[[0.5, 0.5, 2.5, 0.5, 1.5, 2.5]]),
            LineAnnotation(label="lane", vertices=[0, 0, 5, 3]),
            KeypointsAnnotation(label="person", keypoints=[1, 1, 2, 2, 2, 1, 0, 0, 0], names=["nose", "eye", "ear"],
                                skeleton=[(0, 1), (1, 2)], group_id="g2"),
            KeypointsAnnotation(label="person", keypoints=[3, 1, 2, 7, 8, 0, 4, 4, 1], names=["nose", "eye", "ear"]),
            CategoryAnnotation(label="sunny", taxonomy_name="weather"),
            MultiCategoryAnnotation(labels=["a", "b"], taxonomy_name="tags"),
            ObjectMaskAnnotation.from_array(mask == 1, label="car", attributes={"iscrowd": 1}),
            SegmentationAnnotation(mask=IndexMask.from_array(mask), annotation_id="seg-1", annotations=[
                Segment(label="bg", index=0), Segment(label="car", index=1, metadata={"c": "red"}),
                Segment(label="sign", index=2, attributes={"isthing": 1})]),
        ],
        predictions=[
            BoxAnnotation(label="car", x=1, y=2, width=3, height=4, confidence=0.9, class_pdf={"car": 0.9, "bus": 0.1}),
            PolygonAnnotation(label="bus", rings=[[0, 0, 2, 0, 1, 2]], confidence=0.4),
            LineAnnotation(label="lane", vertices=[0, 0, 5, 3, 6, 4], confidence=0.7),
            KeypointsAnnotation(label="person", keypoints=[1, 1, 2, 2, 2, 1], names=["nose", "eye"], confidence=0.8),
            CategoryAnnotation(label="sunny", confidence=0.6, class_pdf={"sunny": 0.6, "rainy": 0.4}),
            MultiCategoryAnnotation(labels=["a"], confidence=0.5),
            SegmentationAnnotation(mask=IndexMask.from_array(mask), annotations=[  # a segment per pixel value
                Segment(label="bg", index=0), Segment(label="car", index=1), Segment(label="sign", index=2)]),
        ],
    )
    items = [img]
    for i in range(2):
        items.append(DatasetItem(
            reference_id=f"lidar-{i}", pointcloud_location=str(folder / "velodyne" / f"{i:06d}.bin"),
            metadata={"frame": i}, scene=FrameRef(scene_reference_id="scene-0", index=i, sensor="lidar"),
            annotations=[CuboidAnnotation(label="car", position=Point3D(x=10 + i, y=1, z=-0.8),
                                          dimensions=Point3D(x=4.2, y=1.8, z=1.5), yaw=0.3,
                                          track_reference_id="car-1", group_id="obj-1", attributes={"truncated": 0.0})],
            predictions=[CuboidAnnotation(label="car", position=Point3D(x=10, y=1, z=-0.8),
                                          dimensions=Point3D(x=4, y=2, z=1.5), yaw=0.25, confidence=0.75,
                                          annotation_id=f"p{i}")]))
        items.append(DatasetItem(
            reference_id=f"cam-{i}", image_location=f"https://example.com/cam-{i}.png", width=6, height=4,
            metadata={"camera_params": CAMERA_PARAMS}, scene=FrameRef(scene_reference_id="scene-0", index=i, sensor="camera"),
            annotations=[BoxAnnotation(label="car", x=1, y=1, width=2, height=2, track_reference_id="car-1",
                                       group_id="obj-1")]))
    return Dataset(header=header, items=items)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _ordered(value: Any) -> Any:
    """JSON data with key order and number types made comparable (1 and 1.0 differ, as in the file)."""
    if isinstance(value, dict):
        return ("{", [(k, _ordered(v)) for k, v in value.items()])
    if isinstance(value, list):
        return [_ordered(v) for v in value]
    if isinstance(value, float):
        return ("float", value)
    if isinstance(value, int) and not isinstance(value, bool):
        return ("int", value)
    return value


def _normalized(value: Any) -> Any:
    """Payload lines with local file locations reduced to their file name (folders differ between runs)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in LOCATION_KEYS and isinstance(v, str) and "://" not in v:
                v = "LOCAL:" + Path(v).name
            out[k] = _normalized(v)
        return out
    if isinstance(value, list):
        return [_normalized(v) for v in value]
    return value


def _dump(items: list[DatasetItem]) -> list[dict[str, Any]]:
    """Items as plain data without local file locations (they move), masks as pixel lists."""
    out = []
    for item in items:
        d = item.model_dump(mode="python")
        if item.pointcloud_location and "://" not in item.pointcloud_location:
            d["pointcloud_location"] = load_points(item.pointcloud_location).tolist()
        for key in ("annotations", "predictions"):
            for ann, ad in zip(getattr(item, key), d[key]):
                if ann.type == "segmentation":
                    ad["mask"] = ann.mask.location if ann.mask.location and "://" in ann.mask.location \
                        else ann.mask.load().tolist()
        out.append(d)
    return out


def _payloads(line: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """(item payload, scene line or None) for every item payload in a line."""
    if "frames" not in line:
        return [(line, None)]
    out = []
    for frame in line["frames"]:
        if "reference_id" in frame:
            out.append((frame, line))
        else:
            out.extend((item, line) for item in frame.values())
    return out


@pytest.fixture
def all_kinds(tmp_path: Path) -> Dataset:
    return build_all_kinds(tmp_path / "src")


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("case", CASES)
def test_fixture_round_trip_is_identical(case: str, tmp_path: Path) -> None:
    """Nucleus -> canonical -> Nucleus gives back the same payload lines, masks and clouds."""
    src = FIXTURES / case / "items.jsonl"
    out = tmp_path / "items.jsonl"
    report = annobridge.convert(src, out, src_format="nucleus", dst_format="nucleus")
    assert report.dropped == {}
    assert _normalized(_lines(out)) == _normalized(_lines(src))
    if case != "all-kinds":  # written by the real client: same keys, key order, omissions, number types
        assert _ordered(_lines(out)) == _ordered(_lines(src))
    sidecar = FIXTURES / case / "items.dataset.json"
    if sidecar.exists():
        assert json.loads((tmp_path / "items.dataset.json").read_text()) == json.loads(sidecar.read_text())
    for folder in ("items.masks", "items.pointclouds"):
        if (FIXTURES / case / folder).exists():
            for f in sorted((FIXTURES / case / folder).iterdir()):
                mine = tmp_path / folder / f.name
                if f.suffix == ".png":
                    assert np.array_equal(np.asarray(Image.open(mine)), np.asarray(Image.open(f)))
                    assert Image.open(mine).mode == "L"
                else:  # a .json cloud is copied into the output, which stays self-contained
                    assert json.loads(mine.read_text()) == json.loads(f.read_text())
    back = annobridge.load(out, "nucleus")
    assert _dump(back.items) == _dump(annobridge.load(src, "nucleus").items)


def test_all_kinds_fixture_is_what_the_writer_writes(all_kinds: Dataset, tmp_path: Path) -> None:
    out = tmp_path / "items.jsonl"
    annobridge.save(all_kinds, out, "nucleus")
    assert _normalized(_lines(out)) == _normalized(_lines(FIXTURES / "all-kinds" / "items.jsonl"))
    assert json.loads((tmp_path / "items.dataset.json").read_text()) == json.loads(
        (FIXTURES / "all-kinds" / "items.dataset.json").read_text())


def test_canonical_round_trip_keeps_everything(all_kinds: Dataset, tmp_path: Path) -> None:
    """canonical -> Nucleus -> canonical: every kind, COCO's multi-ring polygons, RLE object masks,
    three keypoint visibility states, attributes, group ids, scenes, clouds (float32 exact)."""
    before = _dump(list(all_kinds.items))
    report = annobridge.save(all_kinds, tmp_path / "out.jsonl", "nucleus")
    assert report.lossless, report.summary()
    back = annobridge.load(tmp_path / "out.jsonl", "nucleus")
    assert _dump(back.items) == before
    assert back.header.categories == all_kinds.header.categories
    assert back.header.taxonomies == all_kinds.header.taxonomies
    assert back.header.info == all_kinds.header.info
    scene = back.header.scenes["scene-0"]
    assert scene.metadata == {"city": "karlsruhe"}
    assert [(a.label, a.taxonomy_name, a.confidence) for a in scene.annotations] == [
        ("day", "tod", None), ("urban", None, 0.7)]


def test_workers_give_identical_output(all_kinds: Dataset, tmp_path: Path) -> None:
    items = list(all_kinds.items)
    annobridge.save(Dataset(all_kinds.header, items), tmp_path / "one" / "x.jsonl", "nucleus", workers=1)
    annobridge.save(Dataset(all_kinds.header, items), tmp_path / "two" / "x.jsonl", "nucleus", workers=2)
    one = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    two = sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*") if p.is_file())
    assert one == two and len(one) == 6  # jsonl, sidecar, 2 masks, 2 clouds
    for rel in one:
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes(), rel


def test_lidar_scene_layout_and_point_clouds(all_kinds: Dataset, tmp_path: Path) -> None:
    """KITTI-like frames become one LidarScene line: one pointcloud a frame, camera_params lifted."""
    annobridge.save(all_kinds, tmp_path / "out.jsonl", "nucleus")
    scene = _lines(tmp_path / "out.jsonl")[1]
    assert list(scene)[:2] == ["reference_id", "frames"]
    assert [sorted(f) for f in scene["frames"]] == [["camera", "lidar"], ["camera", "lidar"]]
    lidar, camera = scene["frames"][0]["lidar"], scene["frames"][0]["camera"]
    assert lidar["type"] == "pointcloud" and lidar["url"] == "out.pointclouds/000001-lidar-0.json"
    assert "image_url" not in lidar and camera["type"] == "image"
    assert camera["camera_params"] == {"position": {"x": 0, "y": 0, "z": 1.7},
                                       "heading": {"x": -0.5, "y": 0.5, "z": -0.5, "w": 0.5},
                                       "fx": 721.5, "fy": 721.5, "cx": 609.6, "cy": 172.9}
    cuboid = lidar["annotations"][0]
    assert set(cuboid) == {"label", "type", "geometry", "reference_id", "annotation_id", "track_reference_id",
                           "annobridge"}  # no metadata/task_id keys: omitted when empty, as the client does
    assert [a["label"] for a in scene["annotations"]] == ["day"]
    assert scene["predictions"][0]["confidence"] == 0.7
    src = all_kinds.items[1].pointcloud_location
    assert np.array_equal(load_points(tmp_path / lidar["url"]), load_points(src))


def test_point_clouds_are_not_loaded_at_read_time(tmp_path: Path) -> None:
    (tmp_path / "cloud.json").write_text("this is not JSON, and reading must not notice")
    line = {"reference_id": "s", "frames": [{"lidar": {"metadata": {}, "reference_id": "p", "url": "cloud.json",
                                                       "type": "pointcloud", "annotations": []}}]}
    (tmp_path / "x.jsonl").write_text(json.dumps(line) + "\n")
    [item] = annobridge.load(tmp_path / "x.jsonl", "nucleus").items
    assert item.pointcloud_location == str(tmp_path / "cloud.json")
    assert item.scene == FrameRef(scene_reference_id="s", index=0, sensor="lidar")
    with pytest.raises(ReadError, match="not a Nucleus pointcloud JSON"):
        load_points(item.pointcloud_location)


def test_folder_of_jsonl_files_reads_in_name_order(tmp_path: Path) -> None:
    src = FIXTURES / "client-testdata" / "items.jsonl"
    lines = src.read_text().splitlines(keepends=True)
    (tmp_path / "b.jsonl").write_text("".join(lines[3:]))
    (tmp_path / "a.jsonl").write_text("".join(lines[:3]))
    got = [i.reference_id for i in annobridge.load(tmp_path).items]  # detected as nucleus
    assert got == [i.reference_id for i in annobridge.load(src, "nucleus").items]


def test_video_scene_of_images(tmp_path: Path) -> None:
    items = [DatasetItem(reference_id=f"f{i}", image_location=f"https://e.com/{i}.jpg",
                         scene=FrameRef(scene_reference_id="vid", index=i + 5))
             for i in range(3)]
    header = DatasetHeader(scenes={"vid": Scene(reference_id="vid", attributes={"frame_rate": 10})})
    annobridge.save(Dataset(header, items), tmp_path / "v.jsonl", "nucleus")
    [line] = _lines(tmp_path / "v.jsonl")
    assert line["frame_rate"] == 10 and [f["url"] for f in line["frames"]] == [f"https://e.com/{i}.jpg" for i in range(3)]
    scene = VideoScene.from_json(line)
    assert [i.reference_id for i in scene.items] == ["f0", "f1", "f2"]
    back = annobridge.load(tmp_path / "v.jsonl", "nucleus")
    assert [i.scene for i in back.items] == [i.scene for i in items]  # frame_index kept in the extension
    assert back.header.scenes["vid"].attributes == {"frame_rate": 10}


# --------------------------------------------------------------------------- the real client


def _check_annotation(payload: dict[str, Any], parsed: Any, prediction: bool) -> None:
    t = payload["type"]
    assert parsed.reference_id == payload["reference_id"]
    if t == "mask":
        assert json.dumps(parsed.to_payload()) == json.dumps({k: v for k, v in payload.items() if k != "annobridge"})
        assert parsed.mask_url == payload["mask_url"]
        assert parsed.annotation_id == payload["annotation_id"]
        assert [(s.label, s.index, s.metadata) for s in parsed.annotations] == [
            (s["label"], s["index"], s.get("metadata")) for s in payload["annotations"]]
        return
    if t == "multicategory":
        assert parsed.labels == payload["labels"]
    else:
        assert parsed.label == payload["label"]
    assert parsed.metadata == payload.get("metadata", {})
    if t not in ("category", "multicategory"):
        assert parsed.annotation_id == payload.get("annotation_id")
        assert parsed.annotation_id is not None  # always explicit: no Nucleus collisions
    if prediction:
        assert parsed.confidence == payload.get("confidence")
        assert parsed.class_pdf == payload.get("class_pdf")
    g = payload["geometry"]
    if t == "box":
        assert (parsed.x, parsed.y, parsed.width, parsed.height) == (g["x"], g["y"], g["width"], g["height"])
    elif t in ("line", "polygon"):
        assert [(p.x, p.y) for p in parsed.vertices] == [(v["x"], v["y"]) for v in g["vertices"]]
    elif t == "keypoints":
        assert [(k.x, k.y, k.visible) for k in parsed.keypoints] == [(k["x"], k["y"], k["visible"]) for k in g["keypoints"]]
        assert parsed.names == g["names"] and parsed.skeleton == g["skeleton"]
    elif t == "cuboid":
        assert (parsed.position.x, parsed.position.y, parsed.position.z) == tuple(g["position"].values())
        assert (parsed.dimensions.x, parsed.dimensions.y, parsed.dimensions.z) == tuple(g["dimensions"].values())
        assert parsed.yaw == g["yaw"]
    elif t == "category":
        assert parsed.taxonomy_name == payload.get("taxonomy_name")
    # the client writes back exactly our payload (keys, order, omissions), less the extension key
    bare = {k: v for k, v in payload.items() if k != "annobridge"}
    assert json.dumps(parsed.to_payload()) == json.dumps(bare)
    # our extension key changes nothing the client reads
    if "annobridge" in payload:
        bare = {k: v for k, v in payload.items() if k != "annobridge"}
        again = (nucleus_prediction.from_json if prediction else NucleusAnnotation.from_json)(bare)
        assert again == parsed


@pytest.mark.parametrize("case", ["all-kinds", "client-testdata", "embeddings"])
def test_real_client_parses_every_payload_we_write(case: str, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    annobridge.convert(FIXTURES / case / "items.jsonl", out, src_format="nucleus", dst_format="nucleus")
    counts = {"items": 0, "annotations": 0, "predictions": 0, "scenes": 0}
    for line in _lines(out):
        if "frames" in line:
            counts["scenes"] += 1
            if case != "client-testdata":  # its camera url ends in .jpeg, which the client's from_json rejects
                scene = LidarScene.from_json(line)
                assert scene.reference_id == line["reference_id"]
                assert len(scene.frames) == len(line["frames"])
                assert scene.metadata == line.get("metadata", {})
            for key, cls in (("annotations", NucleusSceneCategory), ("predictions", NucleusSceneCategoryPrediction)):
                for p in line.get(key, []):
                    parsed = cls.from_json(p)
                    assert (parsed.label, parsed.reference_id, parsed.taxonomy_name) == (
                        p["label"], line["reference_id"], p.get("taxonomy_name"))
                    if key == "predictions":
                        assert parsed.confidence == p["confidence"]
                    assert json.dumps(parsed.to_payload()) == json.dumps(p)
        for payload, scene_line in _payloads(line):
            counts["items"] += 1
            if not (scene_line and payload["url"].endswith(".jpeg")):
                item = NucleusItem.from_json(dict(payload))
                assert item.reference_id == payload["reference_id"]
                assert item.metadata == payload["metadata"]
                location = item.image_location or item.pointcloud_location
                assert location == payload.get("url", payload.get("image_url", payload.get("pointcloud_url")))
                if "annobridge" in payload:
                    assert NucleusItem.from_json({k: v for k, v in payload.items() if k != "annobridge"}) == item
                if "camera_params" in payload:
                    assert item.camera_params.to_payload() == payload["camera_params"]
                    assert item.camera_params.fx == payload["metadata"]["camera_params"]["fx"]
            for key in ("annotations", "predictions"):
                for p in payload.get(key, []):
                    counts[key] += 1
                    parsed = (nucleus_prediction.from_json if key == "predictions" else NucleusAnnotation.from_json)(p)
                    _check_annotation(p, parsed, key == "predictions")
            # no duplicate (reference_id, annotation_id, task_id) for the client's upload check
            anns = [NucleusAnnotation.from_json(p) for p in payload.get("annotations", [])]
            AnnotationUploader.check_for_duplicate_ids(None, anns)  # type: ignore[arg-type]
    assert counts["items"] > 0
    if case == "all-kinds":
        assert counts == {"items": 5, "annotations": 14, "predictions": 8, "scenes": 1}


def test_ids_avoid_nucleus_collisions(tmp_path: Path) -> None:
    """Id-less keypoints of one label, and id-less polygons, would collide in Nucleus: we write ids."""
    item = DatasetItem(reference_id="r", image_location="https://e.com/r.png", annotations=[
        KeypointsAnnotation(label="p", keypoints=[1, 1, 2], names=["a"]),
        KeypointsAnnotation(label="p", keypoints=[2, 2, 2], names=["a"]),
        PolygonAnnotation(label="x", rings=[[0, 0, 1, 0, 1, 1]], annotation_id="r-polygon-3"),
        PolygonAnnotation(label="x", rings=[[0, 0, 2, 0, 2, 2]]),
        BoxAnnotation(label="car", x=10, y=20, width=30.0, height=40)])
    annobridge.save([item], tmp_path / "x.jsonl", "nucleus")
    [line] = _lines(tmp_path / "x.jsonl")
    ids = [a["annotation_id"] for a in line["annotations"]]
    assert ids == ["r-keypoints-0", "r-keypoints-1", "r-polygon-3", "r-polygon-3-1", "car-10-20-30.0-40-r"]
    box = nucleus.BoxAnnotation(label="car", x=10, y=20, width=30.0, height=40, reference_id="r")
    assert box.annotation_id == ids[-1] == auto_annotation_id(item.annotations[4])  # Nucleus's own rule
    back = annobridge.load(tmp_path / "x.jsonl", "nucleus")
    assert [a.annotation_id for a in back.items[0].annotations] == [None, None, "r-polygon-3", None,
                                                                   "car-10-20-30.0-40-r"]


def test_keypoint_visibility_states_without_extension(tmp_path: Path) -> None:
    item = DatasetItem(reference_id="r", image_location="https://e.com/r.png", annotations=[
        KeypointsAnnotation(label="p", keypoints=[1, 2, 2, 3, 4, 1, 0, 0, 0], names=["a", "b", "c"],
                            annotation_id="k")])
    annobridge.save([item], tmp_path / "x.jsonl", "nucleus", options={"strict": "true"})
    [line] = _lines(tmp_path / "x.jsonl")
    assert line["annotations"][0]["geometry"]["keypoints"] == [
        {"x": 1, "y": 2, "visible": True}, {"x": 3, "y": 4, "visible": False}, {"x": None, "y": None, "visible": False}]
    assert "annobridge" not in json.dumps(line)
    back = annobridge.load(tmp_path / "x.jsonl", "nucleus").items[0].annotations[0]
    assert back.keypoints == [1, 2, 2, 3, 4, 1, 0.0, 0.0, 0]


# --------------------------------------------------------------------------- strict mode


def test_strict_writes_pure_nucleus_and_reports_every_drop(all_kinds: Dataset, tmp_path: Path) -> None:
    report = annobridge.save(all_kinds, tmp_path / "s.jsonl", "nucleus", options={"strict": "true"})
    text = (tmp_path / "s.jsonl").read_text() + (tmp_path / "s.dataset.json").read_text()
    assert "annobridge" not in text
    dropped = {k: sum(v.values()) for k, v in report.dropped.items()}
    assert dropped == {
        "item attributes": 1,
        "box:attributes": 1, "box:group_id": 3, "polygon:group_id": 1, "polygon:rings": 1,
        "keypoints:group_id": 1, "keypoints:unlabelled_xy": 1,
        "object_mask": 1, "segmentation:segment_attributes": 1, "prediction:multicategory": 1,
        "cuboid:attributes": 2, "cuboid:group_id": 2, "header categories": 2, "dataset info": 1,
    }
    assert report.written["object_mask"] == 0 and report.written["polygon"] == 2
    back = annobridge.load(tmp_path / "s.jsonl", "nucleus")
    polygon = back.items[0].annotations[2]
    assert polygon.rings == [[1, 1, 3, 1, 3, 3]] and polygon.group_id is None
    assert back.header.categories == [] and back.header.taxonomies == all_kinds.header.taxonomies


def test_strict_drops_camera_frame_cuboids(tmp_path: Path) -> None:
    item = DatasetItem(reference_id="p", pointcloud_location="https://e.com/p.json", annotations=[
        CuboidAnnotation(label="car", position=Point3D(x=1, y=2, z=3), dimensions=Point3D(x=1, y=1, z=1), yaw=0,
                         frame="camera", annotation_id="c")])
    report = annobridge.save([item], tmp_path / "s.jsonl", "nucleus", options={"strict": "true"})
    assert report.dropped["cuboid"] and _lines(tmp_path / "s.jsonl")[0]["annotations"] == []
    annobridge.save([item], tmp_path / "x.jsonl", "nucleus")
    [line] = _lines(tmp_path / "x.jsonl")
    assert line["pointcloud_url"] == "https://e.com/p.json"
    assert line["annotations"][0]["annobridge"] == {"frame": "camera"}
    assert annobridge.load(tmp_path / "x.jsonl", "nucleus").items[0].annotations[0].frame == "camera"


# --------------------------------------------------------------------------- detection and CLI


def test_detect(tmp_path: Path, registry: FormatRegistry) -> None:
    fmt = registry.get("nucleus")
    for case in CASES:
        assert fmt.detect(FIXTURES / case / "items.jsonl")
        assert registry.detect_one(FIXTURES / case / "items.jsonl").name == "nucleus"
    annobridge.save(annobridge.load(FIXTURES / "embeddings" / "items.jsonl"), tmp_path / "c.jsonl", "jsonl")
    assert not fmt.detect(tmp_path / "c.jsonl")  # the canonical jsonl format is not Nucleus
    assert registry.detect_one(tmp_path / "c.jsonl").name == "jsonl"
    (tmp_path / "other.jsonl").write_text('{"text": "hello"}\n')
    assert not fmt.detect(tmp_path / "other.jsonl")
    assert not fmt.detect(FIXTURES / "embeddings" / "pytest_embeddings_payload.json")


def test_cli_nucleus_to_canonical_and_back(tmp_path: Path) -> None:
    src = FIXTURES / "all-kinds" / "items.jsonl"
    cli = [sys.executable, "-m", "annobridge"]
    exe = Path(sys.executable).with_name("annobridge")
    if exe.exists():
        cli = [str(exe)]
    r1 = subprocess.run([*cli, "convert", str(src), str(tmp_path / "canon.jsonl"), "--to", "jsonl"],
                        capture_output=True, text=True, check=False)
    assert r1.returncode == 0, r1.stderr
    assert "read 5 items (nucleus)" in r1.stdout + r1.stderr
    r2 = subprocess.run([*cli, "convert", str(tmp_path / "canon.jsonl"), str(tmp_path / "back.jsonl"),
                         "--to", "nucleus", "--workers", "2"], capture_output=True, text=True, check=False)
    assert r2.returncode == 0, r2.stderr
    assert _normalized(_lines(tmp_path / "back.jsonl")) == _normalized(_lines(src))
    r3 = subprocess.run([*cli, "convert", str(src), str(tmp_path / "back.jsonl"), "--to", "nucleus"],
                        capture_output=True, text=True, check=False)
    assert r3.returncode == 1 and "already exists" in r3.stderr and "Traceback" not in r3.stderr
    # and the other way: the canonical jsonl fixture -> nucleus -> jsonl (its 16-bit mask renumbered)
    canon = ROOT / "fixtures" / "jsonl" / "all-kinds" / "dataset.jsonl"
    r4 = subprocess.run([*cli, "convert", str(canon), str(tmp_path / "n.jsonl"), "--to", "nucleus"],
                        capture_output=True, text=True, check=False)
    assert r4.returncode == 0, r4.stderr  # renumbered by default (renumber-segments=auto), and said so
    assert "converted 1 segmentation -> segmentation renumbered 1..n" in r4.stdout
    assert "nothing was dropped" in r4.stdout
    r5 = subprocess.run([*cli, "convert", str(canon), str(tmp_path / "n.jsonl"), "--to", "nucleus", "--overwrite",
                         "--option", "renumber-segments=false"], capture_output=True, text=True, check=False,
                        cwd=canon.parent)  # its media locations are relative to the dataset folder
    assert r5.returncode == 1 and "does not fit in 8 bits" in r5.stderr and "renumber-segments" in r5.stderr
    assert "Traceback" not in r5.stderr
    r6 = subprocess.run([*cli, "convert", str(tmp_path / "n.jsonl"), str(tmp_path / "c2.jsonl"), "--to", "jsonl"],
                        capture_output=True, text=True, check=False)
    assert r6.returncode == 0, r6.stderr
    caps = get_registry().get("jsonl").capabilities
    assert project(annobridge.load(tmp_path / "c2.jsonl"), caps) == project(annobridge.load(canon), caps)


# --------------------------------------------------------------------------- bad input


def _item_line(**over: Any) -> dict[str, Any]:
    line = {"metadata": {}, "reference_id": "img", "image_url": "https://e.com/img.png", "annotations": [
        {"label": "car", "type": "box", "geometry": {"x": 1, "y": 2, "width": 3, "height": 4},
         "reference_id": "img", "annotation_id": "b1", "metadata": {}, "embedding_vector": None,
         "track_reference_id": None, "task_id": None}]}
    line.update(over)
    return line


def _write_lines(path: Path, *lines: Any) -> Path:
    path.write_text("".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines))
    return path


def _read_all(path: Path) -> list[DatasetItem]:
    return list(annobridge.load(path, "nucleus", stream=True).items)


def _kp(x: Any, y: Any, visible: bool) -> dict[str, Any]:
    return {"x": x, "y": y, "visible": visible}


def _fast_path_lines() -> list[dict[str, Any]]:
    """Lines of every kind the reader's fast path (plugins/nucleus/fast.py) takes."""
    poly = {"label": "p", "type": "polygon", "geometry": {"vertices": [{"x": 0, "y": 0.5}, {"x": 3, "y": 0},
            {"x": 3.25, "y": 4}]}, "reference_id": "a", "annotation_id": "p1", "metadata": {"m": [1, "x"]},
            "embedding_vector": [0.5, 1], "track_reference_id": "t", "task_id": "task-9"}
    line = {"label": "l", "type": "line", "geometry": {"vertices": [{"x": 1, "y": 2}, {"x": 3.5, "y": 4}]},
            "annotation_id": "l1"}
    kps = {"label": "person", "type": "keypoints", "annotation_id": "k1", "metadata": {},
           "geometry": {"keypoints": [_kp(1, 2, True), _kp(3.5, 4, False), _kp(None, None, False)],
                        "names": ["a", "b", "c"], "skeleton": [[0, 1], [1, 2]]},
           "annobridge": {"unlabelled_xy": {"2": [7, 8.5]}}}
    pred = {"label": "car", "type": "box", "geometry": {"x": 1.5, "y": 2, "width": 0, "height": 4},
            "confidence": 1, "class_pdf": {"car": 1, "bus": 0.0}, "dataset_item_id": "di_1"}
    kp_pred = {"label": "person", "type": "keypoints", "confidence": 0.25, "annotation_id": "kp",
               "geometry": {"keypoints": [_kp(1, 2, True)], "names": ["a"], "skeleton": []}}
    return [_item_line(reference_id="a", width=640, height=480, metadata={"i": 1, "f": 0.5},
                       annotations=[poly, line, kps], predictions=[pred, kp_pred]),
            _item_line(metadata=None, predictions=None)]


def test_fast_path_builds_what_the_general_reader_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Typed decoding takes every line here whole, and builds objects equal to the general reader's,
    ints kept ints; a line it does not take (a value out of range) gets the general reader's error."""
    from annobridge.plugins.nucleus import fast, read
    from annobridge.plugins.nucleus.common import SERVER_KEYS

    assert set(SERVER_KEYS) <= set(fast._Payload.__struct_fields__)  # every server key is read as an attribute
    path = _write_lines(tmp_path / "f.jsonl", *_fast_path_lines())
    seen: dict[str, str] = {}
    assert all(fast.fast_item(raw, seen, "here") is not None for raw in path.read_bytes().splitlines())
    taken = _read_all(path)
    monkeypatch.setattr(read, "fast_item", lambda *args: None)
    general = _read_all(path)
    assert [i.model_dump() for i in taken] == [i.model_dump() for i in general]
    assert taken[0].annotations[0].rings == [[0, 0.5, 3, 0, 3.25, 4]]
    assert [type(c) for c in taken[0].annotations[0].rings[0]] == [int, float, int, int, float, int]
    assert taken[0].annotations[2].keypoints == [1, 2, 2, 3.5, 4, 1, 7, 8.5, 0]
    assert taken[0].predictions[0].attributes == {"dataset_item_id": "di_1"}
    monkeypatch.undo()
    bad = _fast_path_lines()[0]
    bad["predictions"][0]["confidence"] = 1.5
    path = _write_lines(tmp_path / "g.jsonl", bad)
    assert fast.fast_item(path.read_bytes(), {}, "here") is None
    with pytest.raises(ReadError, match=r'g\.jsonl:line 1, #/predictions/0/confidence \(item "a"\): '
                                        r"confidence must lie in \[0, 1\], got 1.5"):
        _read_all(path)


_LONG_INT_PLACES = {  # where an integer can be in a line the fast path takes
    "item metadata": lambda line, v: line["metadata"].__setitem__("deep", [{"n": v}]),
    "annotation metadata": lambda line, v: line["annotations"][0]["metadata"].__setitem__("m", [v]),
    "task_id": lambda line, v: line["annotations"][0].__setitem__("task_id", v),
    "dataset_item_id": lambda line, v: line["predictions"][0].__setitem__("dataset_item_id", v),
    "vertex": lambda line, v: line["annotations"][0]["geometry"]["vertices"][0].__setitem__("x", v),
    "width": lambda line, v: line.__setitem__("width", v),
    "class_pdf": lambda line, v: line["predictions"][0]["class_pdf"].__setitem__("bus", v),
    "embedding": lambda line, v: line["annotations"][0]["embedding_vector"].append(v),
    "unlabelled_xy": lambda line, v: line["annotations"][2]["annobridge"]["unlabelled_xy"].__setitem__("2", [v, 1]),
}


@pytest.mark.parametrize("place", sorted(_LONG_INT_PLACES))
def test_fast_path_leaves_integers_of_19_digits_to_the_general_reader(tmp_path: Path, place: str) -> None:
    """msgspec reads them as ints, the general reader (orjson) those beyond 64 bits as floats:
    the fast path takes 18 digits and refuses 19, in typed fields and in free values alike."""
    from annobridge.plugins.nucleus import fast

    for value, taken in ((10**18 - 1, True), (-(10**18) + 1, True), (10**18, False), (-(10**18), False),
                         (2**70, False)):
        if value < 0 and place == "width":
            continue  # refused anyway
        line = _fast_path_lines()[0]
        _LONG_INT_PLACES[place](line, value)
        raw = _write_lines(tmp_path / "n.jsonl", line).read_bytes()
        assert (fast.fast_item(raw, {}, "here") is not None) == taken, value
    line = _fast_path_lines()[0]
    line["metadata"]["big"] = 2**70
    assert _read_all(_write_lines(tmp_path / "m.jsonl", line))[0].metadata["big"] == float(2**70)


def test_truncated_line(tmp_path: Path) -> None:
    good = json.dumps(_item_line())
    path = tmp_path / "t.jsonl"
    path.write_text(good + "\n" + good[:-20])
    with pytest.raises(ReadError, match=r"t\.jsonl:line 2: invalid JSON.*cut short"):
        _read_all(path)


def test_wrong_type(tmp_path: Path) -> None:
    line = _item_line()
    line["annotations"][0]["geometry"]["x"] = "12"
    path = _write_lines(tmp_path / "w.jsonl", line)
    with pytest.raises(ReadError, match=r'w\.jsonl:line 1, #/annotations/0/geometry/x \(item "img"\): '
                                        r"x must be a number, got the string '12'"):
        _read_all(path)


def test_unknown_key_in_payload(tmp_path: Path) -> None:
    """Keys Nucleus does not define are kept as attributes with a warning; strict=true refuses them."""
    line = _item_line()
    line["annotations"][0]["colour"] = "red"
    path = _write_lines(tmp_path / "u.jsonl", line)
    with pytest.raises(ReadError, match=r'u\.jsonl:line 1, #/annotations/0/colour \(item "img"\): '
                                        r"unknown key 'colour' in box payload"):
        list(annobridge.load(path, "nucleus", {"strict": "true"}, stream=True).items)
    [item] = _read_all(path)
    assert item.annotations[0].attributes == {"colour": "red"}
    report = annobridge.convert(path, tmp_path / "back.jsonl", dst_format="nucleus")
    [warning] = [n for n in report.notes if n.startswith("warning: ")]
    assert "1 payloads have keys Nucleus does not define, first 'colour' in a box payload (line 1, #/annotations/0)" in warning
    [back] = annobridge.load(tmp_path / "back.jsonl", "nucleus").items
    assert back.annotations[0].attributes == {"colour": "red"}  # under "annobridge" now, read back the same
    path = _write_lines(tmp_path / "v.jsonl", _item_line(colour="red"))
    with pytest.raises(ReadError, match=r"v\.jsonl:line 1, #/colour.*unknown key 'colour' in item payload"):
        list(annobridge.load(path, "nucleus", {"strict": "true"}, stream=True).items)
    assert _read_all(path)[0].attributes == {"colour": "red"}


def test_missing_mask_file(tmp_path: Path) -> None:
    line = _item_line(annotations=[{"type": "mask", "mask_url": "masks/nope.png", "annotations": [],
                                    "annotation_id": None, "reference_id": "img"}])
    path = _write_lines(tmp_path / "m.jsonl", line)
    with pytest.raises(ReadError, match=r'm\.jsonl:line 1, #/annotations/0/mask_url \(item "img"\): '
                                        r"mask file .*nope\.png' does not exist"):
        _read_all(path)


def test_duplicate_ids(tmp_path: Path) -> None:
    line = _item_line()
    line["annotations"].append(dict(line["annotations"][0]))
    path = _write_lines(tmp_path / "d.jsonl", line)
    with pytest.raises(ReadError, match=r'd\.jsonl:line 1 \(item "img"\): annotation id \'b1\' is used twice'):
        _read_all(path)
    path = _write_lines(tmp_path / "e.jsonl", _item_line(), _item_line())
    with pytest.raises(ReadError, match=r"e\.jsonl:line 2, #/reference_id.*'img' is used twice \(first at line 1\)"):
        _read_all(path)


def test_bad_extension_and_prediction_without_skeleton(tmp_path: Path) -> None:
    line = _item_line()
    line["annotations"][0]["annobridge"] = {"rings": [[0, 0, 1, 1, 2, 2]]}
    path = _write_lines(tmp_path / "x.jsonl", line)
    with pytest.raises(ReadError, match=r"#/annotations/0/annobridge/rings.*belong to a polygon only"):
        _read_all(path)
    pred = {"label": "p", "type": "keypoints", "geometry": {"keypoints": [{"x": 1, "y": 1, "visible": True}],
            "names": ["a"], "skeleton": None}, "reference_id": "img", "annotation_id": "k", "metadata": {},
            "track_reference_id": None, "task_id": None, "confidence": 0.5}
    path = _write_lines(tmp_path / "k.jsonl", _item_line(predictions=[pred]))
    with pytest.raises(ReadError, match=r"#/predictions/0/geometry/skeleton.*needs a skeleton"):
        list(annobridge.load(path, "nucleus", {"strict": "true"}, stream=True).items)
    assert _read_all(path)[0].predictions[0].skeleton is None  # kept, with a warning (tests/test_refusals.py)


def test_validate_lists_every_problem(tmp_path: Path) -> None:
    a = _item_line(reference_id="a")
    a["annotations"][0]["reference_id"] = "a"
    a["annotations"][0]["geometry"]["width"] = None
    b = _item_line(reference_id="b", width="wide")
    c = _item_line(reference_id="c")
    c["annotations"][0]["reference_id"] = "c"
    c["annotations"][0]["type"] = "blob"
    path = _write_lines(tmp_path / "v.jsonl", a, b, c, ["not", "an", "object"])
    errors = annobridge.validate(path, "nucleus")
    text = "\n".join(str(e) for e in errors)
    assert len(errors) == 4, text
    assert 'line 1, #/annotations/0/geometry/width (item "a"): width is missing' in text
    assert 'line 2, #/width (item "b"): width must be a number' in text
    assert "line 3, #/annotations/0/type (item \"c\"): unknown annotation type the string 'blob'" in text
    assert "line 4: a line must be a JSON object, got a list" in text


# --------------------------------------------------------------------------- write errors


def test_mask_index_above_255_is_a_write_error_only_when_renumbering_cannot_help(tmp_path: Path) -> None:
    mask = np.zeros((2, 2), np.uint32)
    mask[0, 0] = 300
    item = DatasetItem(reference_id="big", image_location="https://e.com/b.png", annotations=[
        SegmentationAnnotation(mask=IndexMask.from_array(mask), annotations=[Segment(label="x", index=300)])])
    with pytest.raises(WriteError, match=r'item "big".*mask value 300 does not fit in 8 bits.*Nucleus masks are 8-bit'):
        annobridge.save([item], tmp_path / "out.jsonl", "nucleus", options={"renumber-segments": "false"})
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing left behind
    many = np.arange(256, 256 + 16 * 16, dtype=np.uint32).reshape(16, 16)  # 256 segments: no 8-bit mask holds them
    item = DatasetItem(reference_id="many", image_location="https://e.com/m.png", annotations=[
        SegmentationAnnotation(mask=IndexMask.from_array(many),
                               annotations=[Segment(label="x", index=int(i)) for i in many.ravel()])])
    with pytest.raises(WriteError, match=r'item "many".*256 segments and an index above 255'):
        annobridge.save([item], tmp_path / "out.jsonl", "nucleus")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    report = annobridge.save([item.model_copy(update={"annotations": [item.annotations[0].model_copy(
        update={"annotations": item.annotations[0].annotations[:255]})]})], tmp_path / "out.jsonl", "nucleus")
    assert report.converted == {"segmentation -> segmentation renumbered 1..n": 1} and report.lossless


def test_scene_errors(tmp_path: Path) -> None:
    def frame(ref: str, scene: str, index: int, sensor: str, cloud: bool = False) -> DatasetItem:
        loc = {"pointcloud_location": f"https://e.com/{ref}.json"} if cloud else {"image_location": f"https://e.com/{ref}.png"}
        return DatasetItem(reference_id=ref, scene=FrameRef(scene_reference_id=scene, index=index, sensor=sensor), **loc)

    split = [frame("a", "s", 0, "lidar", True), frame("b", "t", 0, "lidar", True), frame("c", "s", 1, "lidar", True)]
    with pytest.raises(WriteError, match="frames of scene 's' do not come one after the other"):
        annobridge.save(split, tmp_path / "o1.jsonl", "nucleus")
    no_cloud = [frame("a", "s", 0, "lidar", True), frame("b", "s", 1, "camera")]
    with pytest.raises(WriteError, match="lidar scene 's' frame 1 has 0 point clouds, Nucleus needs exactly 1"):
        annobridge.save(no_cloud, tmp_path / "o2.jsonl", "nucleus")
    assert list(tmp_path.iterdir()) == []


def test_extension_keeps_numbers_as_read(tmp_path: Path) -> None:
    """A payload with integer vertices and an extension key comes back exactly (number types too)."""
    poly = {"label": "bus", "type": "polygon", "geometry": {"vertices": [{"x": 1, "y": 2}, {"x": 3, "y": 4}, {"x": 5, "y": 1}]},
            "reference_id": "img", "annotation_id": "p", "metadata": {}, "embedding_vector": None,
            "track_reference_id": None, "task_id": "task-9", "annobridge": {"group_id": "g", "rings": [[7, 7, 8, 7, 8, 8]]}}
    src = _write_lines(tmp_path / "in.jsonl", _item_line(annotations=[poly]))
    annobridge.convert(src, tmp_path / "out.jsonl", src_format="nucleus", dst_format="nucleus")
    assert _ordered(_lines(tmp_path / "out.jsonl")) == _ordered(_lines(src))
    [ann] = annobridge.load(src, "nucleus").items[0].annotations
    assert ann.rings == [[1, 2, 3, 4, 5, 1], [7.0, 7.0, 8.0, 7.0, 8.0, 8.0]]
    assert ann.group_id == "g" and ann.attributes == {"task_id": "task-9"}


def test_scene_payload_errors(tmp_path: Path) -> None:
    scene = {"reference_id": "s", "frames": [{"lidar": {"metadata": {}, "reference_id": "p", "url": "https://e.com/p.json",
                                                        "type": "pointcloud", "annotations": []}}], "weather": "rain"}
    path = _write_lines(tmp_path / "s.jsonl", scene)
    with pytest.raises(ReadError, match=r"s\.jsonl:line 1, #/weather.*unknown key 'weather' in scene payload"):
        list(annobridge.load(path, "nucleus", {"strict": "true"}, stream=True).items)
    _read_all(path)
    assert annobridge.load(path, "nucleus").header.scenes["s"].attributes == {"weather": "rain"}  # kept, warned
    scene.pop("weather")
    scene["frames"][0]["lidar"]["type"] = "radar"
    path = _write_lines(tmp_path / "t.jsonl", scene)
    with pytest.raises(ReadError, match=r'#/frames/0/lidar/type \(item "p"\): item type must be "image" or "pointcloud"'):
        _read_all(path)


def test_non_json_attribute_is_a_write_error(tmp_path: Path) -> None:
    item = DatasetItem(reference_id="r", image_location="https://e.com/r.png", attributes={"calib": np.float32(1.5)})
    with pytest.raises(WriteError, match="cannot write a value as JSON"):
        annobridge.save([item], tmp_path / "x.jsonl", "nucleus")
    assert list(tmp_path.iterdir()) == []


def test_text_is_written_as_the_client_writes_it(tmp_path: Path) -> None:
    item = DatasetItem(reference_id="straße-1", image_location="https://e.com/ß.png", metadata={"city": "Köln"},
                       annotations=[CategoryAnnotation(label="Straße")])
    annobridge.save([item], tmp_path / "x.jsonl", "nucleus")
    line = (tmp_path / "x.jsonl").read_text()
    client = NucleusItem(image_location="https://e.com/ß.png", reference_id="straße-1", metadata={"city": "Köln"})
    payload = client.to_payload()
    payload["annotations"] = [nucleus.CategoryAnnotation(label="Straße", reference_id="straße-1").to_payload()]
    assert _ordered(json.loads(line)) == _ordered(payload)
    assert "Straße" in line  # UTF-8, not escaped
    assert annobridge.load(tmp_path / "x.jsonl", "nucleus").items[0].annotations[0].label == "Straße"


def test_booleans_as_strings_option(all_kinds: Dataset, tmp_path: Path) -> None:
    report = annobridge.save(all_kinds, tmp_path / "b.jsonl", "nucleus", options={"booleans-as-strings": "true"})
    first = _lines(tmp_path / "b.jsonl")[0]
    assert first["metadata"] == {"weather": "sunny", "n": 3, "ok": "true"}
    assert report.dropped == {"metadata booleans": {'written as the strings "true"/"false" (booleans-as-strings)': 1}}
    assert annobridge.load(tmp_path / "b.jsonl", "nucleus").items[0].metadata["ok"] == "true"


def test_incomplete_lidar_scene_option(tmp_path: Path) -> None:
    items = [DatasetItem(reference_id="p0", pointcloud_location="https://e.com/p0.json",
                         scene=FrameRef(scene_reference_id="s", index=0, sensor="lidar")),
             DatasetItem(reference_id="c1", image_location="https://e.com/c1.png",
                         scene=FrameRef(scene_reference_id="s", index=1, sensor="camera"))]
    report = annobridge.save(items, tmp_path / "x.jsonl", "nucleus", options={"incomplete-lidar-scenes": "true"})
    assert any("frames [1] do not have exactly one point cloud" in n for n in report.notes)
    back = annobridge.load(tmp_path / "x.jsonl", "nucleus")
    assert [(i.reference_id, i.scene) for i in back.items] == [(i.reference_id, i.scene) for i in items]


def test_renumber_segments_option(tmp_path: Path) -> None:
    mask = np.array([[0, 300, 300], [7001, 7001, 5]], np.uint32)  # panoptic-like ids; 5 has no segment
    item = DatasetItem(reference_id="pan", image_location="https://e.com/p.png", annotations=[
        SegmentationAnnotation(mask=IndexMask.from_array(mask), annotations=[
            Segment(label="car", index=300), Segment(label="road", index=7001, attributes={"isthing": 0})])])
    report = annobridge.save([item], tmp_path / "x.jsonl", "nucleus")  # renumber-segments=auto
    assert report.converted == {"segmentation -> segmentation renumbered 1..n": 1} and report.lossless
    assert report.written == {"segmentation": 1}
    assert any('attributes["original_index"]' in n for n in report.notes)
    [seg] = annobridge.load(tmp_path / "x.jsonl", "nucleus").items[0].annotations
    assert np.array_equal(seg.mask.load(), [[0, 1, 1], [2, 2, 0]])
    assert [(s.label, s.index, s.attributes) for s in seg.annotations] == [
        ("car", 1, {"original_index": 300}), ("road", 2, {"isthing": 0, "original_index": 7001})]
    assert Image.open(tmp_path / "x.masks" / "000000-pan.png").mode == "L"
    small = DatasetItem(reference_id="s", image_location="https://e.com/s.png", annotations=[
        SegmentationAnnotation(mask=IndexMask.from_array(np.array([[0, 5], [9, 9]], np.uint8)), annotations=[
            Segment(label="bg", index=0), Segment(label="a", index=5), Segment(label="b", index=9)])])
    report = annobridge.save([small], tmp_path / "s.jsonl", "nucleus")  # fits: auto leaves it alone
    assert report.converted == {}
    report = annobridge.save([small], tmp_path / "t.jsonl", "nucleus", options={"renumber-segments": True})
    assert report.converted == {"segmentation -> segmentation renumbered 1..n": 1}  # true: always
    [seg] = annobridge.load(tmp_path / "t.jsonl", "nucleus").items[0].annotations
    assert np.array_equal(seg.mask.load(), [[1, 2], [3, 3]])
    with pytest.raises(FormatError, match="renumber"):
        annobridge.save([small], tmp_path / "u.jsonl", "nucleus", options={"renumber-segments": "sometimes"})


def _cross_sources() -> list[tuple[str, Path]]:
    """Fixtures of other formats, for the formats registered in this build."""
    registry = get_registry()
    out: list[tuple[str, Path]] = []
    root = ROOT / "fixtures"
    if "coco" in registry.formats:
        out += [("coco", p) for p in sorted(root.glob("coco/*/*.json")) if p.name != "expected.json"]
    if "kitti" in registry.formats:
        out += [("kitti", p / "training" if (p / "training").is_dir() else p) for p in sorted(root.glob("kitti/*/"))]
    if "kitti-tracking" in registry.formats:
        out += [("kitti-tracking", p / "training") for p in sorted(root.glob("kitti-tracking/*/"))
                if (p / "training").is_dir()]
    return out


def test_other_formats_survive_a_trip_through_nucleus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """X -> Nucleus -> X writes what X -> X writes, byte for byte (COCO: every box, polygon, RLE mask and
    keypoint; KITTI: lidar scenes with point clouds), for every fixture X reads without options."""
    checked = []
    for n, (fmt, src) in enumerate(_cross_sources()):
        direct, via = tmp_path / f"{n}-direct", tmp_path / f"{n}-via"
        try:
            annobridge.convert(src, direct / "out", src_format=fmt, dst_format=fmt)
        except ReadError:
            continue  # a malformed fixture, or one that needs read options: not this test's subject
        report = annobridge.convert(src, via / "n.jsonl", src_format=fmt, dst_format="nucleus",
                                    write_options={"incomplete-lidar-scenes": "true"})
        unplaced = [i for i in annobridge.load(src, fmt).items
                    if i.scene is None and i.image_location is None and i.pointcloud_location is None]
        if unplaced:  # e.g. a COCO results list: no image records, nothing Nucleus can hold
            assert sum(report.dropped["item"].values()) == len(unplaced)
            continue
        back = annobridge.convert(via / "n.jsonl", via / "out", src_format="nucleus", dst_format=fmt)
        # images stay where the source has them (absolute image_url outside via/): a writer copies
        # media only from inside its source folder, and reports the rest (core.paths.media_file)
        outside = {"image_2", "image_02"} if back.dropped.get("image file") else set()
        if outside:
            assert all(r.startswith("outside the source folder") for r in back.dropped["image file"])
        want = {p.relative_to(direct): p.read_bytes() for p in direct.rglob("*") if p.is_file()
                if not outside & set(p.parts)}
        got = {p.relative_to(via): p.read_bytes() for p in via.rglob("*") if p.is_file()
               if p.relative_to(via).parts[0] == "out"}
        assert got == want, f"{fmt} {src}"
        checked.append(fmt)
    # the canonical jsonl all-kinds fixture (a 16-bit panoptic-like mask needs renumbering)
    src = ROOT / "fixtures" / "jsonl" / "all-kinds" / "dataset.jsonl"
    monkeypatch.chdir(src.parent)  # its media locations are relative to the dataset folder
    annobridge.convert(src, tmp_path / "j.jsonl", src_format="jsonl", dst_format="nucleus",
                       write_options={"renumber-segments": "true"})
    caps = get_registry().get("jsonl").capabilities
    assert project(annobridge.load(tmp_path / "j.jsonl", "nucleus"), caps) == project(annobridge.load(src, "jsonl"), caps)
    registry = get_registry()
    for fmt, least in (("coco", 5), ("kitti", 1), ("kitti-tracking", 1)):
        if fmt in registry.formats:
            assert checked.count(fmt) >= least, checked


def _nan_item() -> DatasetItem:
    return DatasetItem(
        reference_id="r", image_location="https://e.com/r.png", metadata={"label": "NaN"},
        annotations=[BoxAnnotation(label="NaN", x=1, y=2, width=3, height=4, embedding_vector=[0.5]),
                     PolygonAnnotation(label="p", rings=[[0, 0, 4, 0, 4, 4]]),
                     KeypointsAnnotation(label="k", keypoints=[1, 2, 2], names=["a"]),
                     CuboidAnnotation(label="c", position=Point3D(x=1, y=2, z=3), dimensions=Point3D(x=1, y=1, z=1),
                                      yaw=0.1)],
        predictions=[BoxAnnotation(label="b", x=1, y=2, width=3, height=4, confidence=0.5, class_pdf={"b": 0.5})])


_NAN_PLACES = {  # where a NaN or infinity can hide in an item (set after validation, or free values)
    "box x": lambda i, v: setattr(i.annotations[0], "x", v),
    "embedding": lambda i, v: i.annotations[0].embedding_vector.append(v),
    "vertex": lambda i, v: i.annotations[1].rings[0].__setitem__(3, v),
    "second ring": lambda i, v: i.annotations[1].rings.append([0, 0, 1, 0, v, 1]),
    "keypoint": lambda i, v: i.annotations[2].keypoints.__setitem__(0, v),
    "cuboid yaw": lambda i, v: setattr(i.annotations[3], "yaw", v),
    "skeleton": lambda i, v: setattr(i.annotations[2], "skeleton", [(0, v)]),
    "item width": lambda i, v: setattr(i, "width", v),
    "confidence": lambda i, v: setattr(i.predictions[0], "confidence", v),
    "class_pdf": lambda i, v: i.predictions[0].class_pdf.__setitem__("b", v),
    "annotation attribute": lambda i, v: i.annotations[1].attributes.__setitem__("a", [{"b": v}]),
    "annotation metadata": lambda i, v: i.annotations[2].metadata.__setitem__("m", v),
    "item attribute": lambda i, v: i.attributes.__setitem__("a", {"b": (1, v)}),
    "item metadata": lambda i, v: i.metadata.__setitem__("m", {"n": [v]}),
}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("place", sorted(_NAN_PLACES))
def test_non_finite_numbers_are_a_write_error(tmp_path: Path, place: str, value: float) -> None:
    """orjson (the fast encoder) writes NaN and infinities as null: wherever one hides, the
    writer must refuse it, naming the file and item, instead."""
    item = _nan_item()
    annobridge.save([item], tmp_path / "ok.jsonl", "nucleus")  # the word NaN in text is fine
    assert _lines(tmp_path / "ok.jsonl")[0]["metadata"] == {"label": "NaN"}
    _NAN_PLACES[place](item, value)
    with pytest.raises(WriteError, match=r'ok2\.jsonl \(item "r"\): cannot write a value as JSON: Out of range float'):
        annobridge.save([item], tmp_path / "ok2.jsonl", "nucleus")


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8)
_FLOATS = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fast_encoder_writes_what_the_exact_one_writes(data: st.DataObject) -> None:
    """Lines of plain values go to orjson, the others to pydantic-core (write._encode): on
    numbers of every size and free values of every JSON kind (ints past 64 bits, non-str keys,
    datetimes, tuples), both write the same bytes."""
    exact = nucleus_write._encode
    free = _JSON_VALUES | st.sampled_from([{1: "int key"}, datetime.datetime(2024, 1, 2, tzinfo=datetime.timezone.utc),
                                           datetime.date(2024, 1, 2), ("a", 1.5), 2**70, "\x00\u2028é\"\\"])
    items = []
    for n in range(data.draw(st.integers(1, 3))):
        x, y = data.draw(_FLOATS), data.draw(_FLOATS)
        ring = data.draw(st.lists(_FLOATS, min_size=3, max_size=6).map(lambda v: v + v))
        items.append(DatasetItem(
            reference_id=f"r{n}", image_location=f"https://e.com/{n}.png",
            metadata=data.draw(st.dictionaries(st.text(max_size=3).map(lambda k, n=n: f"{n}{k}"), _JSON_VALUES,
                                               max_size=2)),  # keys of one item: no type clash across items
            attributes=data.draw(st.dictionaries(st.text(max_size=3), free, max_size=2)),
            annotations=[BoxAnnotation(label=data.draw(st.text(max_size=3)), x=x, y=y, width=abs(x), height=abs(y),
                                       annotation_id="b", attributes={"v": data.draw(free)}),
                         PolygonAnnotation(label="p", rings=[ring], annotation_id="p",
                                           metadata={"m": data.draw(_JSON_VALUES)})],
            predictions=[BoxAnnotation(label="b", x=1, y=2, width=3, height=4,
                                       confidence=data.draw(st.floats(0, 1)), class_pdf={"b": data.draw(_FLOATS)})]))
    with tempfile.TemporaryDirectory() as tmp:
        annobridge.save(items, Path(tmp) / "fast.jsonl", "nucleus")
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(nucleus_write, "_encode", lambda line, plain: exact(line, False))
            annobridge.save(items, Path(tmp) / "exact.jsonl", "nucleus")
        assert (Path(tmp) / "fast.jsonl").read_bytes() == (Path(tmp) / "exact.jsonl").read_bytes()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_strict_output_is_pure_nucleus_and_every_loss_is_reported(data: st.DataObject) -> None:
    """On generated data: strict output has no extension key, the client parses every annotation,
    and whatever the non-strict round trip keeps but the strict one loses shows up in the report."""
    fmt = get_registry().get("nucleus")
    dataset = data.draw(datasets(fmt.capabilities, "nucleus"))
    with tempfile.TemporaryDirectory() as tmp:
        report = annobridge.save(dataset, Path(tmp) / "s.jsonl", "nucleus", options={"strict": "true"})
        text = (Path(tmp) / "s.jsonl").read_text()
        assert '"annobridge"' not in text
        for line in _lines(Path(tmp) / "s.jsonl"):
            for key, parse in (("annotations", NucleusAnnotation.from_json), ("predictions", nucleus_prediction.from_json)):
                for p in line.get(key, []):
                    parse(p)
        back = annobridge.load(Path(tmp) / "s.jsonl", "nucleus")
        before = [a for i in dataset.items for a in i.annotations + i.predictions]
        after = [a for i in back.items for a in i.annotations + i.predictions]
        lost = len(before) - len(after)
        assert lost == sum(n for k, r in report.dropped.items() if k.removeprefix("prediction:") in ANNOTATION_TYPES
                           for n in r.values())
        polygons = sum(1 for a in before if a.type == "polygon" and len(a.rings) > 1)
        assert sum(report.dropped.get("polygon:rings", {}).values()) + sum(
            report.dropped.get("prediction:polygon:rings", {}).values()) == polygons
        if dataset.header.categories:
            assert report.dropped["header categories"]


def test_integers_beyond_64_bits_survive(tmp_path: Path) -> None:
    line = _item_line(metadata={"big": 2**70, "neg": -(2**65)})
    src = _write_lines(tmp_path / "big.jsonl", line)
    [item] = _read_all(src)
    assert item.metadata == {"big": 2**70, "neg": -(2**65)}
    annobridge.save([item], tmp_path / "out.jsonl", "nucleus")
    assert _lines(tmp_path / "out.jsonl")[0]["metadata"] == {"big": 2**70, "neg": -(2**65)}
