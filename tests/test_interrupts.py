"""Signals and crashes in a real ``annobridge convert`` subprocess (issue 10, point 5).

The source dataset's last mask is a FIFO nobody writes to, so the conversion blocks on it
(in the parent with one process, in a worker with ``--workers 2``) at a known point: the
staging folder exists and the workers are running. Then the test sends the signal.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="FIFOs and /proc: Linux only")

CLI = str(Path(sys.executable).with_name("annobridge"))


def _dataset(folder: Path, n: int = 20, block: bool = True) -> Path:
    """A canonical JSONL dataset of ``n`` items with 4x4 masks; the last mask blocks when ``block``."""
    folder.mkdir(parents=True)
    lines = [json.dumps({"annobridge_header": {"version": 1, "header": {}}})]
    for i in range(n):
        name = "block.png" if block and i == n - 1 else f"m{i}.png"
        if name == "block.png":
            os.mkfifo(folder / name)
        else:
            Image.fromarray(np.full((4, 4), 1, np.uint8)).save(folder / name)
        lines.append(json.dumps({"reference_id": f"i{i}", "width": 4, "height": 4,
                                 "image_location": f"https://e.com/i{i}.png", "annotations": [  # Nucleus needs an image
            {"type": "segmentation", "mask": {"location": name, "encoding": "index"},
             "annotations": [{"label": "a", "index": 1}]}]}))
    path = folder / "d.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _children(pid: int) -> set[int]:
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.add(int(entry.name))
    return out


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def _start(src: Path, dst: Path, workers: int) -> tuple[subprocess.Popen[str], set[int]]:
    proc = subprocess.Popen([CLI, "convert", str(src), str(dst), "--to", "nucleus", "--workers", str(workers)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until it blocks: staging made, workers up
        staged = list(dst.parent.glob(f".{dst.name}.annobridge-*.partial")) if dst.parent.exists() else []
        kids = _children(proc.pid)
        if staged and len(kids) >= (workers if workers > 1 else 0):
            time.sleep(0.5)
            return proc, _children(proc.pid)
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the conversion never reached its blocking mask")


def _wait_gone(pids: set[int], seconds: float = 10) -> set[int]:
    deadline = time.monotonic() + seconds
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _alive(pids)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("workers", [1, 2])
def test_a_signal_removes_staging_and_exits_with_128_plus_signal(tmp_path: Path, sig: int, code: int,
                                                                  workers: int) -> None:
    src = _dataset(tmp_path / "src")
    dst = tmp_path / "new" / "deeper" / "out.jsonl"
    proc, kids = _start(src, dst, workers)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)  # never hangs
    assert proc.returncode == code, err
    assert err.strip().count("\n") == 0 and "interrupted by" in err and "Traceback" not in err
    assert not (tmp_path / "new").exists()  # staging gone, and the parents this run created too
    assert not _wait_gone(kids), "worker processes outlived the run"


def test_workers_exit_when_the_parent_is_killed_and_the_next_run_removes_its_staging(tmp_path: Path) -> None:
    src = _dataset(tmp_path / "src")
    dst = tmp_path / "out" / "n.jsonl"
    proc, kids = _start(src, dst, 2)
    assert kids
    proc.kill()
    proc.communicate(timeout=30)
    assert not _wait_gone(kids), "workers outlived a killed parent"
    stale = list(dst.parent.glob(".n.jsonl.annobridge-*.partial"))
    assert len(stale) == 1
    good = _dataset(tmp_path / "good", n=3, block=False)
    done = subprocess.run([CLI, "convert", str(good), str(dst), "--to", "nucleus"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"removed {stale[0]}" in done.stdout
    assert not stale[0].exists() and dst.is_file()
