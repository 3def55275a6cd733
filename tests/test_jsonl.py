"""The canonical JSONL format on its fixture: every kind, read with known values."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

import annobridge
from annobridge import LidarPoint
from annobridge.core.pointclouds import lidar_points, load_points
from tests.conftest import FIXTURES

CASE = FIXTURES / "jsonl/all-kinds"


def test_fixture_reads_every_kind_with_known_values() -> None:
    ds = annobridge.load(CASE / "dataset.jsonl")
    frame, cloud = ds.items
    kinds = sorted(a.type for a in frame.annotations)
    assert kinds == ["box", "category", "cuboid", "keypoints", "line", "multicategory",
                     "object_mask", "polygon", "segmentation"]
    seg = next(a for a in frame.annotations if a.type == "segmentation")
    mask = seg.mask.load()
    assert mask.dtype == np.uint32 and mask.shape == (6, 8)
    assert mask[0, 0] == 1 and mask[5, 7] == 300 and int((mask == 300).sum()) == 12
    assert frame.image_location == "frame0.png"  # kept as written: relative to the source's root
    assert load_points(CASE / cloud.pointcloud_location).tolist() == [[1, 2, 3, 0.5], [4, 5, 6, 0.25]]
    assert lidar_points(CASE / cloud.pointcloud_location)[1] == LidarPoint(x=4, y=5, z=6, i=0.25)
    assert ds.header.scenes["drive1"].annotations[0].label == "urban"
    assert frame.scene.sensor == "cam_front" and cloud.scene.sensor == "lidar"
    kp = next(a for a in frame.annotations if a.type == "keypoints")
    assert [p.visibility for p in kp.points] == [2, 1]
    assert frame.predictions[0].class_pdf == {"car": 0.87, "van": 0.13}
    assert frame.metadata["night"] is False and frame.metadata["weather"]["temperature"] == 21


def test_fixture_round_trips_byte_for_byte(tmp_path: Path) -> None:
    case = tmp_path / "case"
    shutil.copytree(CASE, case)
    ds = annobridge.load(case / "dataset.jsonl", stream=True)
    annobridge.save(ds, case / "again.jsonl", "jsonl")
    again = (case / "again.jsonl").read_text().replace("again.masks/", "dataset.masks/")
    assert again == (CASE / "dataset.jsonl").read_text()
    assert (case / "again.masks/2-8.png").read_bytes() == (CASE / "dataset.masks/2-8.png").read_bytes()
