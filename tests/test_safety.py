"""Hostile input (issue 10): paths that leave their root, numbers that are not numbers, images
that are too large, and the destination's odd cases. Real files, real conversions.

The hostile-name table runs against every reader that opens a path from data and every writer
that makes a file name from data or copies media: a reader raises a ReadError naming the field
(``validate`` lists it and goes on); a writer copying media reports a skip; a writer never
creates anything outside its destination and never touches the source.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import annobridge
from annobridge.converters import engine
from annobridge.core.errors import AnnobridgeError, ReadError, WriteError
from annobridge.core.limits import DEFAULT_MAX_PIXELS, MAX_INT_DIGITS, MAX_JSON_DEPTH, load_json

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "fixtures"
SECRET = b"SECRET-CONTENT-never-copied"

# name -> location relative to the root of the data; "symlink" is a link inside the root to
# the secret file outside it. Absolute, climbing, drive letters, backslashes, NUL, links out.
HOSTILE = {
    "absolute": "{secret}",
    "dotdot": "../../outside/secret.png",
    "nested-dotdot": "a/../../../outside/secret.png",
    "drive": "C:\\outside\\secret.png",
    "backslash-dotdot": "..\\..\\outside\\secret.png",
    "nul": "ok\x00.png",
    "symlink": "link.png",
}


def _secret(tmp_path: Path) -> Path:
    """A PNG outside every root, whose bytes must never appear in any output."""
    folder = tmp_path / "outside"
    folder.mkdir(exist_ok=True)
    path = folder / "secret.png"
    Image.new("L", (4, 4), 1).save(path)
    path.write_bytes(path.read_bytes() + SECRET)  # still a PNG; the tail marks its bytes
    return path


def _location(tmp_path: Path, root: Path, case: str) -> str:
    secret = _secret(tmp_path)
    if case == "symlink":
        root.mkdir(parents=True, exist_ok=True)
        (root / "link.png").symlink_to(secret)
    return HOSTILE[case].format(secret=secret)


def _files(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and not p.is_symlink()}


def _refused(path: Path, fmt: str, field: str, options: dict | None = None) -> None:
    """load raises a ReadError naming the field; validate lists it without crashing."""
    with pytest.raises(ReadError, match=rf"{field} .* is not inside"):
        annobridge.load(path, fmt, options)
    problems = annobridge.validate(path, fmt, options)
    assert any(f"{field} " in str(p) and "is not inside" in str(p) for p in problems), problems


# --------------------------------------------------------------------------- readers


@pytest.mark.parametrize("case", HOSTILE)
def test_panoptic_reader_refuses_a_png_outside_its_folder(tmp_path: Path, case: str) -> None:
    src = tmp_path / "a" / "b"
    shutil.copytree(FIX / "coco-panoptic" / "datumaro", src)
    doc = json.loads((src / "panoptic_train.json").read_text())
    doc["annotations"][0]["file_name"] = _location(tmp_path, src / "panoptic_train", case)
    (src / "panoptic_train.json").write_text(json.dumps(doc))
    _refused(src / "panoptic_train.json", "coco-panoptic", "file_name")


@pytest.mark.parametrize("case", HOSTILE)
def test_jsonl_reader_refuses_a_mask_outside_its_folder(tmp_path: Path, case: str) -> None:
    src = tmp_path / "a" / "b"
    location = _location(tmp_path, src, case)
    src.mkdir(parents=True, exist_ok=True)
    item = {"reference_id": "i", "width": 4, "height": 4, "annotations": [
        {"type": "segmentation", "mask": {"location": location, "encoding": "index"},
         "annotations": [{"label": "a", "index": 1}]}]}
    path = src / "d.jsonl"
    path.write_text(json.dumps({"annobridge_header": {"version": 1, "header": {}}}) + "\n" + json.dumps(item) + "\n")
    _refused(path, "jsonl", "mask location")


@pytest.mark.parametrize("field", ["pointcloud_url", "mask_url"])
@pytest.mark.parametrize("case", HOSTILE)
def test_nucleus_reader_refuses_clouds_and_masks_outside_its_folder(tmp_path: Path, case: str, field: str) -> None:
    src = tmp_path / "a" / "b"
    location = _location(tmp_path, src, case)
    src.mkdir(parents=True, exist_ok=True)
    if field == "pointcloud_url":
        line = {"reference_id": "i", "pointcloud_url": location}
    else:
        line = {"reference_id": "i", "image_url": "https://example.com/i.jpg", "annotations": [
            {"type": "mask", "mask_url": location, "annotations": [{"label": "a", "index": 1}]}]}
    path = src / "items.jsonl"
    path.write_text(json.dumps(line) + "\n")
    _refused(path, "nucleus", field)


@pytest.mark.parametrize("case", HOSTILE)
def test_lightly_reader_refuses_task_names_and_file_names_outside(tmp_path: Path, case: str) -> None:
    src = tmp_path / "a" / "bucket"
    shutil.copytree(FIX / "lightly" / "datasource" / "bucket", src)
    tasks = src / ".lightly" / "predictions" / "tasks.json"
    names = json.loads(tasks.read_text())
    tasks.write_text(json.dumps(names + [_location(tmp_path, tasks.parent, case)]))
    _refused(src / ".lightly", "lightly", "task name", {"input": str(src)})
    shutil.rmtree(src)
    shutil.copytree(FIX / "lightly" / "datasource" / "bucket", src)
    md = src / ".lightly" / "metadata" / "HALL-A" / "g101" / "cam1_0001.json"
    doc = json.loads(md.read_text())
    doc["file_name"] = _location(tmp_path, src, case) if case != "symlink" else "link.png"
    md.write_text(json.dumps(doc))
    with pytest.raises(ReadError):
        annobridge.load(src / ".lightly", "lightly", {"input": str(src)})
    assert annobridge.validate(src / ".lightly", "lightly", {"input": str(src)})


@pytest.mark.parametrize("case", HOSTILE)
def test_lightly_task_reader_refuses_a_file_name_outside_the_images(tmp_path: Path, case: str) -> None:
    task = tmp_path / "a" / "task"
    images = tmp_path / "a" / "images"
    images.mkdir(parents=True)
    task.mkdir()
    (task / "schema.json").write_text(json.dumps({"task_type": "object-detection",
                                                  "categories": [{"id": 0, "name": "a"}]}))
    (task / "x.json").write_text(json.dumps({"file_name": _location(tmp_path, images, case), "predictions": []}))
    _refused(task, "lightly-task", "file_name")


def test_kitti_reader_refuses_a_file_linked_out_of_its_folder(tmp_path: Path) -> None:
    src = tmp_path / "kitti"
    shutil.copytree(FIX / "kitti" / "datumaro", src)
    image_2 = next(src.rglob("image_2"))
    (image_2 / "000099.png").symlink_to(_secret(tmp_path))
    with pytest.raises(ReadError, match="symbolic link"):
        annobridge.load(src, "kitti")


# --------------------------------------------------------------------------- writers


def _coco_source(tmp_path: Path, file_name: str, image_id: object = 1) -> Path:
    src = tmp_path / "src" / "ann"
    src.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4)).save(src / "fine.png")
    doc = {"images": [{"id": image_id, "file_name": file_name, "width": 4, "height": 4}],
           "annotations": [{"id": 1, "image_id": image_id, "category_id": 1, "bbox": [0, 0, 2, 2],
                            "area": 4, "iscrowd": 0}],
           "categories": [{"id": 1, "name": "car"}]}
    path = src / "train.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("case", HOSTILE)
def test_kitti_media_copy_reads_nothing_outside_the_source(tmp_path: Path, case: str) -> None:
    location = _location(tmp_path, tmp_path / "src" / "ann", case)
    src = _coco_source(tmp_path, location)
    report = annobridge.convert(src, tmp_path / "out", dst_format="kitti")
    for data in _files(tmp_path / "out").values():
        assert SECRET not in data
    assert report.dropped.get("image file"), report.summary()
    if case in ("absolute", "symlink"):  # the file exists: the reason is where it is
        assert any(r.startswith("outside the source folder") for r in report.dropped["image file"])
    ok = annobridge.convert(_coco_source(tmp_path / "ok", "fine.png"), tmp_path / "ok-out", dst_format="kitti")
    assert "image file" not in ok.dropped and list((tmp_path / "ok-out").rglob("*.png"))


@pytest.mark.parametrize("fmt", ["lightly", "kitti", "nucleus", "coco-panoptic", "jsonl", "coco"])
@pytest.mark.parametrize("ref", ["../../x", "/abs/x", "..", "a\\..\\..\\x", "C:x"])
def test_ids_used_as_file_names_stay_inside_the_destination(tmp_path: Path, fmt: str, ref: str) -> None:
    src = _coco_source(tmp_path, "fine.png", image_id=ref)
    before = set(_files(tmp_path))
    dst = tmp_path / "deep" / "er" / "out"
    annobridge.convert(src, dst, dst_format=fmt, src_format="coco")
    made = set(_files(tmp_path)) - before
    assert made and all(str(p).startswith(str(tmp_path / "deep" / "er") + os.sep) for p in made), made


@pytest.mark.parametrize("case", [c for c in HOSTILE if c != "symlink"])
def test_panoptic_writer_refuses_a_png_name_outside_and_never_touches_the_source(tmp_path: Path, case: str) -> None:
    src = tmp_path / "a" / "src"
    shutil.copytree(FIX / "coco-panoptic" / "datumaro", src)
    source_files = _files(src)
    ds = annobridge.load(src / "panoptic_train.json", "coco-panoptic")
    seg = ds.items[0].annotations[0]
    seg.attributes["file_name"] = HOSTILE[case].format(secret=src / "panoptic_train" / "a.png")
    for ids in ("auto", "generate"):
        with pytest.raises(WriteError, match="segmentation file_name .* is not inside"):
            annobridge.save(ds, tmp_path / "a" / "out.json", "coco-panoptic", {"segment-ids": ids})
    assert _files(src) == source_files
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["src"]


def test_panoptic_generate_never_overwrites_the_source_png(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(FIX / "coco-panoptic" / "datumaro", src)
    source_files = _files(src)
    ds = annobridge.load(src / "panoptic_train.json", "coco-panoptic")
    ds.items[0].annotations[0].attributes["file_name"] = "../src/panoptic_train/a.png"
    with pytest.raises(WriteError):
        annobridge.save(ds, tmp_path / "out" / "p.json", "coco-panoptic", {"segment-ids": "generate"})
    annobridge.convert(src / "panoptic_train.json", tmp_path / "out2" / "p.json", dst_format="coco-panoptic",
                       write_options={"segment-ids": "generate"})
    assert _files(src) == source_files


@pytest.mark.parametrize("task", ["../../evil_task", "/abs/evil", "a/../../evil"])
def test_lightly_writer_refuses_a_task_name_outside(tmp_path: Path, task: str) -> None:
    items = [annobridge.DatasetItem(reference_id="a", image_location="a.png", width=4, height=4, predictions=[
        annobridge.BoxAnnotation(label="car", x=0, y=0, width=1, height=1, confidence=0.5,
                                 attributes={"lightly_task": task})])]
    with pytest.raises(WriteError, match="task name .* is not inside"):
        annobridge.save(items, tmp_path / "d" / ".lightly", "lightly")
    assert not any(p.name.startswith("evil") for p in tmp_path.rglob("*"))


def test_nucleus_writer_copies_clouds_only_from_inside_the_source(tmp_path: Path) -> None:
    outside = tmp_path / "outside.bin"
    np.zeros((2, 4), "<f4").tofile(outside)
    src = tmp_path / "src" / "d.jsonl"
    src.parent.mkdir()
    item = {"reference_id": "c", "pointcloud_location": str(outside)}
    src.write_text(json.dumps({"annobridge_header": {"version": 1, "header": {}}}) + "\n" + json.dumps(item) + "\n")
    report = annobridge.convert(src, tmp_path / "out" / "n.jsonl", dst_format="nucleus")
    assert "outside the source folder" in " ".join(report.dropped["point cloud file"])
    assert not (tmp_path / "out" / "n.pointclouds").exists()


# --------------------------------------------------------------------------- numbers


NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e309", "1" * 5000]


@pytest.mark.parametrize("bad", NUMBERS)
def test_coco_refuses_non_finite_and_huge_numbers_with_their_place(tmp_path: Path, bad: str) -> None:
    text = (FIX / "coco" / "synthetic" / "instances.json").read_text()
    doc = json.loads(text)
    doc["annotations"][0]["area"] = "@@"
    path = tmp_path / "c.json"
    path.write_text(json.dumps(doc, indent=1).replace('"@@"', bad))
    with pytest.raises(ReadError, match=r"c\.json:line \d+: .*(not a number|out of range|digits)"):
        annobridge.load(path, "coco")
    assert len(annobridge.validate(path, "coco")) == 1


@pytest.mark.parametrize("bad", NUMBERS)
@pytest.mark.parametrize("fmt", ["nucleus", "jsonl"])
def test_json_lines_refuse_bad_numbers_and_validate_goes_on(tmp_path: Path, bad: str, fmt: str) -> None:
    good = {"reference_id": "g", "image_url": "https://e.com/g.jpg"} if fmt == "nucleus" else {"reference_id": "g"}
    bad_line = json.dumps({**good, "reference_id": "b", "width": "@@"}).replace('"@@"', bad)
    lines = [json.dumps({"annobridge_header": {"version": 1, "header": {}}})] if fmt == "jsonl" else []
    lines += [bad_line, json.dumps(good), "\udcff-not-utf8"]
    path = tmp_path / "d.jsonl"
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogateescape") + b"\n")
    problems = annobridge.validate(path, fmt)
    assert len(problems) == 2, problems  # the bad number and the bad UTF-8 line, each with its line
    assert all(p.where and p.where.startswith("line ") for p in problems)
    assert "UTF-8" in str(problems[1])


@pytest.mark.parametrize("bad", ["1e309", "-1e400", "1" * 5000])
def test_kitti_refuses_overflowing_numbers_in_rows_and_calibration(tmp_path: Path, bad: str) -> None:
    src = tmp_path / "k"
    shutil.copytree(FIX / "kitti" / "datumaro", src)
    label = next(src.rglob("label_2/*.txt"))
    cols = label.read_text().splitlines()[0].split()
    cols[4] = bad
    label.write_text(" ".join(cols) + "\n")
    with pytest.raises(ReadError, match=r"line 1: column 5 .* out of range"):
        annobridge.load(src, "kitti")


@pytest.mark.parametrize("calib", ["singular", "non-finite"])
def test_kitti_refuses_a_singular_or_non_finite_calibration(tmp_path: Path, calib: str) -> None:
    src = tmp_path / "k"
    shutil.copytree(FIX / "kitti-tracking" / "generated", src)
    path = next(src.rglob("calib/*.txt"))
    lines = path.read_text().splitlines()
    for n, line in enumerate(lines):
        key = line.split(":")[0].split()[0] if line.strip() else ""
        if key in ("R_rect", "R0_rect"):
            lines[n] = f"{key} " + " ".join(["0"] * 9) if calib == "singular" else f"{key} " + " ".join(["1e309"] * 9)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ReadError, match=r"calib.*(singular|out of range)"):
        annobridge.load(src, "kitti-tracking")


def test_no_writer_emits_null_nan_or_inf_for_a_number() -> None:
    """The model refuses non-finite numbers where it is built, so no writer ever sees one."""
    from pydantic import ValidationError

    for bad in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(ValidationError, match="finite"):
            annobridge.BoxAnnotation(label="a", x=bad, y=0, width=1, height=1)
        with pytest.raises(ValidationError, match="finite"):
            annobridge.DatasetItem(reference_id="a", width=4, height=4, annotations=[
                annobridge.BoxAnnotation(label="a", x=0, y=0, width=1, height=1, confidence=bad)])


# --------------------------------------------------------------------------- limits


def test_json_limits_are_clear_errors() -> None:
    deep = "[" * (MAX_JSON_DEPTH + 10) + "]" * (MAX_JSON_DEPTH + 10)
    with pytest.raises(ReadError, match=f"nested deeper than {MAX_JSON_DEPTH}"):
        load_json(deep, file="x.json")
    with pytest.raises(ReadError, match=f"an integer of 5000 digits is longer than {MAX_INT_DIGITS} digits"):
        load_json("[" + "9" * 5000 + "]", file="x.json")
    with pytest.raises(ReadError, match=r"x\.json:line 2: NaN is not a number JSON allows \(line 2, column \d+\)"):
        load_json('{"a": 1,\n "b": NaN}', file="x.json")


def _panoptic_with_png(tmp_path: Path, size: tuple[int, int], declared: tuple[int, int]) -> Path:
    src = tmp_path / "p"
    shutil.copytree(FIX / "coco-panoptic" / "datumaro", src)
    Image.new("RGB", size).save(src / "panoptic_train" / "a.png")
    doc = json.loads((src / "panoptic_train.json").read_text())
    doc["images"][0].update(width=declared[0], height=declared[1])
    (src / "panoptic_train.json").write_text(json.dumps(doc))
    return src / "panoptic_train.json"


def test_a_png_over_the_pixel_cap_is_refused_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _panoptic_with_png(tmp_path, (300, 200), (300, 200))
    cap = "declares 300x200 = 60000 pixels, more than the limit of 50000"
    assert not any(cap in str(p) for p in annobridge.validate(path, "coco-panoptic"))  # under the default cap
    monkeypatch.setenv("ANNOBRIDGE_MAX_PIXELS", "50000")
    assert any(cap in str(p) for p in annobridge.validate(path, "coco-panoptic"))
    with pytest.raises(ReadError, match=cap):
        annobridge.load(path, "coco-panoptic")
    assert DEFAULT_MAX_PIXELS == 100_000_000


def test_a_mask_larger_than_its_item_is_refused_before_decoding(tmp_path: Path) -> None:
    src = tmp_path / "j"
    src.mkdir()
    Image.fromarray(np.zeros((400, 400), np.uint8)).save(src / "m.png")
    item = {"reference_id": "i", "width": 4, "height": 4, "annotations": [
        {"type": "segmentation", "mask": {"location": "m.png", "encoding": "index"},
         "annotations": [{"label": "a", "index": 1}]}]}
    from annobridge.core.masks import read_mask_png

    with pytest.raises(ReadError, match=r"declares 400x400 pixels, more than its item's 4x4"):
        read_mask_png(src / "m.png", expected=(4, 4), item="i")
    path = src / "d.jsonl"
    path.write_text(json.dumps({"annobridge_header": {"version": 1, "header": {}}}) + "\n" + json.dumps(item) + "\n")
    with pytest.raises(ReadError, match="declares 400x400 pixels"):
        annobridge.convert(path, tmp_path / "out.json", dst_format="coco-panoptic")


def test_a_huge_panoptic_png_header_is_refused_without_decoding(tmp_path: Path) -> None:
    """A 12000x12000 PNG (a few hundred KB) would take GBs decoded: refused from its header."""
    import zlib

    path = _panoptic_with_png(tmp_path, (4, 4), (10, 5))
    png = path.parent / "panoptic_train" / "a.png"
    w = h = 12000
    raw = zlib.compress(b"".join(b"\x00" + bytes(3 * w) for _ in range(64)))  # 64 rows: truncated
    chunk = lambda kind, data: (len(data).to_bytes(4, "big") + kind + data  # noqa: E731
                                + zlib.crc32(kind + data).to_bytes(4, "big"))
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", w.to_bytes(4, "big") + h.to_bytes(4, "big")
                                               + bytes([8, 2, 0, 0, 0])) + chunk(b"IDAT", raw) + chunk(b"IEND", b""))
    problems = annobridge.validate(path, "coco-panoptic")
    assert any("12000x12000" in str(p) for p in problems), problems


@pytest.mark.parametrize("damage", ["chunk", "truncated", "not-png"])
def test_a_broken_png_is_a_read_error(tmp_path: Path, damage: str) -> None:
    path = _panoptic_with_png(tmp_path, (10, 5), (10, 5))
    png = path.parent / "panoptic_train" / "a.png"
    data = bytearray(png.read_bytes())
    if damage == "chunk":
        data[12:16] = b"XXXX"  # the IHDR chunk's type
    elif damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data = bytearray(b"hello")
    png.write_bytes(bytes(data))
    problems = annobridge.validate(path, "coco-panoptic")
    assert problems and all(isinstance(p, AnnobridgeError) for p in problems)
    with pytest.raises(ReadError, match=r"a\.png"):
        annobridge.load(path, "coco-panoptic")


# --------------------------------------------------------------------------- destination


def test_a_dangling_symlink_at_the_destination_is_not_replaced(tmp_path: Path) -> None:
    src = FIX / "jsonl" / "all-kinds" / "dataset.jsonl"
    dst = tmp_path / "out.jsonl"
    dst.symlink_to(tmp_path / "nowhere")
    with pytest.raises(WriteError, match="already exists"):
        engine.write_dataset(annobridge.load(src, "jsonl"), dst, "nucleus")
    assert dst.is_symlink() and not (tmp_path / "nowhere").exists()


def test_a_failed_run_leaves_no_parent_folder_it_created(tmp_path: Path) -> None:
    ds = annobridge.load(FIX / "coco-panoptic" / "datumaro" / "panoptic_train.json", "coco-panoptic")
    ds.items[0].annotations[0].attributes["file_name"] = "../x.png"
    with pytest.raises(WriteError):
        annobridge.save(ds, tmp_path / "a" / "b" / "c" / "out.json", "coco-panoptic")
    assert list(tmp_path.iterdir()) == []
