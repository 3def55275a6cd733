"""COCO panoptic written in parts on workers (``Format.parts``, issue 14 point 5): each worker
writes the PNGs of its part and the driver the JSON. From a panoptic source each PNG is decoded
once, by the worker that reads it (its writer takes the ids the reader's check decoded); the
output is byte-identical to one process; what depends on the items before (a PNG name made up
for an item, a category made for a label the header lacks) is replayed by the driver, and a
part that chose otherwise makes the dataset be written again in one process."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageFile

import annobridge
from annobridge.core.errors import ReadError, WriteError
from tests.panoptic_helpers import make_panoptic
from tests.test_distributed import scheduler  # noqa: F401  (the two-worker LocalCluster fixture)
from tests.test_sharded import _same_report
from tests.test_storage import _put_tree, _remote_tree
from tests.test_workers import _tree

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")

WROTE = "they wrote their items"
AGAIN = "written again in one process: the parts the workers wrote differ"


@pytest.fixture
def decodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file that gets one line, the file name, for each PNG whose pixels Pillow decodes, in
    this process or in a worker forked from it (Dask's threads share this one)."""
    log = tmp_path / "decodes.log"
    load = ImageFile.ImageFile.load

    def counted(img: Any) -> Any:
        if img.tile and img.format == "PNG":  # pixels still to decode (a later load() returns at once)
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            try:
                os.write(fd, f"{Path(img.filename).name}\n".encode())
            finally:
                os.close(fd)
        return load(img)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counted)
    return log


def _decoded(log: Path) -> list[str]:
    lines = sorted(log.read_text(encoding="utf-8").splitlines()) if log.exists() else []
    log.unlink(missing_ok=True)
    return lines


@pytest.mark.parametrize(("segment_ids", "check"), [("auto", "true"), ("generate", "true"),
                                                     ("auto", "false")])  # unchecked: the writer decodes
def test_each_png_is_decoded_once_by_the_worker_that_reads_it(segment_ids: str, check: str, decodes: Path,
                                                              tmp_path: Path) -> None:
    src = make_panoptic(tmp_path / "pan", "val", images=9)
    pngs = sorted(p.name for p in (tmp_path / "pan" / "val").glob("*.png"))
    options = {"write_options": {"segment-ids": segment_ids}, "read_options": {"check-masks": check}}
    one = annobridge.convert(src, tmp_path / "one" / "out.json", "coco-panoptic", **options)
    assert _decoded(decodes) == pngs
    many = annobridge.convert(src, tmp_path / "two" / "out.json", "coco-panoptic", workers=2, **options)
    assert _decoded(decodes) == pngs  # once each, in the workers: the driver decodes none
    assert many.notes == ["read in 9 parts by the workers (coco-panoptic lists 9 units; they wrote their items)"]
    assert _tree(tmp_path / "one") == _tree(tmp_path / "two")
    _same_report(one, many)


def test_dask_workers_decode_each_png_once(scheduler: str, decodes: Path,  # noqa: F811
                                                 tmp_path: Path) -> None:
    """On Dask too (the LocalCluster fixture: two worker threads of this process) the PNGs are
    written by the workers that read them, and each is decoded once."""
    src = make_panoptic(tmp_path / "pan", "val", images=9)
    one = annobridge.convert(src, tmp_path / "one" / "out.json", "coco-panoptic")
    _decoded(decodes)
    many = annobridge.convert(src, tmp_path / "dask" / "out.json", "coco-panoptic", executor=scheduler, workers=2)
    assert _decoded(decodes) == sorted(p.name for p in (tmp_path / "pan" / "val").glob("*.png"))
    assert any(WROTE in n for n in many.notes), many.notes
    assert _tree(tmp_path / "one") == _tree(tmp_path / "dask")
    _same_report(one, many)


def test_a_bad_png_in_a_part_is_named_and_nothing_is_left(scheduler: str, tmp_path: Path) -> None:  # noqa: F811
    src = make_panoptic(tmp_path / "pan", "val", images=6)
    doc = json.loads(src.read_text(encoding="utf-8"))
    bad = tmp_path / "pan" / "val" / doc["annotations"][4]["file_name"]
    Image.open(bad).convert("L").save(bad)
    for executor in ("process", scheduler):
        with pytest.raises(ReadError, match="expected RGB") as err:
            annobridge.convert(src, tmp_path / "out" / "pan.json", "coco-panoptic", executor=executor, workers=2)
        assert err.value.item == str(doc["images"][4]["id"]) and bad.name in str(err.value)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["pan"]


def test_two_parts_writing_one_png_are_refused_by_the_driver(tmp_path: Path) -> None:
    """Each part is fine alone; the driver, joining them, finds the second item of the PNG."""
    src = make_panoptic(tmp_path / "pan", "val", images=6)
    doc = json.loads(src.read_text(encoding="utf-8"))
    doc["annotations"][5].update(file_name=doc["annotations"][1]["file_name"],
                                 segments_info=doc["annotations"][1]["segments_info"])
    (tmp_path / "pan" / "val" / f"{doc['images'][5]['id']}.png").unlink(missing_ok=True)
    src.write_text(json.dumps(doc), encoding="utf-8")
    for workers in (1, 2):
        with pytest.raises(WriteError, match="two items write the same PNG") as err:
            annobridge.convert(src, tmp_path / "out" / "pan.json", "coco-panoptic", workers=workers)
        assert err.value.item == str(doc["images"][5]["id"])
        assert sorted(p.name for p in tmp_path.iterdir()) == ["pan"]


def _nucleus_masks(tmp: Path, items: list[tuple[str, list[str]]]) -> Path:
    """A Nucleus file of one 8-bit index mask per item: (image URL, the labels of its segments)."""
    lines = []
    for n, (url, labels) in enumerate(items):
        mask = np.zeros((4, 6), np.uint8)
        for k in range(len(labels)):
            mask[k, :] = k + 1
        Image.fromarray(mask).save(tmp / f"m{n}.png")
        lines.append({"reference_id": f"img-{n}", "image_url": url, "width": 6, "height": 4,
                      "annotations": [{"type": "mask", "mask_url": f"m{n}.png", "reference_id": f"img-{n}",
                                       "annotations": [{"label": label, "index": k + 1}
                                                       for k, label in enumerate(labels)]}]})
    (tmp / "items.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return tmp / "items.jsonl"


@pytest.mark.parametrize(("items", "again"), [
    ([(f"https://example.com/{n}.jpg", ["car"]) for n in range(6)], False),  # each part makes "car" 1
    ([("https://example.com/0.jpg", ["car"]), ("https://example.com/1.jpg", ["bus", "car"])]
     + [(f"https://example.com/{n}.jpg", ["car"]) for n in range(2, 6)], True),  # a part made bus 1
    ([(f"https://example.com/{n}/frame.jpg", ["car"]) for n in range(6)], True),  # frame.png, frame_1.png, ...
])
def test_names_and_categories_made_in_parts_are_replayed_in_order(items: list[tuple[str, list[str]]], again: bool,
                                                                   tmp_path: Path) -> None:
    src = _nucleus_masks(tmp_path, items)
    one = annobridge.convert(src, tmp_path / "one" / "pan.json", "coco-panoptic")
    many = annobridge.convert(src, tmp_path / "two" / "pan.json", "coco-panoptic", workers=2)
    assert any(WROTE in n for n in many.notes) is not again, many.notes
    assert any(n.startswith(AGAIN) for n in many.notes) is again, many.notes
    assert "coco-panoptic: added category 'car' (not in the header)" in many.notes
    assert _tree(tmp_path / "one") == _tree(tmp_path / "two")
    _same_report(one, many)


def test_bucket_to_bucket_on_local_workers_decodes_each_png_once(s3: Any, decodes: Path, tmp_path: Path) -> None:
    """From a bucket, each worker fetches the PNGs of its part and writes them; the driver fetches none."""
    src = make_panoptic(tmp_path / "pan", "val", images=6)
    s3.mkdir("src")
    s3.mkdir("dst")
    _put_tree(s3, src.parent, "src/data")
    one = annobridge.convert("s3://src/data/val.json", "s3://dst/one/pan.json", "coco-panoptic")
    _decoded(decodes)
    many = annobridge.convert("s3://src/data/val.json", "s3://dst/two/pan.json", "coco-panoptic", workers=2)
    assert _decoded(decodes) == sorted(p.name for p in (tmp_path / "pan" / "val").glob("*.png"))
    assert "the workers fetched the files of their parts from s3://src/data" in many.notes
    assert any(WROTE in n for n in many.notes), many.notes
    assert _remote_tree(s3, "dst/two") == _remote_tree(s3, "dst/one")
    _same_report(one, many)
