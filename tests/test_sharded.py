"""Sharded conversion (converters/sharded.py): workers read their own part of a per-item source,
fit it and (KITTI) write it; the output equals one process's, byte for byte and in order, on
local forked workers, on a two-worker Dask LocalCluster, and from an S3 server."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

import annobridge
from annobridge.core.errors import ReadError
from tests.conftest import FIXTURES
from tests.kitti_synth import make_object_root
from tests.panoptic_helpers import make_panoptic
from tests.test_distributed import scheduler  # noqa: F401  (the two-worker LocalCluster fixture)
from tests.test_storage import _put_tree, _remote_tree
from tests.test_workers import _tree

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")


def _kitti(tmp: Path) -> Path:
    make_object_root(tmp / "kitti", frames=9, points=32)
    return tmp / "kitti"


def _panoptic(tmp: Path) -> Path:
    return make_panoptic(tmp / "pan", "val", images=9)


def _nucleus(tmp: Path) -> Path:
    shutil.copytree(FIXTURES / "nucleus" / "all-kinds", tmp / "nucleus")
    return tmp / "nucleus" / "items.jsonl"


def _yolo(tmp: Path) -> Path:
    return FIXTURES / "yolo" / "labelformat" / "example.yaml"


def _yolo_folder(tmp: Path) -> Path:
    return FIXTURES / "yolo" / "basic"


def _coco(tmp: Path) -> Path:
    return FIXTURES / "coco" / "instances" / "instances.json"


CASES = {  # source maker, target format, output name
    "kitti->kitti": (_kitti, "kitti", "out"),
    "kitti->nucleus": (_kitti, "nucleus", "out.jsonl"),
    "panoptic->coco": (_panoptic, "coco", "out.json"),
    "nucleus->nucleus": (_nucleus, "nucleus", "out.jsonl"),
    "yolo->yolo": (_yolo, "yolo", "out"),
    "yolo->kitti": (_yolo, "kitti", "out"),
    "yolo-folder->coco": (_yolo_folder, "coco", "out.json"),
}


def _same_report(one: Any, many: Any) -> None:
    a, b = one.model_dump(), many.model_dump()
    for key in ("source", "destination", "notes"):
        a.pop(key), b.pop(key)
    assert a == b
    assert one.written == many.written


@pytest.mark.parametrize("case", sorted(CASES))
def test_local_workers_read_in_parts_and_write_what_one_process_writes(case: str, tmp_path: Path) -> None:
    make, fmt, name = CASES[case]
    src = make(tmp_path)
    one = annobridge.convert(src, tmp_path / "one" / name, fmt)
    many = annobridge.convert(src, tmp_path / "two" / name, fmt, workers=2)
    assert any(n.startswith("read in ") and "parts by the workers" in n for n in many.notes), many.notes
    assert _tree(tmp_path / "one") == _tree(tmp_path / "two")
    _same_report(one, many)


@pytest.mark.parametrize("case", sorted(CASES))
def test_dask_workers_read_in_parts(case: str, scheduler: str, tmp_path: Path) -> None:  # noqa: F811
    make, fmt, name = CASES[case]
    src = make(tmp_path)
    one = annobridge.convert(src, tmp_path / "one" / name, fmt)
    many = annobridge.convert(src, tmp_path / "dask" / name, fmt, executor=scheduler, workers=2)
    assert any("parts by the workers" in n for n in many.notes), many.notes
    assert _tree(tmp_path / "one") == _tree(tmp_path / "dask")
    _same_report(one, many)


def test_coco_parts_go_to_forked_workers_only(scheduler: str, tmp_path: Path) -> None:  # noqa: F811
    src = _coco(tmp_path)
    one = annobridge.convert(src, tmp_path / "one" / "out", "kitti")
    local = annobridge.convert(src, tmp_path / "two" / "out", "kitti", workers=2)
    dask = annobridge.convert(src, tmp_path / "dask" / "out", "kitti", executor=scheduler, workers=2)
    assert any("parts by the workers" in n for n in local.notes)
    assert not any("parts by the workers" in n for n in dask.notes)  # the parse stays in the driver
    assert _tree(tmp_path / "one") == _tree(tmp_path / "two") == _tree(tmp_path / "dask")
    _same_report(one, local)


def test_a_bad_frame_in_a_part_is_named_and_nothing_is_left(scheduler: str, tmp_path: Path) -> None:  # noqa: F811
    src = _kitti(tmp_path)
    label = sorted((src / "training" / "label_2").glob("*.txt"))[-1]
    label.write_text("Car 0 0 0 1 2 3\n", encoding="utf-8")
    for executor in ("process", scheduler):
        out = tmp_path / "out"
        with pytest.raises(ReadError, match=label.name):
            annobridge.convert(src, out, "nucleus", executor=executor, workers=2)
        assert not out.exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["kitti"]


def test_a_reference_id_used_in_two_parts_is_refused(tmp_path: Path) -> None:
    src = _nucleus(tmp_path)
    lines = src.read_text(encoding="utf-8").splitlines()
    src.write_text("\n".join(lines + lines[:1]) + "\n", encoding="utf-8")
    with pytest.raises(ReadError, match="used twice"):
        annobridge.convert(src, tmp_path / "out.jsonl", "nucleus")
    with pytest.raises(ReadError, match="used twice"):
        annobridge.convert(src, tmp_path / "out.jsonl", "nucleus", workers=2)
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("case", ["kitti->kitti", "panoptic->coco", "nucleus->nucleus",
                                  "yolo-folder->coco"])
def test_dask_process_workers_read_parts_of_a_bucket_themselves(case: str, s3: Any, tmp_path: Path) -> None:
    """A LocalCluster of two worker processes (not threads of this one): each fetches the files
    of its part, and the media it copies, from the S3 server itself."""
    make, fmt, name = CASES[case]
    src = make(tmp_path)
    base = src if src.is_dir() else src.parent
    s3.mkdir("src")
    s3.mkdir("dst")
    _put_tree(s3, base, "src/data")
    url = "s3://src/data" + ("" if src.is_dir() else f"/{src.name}")
    one = annobridge.convert(url, f"s3://dst/one/{name}", fmt)  # as test_storage compares with local folders
    many = annobridge.convert(url, f"s3://dst/dask/{name}", fmt, executor="dask", workers=2)
    assert any("parts by the workers" in n for n in many.notes), many.notes
    assert "the workers fetched the files of their parts from s3://src/data" in many.notes
    assert _remote_tree(s3, "dst/dask") == _remote_tree(s3, "dst/one")
    _same_report(one, many)
