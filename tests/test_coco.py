"""COCO plugin: exact round trips on real files, pycocotools interop, bad input, results files."""

from __future__ import annotations

import copy
import importlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from annobridge.converters import engine
from annobridge.core.errors import ReadError
from annobridge.core.formats import Context
from annobridge.core.limits import load_json_lazily
from annobridge.core.model import (
    BoxAnnotation,
    CategoryAnnotation,
    Dataset,
    DatasetItem,
    KeypointsAnnotation,
    ObjectMaskAnnotation,
    PolygonAnnotation,
)
from annobridge.plugins import coco

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "coco"

GT_CASES = {
    "instances": ("instances/instances.json", {}),
    "detection": ("detection/train.json", {}),
    "mmdet_sample": ("mmdet_sample/coco_sample.json", {}),
    "datumaro_instances": ("datumaro_instances/instances_train.json", {}),
    "datumaro_labels": ("datumaro_labels/labels_train.json", {}),
    "datumaro_image_info": ("datumaro_image_info/image_info_val.json", {}),
    "roboflow": ("roboflow/_annotations.coco.json", {}),
    "mono3d": ("mono3d/kitti_infos_mono3d.coco.json", {}),
    "aic": ("aic/test_aic.json", {}),
    "humanart": ("humanart/test_humanart.json", {"short_keypoints": "prefix"}),
    "synthetic": ("synthetic/instances.json", {}),
    "stuff": ("synthetic/stuff.json", {}),
}
RESULT_CASES = [
    "results_bbox/instances_val2014_fakebbox100_results.json",
    "results_keypoints/person_keypoints_val2014_fakekeypoints100_results.json",
    "results_person_det/test_coco_det_AP_H_56.json",
    "crowdpose/test_crowdpose_det_AP_40.json",
]


def _convert(src: Path, dst: Path, read: dict | None = None, write: dict | None = None,
             dst_format: str = "coco", src_format: str = "coco", workers: int = 1):
    return engine.convert(src, dst, src_format=src_format, dst_format=dst_format,
                          read_options=read, write_options=write, overwrite=True, workers=workers)


def _by_id(anns: list[dict]) -> dict:
    return {a["id"]: a for a in anns}


def _same_file(a: dict, b: dict) -> None:
    """Equal COCO content: every key and value; annotations compared by id (order may change)."""
    assert set(a) == set(b)
    for key in a:
        if key == "annotations":
            assert len(a[key]) == len(b[key])
            assert _by_id(a[key]) == _by_id(b[key])
        else:
            assert a[key] == b[key], key


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("case", sorted(GT_CASES))
def test_real_files_round_trip_exactly(case: str, tmp_path: Path) -> None:
    rel, read = GT_CASES[case]
    src = FIX / rel
    out = tmp_path / "out.json"
    report = _convert(src, out, read)
    assert report.lossless, report.dropped
    _same_file(json.loads(src.read_text()), json.loads(out.read_text()))
    assert len(COCO(str(out)).anns) == len(json.loads(src.read_text()).get("annotations", []))


@pytest.mark.parametrize("rel", RESULT_CASES)
def test_results_files_round_trip_exactly(rel: str, tmp_path: Path) -> None:
    src = FIX / rel
    out = tmp_path / "out.json"
    report = _convert(src, out)
    assert report.lossless
    assert json.loads(out.read_text()) == json.loads(src.read_text())
    assert report.read.get("prediction:box", 0) + report.read.get("prediction:keypoints", 0) > 0
    assert not any(k for k in report.read if not k.startswith("prediction:"))


def test_crowdpose_skeleton_edges_keep_error_or_drop(tmp_path: Path) -> None:
    src = FIX / "crowdpose/test_crowdpose.json"
    with pytest.raises(ReadError, match=r"test_crowdpose\.json#/categories/0/skeleton/0: skeleton "
                                        r"edge \[16, 14\] is out of range"):
        _convert(src, tmp_path / "a.json", {"strict": "true"})
    report = _convert(src, tmp_path / "kept.json")  # the default keeps it as given, with a warning
    assert report.lossless and any("skeleton edges outside 1..14" in n for n in report.notes)
    assert json.loads((tmp_path / "kept.json").read_text())["categories"] == json.loads(src.read_text())["categories"]
    report = _convert(src, tmp_path / "b.json", {"bad_skeleton_edges": "drop"})
    assert report.dropped == {"skeleton edge": {"index out of range 1..k (bad-skeleton-edges=drop)": 3}}
    a, b = json.loads(src.read_text()), json.loads((tmp_path / "b.json").read_text())
    assert _by_id(a["annotations"]) == _by_id(b["annotations"])  # num_keypoints kept as written
    kept = [e for e in a["categories"][0]["skeleton"] if max(e) <= 14]
    assert b["categories"][0]["skeleton"] == kept


def test_humanart_reads_by_default_and_strict_refuses(tmp_path: Path) -> None:
    with pytest.raises(ReadError, match=r"test_humanart\.json#/annotations/0 \(item "
                                        r"\"2000000001648\"\): keypoints has 51 numbers, expected 3 x 21"):
        _convert(FIX / "humanart/test_humanart.json", tmp_path / "a.json", {"strict": "true"})
    report = _convert(FIX / "humanart/test_humanart.json", tmp_path / "b.json")
    assert any("another number of keypoints than its 21 names" in n for n in report.notes)
    ds = engine.read_dataset(FIX / "humanart/test_humanart.json", "coco").materialize()
    kps = [a for it in ds.items for a in it.annotations if a.type == "keypoints"]
    assert kps and all(len(k.names) == 17 for k in kps)


def test_datumaro_person_keypoints_export_reads_as_given(tmp_path: Path) -> None:
    """datumaro's coco_person_keypoints export: `keypoints: []`, a 0-based skeleton, 3 points."""
    src = FIX / "datumaro_keypoints_malformed/person_keypoints_train.json"
    report = _convert(src, tmp_path / "o.json")
    assert report.lossless and json.loads((tmp_path / "o.json").read_text()) == json.loads(src.read_text())
    assert sum(n.startswith("warning:") for n in report.notes) == 3  # two skeletons, one annotation
    [item] = engine.read_dataset(src, "coco").materialize().items
    [kp] = [a for a in item.annotations if a.type == "keypoints"]
    assert kp.names == ["0", "1", "2"] and kp.keypoints == [0, 0, 0, 0, 2, 1, 4, 1, 2]
    with pytest.raises(ReadError, match="skeleton edge"):
        _convert(src, tmp_path / "s.json", {"strict": "true"})


def test_canonical_view_of_a_crowd_keypoint_object() -> None:
    ds = engine.read_dataset(FIX / "synthetic/instances.json", "coco").materialize()
    header = ds.header
    person = header.category_named("person")
    assert person is not None and person.id == 1 and len(person.keypoints or []) == 17
    assert (15, 13) in person.skeleton  # 1-based [16, 14] becomes 0-based (15, 13)
    anns = [a for it in ds.items for a in it.annotations]
    masks = [a for a in anns if a.type == "object_mask"]
    assert {type(m.counts) for m in masks} == {str, list}
    crowd = [m for m in masks if isinstance(m.counts, list)]
    assert all(m.attributes["iscrowd"] == 1 for m in crowd)
    kps = [a for a in anns if a.type == "keypoints"]
    assert kps and all(k.annotation_id == f"{k.group_id}:keypoints" for k in kps)
    assert {int(v) for k in kps for v in k.keypoints[2::3]} == {0, 1, 2}
    multi = [a for a in anns if a.type == "polygon" and len(a.rings) > 1]
    assert multi, "the fixture has two-ring objects; they stay one annotation"
    for a in anns:  # fast-built models equal validated ones
        assert type(a).model_validate(a.model_dump()) == a


def test_odd_ids_and_values_survive(tmp_path: Path) -> None:
    big = 2**40 + 3
    data = {
        "info": None,
        "images": [{"id": big, "file_name": "a.jpg", "width": 4, "height": 4},
                   {"id": "5", "file_name": "b.jpg", "width": 4, "height": 4},
                   {"id": "img-x", "file_name": "c.jpg"}],
        "annotations": [
            {"id": 7, "image_id": big, "category_id": 0, "bbox": [0, 0, 2, 2]},
            {"id": 8, "image_id": "5", "category_id": 0, "bbox": [0, 0, 1, 1], "segmentation": [],
             "iscrowd": 0, "area": 1, "note": {"x": [1, 2], "huge": 2**70}},
            {"id": 9, "image_id": "img-x", "category_id": 0, "segmentation": None},
            {"id": 10, "image_id": "5", "category_id": 0, "num_keypoints": 0},
        ],
        "categories": [{"id": 0, "name": "zero"}],
        "type": "instances",
    }
    src = tmp_path / "odd.json"
    src.write_text(json.dumps(data))
    out = tmp_path / "out.json"
    _convert(src, out)
    _same_file(data, json.loads(out.read_text()))
    ds = engine.read_dataset(src, "coco").materialize()
    assert [it.reference_id for it in ds.items] == [str(big), "5", "img-x"]
    assert ds.items[1].attributes["id"] == "5"


# --------------------------------------------------------------------------- pycocotools interop


def _masks(coco_obj: COCO, ann: dict) -> np.ndarray:
    return coco_obj.annToMask(ann)


@pytest.mark.parametrize("case", ["instances", "synthetic", "stuff"])
def test_ann_to_mask_identical(case: str, tmp_path: Path) -> None:
    src = FIX / GT_CASES[case][0]
    out = tmp_path / "out.json"
    _convert(src, tmp_path / "mid.jsonl", dst_format="jsonl")
    _convert(tmp_path / "mid.jsonl", out, src_format="jsonl")  # through canonical JSONL too
    a, b = COCO(str(src)), COCO(str(out))
    assert sorted(a.anns) == sorted(b.anns)
    n = 0
    for aid, ann in a.anns.items():
        if ann.get("segmentation"):
            assert np.array_equal(_masks(a, ann), _masks(b, b.anns[aid])), aid
            n += 1
        else:
            assert b.anns[aid].get("segmentation") == ann.get("segmentation")
    assert n >= len(a.anns) * 0.8


def _as_detections(path: Path) -> list[dict]:
    dets = []
    for ann in json.loads(path.read_text())["annotations"]:
        det = {k: v for k, v in ann.items() if k != "id"}
        det["score"] = 1.0
        dets.append(det)
    return dets


@pytest.mark.parametrize("case,iou_types", [
    ("instances", ["bbox", "segm"]),
    ("synthetic", ["bbox", "segm", "keypoints"]),
    ("stuff", ["bbox", "segm"]),
    ("detection", ["bbox"]),
    ("humanart", ["bbox", "keypoints"]),
])
def test_cocoeval_ap_is_one(case: str, iou_types: list[str], tmp_path: Path) -> None:
    rel, read = GT_CASES[case]
    src = FIX / rel
    out = tmp_path / "out.json"
    _convert(src, out, read)
    for iou in iou_types:
        gt_path = src
        if iou == "segm":  # pycocotools cannot rasterise `segmentation: []`: leave those out
            data = json.loads(src.read_text())
            data["annotations"] = [a for a in data["annotations"] if a.get("segmentation")]
            gt_path = tmp_path / "gt_segm.json"
            gt_path.write_text(json.dumps(data))
        gt = COCO(str(gt_path))
        dets = _as_detections(out)
        if iou == "keypoints":
            dets = [d for d in dets if "keypoints" in d]
        elif iou == "segm":
            dets = [{k: v for k, v in d.items() if k != "bbox"} for d in dets if d.get("segmentation")]
            for d in dets:  # results carry compressed RLE; polygons are rasterised by annToRLE
                d["segmentation"] = gt.annToRLE({**d, "image_id": d["image_id"]})
                d["segmentation"]["counts"] = d["segmentation"]["counts"].decode() if isinstance(
                    d["segmentation"]["counts"], bytes) else d["segmentation"]["counts"]
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, iou)
        if iou == "keypoints":
            ev.params.catIds = [c["id"] for c in gt.dataset["categories"] if c.get("keypoints")]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        assert ev.stats[0] == pytest.approx(1.0), (case, iou)


def test_loads_in_pycocotools_and_ids_of_created_annotations(tmp_path: Path) -> None:
    rect = np.zeros((6, 8), dtype=np.uint8)
    rect[1:4, 2:6] = 1
    items = [
        DatasetItem(reference_id="a", image_location="a.png", width=8, height=6, annotations=[
            BoxAnnotation(label="car", x=1, y=1, width=3, height=2),
            PolygonAnnotation(label="car", rings=[[0, 0, 4, 0, 4, 4], [5, 5, 7, 5, 7, 6]]),
            ObjectMaskAnnotation.from_array(rect, label="dog"),
            KeypointsAnnotation(label="person", keypoints=[1, 1, 2, 3, 4, 1, 0, 0, 0],
                                names=["a", "b", "c"], skeleton=[(0, 1), (1, 2)]),
            CategoryAnnotation(label="outdoor"),
        ]),
        DatasetItem(reference_id="b", image_location="b.png", width=8, height=6, annotations=[
            BoxAnnotation(label="car", x=0, y=0, width=1, height=1, annotation_id="17"),
        ]),
    ]
    out = tmp_path / "made.json"
    report = engine.write_dataset(Dataset.of(items), out, "coco")
    c = COCO(str(out))
    ids = sorted(c.anns)
    assert ids == [1, 2, 3, 4, 5, 6]  # created ids start at 1, unique
    by_cat = {c.cats[a["category_id"]]["name"]: a for a in c.anns.values()}
    poly = next(a for a in c.anns.values() if isinstance(a.get("segmentation"), list) and a["segmentation"])
    expected = mask_utils.area(mask_utils.merge(mask_utils.frPyObjects(
        [[0.0, 0, 4, 0, 4, 4], [5.0, 5, 7, 5, 7, 6]], 6, 8)))
    assert poly["area"] == int(expected) and poly["bbox"] == [0, 0, 7, 6]
    dog = by_cat["dog"]
    assert dog["area"] == 12 and dog["bbox"] == [2.0, 1.0, 4.0, 3.0]
    assert np.array_equal(c.annToMask(dog), rect)
    person = by_cat["person"]
    # a keypoint-only object gets the extent of its labelled keypoints as bbox (COCOeval needs one)
    assert person["num_keypoints"] == 2 and person["bbox"] == [1, 1, 2, 3] and person["area"] == 6
    assert all("bbox" in a and "area" in a for a in c.anns.values() if c.cats[a["category_id"]]["name"] != "outdoor")
    assert c.cats[person["category_id"]]["skeleton"] == [[1, 2], [2, 3]]
    assert [a["id"] for a in c.anns.values() if c.cats[a["category_id"]]["name"] == "outdoor"]
    assert "annotation ids were not unused integers" in report.summary()  # auto ids not kept


def test_keypoint_only_objects_from_another_format_evaluate_with_cocoeval(tmp_path: Path) -> None:
    """COCOeval indexes ``bbox`` of every ground-truth object (KeyError without it)."""
    from pycocotools.cocoeval import COCOeval

    names = ["nose", "l_eye", "r_eye"]
    items = [DatasetItem(reference_id=str(i), image_location=f"{i}.png", width=40, height=30, annotations=[
        KeypointsAnnotation(label="person", keypoints=[5 + i, 5, 2, 9 + i, 6, 2, 12, 20 + i, 1], names=names)])
        for i in range(3)]
    engine.write_dataset(Dataset.of(items), tmp_path / "gt.json", "coco")
    gt = COCO(str(tmp_path / "gt.json"))
    dets = gt.loadRes([{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
                       for a in gt.anns.values()])
    for iou_type in ("bbox", "keypoints"):
        if iou_type == "keypoints":
            dets = gt.loadRes([{"image_id": a["image_id"], "category_id": a["category_id"],
                                "keypoints": a["keypoints"], "score": 1.0} for a in gt.anns.values()])
        ev = COCOeval(gt, dets, iou_type)
        ev.params.kpt_oks_sigmas = np.array([0.26, 0.25, 0.25]) / 10.0
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        assert ev.stats[0] == pytest.approx(1.0)


def test_duplicate_box_group_ids_across_items_get_new_ids(tmp_path: Path) -> None:
    items = [DatasetItem(reference_id=r, annotations=[
        BoxAnnotation(label="x", x=0, y=0, width=1, height=1, annotation_id="1", group_id="1")])
        for r in ("1", "2")]
    out = tmp_path / "o.json"
    engine.write_dataset(Dataset.of(items), out, "coco")
    assert sorted(a["id"] for a in json.loads(out.read_text())["annotations"]) == [1, 2]


# --------------------------------------------------------------------------- results files


def _results_from(gt_path: Path) -> list[dict]:
    gt = json.loads(gt_path.read_text())
    c = COCO(str(gt_path))
    out = []
    for n, ann in enumerate(gt["annotations"]):
        res = {"image_id": ann["image_id"], "category_id": ann["category_id"],
               "score": round(0.5 + (n % 50) / 100, 2)}
        if n % 3 == 0 or (n % 3 == 1 and not ann.get("segmentation")):
            res["bbox"] = ann["bbox"]
        elif n % 3 == 1:
            rle = c.annToRLE(ann)
            res["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode()
                                   if isinstance(rle["counts"], bytes) else rle["counts"]}
        elif "keypoints" in ann:
            res["keypoints"] = ann["keypoints"]
        else:
            res["bbox"] = ann["bbox"]
        out.append(res)
    return out


def test_results_with_gt(tmp_path: Path) -> None:
    gt_path = FIX / "synthetic/instances.json"
    res = _results_from(gt_path)
    src = tmp_path / "res.json"
    src.write_text(json.dumps(res))
    ds = engine.read_dataset(src, "coco", {"gt": str(gt_path)}).materialize()
    assert len(ds.items) == 10  # every GT image, with its file name and size
    assert ds.items[0].width == 640 and ds.items[0].image_location.endswith(".jpg")
    preds = [p for it in ds.items for p in it.predictions]
    assert {p.type for p in preds} == {"box", "object_mask", "keypoints"}
    assert all(p.confidence is not None for p in preds)
    assert ds.header.category_named("person").keypoints[0] == "nose"
    out = tmp_path / "out.json"
    _convert(src, out, {"gt": str(gt_path)})
    written = json.loads(out.read_text())
    canon = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    assert sorted(map(canon, written)) == sorted(map(canon, res))
    gt = COCO(str(gt_path))
    for key in ("bbox", "segmentation", "keypoints"):  # loadRes takes one kind per list
        subset = [copy.deepcopy(r) for r in written if key in r]  # loadRes edits in place
        assert len(gt.loadRes(subset).anns) == len(subset) > 0
    # the same predictions as a ground-truth file, on request
    gt_out = tmp_path / "gt.json"
    report = _convert(src, gt_out, {"gt": str(gt_path)}, {"results": "false"})
    assert report.lossless and "annobridge_predictions" in report.summary()
    as_gt = json.loads(gt_out.read_text())
    assert as_gt["annotations"] == [] and len(as_gt["images"]) == 10
    assert sorted(map(canon, as_gt["annobridge_predictions"])) == sorted(map(canon, res))
    assert len(COCO(str(gt_out)).imgs) == 10  # pycocotools ignores the extra key
    back = engine.read_dataset(gt_out, "coco").materialize()
    assert sum(len(it.predictions) for it in back.items) == len(preds)


def test_results_image_missing_from_gt(tmp_path: Path) -> None:
    src = tmp_path / "res.json"
    src.write_text(json.dumps([{"image_id": 999, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}]))
    with pytest.raises(ReadError, match=r"res\.json#/0: image_id 999 does not exist in "
                                        r"the ground truth's images"):
        _convert(src, tmp_path / "o.json", {"gt": str(FIX / "synthetic/instances.json")})


def test_stuff_results_without_score(tmp_path: Path) -> None:
    stuff = json.loads((FIX / "synthetic/stuff.json").read_text())
    res = [{k: a[k] for k in ("image_id", "category_id", "segmentation")} for a in stuff["annotations"]]
    src = tmp_path / "stuff_res.json"
    src.write_text(json.dumps(res))
    out = tmp_path / "o.json"
    report = _convert(src, out)
    assert report.read == {"prediction:object_mask": len(res)}
    assert json.loads(out.read_text()) == res


def test_gt_and_predictions_to_results_reports_dropped_gt(tmp_path: Path) -> None:
    item = DatasetItem(reference_id="3", annotations=[BoxAnnotation(label="a", x=0, y=0, width=1, height=1)],
                       predictions=[BoxAnnotation(label="a", x=0, y=0, width=1, height=1, confidence=0.25)])
    out = tmp_path / "r.json"
    report = engine.write_dataset(Dataset.of([item]), out, "coco", {"results": "true"})
    assert json.loads(out.read_text()) == [{"image_id": 3, "category_id": 1, "bbox": [0, 0, 1, 1],
                                            "score": 0.25}]
    assert report.dropped["ground truth annotations"]


# --------------------------------------------------------------------------- bad input

BASE = {
    "images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 3}],
    "categories": [{"id": 1, "name": "p", "keypoints": ["a", "b"], "skeleton": [[1, 2]]}],
}


def _bad_file(tmp_path: Path, ann: dict | None = None, **top) -> Path:
    data = copy.deepcopy(BASE)
    data["annotations"] = [] if ann is None else [
        {"id": 5, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]},
        {"id": 17, "image_id": 1, "category_id": 1, **ann}]
    data.update(top)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("ann,message", [
    ({"bbox": [1, 2, 3]}, r"bbox has 3 numbers, expected 4 \[x, y, w, h\]"),
    ({"bbox": [1, 2, -3, 4]}, r"bbox \[1, 2, -3, 4\] has negative width or height"),
    ({"segmentation": [[0, 0, 1, 1]]}, r"polygon 0 has 4 numbers, expected an even count of at least 6"),
    ({"segmentation": {"size": [3, 4], "counts": [1, 2, 3]}}, r"RLE counts sum to 6, expected height x width = 3 x 4 = 12"),
    ({"segmentation": {"size": [3, 4], "counts": "0"}}, r"RLE counts sum to 0, expected height x width"),
    ({"image_id": 2}, r"image_id 2 does not exist in images"),
    ({"category_id": 9}, r"category_id 9 does not exist in categories"),
    ({"keypoints": [1, 1, 2]}, r"keypoints has 3 numbers, expected 3 x 2 keypoints of category 1 = 6"),
    ({"keypoints": [1, 1, 2, 1, 1, 3]}, r"keypoint visibility must be 0, 1 or 2"),
])
def test_bad_annotation(tmp_path: Path, ann: dict, message: str) -> None:
    path = _bad_file(tmp_path, ann)
    with pytest.raises(ReadError, match=r"bad\.json#/annotations/1\b.*" + message):
        _convert(path, tmp_path / "o.json", {"strict": "true"} if "keypoints has" in message else None)
    assert not (tmp_path / "o.json").exists()


def test_skeleton_out_of_range(tmp_path: Path) -> None:
    path = _bad_file(tmp_path, None, categories=[{"id": 1, "name": "p", "keypoints": ["a"],
                                                  "skeleton": [[1, 2]]}])
    with pytest.raises(ReadError, match=r"bad\.json#/categories/0/skeleton/0: skeleton edge \[1, 2\] "
                                        r"is out of range: COCO skeleton indices are 1-based, 1\.\.1"):
        _convert(path, tmp_path / "o.json", {"strict": "true"})


def test_duplicate_annotation_ids_name_both(tmp_path: Path) -> None:
    path = _bad_file(tmp_path, {"id": 5})
    with pytest.raises(ReadError, match=r"annotation id 5 is used twice: #/annotations/0 and "
                                        r"#/annotations/1"):
        _convert(path, tmp_path / "o.json")


def test_truncated_json(tmp_path: Path) -> None:
    path = tmp_path / "cut.json"
    path.write_text((FIX / "instances/instances.json").read_text()[:500])
    with pytest.raises(ReadError, match=r"cut\.json:line \d+: not valid JSON: .*\(line \d+, column \d+\)"):
        _convert(path, tmp_path / "o.json")


ALL_BAD = [
    {"bbox": [1, 2, 3]},
    {"bbox": [1, 2, -3, 4]},
    {"segmentation": [[0, 0, 1, 1]]},
    {"segmentation": {"size": [3, 4], "counts": [1, 2, 3]}},
    {"image_id": 2},
    {"category_id": 9},
    {"keypoints": [1, 1, 2]},
]


def test_validate_lists_every_problem_in_one_run(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["categories"][0]["skeleton"] = [[1, 3]]
    data["annotations"] = [{"id": 100 + n, "image_id": 1, "category_id": 1, **a} for n, a in enumerate(ALL_BAD)]
    data["annotations"].append({"id": 100, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]})
    path = tmp_path / "all.json"
    path.write_text(json.dumps(data))
    proc = subprocess.run([sys.executable, "-m", "annobridge", "validate", "--format", "coco", str(path),
                           "-o", "strict=true"],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 9, proc.stdout
    assert "all.json#/categories/0/skeleton/0" in lines[0]
    assert "annotation id 100 is used twice: #/annotations/0 and #/annotations/7" in proc.stdout
    for n in range(1, len(ALL_BAD)):  # annotation 0 is reported through the duplicate id
        assert f"all.json#/annotations/{n}" in proc.stdout
    assert "9 problem(s) found" in proc.stderr


def test_validate_real_malformed_files() -> None:
    kp_file = FIX / "datumaro_keypoints_malformed/person_keypoints_train.json"
    assert engine.validate(kp_file, "coco") == []  # readable as given by default
    errors = engine.validate(kp_file, "coco", {"strict": "true"})
    text = "\n".join(map(str, errors))
    assert "#/categories/0/skeleton/0: skeleton edge [0, 1] is out of range" in text
    assert "#/annotations/0" in text and "keypoints has 9 numbers, expected 3 x 0" in text
    errors = engine.validate(FIX / "datumaro_captions_malformed/captions_val.json", "coco")
    assert [e.where for e in errors] == ["#/annotations/0", "#/annotations/1"]
    assert all("category_id 0 does not exist" in e.problem for e in errors)


# --------------------------------------------------------------------------- detect, workers, CLI


def test_detect() -> None:
    for rel, _ in GT_CASES.values():
        assert coco.detect(FIX / rel), rel
    for rel in RESULT_CASES:
        assert coco.detect(FIX / rel), rel
    assert not coco.detect(FIX / "synthetic/SOURCES.md")


def test_workers_give_identical_output(tmp_path: Path) -> None:
    items = []
    for r in range(6):
        items.append(DatasetItem(reference_id=f"im{r}", width=20, height=10, annotations=[
            PolygonAnnotation(label="a", rings=[[1, 1, 9, 1, 5, 8 + r % 2]]),
            ObjectMaskAnnotation.from_array(np.eye(10, 20, k=r, dtype=np.uint8), label="b")]))
    outs = []
    for workers in (1, 2):
        ctx = Context(workers=workers)
        out = tmp_path / f"w{workers}.json"
        engine.write_dataset(Dataset.of(items), out, "coco", context=ctx)
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    assert all("area" in a for a in json.loads(outs[0])["annotations"])


def test_cli_convert_with_gt_option(tmp_path: Path) -> None:
    gt_path = FIX / "synthetic/instances.json"
    src = tmp_path / "res.json"
    src.write_text(json.dumps(_results_from(gt_path)))
    out = tmp_path / "o.jsonl"
    proc = subprocess.run([sys.executable, "-m", "annobridge", "convert", str(src), str(out), "--to",
                           "jsonl", "--option", f"gt={gt_path}"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "nothing was dropped" in proc.stdout
    assert '"width":640' in out.read_text()


# --------------------------------------------------------------------------- hypothesis

_coord = st.floats(0, 100, allow_nan=False, allow_infinity=False, width=32).map(lambda v: round(v, 2))


@st.composite
def _coco_files(draw) -> dict:
    cats = [{"id": cid, "name": f"c{cid}", "supercategory": "s"} for cid in
            draw(st.lists(st.integers(0, 200), min_size=1, max_size=4, unique=True))]
    cats[0]["keypoints"] = ["a", "b", "c"]
    cats[0]["skeleton"] = [[1, 2], [2, 3]]
    n_img = draw(st.integers(1, 4))
    images = [{"id": i * 7 + 1, "file_name": f"{i}.jpg", "width": 30, "height": 20} for i in range(n_img)]
    anns = []
    for n in range(draw(st.integers(0, 10))):
        cat = draw(st.sampled_from(cats))
        ann: dict = {"id": n + 1, "image_id": draw(st.sampled_from(images))["id"], "category_id": cat["id"]}
        kind = draw(st.sampled_from(["box", "poly", "rle", "crle", "none"]))
        if kind != "none":
            ann["bbox"] = [draw(_coord), draw(_coord), draw(_coord), draw(_coord)]
            ann["area"] = draw(_coord)
            ann["iscrowd"] = draw(st.sampled_from([0, 1]))
        if kind == "poly":
            ann["segmentation"] = [draw(st.lists(_coord, min_size=3, max_size=8).map(lambda v: v * 2))
                                   for _ in range(draw(st.integers(1, 3)))]
        elif kind in ("rle", "crle"):
            m = np.asfortranarray(np.array(draw(st.lists(st.integers(0, 1), min_size=20 * 30,
                                                         max_size=20 * 30)), dtype=np.uint8).reshape(20, 30))
            rle = mask_utils.encode(m)
            if kind == "crle":
                ann["segmentation"] = {"size": [20, 30], "counts": rle["counts"].decode()}
            else:
                flat = m.flatten(order="F")
                runs, cur, n_run = [], 0, 0
                for v in flat:
                    if v != cur:
                        runs.append(n_run)
                        cur, n_run = v, 0
                    n_run += 1
                runs.append(n_run)
                ann["segmentation"] = {"size": [20, 30], "counts": runs}
        if cat.get("keypoints") and draw(st.booleans()):
            ann["keypoints"] = [v for _ in range(3) for v in (draw(_coord), draw(_coord), draw(st.sampled_from([0, 1, 2])))]
            ann["num_keypoints"] = sum(1 for v in ann["keypoints"][2::3] if v > 0)
        if draw(st.booleans()):
            # (integers beyond 64 bits survive COCO -> COCO, see test_odd_ids..., but not
            # pydantic's JSON dump used by the canonical JSONL writer)
            ann["extra"] = draw(st.one_of(st.none(), st.text(max_size=4),
                                          st.integers(-(2**63), 2**63 - 1)))
        anns.append(ann)
    return {"info": {"year": 2024}, "licenses": [], "images": images, "annotations": anns, "categories": cats}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_coco_files())
def test_hypothesis_coco_round_trip(data: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.json"
        src.write_text(json.dumps(data))
        mid = Path(tmp) / "mid.jsonl"
        _convert(src, mid, dst_format="jsonl")
        out = Path(tmp) / "out.json"
        report = _convert(mid, out, src_format="jsonl")
        assert report.lossless, report.dropped
        back = json.loads(out.read_text())
        for img in back["images"]:  # JSONL resolves relative locations; COCO keeps them as given
            img["file_name"] = Path(img["file_name"]).name
        _same_file(data, back)


# --------------------------------------------------------------------------- RLE string check


@pytest.mark.parametrize("counts,total", [("411101", 12), ("061", 7), ("5d0n0F", 65), ("X13T32", 148)])
def test_rle_string_total_worked_examples(counts: str, total: int) -> None:
    """The worked examples of the format sheet (maskApi.c rleToString)."""
    assert coco._rle_total(counts) == total


def test_rle_string_total_matches_pycocotools() -> None:
    rng = np.random.default_rng(7)
    for n in range(200):
        h, w = (int(v) for v in rng.integers(1, 70, 2))
        if n % 2:
            m = (rng.random((h, w)) < rng.random()).astype(np.uint8)
        else:
            m = np.zeros((h, w), dtype=np.uint8)
            m[rng.integers(0, h):, rng.integers(0, w):] = 1
        rle = mask_utils.encode(np.asfortranarray(m))
        assert coco._rle_total(rle["counts"].decode()) == h * w
    assert coco._rle_total("o") is None  # a cut-off value
    assert coco._rle_total("0@") is None  # a negative run
    assert coco._rle_total("0 1") is None  # a character outside '0'..'o'


def test_categories_sharing_a_name_keep_their_ids(tmp_path: Path) -> None:
    data = {"images": [{"id": 1, "file_name": "a.jpg", "width": 5, "height": 5}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [0, 0, 1, 1]},
                            {"id": 2, "image_id": 1, "category_id": 8, "bbox": [1, 1, 1, 1]}],
            "categories": [{"id": 3, "name": "car"}, {"id": 8, "name": "car"}]}
    src = tmp_path / "dup.json"
    src.write_text(json.dumps(data))
    out = tmp_path / "out.json"
    _convert(src, out)
    _same_file(data, json.loads(out.read_text()))


def test_cli_results_option_writes_a_results_list(tmp_path: Path) -> None:
    src = FIX / "synthetic/instances.json"
    out = tmp_path / "res.json"
    proc = subprocess.run([sys.executable, "-m", "annobridge", "convert", str(src), str(out), "--to", "coco",
                           "--option", "results=true"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "ground truth annotations" in proc.stdout  # the GT it could not hold is reported
    assert json.loads(out.read_text()) == []


def test_a_group_with_two_main_geometries_becomes_two_records(tmp_path: Path) -> None:
    ring = [0, 0, 4, 0, 4, 4]
    item = DatasetItem(reference_id="1", width=10, height=10, annotations=[
        PolygonAnnotation(label="a", rings=[ring], group_id="4", annotation_id="4"),
        PolygonAnnotation(label="a", rings=[[5, 5, 9, 5, 9, 9]], group_id="4", annotation_id="4b"),
        BoxAnnotation(label="a", x=0, y=0, width=4, height=4, group_id="4", annotation_id="4c"),
    ])
    out = tmp_path / "o.json"
    engine.write_dataset(Dataset.of([item]), out, "coco")
    anns = {a["id"]: a for a in json.loads(out.read_text())["annotations"]}
    assert anns[4]["segmentation"] == [ring] and anns[4]["bbox"] == [0, 0, 4, 4]
    other = [a for k, a in anns.items() if k != 4]
    assert len(other) == 1 and other[0]["segmentation"] == [[5, 5, 9, 5, 9, 9]]
    assert other[0]["bbox"] == [5, 5, 4, 4] and other[0]["area"] > 0


# --------------------------------------------------------------------------- records parsed one by one


def _read_both(path: Path, monkeypatch: pytest.MonkeyPatch, options: dict | None = None) -> tuple:
    """The dataset (or the problems, when validating finds some) read with the annotations
    parsed record by record, and read with the whole file parsed first."""
    read_mod = importlib.import_module("annobridge.plugins.coco.read")  # plugins import it lazily
    out = []
    for lazy in (True, False):
        with monkeypatch.context() as m:
            if not lazy:
                m.setattr(read_mod, "load_json_lazily", lambda raw, key: None)
            problems = engine.validate(path, "coco", options, write_to="")
            if problems:
                out.append([str(p) for p in problems])
            else:
                ds = engine.read_dataset(path, "coco", options).materialize()
                out.append((ds.header, ds.items))
    return tuple(out)


@pytest.mark.parametrize("rel", sorted(str(p.relative_to(FIX)) for p in FIX.glob("*/*.json")))
def test_records_parsed_one_by_one_read_as_the_whole_file(rel: str, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = (FIX / rel).read_bytes()
    if isinstance(json.loads(raw), dict) and isinstance(json.loads(raw).get("annotations"), list):
        assert load_json_lazily(raw, "annotations") is not None  # the path under test is taken
    lazy, whole = _read_both(FIX / rel, monkeypatch)
    assert lazy == whole


@pytest.mark.parametrize("change, problem", [
    ({"id": 12345678901234567890123}, "annotation id is 1.2345678901234568e+22, expected an integer"),
    ({"image_id": 1.0}, "image_id 1.0 does not exist in images"),
    ({"id": 1}, "annotation id 1 is used twice"),
    ({"image_id": 99}, "image_id 99 does not exist"),
    ({"area": "@@"}, "number 1e400 is out of range"),
])
def test_records_parsed_one_by_one_find_the_same_problems(change: dict, problem: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    data = copy.deepcopy(BASE)
    data["annotations"] = [{"id": n, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]} for n in (1, 2, 3)]
    data["annotations"][2].update(change)
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(data, indent=1).replace('"@@"', "1e400"))
    lazy, whole = _read_both(path, monkeypatch)
    assert lazy == whole
    assert len(lazy) == 1 and problem in lazy[0], lazy


@pytest.mark.parametrize("aid", [2**63 - 1, 2**63, 2**64 - 1, -(2**63)])
def test_annotation_ids_at_the_64_bit_edges_read_as_the_whole_file(aid: int, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Bucketing checks ids as it decodes them (within int64); one beyond takes the careful
    path, which reads it as orjson does (an integer up to 2**64 - 1)."""
    data = copy.deepcopy(BASE)
    data["annotations"] = [{"id": n, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]} for n in (aid, 3)]
    path = tmp_path / "edge.json"
    path.write_text(json.dumps(data))
    lazy, whole = _read_both(path, monkeypatch)
    assert lazy == whole and isinstance(lazy, tuple), lazy  # read, not refused
    assert lazy[1][0].annotations[0].annotation_id == str(aid)


# --------------------------------------------------------------------------- boxes on read


def _mixed_coco(path: Path, spelled_group: bool = False) -> Path:
    """One image per case of a record a box-only target gets as a box (or not)."""
    square = [10, 10, 30, 10, 30, 30, 10, 30]
    rle = mask_utils.encode(np.asfortranarray(np.pad(np.ones((4, 5), np.uint8), ((2, 14), (3, 12)))))
    counts = rle["counts"].decode("ascii")
    records = [
        {"segmentation": [square], "bbox": [10, 10, 20, 20], "area": 390.5, "iscrowd": 0},  # box from bbox
        {"segmentation": [square], "area": 400, "iscrowd": 0},  # no bbox: the engine takes the rings' extent
        {"segmentation": {"size": [20, 20], "counts": counts}, "bbox": [3, 2, 5, 4], "area": 20, "iscrowd": 0},
        {"segmentation": {"size": [20, 20], "counts": counts}, "bbox": [3, 2, 5, 4], "area": 20, "iscrowd": 1},
        {"segmentation": [square, [1, 1, 4, 1, 4, 4]], "bbox": [1.5, 1, 28.5, 29], "area": 404.5, "iscrowd": 0,
         "keypoints": [12, 12, 2, 0, 0, 0], "num_keypoints": 1},
        {"segmentation": [], "bbox": [0, 0, 7, 8], "area": 56, "iscrowd": 0},
        # keypoints: left out on read only where the object's box is read from the record
        {"bbox": [5, 5, 9, 9], "area": 81, "iscrowd": 0, "keypoints": [6, 6, 1, 9, 9, 2], "num_keypoints": 1},
        {"segmentation": {"size": [20, 20], "counts": counts}, "bbox": [3, 2, 5, 4], "area": 20, "iscrowd": 1,
         "keypoints": [4, 4, 2, 0, 0, 0], "num_keypoints": 1},  # a crowd mask: the engine's
        {"segmentation": [square], "area": 400, "iscrowd": 0, "keypoints": [12, 12, 2, 0, 0, 0],
         "num_keypoints": 1},  # no bbox: the engine derives the polygon's extent, then drops these
        {"area": 0, "iscrowd": 0, "keypoints": [12, 12, 2, 20, 22, 1], "num_keypoints": 2},  # the only box
        {"area": 0, "iscrowd": 0, "keypoints": [0, 0, 0, 0, 0, 0], "num_keypoints": 0},  # none labelled
    ]
    images = [{"id": i + 1, "file_name": f"{i + 1}.jpg", "width": 40, "height": 40} for i in range(len(records))]
    anns = [{"id": i + 1, "image_id": i + 1, "category_id": 1, **r} for i, r in enumerate(records)]
    if spelled_group:  # a file with spelled group ids is left to the engine's derivation
        anns[1]["annobridge_group_id"] = "object-2"
    doc = {"images": images, "annotations": anns,
           "categories": [{"id": 1, "name": "thing", "keypoints": ["a", "b"], "skeleton": [[1, 2]]}]}
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_a_box_only_target_gets_boxes_straight_from_the_records(tmp_path: Path) -> None:
    src = _mixed_coco(tmp_path / "mixed.json")
    ctx = Context(boxes_on_read=frozenset({"polygon", "object_mask"}))
    items = list(engine.read_dataset(src, "coco", context=ctx).items)
    kinds = [[a.type for a in item.annotations] for item in items]
    # checked as always, then built as the box the engine would derive; a crowd region and a
    # polygon without bbox are left to the engine (it reports the crowd flag, takes the extent)
    assert kinds == [["box"], ["polygon"], ["box"], ["object_mask"], ["box", "keypoints"], ["box"],
                     ["box", "keypoints"], ["object_mask", "keypoints"], ["polygon", "keypoints"], ["keypoints"],
                     ["keypoints"]]
    assert "bbox" not in items[0].annotations[0].attributes
    assert ctx.report.read == {"box": 2, "polygon": 4, "object_mask": 3, "keypoints": 6}
    assert ctx.report.converted == {"polygon -> box": 2, "object_mask -> box": 1}


_SQUARE = [10, 10, 30, 10, 30, 30, 10, 30]
_RLE = {"size": [4, 5], "counts": [2, 18]}
_RECORDS = st.fixed_dictionaries({"area": st.just(1), "iscrowd": st.sampled_from([0, 1])}, optional={
    "bbox": st.sampled_from([[1, 2, 3, 4], [0.5, 0, 0, 2.25]]),
    "segmentation": st.sampled_from([[_SQUARE], [], _RLE, None]),
    "keypoints": st.sampled_from([[1, 1, 2, 5, 6, 1], [0, 0, 0, 0, 0, 0], [3, 4, 1, 0, 0, 0]]),
    "num_keypoints": st.sampled_from([0, 1, 2]),
})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(1, 3), _RECORDS), min_size=1, max_size=8))
def test_records_read_as_boxes_convert_as_the_engine_converts_them(tmp_path_factory: pytest.TempPathFactory,
                                                                    records: list[tuple[int, dict]]) -> None:
    """Any mix of boxes, polygons, masks, crowd flags and keypoints: the same files and report
    with boxes (and dropped keypoints) read from the records as with the engine deriving."""
    tmp = tmp_path_factory.mktemp("mix")
    doc = {"images": [{"id": i, "file_name": f"{i}.jpg", "width": 5, "height": 4} for i in (1, 2, 3)],
           "annotations": [{"id": n + 1, "image_id": image, "category_id": 1, **r}
                           for n, (image, r) in enumerate(records)],
           "categories": [{"id": 1, "name": "thing", "keypoints": ["a", "b"]}]}
    src = tmp / "mix.json"
    src.write_text(json.dumps(doc), encoding="utf-8")
    fast = engine.convert(src, tmp / "fast", src_format="coco", dst_format="kitti", write_options={"media": "none"})
    ctx = Context()
    slow = engine.write_dataset(engine.read_dataset(src, "coco", context=ctx), tmp / "slow", "kitti",
                                {"media": "none"}, context=ctx)
    assert (fast.read, fast.converted, fast.dropped, fast.written) == (
        slow.read, slow.converted, slow.dropped, slow.written)
    made = sorted(p.relative_to(tmp / "fast") for p in (tmp / "fast").rglob("*") if p.is_file())
    assert made == sorted(p.relative_to(tmp / "slow") for p in (tmp / "slow").rglob("*") if p.is_file())
    for rel in made:
        assert (tmp / "fast" / rel).read_bytes() == (tmp / "slow" / rel).read_bytes(), rel


def test_keypoints_of_an_object_read_as_a_box_are_left_out_as_the_engine_drops_them(tmp_path: Path) -> None:
    src = _mixed_coco(tmp_path / "mixed.json")
    reason = "kitti cannot hold keypoints ground truth; its object already has a box"
    ctx = Context(boxes_on_read=frozenset({"polygon", "object_mask"}), dropped_on_read={"keypoints": reason})
    items = list(engine.read_dataset(src, "coco", context=ctx).items)
    kinds = [[a.type for a in item.annotations] for item in items]
    # a crowd mask, an object without bbox, and keypoints alone are the engine's to decide
    assert kinds == [["box"], ["polygon"], ["box"], ["object_mask"], ["box"], ["box"],
                     ["box"], ["object_mask", "keypoints"], ["polygon", "keypoints"], ["keypoints"], ["keypoints"]]
    assert ctx.report.read == {"box": 2, "polygon": 4, "object_mask": 3, "keypoints": 6}
    assert ctx.report.dropped == {"keypoints": {reason: 2}}
    assert items[4].annotations[0].attributes == {"area": 404.5, "iscrowd": 0}  # as the engine's box has them


def test_keypoints_are_dropped_on_read_only_for_a_target_that_makes_boxes_of_them() -> None:
    from annobridge.core.formats import Capabilities

    reason = {"keypoints": "kitti cannot hold keypoints ground truth; its object already has a box"}
    assert engine.dropped_on_read(Capabilities(annotation_types={"box", "cuboid"}), "kitti") == reason
    assert engine.dropped_on_read(Capabilities(annotation_types={"box", "keypoints"}), "x") == {}
    assert engine.dropped_on_read(Capabilities(annotation_types={"polygon"}), "x") == {}  # nothing to make


@pytest.mark.parametrize("keypoints, message", [
    ([1, 2], "keypoints has 2 numbers, expected 3 x 2 keypoints of category 1 = 6"),
    ([1, 2, 2, 3, 4, "x"], "keypoints hold a non-number"),
    ([1, 2, 2, 3, 4, 3], "keypoint visibility must be 0, 1 or 2, got \\[3\\]"),
])
def test_keypoints_left_out_on_read_are_checked_as_always(tmp_path: Path, keypoints: list[object],
                                                           message: str) -> None:
    doc = {"images": [{"id": 1, "file_name": "1.jpg", "width": 4, "height": 4}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2], "area": 4,
                            "iscrowd": 0, "keypoints": keypoints, "num_keypoints": 1}],
           "categories": [{"id": 1, "name": "thing", "keypoints": ["a", "b"]}]}
    src = tmp_path / "bad.json"
    src.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ReadError, match=message):
        engine.convert(src, tmp_path / "out", src_format="coco", dst_format="kitti", write_options={"media": "none"})


@pytest.mark.parametrize("spelled_group", [False, True])
@pytest.mark.parametrize("target, options", [("kitti", {"media": "none"}), ("yolo", {"task": "detect"}),
                                              ("pascal-voc", {"media": "none"})])
def test_boxes_on_read_write_what_the_engine_derives(tmp_path: Path, target: str, options: dict[str, str],
                                                     spelled_group: bool) -> None:
    """The same files and report as the engine's own derivation (a read without the hint)."""
    src = _mixed_coco(tmp_path / "mixed.json", spelled_group)
    fast = engine.convert(src, tmp_path / "fast", src_format="coco", dst_format=target, write_options=options)
    ctx = Context()
    slow = engine.write_dataset(engine.read_dataset(src, "coco", context=ctx), tmp_path / "slow", target, options,
                                context=ctx)
    assert (fast.read, fast.converted, fast.dropped, fast.written) == (
        slow.read, slow.converted, slow.dropped, slow.written)
    assert list(fast.dropped) == list(slow.dropped)  # in the order the report lists them
    assert fast.converted  # polygons and masks became boxes
    made = sorted(p.relative_to(tmp_path / "fast") for p in (tmp_path / "fast").rglob("*") if p.is_file())
    assert made == sorted(p.relative_to(tmp_path / "slow") for p in (tmp_path / "slow").rglob("*") if p.is_file())
    for rel in made:
        assert (tmp_path / "fast" / rel).read_bytes() == (tmp_path / "slow" / rel).read_bytes(), rel


def test_boxes_on_read_are_the_kinds_the_target_derives_boxes_from() -> None:
    from annobridge.core import derive
    from annobridge.core.formats import Capabilities

    assert derive.boxes_on_read(Capabilities(annotation_types={"box", "cuboid"})) == {"polygon", "object_mask"}
    assert derive.boxes_on_read(Capabilities(annotation_types={"box", "polygon"})) == set()  # mask -> polygon
    assert derive.boxes_on_read(Capabilities(annotation_types={"box", "polygon"}), "box") == {"object_mask"}
    # a mask target derives masks from polygons; --geometry box prefers the box
    caps = Capabilities(annotation_types={"box", "object_mask"})
    assert derive.boxes_on_read(caps) == set()
    assert derive.boxes_on_read(caps, "box") == {"polygon"}
    assert derive.boxes_on_read(Capabilities(annotation_types={"polygon"})) == set()


@pytest.mark.parametrize("segmentation, message", [
    ([[1, 2, 3, 4]], "polygon 0 has 4 numbers"),
    ([[1, 2, 3, 4, 5, "x"]], "polygon 0 holds a non-number"),
    ({"size": [4, 4], "counts": [3, 2]}, "RLE counts sum to 5"),
])
def test_boxes_on_read_check_the_segmentation_as_always(tmp_path: Path, segmentation: object, message: str) -> None:
    doc = {"images": [{"id": 1, "file_name": "1.jpg", "width": 4, "height": 4}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2], "area": 4,
                            "iscrowd": 0, "segmentation": segmentation}],
           "categories": [{"id": 1, "name": "thing"}]}
    src = tmp_path / "bad.json"
    src.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ReadError, match=message):
        engine.convert(src, tmp_path / "out", src_format="coco", dst_format="kitti", write_options={"media": "none"})
    assert not (tmp_path / "out").exists()
