"""annobridge: convert computer-vision annotations between formats through one canonical model.

This package is the public facade. The code lives in three folders at the repository top
level, installed under this namespace::

    core/        -> annobridge.core        model, formats, hooks, errors
    plugins/     -> annobridge.plugins     built-in formats (ordinary plugins)
    converters/  -> annobridge.converters  engine, CLI, this API

Typical use::

    import annobridge
    ds = annobridge.load("instances.json")              # format detected
    report = annobridge.convert("instances.json", "out.jsonl", to_format="nucleus")
    print(report.summary())
"""

from importlib.metadata import PackageNotFoundError, version

from annobridge.converters.api import (
    consolidate,
    convert,
    load,
    merge,
    read_label_map,
    relabel,
    save,
    split,
    validate,
)
from annobridge.core.errors import (
    AnnobridgeError,
    FormatError,
    MetadataTypeError,
    PluginError,
    ReadError,
    UnsupportedAnnotationError,
    WriteError,
)
from annobridge.core.formats import Capabilities, ConversionReport, Context, Format
from annobridge.core.hookspecs import hookimpl
from annobridge.core.model import (
    Annotation,
    BoxAnnotation,
    Category,
    CategoryAnnotation,
    CuboidAnnotation,
    Dataset,
    DatasetHeader,
    DatasetItem,
    FrameRef,
    IndexMask,
    Keypoint,
    KeypointsAnnotation,
    LidarPoint,
    LineAnnotation,
    MaterializedDataset,
    MultiCategoryAnnotation,
    ObjectMaskAnnotation,
    OrientedBoxAnnotation,
    Point,
    Point3D,
    PolygonAnnotation,
    Scene,
    SceneCategoryAnnotation,
    Segment,
    SegmentationAnnotation,
    Taxonomy,
)

try:
    __version__ = version("annobridge")  # the one place is pyproject.toml
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "AnnobridgeError", "Annotation", "BoxAnnotation", "Capabilities", "Category",
    "CategoryAnnotation", "Context", "ConversionReport", "CuboidAnnotation", "Dataset",
    "DatasetHeader", "DatasetItem", "Format", "FormatError", "FrameRef", "MetadataTypeError", "IndexMask",
    "Keypoint", "KeypointsAnnotation", "LidarPoint", "LineAnnotation", "MaterializedDataset",
    "MultiCategoryAnnotation", "ObjectMaskAnnotation", "OrientedBoxAnnotation", "PluginError", "Point", "Point3D",
    "PolygonAnnotation", "ReadError", "Scene", "SceneCategoryAnnotation", "Segment",
    "SegmentationAnnotation", "Taxonomy", "UnsupportedAnnotationError", "WriteError",
    "consolidate", "convert", "hookimpl", "load", "merge", "read_label_map", "relabel", "save",
    "split", "validate",
]
