"""Refusal by default is for data that cannot be represented (docs/refusals.md): what a reader
used to refuse but annobridge can hold is kept as given, listed as a warning in the report and
by ``validate``, and refused with the reader's ``strict=true`` option."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import annobridge
from annobridge.core.errors import ReadError
from tests.conftest import FIXTURES


def _warnings(report: annobridge.ConversionReport) -> list[str]:
    return [n for n in report.notes if n.startswith("warning: ")]


def _read(path: Path, fmt: str, options: dict[str, str] | None = None) -> tuple[annobridge.MaterializedDataset,
                                                                                  annobridge.ConversionReport]:
    from annobridge.converters import engine
    from annobridge.core.formats import Context

    ctx = Context()
    ds = engine.read_dataset(path, fmt, options, context=ctx)
    items = list(ds.items)
    return annobridge.MaterializedDataset(header=ds.header, items=items), ctx.report


def test_coco_image_size_as_whole_float(tmp_path: Path) -> None:
    data = json.loads((FIXTURES / "coco/detection/train.json").read_text())
    data["images"][0]["width"] = float(data["images"][0]["width"])  # 640.0, as some exporters write it
    data["images"][0]["height"] = float(data["images"][0]["height"])
    path = tmp_path / "train.json"
    path.write_text(json.dumps(data))
    ds, report = _read(path, "coco")
    assert (ds.items[0].width, ds.items[0].height) == (data["images"][0]["width"], data["images"][0]["height"])
    assert type(ds.items[0].width) is int
    [warning] = _warnings(report)
    assert "1 images give width or height as a whole float" in warning and "strict=true" in warning
    [found] = annobridge.validate(path, "coco", warnings=True)
    assert isinstance(found, annobridge.ValidationWarning)
    with pytest.raises(ReadError, match=r"#/images/0.*image height is \d+\.0, expected a non-negative integer"):
        annobridge.load(path, "coco", {"strict": "true"})
    data["images"][0]["width"] = 640.5  # not a size: still refused
    path.write_text(json.dumps(data))
    with pytest.raises(ReadError, match="image width is 640.5"):
        annobridge.load(path, "coco")


def test_kitti_file_with_ground_truth_and_scored_rows(tmp_path: Path) -> None:
    src = tmp_path / "labelformat"
    shutil.copytree(FIXTURES / "kitti/labelformat", src)
    label = src / "labels" / "a-weird Filename.asdf.txt"
    gt_rows = label.read_text().splitlines()
    label.write_text("\n".join([*gt_rows, "dog -1 -1 -10 100.0 120.0 140.0 160.0 -1 -1 -1 -1000 -1000 -1000 -10 0.87"]) + "\n")
    ds, report = _read(src / "labels", "kitti")
    [item] = [i for i in ds.items if i.predictions]
    assert [(p.label, p.confidence) for p in item.predictions] == [("dog", 0.87)]
    assert len(item.annotations) == len(gt_rows)
    [warning] = _warnings(report)
    assert f"line {len(gt_rows) + 1}: row is with a score (prediction)" in warning and "strict=true" in warning
    with pytest.raises(ReadError, match="a file holds ground truth or predictions, not both"):
        annobridge.load(src / "labels", "kitti", {"strict": "true"})


def test_yolo_class_count_that_differs_from_the_names(tmp_path: Path) -> None:
    src = tmp_path / "yolo"
    shutil.copytree(FIXTURES / "yolo/cvat-datumaro/yolov8_detection", src)
    (src / "data.yaml").write_text((src / "data.yaml").read_text() + "nc: 12\n")
    ds, report = _read(src / "data.yaml", "yolo")
    assert [c.name for c in ds.header.categories] == [f"label_{i}" for i in range(10)]
    [warning] = _warnings(report)
    assert "nc is 12 but names lists 10 classes" in warning and "as Ultralytics does" in warning
    with pytest.raises(ReadError, match="nc is 12 but names lists 10 classes"):
        annobridge.load(src / "data.yaml", "yolo", {"strict": "true"})
    proc = subprocess.run([sys.executable, "-m", "annobridge", "validate", str(src / "data.yaml"), "--to", "none"],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "warning: " in proc.stdout and "nc is 12" in proc.stdout, proc.stdout + proc.stderr


def test_nucleus_keypoints_prediction_without_a_skeleton(tmp_path: Path) -> None:
    line = {"reference_id": "img-1", "image_url": "s3://bucket/img-1.jpg", "metadata": {}, "annotations": [],
            "predictions": [{"type": "keypoints", "label": "person", "reference_id": "img-1", "annotation_id": "kp-1",
                             "confidence": 0.8, "geometry": {"keypoints": [{"x": 10, "y": 12, "visible": True},
                                                                           {"x": 14, "y": 12, "visible": True}],
                                                             "names": ["left_eye", "right_eye"]}}]}
    path = tmp_path / "items.jsonl"
    path.write_text(json.dumps(line) + "\n")
    ds, report = _read(path, "nucleus")
    [kp] = ds.items[0].predictions
    assert kp.names == ["left_eye", "right_eye"] and kp.skeleton is None and kp.confidence == 0.8
    [warning] = _warnings(report)
    assert "line 1, #/predictions/0/geometry/skeleton" in warning and 'item "img-1"' in warning
    with pytest.raises(ReadError, match="a keypoints prediction needs a skeleton"):
        annobridge.load(path, "nucleus", {"strict": "true"})
    annobridge.convert(path, tmp_path / "out.jsonl", dst_format="nucleus", write_options={"strict": "true"})
    written = json.loads((tmp_path / "out.jsonl").read_text())
    assert written["predictions"][0]["geometry"]["skeleton"] == []  # what the client needs


def test_pascal_voc_class_mask_value_beyond_the_class_list(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    src = tmp_path / "voc"
    shutil.copytree(FIXTURES / "pascal-voc/devkit", src)
    png = src / "SegmentationClass/2007_000032.png"
    with Image.open(png) as img:
        palette = img.getpalette()
        arr = np.array(img)
    arr[:4, :4] = 30  # the devkit lists 21 classes (0..20) and 255 as void
    out = Image.fromarray(arr, mode="P")
    out.putpalette(palette)
    out.save(png)
    ds, report = _read(src, "pascal-voc")
    [item] = [i for i in ds.items if i.reference_id == "2007_000032"]
    [seg] = [a for a in item.annotations if a.type == "segmentation"]
    assert 30 not in {s.index for s in seg.annotations} and (seg.mask.load()[:4, :4] == 30).all()
    [warning] = _warnings(report)
    assert "mask values [30] have no class (the class list has 21)" in warning and 'item "2007_000032"' in warning
    with pytest.raises(ReadError, match=r"mask value 30 has no class"):
        list(annobridge.load(src, "pascal-voc", {"strict": "true"}, stream=True).items)
