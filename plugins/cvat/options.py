"""The ``--option`` models of the ``cvat`` format(s): pydantic, imported when options are
parsed or described, not when the format is declared (``annobridge formats`` imports no
pydantic).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict


class CvatReadOptions(BaseModel):
    """``--option`` keys for reading CVAT XML.

    Args:
        images: the folder the image names are relative to (a CVAT export's ``images/``):
            items then get ``DIR/name`` as their location, checked to stay inside it.
    """

    model_config = ConfigDict(extra="forbid")
    images: Path | None = None


class CvatWriteOptions(BaseModel):
    """``--option`` keys for writing CVAT XML.

    Args:
        mode: ``images`` (CVAT for images), ``video`` (CVAT for video: one scene's frames)
            or ``auto``: video for a dataset read from a CVAT video or made of one scene.
        images: write image names relative to this folder (the locations must be inside).
    """

    model_config = ConfigDict(extra="forbid")
    mode: Literal["auto", "images", "video"] = "auto"
    images: Path | None = None
