"""The installed ``annobridge`` command, run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, ROOT

BIN = Path(sys.executable).parent / "annobridge"


def run(*args: str, cwd: Path | None = None, env: dict | None = None, check_code: int | None = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN), *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=120)
    if check_code is not None:
        assert proc.returncode == check_code, proc.stdout + proc.stderr
    return proc


CSV = FIXTURES / "box-csv/basic/boxes.csv"


def test_formats_lists_builtins_and_the_installed_box_csv_plugin() -> None:
    rows = json.loads(run("formats", "--json").stdout)
    by_name = {r["name"]: r for r in rows}
    assert by_name["jsonl"]["plugin"] == "annobridge.plugins.jsonl"
    assert by_name["yolo"]["plugin"] == "annobridge.plugins.yolo"  # built in
    assert by_name["box-csv"]["plugin"] == "box-csv"  # the entry-point name of the separate package
    assert by_name["box-csv"]["annotations"] == ["box"]
    table = run("formats").stdout
    assert "box-csv" in table and "jsonl" in table


def test_convert_uses_the_plugin_both_ways(tmp_path: Path) -> None:
    out = run("convert", str(CSV), str(tmp_path / "d.jsonl"), "--to", "jsonl").stdout
    assert "read 2 items (box-csv)" in out and "nothing was dropped" in out
    lines = (tmp_path / "d.jsonl").read_text().splitlines()
    first = json.loads(lines[1])
    box = first["annotations"][0]
    assert (first["reference_id"], first["width"], first["height"]) == ("street_001", 64, 48)
    assert (box["label"], box["x"], box["y"], box["width"], box["height"]) == ("car", 24.0, 12.0, 16.0, 24.0)
    run("convert", str(tmp_path / "d.jsonl"), str(tmp_path / "back.csv"), "--to", "box-csv")
    assert (tmp_path / "back.csv").read_text() == CSV.read_text()


def test_plugin_and_builtin_agree_on_the_same_boxes(tmp_path: Path) -> None:
    """The built-in yolo reader and the box-csv plugin read the same three boxes."""
    run("convert", str(FIXTURES / "yolo/basic"), str(tmp_path / "y.csv"), "--to", "box-csv")
    assert (tmp_path / "y.csv").read_text() == CSV.read_text()


def test_lossy_conversion_is_reported(tmp_path: Path) -> None:
    src = tmp_path / "src.jsonl"
    from annobridge import DatasetItem, PolygonAnnotation, save

    save([DatasetItem(reference_id="a", image_location="a.png", width=64, height=48, metadata={"k": 1},
                      annotations=[PolygonAnnotation(label="car", vertices=[(0, 0), (4, 0), (4, 4)])])], src, "jsonl")
    report = json.loads(run("convert", str(src), str(tmp_path / "y.csv"), "--to", "box-csv", "--json").stdout)
    assert report["converted"] == {"polygon -> box": 1}
    assert report["dropped"] == {"item metadata": {"box-csv holds no item metadata": 1}}
    # the polygon's tight extent (0, 0, 4, 4) in pixels
    assert (tmp_path / "y.csv").read_text().splitlines()[1] == "a.png,64,48,car,0.0,0.0,4.0,4.0"
    report = json.loads(run("convert", str(src), str(tmp_path / "n.csv"), "--to", "box-csv", "--json",
                            "--derive", "none").stdout)
    assert report["converted"] == {}
    assert report["dropped"] == {"polygon": {"box-csv cannot hold polygon ground truth (--derive none)": 1},
                                 "item metadata": {"box-csv holds no item metadata": 1}}


def test_existing_destination_exits_1_without_traceback(tmp_path: Path) -> None:
    dst = tmp_path / "d.jsonl"
    dst.write_text("precious")
    proc = run("convert", str(CSV), str(dst), "--to", "jsonl", check_code=1)
    assert "destination already exists; pass --overwrite" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert dst.read_text() == "precious"
    assert run("-q", "convert", str(CSV), str(dst), "--to", "jsonl", "--overwrite").stdout == ""
    assert dst.read_text().startswith('{"annobridge_header"')


def test_bad_input_exits_1_naming_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "b.csv").write_text(CSV.read_text().splitlines()[0] + "\nx.png,8,8,car,1,1,2,2\nx.png,8,8,car,1\n")
    proc = run("convert", str(bad / "b.csv"), str(tmp_path / "o.jsonl"), "--to", "jsonl", check_code=1)
    assert "b.csv:line 3: 5 columns, expected 8" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o.jsonl").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad"]  # no partial output
    proc = run("validate", str(bad / "b.csv"), "--format", "box-csv", check_code=1)
    assert "line 3" in proc.stdout and "1 problem(s) found" in proc.stderr


def test_usage_errors_exit_2() -> None:
    proc = run("convert", "a", "b", check_code=2)
    assert "Missing option '--to'" in proc.stderr


def test_unknown_option_names_accepted_ones(tmp_path: Path) -> None:
    proc = run("convert", str(CSV), str(tmp_path / "o"), "--to", "jsonl",
               "--option", "colour=red", check_code=1)
    assert "option 'colour' is not known to box-csv and jsonl" in proc.stderr


def test_inspect_and_validate_a_fixture() -> None:
    out = run("inspect", str(CSV)).stdout
    assert "2 items" in out and "box" in out and "car" in out
    assert "valid box-csv" in run("validate", str(CSV)).stdout
    assert "valid yolo" in run("validate", str(FIXTURES / "yolo/basic")).stdout


def test_inspect_counts_each_kitti_object_once(tmp_path: Path) -> None:
    """A KITTI row is a box and a cuboid of one object (one group id): one label count."""
    src = FIXTURES / "kitti/openpcdet-sample"
    rows = [line.split()[0] for p in sorted((src / "training/label_2").glob("*.txt"))
            for line in p.read_text().splitlines() if line.strip()]
    data = json.loads(run("inspect", str(src), "--json").stdout)
    assert data["labels"] == dict(Counter(rows))
    assert data["annotations"]["box"] == len(rows) and data["annotations"]["cuboid"] < len(rows)


def test_python_dash_m_and_import_namespace(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "annobridge", "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0 and "0.1.0" in proc.stdout
    ok = subprocess.run([sys.executable, "-c", "import annobridge, annobridge.core.model"], cwd=tmp_path)
    assert ok.returncode == 0
    for top in ("core", "plugins", "converters"):
        bad = subprocess.run([sys.executable, "-c", f"import {top}"], cwd=tmp_path, capture_output=True)
        assert bad.returncode != 0, f"a top-level {top!r} package is importable"


def test_a_broken_plugin_is_reported_and_others_still_load(tmp_path: Path) -> None:
    """A real entry point (dist-info on sys.path) whose module fails to import."""
    dist = tmp_path / "annobridge_broken-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: annobridge-broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[annobridge]\nbroken = annobridge_broken\n")
    (tmp_path / "annobridge_broken.py").write_text("raise ImportError('needs libfoo')\n")
    env = {"PYTHONPATH": str(tmp_path)}
    report = json.loads(run("plugins", env=env).stdout)
    assert report["failed"] == [{"name": "broken", "error": "ImportError: needs libfoo"}]
    names = {p["name"] for p in report["plugins"]}
    assert {"box-csv", "annobridge.plugins.jsonl"} <= names
    rows = json.loads(run("formats", "--json", env=env).stdout)
    assert {"jsonl", "box-csv"} <= {r["name"] for r in rows}


@pytest.mark.parametrize("source", ["fixtures/jsonl/all-kinds/dataset.jsonl", "fixtures/nucleus/all-kinds"])
@pytest.mark.parametrize("where", ["repository root", "another folder"])
def test_all_kinds_fixtures_convert_to_nucleus_from_any_working_directory(source: str, where: str, tmp_path: Path) -> None:
    """Relative media locations resolve against the source's folder (core.paths.source_root), not the cwd."""
    cwd = ROOT if where == "repository root" else tmp_path
    src = source if cwd == ROOT else str(ROOT / source)
    out = tmp_path / "out" / "x.jsonl"
    proc = run("convert", src, str(out), "--to", "nucleus", "--option", "renumber-segments=true", cwd=cwd)
    assert "point cloud file" not in proc.stdout  # every point cloud was found and copied
    clouds = sorted((tmp_path / "out" / "x.pointclouds").iterdir())
    assert clouds and all(json.loads(c.read_text())["points"] for c in clouds)
    text = out.read_text()
    for c in clouds:  # each copied cloud is referenced relative to the output's folder
        assert f'"x.pointclouds/{c.name}"' in text, c.name
