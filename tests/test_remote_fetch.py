"""What a sharded conversion of a bucket fetches, counted on the real S3 server (moto, its
request log): the driver lists the source and fetches only the small files its detection and
listing read; each per-item file (images, point clouds, label files, panoptic PNGs, Nucleus
masks) is downloaded once, by the worker that reads it (Nucleus masks that the COCO writer
encodes: by the driver, when it writes them). The output equals a one-process conversion of
the local folder, byte for byte; a failure leaves nothing behind."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
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
    # every one, once (KITTI label files too: the categories pass hands them to the reading pass);
    # Nucleus point clouds not at all: COCO holds none
    want = {k: 0 if ".pointclouds/" in k else 1 for k in per_item}
    assert {k: fetched.get(k, 0) for k in per_item} == want
    assert remote.items_written == local.items_written > 0 and remote.dropped == local.dropped
    local_root = str(src.parent if src.is_file() else src).encode()
    remote_root = url.rsplit("/", 1)[0].encode() if src.is_file() else url.encode()
    want = {k: v.replace(local_root, remote_root) for k, v in _local_tree(tmp_path / "local").items()}
    assert _remote_tree(s3, "dst/run") == want


@pytest.mark.parametrize("executor", ["process", "dask"])
def test_a_failing_sharded_bucket_conversion_leaves_nothing(executor: str, s3: Any, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    src, url, per_item = _upload("kitti", s3, tmp_path)
    bad = next(k for k in per_item if "/label_2/" in k)
    s3.pipe_file(bad, b"Car 0 0 0 1 2 3\n")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # the driver's copy, stage and scratch folder
    with pytest.raises(ReadError, match=f"^s3://{bad}:line 1: row has 7 columns"):  # the object, not a copy
        annobridge.convert(url, "s3://dst/run/out", "kitti", workers=2, executor=executor)
    assert s3.find("dst", withdirs=True) == []
    assert sorted(p.name for p in scratch.iterdir() if p.name != "dask-scratch-space") == []  # Dask's own


def test_a_climbing_key_is_refused_before_anything_is_read(s3: Any, tmp_path: Path) -> None:
    _upload("kitti", s3, tmp_path)
    s3.pipe_file("src/data/training/label_2/../../escape.txt", b"x")
    with pytest.raises(ReadError, match="leads outside its folder"):
        annobridge.convert("s3://src/data", "s3://dst/run/out", "kitti", workers=2)
    assert s3.find("dst", withdirs=True) == []


def test_kitti_categories_from_the_workers_pass_are_the_one_process_order(s3: Any, tmp_path: Path) -> None:
    """Class names first seen in a late label file, or only in results files (listed after every
    label file's), get the ids one process gives them: the categories pass reads the parts'
    label and results files apart and the driver joins them in that order."""
    src, url, _ = _upload("kitti", s3, tmp_path)
    tr = src / "training"
    last = sorted((tr / "label_2").glob("*.txt"))[-1]
    rows = last.read_text().splitlines()
    last.write_text("\n".join([rows[0].replace("Car", "Tram", 1), *rows[1:]]) + "\n")
    (tr / "results").mkdir()
    (tr / "results" / "000000.txt").write_text(rows[0].replace("Car", "Zebra crossing", 1) + " 0.5\n")
    (tr / "results" / "000003.txt").write_text(rows[0].replace("Car", "Tram", 1) + " 0.25\n")
    _put_tree(s3, src, "src/data")
    one = annobridge.convert(src, tmp_path / "one" / "out.json", "coco")
    names = [c["name"] for c in json.loads((tmp_path / "one" / "out.json").read_text())["categories"]]
    assert names == ["Car", "Pedestrian", "Cyclist", "DontCare", "Tram", "Zebra crossing"]
    many = annobridge.convert(url, "s3://dst/two/out.json", "coco", workers=2)
    assert any("parts by the workers" in n for n in many.notes)
    assert json.loads(s3.cat_file("dst/two/out.json"))["categories"] == json.loads(
        (tmp_path / "one" / "out.json").read_text())["categories"]
    assert many.read == one.read


@pytest.mark.parametrize("executor", ["process", "dask"])
def test_kitti_to_nucleus_fetches_each_point_cloud_once(executor: str, s3: Any, s3_requests: S3Requests,
                                                        tmp_path: Path) -> None:
    """The Nucleus writer converts each velodyne scan to pointcloud JSON; the worker reading the
    frame only needs the scan's size, so the scan is downloaded once, by whoever converts it
    (and not at all for COCO, which holds no point clouds)."""
    src, url, per_item = _upload("kitti", s3, tmp_path)
    local = annobridge.convert(src, tmp_path / "local" / "out.jsonl", "nucleus")
    s3_requests.clear()
    remote = annobridge.convert(url, "s3://dst/run/out.jsonl", "nucleus", workers=2, executor=executor)
    fetched = s3_requests.gets("src/")
    assert {k: fetched.get(k, 0) for k in per_item} == dict.fromkeys(per_item, 1)
    assert any("parts by the workers" in n for n in remote.notes)  # a remote source: in parts, for any target
    assert remote.items_written == local.items_written > 0
    want = {k: v.replace(str(src).encode(), url.encode()) for k, v in _local_tree(tmp_path / "local").items()}
    assert _remote_tree(s3, "dst/run") == want
    s3_requests.clear()
    annobridge.convert(url, "s3://dst/coco/out.json", "coco", workers=2, executor=executor)
    fetched = s3_requests.gets("src/")
    assert {k: n for k, n in fetched.items() if "/velodyne/" in k} == {}
    assert {k: fetched.get(k, 0) for k in per_item if "/velodyne/" not in k} == {
        k: 1 for k in per_item if "/velodyne/" not in k}


@pytest.fixture(scope="module")
def elsewhere(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A Dask scheduler and two workers that do not see the driver's temporary folder (as on
    another machine): the workers run in their own mount namespace, with an empty tmpfs over
    that folder. Yields the executor and the folder (the test's driver makes its own there)."""
    hidden = tmp_path_factory.mktemp("driver-tmp")
    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "-rm", "sh", "-c", f'mount -t tmpfs tmpfs "{hidden}"'], capture_output=True).returncode:
        pytest.skip("needs unshare(1) with an unprivileged mount namespace to hide the driver's folder")
    dask = str(Path(sys.executable).with_name("dask"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        env.pop(key, None)
    address = f"127.0.0.1:{port}"
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    procs.append(subprocess.Popen(
        ["unshare", "-rm", "sh", "-c", f'mount -t tmpfs tmpfs "{hidden}" && exec "{dask}" worker tcp://{address} '
         "--nworkers 2 --nthreads 1 --no-dashboard"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        from distributed import Client

        with Client(f"tcp://{address}", timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield f"dask://{address}", hidden
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.parametrize("target", ["coco", "kitti", "yolo"])  # YOLO: the driver writes the first part itself
def test_kitti_label_files_are_fetched_once_by_workers_on_another_machine(
        target: str, elsewhere: tuple[str, Path], s3: Any, s3_requests: S3Requests, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers that cannot see the driver's scratch folder: the label files the categories pass
    fetched reach the reading pass without a second download; output as one process's."""
    executor, hidden = elsewhere
    src, url, per_item = _upload("kitti", s3, tmp_path)
    name = "out.json" if target == "coco" else "out"
    local = annobridge.convert(src, tmp_path / "local" / name, target)
    if target == "coco":
        annobridge.convert(url, f"s3://dst/one/{name}", target)  # one process, as a reference
    monkeypatch.setattr(tempfile, "tempdir", str(hidden))  # the driver's copy and scratch folder
    out = f"s3://dst/run/{name}" if target == "coco" else tmp_path / "remote" / name  # staged where workers see
    s3_requests.clear()
    remote = annobridge.convert(url, out, target, workers=2, executor=executor)
    assert f"the workers fetched the files of their parts from {url}" in remote.notes, remote.notes
    fetched = s3_requests.gets("src/")
    labels = [k for k in per_item if "/label_2/" in k]
    assert {k: fetched.get(k, 0) for k in labels} == dict.fromkeys(labels, 1)
    want_others = {k: 0 if target != "kitti" and "/velodyne/" in k else 1 for k in per_item if k not in labels}
    assert {k: fetched.get(k, 0) for k in per_item if k not in labels} == want_others
    assert remote.items_written == local.items_written > 0 and remote.read == local.read
    if target == "coco":
        assert s3.cat_file(f"dst/run/{name}") == s3.cat_file(f"dst/one/{name}")  # it names the bucket's images
    else:
        assert _local_tree(tmp_path / "remote") == _local_tree(tmp_path / "local")
    assert list(hidden.iterdir()) == []  # the driver's scratch and copy are gone


def test_a_bad_label_file_on_another_machine_is_named_and_nothing_is_left(
        elsewhere: tuple[str, Path], s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    executor, hidden = elsewhere
    _, url, per_item = _upload("kitti", s3, tmp_path)
    bad = [k for k in per_item if "/label_2/" in k][-1]
    s3.pipe_file(bad, b"Car 0 0 0 1 2 3\n")
    monkeypatch.setattr(tempfile, "tempdir", str(hidden))
    with pytest.raises(ReadError, match=f"^s3://{bad}:line 1: row has 7 columns"):  # the object, not a copy
        annobridge.convert(url, tmp_path / "out" / "kitti", "kitti", workers=2, executor=executor)
    assert not (tmp_path / "out").exists() and list(hidden.iterdir()) == []
