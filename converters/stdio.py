"""``-`` as a source or destination: standard input or output, for single-file formats.

Readers and writers work on paths (the writer is staged and moved atomically), so ``-`` is
bridged through a private temporary folder: standard input is copied into a file there
before reading; the written file is copied to standard output only once the conversion
succeeded. A format that writes a folder, or files beside its output (mask PNGs), cannot
go to standard output and says so.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from annobridge.core.errors import FormatError, WriteError
from annobridge.core.formats import Format

STDIO = "-"


class StdioPaths:
    """Paths standing in for ``-``; call :meth:`close` when done (removes the temporary folder)."""

    def __init__(self, source: str | Path, destination: str | Path) -> None:
        self.from_stdin = str(source) == STDIO
        self.to_stdout = str(destination) == STDIO
        self._tmp: Path | None = None
        self.source: str | Path = self._stdin_file() if self.from_stdin else source
        self.destination: str | Path = self._folder() / "stdout" / "output" if self.to_stdout else destination

    def _folder(self) -> Path:
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="annobridge-stdio-"))
        return self._tmp

    def _stdin_file(self) -> Path:
        path = self._folder() / "stdin"
        with open(path, "wb") as out:
            shutil.copyfileobj(sys.stdin.buffer, out)
        return path

    def check_writer(self, writer: Format) -> None:
        """Refuse ``-`` as the destination of a format that writes a folder."""
        if self.to_stdout and writer.output != "file":
            raise FormatError(f"format {writer.name!r} writes a folder, which cannot go to standard output",
                              fix="give a destination path instead of '-'")

    def send(self) -> None:
        """Copy the written file to standard output (nothing when the destination is a path)."""
        if not self.to_stdout:
            return
        out = Path(self.destination)
        written = sorted(p.name for p in out.parent.iterdir())
        if written != [out.name]:
            raise WriteError(f"the writer produced {', '.join(written)}; standard output holds one file",
                             fix="give a destination path instead of '-'")
        with open(out, "rb") as fh:
            shutil.copyfileobj(fh, sys.stdout.buffer)
        sys.stdout.buffer.flush()

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
