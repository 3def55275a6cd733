"""Shared test fixtures: paths to bundled sample data and a fresh format registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from annobridge.core.plugins import FormatRegistry, get_plugin_manager

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture
def registry() -> FormatRegistry:
    return FormatRegistry.from_manager(get_plugin_manager())
