"""Interop: panoptic -> COCO instances checked with pycocotools (masks, loading, COCOeval), and
PQ (written here from the spec's matching rule) for round trips and a wrong prediction."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tests.panoptic_helpers import FIXTURES, make_panoptic, pq, read_png_ids, write_png_ids
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import annobridge
from annobridge.converters import engine
from annobridge.core.segmentation import consolidate
from annobridge.plugins.coco_panoptic import image_id_of


def coco_instances(dataset: annobridge.Dataset) -> dict:
    """A COCO instances dict built directly from the ObjectMaskAnnotations of ``dataset``."""
    images, annotations = [], []
    for item in dataset.items:
        iid = image_id_of(item)
        images.append({"id": iid, "file_name": item.image_location, "width": item.width,
                       "height": item.height})
        for ann in item.annotations:
            assert ann.type == "object_mask"
            annotations.append({
                "id": int(ann.annotation_id), "image_id": iid,
                "category_id": ann.attributes["category_id"],
                "segmentation": {"size": list(ann.size), "counts": ann.counts},
                "area": ann.attributes["area"], "bbox": ann.attributes["bbox"],
                "iscrowd": ann.attributes["iscrowd"],
            })
    cats = [{"id": c.id, "name": c.name, "supercategory": c.supercategory or ""}
            for c in dataset.header.categories]
    return {"images": images, "annotations": annotations, "categories": cats}


def _load_coco(doc: dict, tmp: Path) -> COCO:
    path = tmp / "instances.json"
    path.write_text(json.dumps(doc))
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


@pytest.mark.parametrize("things_only", [False, True])
def test_panoptic_to_instances_masks_equal_pan_eq_id(tmp_path: Path, things_only: bool) -> None:
    src = make_panoptic(tmp_path / "src", images=5, height=40, width=50, segments=(4, 14), seed=21)
    doc_src = json.loads(src.read_text())
    isthing = {c["id"]: c["isthing"] for c in doc_src["categories"]}
    ds = consolidate(annobridge.load(src), "instance", things_only=things_only).materialize()
    coco = _load_coco(coco_instances(ds), tmp_path)
    assert min(coco.getAnnIds()) == 1  # never id 0
    n = 0
    for ann_src in doc_src["annotations"]:
        pan = read_png_ids(src.with_suffix("") / ann_src["file_name"])
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[ann_src["image_id"]]))
        # one mask per thing segment, and (one stuff segment per category here) per stuff
        # category, in segments_info order
        expected = [s for s in ann_src["segments_info"] if isthing[s["category_id"]] or not things_only]
        assert len(anns) == len(expected)
        for ann, seg in zip(anns, expected):
            assert ann["category_id"] == seg["category_id"] and ann["iscrowd"] == seg["iscrowd"]
            assert np.array_equal(coco.annToMask(ann).astype(bool), pan == seg["id"])
            assert ann["area"] == seg["area"] and ann["bbox"] == seg["bbox"]
            n += 1
    assert n > 10


def test_cocoeval_of_instances_against_themselves_gives_ap_1(tmp_path: Path) -> None:
    src = make_panoptic(tmp_path / "src", images=6, height=48, width=64, segments=(5, 12), seed=5)
    ds = consolidate(annobridge.load(src), "instance").materialize()
    gt = _load_coco(coco_instances(ds), tmp_path)
    results = [{"image_id": a["image_id"], "category_id": a["category_id"],
                "segmentation": a["segmentation"], "score": 1.0} for a in gt.dataset["annotations"]]
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)  # AP @[.5:.95], all areas
    assert ev.stats[1] == pytest.approx(1.0)


def test_real_fixture_to_instances_loads_in_pycocotools(tmp_path: Path) -> None:
    ds = consolidate(annobridge.load(FIXTURES / "mapillary" / "panoptic_2020.json", options={"masks": "."}),
                     "instance").materialize()
    coco = _load_coco(coco_instances(ds), tmp_path)
    assert len(coco.getAnnIds()) == 5
    pan = read_png_ids(FIXTURES / "mapillary" / "1.png")
    ann = coco.loadAnns(coco.getAnnIds(imgIds=["1"]))[2]
    assert ann["iscrowd"] == 1 and np.array_equal(coco.annToMask(ann).astype(bool), pan == 3)
    assert ann["bbox"] != []  # the fixture's empty bbox is recomputed for the instance view


# --------------------------------------------------------------------------- PQ


def test_pq_is_1_for_a_round_trip(tmp_path: Path) -> None:
    src = make_panoptic(tmp_path / "src", images=4, height=30, width=40, segments=(3, 10), seed=9,
                        random_ids=True)
    out = tmp_path / "pred.json"
    engine.convert(src, out, dst_format="coco-panoptic", write_options={"segment-ids": "generate"})
    # generated ids differ from the source's, yet every segment matches with IoU 1
    assert json.loads(out.read_text())["annotations"] != json.loads(src.read_text())["annotations"]
    assert pq(src, src.with_suffix(""), out, out.with_suffix("")) == pytest.approx(1.0)


def test_pq_round_trip_through_instances_and_back(tmp_path: Path) -> None:
    src = make_panoptic(tmp_path / "src", images=3, height=30, width=40, segments=(3, 8), seed=10)
    inst = consolidate(annobridge.load(src), "instance").materialize()
    back = consolidate(inst, "panoptic")
    out = tmp_path / "back.json"
    annobridge.save(back, out, "coco-panoptic")
    assert pq(src, src.with_suffix(""), out, out.with_suffix("")) == pytest.approx(1.0)


def test_pq_of_a_hand_made_prediction_with_one_wrong_segment(tmp_path: Path) -> None:
    """GT: two persons (things) and grass (stuff); the prediction calls the second person a car.

    person: TP 1 (IoU 1), FN 1 -> PQ 1 / (1 + 0.5) = 2/3; car: FP 1 -> 0; grass: 1.
    PQ = (2/3 + 0 + 1) / 3 = 5/9.
    """
    cats = [{"id": 1, "name": "person", "supercategory": "person", "isthing": 1, "color": [220, 20, 60]},
            {"id": 3, "name": "car", "supercategory": "vehicle", "isthing": 1, "color": [0, 0, 142]},
            {"id": 184, "name": "grass-merged", "supercategory": "plant", "isthing": 0, "color": [0, 255, 0]}]
    pan = np.zeros((10, 10), dtype=np.int64)
    pan[:, :3], pan[:, 3:6], pan[:, 6:] = 3937500, 3937501, 65280
    for name, second in (("gt", 1), ("pred", 3)):
        write_png_ids(tmp_path / name / "a.png", pan)
        infos = [{"id": 3937500, "category_id": 1, "iscrowd": 0, "area": 30, "bbox": [0, 0, 3, 10]},
                 {"id": 3937501, "category_id": second, "iscrowd": 0, "area": 30, "bbox": [3, 0, 3, 10]},
                 {"id": 65280, "category_id": 184, "iscrowd": 0, "area": 40, "bbox": [6, 0, 4, 10]}]
        (tmp_path / f"{name}.json").write_text(json.dumps({
            "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
            "annotations": [{"image_id": 1, "file_name": "a.png", "segments_info": infos}],
            "categories": cats}))
    assert pq(tmp_path / "gt.json", tmp_path / "gt", tmp_path / "pred.json", tmp_path / "pred") \
        == pytest.approx(5 / 9)
    # and the hand-made prediction survives our own round trip unchanged in PQ
    engine.convert(tmp_path / "pred.json", tmp_path / "pred2.json", dst_format="coco-panoptic")
    assert pq(tmp_path / "gt.json", tmp_path / "gt", tmp_path / "pred2.json", tmp_path / "pred2") \
        == pytest.approx(5 / 9)
    shutil.rmtree(tmp_path / "pred2")
