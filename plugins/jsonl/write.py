"""Writing canonical JSONL: items as they are, masks as PNGs in ``NAME.masks/``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from annobridge.core.formats import Context, NoOptions, local_path, relative_location
from annobridge.core.masks import write_mask_png
from annobridge.core.model import Dataset, DatasetItem, IndexMask, SegmentationAnnotation
from annobridge.plugins.jsonl import HEADER_KEY, VERSION


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
