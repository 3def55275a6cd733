"""Conversions between different formats: what crosses, what is dropped and reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pycocotools.coco import COCO

import annobridge
from tests.conftest import FIXTURES

KITTI_SAMPLE = FIXTURES / "kitti/openpcdet-sample/training/label_2"
SENTINELS_3D = ["-1", "-1", "-1", "-1000", "-1000", "-1000", "-10"]


def _kitti_rows() -> dict[str, list[list[str]]]:
    return {p.stem: [line.split() for line in p.read_text().splitlines() if line.strip()]
            for p in sorted(KITTI_SAMPLE.glob("*.txt"))}


def test_kitti_to_coco_writes_every_2d_box_and_reports_the_cuboids(tmp_path: Path) -> None:
    report = annobridge.convert(FIXTURES / "kitti/openpcdet-sample", tmp_path / "c.json", dst_format="coco")
    coco = COCO(str(tmp_path / "c.json"))
    rows = _kitti_rows()
    valid_3d = sum(1 for frame in rows.values() for r in frame if r[0] != "DontCare")
    # each cuboid's object already has its 2D box in COCO: the cuboid is not projected into a second one
    assert report.dropped["cuboid"] == {"coco cannot hold cuboid ground truth; its object already has a box": valid_3d}
    names = {c["id"]: c["name"] for c in coco.dataset["categories"]}
    # frame "000001" is image id 1, its name kept beside it
    image_ids = {img["annobridge_reference_id"]: img["id"] for img in coco.dataset["images"]}
    assert all(type(i) is int and i == int(ref) for ref, i in image_ids.items())
    for frame, frame_rows in rows.items():
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_ids[frame]]))
        got = sorted((names[a["category_id"]], *a["bbox"]) for a in anns)
        want = sorted((r[0], float(r[4]), float(r[5]), float(r[6]) - float(r[4]), float(r[7]) - float(r[5]))
                      for r in frame_rows)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g[0] == w[0] and all(abs(a - b) < 1e-9 for a, b in zip(g[1:], w[1:]))
    # KITTI's per-object facts ride along as extra annotation keys the COCO writer keeps
    ped = next(a for a in coco.dataset["annotations"] if names[a["category_id"]] == "Pedestrian")
    assert (ped["truncated"], ped["occluded"], ped["alpha"]) == (0.0, 0, -0.2)


def test_coco_to_kitti_writes_2d_rows_with_the_3d_sentinels(tmp_path: Path) -> None:
    src = FIXTURES / "coco/detection/train.json"
    report = annobridge.convert(src, tmp_path / "k", dst_format="kitti")
    data = json.loads(src.read_text())
    names = {c["id"]: c["name"] for c in data["categories"]}
    def row(line: str) -> list[str]:  # class names may hold spaces: the last 14 tokens are numbers
        tokens = line.split()
        return [" ".join(tokens[:-14]), *tokens[-14:]]

    rows = {p.stem: [row(line) for line in p.read_text().splitlines()]
            for p in (tmp_path / "k/training/label_2").glob("*.txt")}
    assert sum(len(r) for r in rows.values()) == len(data["annotations"]) == report.read["box"]
    for ann in data["annotations"]:
        x, y, w, h = ann["bbox"]
        box = [f"{x:.2f}", f"{y:.2f}", f"{x + w:.2f}", f"{y + h:.2f}"]
        frame = rows[str(ann["image_id"])]
        match = [r for r in frame if r[4:8] == box and r[0] == names[ann["category_id"]]]
        assert match, (ann, frame)
        assert match[0][1:4] == ["-1", "-1", "-10"] and match[0][8:15] == SENTINELS_3D
    assert "attribute:area" in report.dropped  # COCO's area has no KITTI column: reported


def test_coco_polygons_and_masks_to_kitti_become_boxes_keypoints_are_reported(tmp_path: Path) -> None:
    src = FIXTURES / "coco/synthetic/instances.json"
    report = annobridge.convert(src, tmp_path / "k", dst_format="kitti", write_options={"media": "none"})
    assert report.read["keypoints"] > 0 and report.read["polygon"] > 0 and report.read["object_mask"] > 0
    assert report.converted == {"polygon -> box": report.read["polygon"],
                                "object_mask -> box": report.read["object_mask"]}
    assert "polygon" not in report.dropped and "object_mask" not in report.dropped
    assert report.dropped["keypoints"] == {
        "kitti cannot hold keypoints ground truth; its object already has a box": report.read["keypoints"]}
    data = json.loads(src.read_text())
    rows = [line.split() for p in (tmp_path / "k/training/label_2").glob("*.txt") for line in p.read_text().splitlines()]
    assert len(rows) == len(data["annotations"]) == report.written["box"]
    # every row's box is the object's own COCO bbox, kept exactly (to KITTI's 2 decimals)
    want = sorted((round(a["bbox"][0], 2), round(a["bbox"][1], 2), round(a["bbox"][0] + a["bbox"][2], 2),
                   round(a["bbox"][1] + a["bbox"][3], 2)) for a in data["annotations"])
    assert sorted(tuple(float(v) for v in r[-11:-7]) for r in rows) == want


@pytest.mark.parametrize("case", ["datumaro", "generated"])
def test_panoptic_to_nucleus_renumbers_segments_and_says_so(case: str, tmp_path: Path) -> None:
    from tests.panoptic_helpers import make_panoptic

    if case == "datumaro":  # segment id 7: fits, nothing to renumber
        src = next(p for p in (FIXTURES / "coco-panoptic/datumaro").rglob("*.json"))
    else:  # panopticapi colour ids (R + 256 G + 65536 B): far above 255
        src = make_panoptic(tmp_path / "src", "val", images=3)
    orig = annobridge.load(src, "coco-panoptic")
    big = sum(any(s.index > 255 for a in i.annotations for s in a.annotations) for i in orig.items)
    assert big == (3 if case == "generated" else 0)
    report = annobridge.convert(src, tmp_path / "n.jsonl", dst_format="nucleus")  # renumber-segments=auto
    assert report.lossless and report.converted.get("segmentation -> segmentation renumbered 1..n", 0) == big
    if big:  # ids above 255 cannot be 8-bit Nucleus indices: forbidding the renumbering says so
        with pytest.raises(annobridge.WriteError, match="renumber-segments"):
            annobridge.convert(src, tmp_path / "m.jsonl", dst_format="nucleus",
                               write_options={"renumber-segments": "false"})
    back = annobridge.load(tmp_path / "n.jsonl", "nucleus")
    for a, b in zip(orig.items, back.items):
        sa, sb = a.annotations[0], b.annotations[0]
        la = {s.index: s.label for s in sa.annotations}
        lb = {s.index: s.label for s in sb.annotations}
        ma, mb = sa.mask.load(), sb.mask.load()
        assert [[la.get(int(v), "") for v in row] for row in ma] == [[lb.get(int(v), "") for v in row] for row in mb]
    assert report.items_written == len(orig.items)
