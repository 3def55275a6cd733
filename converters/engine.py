"""The conversion engine: read a stream of items, check it, drop what the target cannot
hold (and say so), and write it atomically.

Pure library code: no click, no printing. The CLI and the public ``load``/``save``/
``convert`` functions are thin layers over :func:`read_dataset` and :func:`write_dataset`.
"""

from __future__ import annotations

import functools
import glob
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from operator import attrgetter
from pathlib import Path
from typing import Any

from annobridge.core import derive as derivation
from annobridge.core import storage
from annobridge.core.errors import AnnobridgeError, FormatError, ReadError, ValidationWarning, WriteError
from annobridge.core.formats import WARNING, Capabilities, ConversionReport, Context, Format, Shards, parse_options
from annobridge.core.model import Dataset, DatasetItem, annotation_id_problem, copied
from annobridge.core.plugins import FormatRegistry, get_registry
from annobridge.core.storage import StorageOptions

logger = logging.getLogger(__name__)

Options = dict[str, Any] | None


def _registry(registry: FormatRegistry | None) -> FormatRegistry:
    return registry if registry is not None else get_registry()


def resolve_reader(path: str | os.PathLike[str], name: str | None, registry: FormatRegistry,
                   storage_options: StorageOptions | None = None) -> Format:
    """The format to read ``path`` with: the named one, or the one detection finds (a remote
    ``path`` is listed for detection, fetching the files detectors read; the copy is reused by
    :func:`read_dataset` and :func:`read_shards`)."""
    fmt = registry.get(name) if name else registry.detect_one(local_source(path, storage_options, lazy=True))
    if fmt.read is None:
        raise FormatError(f"format {fmt.name!r} cannot be read, only written")
    return fmt


def resolve_writer(name: str, registry: FormatRegistry) -> Format:
    fmt = registry.get(name)
    if fmt.write is None:
        raise FormatError(f"format {fmt.name!r} cannot be written, only read")
    return fmt


def read_dataset(
    path: str | os.PathLike[str],
    format: str | None = None,
    options: Options = None,
    *,
    context: Context | None = None,
    registry: FormatRegistry | None = None,
) -> Dataset:
    """Open ``path`` as a lazy :class:`Dataset` (items are read while iterated).

    Every item is checked on the way (duplicate annotation ids, more than one ground-truth
    segmentation) and counted into ``context.report``.
    """
    ctx = context or Context()
    location = str(path)
    fmt = resolve_reader(location, format, _registry(registry), ctx.storage_options)
    path, dataset = _opened(location, fmt, fmt.read, options, ctx)  # type: ignore[arg-type]
    dataset.source = str(path)
    dataset.format = fmt.name
    if dataset.total is None and isinstance(dataset.items, list):
        dataset.total = len(dataset.items)
    if ctx.on_total is not None:
        ctx.on_total(dataset.total)
    items = _remote_media(dataset.items) if storage.is_remote(location) else dataset.items
    dataset.items = _checked(items, ctx, str(path))
    return dataset


def read_shards(
    path: str | os.PathLike[str],
    format: str | None = None,
    options: Options = None,
    *,
    context: Context,
    registry: FormatRegistry | None = None,
    target: Format | None = None,
) -> Shards | None:
    """``path`` listed for workers to read in parts (``converters/sharded.py``), or None when
    its reader cannot list it (or, on Dask, its parts need the driver's parsed file), or when
    local workers would only read light units of a local source for the driver to write
    ``target`` (``Format.heavy_units``; noted in the report). A remote source is still read
    in parts: each worker then fetches only what its part reads."""
    from annobridge.converters import sharded

    location = str(path)
    fmt = resolve_reader(location, format, _registry(registry), context.storage_options)
    if fmt.shards is None:
        return None
    if (target is not None and context.executor == "process" and not storage.is_remote(location)
            and target.parts is None and not fmt.heavy_units):
        context.report.notes.append(f"read in one process: local workers reading {fmt.name} in parts would "
                                    f"send every item back for this process to write {target.name}, which "
                                    "costs more than reading it")
        return None
    local_path, shards = _opened(location, fmt, fmt.shards, options, context, lazy=True)
    if shards is None or (not shards.portable and (context.executor != "process" or not sharded.FORK)):
        context.report.source = context.report.source_format = None
        return None
    if storage.is_remote(location):  # the listing fetched what it read; the rest is the workers'
        if shards.files is None:  # they read the driver's copy
            storage.complete(location)
        else:
            storage.drop_pending(location)
    shards.source, shards.format = str(local_path), fmt.name
    if context.on_total is not None:
        context.on_total(shards.total)
    return shards


def _opened(location: str, fmt: Format, opener: Callable[[Path, Any, Context], Any], options: Options,
            ctx: Context, *, lazy: bool = False) -> tuple[Path, Any]:
    """``opener(local path, parsed options, ctx)`` (a reader, or with ``lazy`` its shard
    listing) on the local counterpart of ``location``, with the report's source filled in."""
    opts = parse_options(fmt, "read", options)
    path = local_source(location, ctx.storage_options, lazy=lazy)
    if not path.exists():
        raise ReadError("input does not exist", file=path)
    storage.remember_source(location if storage.is_remote(location) else None, ctx.storage_options)
    try:
        opened = opener(path, opts, ctx)
    except OSError as exc:
        raise ReadError(f"cannot read: {exc.strerror or exc}", file=getattr(exc, "filename", None) or path) from exc
    ctx.report.source = location if storage.is_remote(location) else str(path)
    ctx.report.source_format = fmt.name
    return path, opened


def _remote_media(items: Iterable[DatasetItem]) -> Iterator[DatasetItem]:
    """Image and point-cloud locations in the local copy of a remote source become the URLs they
    came from (writers that copy media find the bytes through core.paths.media_file)."""
    for item in items:
        update = {}
        for key in ("image_location", "pointcloud_location"):
            value = getattr(item, key)
            if value is not None and storage.as_url(value) != value:
                update[key] = storage.as_url(value)
        yield item.model_copy(update=update) if update else item


def local_source(location: str | os.PathLike[str], storage_options: StorageOptions | None = None, *,
                 lazy: bool = False) -> Path:
    """The local path to read ``location`` from: a remote source is fetched into a local cache
    first (once per process and URL; :func:`annobridge.core.storage.release` removes it);
    with ``lazy`` only listed, its files fetched as they are opened (detection, shard listing)."""
    text = str(location)
    if storage.is_remote(text):
        return storage.fetched(text, storage_options, lazy=lazy)
    return storage.local(text)


def _checked(items: Iterable[DatasetItem], ctx: Context, source: str) -> Iterator[DatasetItem]:
    report = ctx.report
    try:
        for item in items:
            problem = annotation_id_problem(item)
            if problem:
                ctx.error(ReadError(problem, file=source, item=item.reference_id))
            counts = report.read  # a plain dict: this loop runs once per annotation read
            for a in item.annotations:
                counts[a.type] = counts.get(a.type, 0) + 1
            for a in item.predictions:
                kind = "prediction:" + a.type
                counts[kind] = counts.get(kind, 0) + 1
            report.items_read += 1
            if ctx.progress is not None:
                ctx.progress(1)
            yield item
    except OSError as exc:
        raise ReadError(f"cannot read: {exc.strerror or exc}",
                        file=getattr(exc, "filename", None) or source) from exc


def fit_to(item: DatasetItem, caps: Capabilities, fmt_name: str, report: ConversionReport,
           *, derive: str = "auto", geometry: str | None = None) -> DatasetItem | None:
    """Fit ``item`` to what a format with ``caps`` holds, recording each conversion and drop.

    An annotation of a kind the format cannot hold is converted to the richest kind it
    does hold (``core/derive.py``; ``geometry`` prefers one kind where several fit) and
    counted in ``report.converted``; with ``derive="none"``, or when no conversion applies,
    it is dropped and reported. Parts of one object (``group_id``) stay together: a
    conversion never gives an object a second annotation of a kind it already has there.

    Returns None when the item itself cannot be held (a point cloud in an image format).
    """
    if item.pointcloud_location is not None and not caps.pointclouds:
        report.drop("pointcloud item", f"{fmt_name} holds no point clouds")
        for a in item.annotations:
            report.drop(a.type, f"on a point cloud item, which {fmt_name} cannot hold")
        for a in item.predictions:
            report.drop("prediction:" + a.type, f"on a point cloud item, which {fmt_name} cannot hold")
        return None
    update: dict[str, Any] = {}
    anns, preds = item.annotations, item.predictions
    for field, group, allowed, prefix in (
        ("annotations", anns, caps.annotation_types, ""),
        ("predictions", preds, caps.prediction_types, "prediction:"),
    ):
        if allowed.issuperset(map(_TYPE, group)):  # the common case keeps all (a C-level pass)
            continue
        what = "ground truth" if not prefix else "predictions"
        if derive == "none":
            for a in group:
                if a.type not in allowed:
                    report.drop(prefix + a.type, f"{fmt_name} cannot hold {a.type} {what} (--derive none)")
            update[field] = [a for a in group if a.type in allowed]
        else:
            update[field] = _derived(item, group, allowed, caps, fmt_name, report, prefix, what, geometry)
    if item.metadata and not caps.item_metadata:
        report.drop("item metadata", f"{fmt_name} holds no item metadata")
        update["metadata"] = {}
    if not caps.annotation_metadata:
        n = 0
        for group in (update.get("annotations", anns), update.get("predictions", preds)):
            if not any(map(_METADATA, group)) and "segmentation" not in map(_TYPE, group):
                continue  # the common case, decided at C level
            for a in group:
                if a.metadata:
                    n += 1
                if a.type == "segmentation":
                    n += sum(1 for s in a.annotations if s.metadata)  # type: ignore[union-attr]
        if n:
            report.drop("annotation metadata", f"{fmt_name} holds no annotation metadata", n)
    if item.scene is not None and not caps.scenes:
        report.drop("scene frame reference", f"{fmt_name} holds no scenes; frames become plain items")
        update["scene"] = None
    return copied(item, update) if update else item


_METADATA, _TYPE = attrgetter("metadata"), attrgetter("type")


def _derived(item: DatasetItem, group: list[Any], allowed: frozenset[str], caps: Capabilities, fmt_name: str,
             report: ConversionReport, prefix: str, what: str, geometry: str | None) -> list[Any]:
    """``group`` with each annotation the format cannot hold converted (or dropped).

    Runs once per converted annotation (400,000 polygons on a large COCO set): lookups
    are kept local and per-kind choices are made once per group.
    """
    held: dict[str, set[str]] = {}  # group_id -> kinds the object already has in the output
    for a in group:
        if a.type in allowed and a.group_id is not None:
            held.setdefault(a.group_id, set()).add(a.type)
    out: list[Any] = []
    converted: dict[tuple[str, str], int] = {}
    crowd_kept = "iscrowd" in caps.attributes
    for a in group:
        kind = a.type
        if kind in allowed:
            out.append(a)
            continue
        options, steps = _ladder(kind, allowed, geometry)
        gid = a.group_id
        if gid is None:
            kinds: set[str] = set()
        else:
            kinds = held.get(gid)  # type: ignore[assignment]
            if kinds is None:
                kinds = held[gid] = set()
        made = None
        losses: derivation.Losses = []
        for target, derive_to in steps:
            if target in kinds:  # the object has one already
                continue
            made = derive_to(a, item, losses)
            if made is not None:
                break
        if made is None:
            fresh = [k for k in options if k not in kinds]
            if not options:
                reason = f"{fmt_name} cannot hold {kind} {what}"
            elif not fresh:
                reason = has_one_already(fmt_name, kind, what, options[0])
            else:
                why = derivation.WHY_NOT.get((kind, fresh[-1]), "nothing to derive")
                reason = f"{fmt_name} cannot hold {kind} {what}; no {'/'.join(fresh)} derived: {why}"
            report.drop(prefix + kind, reason)
            continue
        made_kind = made.type
        kinds.add(made_kind)
        key = (prefix + kind, made_kind)
        converted[key] = converted.get(key, 0) + 1
        if made_kind != "object_mask" and not crowd_kept and a.attributes.get("iscrowd"):
            report.drop("attribute:iscrowd", f"{kind} -> {made_kind}: {fmt_name} has no crowd flag; "
                        "the crowd region is written as one plain object")
            made.attributes = {k: v for k, v in made.attributes.items() if k != "iscrowd"}
        for lost, reason, n in losses:
            report.drop(lost, reason, n)
        out.append(made)
    for (source, target), n in converted.items():
        report.convert(source, target, n)
    return out


def has_one_already(fmt_name: str, kind: str, what: str, made: str) -> str:
    """The drop reason of an annotation whose object already has the ``made`` it would become."""
    return f"{fmt_name} cannot hold {kind} {what}; its object already has a {made}"


def dropped_on_read(caps: Capabilities, fmt_name: str, geometry: str | None = None) -> dict[str, str]:
    """Ground-truth kinds a target with ``caps`` drops once their object has a box, with the
    reason :func:`_derived` reports (``Context.dropped_on_read``): keypoints, when the box is
    all the target would make of them."""
    allowed = caps.annotation_types
    if "keypoints" in allowed or derivation.candidates("keypoints", allowed, geometry) != ("box",):
        return {}
    return {"keypoints": has_one_already(fmt_name, "keypoints", "ground truth", "box")}


@functools.lru_cache(maxsize=256)
def _ladder(kind: str, allowed: frozenset[str], geometry: str | None
            ) -> tuple[tuple[str, ...], tuple[tuple[str, Callable[..., Any]], ...]]:
    """The kinds ``kind`` may become in a target holding ``allowed``, in the order tried, and
    each with its derivation function (``core/derive.py``)."""
    options = derivation.candidates(kind, allowed, geometry)
    return options, tuple((k, derivation.DERIVATIONS[(kind, k)]) for k in options)


def _fitted(items: Iterable[DatasetItem], fmt: Format, ctx: Context,
            derive: str = "auto", geometry: str | None = None) -> Iterator[DatasetItem]:
    if ctx.report.source_format is None:  # items did not come through read_dataset: count them here
        items = _checked(items, ctx, "<items>")
    for item in items:
        fitted = fit_to(item, fmt.capabilities, fmt.name, ctx.report, derive=derive, geometry=geometry)
        if fitted is not None:
            ctx.report.items_written += 1
            yield fitted


def write_dataset(
    dataset: Dataset,
    destination: str | os.PathLike[str],
    format: str,
    options: Options = None,
    *,
    overwrite: bool = False,
    context: Context | None = None,
    registry: FormatRegistry | None = None,
    derive: str = "auto",
    geometry: str | None = None,
    overlap: str = "error",
    shards: Shards | None = None,
) -> ConversionReport:
    """Write ``dataset`` to ``destination`` atomically and return the report.

    ``derive`` and ``geometry`` are passed to :func:`fit_to`; with ``derive="auto"`` the
    segmentations are first mapped to the view the format needs
    (:func:`annobridge.core.derive.segmentation_view`; ``overlap`` as in ``consolidate``).

    The writer works in a temporary folder beside the destination; only when it finishes
    are its outputs moved into place. A failure leaves nothing behind, and an existing
    output is replaced only with ``overwrite=True``.

    With ``shards`` (:func:`read_shards`; ``dataset`` gives only the header), the context's
    workers read, fit and write the source in parts (``converters/sharded.py``).
    """
    reg = _registry(registry)
    fmt = resolve_writer(format, reg)
    _check_derive(derive, geometry)
    fmt, opts = _writer_with(fmt, options)
    ctx = context or Context()
    view = derivation.segmentation_view(fmt.capabilities) if derive == "auto" else None
    if view is not None and shards is None:
        dataset = derivation.in_view(dataset, view, overlap, ctx.report)
    location = str(destination)
    remote = storage.is_remote(location)
    if remote:
        parent_url, name = storage.split(location, ctx.storage_options)
        dst = Path(name)
    else:
        dst = storage.local(location)
    ctx.final_destination = None if remote else dst
    ctx.report.destination = location if remote else str(dst)
    ctx.report.destination_format = fmt.name
    taken = storage.exists(location, ctx.storage_options) if remote else (dst.exists() or dst.is_symlink())
    if taken and not overwrite:  # a dangling link is taken too
        raise WriteError("destination already exists", file=location if remote else dst,
                         fix="pass --overwrite to replace it, or choose another path")
    if fmt.capabilities.scenes is False and dataset.header.scenes:
        n = sum(len(s.annotations) for s in dataset.header.scenes.values())
        ctx.report.drop("scene_category", f"{fmt.name} holds no scenes", n)
        if any(s.metadata for s in dataset.header.scenes.values()):
            ctx.report.drop("scene metadata", f"{fmt.name} holds no scenes",
                            sum(1 for s in dataset.header.scenes.values() if s.metadata))
    created: list[Path] = []
    if remote:  # staged locally, uploaded by storage.publish once the writer is done
        stage = Path(tempfile.mkdtemp(prefix="annobridge-stage."))
    else:
        parent = dst.parent if str(dst.parent) else Path(".")
        created = _missing_ancestors(parent)
        parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_stages(parent, dst.name, ctx.report)
        stage = Path(tempfile.mkdtemp(prefix=_stage_prefix(dst.name) + f"{os.getpid()}.", suffix=".partial",
                                      dir=parent))
    done = False
    published: list[str] = []
    try:
        try:
            if shards is not None:
                from annobridge.converters import sharded

                url = storage.url_of(shards.root) if storage.is_remote(ctx.report.source or "") else None
                plan = sharded.ShardPlan(shards, ctx.report.source_format or "", url, fmt, opts, stage / dst.name,
                                         derive, geometry, overlap, view, ctx.storage_options,
                                         parts=fmt.parts is not None and (view != "instance"
                                                                          or not fmt.parts.keeps_ids))
                sharded.write(plan, dataset.header, stage / dst.name, ctx)
            else:
                fitted = Dataset(header=dataset.header, items=_fitted(dataset.items, fmt, ctx, derive, geometry),
                                 source=dataset.source, format=dataset.format, total=dataset.total)
                fmt.write(fitted, stage / dst.name, opts, ctx)  # type: ignore[misc]
        except OSError as exc:
            raise WriteError(f"cannot write: {exc.strerror or exc}",
                             file=getattr(exc, "filename", None) or dst) from exc
        ctx.close()  # every worker is done before anything is published
        if (ctx.workers > 1 or ctx.executor != "process") and not ctx.shared_out:
            ctx.report.notes.append(f"ran in one process: {ctx.report.source_format or 'this source'} -> "
                                    f"{fmt.name} has no per-item work for workers (--workers/--executor)")
        for folder, url in ctx.side_outputs:
            if any(folder.iterdir()):
                published += storage.publish(folder, url, "annobridge", overwrite=overwrite,
                                             storage_options=ctx.storage_options)
        if remote:
            storage.publish(stage, parent_url, dst.name, overwrite=overwrite, storage_options=ctx.storage_options)
        else:
            _commit(stage, parent, overwrite)
        done = True
    finally:
        ctx.close(cancel=not done)  # workers stop before their staging folder goes
        shutil.rmtree(stage, ignore_errors=True)
        for folder, _ in ctx.side_outputs:
            shutil.rmtree(folder, ignore_errors=True)
        ctx.side_outputs.clear()
        if not done:
            if published and not overwrite:
                storage.remove(published, ctx.storage_options)
            for folder in created:  # deepest first: only folders this run made, only when empty
                try:
                    folder.rmdir()
                except OSError:
                    break
    return ctx.report


def _writer_with(fmt: Format, options: Options) -> tuple[Format, Any]:
    """``fmt`` with the capabilities of a write with ``options`` (parsed, also returned)."""
    opts = parse_options(fmt, "write", options)
    if fmt.capabilities_for is not None:  # what this write holds depends on its options
        fmt = replace(fmt, capabilities=fmt.capabilities_for(opts))
    return fmt, opts


def _stage_prefix(name: str) -> str:
    """Staging folders are ``.NAME.annobridge-PID.XXXX.partial`` beside the destination."""
    return f".{name}.annobridge-"


def _missing_ancestors(folder: Path) -> list[Path]:
    """The folders ``folder.mkdir(parents=True)`` would create, deepest first."""
    out = []
    while not folder.exists() and folder != folder.parent:
        out.append(folder)
        folder = folder.parent
    return out


def _remove_stale_stages(parent: Path, name: str, report: ConversionReport) -> None:
    """Remove staging folders of earlier runs to the same destination whose process is gone
    (killed with SIGKILL, or a power cut), and say so in the report and the log."""
    prefix = _stage_prefix(name)
    for entry in parent.glob(f"{glob.escape(prefix)}*.partial"):
        pid = entry.name[len(prefix):].split(".", 1)[0]
        if not pid.isdigit() or _alive(int(pid)) or not entry.is_dir() or entry.is_symlink():
            continue
        shutil.rmtree(entry, ignore_errors=True)
        message = f"removed {entry}, the staging folder of an interrupted earlier run"
        logger.warning(message)
        report.notes.append(message)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _commit(stage: Path, parent: Path, overwrite: bool) -> None:
    """Move every entry of ``stage`` into ``parent``; old entries are restored on failure."""
    entries = sorted(stage.iterdir())
    if not entries:
        raise WriteError("the writer produced no output", file=stage)
    for entry in entries:
        target = parent / entry.name
        if (target.exists() or target.is_symlink()) and not overwrite:
            raise WriteError("output already exists", file=target,
                             fix="pass --overwrite to replace it, or choose another path")
    backup = Path(tempfile.mkdtemp(prefix=".annobridge-old.", dir=parent))
    moved: list[tuple[Path, Path | None]] = []
    try:
        for entry in entries:
            target = parent / entry.name
            old = None
            if target.exists() or target.is_symlink():
                old = backup / entry.name
                os.replace(target, old)
            os.replace(entry, target)
            moved.append((target, old))
    except OSError as exc:
        for target, old in reversed(moved):
            _remove(target)
            if old is not None:
                os.replace(old, target)
        raise WriteError(f"cannot move output into place: {exc}", file=parent) from exc
    finally:
        shutil.rmtree(backup, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def convert(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    src_format: str | None = None,
    dst_format: str,
    read_options: Options = None,
    write_options: Options = None,
    overwrite: bool = False,
    workers: int = 1,
    executor: str = "process",
    storage_options: StorageOptions | None = None,
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int | None], None] | None = None,
    registry: FormatRegistry | None = None,
    task: str | None = None,
    things_only: bool = False,
    overlap: str = "error",
    stuff: str | None = None,
    semantic_bits: int = 8,
    classes: list[str] | None = None,
    derive: str = "auto",
    geometry: str | None = None,
    transform: Callable[[Dataset, Context], Dataset] | None = None,
) -> ConversionReport:
    """Convert ``source`` to ``destination`` in one streaming pass; returns the report.

    ``derive="auto"`` converts what the target cannot hold into a kind it holds
    (:func:`fit_to`, ``core/derive.py``; ``geometry`` = ``"box"``, ``"polygon"`` or
    ``"mask"`` prefers that kind where several fit) and maps segmentations to the view the
    target needs (:func:`write_dataset`); ``derive="none"`` drops and reports instead.

    ``transform`` maps the dataset read before anything else happens to it (label mapping
    and filtering: :func:`annobridge.converters.api.label_transform`); it records its own
    losses in ``context.report``.

    ``progress`` is called with the number of items just read; ``on_total`` once with the
    item count when the reader knows it (None otherwise).

    ``source`` and ``destination`` may be URLs (``s3://``, ``gs://``, ``az://``, ``memory://``;
    ``http(s)://`` to read), with fsspec ``storage_options``. ``executor`` runs the per-item
    work on ``workers`` local processes (``"process"``), a Dask ``LocalCluster`` (``"dask"``) or
    a Dask scheduler (``"dask://HOST:PORT"``).

    ``task`` (``"panoptic"``, ``"instance"``, ``"semantic"``) first maps the items to that
    segmentation view (:func:`annobridge.core.segmentation.consolidate`), with
    ``things_only``, ``stuff``, ``overlap``, ``semantic_bits`` and ``classes`` (the semantic
    class order) passed on to it.
    """
    reg = _registry(registry)
    _check_derive(derive, geometry)
    ctx = Context(workers=workers, executor=executor, storage_options=dict(storage_options or {}),
                  progress=progress, on_total=on_total)
    try:
        plain = transform is None and task is None
        sharding = plain and (workers > 1 or executor != "process")
        target = _writer_with(resolve_writer(dst_format, reg), write_options)[0] if (
            plain and (derive == "auto" or sharding)) else None
        if target is not None and derive == "auto":  # the reader sees what the writer gets
            ctx.boxes_on_read = derivation.boxes_on_read(target.capabilities, geometry)
            ctx.dropped_on_read = dropped_on_read(target.capabilities, target.name, geometry)
        shards = None
        if sharding:
            shards = read_shards(source, src_format, read_options, context=ctx, registry=reg, target=target)
        if shards is not None:
            return write_dataset(Dataset(header=shards.header, source=shards.source, format=shards.format),
                                 destination, dst_format, write_options, overwrite=overwrite, context=ctx,
                                 registry=reg, derive=derive, geometry=geometry, overlap=overlap, shards=shards)
        dataset = read_dataset(source, src_format, read_options, context=ctx, registry=reg)
        if transform is not None:
            dataset = transform(dataset, ctx)
        if task is not None:
            from annobridge.core.segmentation import consolidate

            dataset = consolidate(dataset, task, things_only=things_only, stuff=stuff,
                                  overlap=overlap, bits=semantic_bits, classes=classes, context=ctx)
            ctx.report.notes.append(f"segmentation converted to the {task} view (--task {task})")
        return write_dataset(dataset, destination, dst_format, write_options, overwrite=overwrite, context=ctx,
                             registry=reg, derive=derive, geometry=geometry, overlap=overlap)
    finally:
        ctx.close(cancel=True)  # a failed read stops the workers too (a no-op after a write)
        if storage.is_remote(str(source)):
            storage.release(str(source))
        storage.drop_media()  # remote media fetched here: the next conversion fetches them anew


DERIVE_MODES = ("auto", "none")


def _check_derive(derive: str, geometry: str | None) -> None:
    if derive not in DERIVE_MODES:
        raise FormatError(f"unknown derive mode {derive!r}", fix="choose auto or none")
    if geometry is not None and geometry not in derivation.GEOMETRIES:
        raise FormatError(f"unknown geometry {geometry!r}",
                          fix=f"choose one of {', '.join(derivation.GEOMETRIES)}")


def validate(
    path: str | os.PathLike[str],
    format: str | None = None,
    options: Options = None,
    *,
    write_to: str | None = None,
    write_options: Options = None,
    registry: FormatRegistry | None = None,
    warnings: bool = False,
) -> list[AnnobridgeError]:
    """Every problem found reading ``path``, in one run (empty when it is valid); then, when
    reading found none, what a conversion would fail on: the dataset is written into a
    temporary folder in ``write_to`` (default: its own format, when that can be written), so
    that whatever the writer refuses (metadata keys with two types, masks it cannot hold,
    ...) is found too. Writers record each problem through ``Context.error`` and go on, so
    every one is listed, not only the first.

    Args:
        write_to: the format to check writing into; ``""`` checks reading only.
        warnings: also list what is kept as given but noted as ``warning: ...`` in the
            report (a :class:`ValidationWarning` each, after the errors).
    """
    reg = registry if registry is not None else get_registry()
    ctx = Context(collect_errors=True)
    try:
        fmt = resolve_reader(Path(path), format, reg)
        dataset = read_dataset(path, fmt.name, options, context=ctx, registry=reg)
        for _ in dataset.items:
            pass
    except AnnobridgeError as exc:  # a problem the reader cannot go past (truncated JSON)
        ctx.errors.append(exc)
        return ctx.errors
    target = fmt.name if write_to is None else write_to
    if not ctx.errors and target and reg.get(target).write is not None:
        ctx = Context(collect_errors=True)  # the read is repeated: its notes are counted once
        scratch = Path(tempfile.mkdtemp(prefix="annobridge-validate-"))
        try:
            dataset = read_dataset(path, fmt.name, options, context=ctx, registry=reg)
            write_dataset(dataset, scratch / "out", target, write_options, context=ctx, registry=reg)
        except AnnobridgeError as exc:  # a problem the writer cannot go past
            ctx.errors.append(exc)
        finally:
            ctx.close(cancel=True)
            shutil.rmtree(scratch, ignore_errors=True)
    if not warnings:
        return ctx.errors
    notes = dict.fromkeys(n[len(WARNING):] for n in ctx.report.notes if n.startswith(WARNING))
    return ctx.errors + [ValidationWarning(note) for note in notes]
