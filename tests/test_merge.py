"""Merging datasets and updating scene metadata with the Nucleus update rules, on the
client-written Nucleus fixture (scaleapi/nucleus-python-client test data, MIT)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from nucleus.annotation import Annotation as NucleusAnnotation
from nucleus.dataset_item import DatasetItem as NucleusItem

import annobridge
from annobridge import BoxAnnotation, DatasetItem, IndexMask, Segment, SegmentationAnnotation
from annobridge.core.errors import ReadError
from tests.conftest import FIXTURES

SRC = FIXTURES / "nucleus/client-testdata/items.jsonl"


def _incoming(base: annobridge.Dataset) -> annobridge.Dataset:
    """airplane.jpeg again: new metadata, its box (same annotation id) moved, a new box, a
    new ground-truth segmentation; and a new item."""
    first = base.items[0]
    box = next(a for a in first.annotations if a.type == "box")
    mask = np.zeros((4, 4), np.uint8)
    mask[1:, 1:] = 1
    again = DatasetItem(
        reference_id=first.reference_id, image_location=first.image_location, metadata={"weather": "rain"},
        annotations=[box.model_copy(update={"x": 5}),
                     BoxAnnotation(label="new", x=1, y=1, width=2, height=2, annotation_id="fresh"),
                     SegmentationAnnotation(mask=IndexMask.from_array(mask), annotation_id="seg-2",
                                            annotations=[Segment(label="grass", index=1)])])
    extra = DatasetItem(reference_id="extra.png", image_location="https://e.com/extra.png")
    return annobridge.Dataset(items=[again, extra])


def test_merge_follows_the_nucleus_update_rules() -> None:
    base = annobridge.load(SRC, "nucleus")
    base.items[0].metadata = {"old": 1}
    before = base.items[0].model_copy(deep=True)
    incoming = _incoming(base)
    merged = annobridge.merge([base, incoming], update=True)
    assert base.items[0] == before  # inputs untouched
    item = merged.items[0]
    assert item.metadata == {"weather": "rain"}  # replaced: "old" is deleted
    boxes = {a.annotation_id: a for a in item.annotations if a.type == "box"}
    assert boxes["[Pytest] Box Annotation Annotation Id0"].x == 5 and "fresh" in boxes  # upserted by id
    [seg] = [a for a in item.annotations if a.type == "segmentation"]
    assert seg.annotation_id == "seg-2"  # one ground-truth segmentation: the new one
    assert len(item.annotations) == len(before.annotations) + 1
    assert [i.reference_id for i in merged.items][-1] == "extra.png"
    # without update the annotations are added: the same annotation id twice is refused
    with pytest.raises(annobridge.AnnobridgeError, match="annotation ids must be unique"):
        annobridge.merge([base, incoming])


def test_cli_merge_update_writes_what_the_nucleus_client_reads(tmp_path: Path) -> None:
    base = annobridge.load(SRC, "nucleus")
    annobridge.save(_incoming(base), tmp_path / "in.jsonl", "nucleus")
    proc = subprocess.run([sys.executable, "-m", "annobridge", "merge", str(SRC), str(tmp_path / "in.jsonl"),
                           str(tmp_path / "out.jsonl"), "--to", "nucleus", "--update"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(t) for t in (tmp_path / "out.jsonl").read_text().splitlines()]
    first = next(line for line in lines if line.get("reference_id") == "airplane.jpeg")
    assert NucleusItem.from_json(dict(first)).metadata == {"weather": "rain"}
    for p in first["annotations"]:
        NucleusAnnotation.from_json(p)
    ids = [p.get("annotation_id") for p in first["annotations"]]
    assert "fresh" in ids and "seg-2" in ids and "[Pytest] Segmentation Annotation Id0" not in ids


def test_scene_metadata_import_and_update(tmp_path: Path) -> None:
    src = tmp_path / "items.jsonl"
    annobridge.convert(FIXTURES / "nucleus/all-kinds/items.jsonl", src, dst_format="nucleus")
    table = tmp_path / "scenes.csv"
    table.write_text("scene,weather\nscene-0,fog\n")
    proc = subprocess.run([sys.executable, "-m", "annobridge", "metadata", "import", str(src), "--from-csv",
                           str(table), "--key", "scene", "--scenes"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert annobridge.load(src, "nucleus").header.scenes["scene-0"].metadata == {"city": "karlsruhe",
                                                                                 "weather": "fog"}
    proc = subprocess.run([sys.executable, "-m", "annobridge", "metadata", "import", str(src), "--from-csv",
                           str(table), "--key", "scene", "--scenes", "--replace"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    header = annobridge.load(src, "nucleus").header
    assert header.scenes["scene-0"].metadata == {"weather": "fog"}  # update=True: absent keys deleted
    assert annobridge.update_scene_metadata(header, {"scene-0": {"speed": 3}}) == ["scene-0"]
    assert header.scenes["scene-0"].metadata == {"weather": "fog", "speed": 3}
    with pytest.raises(ReadError, match="no scene 'nope'"):
        annobridge.update_scene_metadata(header, {"nope": {}})
