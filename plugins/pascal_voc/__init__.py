"""``pascal-voc``: the Pascal VOC devkit layout — XML boxes, ImageSets lists, class and object
masks — read and written losslessly for what VOC holds.

Files read (``PATH`` is the folder holding ``Annotations/``; ``VOCdevkit/`` or ``VOCdevkit/VOC2012``
above it is accepted; a folder of VOC XML files lying beside their images, as Kaggle and
Roboflow export them, is read as a *flat* layout)
    ``Annotations/<id>.xml`` (ids may contain ``/``: sub-folders), ``ImageSets/Main/<split>.txt``
    and ``ImageSets/Segmentation/<split>.txt`` (one id a line), ``ImageSets/Main/<class>_<split>.txt``
    (``<id> <1|0|-1>``), other ``ImageSets/<folder>/*.txt`` (Action, Layout), ``SegmentationClass/<id>.png``,
    ``SegmentationObject/<id>.png``, ``JPEGImages/`` and ``labelmap.txt`` (datumaro's
    ``name:r,g,b:parts:actions``). Items are the sorted union of the XML ids, the listed ids and
    the mask ids (flat layouts: and the images without an XML).

Boxes: the coordinate convention (option ``coordinates``)
    The devkit counts pixels from 1 and includes both corners: pixel ``i`` covers the continuous
    interval ``[i-1, i]``, a box ``xmin=1 xmax=3`` is 3 pixels wide (the devkit's area is
    ``(xmax-xmin+1)·(ymax-ymin+1)``; detectron2 reads VOC the same way). The model's boxes are
    continuous with ``[0, 0, 1, 1]`` the first pixel, so by default (``coordinates=devkit``)
    ``x = xmin - 1``, ``y = ymin - 1``, ``width = xmax - xmin + 1``, ``height = ymax - ymin + 1``,
    and the writer inverts it. datumaro and labelformat instead take the corners as continuous
    edges (``x = xmin``, ``width = xmax - xmin``): ``coordinates=corners`` reads and writes that
    way (use it for files those tools wrote, or for them to read ours). Arithmetic is done on
    decimals, so numbers are exact: an integer corner gives an int, ``540.0`` a float, and the
    writer prints the exact decimal sum of the values' shortest forms (``75.3`` stays ``75.3``,
    ``540.0`` stays ``540.0``). A corner whose text the writer would print differently (``05``,
    ``5.10``, ``1e2``) is kept verbatim in ``attributes["voc_text"]`` and reused while its value is
    unchanged, so ``write(read(x))`` reproduces every number byte for byte.

Canonical model
    Item: ``reference_id`` = the XML path below ``Annotations/`` without ``.xml``;
    ``image_location`` = ``JPEGImages/<filename>`` (flat: beside the XML; every ``<filename>``
    goes through ``core.paths.contained``), else the ``JPEGImages/<id>.*`` found; width/height from
    ``<size>``, else from the image header (never decoded), else from the class mask. Attributes:
    ``voc_folder``, ``voc_filename`` (as written), ``depth``, ``segmented`` (as written; absent
    when the file has none), ``voc_no_size`` (the file had no ``<size>``), ``voc_extra`` (unknown
    elements such as ``<source>``, ``<owner>``, ``<path>``: tag, attributes, text, children and
    position, written back where they stood), ``voc_imagesets`` (``{"Main": ["train", "trainval"],
    "Segmentation": [...]}``), ``voc_class_flags`` (``{split: {class: flag}}``, only where a
    per-class list disagrees with the devkit's rule below).

    Object: a :class:`BoxAnnotation` per ``<object>``, ``label`` = ``<name>``, ``annotation_id`` and
    ``group_id`` = its 1-based position. Attributes: ``pose`` (text), ``truncated``, ``difficult``,
    ``occluded`` (int when whole, else text, as written; absent when absent), ``actions``
    (``{"jumping": 1, ...}`` in file order), every datumaro ``<attributes><attribute><name>/<value>``
    as ``name: value`` (text), ``voc_extra`` (unknown elements such as VOC2012's ``<point>``).
    ``<part>`` (VOC's person layout: head, hand, foot): one more BoxAnnotation with the part's
    name as label, the object's ``group_id`` and ``attributes["part"] = True``
    (``annotation_id`` ``"<k>.<j>"``), as datumaro links parts by group.

    Masks: ``SegmentationClass/<id>.png`` -> one semantic :class:`SegmentationAnnotation`: the PNG's
    palette index is the class index into the class list (``labelmap.txt``, else VOC's 21 classes
    with 0 = background), one :class:`Segment` per class present (``index`` = class index, the
    background class included), 255 = void has no segment. RGB PNGs are mapped through the
    colormap. ``SegmentationObject/<id>.png`` -> one :class:`ObjectMaskAnnotation` per instance value
    ``k`` (1..254): the devkit's instance ``k`` is the ``k``-th XML object, so the mask takes that
    object's label and ``group_id`` (box and mask are one object, as COCO holds them); an instance
    without an object keeps ``attributes["voc_instance"] = k`` and the majority class under it. The
    object PNG's void border is the class PNG's (checked; differences are reported).

    Header: categories = ``labelmap.txt`` lines (``id`` = index; ``color``, ``parts``, ``actions`` in
    ``Category.attributes``), else VOC's 21 classes (ids 0..20, as the devkit and datumaro assume) —
    labels outside it stay on their boxes, and writers that need ids give them new ones.
    ``attributes["split"]`` = the item's one ``Main`` split besides ``trainval``, as the YOLO
    plugin names splits. ``header.info["pascal-voc"]``: ``labelmap`` (the source had one), ``class_lists``
    (``{split: [classes with a <class>_<split>.txt]}``), ``other_imagesets`` (Action/Layout lists,
    verbatim), ``layout: "flat"``.

Writing (``DEST`` is a folder; always the devkit layout)
    ``Annotations/<id>.xml`` (tab-indented as the devkit's files; elements in the devkit's order,
    kept unknown ones at their positions, no XML declaration), ``ImageSets/<folder>/<split>.txt``
    from ``voc_imagesets`` (items without it go to ``Main/<split>`` — the item's
    ``attributes["split"]`` or option ``split`` — and, when they have masks, ``Segmentation/<split>``),
    per-class lists ``Main/<class>_<split>.txt`` (``%s %2d`` as the devkit writes them; flag 1 =
    a non-difficult object of the class, 0 = only difficult ones, -1 = none, unless
    ``voc_class_flags`` says otherwise) for the classes and splits the source had them (option
    ``class-lists=true`` writes them for every class, ``false`` never), the source's other ImageSets
    files verbatim, ``SegmentationClass``/``SegmentationObject`` palette PNGs with the VOC colormap
    (or the labelmap's colours), and ``labelmap.txt`` when the classes are not VOC's 21, a class has
    parts or actions beyond VOC's person layout, or the source had one: every class with its
    colour, then datumaro's ``ignored:224,224,192::`` line for void (datumaro reads mask colours
    only from this file once it exists; the reader skips that last line). ``<filename>`` is ``voc_filename``, else the image's base name (a COCO
    ``file_name``), else — for ids with a sub-folder, a base name taken by an earlier item, or
    no image — ``<id>`` + the image's suffix (``.jpg`` without an image). ``<size>`` needs the item's width and height; ``<depth>`` is written only when
    known. Images are copied (``media=copy``), symlinked (``link``) or left alone (``none``, the
    default). New labels take the next class index; a class mask holds 255 classes.

What is lost (each reported)
    Predictions, item and annotation metadata, annotation kinds other than box, segmentation and
    object_mask (the engine reports them); object attributes that are lists or objects (and the type
    of non-text ones: VOC ``<attributes>`` hold text); attributes of ``<part>`` boxes; a part without
    its object; object masks without a box in their group (a SegmentationObject value is the
    position of its XML object), overlapping mask pixels, and masks past 254 objects; segments of one
    label merged in SegmentationClass (instance identity); unknown elements inside ``<bndbox>``;
    XML comments, indentation and the order of known elements (the writer uses the devkit's).

Options
    Read: ``coordinates=devkit|corners``. Write: ``coordinates=devkit|corners``,
    ``media=none|link|copy``, ``split=NAME`` (default ``default``, datumaro's subset name),
    ``class-lists=true|false`` (default: as the source had them).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from annobridge.core.formats import Capabilities, Context, Format, LazyFunction, lazy_exports
from annobridge.core.hookspecs import hookimpl

# The options models (pydantic) are imported on first use, not to list formats.
__getattr__ = lazy_exports(__name__, {"options": ("VocReadOptions", "VocWriteOptions")})

if TYPE_CHECKING:
    from annobridge.core.model import Dataset
    from annobridge.plugins.pascal_voc.options import VocReadOptions, VocWriteOptions

# The reader and writer (numpy, Pillow, the model) are imported on first use, not to list
# formats; the package's ``read`` and ``write`` are those submodules.


def _read_dataset(path: Path, options: VocReadOptions, context: Context) -> Dataset:
    from annobridge.plugins.pascal_voc.read import read

    return read(path, options.coordinates, context, strict=options.strict)


def _write_dataset(dataset: Dataset, destination: Path, options: VocWriteOptions, context: Context) -> None:
    if "/" in options.split or "\\" in options.split or not options.split.strip():
        from annobridge.core.errors import FormatError

        raise FormatError(f"split {options.split!r} must be a plain name", fix="e.g. split=train")
    from annobridge.plugins.pascal_voc.write import write

    write(dataset, destination, options.coordinates, options.media, options.split,
          options.class_lists, context)


def detect(path: Path) -> bool:
    """A devkit tree (``Annotations/``, ``SegmentationClass/`` or ``SegmentationObject/``), or a
    folder (or its sub-folders, as Roboflow splits) whose first XML files have an
    ``<annotation>`` root."""
    from annobridge.plugins.pascal_voc.common import find_layout

    return path.is_dir() and find_layout(path) is not None


CAPABILITIES = Capabilities(annotation_types=frozenset({"box", "segmentation", "object_mask"}))

FORMAT = Format(
    name="pascal-voc",
    description="Pascal VOC: Annotations XML boxes (parts, actions, attributes), ImageSets lists, "
                "SegmentationClass/SegmentationObject palette PNGs, labelmap.txt",
    capabilities=CAPABILITIES,
    read=_read_dataset,
    write=_write_dataset,
    detect=detect,
    read_options=LazyFunction(f"{__name__}.options", "VocReadOptions"),
    write_options=LazyFunction(f"{__name__}.options", "VocWriteOptions"),
    output="directory",
)


@hookimpl
def register_formats() -> list[Format]:
    return [FORMAT]
