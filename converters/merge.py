"""Merging one dataset into another, with the Nucleus update rules.

Nucleus (``Dataset.append(items, update=...)``, ``Dataset.annotate(annotations, update=...)``):

* an incoming item whose reference id is new is added;
* an incoming item whose reference id exists is ignored without ``update``; with
  ``update=True`` its metadata **replaces** the existing metadata (keys absent from the new
  payload are deleted), and its annotations and predictions are **upserted** by
  ``annotation_id``: one with the id of an existing one replaces it, others are added
  (without ``update`` an existing id keeps the existing annotation);
* an item keeps exactly one ground-truth segmentation: with ``update=True`` the new one
  replaces the old one, without it the old one stays.

Scenes follow the same rule for their metadata; :func:`update_scene_metadata` is Nucleus's
``Dataset.update_scene_metadata`` (top-level keys merged, or replaced with ``replace``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from annobridge.core.errors import ReadError
from annobridge.core.metadata import UPDATE_MODES
from annobridge.core.model import Dataset, DatasetHeader, DatasetItem, Scene


@dataclass
class MergeResult:
    """What :func:`merge_datasets` did, per reference id."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def _upsert(current: list[Any], incoming: list[Any], update: bool) -> list[Any]:
    """Annotations of ``current`` with ``incoming`` upserted by ``annotation_id``; the one
    ground-truth segmentation rule applies to ``type == "segmentation"``."""
    out = list(current)
    position = {a.annotation_id: n for n, a in enumerate(out) if a.annotation_id is not None}
    seg = next((n for n, a in enumerate(out) if a.type == "segmentation"), None)
    for ann in incoming:
        n = position.get(ann.annotation_id) if ann.annotation_id is not None else None
        if n is None and ann.type == "segmentation" and seg is not None:
            n = seg
        if n is None:
            if ann.annotation_id is not None:
                position[ann.annotation_id] = len(out)
            if ann.type == "segmentation":
                seg = len(out)
            out.append(ann)
        elif update:
            out[n] = ann
    return out


def merge_items(current: DatasetItem, incoming: DatasetItem, *, update: bool) -> DatasetItem:
    """One item after ``incoming`` is appended onto ``current`` (see the module docstring)."""
    if not update:
        return current
    predictions = _upsert(current.predictions, incoming.predictions, True)
    annotations = _upsert(current.annotations, incoming.annotations, True)
    return current.model_copy(update={
        "metadata": UPDATE_MODES["replace"](current.metadata, incoming.metadata),
        "annotations": annotations, "predictions": predictions,
        "image_location": incoming.image_location or current.image_location,
        "pointcloud_location": incoming.pointcloud_location or current.pointcloud_location,
        "width": incoming.width if incoming.width is not None else current.width,
        "height": incoming.height if incoming.height is not None else current.height})


def merge_datasets(base: Dataset, incoming: Dataset, *, update: bool = False) -> tuple[Dataset, MergeResult]:
    """``base`` with ``incoming`` appended by the Nucleus rules; neither is modified.

    Args:
        update: Nucleus's ``update=True``: replace metadata, upsert annotations by id, replace
            the ground-truth segmentation; False ignores items that exist already.
    """
    items: dict[str, DatasetItem] = {}
    for item in base.items:
        if item.reference_id in items:
            raise ReadError(f"reference id {item.reference_id!r} appears twice in the base dataset")
        items[item.reference_id] = item
    result = MergeResult()
    for item in incoming.items:
        ref = item.reference_id
        if ref not in items:
            items[ref] = item
            result.added.append(ref)
        elif update:
            items[ref] = merge_items(items[ref], item, update=True)
            result.updated.append(ref)
        else:
            result.ignored.append(ref)
    scenes = dict(base.header.scenes)
    for ref, scene in incoming.header.scenes.items():
        if ref not in scenes:
            scenes[ref] = scene
        elif update:
            scenes[ref] = scenes[ref].model_copy(update={
                "metadata": UPDATE_MODES["replace"](scenes[ref].metadata, scene.metadata)})
    names = {c.name for c in base.header.categories}
    ids = {c.id for c in base.header.categories}
    categories = list(base.header.categories) + [
        c for c in incoming.header.categories if c.name not in names and c.id not in ids]
    header = base.header.model_copy(update={"scenes": scenes, "categories": categories})
    return Dataset(header=header, items=list(items.values())), result


def update_scene_metadata(header: DatasetHeader, mapping: dict[str, dict[str, Any]], *,
                          replace: bool = False) -> list[str]:
    """Nucleus ``Dataset.update_scene_metadata``: merge (or replace) each named scene's
    metadata in ``header.scenes``; returns the scene ids updated.

    Raises:
        ReadError: a scene id the dataset does not have.
    """
    unknown = [ref for ref in mapping if ref not in header.scenes]
    if unknown:
        raise ReadError(f"no scene {unknown[0]!r} in the dataset ({len(unknown)} unknown)",
                        fix=f"known scenes: {', '.join(sorted(header.scenes)[:5])}")
    mode = UPDATE_MODES["replace" if replace else "merge"]
    for ref, metadata in mapping.items():
        scene: Scene = header.scenes[ref]
        scene.metadata = mode(scene.metadata, metadata)
    return list(mapping)
