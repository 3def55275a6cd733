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

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # type checkers and IDEs see the real names
    __version__: str
    from annobridge.converters.api import (
        consolidate,
        convert,
        load,
        merge,
        read_label_map,
        relabel,
        save,
        split,
        update_scene_metadata,
        validate,
    )
    from annobridge.core.errors import (
        AnnobridgeError,
        FormatError,
        MetadataTypeError,
        PluginError,
        ReadError,
        UnsupportedAnnotationError,
        ValidationWarning,
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

_LAZY: dict[str, str] = {
    "consolidate": "annobridge.converters.api",
    "convert": "annobridge.converters.api",
    "load": "annobridge.converters.api",
    "merge": "annobridge.converters.api",
    "read_label_map": "annobridge.converters.api",
    "relabel": "annobridge.converters.api",
    "save": "annobridge.converters.api",
    "split": "annobridge.converters.api",
    "update_scene_metadata": "annobridge.converters.api",
    "validate": "annobridge.converters.api",
    "AnnobridgeError": "annobridge.core.errors",
    "FormatError": "annobridge.core.errors",
    "MetadataTypeError": "annobridge.core.errors",
    "PluginError": "annobridge.core.errors",
    "ReadError": "annobridge.core.errors",
    "UnsupportedAnnotationError": "annobridge.core.errors",
    "ValidationWarning": "annobridge.core.errors",
    "WriteError": "annobridge.core.errors",
    "Capabilities": "annobridge.core.formats",
    "ConversionReport": "annobridge.core.formats",
    "Context": "annobridge.core.formats",
    "Format": "annobridge.core.formats",
    "hookimpl": "annobridge.core.hookspecs",
    "Annotation": "annobridge.core.model",
    "BoxAnnotation": "annobridge.core.model",
    "Category": "annobridge.core.model",
    "CategoryAnnotation": "annobridge.core.model",
    "CuboidAnnotation": "annobridge.core.model",
    "Dataset": "annobridge.core.model",
    "DatasetHeader": "annobridge.core.model",
    "DatasetItem": "annobridge.core.model",
    "FrameRef": "annobridge.core.model",
    "IndexMask": "annobridge.core.model",
    "Keypoint": "annobridge.core.model",
    "KeypointsAnnotation": "annobridge.core.model",
    "LidarPoint": "annobridge.core.model",
    "LineAnnotation": "annobridge.core.model",
    "MaterializedDataset": "annobridge.core.model",
    "MultiCategoryAnnotation": "annobridge.core.model",
    "ObjectMaskAnnotation": "annobridge.core.model",
    "OrientedBoxAnnotation": "annobridge.core.model",
    "Point": "annobridge.core.model",
    "Point3D": "annobridge.core.model",
    "PolygonAnnotation": "annobridge.core.model",
    "Scene": "annobridge.core.model",
    "SceneCategoryAnnotation": "annobridge.core.model",
    "Segment": "annobridge.core.model",
    "SegmentationAnnotation": "annobridge.core.model",
    "Taxonomy": "annobridge.core.model",
}
"""Public name -> the module that defines it, imported on first use (PEP 562)."""

__all__ = [
    "AnnobridgeError", "Annotation", "BoxAnnotation", "Capabilities", "Category",
    "CategoryAnnotation", "Context", "ConversionReport", "CuboidAnnotation", "Dataset",
    "DatasetHeader", "DatasetItem", "Format", "FormatError", "FrameRef", "MetadataTypeError", "IndexMask",
    "Keypoint", "KeypointsAnnotation", "LidarPoint", "LineAnnotation", "MaterializedDataset",
    "MultiCategoryAnnotation", "ObjectMaskAnnotation", "OrientedBoxAnnotation", "PluginError", "Point", "Point3D",
    "PolygonAnnotation", "ReadError", "Scene", "SceneCategoryAnnotation", "Segment",
    "SegmentationAnnotation", "Taxonomy", "UnsupportedAnnotationError", "ValidationWarning", "WriteError",
    "consolidate", "convert", "hookimpl", "load", "merge", "read_label_map", "relabel", "save",
    "split", "update_scene_metadata", "validate",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use, so ``import annobridge`` (and the CLI's
    start-up) does not pay for numpy, pydantic models and every plugin."""
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("annobridge")  # the one place is pyproject.toml
        except PackageNotFoundError:  # imported from a source tree that was never installed
            value = "0+unknown"
    elif name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | {"__version__"})
