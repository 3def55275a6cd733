"""Reading canonical JSONL: the header line, then one validated item a line."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from annobridge.core.errors import ReadError
from annobridge.core.formats import Context, NoOptions, local_path
from annobridge.core.limits import load_json
from annobridge.core.model import Dataset, DatasetHeader, DatasetItem, SegmentationAnnotation
from annobridge.core.paths import contained
from annobridge.plugins.jsonl import HEADER_KEY


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
