"""The ``--option`` models of the ``yolo`` format(s): pydantic, imported when options are
parsed or described, not when the format is declared (``annobridge formats`` imports no
pydantic).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict


Task = Literal["auto", "detect", "segment", "pose", "obb"]


def _check_image_size(value: str | None) -> str | None:
    if value is None:
        return None
    w, sep, h = value.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or int(w) == 0 or int(h) == 0:
        raise ValueError(f"image-size must be WIDTHxHEIGHT in pixels, e.g. 640x480, got {value!r}")
    return value


ImageSize = Annotated[str | None, AfterValidator(_check_image_size)]
"""``WIDTHxHEIGHT`` in pixels, for images that give no size."""


class YoloReadOptions(BaseModel):
    """``task``: how to read rows; ``image_size``: ``WxH`` for images that give none;
    ``images``: a folder to find images in when they are not beside the labels; ``strict``:
    refuse a class count (``nc``, darknet ``classes``) that differs from the names, which is
    otherwise read with the names and a warning (docs/refusals.md)."""

    model_config = ConfigDict(extra="forbid")
    task: Task = "auto"
    image_size: ImageSize = None
    images: str | None = None
    strict: bool = False


class YoloWriteOptions(BaseModel):
    """``task``: rows to write; ``media``: what to do with images; ``split``: the split of items
    with none; ``image_size``: ``WxH`` for items with no size; ``predictions``: write the
    predictions (with a confidence column) instead of the ground truth."""

    model_config = ConfigDict(extra="forbid")
    task: Task = "auto"
    media: Literal["none", "link", "copy"] = "none"
    split: str = "train"
    image_size: ImageSize = None
    predictions: bool = False
