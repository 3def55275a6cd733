"""Independent readers accept what annobridge writes: pycocotools ``COCOeval`` and datumaro's
``coco_instances`` importer on COCO written from KITTI, Nucleus and Lightly fixtures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import annobridge
from annobridge.core.model import Dataset
from tests.conftest import FIXTURES

LIGHTLY = FIXTURES / "lightly/datasource/bucket"
LIGHTLY_OPTIONS = {"input": str(LIGHTLY), "frames": "clips/rally.mp4=12"}


def _kitti() -> Dataset:
    return annobridge.load(FIXTURES / "kitti/openpcdet-sample", "kitti")


def _nucleus() -> Dataset:
    """The client-written Nucleus file without its image-level category annotations: a COCO
    record without geometry has no bbox to evaluate (the COCO derivation stage's business)."""
    ds = annobridge.load(FIXTURES / "nucleus/client-testdata/items.jsonl", "nucleus")
    for item in ds.items:
        item.annotations = [a for a in item.annotations if a.type not in ("category", "multicategory")]
        item.predictions = [a for a in item.predictions if a.type not in ("category", "multicategory")]
    # the lidar scene's camera frames reuse the images above: datumaro needs unique file names
    ds.items = [i for i in ds.items if i.image_location and i.scene is None]
    return ds


def _lightly() -> Dataset:
    """Lightly holds predictions only: they become the ground truth too, so that the
    evaluation has something to match."""
    ds = annobridge.load(LIGHTLY / ".lightly", "lightly", LIGHTLY_OPTIONS)
    for item in ds.items:
        item.annotations = [p.model_copy(update={"confidence": None}) for p in item.predictions
                            if p.type in ("box", "polygon", "object_mask")]
        item.predictions = [p for p in item.predictions if p.type in ("box", "polygon", "object_mask")]
    return ds


SOURCES = {"kitti": _kitti, "nucleus": _nucleus, "lightly": _lightly}


@pytest.fixture(scope="session")
def coco_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("coco-written")
    files = {}
    for name, make in SOURCES.items():
        files[name] = out / f"{name}.json"
        annobridge.save(make(), files[name], "coco")
    return files


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_coco_written_from_other_formats_has_integer_ids_and_keeps_the_reference_ids(
        coco_files: dict[str, Path], name: str) -> None:
    data = json.loads(coco_files[name].read_text())
    assert data["images"] and data["annotations"]
    for key in ("images", "annotations", "categories"):
        assert all(type(r["id"]) is int for r in data[key]), key
    refs = {i.reference_id for i in SOURCES[name]().items}
    assert {img.get("annobridge_reference_id", str(img["id"])) for img in data["images"]} == refs
    # the round trip restores the reference ids (and the ids COCO gave the images stay put)
    back = annobridge.load(coco_files[name], "coco")
    assert {i.reference_id for i in back.items} == refs
    again = coco_files[name].parent / f"{name}-again.json"
    annobridge.save(back, again, "coco", overwrite=True)
    assert json.loads(again.read_text())["images"] == data["images"]


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_cocoeval_runs_on_coco_written_from_other_formats(coco_files: dict[str, Path], name: str) -> None:
    gt = COCO(str(coco_files[name]))
    # the ground truth, given back as detections, must match itself perfectly
    detections: list[dict[str, Any]] = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
        for a in gt.dataset["annotations"]]
    evaluation = COCOeval(gt, gt.loadRes(detections), "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)  # AP@[.5:.95]
    data = json.loads(coco_files[name].read_text())
    # our own predictions list refers to the same image and category ids (loadRes checks)
    preds = [p for p in data.get("annobridge_predictions", []) if "bbox" in p]
    if preds:
        COCOeval(gt, gt.loadRes(preds), "bbox").evaluate()


@pytest.fixture(scope="session")
def datumaro_coco() -> Any:
    import datumaro  # in the `test` extra; slow to import, so once per session

    return datumaro


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_datumaro_imports_our_coco_instances(coco_files: dict[str, Path], datumaro_coco: Any,
                                            tmp_path: Path, name: str) -> None:
    (tmp_path / "annotations").mkdir()
    (tmp_path / "images").mkdir()  # datumaro wants the COCO layout, images or not
    shutil.copy(coco_files[name], tmp_path / "annotations/instances_default.json")
    dataset = datumaro_coco.Dataset.import_from(str(tmp_path), "coco_instances")
    data = json.loads(coco_files[name].read_text())
    assert len(dataset) == len(data["images"])
    got = sum(len(item.annotations) for item in dataset)
    assert got >= len(data["annotations"])  # polygons come with their box, boxes alone
    assert {item.attributes["id"] for item in dataset} == {img["id"] for img in data["images"]}


def test_absolute_image_locations_become_relative_file_names_and_come_back(coco_files: dict[str, Path]) -> None:
    """KITTI items hold absolute image paths: file_name is relative to the source folder, the
    location kept under annobridge_image_location and restored on reading."""
    data = json.loads(coco_files["kitti"].read_text())
    kitti = {i.reference_id: i.image_location for i in _kitti().items}
    assert all(Path(loc).is_absolute() for loc in kitti.values() if loc)  # what makes this case
    root = (FIXTURES / "kitti/openpcdet-sample").resolve()
    for img in data["images"]:
        if kitti[img["annobridge_reference_id"]] is None:
            continue
        assert not Path(img["file_name"]).is_absolute() and ".." not in img["file_name"]
        assert img["annobridge_image_location"] == str(root / img["file_name"])
    back = annobridge.load(coco_files["kitti"], "coco")
    located = {ref: loc for ref, loc in kitti.items() if loc}
    assert located and {i.reference_id: i.image_location for i in back.items if i.reference_id in located} == located


# --------------------------------------------------------------------------- the Nucleus client


def _client_accepts(path: Path) -> int:
    """Parse every line of a Nucleus file with the real client, as an upload would; returns
    the number of lines."""
    from nucleus import prediction as nucleus_prediction
    from nucleus.annotation import Annotation
    from nucleus.dataset_item import DatasetItem as NucleusItem
    from nucleus.scene import LidarScene, VideoScene

    lines = [json.loads(t) for t in path.read_text(encoding="utf-8").splitlines() if t.strip()]
    for line in lines:
        if "frames" in line:
            lidar = any("reference_id" not in f for f in line["frames"])
            scene = (LidarScene if lidar else VideoScene).from_json(line)
            scene.validate()
            continue
        item = NucleusItem.from_json(dict(line))
        assert item.image_location or item.pointcloud_location, line["reference_id"]
        for p in line.get("annotations", []):
            Annotation.from_json(p)
        for p in line.get("predictions", []):
            nucleus_prediction.from_json(p)
    return len(lines)


NUCLEUS_SOURCES = [
    ("kitti", FIXTURES / "kitti/mmdet3d-results", None),  # a results folder: no images
    ("kitti", FIXTURES / "kitti/openpcdet-sample", None),
    ("coco", FIXTURES / "coco/datumaro_instances/instances_train.json", None),
    ("lightly", LIGHTLY / ".lightly", LIGHTLY_OPTIONS),
]


@pytest.mark.parametrize(("fmt", "src", "options"), NUCLEUS_SOURCES, ids=lambda v: getattr(v, "name", None))
def test_the_nucleus_client_accepts_every_line_we_write(fmt: str, src: Path, options: Any, tmp_path: Path) -> None:
    out = tmp_path / "n.jsonl"
    report = annobridge.convert(src, out, src_format=fmt, dst_format="nucleus", read_options=options,
                                write_options={"incomplete-lidar-scenes": "true"} if fmt == "kitti" else None)
    n = _client_accepts(out)
    source = annobridge.load(src, fmt, options)
    unplaced = [i for i in source.items
                if i.scene is None and i.image_location is None and i.pointcloud_location is None]
    # an item the client would refuse is left out and reported, with its annotations
    assert sum(report.dropped.get("item", {}).values()) == len(unplaced)
    assert report.items_written == len(source.items) - len(unplaced)
    for kind in {("prediction:" if p else "") + a.type for i in unplaced
                 for p, anns in ((False, i.annotations), (True, i.predictions)) for a in anns}:
        assert report.written[kind] < report.read[kind]
    assert n > 0 or unplaced


def test_a_video_scene_without_frame_rate_passes_the_client_validate(tmp_path: Path) -> None:
    from nucleus.scene import VideoScene

    from annobridge.core.model import DatasetHeader, DatasetItem, FrameRef, Scene

    items = [DatasetItem(reference_id=f"f{i}", image_location=f"https://e.com/{i}.jpg",
                         scene=FrameRef(scene_reference_id="vid", index=i)) for i in range(3)]
    header = DatasetHeader(scenes={"vid": Scene(reference_id="vid")})
    report = annobridge.save(Dataset(header, items), tmp_path / "v.jsonl", "nucleus",
                             {"frame-rate": "25"})
    line = json.loads((tmp_path / "v.jsonl").read_text())
    assert line["frame_rate"] == 25 and any("frame_rate=25" in n for n in report.notes)
    VideoScene.from_json(line).validate()


def test_the_nucleus_writer_refuses_a_metadata_key_with_two_types(tmp_path: Path) -> None:
    from annobridge.core.errors import MetadataTypeError
    from annobridge.core.model import DatasetItem

    items = [DatasetItem(reference_id="a", image_location="a.png", metadata={"speed": 3}),
             DatasetItem(reference_id="b", image_location="b.png", metadata={"speed": "fast"})]
    with pytest.raises(MetadataTypeError, match='"speed"'):
        annobridge.save(items, tmp_path / "n.jsonl", "nucleus")
    assert not (tmp_path / "n.jsonl").exists()


def test_coco_written_from_the_nucleus_all_kinds_fixture_reads_back(tmp_path: Path) -> None:
    """Its keypoints prediction names 2 of the category's 3 points: written as 2 points, read
    back as the first names (a warning), refused only with strict=true."""
    src = FIXTURES / "nucleus/all-kinds/items.jsonl"
    annobridge.convert(src, tmp_path / "c.json", dst_format="coco")
    COCO(str(tmp_path / "c.json"))
    kps = [p for i in annobridge.load(src, "nucleus").items for p in i.predictions if p.type == "keypoints"]
    back = [p for i in annobridge.load(tmp_path / "c.json", "coco").items for p in i.predictions
            if p.type == "keypoints"]
    assert [(k.names, k.keypoints) for k in back] == [(k.names, k.keypoints) for k in kps]
    assert annobridge.validate(tmp_path / "c.json", "coco", {"strict": "true"})


def test_the_nucleus_client_accepts_panoptic_masks_renumbered_by_default(tmp_path: Path) -> None:
    """Panoptic colour ids (far above 255) become 8-bit Nucleus indices without an option; the
    client reads every line, and validate warns of the void pixels no segment labels."""
    from PIL import Image

    from tests.panoptic_helpers import make_panoptic

    src = make_panoptic(tmp_path / "src", "val", images=2)  # with void pixels (id 0)
    out = tmp_path / "n.jsonl"
    report = annobridge.convert(src, out, dst_format="nucleus")
    assert report.converted == {"segmentation -> segmentation renumbered 1..n": 2} and report.lossless
    assert _client_accepts(out) == 2
    for line in map(json.loads, out.read_text().splitlines()):
        [mask] = line["annotations"]
        with Image.open(tmp_path / mask["mask_url"]) as png:
            assert png.mode == "L"
        assert [s["index"] for s in mask["annotations"]] == list(range(1, len(mask["annotations"]) + 1))
    found = annobridge.validate(out, "nucleus", warnings=True)
    assert found and all(isinstance(w, annobridge.ValidationWarning) for w in found)
    assert all("pixel values [0] have no segment" in str(w) for w in found)
