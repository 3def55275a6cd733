"""``annobridge metadata import|compute`` and ``inspect``, end to end, plus the compute hooks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image

import annobridge
from annobridge.converters.cli import main
from annobridge.converters.metadata_tools import available_stats, compute_metadata
from annobridge.core.errors import FormatError
from annobridge.core.hookspecs import hookimpl
from annobridge.core.model import DatasetItem
from annobridge.core.plugins import get_plugin_manager

ROOT = Path(__file__).resolve().parent.parent
BUCKET = ROOT / "fixtures" / "lightly" / "datasource" / "bucket"
CLI = str(Path(sys.executable).parent / "annobridge")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def jsonl_dataset(tmp_path: Path) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    colours = {"red": (255, 0, 0), "black": (0, 0, 0), "grey": (100, 100, 100)}
    items = []
    for name, colour in colours.items():
        Image.new("RGB", (6, 4), colour).save(images / f"{name}.png")
        items.append(DatasetItem(reference_id=name, image_location=str(images / f"{name}.png"),
                                 width=6, height=4, metadata={"keep": name}))
    dst = tmp_path / "ds.jsonl"
    annobridge.save(items, dst, "jsonl")
    return dst


def _metadata(path: Path, fmt: str = "jsonl", **options: Any) -> dict[str, dict[str, Any]]:
    return {i.reference_id: i.metadata for i in annobridge.load(path, fmt, options or None).items}


def test_import_csv_merges_typed_values(jsonl_dataset: Path, tmp_path: Path) -> None:
    csv = tmp_path / "m.csv"
    csv.write_text("file_name,weather.temperature,night,site\nred.png,10.5,true,\nblack.png,11,false,north\n")
    res = run("metadata", "import", jsonl_dataset, "--from-csv", csv, "--key", "file_name")
    assert res.returncode == 0, res.stderr
    assert "merged on 2 of 3 items" in res.stdout
    md = _metadata(jsonl_dataset)
    assert md["red"] == {"keep": "red", "weather": {"temperature": 10.5}, "night": True}
    assert md["black"] == {"keep": "black", "weather": {"temperature": 11}, "night": False, "site": "north"}
    assert md["grey"] == {"keep": "grey"}


def test_import_replace_deletes_keys_not_resent(jsonl_dataset: Path, tmp_path: Path) -> None:
    js = tmp_path / "m.json"
    js.write_text(json.dumps([{"file_name": "grey.png", "metadata": {"x": 1}}]))
    res = run("metadata", "import", jsonl_dataset, "--from-json", js, "--replace")
    assert res.returncode == 0, res.stderr
    assert _metadata(jsonl_dataset)["grey"] == {"x": 1}


def test_unknown_file_name_fails_and_writes_nothing(jsonl_dataset: Path, tmp_path: Path) -> None:
    before = jsonl_dataset.read_bytes()
    csv = tmp_path / "m.csv"
    csv.write_text("file_name,x\nred.png,1\nnope.png,2\n")
    res = run("metadata", "import", jsonl_dataset, "--from-csv", csv)
    assert res.returncode == 1
    assert "m.csv:line 3: file_name 'nope.png' names no item" in res.stderr
    assert "--skip-unknown" in res.stderr
    assert jsonl_dataset.read_bytes() == before
    res = run("metadata", "import", jsonl_dataset, "--from-csv", csv, "--skip-unknown")
    assert res.returncode == 0, res.stderr
    assert "skipped 1 row(s) naming no item: nope.png" in res.stdout
    assert _metadata(jsonl_dataset)["red"]["x"] == 1


def test_type_conflict_with_existing_metadata_fails_and_writes_nothing(jsonl_dataset: Path, tmp_path: Path) -> None:
    before = jsonl_dataset.read_bytes()
    csv = tmp_path / "m.csv"
    csv.write_text("file_name,keep\nred.png,5\n")
    res = run("metadata", "import", jsonl_dataset, "--from-csv", csv)
    assert res.returncode == 1
    assert 'metadata key "keep" is a number on item "red" but a string on item "black"' in res.stderr
    assert jsonl_dataset.read_bytes() == before


def test_import_into_a_lightly_datasource_saves_lightly_files(tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    shutil.copytree(BUCKET, bucket)
    csv = tmp_path / "m.csv"
    csv.write_text("file_name,crowd,game_id\nHALL-B/g202/cam1_0003.png,120,303\n")
    res = run("metadata", "import", bucket / ".lightly", "--from-csv", csv, "-o", f"input={bucket}",
              "-o", "frames=clips/rally.mp4=12")
    # game_id is a string in the schema; the CSV types 303 as a number: refused, nothing written
    assert res.returncode == 1 and '"game_id"' in res.stderr
    csv.write_text("file_name,crowd\nHALL-B/g202/cam1_0003.png,120\n")
    res = run("metadata", "import", bucket / ".lightly", "--from-csv", csv, "-o", f"input={bucket}",
              "-o", "frames=clips/rally.mp4=12")
    assert res.returncode == 0, res.stderr
    written = json.loads((bucket / ".lightly/metadata/HALL-B/g202/cam1_0003.json").read_text())
    assert written["file_name"] == "HALL-B/g202/cam1_0003.png" and written["metadata"]["crowd"] == 120
    schema = {e["path"]: e for e in json.loads((bucket / ".lightly/metadata/schema.json").read_text())}
    assert schema["crowd"]["valueDataType"] == "NUMERIC_INT"
    assert schema["game_id"]["name"] == "game id"  # the schema read is kept
    assert (bucket / "HALL-A/g101/cam1_0001.png").is_file()  # media untouched


def test_compute_luminance_and_rgb_ratios_safe_on_black(jsonl_dataset: Path) -> None:
    res = run("metadata", "compute", jsonl_dataset, "--stats", "luminance,rgb-ratios")
    assert res.returncode == 0, res.stderr
    assert "computed luminance, rgb-ratios for 3 of 3 items" in res.stdout
    assert "computing" not in res.stderr  # no progress bar when stderr is not a terminal
    md = _metadata(jsonl_dataset)
    assert md["black"] == {"keep": "black", "luminance": 0.0, "red_ratio": 0.0,
                           "green_ratio": 0.0, "blue_ratio": 0.0}  # total = 1 on black
    assert md["red"]["red_ratio"] == 1.0 and md["red"]["green_ratio"] == 0.0
    assert md["red"]["luminance"] == 76.0  # Pillow L of pure red = 76, on 0..255
    assert md["grey"]["luminance"] == 100.0


def test_compute_unknown_stat_is_an_error(jsonl_dataset: Path) -> None:
    res = run("metadata", "compute", jsonl_dataset, "--stats", "sharpness")
    assert res.returncode == 1
    assert "unknown stat(s) sharpness; known stats: luminance, rgb-ratios" in res.stderr


class _Sharpness:
    @hookimpl
    def metadata_stats(self) -> list[str]:
        return ["sharpness", "luminance"]

    @hookimpl
    def compute_metadata(self, item: DatasetItem, image: Any, stats: list[str]) -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        if "sharpness" in stats:
            out["sharpness"] = image.size[0]
        if "luminance" in stats:
            out["luminance"] = -1.0  # overrides the trylast built-in
        return out or None


def test_compute_metadata_and_metadata_stats_hooks_let_a_plugin_add_and_override_stats(jsonl_dataset: Path) -> None:
    pm = get_plugin_manager(load_entry_points=False)
    pm.register(_Sharpness(), name="sharpness")
    assert available_stats(pm) == ["sharpness", "luminance", "rgb-ratios"]
    result = compute_metadata(jsonl_dataset, ["sharpness", "luminance"], plugin_manager=pm)
    assert result.updated == 3
    md = _metadata(jsonl_dataset)
    assert md["red"] == {"keep": "red", "sharpness": 6, "luminance": -1.0}
    with pytest.raises(FormatError, match="unknown stat"):
        compute_metadata(jsonl_dataset, ["blur"])


def test_inspect_shows_types_distinct_counts_and_histograms(tmp_path: Path) -> None:
    res = run("inspect", BUCKET / ".lightly", "-o", f"input={BUCKET}", "-o", "frames=clips/rally.mp4=12")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "players                  numeric-int      5 distinct" in out
    assert "8..10" in out and "#" in out
    assert "indoor                   boolean          2 distinct" in out
    assert "geographic coordinates (lat/lon) at: gps" in out
    assert "scenes metadata:" in out
    res = run("inspect", BUCKET / ".lightly", "--json", "-o", f"input={BUCKET}", "-o", "frames=clips/rally.mp4=12")
    data = json.loads(res.stdout)
    # the two frames take the video's court (Lightly's video-level file); one image has no file
    assert sorted(map(tuple, data["metadata"]["items"]["court"]["histogram"])) == [
        ("HALL-A", 3), ("HALL-B", 1), ("undefined", 1)]
    assert data["geo"] == {"items": ["gps"]}


def test_import_needs_exactly_one_table(jsonl_dataset: Path) -> None:
    result = CliRunner().invoke(main, ["metadata", "import", str(jsonl_dataset)])
    assert result.exit_code == 2
    assert "give exactly one of --from-csv FILE or --from-json FILE" in result.output


def test_convert_ground_truth_to_lightly_needs_the_score_option(tmp_path: Path) -> None:
    from annobridge.core.model import BoxAnnotation, Category, Dataset, DatasetHeader

    header = DatasetHeader(categories=[Category(id=1, name="person"), Category(id=18, name="dog")])
    items = [DatasetItem(reference_id="img1", image_location="img1.jpg", width=20, height=10,
                         annotations=[BoxAnnotation(label="dog", x=-1, y=2, width=5, height=4)])]
    src = tmp_path / "gt.jsonl"
    annobridge.save(Dataset(header=header, items=items), src, "jsonl")
    res = run("convert", src, tmp_path / "a" / ".lightly", "--to", "lightly")
    assert res.returncode == 0, res.stderr
    assert "dropped 1 x box: Lightly holds predictions only; pass --option score=S" in res.stdout
    assert not (tmp_path / "a" / ".lightly" / "predictions").exists()
    res = run("convert", src, tmp_path / "b" / ".lightly", "--to", "lightly", "--option", "score=1.0")
    assert res.returncode == 0, res.stderr
    assert "dropped 1 x prediction:box:clipped" in res.stdout
    written = json.loads((tmp_path / "b/.lightly/predictions/object_detection/img1.json").read_text())
    assert written == {"file_name": "img1.jpg",
                       "predictions": [{"category_id": 18, "bbox": [0, 2, 4, 4], "score": 1.0}]}


def test_import_names_an_ambiguous_base_name_and_takes_the_full_path(tmp_path: Path) -> None:
    from annobridge.converters.metadata_tools import import_metadata
    from annobridge.core.errors import ReadError

    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        Image.new("RGB", (2, 2)).save(tmp_path / sub / "x.png")
    items = [DatasetItem(reference_id=f"{sub}-x", image_location=str(tmp_path / sub / "x.png")) for sub in ("a", "b")]
    ds = tmp_path / "ds.jsonl"
    annobridge.save(items, ds, "jsonl")
    table = tmp_path / "t.json"
    table.write_text(json.dumps({"x.png": {"k": 1}}))
    with pytest.raises(ReadError, match=r"t\.json#/x\.png: file_name 'x\.png' matches several items \('a-x', 'b-x'\)"):
        import_metadata(ds, table)
    table.write_text(json.dumps({"b/x.png": {"k": 1}}))
    result = import_metadata(ds, table)
    assert result.updated == 1 and _metadata(ds) == {"a-x": {}, "b-x": {"k": 1}}
