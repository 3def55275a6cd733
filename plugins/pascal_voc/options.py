"""The ``--option`` models of the ``pascal-voc`` format(s): pydantic, imported when options are
parsed or described, not when the format is declared (``annobridge formats`` imports no
pydantic).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from annobridge.plugins.pascal_voc.common import Coordinates


class VocReadOptions(BaseModel):
    """Options of the Pascal VOC reader.

    Args:
        coordinates: ``devkit`` (1-based inclusive pixels, the default) or ``corners``
            (continuous edges, as datumaro and labelformat write them).
        strict: refuse a SegmentationClass value beyond the class list instead of keeping it
            as an unlabelled (void) mask value with a warning (docs/refusals.md).
    """

    model_config = ConfigDict(extra="forbid")
    coordinates: Coordinates = "devkit"
    strict: bool = False


class VocWriteOptions(BaseModel):
    """Options of the Pascal VOC writer.

    Args:
        coordinates: as for reading.
        media: ``none`` (default), ``link`` (symlink) or ``copy`` images into ``JPEGImages/``.
        split: the ImageSets split of items that name none.
        class_lists: write ``<class>_<split>.txt`` for every class (true), never (false), or as
            the source had them (unset).
    """

    model_config = ConfigDict(extra="forbid")
    coordinates: Coordinates = "devkit"
    media: Literal["none", "link", "copy"] = "none"
    split: str = "default"
    class_lists: bool | None = None
