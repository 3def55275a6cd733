"""``coco-panoptic``: COCO panoptic segmentation, a JSON file plus a folder of RGB PNGs.

Files (cocodataset/panopticapi ``README.md`` and ``panopticapi/utils.py``):
    ``NAME.json``: ``images``, ``annotations`` (one per image: ``image_id``, ``file_name``,
    ``segments_info``), ``categories`` (``id``, ``name``, ``supercategory``, ``isthing``,
    ``color``), and ``info``/``licenses``/any other top-level keys.
    ``NAME/``: the PNG folder (the JSON's path without ``.json``; read option ``masks``
    points elsewhere). One 8-bit RGB PNG per annotation, named by the annotation's
    ``file_name`` — read from it and written to it, never derived. Segment id
    ``= R + 256·G + 65536·B`` (channels widened before combining), 0 = void.

Canonical model:
    One item per image: ``reference_id`` = ``str(image id)`` (as the coco plugin does; a
    string id is also kept in ``attributes["id"]`` so it is written back as a string),
    ``image_location`` = ``file_name`` as written (not resolved), ``width``/``height``;
    every other image key in ``attributes``. Writing, the image id is the reference id
    (an int when it is a plain decimal integer). The annotation becomes one
    :class:`SegmentationAnnotation`: an :class:`IndexMask` with ``encoding="rgb"`` pointing at
    the PNG (decoded lazily, as uint32) and one :class:`Segment` per ``segments_info`` entry:
    ``index`` = segment id, ``label`` = category name, ``attributes`` = ``category_id``,
    ``iscrowd``, ``area``, ``bbox`` and any extra keys as given, plus ``isthing`` from the
    category. The annotation's ``file_name`` and extra keys go to the segmentation's
    ``attributes``. Categories keep ``supercategory``; ``isthing``, ``color`` and extra keys
    go to ``Category.attributes``; top-level keys other than images/annotations/categories
    go to ``header.info["coco_panoptic"]``.

Reading checks every PNG (decoded through ``context.map``, so ``--workers`` parallelises
it; read option ``check-masks=false`` skips this decode for trusted data): a PNG that is missing or not RGB, whose size differs from its image entry, that holds
a non-zero id with no ``segments_info`` entry, or misses an id listed there; plus a
duplicate segment id and an unknown ``category_id``. Each is a :class:`ReadError` naming the
file, the JSON pointer and the segment, recorded through ``context.error`` so
``annobridge validate`` lists them all.

Writing: segment ids are kept when the mask is RGB-encoded (panoptic ids) and generated the
panopticapi way otherwise (``IdGenerator``: a stuff segment gets its category colour, a
thing its colour or, when taken in the image, the colour jittered by up to ±30 per channel;
seeded per item so output is reproducible) — write option ``segment-ids=auto|keep|generate``.
``area`` is written as the exact pixel count (a differing source value is replaced and
reported), ``bbox`` as given or computed from the pixels when absent. A PNG whose ids are
kept and that needs no change is copied byte for byte. Categories without ``color`` use a
colour derived from their id for id generation (not written); without ``isthing`` they are
written as things (``isthing: 1``); labels missing from the header categories become new
categories (reported in the notes). Masks are decoded/encoded through ``context.map``.

With ``--workers``/``--executor dask`` and a source read in parts, each worker writes the PNGs
of its part and returns their JSON records; the driver writes the JSON (``Format.parts``).
From a panoptic source each PNG is then decoded once, by the worker that reads it: its
writer takes the ids the reader's check decoded. New segment ids (``segment-ids=generate``)
are made per image (seeded by the item), so workers make them. A PNG name made up for an item
without ``file_name`` and a category made for a label the header lacks depend on the items
before; the driver replays them in order and, where a part chose otherwise, the dataset is
written again in one process (noted).

What is lost: item and annotation metadata, segment metadata, ``Segment.attributes
["isthing"]`` (a category fact, written on the category), the raw values of pixels that
have no segment (void in the model too; written as 0), segments without pixels (reported),
the order of ``annotations`` when it differed from the order of ``images`` (written in
image order), every annotation kind
other than segmentation (use ``--task panoptic`` to rasterise object masks first).
"""

from __future__ import annotations

from pathlib import Path

from annobridge.core.formats import Capabilities, Format, LazyFunction, Parts, lazy_exports
from annobridge.core.hookspecs import hookimpl
from annobridge.plugins.coco_panoptic.common import default_color, rgb2id

__all__ = ["FORMAT", "IdGenerator", "PanopticReadOptions", "PanopticWriteOptions",
           "default_color", "detect", "image_id_of", "register_formats", "rgb2id"]

# The options models (pydantic), the reader and the writer (numpy, Pillow, the model) are
# imported on first use, not to list formats.
__getattr__ = lazy_exports(__name__, {"options": ("PanopticReadOptions", "PanopticWriteOptions"),
                                       "write": ("IdGenerator", "image_id_of")})


def detect(path: Path) -> bool:
    """A ``.json`` file whose first 4 MB mention ``segments_info``."""
    if not path.is_file() or path.suffix.lower() != ".json":
        return False
    with open(path, "rb") as fh:
        head = fh.read(4 << 20)
    return b'"segments_info"' in head


FORMAT = Format(
    name="coco-panoptic",
    description="COCO panoptic segmentation: JSON + folder of RGB PNGs (id = R + 256G + 65536B)",
    capabilities=Capabilities(annotation_types=frozenset({"segmentation"})),
    read=LazyFunction(f"{__name__}.read", "read"),
    shards=LazyFunction(f"{__name__}.read", "shards"),
    heavy_units=True,  # each image's PNG is decoded
    write=LazyFunction(f"{__name__}.write", "write"),
    # workers write their items' PNGs (panoptic -> panoptic: each taking the ids its reader's check
    # decoded), the driver the JSON; segment ids are per image, so they need no numbering over the dataset
    parts=Parts(LazyFunction(f"{__name__}.write", "write_part"), LazyFunction(f"{__name__}.write", "finish"),
                keeps_ids=False),
    detect=detect,
    read_options=LazyFunction(f"{__name__}.options", "PanopticReadOptions"),
    write_options=LazyFunction(f"{__name__}.options", "PanopticWriteOptions"),
    output="file",
)


@hookimpl
def register_formats() -> list[Format]:
    return [FORMAT]
