"""The ``--option`` models of the ``nucleus`` format(s): pydantic, imported when options are
parsed or described, not when the format is declared (``annobridge formats`` imports no
pydantic).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class NucleusReadOptions(BaseModel):
    """Options for reading Nucleus payloads."""

    model_config = ConfigDict(extra="forbid")
    check_files: bool = True
    """Check at read time that local mask and point-cloud files exist (a stat, no decode)."""
    strict: bool = False
    """Refuse what the file leaves inconsistent but annobridge can keep (a keypoints prediction
    without a skeleton, payload keys Nucleus does not define), instead of keeping it with a
    warning in the report (docs/refusals.md)."""


class NucleusWriteOptions(BaseModel):
    """Options for writing Nucleus payloads."""

    model_config = ConfigDict(extra="forbid")
    strict: bool = False
    """Write pure Nucleus: no ``annobridge`` extension keys; every loss is reported."""
    incomplete_lidar_scenes: bool = False
    """Write a lidar scene whose frames do not all have exactly one point cloud (Nucleus refuses
    it on upload; noted in the report) instead of failing."""
    renumber_segments: Literal["auto", "true", "false"] = "auto"
    """``auto``: when a mask holds an index above 255, renumber its segments 1..n (the original
    index goes to the segment's ``attributes["original_index"]``; counted as a conversion),
    failing only beyond 255 segments; ``true``: renumber every mask; ``false``: never (fail)."""

    @field_validator("renumber_segments", mode="before")
    @classmethod
    def _renumber_word(cls, value: object) -> object:
        if isinstance(value, bool):  # renumber_segments=True, as before auto existed
            return "true" if value else "false"
        return value.lower() if isinstance(value, str) else value
    booleans_as_strings: bool = False
    """Write metadata booleans as the strings ``"true"``/``"false"`` (reported; whether Nucleus
    needs this is not verified, see the format sheet)."""
    mask_url: str | None = None
    """A URL prefix (``s3://bucket/masks/``, any fsspec URL): the 8-bit mask PNGs are uploaded
    there, when the conversion succeeds, and ``mask_url`` holds their URLs, as the Nucleus
    service needs (it cannot read local files). Default: a ``NAME.masks/`` folder beside the output."""
    pointcloud_url: str | None = None
    """The same for the point-cloud JSON files (``pointcloud_url`` / frame ``url``)."""
    frame_rate: int = Field(default=1, ge=1)
    """The ``frame_rate`` of a VideoScene whose scene has none (the client's ``validate()``
    needs one for a scene of image frames); each use is noted in the report."""
