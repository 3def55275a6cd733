"""``--executor dask``: per-item work as Dask tasks on a real ``LocalCluster`` of two workers gives
the output of one process, in order; errors name the item and leave nothing behind."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import annobridge
from annobridge.converters import engine
from annobridge.core.errors import FormatError, WriteError
from annobridge.core.formats import Context
from annobridge.core.plugins import get_registry
from tests.panoptic_helpers import make_panoptic
from tests.strategies import datasets
from tests.test_roundtrip import _with_real_images
from tests.test_storage import _nucleus_with_big_mask
from tests.test_workers import WRITABLE, _tree

CLI = str(Path(sys.executable).with_name("annobridge"))

# the in-process cluster's threads use the `random` module while Hypothesis draws data, which
# Hypothesis warns about; the draws do not depend on it
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """``dask://HOST:PORT`` of a two-worker LocalCluster (threads in this process: quick to start)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1",
                      dashboard_address=None) as cluster:
        yield "dask://" + cluster.scheduler_address.removeprefix("tcp://")


@pytest.mark.parametrize("fmt_name", WRITABLE)
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_dask_gives_the_output_of_one_process(fmt_name: str, scheduler: str, data: st.DataObject) -> None:
    fmt = get_registry().get(fmt_name)
    dataset = data.draw(datasets(fmt.capabilities, fmt_name))
    with tempfile.TemporaryDirectory() as tmp:
        dataset = _with_real_images(dataset, Path(tmp) / "images")
        items = list(dataset.items)
        outputs = {}
        for executor in ("process", scheduler):
            dataset.items = iter(items)
            out_dir = Path(tmp) / ("local" if executor == "process" else "dask")
            engine.write_dataset(dataset, out_dir / "out", fmt_name,
                                 context=Context(workers=2 if executor != "process" else 1, executor=executor,
                                                 chunksize=2))
            outputs[executor] = _tree(out_dir)
        assert outputs["process"] == outputs[scheduler]
        assert outputs["process"], "the writer wrote nothing"


def test_panoptic_to_coco_on_dask_is_byte_identical(scheduler: str, tmp_path: Path) -> None:
    src = make_panoptic(tmp_path / "src", "val", images=6)
    one = annobridge.convert(src, tmp_path / "one" / "out.json", "coco")
    many = annobridge.convert(src, tmp_path / "dask" / "out.json", "coco", executor=scheduler, workers=2)
    assert one.items_written == many.items_written == 6
    assert _tree(tmp_path / "one") == _tree(tmp_path / "dask")


def test_a_failing_item_is_named_and_nothing_is_left(scheduler: str, tmp_path: Path) -> None:
    src = _nucleus_with_big_mask(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(WriteError, match='img-1') as err:
        annobridge.convert(src / "items.jsonl", out / "items.jsonl", "nucleus", executor=scheduler, workers=2,
                           write_options={"renumber-segments": "false"})  # by default it would be renumbered
    assert "8-bit" in str(err.value)
    assert not out.exists()


def test_cli_local_cluster_of_two_processes(tmp_path: Path) -> None:
    src = make_panoptic(tmp_path / "src", "val", images=4)
    one = subprocess.run([CLI, "convert", str(src), str(tmp_path / "one" / "pan.json"), "--to", "coco-panoptic"],
                         capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([CLI, "convert", str(src), str(tmp_path / "two" / "pan.json"), "--to", "coco-panoptic",
                          "--executor", "dask", "--workers", "2"], capture_output=True, text=True)
    assert two.returncode == 0, two.stderr
    assert _tree(tmp_path / "one") == _tree(tmp_path / "two")


def test_bad_executors_are_clear_errors(tmp_path: Path) -> None:
    src = make_panoptic(tmp_path / "src", "val", images=2)
    with pytest.raises(FormatError, match="unknown executor 'threads'"):
        annobridge.convert(src, tmp_path / "a.json", "coco", executor="threads", workers=2)
    with pytest.raises(FormatError, match="cannot reach the Dask scheduler"):
        annobridge.convert(src, tmp_path / "b.json", "coco", executor="dask://127.0.0.1:9", workers=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_workers_that_cannot_help_are_named_in_the_report(tmp_path: Path) -> None:
    src = make_panoptic(tmp_path / "src", "val", images=2)
    annobridge.convert(src, tmp_path / "items.jsonl", "jsonl")
    report = annobridge.convert(tmp_path / "items.jsonl", tmp_path / "again.jsonl", "jsonl", workers=2)
    assert "ran in one process: jsonl -> jsonl has no per-item work for workers (--workers/--executor)" in report.notes
    busy = annobridge.convert(src, tmp_path / "out.json", "coco", workers=2)  # PNGs decoded on the workers
    assert not any(n.startswith("ran in one process") for n in busy.notes)
