"""Lightly read in shards (``plugins/lightly/read.py`` ``shards``): workers read their own media
files' metadata and prediction files, while the video files whose metadata and scene their
frames take are read once by the driver; the output equals one process's, byte for byte, on
local forked workers, on a two-worker Dask LocalCluster, and from an S3 server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import annobridge
from annobridge.converters import engine
from annobridge.core import storage
from annobridge.core.errors import ReadError
from annobridge.core.formats import Context
from annobridge.core.model import (
    BoxAnnotation,
    Category,
    CategoryAnnotation,
    Dataset,
    DatasetHeader,
    DatasetItem,
    FrameRef,
    ObjectMaskAnnotation,
    Scene,
)
from tests.conftest import FIXTURES, S3Requests
from tests.test_distributed import scheduler  # noqa: F401  (the two-worker LocalCluster fixture)
from tests.test_sharded import _same_report
from tests.test_storage import _put_tree, _remote_tree
from tests.test_workers import _tree

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")

DATASOURCE = FIXTURES / "lightly" / "datasource" / "bucket"
DS_OPTIONS = {"input": str(DATASOURCE), "frames": "clips/rally.mp4=12"}


def _fixture(tmp: Path) -> Path:
    """The datasource fixture's .lightly folder, beside its images (a video whose file applies to
    two frames, three images, metadata with defaults, segmentation and classification tasks)."""
    shutil.copytree(DATASOURCE, tmp / "ds")
    return tmp / "ds" / ".lightly"


def _generated(tmp: Path, images: int = 40, videos: int = 3, frames: int = 12) -> Path:
    """A .lightly folder written by annobridge: images with nested metadata, boxes, classes and
    instance masks (their sizes and the remote image URLs go to annobridge-origins.json), and
    videos whose frames override some of the video's metadata."""
    rng = np.random.default_rng(7)
    items: list[DatasetItem] = []
    scenes: dict[str, Scene] = {}
    for v in range(videos):
        ref = f"clips/v{v}"
        scenes[ref] = Scene(reference_id=ref, metadata={"court": f"C{v}", "players": 4 + v, "light": {"lux": 300 + v}},
                            attributes={"file_name": f"{ref}.mp4", "n_frames": frames})
        for f in range(0, frames, 2):
            md: dict[str, Any] = {"players": f % 5} if f % 4 else {}
            if f == 4:
                md["light"] = {"lux": 10}
            items.append(DatasetItem(reference_id=f"{ref}-{f:02d}-mp4", metadata=md,
                                     scene=FrameRef(scene_reference_id=ref, index=f),
                                     predictions=[BoxAnnotation(label="car", x=f, y=1, width=5, height=4,
                                                                confidence=0.5 + f / 100)]))
    for i in range(images):
        ref = f"d{i % 4}/img_{i:03d}"
        preds: list[Any] = [BoxAnnotation(label=("car", "bird")[k % 2], x=3 * k, y=2 * k, width=9, height=7,
                                          confidence=round(0.3 + k / 10, 2)) for k in range(i % 4)]
        preds.append(CategoryAnnotation(label=("day", "night")[i % 2], confidence=0.9))
        if i % 5 == 0:
            mask = rng.random((6, 8)) > 0.6
            preds.append(ObjectMaskAnnotation.from_array(mask, label="bird", confidence=0.7))
        md = {"game": i % 9, "weather": {"t": i % 13 + 0.5, "sky": ("low", "high")[i % 2]}, "night": i % 2 == 0}
        if i % 7 == 0:
            del md["game"]
        items.append(DatasetItem(reference_id=ref, width=8, height=6, metadata=md, predictions=preds,
                                 image_location=f"https://example.com/{ref}.jpg" if i % 3 == 0 else None))
    header = DatasetHeader(categories=[Category(id=1, name="car"), Category(id=4, name="bird"),
                                       Category(id=5, name="day"), Category(id=6, name="night")], scenes=scenes)
    annobridge.save(Dataset(header=header, items=items), tmp / "gen" / ".lightly", "lightly")
    return tmp / "gen" / ".lightly"


def _task_fixture(tmp: Path) -> Path:
    """labelformat's Lightly object-detection folder (two files, no images beside it)."""
    return FIXTURES / "lightly-task" / "labelformat-detection" / "detection-task-name"


def _task_generated(tmp: Path) -> Path:
    """A single-task folder (``lightly-task``) with images beside it, whose sizes the workers read."""
    from PIL import Image

    images = tmp / "task" / "images"
    for n in range(12):
        (images / f"d{n % 3}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((6 + n, 8, 3), 9 * n, np.uint8)).save(images / f"d{n % 3}" / f"im{n}.png")
    items = [DatasetItem(reference_id=f"d{n % 3}/im{n}", image_location=str(images / f"d{n % 3}" / f"im{n}.png"),
                         predictions=[BoxAnnotation(label=("car", "bird")[k % 2], x=k, y=1, width=3, height=2 + k,
                                                    confidence=0.25 * (k + 1)) for k in range(n % 4)])
             for n in range(12)]
    header = DatasetHeader(categories=[Category(id=0, name="car"), Category(id=3, name="bird")])
    annobridge.save(Dataset(header=header, items=items), tmp / "task" / "detections", "lightly-task",
                    {"input": str(images)})
    return tmp / "task" / "detections"


CASES = {  # source maker, read options, target format, output name
    "fixture->lightly": (_fixture, {}, "lightly", ".lightly"),
    "fixture+input->nucleus": (_fixture, DS_OPTIONS, "nucleus", "out.jsonl"),
    "generated->lightly": (_generated, {}, "lightly", ".lightly"),
    "generated->jsonl": (_generated, {}, "jsonl", "out.jsonl"),
    "generated->kitti": (_generated, {}, "kitti", "out"),  # workers write the KITTI results files
    "task-fixture->lightly-task": (_task_fixture, {}, "lightly-task", "out"),
    "task-generated->coco": (_task_generated, {}, "coco", "out.json"),
}


def _filled(report: Any) -> list[str]:
    return [n for n in report.notes if n.startswith("filled schema defaults")]


@pytest.mark.parametrize("case", sorted(CASES))
def test_local_workers_read_lightly_in_parts(in_parts: None, case: str, tmp_path: Path) -> None:
    make, options, fmt, name = CASES[case]
    src = make(tmp_path)
    one = annobridge.convert(src, tmp_path / "one" / name, fmt, read_options=options)
    many = annobridge.convert(src, tmp_path / "two" / name, fmt, read_options=options, workers=2)
    [parts] = [n for n in many.notes if "parts by the workers" in n]
    assert int(parts.split()[2]) >= 2, parts  # a video and its frames fall into different parts
    assert _tree(tmp_path / "one") == _tree(tmp_path / "two")
    _same_report(one, many)
    assert _filled(many) == _filled(one)  # summed over the parts
    assert len(_filled(one)) == (not case.startswith("task"))


@pytest.mark.parametrize("case", sorted(CASES))
def test_dask_workers_read_lightly_in_parts(case: str, scheduler: str, tmp_path: Path) -> None:  # noqa: F811
    make, options, fmt, name = CASES[case]
    src = make(tmp_path)
    one = annobridge.convert(src, tmp_path / "one" / name, fmt, read_options=options)
    many = annobridge.convert(src, tmp_path / "dask" / name, fmt, read_options=options, executor=scheduler,
                              workers=2)
    assert any("parts by the workers" in n for n in many.notes), many.notes
    assert _tree(tmp_path / "one") == _tree(tmp_path / "dask")
    _same_report(one, many)
    assert _filled(many) == _filled(one)


def test_frames_in_other_parts_take_their_video_metadata_and_scene(tmp_path: Path) -> None:
    """Each frame is its own part: every frame needs what the driver read from its video file."""
    src = _generated(tmp_path, images=0, videos=2, frames=12)
    one = annobridge.load(src, "lightly")
    from annobridge.converters import sharded

    sharded_items = annobridge.convert(src, tmp_path / "two" / "o.jsonl", "jsonl", workers=2)
    assert sharded_items.items_read == len(one.items) == 12
    frame = next(i for i in one.items if i.reference_id == "clips/v1-04-mp4")
    assert frame.metadata == {"court": "C1", "players": 5, "light": {"lux": 10}}
    lines = [json.loads(line) for line in (tmp_path / "two" / "o.jsonl").read_text().splitlines()]
    again = {d.get("reference_id"): d for d in lines}
    assert again["clips/v1-04-mp4"]["metadata"] == frame.metadata
    assert sharded.chunks(list(range(14)), 2)[0] == [0]  # one unit per part, as above


def test_a_frame_padding_that_disagrees_across_parts_is_refused(tmp_path: Path) -> None:
    src = _generated(tmp_path, images=0, videos=1, frames=12)
    frame = src / "metadata" / "clips" / "v0-10-mp4.json"
    data = json.loads(frame.read_text())
    data["file_name"] = "clips/v0-010-mp4.png"
    (frame.parent / "v0-010-mp4.json").write_text(json.dumps(data))
    frame.unlink()
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        with pytest.raises(ReadError, match="padded to 3 digits but 'clips/v0-00-mp4.png'"):
            annobridge.convert(src, out / "o.jsonl", "jsonl", workers=workers)
        assert not out.exists()


def test_a_bad_file_in_a_part_is_named_and_nothing_is_left(scheduler: str, tmp_path: Path) -> None:  # noqa: F811
    src = _generated(tmp_path, images=12, videos=1, frames=4)
    bad = src / "predictions" / "object_detection" / "d3" / "img_011.json"
    data = json.loads(bad.read_text())
    data["predictions"][0]["bbox"] = [1, 2, 3]
    bad.write_text(json.dumps(data))
    for executor in ("process", scheduler):
        out = tmp_path / "out"
        with pytest.raises(ReadError, match="bbox must be 4 numbers") as err:
            annobridge.convert(src, out / ".lightly", "lightly", executor=executor, workers=2)
        assert "img_011.json" in str(err.value)
        assert not out.exists()


def test_dask_process_workers_read_lightly_parts_of_a_bucket_themselves(s3: Any, tmp_path: Path) -> None:
    """Two worker processes fetch the metadata and prediction files of their parts from the S3
    server; image URLs in the output point into the bucket, as when one process reads it."""
    src, name = _generated(tmp_path), "out.jsonl"
    s3.mkdir("src")
    s3.mkdir("dst")
    _put_tree(s3, src.parent, "src/data")
    url = "s3://src/data/.lightly"
    one = annobridge.convert(url, f"s3://dst/one/{name}", "jsonl")
    many = annobridge.convert(url, f"s3://dst/dask/{name}", "jsonl", executor="dask", workers=2)
    assert any("parts by the workers" in n for n in many.notes), many.notes
    assert "the workers fetched the files of their parts from s3://src/data" in many.notes
    assert _remote_tree(s3, "dst/dask") == _remote_tree(s3, "dst/one")
    _same_report(one, many)
    lines = [json.loads(x) for x in s3.cat_file(f"dst/dask/{name}").decode().splitlines()]
    assert any(str(d.get("image_location", "")).startswith("s3://src/data/d0/img_") for d in lines)
    assert any(str(d.get("image_location", "")).startswith("https://example.com/") for d in lines)  # origins


def test_the_driver_fetches_only_what_spans_the_dataset_and_workers_fetch_each_file_once(
        s3: Any, s3_requests: S3Requests, tmp_path: Path) -> None:
    """Counted on the S3 server: the driver reads the schemas, the origins and the video files;
    every other metadata and prediction file is downloaded once, by the worker that reads it."""
    src = _generated(tmp_path, images=10, videos=2, frames=6)
    s3.mkdir("src")
    s3.mkdir("dst")
    _put_tree(s3, src.parent, "src/data")
    keys = {k[len("src/data/.lightly/"):] for k in s3.find("src/data/.lightly")}
    spans = {k for k in keys if k.endswith(("schema.json", "tasks.json", "annobridge-origins.json"))}
    videos = {"metadata/clips/v0.json", "metadata/clips/v1.json"}
    assert videos <= keys
    per_item = keys - spans - videos
    s3_requests.clear()
    ctx = Context(workers=2)
    try:
        assert engine.read_shards("s3://src/data/.lightly", context=ctx) is not None
        driver = {k[len("src/data/.lightly/"):]: n for k, n in s3_requests.gets("src/data/.lightly/").items()}
        assert set(driver) <= spans | videos and videos <= set(driver), driver
    finally:
        ctx.close(cancel=True)
        storage.release("s3://src/data/.lightly")
    local = annobridge.convert(src, tmp_path / "local" / "o.jsonl", "jsonl")
    s3_requests.clear()
    remote = annobridge.convert("s3://src/data/.lightly", "s3://dst/o.jsonl", "jsonl", workers=2)
    fetched = {k[len("src/data/.lightly/"):]: n for k, n in s3_requests.gets("src/data/.lightly/").items()}
    assert {k: fetched.get(k, 0) for k in per_item} == {k: 1 for k in per_item}
    assert remote.items_written == local.items_written == 16
    assert "the workers fetched the files of their parts from s3://src/data" in remote.notes


def test_a_tallied_note_is_summed_over_the_parts_not_repeated() -> None:
    import pickle

    from annobridge.core.formats import ConversionReport

    template = "filled {total} values: {counts}"
    total = ConversionReport()
    for counts in ({"a": 2, "b": 1}, {"b": 3}, {}):
        part = ConversionReport()
        part.notes.append("the same note from every part")
        if counts:
            part.tally(template, counts)
        total.add(pickle.loads(pickle.dumps(part)))  # as a worker's report arrives
    assert total.notes == ["the same note from every part", "filled 6 values: a 2, b 4"]
