"""``validate`` finds what ``convert`` would fail on: the dataset is also written, into a
temporary folder, by its own format's writer (or the one ``--to`` names)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import annobridge
from annobridge.core.errors import MetadataTypeError
from tests.conftest import FIXTURES

BUCKET = FIXTURES / "lightly/datasource/bucket"


def test_a_lightly_folder_whose_files_disagree_on_a_type_is_invalid(tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    shutil.copytree(BUCKET, bucket)
    options = {"input": str(bucket), "frames": "clips/rally.mp4=12"}
    assert annobridge.validate(bucket / ".lightly", "lightly", options) == []
    for rel, value in (("HALL-A/g101/cam1_0001.json", "north"), ("HALL-B/g202/cam2_0002.json", 3)):
        path = bucket / ".lightly/metadata" / rel
        data = json.loads(path.read_text())
        data["metadata"]["camera"] = value  # not in schema.json: the reader cannot tell
        path.write_text(json.dumps(data))
    [problem] = annobridge.validate(bucket / ".lightly", "lightly", options)
    assert isinstance(problem, MetadataTypeError) and '"camera"' in str(problem)
    with pytest.raises(MetadataTypeError):  # what convert says too
        annobridge.convert(bucket / ".lightly", tmp_path / "out", src_format="lightly", dst_format="lightly",
                           read_options=options)
    # reading alone finds nothing; another writer may accept it
    assert annobridge.validate(bucket / ".lightly", "lightly", options, write_to="") == []
    assert annobridge.validate(bucket / ".lightly", "lightly", options, write_to="coco") == []


MASKS = {
    "size": (np.zeros((5, 5), np.uint8), "5x5"),  # the reader checks the PNG header already
    "depth": (np.array([[0, 1, 300], [1, 2, 0]], np.uint16), "does not fit in 8 bits"),
}


@pytest.mark.parametrize("case", sorted(MASKS))
def test_nucleus_mask_problems_are_found_by_validate(case: str, tmp_path: Path) -> None:
    array, message = MASKS[case]
    Image.fromarray(array).save(tmp_path / "m.png")
    line = {"reference_id": "i", "image_url": "https://e.com/i.png", "width": 3, "height": 2, "metadata": {},
            "annotations": [{"type": "segmentation", "mask_url": "m.png", "reference_id": "i",
                             "annotations": [{"label": "a", "index": 1}, {"label": "b", "index": 2}]}]}
    (tmp_path / "n.jsonl").write_text(json.dumps(line) + "\n")
    proc = subprocess.run([sys.executable, "-m", "annobridge", "validate", str(tmp_path / "n.jsonl")],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and message in proc.stdout, proc.stdout + proc.stderr
    proc = subprocess.run([sys.executable, "-m", "annobridge", "validate", str(tmp_path / "n.jsonl"), "--to", "none"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_panoptic_field_types_are_found_by_validate(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "coco-panoptic/datumaro", tmp_path / "p")
    path = tmp_path / "p/panoptic_train.json"
    data = json.loads(path.read_text())
    assert annobridge.validate(path, "coco-panoptic") == []
    for info in data["annotations"][0]["segments_info"]:
        info["bbox"] = "x"
    path.write_text(json.dumps(data))
    problems = "\n".join(map(str, annobridge.validate(path, "coco-panoptic")))
    assert "segments_info/0 (item \"5\"): segment 7: bbox is 'x', expected 4 numbers" in problems
    data["categories"][0]["isthing"] = "yes"
    path.write_text(json.dumps(data))
    problems = "\n".join(map(str, annobridge.validate(path, "coco-panoptic")))
    assert "#/categories/0/isthing: isthing is 'yes', expected 0 or 1" in problems
