"""The ``--option`` models of the ``kitti`` format(s): pydantic, imported when options are
parsed or described, not when the format is declared (``annobridge formats`` imports no
pydantic).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict


class KittiReadOptions(BaseModel):
    """Options of the KITTI readers.

    Args:
        split: ``training`` or ``testing`` when PATH holds both (default: training).
        frame: ``auto`` (LiDAR frame when the frame's calibration is present, else camera),
            ``lidar`` (missing calibration is an error) or ``camera`` (never transform).
        velodyne: emit pointcloud items for ``velodyne/*.bin`` (default true).
        label_map: a class-name mapping file (see the module docstring).
        images: for a folder of label files (or one file) without the KITTI layout, the
            folder holding the images, found by stem (default: ``images/`` beside it).
        strict: refuse what a file leaves inconsistent but annobridge can keep (rows with and
            without a score in one label file), instead of keeping it with a warning in the
            report (docs/refusals.md).
    """

    model_config = ConfigDict(extra="forbid")
    split: Literal["training", "testing"] | None = None
    frame: Literal["auto", "lidar", "camera"] = "auto"
    velodyne: bool = True
    label_map: Path | None = None
    images: Path | None = None
    strict: bool = False


class KittiWriteOptions(BaseModel):
    """Options of the KITTI writers.

    Args:
        split: folder to write into when the items do not say (``kitti_split``).
        calib: a calibration file for every frame, or a folder of ``<stem>.txt``.
        media: ``copy`` images and point clouds into the layout, or ``none``.
        label_map: a class-name mapping file (see the module docstring).
    """

    model_config = ConfigDict(extra="forbid")
    split: Literal["training", "testing"] = "training"
    calib: Path | None = None
    media: Literal["copy", "none"] = "copy"
    label_map: Path | None = None
