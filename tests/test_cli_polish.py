"""CLI conveniences, run as real subprocesses: stdin/stdout, -q/-v anywhere, validate --json,
--fail-on-drop, formats FMT, completion of format names, label mapping, merge and split."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path

from pycocotools.coco import COCO

import annobridge
from tests.conftest import FIXTURES
from tests.test_cli import BIN, run

COCO_SRC = FIXTURES / "coco" / "synthetic" / "instances.json"
JSONL = FIXTURES / "jsonl" / "all-kinds" / "dataset.jsonl"


def test_stdin_to_stdout_is_read_by_pycocotools(tmp_path: Path) -> None:
    proc = subprocess.run([str(BIN), "convert", "-", "-", "--from", "coco", "--to", "coco"],
                          input=COCO_SRC.read_bytes(), capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out.json"
    out.write_bytes(proc.stdout)  # stdout holds the file alone: the summary went to stderr
    assert b"nothing was dropped" in proc.stderr
    coco = COCO(str(out))
    assert len(coco.getImgIds()) == len(COCO(str(COCO_SRC)).getImgIds())
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob("annobridge-stdio-*/stdin"))


def test_stdio_refusals(tmp_path: Path) -> None:
    folder = run("convert", str(COCO_SRC), "-", "--to", "kitti", check_code=1)
    assert "writes a folder, which cannot go to standard output" in folder.stderr
    no_format = subprocess.run([str(BIN), "convert", "-", str(tmp_path / "x.jsonl"), "--to", "jsonl"],
                               input="", capture_output=True, text=True)
    assert no_format.returncode == 2 and "needs --from" in no_format.stderr
    assert not (tmp_path / "-").exists()


def test_quiet_and_verbose_after_the_subcommand(tmp_path: Path) -> None:
    quiet = run("convert", str(JSONL), str(tmp_path / "a.jsonl"), "--to", "jsonl", "-q")
    assert quiet.stdout == ""
    loud = run("inspect", str(JSONL), "-vv")
    assert "DEBUG" in loud.stderr or "INFO" in loud.stderr or loud.stdout  # accepted, not a usage error
    both = run("convert", "-q", str(JSONL), str(tmp_path / "b.jsonl"), "--to", "jsonl")
    assert both.stdout == ""


def test_validate_json_lists_problems_with_their_places() -> None:
    bad = FIXTURES / "coco" / "datumaro_captions_malformed" / "captions_val.json"  # category 0 missing
    proc = run("validate", str(bad), "--json", check_code=1)
    out = json.loads(proc.stdout)
    assert out["valid"] is False and out["format"] == "coco"
    assert out["problems"] and all(p["file"] and p["where"].startswith("#/") for p in out["problems"])
    ok = json.loads(run("validate", str(JSONL), "--json").stdout)
    assert ok == {"path": str(JSONL), "format": "jsonl", "valid": True, "problems": [], "warnings": []}


def test_fail_on_drop_exits_3_only_when_something_was_dropped(tmp_path: Path) -> None:
    lossy = run("convert", str(COCO_SRC), str(tmp_path / "k"), "--to", "kitti", "--fail-on-drop", check_code=3)
    assert "dropped" in lossy.stdout
    run("convert", str(COCO_SRC), str(tmp_path / "c.jsonl"), "--to", "jsonl", "--fail-on-drop")


def test_formats_lists_options_of_one_format_and_in_json() -> None:
    one = json.loads(run("formats", "coco", "--json").stdout)
    read = {o["name"]: o for o in one["read_options"]}
    assert read["bad-skeleton-edges"]["default"] == "keep"  # strict=true makes it "error"
    assert "1-based" in read["bad-skeleton-edges"]["description"] or "skeleton" in read["bad-skeleton-edges"]["description"]
    assert [o["name"] for o in one["write_options"]] == ["results"]
    every = json.loads(run("formats", "--json").stdout)
    assert all("read_options" in r and "write_options" in r for r in every)
    text = run("formats", "kitti").stdout
    assert "read options" in text and "label-map" in text
    assert "unknown" in run("formats", "nope", check_code=1).stderr.lower()


def test_shell_completion_completes_format_names() -> None:
    env = {"_ANNOBRIDGE_COMPLETE": "bash_complete", "COMP_WORDS": "annobridge convert a b --to co",
           "COMP_CWORD": "5"}
    proc = run(env=env)
    names = [line.split(",", 1)[1] for line in proc.stdout.splitlines()]
    assert names == ["coco", "coco-panoptic"]


def test_map_and_keep_labels_in_the_cli_are_reported(tmp_path: Path) -> None:
    mapping = tmp_path / "map.csv"
    mapping.write_text("old,new\nperson,human\nclass_43,\n")
    out = tmp_path / "out.jsonl"
    proc = run("convert", str(COCO_SRC), str(out), "--to", "jsonl", "--map-labels", str(mapping),
               "--keep-labels", "human,class_44", "--json")
    report = json.loads(proc.stdout)
    labels = Counter(a.label for it in annobridge.load(out).items for a in it.annotations)
    source = Counter(a.label for it in annobridge.load(COCO_SRC).items for a in it.annotations)
    assert labels == {"human": source["person"], "class_44": source["class_44"]}
    dropped = sum(n for kind in report["dropped"].values() for n in kind.values())
    assert dropped == sum(source.values()) - sum(labels.values())
    assert report["dropped"]["polygon"]["label removed by the label map (--map-labels)"] == source["class_43"]
    assert [c.name for c in annobridge.load(out).header.categories] == ["human", "class_44"]


def test_merge_and_split_commands(tmp_path: Path) -> None:
    merged = tmp_path / "merged.jsonl"
    run("merge", str(COCO_SRC), str(JSONL), str(merged), "--to", "jsonl")
    ds = annobridge.load(merged)
    a, b = annobridge.load(COCO_SRC), annobridge.load(JSONL)
    assert [it.reference_id for it in ds.items] == [it.reference_id for it in (*a.items, *b.items)]
    assert {c.name for c in ds.header.categories} == {c.name for c in (*a.header.categories, *b.header.categories)}
    run("split", str(COCO_SRC), str(tmp_path / "parts"), "--ratios", "train=0.7,val=0.3", "--seed", "3")
    train = COCO(str(tmp_path / "parts" / "train.json"))
    val = COCO(str(tmp_path / "parts" / "val.json"))
    assert (len(train.getImgIds()), len(val.getImgIds())) == (7, 3)
    assert not set(train.getImgIds()) & set(val.getImgIds())
    bad = run("split", str(COCO_SRC), str(tmp_path / "p2"), "--ratios", "train=0.7,val=0.2", check_code=1)
    assert "sum to 0.9" in bad.stderr
