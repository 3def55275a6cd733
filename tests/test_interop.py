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


# KITTI is not here: its items hold absolute image paths, which COCO writes as file_name and
# datumaro refuses as escaping the images folder (open: see the report of issue 9)
@pytest.mark.parametrize("name", ["lightly", "nucleus"])
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
