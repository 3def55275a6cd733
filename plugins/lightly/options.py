"""The ``--option`` models of the ``lightly`` format(s): pydantic, imported when options are
parsed or described, not when the format is declared (``annobridge formats`` imports no
pydantic).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, field_validator

from annobridge.plugins.lightly.common import _parse_frames


def _unit_score(v: float | None) -> float | None:
    if v is not None and not 0.0 <= v <= 1.0:
        raise ValueError(f"a score lies in 0..1, got {v}")
    return v


Score = Annotated[float | None, AfterValidator(_unit_score)]
"""A confidence in 0..1 (or None)."""


class LightlyReadOptions(BaseModel):
    """Options for reading ``lightly``.

    Args:
        input: the input datasource root (media files); enables media checks and sizes.
        fill_defaults: fill schema defaults for missing/null schema paths (Worker behaviour).
        frames: frame counts per video file name, ``"a.mp4=200,b/c.mp4=99"``.
        as_annotations: read predictions as ground truth.
    """

    model_config = ConfigDict(extra="forbid")
    input: Path | None = None
    fill_defaults: bool = True
    frames: dict[str, int] = {}
    as_annotations: bool = False

    _frames = field_validator("frames", mode="before")(classmethod(lambda cls, v: _parse_frames(v)))


class LightlyWriteOptions(BaseModel):
    """Options for writing ``lightly``.

    Args:
        schema_file: a metadata ``schema.json`` whose entries override names, types and defaults.
        score: score written for ground truth and unscored predictions; without it ground
            truth is dropped (reported) and an unscored prediction is an error.
        task: task name for predictions without ``attributes["lightly_task"]`` (one kind).
        frames: frame counts per video file name, ``"a.mp4=200"``.
        input: root the image locations are made relative to, for ``file_name``.
        video_extension: extension of videos whose scene has no ``file_name`` attribute.
    """

    model_config = ConfigDict(extra="forbid")
    schema_file: Path | None = None
    score: Score = None
    task: str | None = None
    frames: dict[str, int] = {}
    input: Path | None = None
    video_extension: str = "mp4"

    _frames = field_validator("frames", mode="before")(classmethod(lambda cls, v: _parse_frames(v)))


class LightlyTaskReadOptions(BaseModel):
    """Options for reading ``lightly-task``: ``images`` folder (default ``../images``),
    ``as_annotations`` to read the predictions as ground truth."""

    model_config = ConfigDict(extra="forbid")
    images: Path | None = None
    as_annotations: bool = False


class LightlyTaskWriteOptions(BaseModel):
    """Options for writing ``lightly-task``: ``task_type`` to pick the one task written,
    ``score`` as for ``lightly``, ``input`` root for relative ``file_name``\\ s."""

    model_config = ConfigDict(extra="forbid")
    task_type: Literal["object-detection", "classification", "semantic-segmentation",
                       "instance-segmentation", "keypoint-detection"] | None = None
    score: Score = None
    input: Path | None = None
