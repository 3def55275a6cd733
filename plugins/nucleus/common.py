"""What the Nucleus reader and writer share: the extension key, the sidecar suffix and the
native Nucleus keys kept as attributes (the mapping is in the package docstring)."""

from __future__ import annotations

EXT = "annobridge"
SIDECAR_SUFFIX = ".dataset.json"
SERVER_KEYS = ("task_id", "dataset_item_id", "item_id", "dataset_id")
"""Nucleus keys kept as annotation attributes under the same name."""
ITEM_NATIVE_ATTRIBUTES = ("embedding_info", "processed_url", "original_image_url", "dataset_item_id", "phash")
"""Item payload keys Nucleus exports besides the basic ones; kept as item attributes."""
SCENE_NATIVE_ATTRIBUTES = ("frame_rate", "video_url", "upload_to_scale", "tracks")
