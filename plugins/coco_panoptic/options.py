"""The ``--option`` models of the ``coco-panoptic`` format(s): pydantic, imported when options are
parsed or described, not when the format is declared (``annobridge formats`` imports no
pydantic).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class PanopticReadOptions(BaseModel):
    """``masks``: the PNG folder (default: the JSON path without ``.json``).
    ``check_masks``: decode every PNG while reading to check it against its JSON (default);
    ``false`` skips that decode for trusted data (``annobridge validate`` always checks)."""

    model_config = ConfigDict(extra="forbid")
    masks: str | None = None
    check_masks: bool = True


class PanopticWriteOptions(BaseModel):
    """``segment_ids``: ``auto`` keeps ids of RGB-encoded (panoptic) masks and generates
    them otherwise; ``keep`` always keeps mask values as ids; ``generate`` always generates."""

    model_config = ConfigDict(extra="forbid")
    segment_ids: Literal["auto", "keep", "generate"] = "auto"
