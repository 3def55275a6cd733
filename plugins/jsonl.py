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

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from annobridge.core.errors import ReadError
from annobridge.core.formats import (
    Capabilities,
    Context,
    Format,
    NoOptions,
    local_path,
    relative_location,
)
from annobridge.core.hookspecs import hookimpl
from annobridge.core.limits import load_json
from annobridge.core.masks import write_mask_png
from annobridge.core.model import Dataset, DatasetHeader, DatasetItem, IndexMask, SegmentationAnnotation
from annobridge.core.paths import contained

HEADER_KEY = "annobridge_header"
VERSION = 1


def _validation_problem(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = "/".join(str(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg


def _reference_id(raw: object) -> str | None:
    """The item's reference id for an error message, when the line holds one."""
    ref = raw.get("reference_id") if isinstance(raw, dict) else None
    return ref if isinstance(ref, str) else None


def read(path: Path, options: NoOptions, context: Context) -> Dataset:
    """Read a canonical JSONL file; items are parsed lazily, line by line."""
    with open(path, "rb") as fh:
        first = fh.readline()
    try:
        head = load_json(first, file=path, where="line 1")[HEADER_KEY]
        header = DatasetHeader.model_validate(head["header"])
    except ReadError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise ReadError(f"line 1 is not an annobridge header: {exc}", file=path, where="line 1",
                        fix=f'the first line must be {{"{HEADER_KEY}": {{"version": 1, "header": ...}}}}') from exc
    except ValidationError as exc:
        raise ReadError(f"bad header: {_validation_problem(exc)}", file=path, where="line 1") from exc
    return Dataset(header=header, items=_items(path, context))


def _items(path: Path, context: Context) -> Iterator[DatasetItem]:
    base = path.parent
    with open(path, "rb") as fh:  # bytes: a line that is not UTF-8 is one error, not the end
        fh.readline()
        for lineno, line in enumerate(fh, start=2):
            if not line.strip():
                continue
            where = f"line {lineno}"
            try:
                raw = load_json(line, file=path, where=where)  # finite numbers, bounded ints and depth
                item = DatasetItem.model_validate(raw)
                for ann in item.annotations + item.predictions:
                    if isinstance(ann, SegmentationAnnotation) and ann.mask.location:
                        ann.mask.location = _resolve(ann.mask.location, base, path, where, item.reference_id)
                        ann.mask.expect_size(item.width, item.height)
            except ReadError as exc:
                context.error(exc)
                continue
            except ValidationError as exc:
                context.error(ReadError(_validation_problem(exc), file=path, where=where,
                                        item=_reference_id(raw),
                                        fix="each line must be one DatasetItem as JSON"))
                continue
            yield item


def _resolve(location: str, base: Path, path: Path, where: str, item: str) -> str:
    """A mask location resolved against the file's folder, which it must stay inside."""
    if local_path(location, base) is None:
        return location  # a URL
    return os.path.normpath(contained(base, location, what="mask location", file=path, where=where, item=item))



def write(dataset: Dataset, destination: Path, options: NoOptions, context: Context) -> None:
    """Write the header line, then one item per line; masks go to ``NAME.masks/``."""
    masks_dir = destination.with_name(destination.stem + ".masks")
    base = destination.parent
    # Items first, into a temporary body: streaming readers (Nucleus scene lines) fill
    # header.scenes while their items are read, so the header is only complete at the end.
    body = destination.with_name(destination.name + ".body.partial")
    with open(body, "w", encoding="utf-8") as out:
        for n, item in enumerate(dataset.items, start=2):
            anns = item.annotations + item.predictions
            for k, ann in enumerate(anns):
                if isinstance(ann, SegmentationAnnotation):
                    ann_mask = _store_mask(ann.mask, masks_dir / f"{n}-{k}.png", base)
                    replacement = ann.model_copy(update={"mask": ann_mask})
                    item = _replace_annotation(item, ann, replacement)
            out.write(item.model_dump_json(exclude_none=False))
            out.write("\n")
    with open(destination, "w", encoding="utf-8") as out:
        out.write(json.dumps({HEADER_KEY: {"version": VERSION, "header": dataset.header.model_dump(mode="json")}}))
        out.write("\n")
        with open(body, encoding="utf-8") as src:
            shutil.copyfileobj(src, out, 1 << 20)
    body.unlink()


def _store_mask(mask: IndexMask, target: Path, base: Path) -> IndexMask:
    if mask.png_bytes is not None:  # encoded where it was made: written as it is
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(mask.png_bytes)
        return IndexMask(location=relative_location(target, base), encoding=mask.encoding)
    src = local_path(mask.location, None) if mask.location else None
    if mask.location and src is None and not mask.is_loaded:
        return mask  # a URL: kept as it is
    if src is not None and not mask.is_loaded:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
        encoding = mask.encoding
    else:
        encoding = write_mask_png(mask.load(), target, "index" if int(mask.load().max(initial=0)) < 65536 else "rgb")
    return IndexMask(location=relative_location(target, base), encoding=encoding)


def _replace_annotation(item: DatasetItem, old: object, new: object) -> DatasetItem:
    return item.model_copy(update={
        "annotations": [new if a is old else a for a in item.annotations],
        "predictions": [new if a is old else a for a in item.predictions],
    })


def detect(path: Path) -> bool:
    if not path.is_file() or path.suffix != ".jsonl":
        return False
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read(len(HEADER_KEY) + 4).lstrip().startswith(f'{{"{HEADER_KEY}"')


FORMAT = Format(
    name="jsonl",
    description="annobridge canonical JSONL: the model as it is, lossless",
    capabilities=Capabilities.full(),
    read=read,
    write=write,
    detect=detect,
)


@hookimpl
def register_formats() -> list[Format]:
    return [FORMAT]
