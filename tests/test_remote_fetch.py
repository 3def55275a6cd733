"""What a sharded conversion of a bucket fetches, counted on the real S3 server (moto, its
request log): the driver lists the source and fetches only the small files its detection and
listing read; each per-item file (images, point clouds, label files, panoptic PNGs, Nucleus
masks) is downloaded by the worker that reads it, once. The output equals a one-process
conversion of the local folder, byte for byte; a failure leaves nothing behind."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

import annobridge
from annobridge.converters import engine
from annobridge.core import storage
from annobridge.core.errors import ReadError
from annobridge.core.formats import Context
from tests.conftest import FIXTURES, S3Requests
from tests.kitti_synth import make_object_root
from tests.panoptic_helpers import make_panoptic
from tests.test_storage import _local_tree, _put_tree, _remote_tree

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")


def _kitti(tmp: Path) -> tuple[Path, str]:
    make_object_root(tmp / "kitti", frames=6, points=32)
    return tmp / "kitti", ""


def _yolo(tmp: Path) -> tuple[Path, str]:
    shutil.copytree(FIXTURES / "yolo" / "labelformat", tmp / "yolo")  # a folder holding its YAML
    return tmp / "yolo", ""


def _panoptic(tmp: Path) -> tuple[Path, str]:
    make_panoptic(tmp / "pan", "val", images=6)
    return tmp / "pan", "val.json"


def _nucleus(tmp: Path) -> tuple[Path, str]:
    shutil.copytree(FIXTURES / "nucleus" / "all-kinds", tmp / "nucleus")
    return tmp / "nucleus", "items.jsonl"


CASES = {  # source maker, per-item folders (relative to the source folder), target, output name
    "kitti": (_kitti, ("training/label_2/", "training/image_2/", "training/velodyne/", "training/calib/"),
              "kitti", "out"),
    "yolo": (_yolo, ("images/", "labels/"), "kitti", "out"),
    "panoptic": (_panoptic, ("val/",), "coco", "out.json"),
    "nucleus": (_nucleus, ("items.masks/", "items.pointclouds/"), "coco", "out.json"),
}


def _upload(case: str, s3: Any, tmp: Path) -> tuple[Path, str, list[str]]:
    """The local source, its URL in the bucket, and the keys of its per-item files."""
    make, folders, _, _ = CASES[case]
    base, name = make(tmp)
    s3.mkdir("src")
    s3.mkdir("dst")
    _put_tree(s3, base, "src/data")
    per_item = sorted(k for k in s3.find("src/data") if k[len("src/data/"):].startswith(folders))
    assert per_item
    return base / name if name else base, "s3://src/data" + (f"/{name}" if name else ""), per_item


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_driver_lists_a_bucket_without_fetching_per_item_files(case: str, s3: Any, s3_requests: S3Requests,
                                                                   tmp_path: Path) -> None:
    _, url, per_item = _upload(case, s3, tmp_path)
    s3_requests.clear()
    ctx = Context(workers=2)
    try:
        shards = engine.read_shards(url, context=ctx)
        assert shards is not None and shards.files is not None
        fetched = s3_requests.gets("src/")
        assert not set(fetched) & set(per_item), sorted(set(fetched) & set(per_item))
        assert len(fetched) <= 2 and all(n == 1 for n in fetched.values()), fetched  # a YAML, a JSON, ImageSets
        copy = shards.root
        assert not [p for p in copy.rglob("*") if p.is_file() and
                    p.relative_to(copy).as_posix().startswith(CASES[case][1])]  # no placeholder is left
    finally:
        ctx.close(cancel=True)
        storage.release(url)


@pytest.mark.parametrize("executor", ["process", "dask"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_each_per_item_file_is_fetched_once_by_a_worker(case: str, executor: str, s3: Any, s3_requests: S3Requests,
                                                        tmp_path: Path) -> None:
    """Forked local workers and a two-process Dask LocalCluster; output as one local process's."""
    src, url, per_item = _upload(case, s3, tmp_path)
    _, _, fmt, name = CASES[case]
    local = annobridge.convert(src, tmp_path / "local" / name, fmt)
    s3_requests.clear()
    remote = annobridge.convert(url, f"s3://dst/run/{name}", fmt, workers=2, executor=executor)
    assert "the workers fetched the files of their parts from " + url.rsplit("/", 1)[0] in remote.notes \
        or f"the workers fetched the files of their parts from {url}" in remote.notes, remote.notes
    fetched = s3_requests.gets("src/")
    once = {k: n for k, n in fetched.items() if k in per_item}
    label_files = {k for k in per_item if "/label_2/" in k}  # KITTI: the categories pass reads them too
    assert {k: n for k, n in once.items() if n != (2 if k in label_files else 1)} == {}
    assert set(once) <= set(per_item)
    assert remote.items_written == local.items_written > 0 and remote.dropped == local.dropped
    local_root = str(src.parent if src.is_file() else src).encode()
    remote_root = url.rsplit("/", 1)[0].encode() if src.is_file() else url.encode()
    want = {k: v.replace(local_root, remote_root) for k, v in _local_tree(tmp_path / "local").items()}
    assert _remote_tree(s3, "dst/run") == want


def test_a_failing_sharded_bucket_conversion_leaves_nothing(s3: Any, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    src, url, per_item = _upload("kitti", s3, tmp_path)
    bad = next(k for k in per_item if "/label_2/" in k)
    s3.pipe_file(bad, b"Car 0 0 0 1 2 3\n")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # forked workers stage and fetch here too
    with pytest.raises(ReadError, match=bad.rsplit("/", 1)[1]):
        annobridge.convert(url, "s3://dst/run/out", "kitti", workers=2)
    assert s3.find("dst", withdirs=True) == []
    assert sorted(p.name for p in scratch.iterdir()) == []


def test_a_climbing_key_is_refused_before_anything_is_read(s3: Any, tmp_path: Path) -> None:
    _upload("kitti", s3, tmp_path)
    s3.pipe_file("src/data/training/label_2/../../escape.txt", b"x")
    with pytest.raises(ReadError, match="leads outside its folder"):
        annobridge.convert("s3://src/data", "s3://dst/run/out", "kitti", workers=2)
    assert s3.find("dst", withdirs=True) == []
