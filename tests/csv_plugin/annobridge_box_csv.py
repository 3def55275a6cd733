"""``box-csv``: boxes in one CSV file — an annobridge plugin from a separate package.

File (one ``.csv``), a header line and then one row per box::

    image,image_width,image_height,label,x,y,width,height
    street_001.png,64,48,car,8,12,32,16
    street_002.png,64,48,,,,,

``image`` is the item (its id is the file name without suffix, its image location the name
relative to the CSV's folder); sizes are in pixels; ``x, y`` is the box's top-left corner in
pixels. An image without boxes has one row with an empty label. Numbers are written with
``repr`` so a round trip is exact to the float.

What is lost: everything but 2D ground-truth boxes and their labels (the engine reports other
kinds, metadata and predictions as dropped).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from annobridge import Capabilities, Context, Format, ReadError, WriteError, hookimpl
from annobridge.core.formats import NoOptions

if TYPE_CHECKING:
    from annobridge import Dataset, DatasetItem

# The model (pydantic models, numpy) is imported when a file is read or written, not when
# annobridge loads the plugin: `annobridge formats` and `--help` stay fast.

COLUMNS = ["image", "image_width", "image_height", "label", "x", "y", "width", "height"]


def read(path: Path, options: NoOptions, context: Context) -> Dataset:
    from annobridge import Category, Dataset, DatasetHeader

    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0] != COLUMNS:
        raise ReadError(f"the first line must be the header {','.join(COLUMNS)}", file=path, where="line 1")
    labels = sorted({r[3] for r in rows[1:] if len(r) == len(COLUMNS) and r[3]})
    header = DatasetHeader(categories=[Category(id=i, name=n) for i, n in enumerate(labels)])
    return Dataset(header=header, items=_items(path, rows[1:], context))


def _items(path: Path, rows: list[list[str]], context: Context) -> Iterator[DatasetItem]:
    from annobridge import BoxAnnotation, DatasetItem

    items: dict[str, DatasetItem] = {}
    for lineno, row in enumerate(rows, start=2):
        try:
            if len(row) != len(COLUMNS):
                raise ValueError(f"{len(row)} columns, expected {len(COLUMNS)}: {','.join(COLUMNS)}")
            image, width, height, label = row[0], int(row[1]), int(row[2]), row[3]
            boxes = [float(v) for v in row[4:]] if label else []
            if boxes and (boxes[2] < 0 or boxes[3] < 0):
                raise ValueError(f"box size {row[6]} x {row[7]} is negative")
        except ValueError as exc:
            context.error(ReadError(str(exc), file=path, where=f"line {lineno}"))
            continue
        ref = Path(image).stem
        item = items.get(ref)
        if item is None:
            item = items[ref] = DatasetItem(reference_id=ref, image_location=str(path.parent / image),
                                            width=width, height=height)
        if boxes:
            x, y, w, h = boxes
            item.annotations.append(BoxAnnotation(label=label, x=x, y=y, width=w, height=h, reference_id=ref,
                                                  annotation_id=f"{ref}-{lineno}"))
    yield from items.values()


def write(dataset: Dataset, destination: Path, options: NoOptions, context: Context) -> None:
    with destination.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(COLUMNS)
        for item in dataset.items:
            if not item.width or not item.height:
                raise WriteError("box-csv needs the image width and height", item=item.reference_id)
            image = Path(item.image_location).name if item.image_location else f"{item.reference_id}.png"
            if not item.annotations:
                out.writerow([image, item.width, item.height, "", "", "", "", ""])
            for ann in item.annotations:
                out.writerow([image, item.width, item.height, ann.label,
                              repr(ann.x), repr(ann.y), repr(ann.width), repr(ann.height)])


def detect(path: Path) -> bool:
    if not (path.is_file() and path.suffix == ".csv"):
        return False
    with path.open(encoding="utf-8") as f:
        return f.readline().strip() == ",".join(COLUMNS)


FORMAT = Format(
    name="box-csv",
    description="boxes in one CSV file (image, size, label, x, y, width, height in pixels)",
    capabilities=Capabilities(annotation_types=frozenset({"box"})),
    read=read,
    write=write,
    detect=detect,
    output="file",
)


@hookimpl
def register_formats() -> list[Format]:
    return [FORMAT]
