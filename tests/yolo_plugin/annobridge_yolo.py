"""``yolo``: YOLO detection txt folders — an annobridge plugin from a separate package.

Files (a directory)::

    classes.txt          one class name per line; the line number (0-based) is the class id
    images/<ref>.<ext>   the images (copied on write; their headers give the sizes on read)
    labels/<ref>.txt     one line per box: ``class cx cy w h``, normalised to 0..1 by the
                         image width and height, box centre and size

What is lost: everything but 2D ground-truth boxes and their labels (the engine reports
other kinds, metadata and predictions as dropped). Numbers are written with full float
precision so a round trip is exact to the float.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from annobridge import (
    BoxAnnotation,
    Capabilities,
    Category,
    Context,
    Dataset,
    DatasetHeader,
    DatasetItem,
    Format,
    ReadError,
    WriteError,
    hookimpl,
)
from annobridge.core.formats import NoOptions

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def read(path: Path, options: NoOptions, context: Context) -> Dataset:
    names_file = path / "classes.txt"
    if not names_file.is_file():
        raise ReadError("classes.txt is missing", file=path, fix="a YOLO folder needs classes.txt")
    names = [line.strip() for line in names_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    header = DatasetHeader(categories=[Category(id=i, name=n) for i, n in enumerate(names)])
    return Dataset(header=header, items=_items(path, names, context))


def _image_for(root: Path, stem: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        candidate = root / "images" / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _items(root: Path, names: list[str], context: Context) -> Iterator[DatasetItem]:
    for label_file in sorted((root / "labels").glob("*.txt")):
        ref = label_file.stem
        image = _image_for(root, ref)
        if image is None:
            context.error(ReadError("no image for this label file (sizes come from the image)",
                                    file=label_file, fix=f"put images/{ref}.png beside labels/"))
            continue
        with Image.open(image) as img:
            width, height = img.size
        boxes = []
        for lineno, line in enumerate(label_file.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split()
            try:
                if len(parts) != 5:
                    raise ValueError(f"{len(parts)} columns, expected 5: class cx cy w h")
                cls = int(parts[0])
                cx, cy, w, h = (float(p) for p in parts[1:])
                if not 0 <= cls < len(names):
                    raise ValueError(f"class {cls} is not in classes.txt (0..{len(names) - 1})")
            except ValueError as exc:
                context.error(ReadError(str(exc), file=label_file, where=f"line {lineno}", item=ref))
                continue
            bw, bh = w * width, h * height
            boxes.append(BoxAnnotation.model_construct(
                label=names[cls], x=cx * width - bw / 2, y=cy * height - bh / 2, width=bw, height=bh,
                reference_id=ref, annotation_id=f"{ref}-{lineno}"))
        yield DatasetItem.model_construct(reference_id=ref, image_location=str(image),
                                          width=width, height=height, annotations=boxes)


def write(dataset: Dataset, destination: Path, options: NoOptions, context: Context) -> None:
    names = [c.name for c in sorted(dataset.header.categories, key=lambda c: c.id)]
    index = {n: i for i, n in enumerate(names)}
    (destination / "labels").mkdir(parents=True)
    (destination / "images").mkdir()
    for item in dataset.items:
        if not item.width or not item.height:
            raise WriteError("YOLO needs the image width and height", item=item.reference_id)
        lines = []
        for ann in item.annotations:
            if ann.label not in index:
                index[ann.label] = len(names)
                names.append(ann.label)
            cx = (ann.x + ann.width / 2) / item.width
            cy = (ann.y + ann.height / 2) / item.height
            lines.append(f"{index[ann.label]} {cx!r} {cy!r} {ann.width / item.width!r} {ann.height / item.height!r}")
        (destination / "labels" / f"{item.reference_id}.txt").write_text(
            "".join(line + "\n" for line in lines), encoding="utf-8")
        source = Path(item.image_location) if item.image_location else None
        if source is not None and source.is_file():
            shutil.copyfile(source, destination / "images" / f"{item.reference_id}{source.suffix}")
        else:
            raise WriteError("YOLO needs the image file (sizes are read from it)", item=item.reference_id,
                             file=item.image_location)
    (destination / "classes.txt").write_text("".join(n + "\n" for n in names), encoding="utf-8")


def detect(path: Path) -> bool:
    return path.is_dir() and (path / "classes.txt").is_file() and (path / "labels").is_dir()


FORMAT = Format(
    name="yolo",
    description="YOLO detection txt (class cx cy w h, normalised) with classes.txt",
    capabilities=Capabilities(annotation_types=frozenset({"box"})),
    read=read,
    write=write,
    detect=detect,
    output="directory",
)


@hookimpl
def register_formats() -> list[Format]:
    return [FORMAT]
