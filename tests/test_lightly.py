"""The Lightly formats: ``lightly`` (.lightly folder) and ``lightly-task`` (single task)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pycocotools import mask as mask_utils

import annobridge
from annobridge.core.errors import MetadataTypeError, ReadError, WriteError
from annobridge.core.model import (
    BoxAnnotation,
    Category,
    CategoryAnnotation,
    Dataset,
    DatasetHeader,
    DatasetItem,
    FrameRef,
    IndexMask,
    KeypointsAnnotation,
    ObjectMaskAnnotation,
    Scene,
    Segment,
    SegmentationAnnotation,
)
from annobridge.plugins.lightly import (
    frame_file_name,
    parse_frame_file_name,
    rle_decode,
    rle_encode,
    split_ext,
)
from tests.projection import project
from tests.strategies import datasets

ROOT = Path(__file__).resolve().parent.parent
DATASOURCE = ROOT / "fixtures" / "lightly" / "datasource" / "bucket"
EXPECTED = ROOT / "fixtures" / "lightly" / "datasource" / "expected.jsonl"
LABELFORMAT = ROOT / "fixtures" / "lightly-task" / "labelformat-detection" / "detection-task-name"
DS_OPTIONS = {"input": str(DATASOURCE), "frames": "clips/rally.mp4=12"}


def _write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _items(ds: Dataset) -> dict[str, DatasetItem]:
    return {i.reference_id: i for i in ds.items}


def _preds(item: DatasetItem) -> list[tuple]:
    out = []
    for p in item.predictions:
        if p.type == "box":
            out.append(("box", p.label, (p.x, p.y, p.width, p.height), p.confidence,
                        tuple(sorted((k, v) for k, v in (p.class_pdf or {}).items() if v))))
        elif p.type == "category":
            out.append(("category", p.label, p.confidence, tuple(sorted((k, v) for k, v in (p.class_pdf or {}).items() if v))))
        elif p.type == "segmentation":
            arr = p.mask.load()
            labels = {s.index: s.label for s in p.annotations}
            out.append(("segmentation", tuple(tuple(labels.get(int(v), "") for v in row) for row in arr),
                        tuple(sorted((s.label, s.attributes.get("score")) for s in p.annotations))))
        elif p.type == "object_mask":
            out.append(("object_mask", p.label, p.to_array().tobytes(), p.confidence))
        elif p.type == "keypoints":
            out.append(("keypoints", p.label, tuple(p.keypoints), tuple(p.names), p.confidence))
    return sorted(out, key=repr)


# --------------------------------------------------------------------------- RLE and names


def test_rle_matches_the_lightly_docs_example_and_differs_from_coco() -> None:
    mask = np.array([[0, 0, 1, 1], [0, 1, 1, 1], [0, 0, 0, 1]], dtype=np.uint8)
    assert rle_encode(mask) == [2, 2, 1, 3, 3, 1]
    coco = mask_utils.frPyObjects({"size": [3, 4], "counts": [4, 1, 1, 2, 1, 3]}, 3, 4)
    assert (mask_utils.decode(coco) == mask).all()  # COCO's column-major counts of the same mask
    assert rle_encode(mask.T) == [4, 1, 1, 2, 1, 3] != rle_encode(mask)
    with pytest.raises(AssertionError):  # re-using COCO counts as Lightly counts gives other pixels
        assert (rle_decode([4, 1, 1, 2, 1, 3], 3, 4) == mask).all()
    assert rle_encode(np.zeros((2, 2))) == [4]
    assert rle_encode(np.ones((2, 2))) == [0, 4]
    assert (rle_decode([2, 2, 1, 3, 3, 1], 3, 4) == mask).all()


def test_rle_decode_refuses_counts_that_do_not_fill_the_image() -> None:
    with pytest.raises(ValueError, match="sum to 5, expected height x width = 2 x 2 = 4"):
        rle_decode([1, 4], 2, 2)


@given(st.integers(1, 9), st.integers(1, 9), st.data())
@settings(max_examples=40, deadline=None)
def test_rle_round_trips(h: int, w: int, data: st.DataObject) -> None:
    flat = data.draw(st.lists(st.integers(0, 1), min_size=h * w, max_size=h * w))
    mask = np.array(flat, dtype=np.uint8).reshape(h, w)
    counts = rle_encode(mask)
    assert sum(counts) == h * w
    assert (rle_decode(counts, h, w) == mask).all()


def test_frame_names_follow_the_lightly_code() -> None:
    assert frame_file_name("subdir/video_1.mp4", 99, 200) == "subdir/video_1-099-mp4.png"
    assert frame_file_name("subdir/video_1.mp4", 99, 1000) == "subdir/video_1-0099-mp4.png"
    assert frame_file_name("v.mp4", 5, 100) == "v-005-mp4.png"
    assert frame_file_name("v.mp4", 5, 99) == "v-05-mp4.png"
    assert frame_file_name("a.b.mp4", 1, 10) == "a.b-01-mp4.png"
    assert parse_frame_file_name("a.b-01-mp4.png") == ("a.b.mp4", 1, 2)
    assert parse_frame_file_name("plain.png") is None
    assert split_ext("d/a.b.jpg") == ("d/a.b", ".jpg")


# --------------------------------------------------------------------------- reading fixtures


def test_datasource_fixture_reads_metadata_defaults_frames_and_predictions() -> None:
    ds = annobridge.load(DATASOURCE / ".lightly", "lightly", DS_OPTIONS)
    items = _items(ds)
    assert sorted(items) == ["HALL-A/g101/cam1_0001", "HALL-B/g202/cam1_0003", "HALL-B/g202/cam2_0002",
                             "clips/rally-03-mp4", "clips/rally-11-mp4"]
    a = items["HALL-A/g101/cam1_0001"]
    assert (a.width, a.height) == (8, 6)
    assert a.metadata["weather"] == {"temperature": 21.5, "description": "dry"}
    assert a.metadata["gps"] == {"lat": 48.85, "lon": 2.35}
    # an image without a metadata file reads as the schema defaults
    assert items["HALL-B/g202/cam1_0003"].metadata == {
        "court": "undefined", "game_id": "undefined", "weather": {"temperature": 0.0}, "players": 0,
        "indoor": False, "recorded": "1970-01-01T00:00:00.000Z"}
    frame = items["clips/rally-03-mp4"]
    assert frame.scene == FrameRef(scene_reference_id="clips/rally", index=3)
    assert ds.header.scenes["clips/rally"].metadata["court"] == "HALL-A"
    assert ds.header.scenes["clips/rally"].attributes == {"file_name": "clips/rally.mp4", "n_frames": 12}
    preds = _preds(a)
    assert ("box", "ball", (1, 2, 3, 2), 0.9, (("ball", 0.9), ("player", 0.1))) in preds
    assert ("category", "match", None, (("empty", 0.1), ("match", 0.8), ("training", 0.1))) in preds
    seg = next(p for p in a.predictions if p.type == "segmentation")
    arr = seg.mask.load()
    court = next(s for s in seg.annotations if s.label == "court")
    assert (arr == court.index).sum() == 18 and court.attributes["score"] == 0.8
    assert _preds(frame) == [("box", "player", (10, 20, 30, 40), 0.7, ())]


def test_datasource_fixture_matches_expected_jsonl() -> None:
    got = annobridge.load(DATASOURCE / ".lightly", "lightly", DS_OPTIONS)
    want = annobridge.load(EXPECTED, "jsonl")
    g, w = _items(got), _items(want)
    assert sorted(g) == sorted(w)
    for ref in g:
        assert g[ref].metadata == w[ref].metadata
        assert g[ref].scene == w[ref].scene
        assert _preds(g[ref]) == _preds(w[ref])


def test_labelformat_task_folder_reads_with_zero_scores_and_spaces() -> None:
    ds = annobridge.load(LABELFORMAT, "lightly-task")
    items = _items(ds)
    assert sorted(items) == ["a-weird Filename.asdf", "aNother-weird__ filename.with.many.characters"]
    item = items["a-weird Filename.asdf"]
    assert item.attributes["file_name"] == "a-weird Filename.asdf.jpg"
    assert len(item.predictions) == 8 and all(p.confidence == 0.0 for p in item.predictions)
    assert ds.header.category_named("bicycle with space").id == 1
    gt = annobridge.load(LABELFORMAT, "lightly-task", {"as_annotations": True})
    assert sum(len(i.annotations) for i in gt.items) == 16


def test_labelformat_task_folder_round_trips_byte_for_value(tmp_path: Path) -> None:
    ds = annobridge.load(LABELFORMAT, "lightly-task")
    annobridge.save(ds, tmp_path / "detection-task-name", "lightly-task")
    for src in LABELFORMAT.glob("*.json"):
        assert json.loads((tmp_path / "detection-task-name" / src.name).read_text()) == json.loads(src.read_text())


def test_datasource_round_trip_keeps_files(tmp_path: Path) -> None:
    ds = annobridge.load(DATASOURCE / ".lightly", "lightly", DS_OPTIONS)
    report = annobridge.save(ds, tmp_path / ".lightly", "lightly", {"frames": "clips/rally.mp4=12"})
    assert report.dropped == {}, report.summary()
    out = tmp_path / ".lightly"
    schema = json.loads((out / "metadata" / "schema.json").read_text())
    by_path = {e["path"]: e for e in schema}
    assert by_path["weather.temperature"] == {"name": "Temperature", "path": "weather.temperature",
                                              "defaultValue": 0.0, "valueDataType": "NUMERIC_FLOAT"}
    assert by_path["recorded"]["valueDataType"] == "CATEGORICAL_DATETIME"  # kept from the schema read
    assert by_path["gps.lat"]["valueDataType"] == "NUMERIC_FLOAT"
    assert json.loads((out / "predictions" / "tasks.json").read_text()) == [
        "ball_detection", "scene_type", "court_segmentation"] or set(
        json.loads((out / "predictions" / "tasks.json").read_text())) == {
        "ball_detection", "scene_type", "court_segmentation"}
    for task in ("ball_detection", "scene_type", "court_segmentation"):
        src = DATASOURCE / ".lightly" / "predictions" / task
        for f in src.rglob("*.json"):
            rel = f.relative_to(src)
            written = json.loads((out / "predictions" / task / rel).read_text())
            original = json.loads(f.read_text())
            if rel.name == "schema.json":
                assert written == original
            else:
                key = lambda p: (p["category_id"], p.get("bbox"))  # noqa: E731
                assert sorted(written["predictions"], key=key) == sorted(original["predictions"], key=key)
    frame = json.loads((out / "metadata" / "clips" / "rally-03-mp4.json").read_text())
    assert frame["file_name"] == "clips/rally-03-mp4.png" and frame["type"] == "frame"
    video = json.loads((out / "metadata" / "clips" / "rally.json").read_text())
    assert video["type"] == "video" and video["metadata"]["court"] == "HALL-A"
    # weather.description (a string outside the given schema) gets an inferred entry
    assert by_path["weather.description"]["valueDataType"] == "CATEGORICAL_STRING"
    back = annobridge.load(out, "lightly", {"frames": "clips/rally.mp4=12", "input": str(DATASOURCE),
                                            "fill_defaults": False})
    a, b = _items(ds), _items(back)
    assert {k: v.metadata for k, v in a.items()} == {k: v.metadata for k, v in b.items()}
    assert {k: _preds(v) for k, v in a.items()} == {k: _preds(v) for k, v in b.items()}


# --------------------------------------------------------------------------- bad input


def _minimal(root: Path) -> Path:
    folder = root / ".lightly"
    _write(folder / "metadata" / "schema.json",
           [{"name": "w", "path": "w", "defaultValue": "undefined", "valueDataType": "CATEGORICAL_STRING"}])
    _write(folder / "metadata" / "a.json", {"file_name": "a.png", "type": "image", "metadata": {"w": "x"}})
    return folder


def test_unknown_value_data_type_names_schema_file_and_entry(tmp_path: Path) -> None:
    folder = _minimal(tmp_path)
    _write(folder / "metadata" / "schema.json",
           [{"name": "w", "path": "w", "defaultValue": "u", "valueDataType": "CATEGORICAL_STRING"},
            {"name": "t", "path": "t", "defaultValue": 0, "valueDataType": "NUMERIC_DOUBLE"}])
    with pytest.raises(ReadError, match=r"schema\.json#/1/valueDataType: unknown valueDataType 'NUMERIC_DOUBLE'"):
        annobridge.load(folder, "lightly")


def test_extra_api_value_data_types_are_accepted(tmp_path: Path) -> None:
    folder = _minimal(tmp_path)
    _write(folder / "metadata" / "schema.json",
           [{"name": t, "path": t, "defaultValue": d, "valueDataType": t} for t, d in
            (("CATEGORICAL_DATETIME", "2020-01-01T00:00:00.000Z"), ("CATEGORICAL_TIMESTAMP", 0),
             ("OTHER_STRING", ""))])
    item = annobridge.load(folder, "lightly").items[0]
    assert item.metadata["CATEGORICAL_TIMESTAMP"] == 0 and item.metadata["w"] == "x"


def test_default_value_of_the_wrong_type_is_an_error(tmp_path: Path) -> None:
    folder = _minimal(tmp_path)
    _write(folder / "metadata" / "schema.json",
           [{"name": "n", "path": "n", "defaultValue": "zero", "valueDataType": "NUMERIC_INT"}])
    with pytest.raises(ReadError, match=r"schema\.json#/0/defaultValue: defaultValue 'zero' is not a valid NUMERIC_INT"):
        annobridge.load(folder, "lightly")


def test_metadata_file_without_file_name_names_the_file(tmp_path: Path) -> None:
    folder = _minimal(tmp_path)
    _write(folder / "metadata" / "b.json", {"type": "image", "metadata": {}})
    with pytest.raises(ReadError, match=r"metadata[/\\]b\.json: metadata file has no 'file_name'"):
        annobridge.load(folder, "lightly")


def test_metadata_for_a_missing_media_file_names_both(tmp_path: Path) -> None:
    folder = _minimal(tmp_path)
    Image.new("RGB", (4, 4)).save(tmp_path / "other.png")
    with pytest.raises(ReadError, match=r"a\.json#/file_name: media file 'a\.png' does not exist"):
        annobridge.load(folder, "lightly", {"input": str(tmp_path)})
    # without an input datasource the media cannot be checked, and is not
    assert len(annobridge.load(folder, "lightly").items) == 1


def test_two_media_files_with_one_stem_are_an_error(tmp_path: Path) -> None:
    folder = _minimal(tmp_path)
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "a.jpg")
    with pytest.raises(ReadError, match=r"media files 'a\.jpg' and 'a\.png' share the Lightly file name a\.json"):
        annobridge.load(folder, "lightly", {"input": str(tmp_path)})


def test_frame_file_with_wrong_padding_is_an_error(tmp_path: Path) -> None:
    folder = _minimal(tmp_path)
    _write(folder / "metadata" / "v-7-mp4.json", {"file_name": "v-7-mp4.png", "type": "frame", "metadata": {}})
    with pytest.raises(ReadError, match=r"v-7-mp4\.json#/file_name: frame number '7' has 1 digits, expected 3 "
                                        r"for a video of 200 frames"):
        annobridge.load(folder, "lightly", {"frames": "v.mp4=200"})
    _write(folder / "metadata" / "v-010-mp4.json", {"file_name": "v-010-mp4.png", "type": "frame", "metadata": {}})
    with pytest.raises(ReadError, match=r"padded to 1 digits but 'v-010-mp4\.png' of the same video uses 3"):
        annobridge.load(folder, "lightly")


def test_task_without_schema_names_tasks_json(tmp_path: Path) -> None:
    folder = tmp_path / ".lightly"
    _write(folder / "predictions" / "tasks.json", ["det", "cls"])
    _write(folder / "predictions" / "det" / "schema.json", {"task_type": "object-detection", "categories": []})
    (folder / "predictions" / "cls").mkdir()
    with pytest.raises(ReadError, match=r"tasks\.json: task 'cls' listed in tasks\.json has no schema\.json"):
        annobridge.load(folder, "lightly")


def test_file_not_mirroring_file_name_and_unknown_category(tmp_path: Path) -> None:
    folder = _minimal(tmp_path)
    _write(folder / "metadata" / "sub" / "c.json", {"file_name": "c.png", "type": "image", "metadata": {}})
    with pytest.raises(ReadError, match=r"file is at 'sub/c\.json' but its file_name 'c\.png' puts it at 'c\.json'"):
        annobridge.load(folder, "lightly")
    folder2 = tmp_path / "two" / ".lightly"
    _write(folder2 / "predictions" / "tasks.json", ["det"])
    _write(folder2 / "predictions" / "det" / "schema.json",
           {"task_type": "object-detection", "categories": [{"id": 3, "name": "car"}]})
    _write(folder2 / "predictions" / "det" / "a.json",
           {"file_name": "a.png", "predictions": [{"category_id": 4, "bbox": [0, 0, 1, 1], "score": 0.5}]})
    with pytest.raises(ReadError, match=r"a\.json#/predictions/0/category_id: category_id 4 is not in the schema"):
        annobridge.load(folder2, "lightly")


def test_doc_examples_with_comments_are_refused_with_the_line() -> None:
    real = ROOT / "fixtures" / "lightly" / "docs-examples" / ".lightly"
    with pytest.raises(ReadError, match=r"tasks\.json:line 6: not valid JSON"):
        annobridge.load(real, "lightly")


def test_validate_lists_every_bad_file(tmp_path: Path) -> None:
    folder = _minimal(tmp_path)
    _write(folder / "metadata" / "b.json", {"type": "image", "metadata": {}})
    _write(folder / "metadata" / "c.json", {"file_name": "c.png", "type": "picture", "metadata": {}})
    problems = annobridge.validate(folder, "lightly")
    assert len(problems) == 2
    assert "b.json" in str(problems[0]) and "c.json" in str(problems[1])


# --------------------------------------------------------------------------- writing


def _box_item(ref: str, **kw: Any) -> DatasetItem:
    return DatasetItem(reference_id=ref, image_location=f"img/{ref}.jpg", **kw)


def test_mixed_types_across_items_is_an_error_naming_key_types_and_items(tmp_path: Path) -> None:
    items = [_box_item("a", metadata={"speed": "fast"}), _box_item("b", metadata={"speed": 3})]
    with pytest.raises(MetadataTypeError, match=r'"speed" is a string on item "a" but a number on item "b"'):
        annobridge.save(items, tmp_path / ".lightly", "lightly")
    assert not (tmp_path / ".lightly").exists()
    items = [_box_item("a", metadata={"flag": True}), _box_item("b", metadata={"flag": 1})]
    with pytest.raises(MetadataTypeError, match=r'"flag" is a boolean on item "a" but a number on item "b"'):
        annobridge.save(items, tmp_path / ".lightly", "lightly")


def test_ints_on_a_float_key_are_widened(tmp_path: Path) -> None:
    items = [_box_item("a", metadata={"t": 25}), _box_item("b", metadata={"t": 25.5})]
    annobridge.save(items, tmp_path / ".lightly", "lightly")
    md = json.loads((tmp_path / ".lightly" / "metadata" / "a.json").read_text())
    assert md == {"file_name": "a.jpg", "type": "image", "metadata": {"t": 25.0}}
    assert isinstance(md["metadata"]["t"], float)
    schema = json.loads((tmp_path / ".lightly" / "metadata" / "schema.json").read_text())
    assert schema == [{"name": "t", "path": "t", "defaultValue": 0.0, "valueDataType": "NUMERIC_FLOAT"}]


def test_user_schema_overrides_names_and_types_and_is_checked(tmp_path: Path) -> None:
    user = tmp_path / "user_schema.json"
    user.write_text(json.dumps([{"name": "Lane", "path": "lane", "defaultValue": -1,
                                 "valueDataType": "CATEGORICAL_INT"}]))
    items = [_box_item("a", metadata={"lane": 2}), _box_item("b", metadata={"lane": 3})]
    annobridge.save(items, tmp_path / "ok" / ".lightly", "lightly", {"schema_file": str(user)})
    schema = json.loads((tmp_path / "ok" / ".lightly" / "metadata" / "schema.json").read_text())
    assert schema == [{"name": "Lane", "path": "lane", "defaultValue": -1, "valueDataType": "CATEGORICAL_INT"}]
    bad = [_box_item("a", metadata={"lane": 2.5})]
    with pytest.raises(WriteError, match=r'"lane" is declared CATEGORICAL_INT but holds a float on item "a"'):
        annobridge.save(bad, tmp_path / "bad" / ".lightly", "lightly", {"schema_file": str(user)})


def test_boxes_are_clipped_with_a_count_and_ground_truth_needs_a_score(tmp_path: Path) -> None:
    item = _box_item("a", width=10, height=10,
                     annotations=[BoxAnnotation(label="car", x=1, y=1, width=2, height=2)],
                     predictions=[BoxAnnotation(label="car", x=-2, y=3, width=5, height=20, confidence=0.4),
                                  BoxAnnotation(label="car", x=1, y=1, width=1, height=1, confidence=0.5)])
    header = DatasetHeader(categories=[Category(id=7, name="car")])
    report = annobridge.save(Dataset(header=header, items=[item]), tmp_path / "one", "lightly")
    assert report.dropped["prediction:box:clipped"] == {
        "box clipped to x, y >= 0 and the image (Lightly refuses values outside)": 1}
    assert "pass --option score=S" in next(iter(report.dropped["box"]))
    preds = json.loads((tmp_path / "one" / "predictions" / "object_detection" / "a.json").read_text())
    assert preds["predictions"][0] == {"category_id": 7, "bbox": [0, 3, 3, 7], "score": 0.4}
    assert len(preds["predictions"]) == 2  # ground truth not written, and no silent 0.0
    report = annobridge.save(Dataset(header=header, items=[item]), tmp_path / "two", "lightly", {"score": 1.0})
    assert "box" not in report.dropped
    preds = json.loads((tmp_path / "two" / "predictions" / "object_detection" / "a.json").read_text())
    assert {"category_id": 7, "bbox": [1, 1, 2, 2], "score": 1.0} in preds["predictions"]


def test_probabilities_cover_every_header_category_in_id_order(tmp_path: Path) -> None:
    header = DatasetHeader(categories=[Category(id=9, name="tree"), Category(id=2, name="car"),
                                       Category(id=5, name="bird")])
    items = [_box_item("a", predictions=[BoxAnnotation(label="car", x=1, y=1, width=1, height=1, confidence=0.6,
                                                       class_pdf={"car": 0.6, "bird": 0.4})]),
             _box_item("b", predictions=[BoxAnnotation(label="tree", x=1, y=1, width=1, height=1, confidence=0.5)])]
    annobridge.save(Dataset(header=header, items=items), tmp_path / ".lightly", "lightly")
    task = tmp_path / ".lightly" / "predictions" / "object_detection"
    assert json.loads((task / "schema.json").read_text())["categories"] == [
        {"id": 2, "name": "car"}, {"id": 5, "name": "bird"}, {"id": 9, "name": "tree"}]
    assert json.loads((task / "a.json").read_text())["predictions"][0]["probabilities"] == [0.6, 0.4, 0.0]
    back = _items(annobridge.load(tmp_path / ".lightly", "lightly"))
    assert back["a"].predictions[0].class_pdf == {"car": 0.6, "bird": 0.4, "tree": 0.0}


def test_segmentation_of_another_size_than_the_image_is_refused(tmp_path: Path) -> None:
    item = _box_item("a", width=5, height=4, predictions=[SegmentationAnnotation(
        mask=IndexMask.from_array(np.ones((4, 4), dtype=np.uint8)), annotations=[
            Segment(label="car", index=1, attributes={"score": 0.5})])])
    with pytest.raises(WriteError, match=r'item "a".*segmentation mask is 4x4 but the image is 5x4'):
        annobridge.save([item], tmp_path / ".lightly", "lightly")


def test_prediction_without_confidence_is_an_error_naming_the_item(tmp_path: Path) -> None:
    item = _box_item("a", predictions=[BoxAnnotation(label="car", x=1, y=1, width=1, height=1)])
    with pytest.raises(WriteError, match=r'item "a".*box prediction has no confidence.*--option score=S'):
        annobridge.save([item], tmp_path / ".lightly", "lightly")


def test_coco_like_categories_with_gaps_survive(tmp_path: Path) -> None:
    header = DatasetHeader(categories=[Category(id=1, name="person"), Category(id=3, name="car"),
                                       Category(id=90, name="toothbrush")])
    items = [_box_item("000001", width=50, height=40, predictions=[
        BoxAnnotation(label="car", x=1.5, y=2, width=3, height=4, confidence=0.25),
        BoxAnnotation(label="toothbrush", x=0, y=0, width=50, height=40, confidence=1.0)])]
    annobridge.save(Dataset(header=header, items=items), tmp_path / ".lightly", "lightly")
    schema = json.loads((tmp_path / ".lightly" / "predictions" / "object_detection" / "schema.json").read_text())
    assert schema == {"task_type": "object-detection",
                      "categories": [{"id": 3, "name": "car"}, {"id": 90, "name": "toothbrush"}]}
    back = annobridge.load(tmp_path / ".lightly", "lightly")
    assert {(c.id, c.name) for c in back.header.categories} == {(3, "car"), (90, "toothbrush")}
    assert _preds(back.items[0]) == _preds(items[0])


def test_all_prediction_kinds_round_trip_with_images(tmp_path: Path) -> None:
    Image.new("RGB", (10, 8)).save(tmp_path / "a.png")
    seg = (np.arange(80).reshape(8, 10) % 3).astype(np.uint32)
    item = DatasetItem(reference_id="a", image_location=str(tmp_path / "a.png"), width=10, height=8, predictions=[
        BoxAnnotation(label="car", x=1, y=2, width=3, height=4, confidence=0.5, class_pdf={"car": 0.75, "bird": 0.25}),
        CategoryAnnotation(label="bird", confidence=0.9),
        SegmentationAnnotation(mask=IndexMask.from_array(seg), annotations=[
            Segment(label="car", index=1, attributes={"score": 0.4}),
            Segment(label="bird", index=2, attributes={"score": 0.6})]),
        ObjectMaskAnnotation.from_array(np.eye(8, 10, dtype=np.uint8), label="car", confidence=0.2),
        KeypointsAnnotation(label="person", keypoints=[1, 2, 2, 0, 0, 0, 3.5, 4, 2], names=["a", "b", "c"],
                            skeleton=[(0, 2)], confidence=0.3)])
    header = DatasetHeader(categories=[Category(id=2, name="car"), Category(id=4, name="bird"),
                                       Category(id=6, name="person", keypoints=["a", "b", "c"], skeleton=[(0, 2)])])
    report = annobridge.save(Dataset(header=header, items=[item]), tmp_path / ".lightly", "lightly",
                             {"input": str(tmp_path)})
    assert report.dropped == {}, report.summary()
    kp_schema = json.loads((tmp_path / ".lightly/predictions/keypoint_detection/schema.json").read_text())
    assert kp_schema["categories"] == [{"id": 6, "name": "person", "keypointNames": ["a", "b", "c"],
                                        "keypointSkeleton": [[0, 2]]}]
    back = annobridge.load(tmp_path / ".lightly", "lightly", {"input": str(tmp_path)})
    got = back.items[0]
    assert (got.width, got.height) == (10, 8)
    assert _preds(got) == _preds(item)
    kp = next(p for p in got.predictions if p.type == "keypoints")
    assert kp.skeleton == [(0, 2)] and kp.attributes["keypoint_scores"] == [1.0, 0.0, 1.0]


# --------------------------------------------------------------------------- hypothesis round trips

KEYS = ["weather", "speed", "site", "night", "lane"]


@st.composite
def metadata_datasets(draw: st.DrawFn) -> tuple[Dataset, dict[str, int]]:
    kinds = {k: draw(st.sampled_from(["int", "float", "str", "bool", "nested", "list"]))
             for k in draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=4))}

    def value(kind: str) -> Any:
        if kind == "int":
            return draw(st.integers(-1000, 1000))
        if kind == "float":
            return draw(st.integers(-10000, 10000).map(lambda v: v / 100 + 0.005))
        if kind == "str":
            return draw(st.sampled_from(["rain", "a b", "é", "x.y"]))
        if kind == "bool":
            return draw(st.booleans())
        if kind == "list":
            return draw(st.lists(st.integers(0, 5), max_size=3))
        return {"temperature": draw(st.integers(-30, 40)), "sky": {"cover": draw(st.sampled_from(["low", "high"]))}}

    refs = draw(st.lists(st.text("abcxyz019", min_size=1, max_size=5), min_size=1, max_size=5, unique=True))
    items = []
    for ref in refs:
        md = {k: value(kind) for k, kind in kinds.items()}  # every key on every item: defaults stay out
        preds = [BoxAnnotation(label=draw(st.sampled_from(["car", "bird"])), x=draw(st.integers(0, 20)),
                               y=draw(st.integers(0, 20)), width=draw(st.integers(0, 5)),
                               height=draw(st.integers(0, 5)), confidence=draw(st.integers(0, 100)) / 100,
                               annotation_id=f"p{k}")
                 for k in range(draw(st.integers(0, 3)))]
        items.append(DatasetItem(reference_id=f"d{len(items) % 2}/{ref}", image_location=f"{ref}.jpg",
                                 metadata=md, predictions=preds))
    scenes: dict[str, Scene] = {}
    frames: dict[str, int] = {}
    for v in range(draw(st.integers(0, 2))):
        n = draw(st.sampled_from([1, 9, 10, 11, 100, 101]))
        ref = f"vid{v}"
        frames[f"{ref}.mp4"] = n
        scenes[ref] = Scene(reference_id=ref, metadata={k: value(kind) for k, kind in kinds.items()})
        for idx in sorted(draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=3))):
            items.append(DatasetItem(reference_id=f"frame{v}-{idx}", metadata={k: value(kind) for k, kind in kinds.items()},
                                     scene=FrameRef(scene_reference_id=ref, index=idx)))
    header = DatasetHeader(categories=[Category(id=3, name="car"), Category(id=8, name="bird")], scenes=scenes)
    return Dataset(header=header, items=items), frames


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(metadata_datasets())
def test_round_trip_metadata_frames_and_boxes(drawn: tuple[Dataset, dict[str, int]]) -> None:
    dataset, frames = drawn
    frames_opt = ",".join(f"{k}={v}" for k, v in frames.items())
    with tempfile.TemporaryDirectory() as tmp:
        dst = Path(tmp) / ".lightly"
        report = annobridge.save(dataset, dst, "lightly", {"frames": frames_opt})
        assert report.dropped == {}, report.summary()
        back = annobridge.load(dst, "lightly", {"frames": frames_opt})
        want = {(i.scene.scene_reference_id, i.scene.index) if i.scene else i.reference_id: i for i in dataset.items}
        got = {(i.scene.scene_reference_id, i.scene.index) if i.scene else i.reference_id: i for i in back.items}
        assert sorted(got, key=repr) == sorted(want, key=repr)
        for key, item in want.items():
            assert got[key].metadata == item.metadata
            assert _preds(got[key]) == _preds(item)
        for ref, scene in dataset.header.scenes.items():
            assert back.header.scenes[ref].metadata == scene.metadata
            assert back.header.scenes[ref].attributes["n_frames"] == frames[f"{ref}.mp4"]
        for name in frames:  # padding follows the frame count
            for f in (dst / "metadata").glob(name[:-4] + "-*-mp4.json"):
                assert len(f.name.split("-")[-2]) == len(str(frames[name]))


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["str", "bool", "list"]), st.integers(0, 3))
def test_round_trip_refuses_mixed_types(other: str, position: int) -> None:
    values = {"str": "high", "bool": True, "list": [1]}
    items = [DatasetItem(reference_id=f"i{n}", metadata={"k": n}) for n in range(4)]
    items[position] = DatasetItem(reference_id=f"i{position}", metadata={"k": values[other]})
    with tempfile.TemporaryDirectory() as tmp:
        with pytest.raises(MetadataTypeError, match=r'"k" is .* on item "i\d" but .* on item "i\d"'):
            annobridge.save(items, Path(tmp) / ".lightly", "lightly")
        assert list(Path(tmp).iterdir()) == []


def test_lightly_task_writer_keeps_one_task_and_reports_the_rest(tmp_path: Path) -> None:
    item = _box_item("a", predictions=[BoxAnnotation(label="car", x=1, y=1, width=1, height=1, confidence=0.5),
                                       CategoryAnnotation(label="car", confidence=0.5)])
    report = annobridge.save([item], tmp_path / "predictions", "lightly-task")
    assert report.dropped == {"prediction:category": {"lightly-task holds one task (object-detection) only": 1}}
    schema = json.loads((tmp_path / "predictions" / "schema.json").read_text())
    assert schema == {"task_type": "object-detection", "categories": [{"id": 0, "name": "car"}]}
    back = annobridge.load(tmp_path / "predictions", "lightly-task")
    assert _preds(back.items[0]) == [("box", "car", (1, 1, 1, 1), 0.5, ())]


def test_detect_tells_the_two_folders_apart(registry: Any) -> None:
    assert registry.detect(DATASOURCE / ".lightly") == ["lightly"]
    assert registry.detect(LABELFORMAT) == ["lightly-task"]
    tmp = Path(tempfile.mkdtemp())
    try:
        shutil.copytree(DATASOURCE / ".lightly", tmp / ".lightly")
        with pytest.raises(ReadError, match="this is the datasource root, not the .lightly folder"):
            annobridge.load(tmp, "lightly")
    finally:
        shutil.rmtree(tmp)


# --------------------------------------------------------------------------- the shared generator


@pytest.mark.parametrize("fmt_name", ["lightly", "lightly-task"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_shared_generator_round_trip_with_an_input_datasource(fmt_name: str, data: st.DataObject) -> None:
    """The generic round trip, with what Lightly needs and cannot hold made explicit:

    * images live in an input datasource (``input`` option): Lightly files hold no image size;
    * predictions only (ground truth needs the ``score`` option and comes back as predictions);
    * keypoint visibility 1 is not representable (Lightly's third number is a score), so the
      keypoint kind is left out here and tested with visibilities 0/2 above;
    * ``fill-defaults=false``: Lightly fills schema defaults for keys missing on an item.
    """
    from annobridge.core.formats import Capabilities

    fmt = annobridge.core.plugins.get_registry().get(fmt_name)
    caps = Capabilities(prediction_types=fmt.capabilities.prediction_types - {"keypoints"},
                        item_metadata=fmt.capabilities.item_metadata)
    dataset = data.draw(datasets(caps, fmt_name))
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "bucket"
        images.mkdir()
        for item in dataset.items:
            Image.new("RGB", (item.width, item.height)).save(images / f"{item.reference_id}.png")
            item.image_location = str(images / f"{item.reference_id}.png")
        dst = Path(tmp) / "out"
        report = annobridge.save(dataset, dst, fmt_name, {"input": str(images)})
        assert report.dropped == {} or set(report.dropped) <= {"prediction:" + k for k in caps.prediction_types}
        read_opts = {"input": str(images), "fill_defaults": False} if fmt_name == "lightly" else {"images": str(images)}
        back = annobridge.load(dst, fmt_name, read_opts)
        if fmt_name == "lightly-task":  # one task per folder: compare the kept kind only
            kept = {a.type for i in back.items for a in i.predictions}
            for item in dataset.items:
                item.predictions = [p for p in item.predictions if p.type in kept or not kept]
            if not kept:
                for item in dataset.items:
                    item.predictions = []
        assert project(back, caps) == project(dataset, caps)


def test_between_the_two_lightly_formats_task_schemas_survive(tmp_path: Path) -> None:
    ds = annobridge.load(DATASOURCE / ".lightly", "lightly", DS_OPTIONS)
    report = annobridge.save(ds, tmp_path / "predictions", "lightly-task", {"task_type": "object-detection"})
    assert report.dropped["prediction:category"] and report.dropped["item metadata"]
    assert json.loads((tmp_path / "predictions" / "schema.json").read_text()) == {
        "task_type": "object-detection", "categories": [{"id": 1, "name": "ball"}, {"id": 5, "name": "player"}]}
    single = annobridge.load(LABELFORMAT, "lightly-task")
    annobridge.save(single, tmp_path / ".lightly", "lightly")
    assert json.loads((tmp_path / ".lightly/predictions/tasks.json").read_text()) == ["detection-task-name"]
    assert json.loads((tmp_path / ".lightly/predictions/detection-task-name/schema.json").read_text()) == \
        json.loads((LABELFORMAT / "schema.json").read_text())


def test_coco_results_to_lightly_and_back_keep_categories_boxes_and_scores(tmp_path: Path) -> None:
    src = ROOT / "fixtures" / "coco" / "results_bbox" / "instances_val2014_fakebbox100_results.json"
    report = annobridge.convert(src, tmp_path / ".lightly", src_format="coco", dst_format="lightly")
    assert report.dropped == {}, report.summary()
    schema = json.loads((tmp_path / ".lightly/predictions/object_detection/schema.json").read_text())
    ids = [c["id"] for c in schema["categories"]]
    original = json.loads(src.read_text())
    assert {r["category_id"] for r in original} <= set(ids)
    assert 12 not in ids and 90 in ids  # COCO's id gaps are kept, not renumbered
    back = annobridge.convert(tmp_path / ".lightly", tmp_path / "results.json", src_format="lightly",
                              dst_format="coco", write_options={"results": True})
    assert back.items_written == 99
    written = json.loads((tmp_path / "results.json").read_text())

    def key(r: dict[str, Any]) -> tuple:
        return (int(r["image_id"]), r["category_id"], tuple(r["bbox"]), r["score"])

    assert sorted(map(key, written)) == sorted(map(key, original))


def test_nucleus_to_lightly_to_nucleus_keeps_image_urls_and_names_files_by_the_image(tmp_path: Path) -> None:
    """The client-written Nucleus file: reference ids are image names (``airplane.jpeg``),
    images are URLs."""
    src = ROOT / "fixtures/nucleus/client-testdata/items.jsonl"
    annobridge.convert(src, tmp_path / ".lightly", dst_format="lightly")
    data = json.loads((tmp_path / ".lightly/metadata/airplane.json").read_text())
    assert data["file_name"] == "airplane.jpeg"  # image_1.png -> metadata/image_1.json
    assert not list((tmp_path / ".lightly/metadata").glob("*.jpeg.json"))
    annobridge.convert(tmp_path / ".lightly", tmp_path / "back.jsonl", dst_format="nucleus")
    want = {line["reference_id"]: line["image_url"] for line in map(json.loads, src.read_text().splitlines())
            if "image_url" in line}
    back = [json.loads(line) for line in (tmp_path / "back.jsonl").read_text().splitlines()]
    assert {line["reference_id"]: line["image_url"] for line in back if "image_url" in line} == want


def test_a_segmentation_task_we_wrote_reads_back_without_input_and_keeps_its_confidence(tmp_path: Path) -> None:
    mask = np.zeros((6, 8), dtype=np.uint8)
    mask[1:3, 2:5] = 1
    mask[4:, :] = 2
    seg = SegmentationAnnotation(mask=IndexMask.from_array(mask), confidence=0.75,
                                 annotations=[Segment(label="court", index=1), Segment(label="net", index=2)])
    item = DatasetItem(reference_id="frame.png", image_location="https://e.com/frame.png", width=8, height=6,
                       predictions=[seg])
    annobridge.save([item], tmp_path / ".lightly", "lightly")
    [back] = annobridge.load(tmp_path / ".lightly", "lightly").items  # no input option
    [pred] = back.predictions
    assert pred.confidence == 0.75 and all("score" not in s.attributes for s in pred.annotations)
    assert (back.reference_id, back.image_location, back.width, back.height) == (
        "frame.png", "https://e.com/frame.png", 8, 6)
    labels = {s.index: s.label for s in pred.annotations}
    got = pred.mask.load()
    assert {labels[v] for v in np.unique(got[mask == 1])} == {"court"}
    assert {labels[v] for v in np.unique(got[mask == 2])} == {"net"}


def test_schema_defaults_filled_on_reading_are_counted_in_the_report(tmp_path: Path) -> None:
    schema = json.loads((DATASOURCE / ".lightly/metadata/schema.json").read_text())
    sparse = annobridge.load(DATASOURCE / ".lightly", "lightly", {**DS_OPTIONS, "fill_defaults": "false"})
    owners = [i.metadata for i in sparse.items] + [s.metadata for s in sparse.header.scenes.values()]

    def missing(md: dict[str, Any], path: str) -> bool:
        for part in path.split("."):
            if not isinstance(md, dict) or md.get(part) is None:
                return True
            md = md[part]
        return False

    want = {e["path"]: sum(missing(md, e["path"]) for md in owners) for e in schema
            if e.get("defaultValue") is not None}
    want = {p: n for p, n in want.items() if n}
    report = annobridge.convert(DATASOURCE / ".lightly", tmp_path / "o.jsonl", src_format="lightly",
                                dst_format="jsonl", read_options=DS_OPTIONS)
    [note] = [n for n in report.notes if n.startswith("filled schema defaults")]
    assert note.endswith(", ".join(f"{p} {n}" for p, n in sorted(want.items())))
    assert f"for {sum(want.values())} values" in note


def test_video_level_metadata_applies_to_its_frames_and_is_not_repeated_on_writing(tmp_path: Path) -> None:
    """Lightly: a video-level file applies to all frames of the video (the frame's own value wins)."""
    options = {"frames": "clips/rally.mp4=12", "fill-defaults": "false"}
    ds = annobridge.load(DATASOURCE / ".lightly", "lightly", options)
    frames = {i.reference_id: i for i in ds.items if i.scene is not None}
    assert frames["clips/rally-03-mp4"].metadata == {"court": "HALL-A", "players": 3, "indoor": False}
    assert frames["clips/rally-11-mp4"].metadata == {"court": "HALL-A", "players": 2}
    assert ds.header.scenes["clips/rally"].metadata == {"court": "HALL-A", "players": 4}
    out = tmp_path / ".lightly"
    annobridge.convert(DATASOURCE / ".lightly", out, src_format="lightly", dst_format="lightly",
                       read_options=options)
    for rel in ("rally.json", "rally-03-mp4.json", "rally-11-mp4.json"):  # as they were: nothing copied down
        original = json.loads((DATASOURCE / ".lightly" / "metadata" / "clips" / rel).read_text())
        assert json.loads((out / "metadata" / "clips" / rel).read_text()) == original, rel
    back = annobridge.load(out, "lightly", options)
    assert {i.reference_id: i.metadata for i in back.items if i.scene is not None} == {
        ref: i.metadata for ref, i in frames.items()}
