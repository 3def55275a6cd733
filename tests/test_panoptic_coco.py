"""panoptic -> COCO instances through the coco plugin (``convert --to coco --task instance``),
checked with pycocotools: masks equal ``pan == id``, COCO() loads, COCOeval self AP = 1.0."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from annobridge.converters import engine
from tests.panoptic_helpers import FIXTURES, make_panoptic, read_png_ids


def _coco(path: Path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


@pytest.mark.parametrize("workers", [1, 2])
def test_panoptic_to_coco_instances_masks_equal_pan_eq_id(tmp_path: Path, workers: int) -> None:
    src = make_panoptic(tmp_path / "src", images=5, height=40, width=50, segments=(4, 14), seed=31)
    out = tmp_path / "instances.json"
    report = engine.convert(src, out, dst_format="coco", task="instance", workers=workers)
    assert report.items_written == 5
    coco = _coco(out)
    doc_src = json.loads(src.read_text())
    assert min(coco.getAnnIds()) == 1
    n = 0
    for ann_src in doc_src["annotations"]:
        pan = read_png_ids(src.with_suffix("") / ann_src["file_name"])
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[ann_src["image_id"]]))
        assert len(anns) == len(ann_src["segments_info"])  # one stuff segment per category here
        for ann, seg in zip(anns, ann_src["segments_info"]):
            assert ann["category_id"] == seg["category_id"] and ann["iscrowd"] == seg["iscrowd"]
            assert np.array_equal(coco.annToMask(ann).astype(bool), pan == seg["id"])
            assert ann["area"] == seg["area"] and ann["bbox"] == seg["bbox"]
            n += 1
    assert n > 10


def test_coco_output_evaluates_to_ap_1_against_itself(tmp_path: Path) -> None:
    src = make_panoptic(tmp_path / "src", images=6, height=48, width=64, segments=(5, 12), seed=32)
    out = tmp_path / "instances.json"
    engine.convert(src, out, dst_format="coco", task="instance")
    gt = _coco(out)
    results = [{"image_id": a["image_id"], "category_id": a["category_id"],
                "segmentation": a["segmentation"], "score": 1.0} for a in gt.dataset["annotations"]]
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(results), "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)


def test_cli_things_only_to_coco(tmp_path: Path) -> None:
    src = FIXTURES / "mapillary" / "panoptic_2020.json"
    out = tmp_path / "things.json"
    r = subprocess.run([sys.executable, "-m", "annobridge", "convert", str(src), str(out), "--to", "coco",
                        "--task", "instance", "--things-only", "-o", "masks=."], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    coco = _coco(out)
    assert len(coco.getAnnIds()) == 5  # every Mapillary category is a thing
    pan = read_png_ids(FIXTURES / "mapillary" / "0.png")
    (crowd,) = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=["0"])) if a["iscrowd"] == 1]
    assert np.array_equal(coco.annToMask(crowd).astype(bool), pan == 1)
