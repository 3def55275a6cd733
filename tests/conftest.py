"""Shared test fixtures: paths to bundled sample data and a fresh format registry."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from annobridge.core.plugins import FormatRegistry, get_plugin_manager

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture
def in_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """``annobridge.convert`` on local workers reads a source in parts whatever the target: it
    otherwise reads light units in one process for a target the driver writes
    (``Format.heavy_units``, tested in test_one_process.py); here the parts machinery is tested."""
    from annobridge.converters import engine

    real = engine.read_shards
    monkeypatch.setattr(engine, "read_shards", lambda *args, target=None, **kwargs: real(*args, **kwargs))


@pytest.fixture
def registry() -> FormatRegistry:
    return FormatRegistry.from_manager(get_plugin_manager())


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible server (moto's server mode) on a free 127.0.0.1 port, for the session."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line a request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An s3fs filesystem on the test server; AWS_ENDPOINT_URL and fake credentials are set for
    this test only (subprocesses inherit them), and every bucket is emptied afterwards."""
    import s3fs

    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem(endpoint_url=s3_endpoint, skip_instance_cache=True)
    try:
        yield fs
    finally:
        for bucket in fs.ls(""):
            fs.rm(bucket, recursive=True)
        s3fs.S3FileSystem.clear_instance_cache()


class S3Requests(logging.Handler):
    """The requests the test S3 server answers (its werkzeug request log), from every process."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        import re
        from urllib.parse import unquote

        text = re.sub(r"\x1b\[[0-9;]*m", "", record.getMessage())  # werkzeug colours statuses but 200
        m = re.search(r'"([A-Z]+) (\S+) HTTP/[\d.]+" (\d+)', text)
        if m:
            self.lines.append((m.group(1), unquote(m.group(2).split("?", 1)[0]).lstrip("/")))

    def gets(self, prefix: str) -> dict[str, int]:
        """Object key -> how many times it was downloaded (GET of the object, not a listing)."""
        out: dict[str, int] = {}
        for method, key in self.lines:
            if method == "GET" and key.startswith(prefix) and not key.endswith("/"):
                out[key] = out.get(key, 0) + 1
        return out

    def clear(self) -> None:
        self.lines.clear()


@pytest.fixture
def s3_requests(s3: Any) -> Iterator[S3Requests]:
    """Records what the S3 server of the ``s3`` fixture is asked for while the test runs."""
    log = logging.getLogger("werkzeug")
    handler = S3Requests()
    level = log.level
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        yield handler
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
