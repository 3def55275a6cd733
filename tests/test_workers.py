"""``--workers N`` gives the same output, in the same order, as one process — for every format."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annobridge.converters import engine
from annobridge.core.formats import Context
from annobridge.core.plugins import get_registry
from tests.strategies import datasets
from tests.test_roundtrip import _with_real_images

WRITABLE = sorted(n for n, f in get_registry().formats.items() if f.write)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt_name", WRITABLE)
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_workers_do_not_change_the_output(fmt_name: str, data: st.DataObject) -> None:
    fmt = get_registry().get(fmt_name)
    dataset = data.draw(datasets(fmt.capabilities, fmt_name))
    with tempfile.TemporaryDirectory() as tmp:
        dataset = _with_real_images(dataset, Path(tmp) / "images")
        outputs = {}
        for workers in (1, 2):
            out_dir = Path(tmp) / f"w{workers}"
            engine.write_dataset(dataset, out_dir / "out", fmt_name, context=Context(workers=workers))
            outputs[workers] = _tree(out_dir)
        assert outputs[1] == outputs[2]
        assert outputs[1], "the writer wrote nothing"
