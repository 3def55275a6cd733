"""``jsonl``: the canonical model written as it is — lossless for everything the model holds.

Files:
    ``NAME.jsonl``: line 1 is ``{"annobridge_header": {...}}`` (the :class:`DatasetHeader`
    and a format version); every further line is one :class:`DatasetItem` as JSON, in
    stream order.
    ``NAME.masks/``: segmentation index masks as PNG, named ``<line>-<annotation>.png``:
    8-bit when all values are below 256, 16-bit up to 65535, RGB-encoded
    (``R + 256·G + 65536·B``) above. Their locations are relative to the ``.jsonl`` file's
    folder and resolved against it on reading, so the folder can be moved.
    Image and point-cloud locations are kept exactly as given, both ways: what a relative
    location is relative to (COCO's ``file_name``: an image root no file records) is the
    source's business, and rewriting it would change it.

What is lost: nothing. Remote mask URLs are kept as URLs, not downloaded.
"""

from __future__ import annotations

from pathlib import Path

from annobridge.core.formats import Capabilities, Format, LazyFunction
from annobridge.core.hookspecs import hookimpl

HEADER_KEY = "annobridge_header"
VERSION = 1


def detect(path: Path) -> bool:
    if not path.is_file() or path.suffix != ".jsonl":
        return False
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read(len(HEADER_KEY) + 4).lstrip().startswith(f'{{"{HEADER_KEY}"')


FORMAT = Format(
    name="jsonl",
    description="annobridge canonical JSONL: the model as it is, lossless",
    capabilities=Capabilities.full(),
    read=LazyFunction(f"{__name__}.read", "read"),
    write=LazyFunction(f"{__name__}.write", "write"),
    detect=detect,
)


@hookimpl
def register_formats() -> list[Format]:
    return [FORMAT]
