"""The Python API: one naming for formats (old names as aliases), options as models, typed
results checked by mypy, and the dataset operations relabel/merge/split."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import annobridge
from annobridge import BoxAnnotation, Dataset, DatasetItem, MaterializedDataset
from annobridge.plugins.coco import CocoReadOptions, CocoWriteOptions
from tests.conftest import FIXTURES

COCO_SRC = FIXTURES / "coco" / "synthetic" / "instances.json"
JSONL = FIXTURES / "jsonl" / "all-kinds" / "dataset.jsonl"


def test_new_and_old_format_names_do_the_same(tmp_path: Path) -> None:
    new = annobridge.convert(COCO_SRC, tmp_path / "a.jsonl", "jsonl", from_format="coco")
    old = annobridge.convert(COCO_SRC, tmp_path / "b.jsonl", src_format="coco", dst_format="jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert new.model_dump() | {"destination": None} == old.model_dump() | {"destination": None}
    assert annobridge.load(COCO_SRC, from_format="coco").items == annobridge.load(COCO_SRC, format="coco").items
    annobridge.save(annobridge.load(JSONL), tmp_path / "c.jsonl", to_format="jsonl")
    annobridge.save(annobridge.load(JSONL), tmp_path / "d.jsonl", format="jsonl")
    assert annobridge.validate(JSONL, from_format="jsonl") == annobridge.validate(JSONL, format="jsonl") == []
    with pytest.raises(TypeError, match="not both"):
        annobridge.load(COCO_SRC, from_format="coco", format="jsonl")


def test_options_as_models_or_dicts(tmp_path: Path) -> None:
    ds = annobridge.load(FIXTURES / "coco" / "crowdpose" / "test_crowdpose.json",
                         options=CocoReadOptions(bad_skeleton_edges="drop"))
    same = annobridge.load(FIXTURES / "coco" / "crowdpose" / "test_crowdpose.json",
                           options={"bad-skeleton-edges": "drop"})
    assert ds.items == same.items
    items = [DatasetItem(reference_id="a", width=10, height=10,
                         predictions=[BoxAnnotation(label="car", x=1, y=1, width=2, height=2, confidence=0.5)])]
    annobridge.save(items, tmp_path / "r.json", "coco", CocoWriteOptions(results=True))
    assert (tmp_path / "r.json").read_text().startswith("[")  # a results list


def test_load_materialises_and_streams() -> None:
    ds = annobridge.load(JSONL)
    assert isinstance(ds, MaterializedDataset) and isinstance(ds.items, list) and ds.total == len(ds.items)
    lazy = annobridge.load(JSONL, stream=True)
    assert isinstance(lazy, Dataset) and not isinstance(lazy.items, list)


def test_py_typed_ships_and_mypy_accepts_a_user_script(tmp_path: Path) -> None:
    """mypy checks a user's script against the package as pip installs it (not the editable
    finder, which mypy cannot follow): a no-deps install into a folder on MYPYPATH."""
    root = Path(__file__).resolve().parents[1]
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(root)], check=True, capture_output=True, timeout=300)
    assert (target / "annobridge" / "py.typed").is_file()
    script = tmp_path / "user.py"
    script.write_text(
        "import annobridge\n"
        "ds = annobridge.load('x.json', from_format='coco')\n"
        "first: annobridge.DatasetItem = ds.items[0]\n"   # items is a list when materialised
        "n: int = len(ds.items)\n"
        "report = annobridge.convert('a', 'b', 'jsonl')\n"
        "lossless: bool = report.lossless\n"
    )
    bad = tmp_path / "bad.py"
    bad.write_text("import annobridge\nds = annobridge.load('x', stream=True)\nfirst = ds.items[0]\n")
    env = {"MYPYPATH": str(target), "PATH": str(Path(sys.executable).parent)}
    args = [sys.executable, "-m", "mypy", "--no-incremental", "--follow-imports=silent",
            "--ignore-missing-imports", "--no-site-packages", "--python-executable", sys.executable]
    ok = subprocess.run([*args, str(script)], capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    wrong = subprocess.run([*args, str(bad)], capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert wrong.returncode == 1 and "not indexable" in wrong.stdout, wrong.stdout


def test_relabel_maps_filters_and_reports() -> None:
    from annobridge.core.formats import ConversionReport

    ds = annobridge.load(JSONL)
    report = ConversionReport()
    out = annobridge.relabel(ds, {"car": "vehicle", "lane": None}, report=report)
    before = Counter(a.label for it in ds.items for a in it.annotations if hasattr(a, "label"))
    after = Counter(a.label for it in out.items for a in it.annotations if hasattr(a, "label"))
    assert after["vehicle"] == before["car"] and "car" not in after and "lane" not in after
    assert sum(report.dropped["line"].values()) == before["lane"]
    assert out.header.category_named("vehicle").id == ds.header.category_named("car").id
    preds = [p for it in out.items for p in it.predictions]
    assert preds and all(p.label == "vehicle" for p in preds)
    kept = annobridge.relabel(ds, keep=["road"])
    seg = next(a for it in kept.items for a in it.annotations if a.type == "segmentation")
    assert [s.label for s in seg.annotations] == ["road"]
    assert all(a.type == "segmentation" for it in kept.items for a in it.annotations)


def test_merge_unions_items_with_the_same_id() -> None:
    a = Dataset.of([DatasetItem(reference_id="x", image_location="x.png",
                                annotations=[BoxAnnotation(label="car", x=0, y=0, width=1, height=1)])])
    b = Dataset.of([DatasetItem(reference_id="x", image_location="x.png", metadata={"k": 1},
                                annotations=[BoxAnnotation(label="bus", x=0, y=0, width=1, height=1)]),
                    DatasetItem(reference_id="y")])
    merged = annobridge.merge([a, b])
    assert [it.reference_id for it in merged.items] == ["x", "y"]
    x = merged.items[0]  # type: ignore[index]
    assert [ann.label for ann in x.annotations] == ["car", "bus"] and x.metadata == {"k": 1}
    clash = Dataset.of([DatasetItem(reference_id="x", image_location="other.png")])
    with pytest.raises(annobridge.AnnobridgeError, match="rename the items"):
        annobridge.merge([a, clash])


def test_split_is_seeded_disjoint_and_stratified() -> None:
    items = [DatasetItem(reference_id=f"{label}{n}",
                         annotations=[BoxAnnotation(label=label, x=0, y=0, width=1, height=1)])
             for label, count in (("cat", 30), ("dog", 10)) for n in range(count)]
    ds = Dataset.of(items)
    parts = annobridge.split(ds, {"train": 0.8, "val": 0.2}, seed=1, stratify=True)
    again = annobridge.split(ds, {"train": 0.8, "val": 0.2}, seed=1, stratify=True)
    ids = {k: [it.reference_id for it in d.items] for k, d in parts.items()}
    assert ids == {k: [it.reference_id for it in d.items] for k, d in again.items()}
    assert sorted(ids["train"] + ids["val"]) == sorted(it.reference_id for it in items)
    for label, total in (("cat", 30), ("dog", 10)):
        assert sum(1 for i in ids["val"] if i.startswith(label)) == total // 5  # 20 % of each label
    other = annobridge.split(ds, {"train": 0.8, "val": 0.2}, seed=2, stratify=True)
    assert [it.reference_id for it in other["val"].items] != ids["val"]


def test_coco_reader_knows_its_item_total_for_the_progress_bar() -> None:
    lazy = annobridge.load(COCO_SRC, stream=True)
    assert lazy.total == 10 == sum(1 for _ in lazy.items)
