"""``validate`` finds what ``convert`` would fail on: the dataset is also written, into a
temporary folder, by its own format's writer (or the one ``--to`` names)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import annobridge
from annobridge.core.errors import MetadataTypeError
from tests.conftest import FIXTURES

BUCKET = FIXTURES / "lightly/datasource/bucket"


def test_a_lightly_folder_whose_files_disagree_on_a_type_is_invalid(tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    shutil.copytree(BUCKET, bucket)
    options = {"input": str(bucket), "frames": "clips/rally.mp4=12"}
    assert annobridge.validate(bucket / ".lightly", "lightly", options) == []
    for rel, camera, lens in (("HALL-A/g101/cam1_0001.json", "north", 35), ("HALL-B/g202/cam2_0002.json", 3, "wide")):
        path = bucket / ".lightly/metadata" / rel
        data = json.loads(path.read_text())
        data["metadata"].update(camera=camera, lens=lens)  # not in schema.json: the reader cannot tell
        path.write_text(json.dumps(data))
    problems = annobridge.validate(bucket / ".lightly", "lightly", options)  # every conflict, not the first
    assert all(isinstance(p, MetadataTypeError) for p in problems)
    assert [str(p).split(" is ")[0] for p in problems] == ['metadata key "camera"', 'metadata key "lens"']
    with pytest.raises(MetadataTypeError):  # what convert says too
        annobridge.convert(bucket / ".lightly", tmp_path / "out", src_format="lightly", dst_format="lightly",
                           read_options=options)
    # reading alone finds nothing; another writer may accept it
    assert annobridge.validate(bucket / ".lightly", "lightly", options, write_to="") == []
    assert annobridge.validate(bucket / ".lightly", "lightly", options, write_to="coco") == []


MASKS = {
    "size": (np.zeros((5, 5), np.uint8), "5x5", []),  # the reader checks the PNG header already
    "depth": (np.array([[0, 1, 300], [1, 2, 0]], np.uint16), "does not fit in 8 bits",
              ["--option", "renumber-segments=false"]),  # by default it is renumbered (auto)
}

SEGMENTS = [{"label": "bg", "index": 0}, {"label": "a", "index": 1}, {"label": "b", "index": 2}]


def _nucleus_line(ref: str, mask: str, segments: list[dict[str, object]] = SEGMENTS) -> str:
    return json.dumps({"reference_id": ref, "image_url": f"https://e.com/{ref}.png", "width": 3, "height": 2,
                       "metadata": {}, "annotations": [{"type": "segmentation", "mask_url": mask, "reference_id": ref,
                                                        "annotations": segments}]}) + "\n"


@pytest.mark.parametrize("case", sorted(MASKS))
def test_nucleus_mask_problems_are_found_by_validate(case: str, tmp_path: Path) -> None:
    array, message, options = MASKS[case]
    Image.fromarray(array).save(tmp_path / "m.png")
    (tmp_path / "n.jsonl").write_text(_nucleus_line("i", "m.png"))
    proc = subprocess.run([sys.executable, "-m", "annobridge", "validate", str(tmp_path / "n.jsonl"), *options],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and message in proc.stdout, proc.stdout + proc.stderr
    proc = subprocess.run([sys.executable, "-m", "annobridge", "validate", str(tmp_path / "n.jsonl"), "--to", "none"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_panoptic_field_types_are_found_by_validate(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "coco-panoptic/datumaro", tmp_path / "p")
    path = tmp_path / "p/panoptic_train.json"
    data = json.loads(path.read_text())
    assert annobridge.validate(path, "coco-panoptic") == []
    for info in data["annotations"][0]["segments_info"]:
        info["bbox"] = "x"
    path.write_text(json.dumps(data))
    problems = "\n".join(map(str, annobridge.validate(path, "coco-panoptic")))
    assert "segments_info/0 (item \"5\"): segment 7: bbox is 'x', expected 4 numbers" in problems
    data["categories"][0]["isthing"] = "yes"
    path.write_text(json.dumps(data))
    problems = "\n".join(map(str, annobridge.validate(path, "coco-panoptic")))
    assert "#/categories/0/isthing: isthing is 'yes', expected 0 or 1" in problems


def test_validate_lists_every_bad_mask_and_warns_of_pixels_without_a_segment(tmp_path: Path) -> None:
    """Two bad masks are two problems (the writer goes on after the first); a pixel value no
    segment labels is a warning: convert keeps it (void in the model), Nucleus wants a segment."""
    Image.fromarray(np.zeros((3, 2), np.uint8)).save(tmp_path / "tall.png")  # 2x3, not the image's 3x2
    Image.fromarray(np.array([[0, 1, 2], [1, 1, 0]], np.uint8)).save(tmp_path / "ok.png")
    Image.fromarray(np.array([[0, 1, 7], [1, 9, 0]], np.uint8)).save(tmp_path / "void.png")
    Image.fromarray(np.zeros((2, 3), np.uint8)).save(tmp_path / "gray.png")
    Image.open(tmp_path / "gray.png").convert("LA").save(tmp_path / "gray.png")  # two channels: no index mask
    (tmp_path / "n.jsonl").write_text(_nucleus_line("first", "tall.png") + _nucleus_line("fine", "ok.png")
                                      + _nucleus_line("second", "gray.png") + _nucleus_line("holes", "void.png"))
    found = annobridge.validate(tmp_path / "n.jsonl", "nucleus", warnings=True)
    problems = [p for p in found if not isinstance(p, annobridge.ValidationWarning)]
    assert [p.item for p in problems] == ["first", "second"], problems
    assert "2x3 but the image is 3x2" in str(problems[0])
    [warning] = [p for p in found if isinstance(p, annobridge.ValidationWarning)]
    assert 'item "holes"' in str(warning) and "pixel values [7, 9] have no segment" in str(warning)
    assert list(map(str, annobridge.validate(tmp_path / "n.jsonl", "nucleus"))) == list(map(str, problems))  # no warnings
    proc = subprocess.run([sys.executable, "-m", "annobridge", "validate", str(tmp_path / "n.jsonl")],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "2x3 but the image is 3x2" in proc.stdout and 'item "second"' in proc.stdout and "warning: " in proc.stdout
    assert "2 problem(s) found" in proc.stderr and "1 warning(s)" in proc.stderr
    # the warning alone does not fail, and convert keeps the pixels as they are
    (tmp_path / "v.jsonl").write_text(_nucleus_line("holes", "void.png"))
    proc = subprocess.run([sys.executable, "-m", "annobridge", "validate", str(tmp_path / "v.jsonl"), "--json"],
                          capture_output=True, text=True)
    out = json.loads(proc.stdout)
    assert proc.returncode == 0 and out["valid"] and len(out["warnings"]) == 1
    annobridge.convert(tmp_path / "v.jsonl", tmp_path / "o.jsonl", dst_format="nucleus")
    [seg] = annobridge.load(tmp_path / "o.jsonl", "nucleus").items[0].annotations
    assert np.array_equal(seg.mask.load(), [[0, 1, 7], [1, 9, 0]])


def test_validate_lists_every_lightly_writer_problem(tmp_path: Path) -> None:
    """Two metadata keys with two types, a task name that leaves predictions/, and two items
    that map to one Lightly file: four problems, each naming its item or key, in one run."""
    from annobridge.core.model import BoxAnnotation, DatasetItem

    def box(task: str | None = None) -> BoxAnnotation:
        return BoxAnnotation(label="car", x=1, y=1, width=2, height=2, confidence=0.9,
                             attributes={"lightly_task": task} if task else {})

    items = [
        DatasetItem(reference_id="a", image_location="a.png", width=8, height=6,
                    metadata={"camera": "north", "lens": 35}, predictions=[box("../../outside")]),
        DatasetItem(reference_id="b", image_location="b.png", width=8, height=6,
                    metadata={"camera": 3, "lens": "wide"}, predictions=[box()]),
        DatasetItem(reference_id="x", image_location="x.jpg", width=8, height=6, predictions=[box()]),
        DatasetItem(reference_id="x.png", image_location="x.png", width=8, height=6, predictions=[box()]),
    ]
    annobridge.save(items, tmp_path / "d.jsonl", "jsonl")
    problems = annobridge.validate(tmp_path / "d.jsonl", "jsonl", write_to="lightly")
    text = [str(p) for p in problems]
    assert len(text) == 4, text
    assert any("task name '../../outside' is not inside predictions/" in t and 'item "a"' in t for t in text)
    assert any("'x' and 'x.png' both map to the Lightly file x.json" in t for t in text)
    assert sum('metadata key "camera"' in t for t in text) == 1 and sum('metadata key "lens"' in t for t in text) == 1
    with pytest.raises(annobridge.WriteError, match="outside"):  # convert stops at the first, as before
        annobridge.convert(tmp_path / "d.jsonl", tmp_path / "out", dst_format="lightly")
    proc = subprocess.run([sys.executable, "-m", "annobridge", "validate", str(tmp_path / "d.jsonl"), "--to", "lightly"],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "4 problem(s)" in proc.stderr


def test_validate_prints_the_first_hundred_problems_then_a_count(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((3, 2), np.uint8)).save(tmp_path / "tall.png")
    (tmp_path / "n.jsonl").write_text("".join(_nucleus_line(f"i{n}", "tall.png") for n in range(103)))
    proc = subprocess.run([sys.executable, "-m", "annobridge", "validate", str(tmp_path / "n.jsonl")],
                          capture_output=True, text=True)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 1 and len(lines) == 101 and "Traceback" not in proc.stderr
    assert lines[-1] == "... and 3 more problems (--json lists all)" and "103 problem(s)" in proc.stderr
    out = subprocess.run([sys.executable, "-m", "annobridge", "validate", str(tmp_path / "n.jsonl"), "--json"],
                         capture_output=True, text=True)
    assert len(json.loads(out.stdout)["problems"]) == 103
