"""One round-trip test for every registered format that can read and write.

Canonical data is drawn within each format's declared Capabilities, written, read back and
compared through ``project()``: a new format is covered without writing a new test.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from PIL import Image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import annobridge
from annobridge.core.plugins import get_registry
from tests.projection import project
from tests.strategies import datasets, limits_for

ROUND_TRIP_FORMATS = sorted(n for n, f in get_registry().formats.items() if f.read and f.write)


def _with_real_images(dataset: annobridge.Dataset, folder: Path) -> annobridge.Dataset:
    """Give every item a real PNG of its size: formats such as KITTI and YOLO read sizes from images."""
    folder.mkdir()
    for item in dataset.items:
        path = folder / f"{item.reference_id}.png"
        Image.new("RGB", (item.width, item.height), (40, 90, 160)).save(path)
        item.image_location = str(path)
    return dataset


@pytest.mark.parametrize("fmt_name", ROUND_TRIP_FORMATS)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_round_trip_is_lossless_within_capabilities(fmt_name: str, data: st.DataObject) -> None:
    fmt = get_registry().get(fmt_name)
    dataset = data.draw(datasets(fmt.capabilities, fmt_name))
    with tempfile.TemporaryDirectory() as tmp:
        dataset = _with_real_images(dataset, Path(tmp) / "source-images")
        dst = Path(tmp) / "out"
        write_key, read_key = limits_for(fmt_name).image_folder_options
        images = str(Path(tmp) / "source-images")
        report = annobridge.save(dataset, dst, fmt_name, {write_key: images} if write_key else None)
        assert report.dropped == {}, report.summary()
        back = annobridge.load(dst, fmt_name, {read_key: images} if read_key else None)
        assert project(back, fmt.capabilities) == project(dataset, fmt.capabilities)


def test_every_builtin_format_takes_part() -> None:
    """A format that can read and write but is missing here would escape the round trip."""
    assert "jsonl" in ROUND_TRIP_FORMATS
    assert len(ROUND_TRIP_FORMATS) == len(
        [f for f in get_registry().formats.values() if f.read is not None and f.write is not None]
    )
