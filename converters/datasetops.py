"""Dataset operations users ask for: relabel (map and filter labels), merge, split.

Every operation works on the canonical model, so it works for every format. Nothing is
dropped silently: annotations removed by a label filter are recorded in the conversion
report (``report.drop``) like any other loss.
"""

from __future__ import annotations

import csv
import json
import os
import random
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from annobridge.core.errors import AnnobridgeError, ReadError
from annobridge.core.formats import ConversionReport
from annobridge.core.metadata import UPDATE_MODES
from annobridge.core.model import Category, Dataset, DatasetHeader, DatasetItem, Taxonomy

LabelMap = Mapping[str, str | None]
"""Old label -> new label; ``None`` (or an empty string in a file) removes the label."""


def read_label_map(path: str | os.PathLike[str]) -> dict[str, str | None]:
    """A label map from a JSON object (``{"old": "new", "gone": null}``) or a two-column CSV
    (``old,new``; an empty ``new`` removes the label; a header row ``old,new`` is skipped).

    Raises:
        ReadError: the file is neither, naming the line or key that is wrong.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReadError(f"cannot read label map: {exc.strerror or exc}", file=p) from exc
    if p.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ReadError(f"label map is not valid JSON: {exc}", file=p) from exc
        if not isinstance(data, dict):
            raise ReadError("label map must be a JSON object of old label -> new label", file=p)
        for key, value in data.items():
            if value is not None and not isinstance(value, str):
                raise ReadError(f"label {key!r} maps to {value!r}, expected a string or null",
                                file=p, where=f"#/{key}")
        return {k: (v or None) for k, v in data.items()}
    out: dict[str, str | None] = {}
    for n, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or (n == 1 and [c.strip().lower() for c in row] == ["old", "new"]):
            continue
        if len(row) != 2:
            raise ReadError(f"expected 2 columns (old,new), got {len(row)}", file=p, where=f"line {n}",
                            fix="write one 'old,new' pair a line; an empty new removes the label")
        out[row[0].strip()] = row[1].strip() or None
    return out


class Relabel:
    """Maps and filters the labels of items (a picklable plan, applied per item).

    Args:
        mapping: old label -> new label (``None`` removes it); labels not named stay.
        keep: when given, only annotations whose (mapped) label is in it are kept.
    """

    def __init__(self, mapping: LabelMap | None = None, keep: Iterable[str] | None = None) -> None:
        self.mapping = dict(mapping or {})
        self.keep = frozenset(keep) if keep is not None else None

    def label(self, label: str) -> str | None:
        new = self.mapping.get(label, label)
        if new is None or (self.keep is not None and new not in self.keep):
            return None
        return new

    def why(self, label: str) -> str:
        if label in self.mapping and self.mapping[label] is None:
            return "label removed by the label map (--map-labels)"
        return "label not among the labels kept (--keep-labels)"

    def item(self, item: DatasetItem, report: ConversionReport | None = None) -> DatasetItem:
        """``item`` with labels mapped and filtered; each removal recorded in ``report``."""
        update: dict[str, Any] = {}
        for name, prefix in (("annotations", ""), ("predictions", "prediction:")):
            kept = []
            changed = False
            for ann in getattr(item, name):
                new = self._annotation(ann, prefix, report)
                changed = changed or new is not ann
                if new is not None:
                    kept.append(new)
            if changed:
                update[name] = kept
        return item.model_copy(update=update) if update else item

    def _annotation(self, ann: Any, prefix: str, report: ConversionReport | None) -> Any:
        def dropped(what: str, label: str) -> None:
            if report is not None:
                report.drop(what, self.why(label))

        if ann.type == "segmentation":
            segments = []
            for seg in ann.annotations:
                new = self.label(seg.label)
                if new is None:
                    dropped(prefix + "segment", seg.label)
                else:
                    segments.append(seg if new == seg.label else seg.model_copy(update={"label": new}))
            if segments == ann.annotations:
                return ann
            return ann.model_copy(update={"annotations": segments})
        if ann.type == "multicategory":
            labels = [m for m in (self.label(lab) for lab in ann.labels) if m is not None]
            for lab in ann.labels:
                if self.label(lab) is None:
                    dropped(prefix + "multicategory label", lab)
            if not labels:
                return None
            return ann if labels == ann.labels else ann.model_copy(update={"labels": labels})
        new = self.label(ann.label)
        if new is None:
            dropped(prefix + ann.type, ann.label)
            return None
        update: dict[str, Any] = {}
        if new != ann.label:
            update["label"] = new
        if ann.class_pdf:
            pdf: dict[str, float] = {}
            for k, v in ann.class_pdf.items():
                m = self.label(k)
                if m is not None:
                    pdf[m] = pdf.get(m, 0.0) + v
            if pdf != ann.class_pdf:
                update["class_pdf"] = pdf or None
        return ann.model_copy(update=update) if update else ann

    def header(self, header: DatasetHeader) -> DatasetHeader:
        """Categories and taxonomy labels renamed (two names mapped to one become one category,
        keeping the first one's id) and filtered."""
        categories: list[Category] = []
        seen: set[str] = set()
        for cat in header.categories:
            new = self.label(cat.name)
            if new is None or new in seen:
                continue
            seen.add(new)
            categories.append(cat if new == cat.name else cat.model_copy(update={"name": new}))
        taxonomies = []
        for tax in header.taxonomies:
            labels = list(dict.fromkeys(m for m in (self.label(lab) for lab in tax.labels) if m is not None))
            taxonomies.append(tax if labels == tax.labels else Taxonomy(name=tax.name, type=tax.type, labels=labels))
        return header.model_copy(update={"categories": categories, "taxonomies": taxonomies})


def relabel(dataset: Dataset, mapping: LabelMap | None = None, keep: Iterable[str] | None = None,
            report: ConversionReport | None = None) -> Dataset:
    """``dataset`` with labels mapped and filtered, lazily (items stay a stream when they were).

    Args:
        mapping: old label -> new label; ``None`` removes annotations with that label.
        keep: keep only annotations whose label (after mapping) is one of these.
        report: where removed annotations are recorded, per kind and reason.
    """
    plan = Relabel(mapping, keep)

    def items() -> Iterator[DatasetItem]:
        for item in dataset.items:
            yield plan.item(item, report)

    stream: Iterable[DatasetItem] = items()
    if isinstance(dataset.items, list):
        stream = list(stream)
    return Dataset(header=plan.header(dataset.header), items=stream, source=dataset.source,
                   format=dataset.format, total=dataset.total)


# --------------------------------------------------------------------------- merge


def merge(datasets: Sequence[Dataset], *, update: bool = False) -> Dataset:
    """One dataset holding the items of all ``datasets``, in order.

    Items with the same reference id are one item: annotations and predictions are
    concatenated and metadata merged key by key (later datasets win on a key both have);
    their image or point cloud must be the same. With ``update`` a later item follows
    Nucleus's ``update=True`` instead (:func:`merge_items`): its
    metadata replaces the earlier one's, its annotations are upserted by ``annotation_id``
    and its ground-truth segmentation replaces the earlier one; a later scene's metadata
    replaces the earlier one's too. Categories are merged by name (the first
    id of a name is kept; a new name whose id is taken gets the next free id), taxonomies and
    scenes by name.

    Raises:
        AnnobridgeError: two items share a reference id but not their image, or their
            annotation ids collide.
    """
    header = DatasetHeader(name=next((d.header.name for d in datasets if d.header.name), None))
    by_name: dict[str, Category] = {}
    used_ids: set[int] = set()
    for d in datasets:
        for cat in d.header.categories:
            if cat.name in by_name:
                continue
            new_id = cat.id if cat.id not in used_ids else max(used_ids) + 1
            used_ids.add(new_id)
            by_name[cat.name] = cat if new_id == cat.id else cat.model_copy(update={"id": new_id})
        for tax in d.header.taxonomies:
            old = next((t for t in header.taxonomies if t.name == tax.name), None)
            if old is None:
                header.taxonomies.append(tax.model_copy(deep=True))  # extended below: never the input's
            else:
                old.labels = list(dict.fromkeys([*old.labels, *tax.labels]))
        for ref, scene in d.header.scenes.items():
            if update and ref in header.scenes:
                scene = header.scenes[ref].model_copy(update={"metadata": dict(scene.metadata)})
                header.scenes[ref] = scene
            header.scenes.setdefault(ref, scene)
        for key, value in d.header.info.items():
            header.info.setdefault(key, value)
    header.categories = list(by_name.values())
    merged: dict[str, DatasetItem] = {}
    for d in datasets:
        for item in d.items:
            old = merged.get(item.reference_id)
            if old is None:
                merged[item.reference_id] = item
                continue
            if (old.image_location, old.pointcloud_location) != (item.image_location, item.pointcloud_location):
                raise AnnobridgeError(
                    f"item {item.reference_id!r} is {old.image_location or old.pointcloud_location!r} in one "
                    f"dataset and {item.image_location or item.pointcloud_location!r} in another",
                    fix="rename the items of one dataset, or merge datasets of the same images")
            if update:
                merged[item.reference_id] = merge_items(old, item)
                continue
            try:
                merged[item.reference_id] = DatasetItem.model_validate({
                    **old.model_dump(exclude={"annotations", "predictions"}),
                    "metadata": {**old.metadata, **item.metadata},
                    "attributes": {**old.attributes, **item.attributes},
                    "annotations": [*old.annotations, *item.annotations],
                    "predictions": [*old.predictions, *item.predictions],
                })
            except ValueError as exc:
                raise AnnobridgeError(f"item {item.reference_id!r} cannot be merged: {exc}",
                                      fix="annotation ids must be unique per item across the merged datasets") from exc
    items = list(merged.values())
    return Dataset(header=header, items=items, total=len(items))


# --------------------------------------------------------------------------- split


def parse_ratios(text: str) -> dict[str, float]:
    """``"train=0.8,val=0.1,test=0.1"`` -> ``{"train": 0.8, ...}`` (must sum to 1)."""
    out: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            share = float(value)
        except ValueError:
            share = -1.0
        if not sep or not name.strip() or share < 0:
            raise AnnobridgeError(f"{part!r} is not name=share", fix="write e.g. train=0.8,val=0.2")
        out[name.strip()] = share
    if abs(sum(out.values()) - 1.0) > 1e-6:
        raise AnnobridgeError(f"split shares sum to {sum(out.values()):g}, not 1", fix="e.g. train=0.8,val=0.2")
    return out


def primary_label(item: DatasetItem) -> str:
    """The item's most common label (ties: alphabetical first), ``""`` when it has none."""
    labels: Counter[str] = Counter()
    for ann in item.annotations:
        if ann.type == "segmentation":
            labels.update(s.label for s in ann.annotations)
        elif ann.type == "multicategory":
            labels.update(ann.labels)
        else:
            labels[ann.label] += 1
    return min(labels, key=lambda k: (-labels[k], k)) if labels else ""


def split(dataset: Dataset, ratios: Mapping[str, float], *, seed: int = 0,
          stratify: bool = False) -> dict[str, Dataset]:
    """Subsets of ``dataset`` by share, reproducible for a ``seed``.

    With ``stratify`` the items are grouped by their most common label
    (:func:`primary_label`) and each group is split by the ratios, so every subset has
    about the same label mix. Items keep their order within a subset.
    """
    items = list(dataset.items)
    rng = random.Random(seed)
    groups: dict[str, list[int]] = {}
    for n, item in enumerate(items):
        groups.setdefault(primary_label(item) if stratify else "", []).append(n)
    order: list[int] = []
    for key in sorted(groups):  # groups one after another, each shuffled
        members = groups[key]
        rng.shuffle(members)
        order.extend(members)
    # each next item goes to the subset furthest below its share so far: every prefix of
    # the order, hence every label group, is split in proportion (within one item)
    assigned = dict.fromkeys(ratios, 0)
    where: dict[int, str] = {}
    for done, idx in enumerate(order, start=1):
        name = max(ratios, key=lambda k: ratios[k] * done - assigned[k])
        assigned[name] += 1
        where[idx] = name
    out: dict[str, Dataset] = {}
    for name in ratios:
        chosen = [items[n] for n in range(len(items)) if where.get(n) == name]
        out[name] = Dataset(header=dataset.header, items=chosen, source=dataset.source,
                            format=dataset.format, total=len(chosen))
    return out


# --------------------------------------------------------------------------- on files


def _upsert(current: list[Any], incoming: list[Any]) -> list[Any]:
    """``current`` with ``incoming`` upserted by ``annotation_id`` (Nucleus ``annotate(update=True)``);
    an item keeps one segmentation: a new one replaces the old one."""
    out = list(current)
    position = {a.annotation_id: n for n, a in enumerate(out) if a.annotation_id is not None}
    seg = next((n for n, a in enumerate(out) if a.type == "segmentation"), None)
    for ann in incoming:
        n = position.get(ann.annotation_id) if ann.annotation_id is not None else None
        if n is None and ann.type == "segmentation":
            n = seg
        if n is None:
            if ann.annotation_id is not None:
                position[ann.annotation_id] = len(out)
            if ann.type == "segmentation":
                seg = len(out)
            out.append(ann)
        else:
            out[n] = ann
    return out


def merge_items(current: DatasetItem, incoming: DatasetItem) -> DatasetItem:
    """``incoming`` appended onto ``current`` with Nucleus's ``update=True``: the metadata is
    replaced (keys absent from ``incoming`` are deleted), annotations and predictions are
    upserted by ``annotation_id``, the ground-truth segmentation is replaced."""
    return current.model_copy(update={
        "metadata": json.loads(json.dumps(incoming.metadata)),
        "attributes": {**current.attributes, **incoming.attributes},
        "annotations": _upsert(current.annotations, incoming.annotations),
        "predictions": _upsert(current.predictions, incoming.predictions),
        "width": incoming.width if incoming.width is not None else current.width,
        "height": incoming.height if incoming.height is not None else current.height})


def update_scene_metadata(header: DatasetHeader, mapping: dict[str, dict[str, Any]], *,
                          replace: bool = False) -> list[str]:
    """Nucleus ``Dataset.update_scene_metadata``: merge the top-level keys of each named
    scene's new metadata into ``header.scenes`` (``replace``: the new metadata replaces it,
    absent keys deleted); returns the scene ids updated.

    Raises:
        ReadError: a scene id the dataset does not have.
    """
    unknown = [ref for ref in mapping if ref not in header.scenes]
    if unknown:
        raise ReadError(f"no scene {unknown[0]!r} in the dataset ({len(unknown)} unknown)",
                        fix=f"known scenes: {', '.join(sorted(header.scenes)[:5])}")
    mode = UPDATE_MODES["replace" if replace else "merge"]
    for ref, metadata in mapping.items():
        header.scenes[ref].metadata = mode(header.scenes[ref].metadata, metadata)
    return list(mapping)


def merge_files(sources: Sequence[str | os.PathLike[str]], destination: str | os.PathLike[str],
                to_format: str, *, from_format: str | None = None, overwrite: bool = False,
                transform: Any = None, update: bool = False) -> ConversionReport:
    """Read every source (each format detected unless ``from_format``), :func:`merge` them
    and write ``destination`` atomically; ``transform(dataset, context)`` runs on the merged
    dataset (label mapping). Returns the write report (reads counted over all sources)."""
    from annobridge.converters import engine
    from annobridge.core.formats import Context

    ctx = Context()
    datasets = []
    for src in sources:
        read_ctx = Context()
        d = engine.read_dataset(src, from_format, None, context=read_ctx)
        d.items = list(d.items)
        datasets.append(d)
        for kind, n in read_ctx.report.read.items():
            ctx.report.read[kind] = ctx.report.read.get(kind, 0) + n
        ctx.report.items_read += read_ctx.report.items_read
    merged = merge(datasets, update=update)
    ctx.report.source = ", ".join(str(s) for s in sources)
    ctx.report.source_format = ", ".join(dict.fromkeys(d.format or "?" for d in datasets))
    ctx.report.notes.append(f"merged {len(sources)} datasets into {len(merged.items)} items")  # type: ignore[arg-type]
    if transform is not None:
        merged = transform(merged, ctx)
    return engine.write_dataset(merged, destination, to_format, overwrite=overwrite, context=ctx)


def split_file(source: str | os.PathLike[str], out_dir: str | os.PathLike[str],
               ratios: Mapping[str, float], *, from_format: str | None = None,
               to_format: str | None = None, seed: int = 0, stratify: bool = False,
               overwrite: bool = False) -> dict[str, ConversionReport]:
    """:func:`split` ``source`` and write each subset into ``out_dir`` in ``to_format``
    (default: the source's format): ``out_dir/<name>`` for formats that write a folder,
    ``out_dir/<name><suffix>`` for single-file formats (the source file's suffix, else
    ``.json``). Each subset is written atomically."""
    from annobridge.converters import engine
    from annobridge.core.formats import Context
    from annobridge.core.paths import safe_name
    from annobridge.core.plugins import get_registry

    src = Path(source)
    dataset = engine.read_dataset(src, from_format, None, context=Context())
    fmt = engine.resolve_writer(to_format or dataset.format or "", get_registry())
    suffix = src.suffix if src.is_file() and src.suffix else ".json"
    reports = {}
    for name, subset in split(dataset, ratios, seed=seed, stratify=stratify).items():
        dst = Path(out_dir) / (safe_name(name) + ("" if fmt.output == "directory" else suffix))
        reports[name] = engine.write_dataset(subset, dst, fmt.name, overwrite=overwrite)
    return reports
