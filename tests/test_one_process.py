"""Local workers that would not help are not used (issue 14, point 5): a local source whose
units are light to read (``Format.heavy_units`` False: a text or JSON record, an image header) is read
in parts by local workers only for a target that writes the parts there too (``Format.parts``:
KITTI, YOLO); for a target the driver writes, the source is read in one process, and a writer's
per-item work that costs less than sending it to a worker (``Context.map``'s ``here``: a record
with no mask or point cloud) stays in the driver. Measured with 2 workers against 1 (README,
Performance): 0.55-0.94x for each of these cases before. The report says so; the output is the
one process's."""

from __future__ import annotations

import operator
from pathlib import Path
from typing import Any

import pytest

import annobridge
from annobridge.core.formats import Context
from tests.test_lightly_shards import _generated
from tests.test_sharded import _kitti, _nucleus, _panoptic, _same_report, _yolo_folder
from tests.test_workers import _tree

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")


def _kitti_no_clouds(tmp: Path) -> Path:
    src = _kitti(tmp)
    for scan in (src / "training" / "velodyne").glob("*.bin"):
        scan.unlink()
    return src


ONE_PROCESS = {  # source maker, source format, target, output name
    "lightly->nucleus": (_generated, "lightly", "nucleus", "out.jsonl"),
    "lightly->coco": (_generated, "lightly", "coco", "out.json"),
    "lightly->lightly": (_generated, "lightly", "lightly", ".lightly"),
    "kitti->coco": (_kitti, "kitti", "coco", "out.json"),
    "kitti-no-clouds->nucleus": (_kitti_no_clouds, "kitti", "nucleus", "out.jsonl"),
    "yolo->coco": (_yolo_folder, "yolo", "coco", "out.json"),
    "nucleus->nucleus": (_nucleus, "nucleus", "nucleus", "out.jsonl"),
}


@pytest.mark.parametrize("case", sorted(ONE_PROCESS))
def test_light_units_for_a_target_the_driver_writes_run_in_one_process(case: str, tmp_path: Path) -> None:
    make, source, target, name = ONE_PROCESS[case]
    src = make(tmp_path)
    one = annobridge.convert(src, tmp_path / "one" / name, target)
    many = annobridge.convert(src, tmp_path / "two" / name, target, workers=2)
    assert (f"read in one process: local workers reading {source} in parts would send every item back for "
            f"this process to write {target}, which costs more than reading it") in many.notes
    assert not any("parts by the workers" in n for n in many.notes)
    # masks to encode go to the workers: the generated Lightly predictions' (RLE in Lightly files) and
    # the Nucleus fixture's (8-bit PNGs); other records are built in the driver
    busy = case in ("lightly->lightly", "nucleus->nucleus")
    ran_here = f"ran in one process: {source} -> {target} has no per-item work for workers (--workers/--executor)"
    assert (ran_here in many.notes) is not busy, many.notes
    assert _tree(tmp_path / "one") == _tree(tmp_path / "two")
    _same_report(one, many)


def test_kitti_scans_for_nucleus_are_converted_on_the_workers(tmp_path: Path) -> None:
    """The frames are read in the driver; each velodyne scan is converted to pointcloud JSON by a worker."""
    src = _kitti(tmp_path)
    one = annobridge.convert(src, tmp_path / "one" / "out.jsonl", "nucleus")
    many = annobridge.convert(src, tmp_path / "two" / "out.jsonl", "nucleus", workers=2)
    assert any(n.startswith("read in one process: local workers reading kitti") for n in many.notes)
    assert not any(n.startswith("ran in one process") for n in many.notes)
    assert _tree(tmp_path / "one") == _tree(tmp_path / "two")
    _same_report(one, many)


@pytest.mark.parametrize(("make", "target", "name"), [(_panoptic, "coco", "out.json"),  # PNGs decoded in parts
                                                       (_kitti, "kitti", "out"), (_yolo_folder, "yolo", "out")])
def test_heavy_units_and_targets_written_in_parts_are_read_in_parts(make: Any, target: str, name: str,
                                                                     tmp_path: Path) -> None:
    many = annobridge.convert(make(tmp_path), tmp_path / "two" / name, target, workers=2)
    assert any(n.startswith("read in ") and "parts by the workers" in n for n in many.notes), many.notes
    assert not any("one process" in n for n in many.notes)


def test_map_runs_what_is_cheaper_here_in_its_place() -> None:
    ctx = Context(workers=2)
    try:
        values = list(range(-40, 0))
        assert list(ctx.map(operator.neg, values, chunksize=3, here=lambda x: x % 5 == 0)) == [-x for x in values]
        assert ctx.shared_out
    finally:
        ctx.close()
    alone = Context(workers=2)
    assert list(alone.map(operator.neg, values, here=lambda x: True)) == [-x for x in values]
    assert not alone.shared_out and alone._pool is None  # no worker was started
