"""Remote sources and destinations (core/storage.py) against a real S3 server (moto's server
mode on 127.0.0.1, started by the ``s3_endpoint`` fixture), fsspec's ``memory://`` and a
local HTTP server. Every bucket-to-bucket conversion is compared byte for byte with the same
conversion between local folders."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

import annobridge
from annobridge.core import storage
from annobridge.core.errors import FormatError, ReadError, WriteError
from tests.conftest import FIXTURES
from tests.kitti_synth import make_object_root
from tests.panoptic_helpers import make_panoptic

CLI = [str(Path(sys.executable).with_name("annobridge"))]


def _put_tree(fs: Any, local: Path, prefix: str) -> None:
    files = [p for p in sorted(local.rglob("*")) if p.is_file()] if local.is_dir() else [local]
    base = local if local.is_dir() else local.parent
    for f in files:
        fs.put_file(str(f), f"{prefix}/{f.relative_to(base).as_posix()}")


def _remote_tree(fs: Any, prefix: str) -> dict[str, bytes]:
    return {k[len(prefix):].lstrip("/"): fs.cat_file(k) for k in fs.find(prefix)}


def _local_tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, env=os.environ.copy())


def _kitti(tmp: Path) -> Path:
    make_object_root(tmp / "kitti", frames=3, points=32)
    return tmp / "kitti"


def _panoptic(tmp: Path) -> Path:
    make_panoptic(tmp / "pan", "val", images=3)
    return tmp / "pan" / "val.json"


def _lightly(tmp: Path) -> Path:
    annobridge.convert(FIXTURES / "coco" / "detection" / "train.json", tmp / "ds" / ".lightly", "lightly",
                       write_options={"score": 1.0})
    return tmp / "ds" / ".lightly"


CASES = {
    # name: (make the local source, what of it is uploaded, to format, output name, write options)
    "coco": (lambda tmp: FIXTURES / "coco" / "detection" / "train.json", "coco", "out.json", {}),
    "kitti-pointclouds": (_kitti, "nucleus", "scans.jsonl", {}),
    "coco-panoptic": (_panoptic, "coco-panoptic", "pan.json", {}),
    "lightly": (_lightly, "lightly", ".lightly", {}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bucket_to_bucket_equals_local(case: str, s3: Any, tmp_path: Path) -> None:
    make, to, name, options = CASES[case]
    src = make(tmp_path)
    s3.mkdir("src")
    s3.mkdir("dst")
    _put_tree(s3, src.parent if src.is_file() else src, f"src/data/{src.parent.name if src.is_file() else src.name}")
    remote_src = f"s3://src/data/{src.parent.name}/{src.name}" if src.is_file() else f"s3://src/data/{src.name}"
    local_out = tmp_path / "local"
    local = annobridge.convert(src, local_out / name, to, write_options=options)
    remote = annobridge.convert(remote_src, f"s3://dst/run/{name}", to, write_options=options)
    assert remote.source == remote_src and remote.destination == f"s3://dst/run/{name}"
    assert remote.items_written == local.items_written > 0
    assert remote.dropped == local.dropped
    got = _remote_tree(s3, "dst/run")
    # media locations name the source they were read from: the local folder, or the bucket
    local_root = str(src.parent if src.is_file() else src).encode()
    remote_root = remote_src.rsplit("/", 1)[0].encode() if src.is_file() else remote_src.encode()
    want = {k: v.replace(local_root, remote_root) for k, v in _local_tree(local_out).items()}
    assert got == want
    assert not [k for k in s3.find("dst", withdirs=True) if ".partial" in k]  # the staging prefix is gone


def test_cli_bucket_to_bucket_coco_is_read_by_pycocotools(s3: Any, tmp_path: Path) -> None:
    s3.mkdir("coco-in")
    s3.put_file(str(FIXTURES / "coco" / "detection" / "train.json"), "coco-in/ann/train.json")
    done = _cli("convert", "s3://coco-in/ann/train.json", "s3://coco-in/converted/kitti", "--to", "kitti", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    annobridge.convert("s3://coco-in/converted/kitti", "s3://coco-in/back/train.json", "coco")
    assert not list(tmp_path.iterdir())  # nothing local: no ./s3:/in/... folder
    s3.get_file("coco-in/back/train.json", str(tmp_path / "back.json"))
    coco = COCO(str(tmp_path / "back.json"))
    assert len(coco.getImgIds()) == 2 and len(coco.getAnnIds()) == 16


def test_storage_option_gives_the_endpoint(s3: Any, s3_endpoint: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    s3.mkdir("options")
    s3.put_file(str(FIXTURES / "coco" / "detection" / "train.json"), "options/train.json")
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    done = _cli("convert", "s3://options/train.json", str(tmp_path / "out.jsonl"), "--to", "jsonl",
                "--storage-option", f"endpoint_url={s3_endpoint}", "--storage-option", "use_listings_cache=false")
    assert done.returncode == 0, done.stderr
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 3  # the header line and 2 items


def _nucleus_with_big_mask(tmp: Path) -> Path:
    """A Nucleus payload whose second item's mask holds index 300 (Nucleus masks are 8-bit)."""
    src = tmp / "bad"
    (src / "items.masks").mkdir(parents=True)
    lines = []
    for n, top in ((0, 2), (1, 300)):
        mask = np.zeros((4, 6), np.uint16)
        mask[1:3, 1:4] = top
        Image.fromarray(mask).save(src / "items.masks" / f"{n}.png")
        lines.append({"reference_id": f"img-{n}", "image_url": f"https://example.com/{n}.jpg",
                      "annotations": [{"type": "mask", "mask_url": f"items.masks/{n}.png",
                                       "annotations": [{"label": "car", "index": top}], "reference_id": f"img-{n}"}]})
    (src / "items.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return src


def test_nucleus_remote_masks_are_uploaded_and_referenced(s3: Any, tmp_path: Path) -> None:
    s3.mkdir("data")
    s3.mkdir("masks")
    _put_tree(s3, FIXTURES / "nucleus" / "all-kinds", "data/nuc")
    done = _cli("convert", "s3://data/nuc/items.jsonl", "s3://data/out/items.jsonl", "--to", "nucleus",
                "--option", "mask-url=s3://masks/run-1/")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(x) for x in s3.cat_file("data/out/items.jsonl").decode().splitlines()]
    urls = [a["mask_url"] for line in lines for a in line.get("annotations", []) + line.get("predictions", [])
            if a.get("type") == "mask"]
    assert urls and all(u.startswith("s3://masks/run-1/") for u in urls)
    assert sorted(s3.find("masks/run-1")) == sorted(u[len("s3://"):] for u in urls)
    assert not s3.exists("data/out/items.masks")  # masks went to the URL only
    # the uploaded masks are the PNGs a local run writes, and the service-side reader (the
    # scale-nucleus client) accepts the payload
    local = tmp_path / "local"
    annobridge.convert(FIXTURES / "nucleus" / "all-kinds" / "items.jsonl", local / "items.jsonl", "nucleus")
    for u in urls:
        assert s3.cat_file(u[len("s3://"):]) == (local / "items.masks" / u.rsplit("/", 1)[1]).read_bytes()
    # Nucleus reads JSON point clouds from the bucket they are in: referenced, not copied
    text = s3.cat_file("data/out/items.jsonl").decode()
    assert '"url":"s3://data/nuc/items.pointclouds/000001-lidar-0.json"' in text
    from nucleus.annotation import SegmentationAnnotation

    seg = next(a for line in lines for a in line.get("annotations", []) if a.get("type") == "mask")
    assert SegmentationAnnotation.from_json(seg).mask_url.startswith("s3://masks/run-1/")


def test_kitti_point_clouds_go_to_pointcloud_url(s3: Any, tmp_path: Path) -> None:
    s3.mkdir("lidar")
    report = annobridge.convert(_kitti(tmp_path), "s3://lidar/out/scans.jsonl", "nucleus",
                                write_options={"pointcloud_url": "s3://lidar/clouds/"})
    assert report.items_written == 6
    clouds = sorted(s3.find("lidar/clouds"))
    text = s3.cat_file("lidar/out/scans.jsonl").decode()
    assert len(clouds) == 3 and all(f'"url":"s3://{c}"' in text for c in clouds)
    assert json.loads(s3.cat_file(clouds[0]))["points"][0].keys() == {"x", "y", "z", "i"}
    assert not s3.exists("lidar/out/scans.pointclouds")


def test_failed_conversion_leaves_no_objects(s3: Any, tmp_path: Path) -> None:
    s3.mkdir("fail")
    _put_tree(s3, _nucleus_with_big_mask(tmp_path), "fail/bad")
    before = sorted(s3.find("fail"))
    with pytest.raises(WriteError, match="8-bit"):
        annobridge.convert("s3://fail/bad/items.jsonl", "s3://fail/out/items.jsonl", "nucleus",
                           write_options={"mask_url": "s3://fail/masks/", "renumber-segments": "false"})
    assert sorted(s3.find("fail")) == before  # no output, no masks, no staging prefix
    annobridge.convert("s3://fail/bad/items.jsonl", "s3://fail/out/coco.json", "coco")  # COCO holds 16-bit masks as RLE: the same input converts
    assert sorted(s3.find("fail")) == [*before, "fail/out/coco.json"]


def test_existing_destination_is_kept_without_overwrite(s3: Any) -> None:
    s3.mkdir("keep")
    s3.put_file(str(FIXTURES / "coco" / "detection" / "train.json"), "keep/train.json")
    s3.pipe_file("keep/out.json", b"old")
    with pytest.raises(WriteError, match="already exists"):
        annobridge.convert("s3://keep/train.json", "s3://keep/out.json", "coco")
    assert s3.cat_file("keep/out.json") == b"old"
    annobridge.convert("s3://keep/train.json", "s3://keep/out.json", "coco", overwrite=True)
    assert json.loads(s3.cat_file("keep/out.json"))["images"]


def test_missing_input_and_bucket_root(s3: Any) -> None:
    s3.mkdir("empty")
    with pytest.raises(ReadError, match="input does not exist"):
        annobridge.convert("s3://empty/nothing.json", "s3://empty/out.json", "coco", from_format="coco")
    with pytest.raises(WriteError, match="bucket or container root"):
        annobridge.convert(FIXTURES / "coco" / "detection" / "train.json", "s3://empty", "coco")
    assert s3.find("empty") == []


@pytest.fixture
def memory() -> Iterator[Any]:
    fs = fsspec.filesystem("memory")
    yield fs
    fs.store.clear()
    fs.pseudo_dirs[:] = [""]


def test_a_file_source_brings_its_named_siblings_only(memory: Any) -> None:
    for key in ("/b/d/val.json", "/b/d/val/1.png", "/b/d/val.masks/1.png", "/b/d/validation/x.txt",
                "/b/d/val2.json"):
        memory.pipe_file(key, b"x")
    path, cache = storage.fetch("memory://b/d/val.json")
    try:
        assert path == cache / "val.json"
        assert sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.is_file()) == [
            "val.json", "val.masks/1.png", "val/1.png"]
    finally:
        shutil.rmtree(cache)


def test_memory_and_file_urls(memory: Any, tmp_path: Path) -> None:
    memory.put_file(str(FIXTURES / "coco" / "detection" / "train.json"), "/in/train.json")
    report = annobridge.convert("memory://in/train.json", "memory://out/items.jsonl", "jsonl")
    assert report.items_written == 2
    annobridge.convert("memory://out/items.jsonl", f"file://{tmp_path}/back.json", "coco")
    local = annobridge.convert(FIXTURES / "coco" / "detection" / "train.json", tmp_path / "direct.jsonl", "jsonl")
    assert memory.cat_file("/out/items.jsonl") == (tmp_path / "direct.jsonl").read_bytes()
    assert local.items_written == 2 and json.loads((tmp_path / "back.json").read_text())["images"]
    loaded = annobridge.load("memory://in/train.json", storage_options={})
    assert len(loaded.items) == 2
    annobridge.save(loaded, "memory://saved/train.json", "coco")
    assert json.loads(memory.cat_file("/saved/train.json"))["images"] == json.loads(
        (tmp_path / "back.json").read_text())["images"]


def test_http_source(tmp_path: Path) -> None:
    folder = FIXTURES / "coco" / "detection"

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, directory=str(folder), **k)

        def log_message(self, *a: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/train.json"
        report = annobridge.convert(url, tmp_path / "out.jsonl", "jsonl")
        assert report.source == url and report.items_written == 2
        with pytest.raises(ReadError, match="input does not exist|cannot fetch"):
            annobridge.convert(url.replace("train", "nope"), tmp_path / "x.jsonl", "jsonl", from_format="coco")
        with pytest.raises(WriteError):
            annobridge.convert(url, url.replace("train", "up"), "coco")
    finally:
        server.shutdown()
        server.server_close()


def test_a_protocol_without_its_package_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gcsfs", None)  # not installed, even where a developer has it
    with pytest.raises(FormatError, match=r"annobridge\[gcs\]"):
        annobridge.convert("gs://bucket/in.json", tmp_path / "x.json", "coco", from_format="coco")
    done = _cli("convert", str(FIXTURES / "coco" / "detection" / "train.json"), "az://c/out.json", "--to", "coco",
                cwd=tmp_path)
    assert done.returncode == 1 and "annobridge[azure]" in done.stderr and "Traceback" not in done.stderr
    assert not list(tmp_path.iterdir())


def test_storage_options_parse_json_text_and_nesting() -> None:
    assert storage.parse_storage_options(["anon=true", "profile=prod", "client_kwargs.region_name=eu-west-1",
                                          "max_concurrency=4"]) == {
        "anon": True, "profile": "prod", "client_kwargs": {"region_name": "eu-west-1"}, "max_concurrency": 4}
    with pytest.raises(FormatError, match="not key=value"):
        storage.parse_storage_options(["profile"])


def test_object_keys_that_climb_out_are_refused(memory: Any) -> None:
    memory.pipe_file("/evil/ds/a.txt", b"x")
    memory.pipe_file("/evil/ds/sub/../../../escape.txt", b"x")
    assert "/evil/ds/sub/../../../escape.txt" in memory.find("/evil")  # keys are not paths: kept as written
    with pytest.raises(ReadError, match="leads outside its folder"):
        storage.fetch("memory://evil/ds")


def test_url_helpers_keep_a_bucket_root_a_url() -> None:
    """A source at a bucket root (``s3://b``) has ``s3://`` as its folder: joining a name to
    it gives ``s3://name``, never ``s3:/name`` (which a worker then took for a local path)."""
    assert storage._parent_url("s3://b") == "s3://"
    assert storage._parent_url("s3://b/") == "s3://"
    assert storage._parent_url("s3://b/k/data.json") == "s3://b/k"
    assert storage.join_url(storage._parent_url("s3://b"), "b/x.txt") == "s3://b/x.txt"
    assert storage.join_url("s3://b/k/", "x") == "s3://b/k/x"
    assert storage._slash("s3://") == "s3://" and storage._slash("s3://b") == "s3://b/"


@pytest.mark.parametrize("workers", [1, 2])
def test_a_source_at_a_bucket_root_converts(s3: Any, tmp_path: Path, workers: int) -> None:
    """A KITTI folder that is a whole bucket converts as the same local folder does, in one
    process and on two workers (which fetch their parts by URL)."""
    case = FIXTURES / "kitti" / "datumaro"
    s3.mkdir("wholebucket")
    s3.put(str(case) + "/", "wholebucket/", recursive=True)
    local, remote = tmp_path / "local", tmp_path / "remote"
    annobridge.convert(str(case), str(local), src_format="kitti", dst_format="kitti")
    annobridge.convert("s3://wholebucket", str(remote), src_format="kitti", dst_format="kitti", workers=workers)
    files = sorted(p.relative_to(local) for p in local.rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(remote) for p in remote.rglob("*") if p.is_file())
    assert all((local / f).read_bytes() == (remote / f).read_bytes() for f in files)
