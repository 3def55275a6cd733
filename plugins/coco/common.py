"""What the COCO reader and writer share: file keys and small helpers."""

from __future__ import annotations

from typing import Any

ABSENT = "coco_absent"
_MISSING: Any = object()
_DEFAULT_TOP = ["info", "licenses", "images", "annotations", "categories"]
PREDICTIONS_KEY = "annobridge_predictions"
REFERENCE_KEY = "annobridge_reference_id"  # image key: the item's non-integer reference id
LOCATION_KEY = "annobridge_image_location"  # image key: a location file_name cannot hold
GROUP_KEY = "annobridge_group_id"  # annotation key: the object's non-integer group id


def generated_names(names: list[str], m: int) -> list[str]:
    """``names`` completed to ``m`` names with the 0-based index of each missing point."""
    return [*names, *(str(j) for j in range(len(names), m))]


def _is_int(v: Any) -> bool:
    return type(v) is int

