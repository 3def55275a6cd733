"""The KITTI writer's plain-box fast path (``_plain_rows``) against the general per-object
path (``_general_rows``): generated frames, with and without what the fast path leaves to
the general one (cuboids, KITTI attributes, DontCare, refused class names, label maps,
negative coordinates, predictions), must give the same rows, the same losses and the same
error either way."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annobridge.core.errors import WriteError
from annobridge.core.model import BoxAnnotation, CuboidAnnotation, KeypointsAnnotation, Keypoint, Point3D
from annobridge.plugins.kitti import write as kitti_write
from annobridge.plugins.kitti.common import OBJECT_STYLE, TRACKING_STYLE

PLAIN_LABELS = ["Car", "person", "t-shirt", "traffic light", "x%y", "Ünïcode"]
ODD_LABELS = ["DontCare", "dontcare", "7 up", "Car 2", " padded", "", "a  b", "tab\there"]
MAPPING = {"person": "Pedestrian", "Car": None, "t-shirt": "DontCare", "traffic light": "9 lights"}

coordinate = st.one_of(
    st.floats(min_value=-50, max_value=5000, allow_nan=False),
    st.integers(min_value=-5, max_value=5000),
    st.sampled_from([-0.004, -0.005, -0.0, 0.0, 0.005, 1e-9, 1234.565]),
)
size = st.one_of(st.floats(min_value=0, max_value=2000, allow_nan=False), st.integers(min_value=0, max_value=2000),
                 st.sampled_from([0.5, 0.001]))


@st.composite
def attributes(draw: Any, box: tuple[Any, Any, Any, Any], kitti: bool) -> dict[str, Any]:
    """COCO-like attributes: an area that is or is not the box's, a crowd flag, others."""
    w, h = box[2], box[3]
    wh = float(w) * float(h)
    area = st.sampled_from([wh, wh * (1 + 5e-7), wh * (1 + 2e-6), wh + 5e-7, wh + 2e-6, wh + 0.5,  # the tolerance's edges
                            0.5, 0, True, "12", math.nan, math.inf, None])
    keys = {
        "area": area,
        "iscrowd": st.sampled_from([0, 1, False, True, 0.0, "0", None]),
        "segmentation": st.just([[1.0, 2.0, 3.0, 4.0]]),
        "note": st.text(max_size=3),
    }
    if kitti:
        keys |= {"truncated": st.sampled_from([0, 0.5, 1]), "occluded": st.sampled_from([0, 1, 2]),
                 "alpha": st.floats(-3, 3), "score": st.floats(0, 1), "kitti_text": st.just("0 0 0 1 2 3 4")}
    chosen = draw(st.lists(st.sampled_from(sorted(keys)), unique=True, max_size=4))
    return {k: draw(keys[k]) for k in chosen}


@st.composite
def boxes(draw: Any, labels: list[str], kitti: bool) -> BoxAnnotation:
    x, y, w, h = draw(coordinate), draw(coordinate), draw(size), draw(size)
    conf = draw(st.one_of(st.none(), st.floats(0, 1)))
    return BoxAnnotation(label=draw(st.sampled_from(labels)), x=x, y=y, width=w, height=h, confidence=conf,
                         attributes=draw(attributes((x, y, w, h), kitti)))


def others() -> st.SearchStrategy[Any]:
    """Annotations that are not boxes: a camera-frame cuboid (no calibration needed) or keypoints."""
    cuboid = st.builds(lambda x: CuboidAnnotation(label="Car", position=Point3D(x=x, y=1.0, z=10.0),
                                                  dimensions=Point3D(x=4.0, y=1.8, z=1.5), yaw=0.3, frame="camera"),
                       st.floats(-5, 5))
    keypoints = st.just(KeypointsAnnotation(label="person", keypoints=[Keypoint(x=1.0, y=2.0)], names=["nose"]))
    return st.one_of(cuboid, keypoints)


def _job(mapping: dict[str, str | None], tracking: bool = False) -> kitti_write.FrameJob:
    return kitti_write.FrameJob("f", [], None, Path("unused"), "none", mapping,
                                TRACKING_STYLE if tracking else OBJECT_STYLE, (("0000", 3) if tracking else None))


def _both(anns: list[Any], prediction: bool, job: kitti_write.FrameJob) -> tuple[Any, Any]:
    """(rows, drops) or the error message of the dispatching path and of the general path."""
    def run(fast: bool) -> Any:
        drops: list[tuple[str, str, int]] = []
        try:
            if fast:
                rows = kitti_write._rows_for(anns, prediction, None, (None, None), job, "ref", drops)
            else:
                rows = kitti_write._general_rows(*kitti_write._boxes_cuboids(anns), prediction, None, (None, None),
                                                 job, "ref", drops)
        except WriteError as exc:
            return ("error", str(exc))
        return rows, drops
    return run(True), run(False)


@settings(max_examples=300, deadline=None)
@given(anns=st.lists(boxes(PLAIN_LABELS, kitti=False), max_size=8), prediction=st.booleans(),
       mapped=st.booleans())
def test_plain_frames_take_the_fast_path_and_match(anns: list[BoxAnnotation], prediction: bool, mapped: bool) -> None:
    job = _job(MAPPING if mapped else {})
    drops: list[tuple[str, str, int]] = []
    rows = kitti_write._plain_rows(anns, prediction, job, drops)
    if mapped and any(MAPPING.get(b.label, b.label) in ("DontCare", "9 lights") for b in anns):
        assert rows is None  # DontCare and a refused name are the general path's
        assert drops == []
    else:
        assert rows is not None
    fast, general = _both(anns, prediction, job)
    assert fast == general
    if rows is not None:
        assert (rows, drops) == general


@settings(max_examples=300, deadline=None)
@given(anns=st.lists(st.one_of(boxes(PLAIN_LABELS + ODD_LABELS, kitti=True), others()), max_size=8),
       prediction=st.booleans(), mapped=st.booleans(), tracking=st.booleans())
def test_any_frame_gives_the_general_paths_rows(anns: list[Any], prediction: bool, mapped: bool,
                                                tracking: bool) -> None:
    fast, general = _both(anns, prediction, _job(MAPPING if mapped else {}, tracking))
    assert fast == general


def test_a_rounded_negative_zero_and_the_lost_attributes() -> None:
    """The cases written out: -0.004 is written 0.00; an area equal to w x h and iscrowd 0
    are not losses, another area, a crowd flag and any other key are, once per row."""
    anns = [
        BoxAnnotation(label="person", x=-0.004, y=2, width=10.0, height=4.0, attributes={"area": 40.0, "iscrowd": 0}),
        BoxAnnotation(label="person", x=1.0, y=2.0, width=10.0, height=4.0,
                      attributes={"iscrowd": 1, "area": 39.5, "segmentation": [[0, 0, 1, 1]]}),
        BoxAnnotation(label="Car", x=1.0, y=2.0, width=3.0, height=4.0, attributes={"area": 11.5}),
    ]
    drops: list[tuple[str, str, int]] = []
    rows = kitti_write._plain_rows(anns, False, _job({}), drops)
    assert rows == [
        "person -1 -1 -10 0.00 2.00 10.00 6.00 -1 -1 -1 -1000 -1000 -1000 -10",
        "person -1 -1 -10 1.00 2.00 11.00 6.00 -1 -1 -1 -1000 -1000 -1000 -10",
        "Car -1 -1 -10 1.00 2.00 4.00 6.00 -1 -1 -1 -1000 -1000 -1000 -10",
    ]
    no_field = "KITTI label rows have no field for it"
    assert drops == [("attribute:iscrowd", no_field, 1), ("attribute:area", no_field, 2),
                     ("attribute:segmentation", no_field, 1)]


@pytest.mark.parametrize("label", ["DontCare", "7 up", ""])
def test_the_fast_path_leaves_classes_it_does_not_render(label: str) -> None:
    drops: list[tuple[str, str, int]] = []
    box = BoxAnnotation(label=label, x=1, y=2, width=3, height=4)
    assert kitti_write._plain_rows([box], False, _job({}), drops) is None
    assert drops == []
