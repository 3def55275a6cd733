"""A YOLO write whose parts differ (``PartsDiffer``) is written again in one process
(``converters/sharded.py`` ``_in_one_process``); from a remote source too, whose lead items the
driver read from a copy of their files that its lead part removed when it was done."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import annobridge
from tests.test_sharded import _same_report
from tests.test_storage import _put_tree, _remote_tree
from tests.test_workers import _tree

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")


def _unnamed_yolo(tmp: Path, names: bool = False) -> Path:
    """40 images and label files with no class names (``labels/`` + ``images/``): boxes of
    class 0 in the first 20, polygons of class 1 in the next 10, boxes of class 2 in the last.
    A part that meets class 1 first numbers it 0, where one process numbers it 1 (the parts
    differ), and its polygons decide the segment task. With ``names``, a ``classes.txt`` names
    them (the parts agree)."""
    root = tmp / "yolo"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    if names:
        (root / "classes.txt").write_text("car\nbus\nvan\n")
    for n in range(1, 41):
        Image.fromarray(np.full((8, 10, 3), n, np.uint8)).save(root / "images" / f"im{n:02d}.png")
        row = "1 0.1 0.1 0.3 0.1 0.3 0.5 0.1 0.5" if 20 < n <= 30 else f"{0 if n <= 20 else 2} 0.2 0.3 0.2 0.4"
        (root / "labels" / f"im{n:02d}.txt").write_text(row + "\n")
    return root


def test_parts_that_number_classes_otherwise_are_written_again_with_their_images(tmp_path: Path) -> None:
    src = _unnamed_yolo(tmp_path)
    one = annobridge.convert(src, tmp_path / "one" / "y", "yolo", write_options={"media": "copy"})
    many = annobridge.convert(src, tmp_path / "two" / "y", "yolo", write_options={"media": "copy"}, workers=2)
    assert any(n.startswith("written again in one process") for n in many.notes), many.notes
    assert _tree(tmp_path / "one") == _tree(tmp_path / "two")
    _same_report(one, many)


def test_a_remote_source_written_again_in_one_process_copies_every_image(s3: Any, tmp_path: Path) -> None:
    """The lead items (read by the driver from its lead part's copy of their files) are written
    again with the images the other items are: none is dropped as missing."""
    src = _unnamed_yolo(tmp_path)
    s3.mkdir("src")
    s3.mkdir("dst")
    _put_tree(s3, src, "src/data")
    options = {"media": "copy"}
    one = annobridge.convert(src, tmp_path / "one" / "y", "yolo", write_options=options)
    many = annobridge.convert("s3://src/data", "s3://dst/two/y", "yolo", write_options=options, workers=2)
    assert any(n.startswith("written again in one process") for n in many.notes), many.notes
    assert many.dropped == one.dropped == {}
    assert _remote_tree(s3, "dst/two") == _tree(tmp_path / "one")
    assert len([k for k in _remote_tree(s3, "dst/two") if k.startswith("y/images/")]) == 40


def test_the_note_counts_the_part_the_driver_wrote_apart(tmp_path: Path) -> None:
    """40 units in 14 shards of 2 or 3 (``sharded.chunks``): the driver writes the first (``Parts.lead``),
    the workers the other 13."""
    src = _unnamed_yolo(tmp_path, names=True)
    annobridge.convert(src, tmp_path / "one" / "y", "yolo")
    many = annobridge.convert(src, tmp_path / "two" / "y", "yolo", workers=2)
    assert "read in 13 parts by the workers and 1 by the driver (yolo lists 40 units; they wrote their items)" \
        in many.notes, many.notes
    assert not any("written again" in n for n in many.notes)
    assert _tree(tmp_path / "one") == _tree(tmp_path / "two")
    kitti = annobridge.convert(src, tmp_path / "kitti" / "k", "kitti", workers=2)  # no lead part
    assert "read in 14 parts by the workers (yolo lists 40 units; they wrote their items)" in kitti.notes
