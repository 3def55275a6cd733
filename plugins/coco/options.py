"""The ``--option`` models of the ``coco`` format(s): pydantic, imported when options are
parsed or described, not when the format is declared (``annobridge formats`` imports no
pydantic).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict


class CocoReadOptions(BaseModel):
    """``--option`` keys for reading COCO.

    Args:
        gt: for a results file, the ground-truth JSON giving image file names, sizes and
            category names (results are then checked against it, as ``loadRes`` does).
        bad_skeleton_edges: a skeleton edge whose index is outside 1..k (CrowdPose ships a
            17-point skeleton with 14 keypoints; datumaro writes 0-based edges under an
            empty name list): ``keep`` (default) keeps the category's skeleton verbatim in
            ``Category.attributes["skeleton"]`` (written back as given), leaves such edges
            out of the canonical skeleton and notes it in the report; ``drop`` drops them
            (reported as dropped); ``error`` refuses the file.
        short_keypoints: keypoints whose length is not 3 x the category's keypoint count:
            ``keep`` (default) reads a shorter list as the first names of the category
            (Human-Art stores 17 COCO points under a 21-name category) and names the points
            beyond the category's names ``"k"`` (their 0-based index; datumaro's
            ``coco_person_keypoints`` export has categories with ``keypoints: []``), noted
            in the report; ``prefix`` reads shorter lists only; ``error`` refuses the file.
        strict: refuse what the file leaves inconsistent instead of keeping it: both
            options above become ``error`` unless given otherwise, and an image size written
            as a whole float (``640.0``) is refused instead of read as the integer
            (docs/refusals.md).
    """

    model_config = ConfigDict(extra="forbid")
    gt: Path | None = None
    bad_skeleton_edges: Literal["keep", "error", "drop"] = "keep"
    short_keypoints: Literal["keep", "error", "prefix"] = "keep"
    strict: bool = False

    def mode(self, option: str) -> str:
        """The effective mode of ``bad_skeleton_edges`` or ``short_keypoints``."""
        given = option in self.model_fields_set
        return "error" if self.strict and not given else getattr(self, option)


class CocoWriteOptions(BaseModel):
    """``--option`` keys for writing COCO.

    Args:
        results: ``true`` writes a results list (the predictions), ``false`` a
            ground-truth file; unset: a results list when the items hold predictions and no
            ground truth.
    """

    model_config = ConfigDict(extra="forbid")
    results: bool | None = None
