"""Sharded conversion: workers read, check, fit and (for per-file writers) write their own
part of the source, and the driver gets back small results in order.

A reader that can list its per-item units cheaply offers ``Format.shards`` (KITTI frames,
YOLO label files, Lightly files, panoptic images, Nucleus JSONL lines; a parsed COCO file's
images for local forked workers). With ``--workers N`` or ``--executor dask`` the engine cuts
the unit list into shards and runs :func:`run_shard` on each: the worker reads the shard
(fetching the files of a remote source itself, through fsspec), counts and fits its items,
and then either

- writes them with the target's ``Format.parts.write`` (per-file writers: KITTI, YOLO) into
  the staging folder and returns the small per-item results the writer's ``finish`` needs
  for its aggregate outputs, or
- returns the fitted items, which the driver writes with the target's ordinary writer (one
  JSON or JSONL file; its per-item work still goes through ``Context.map``).

Results are consumed in unit order, so the output is byte-identical to one process; a
worker's error names the item and fails the conversion, whose staging folder is removed.
Local workers are forked after the driver listed (or, for COCO, parsed) the source, so
they inherit it and only unit ranges cross the process boundary.

A writer whose output depends on the items before (YOLO: ``task=auto``, class ids of new
labels) declares ``Parts.lead``: the driver writes the first :data:`LEAD` units itself and
fixes what they chose in the write options, before any worker starts; its ``finish``
replays the parts' choices in order and raises :class:`PartsDiffer` when a part chose
otherwise, and the dataset is then written again in one process (noted in the report).
"""

from __future__ import annotations

import functools
import itertools
import logging
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from annobridge.core import storage
from annobridge.core.errors import AnnobridgeError, ReadError
from annobridge.core.formats import ConversionReport, Context, Format, HeaderScan, PartsDiffer, Shards, _worker_start
from annobridge.core.model import Dataset, DatasetHeader, DatasetItem

logger = logging.getLogger(__name__)


@dataclass
class ShardPlan:
    """Everything a worker needs for its shards (pickled to Dask workers; inherited by forked ones)."""

    shards: Shards
    source_format: str
    url: str | None  # the URL of shards.root, for a remote source
    target: Format
    write_options: Any
    destination: Path | None  # the staging destination, for per-file writers
    derive: str
    geometry: str | None
    overlap: str
    view: str | None
    storage_options: dict[str, Any] = field(default_factory=dict)
    parts: bool = False  # workers write with target.parts (see Parts.keeps_ids)
    scratch: str | None = None  # the driver's folder for workers' copies of a remote source (removed by it)
    reading: dict[str, Any] = field(default_factory=dict)  # the driver's Context fields for readers (READING)


@dataclass
class ShardResult:
    """What a worker sends back: the writer's part results (or the fitted items), the shard's
    report, and scenes its reader added to the header."""

    out: Any
    report: ConversionReport
    scenes: dict[str, Any]
    unnumbered: list[tuple[int, list[bool]]] | None = None  # items whose new masks the driver numbers
    refs: list[str] | None = None  # the reference ids read, when the driver checks them across parts


def run_shard(plan: ShardPlan, units: list[Any], keep: list[DatasetItem] | None = None,
              fetched: dict[str, bytes] | None = None) -> ShardResult:
    """Read, check, fit and (per-file writers) write one shard of units, in unit order;
    ``keep`` collects the items read (the driver's lead part, for a write again); ``fetched``
    holds files of a remote source that the header pass already downloaded (:class:`Scanned`)."""
    from annobridge.converters import engine
    from annobridge.core import derive as derivation

    ctx = Context(storage_options=plan.storage_options, **plan.reading)
    ctx.report.source_format = plan.source_format  # counted by _checked here: _fitted must not count again
    storage.remember_source(None, plan.storage_options)
    if plan.url is not None:
        storage.remember_sources({"roots": {plan.url: plan.storage_options}})
    header = plan.shards.header.model_copy(update={"scenes": {}})
    mirror = None
    try:
        if plan.url is not None and plan.shards.files is not None:
            mirror = _fetch_units(plan, units, fetched or {})
            ctx.remote_root = plan.url
            ctx.report.notes.append(f"the workers fetched the files of their parts from {plan.url}")
            items = plan.shards.read(mirror, units, header, ctx)
        else:
            items = plan.shards.read(plan.shards.root, units, header, ctx)
        items = engine._checked(items, ctx, plan.shards.source or str(plan.shards.root))
        if keep is not None:
            items = _noting(items, keep.append)
        refs: list[str] | None = None
        if plan.shards.unique_refs:
            refs = []
            items = _noting(items, lambda item: refs.append(item.reference_id))  # type: ignore[union-attr]
        unnumbered = [] if plan.view == "instance" and not plan.parts else None
        if plan.view is not None:
            items = derivation.in_view(Dataset(header=header, items=items), plan.view, plan.overlap,
                                       ctx.report, unnumbered).items
        if unnumbered is not None:  # the driver numbers the new masks over the dataset, then fits
            out = list(items)
        elif plan.parts:
            assert plan.destination is not None and plan.target.parts is not None
            source = str(mirror) if mirror is not None else plan.shards.source  # media are read from there
            stub = Dataset(header=header, source=source, format=plan.shards.format)
            fitted = engine._fitted(items, plan.target, ctx, plan.derive, plan.geometry)
            out = plan.target.parts.write(fitted, plan.destination, plan.write_options, stub, ctx)
        else:
            out = list(engine._fitted(items, plan.target, ctx, plan.derive, plan.geometry))
        if mirror is not None and not plan.parts:
            for item in out:  # the copy goes now: what the driver may still read becomes a URL
                _as_urls(item, mirror, plan.url)
        if mirror is not None and keep is not None:
            for item in keep:  # ... and what a write again in one process reads (_in_one_process)
                _as_urls(item, mirror, plan.url)
    except AnnobridgeError as err:
        raise _named_by_url(err, mirror, plan.url)
    finally:
        if mirror is not None:
            storage.forget(mirror)
            shutil.rmtree(mirror, ignore_errors=True)
    ctx.report.source_format = None
    return ShardResult(out, ctx.report, dict(header.scenes), unnumbered, refs)


def _noting(items: Any, note: Any) -> Iterator[DatasetItem]:
    for item in items:
        note(item)
        yield item


def _fetch_units(plan: ShardPlan, units: list[Any], fetched: dict[str, bytes]) -> Path:
    """A local folder laid out as the source, holding only the files of ``units`` (and the
    files every unit needs): those in ``fetched`` from there, the others fetched by this
    worker from the source URL."""
    assert plan.url is not None and plan.shards.files is not None
    files = {rel for u in units for rel in plan.shards.files(u)}
    if plan.parts and plan.target.capabilities.pointclouds:  # its writer copies them: fetched in the batch
        files = {f.path if isinstance(f, storage.Sized) else f for f in files}
    return _fetched_files(plan.url, plan.storage_options, files, plan.scratch, fetched)


def _fetched_files(url: str, storage_options: dict[str, Any], files: set[Any], scratch: str | None,
                   fetched: dict[str, bytes] | None = None) -> Path:
    """A new local folder holding ``files`` (paths relative to ``url``, ``(path, start, end)``
    byte ranges of one, written at their offsets, or :class:`~annobridge.core.storage.Sized`
    placeholders, fetched only if opened), fetched from there unless ``fetched`` has their
    bytes; in the driver's ``scratch`` folder when this worker sees it, so that a worker
    stopped mid-way (another failed) leaves nothing behind."""
    fs, base = storage.filesystem(url, storage_options)
    base = base.rstrip("/")
    shared = Path(scratch) if scratch and os.path.isdir(scratch) else None
    mirror = Path(tempfile.mkdtemp(prefix="annobridge-shard.", dir=shared))
    whole = sorted({f for f in files if isinstance(f, str)})
    ranges: dict[str, list[tuple[int, int]]] = {}
    sized = {f.path: f.size for f in files if isinstance(f, storage.Sized) and f.path not in whole}
    for f in files:
        if not isinstance(f, (str, storage.Sized)) and f[0] not in whole:
            ranges.setdefault(f[0], []).append((f[1], f[2]))
    for rel in (*whole, *ranges, *sized):  # listed by the driver from its copy; checked again before it names a local file
        if rel.startswith("/") or any(part in ("", ".", "..") for part in rel.split("/")):
            shutil.rmtree(mirror, ignore_errors=True)
            raise ReadError("a file of the source leads outside its folder", file=f"{url}/{rel}")
    remote, local = [], []
    for rel in whole:
        target = mirror / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if fetched and rel in fetched:
            target.write_bytes(fetched[rel])
        else:
            remote.append(f"{base}/{rel}")
            local.append(str(target))
    try:
        if remote:
            fs.get(remote, local)
        for rel, spans in ranges.items():
            target = mirror / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as fh:
                for start, end in _merged(spans):
                    fh.seek(start)
                    fh.write(fs.cat_file(f"{base}/{rel}", start=start, end=end))
        if sized:
            storage.placeholders(fs, {str(mirror / rel): (f"{base}/{rel}", size) for rel, size in sized.items()})
    except BaseException:
        shutil.rmtree(mirror, ignore_errors=True)
        raise
    return mirror


def _named_by_url(err: AnnobridgeError, mirror: Path | None, url: str | None) -> AnnobridgeError:
    """``err`` naming the source's URL instead of a file in this worker's copy of it."""
    root = f"{mirror}{os.sep}"
    if mirror is not None and url is not None and err.file is not None and err.file.startswith(root):
        err.file = storage.join_url(url, err.file[len(root):].replace(os.sep, "/"))
    return err


def _merged(spans: list[tuple[int, int]], gap: int = 1 << 16) -> list[tuple[int, int]]:
    """Byte ranges joined where they touch or lie within ``gap`` bytes (blank lines between)."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1] + gap:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


@dataclass
class Scanned:
    """A worker's part of the header pass: the scan's summary and, for a remote source, the
    files it fetched, which the driver hands to the reading pass of the same units so that
    each is downloaded once, wherever the two tasks run (a worker on another machine sees no
    folder of the driver's). Small: KITTI label files, a few hundred bytes each."""

    summary: Any
    files: dict[str, bytes]


def scan_shard(scan: HeaderScan, root: Path, url: str | None, storage_options: dict[str, Any],
               scratch: str | None, units: list[Any]) -> Scanned:
    """A worker's part of the header pass (``Shards.scan``): the summary of ``units``, read
    from ``root`` or, for a remote source, from the files of theirs that the scan reads."""
    if url is None:
        return Scanned(_scanned(scan, root, units, str(root)), {})
    files = sorted({rel for u in units for rel in scan.files(u)})
    mirror = _fetched_files(url, storage_options, set(files), scratch)
    try:
        return Scanned(_scanned(scan, mirror, units, url), {rel: (mirror / rel).read_bytes() for rel in files})
    except AnnobridgeError as err:
        raise _named_by_url(err, mirror, url)
    finally:
        shutil.rmtree(mirror, ignore_errors=True)


def _scanned(scan: HeaderScan, root: Path, units: list[Any], source: str) -> Any:
    try:
        return scan.scan(root, units)
    except OSError as exc:
        raise ReadError(f"cannot read: {exc.strerror or exc}", file=getattr(exc, "filename", None) or source) from exc


def _as_urls(item: DatasetItem, mirror: Path, url: str) -> None:
    """Media and mask locations inside a worker's copy become the URLs they were fetched from."""
    root = str(mirror) + os.sep

    def remote(value: str | None) -> str | None:
        if value is None or not value.startswith(root):
            return value
        return storage.join_url(url, value[len(root):].replace(os.sep, "/"))

    item.image_location = remote(item.image_location)
    item.pointcloud_location = remote(item.pointcloud_location)
    for a in (*item.annotations, *item.predictions):
        mask = getattr(a, "mask", None)
        if a.type == "segmentation" and mask is not None:
            mask.location = remote(mask.location)


FORK = "fork" in multiprocessing.get_all_start_methods()
"""Whether local workers can be forked (not on Windows): else they get the plan pickled, and
sources whose parts need the driver's parse (COCO) are read in one process."""

_PLAN: ShardPlan | None = None
"""The plan of the running sharded conversion, inherited by forked local workers."""


def _run_part(plan: ShardPlan, part: tuple[list[Any], dict[str, bytes]]) -> ShardResult:
    """:func:`run_shard` on a part's units and the files the header pass fetched for them."""
    return run_shard(plan, part[0], fetched=part[1])


def _run_inherited(part: tuple[list[Any], dict[str, bytes]]) -> ShardResult:
    assert _PLAN is not None, "a local shard worker was not forked from the driver"
    return _run_part(_PLAN, part)


READING = ("boxes_on_read", "dropped_on_read")
"""The fields of the driver's :class:`Context` that tell a reader what the target keeps (set by
the engine for a plain conversion): a worker reads its part with them too, as one process
would (COCO -> KITTI: the keypoints of 43,907 items left out on read, not derived and dropped)."""


def chunks(units: list[Any], workers: int) -> list[list[Any]]:
    """Shards of consecutive units: about eight per worker (so a slow shard does not leave the
    others idle), at most 256 units each (bounded results in flight), as many as a multiple of
    the workers and of sizes within one of each other, so that no worker waits at the end for
    a last full one (Lightly, 5,000 files on 2 workers: 20 shards of 250, not 19 of 256 and
    one of 136)."""
    n, workers = len(units), max(1, workers)
    size = max(1, min(256, -(-n // (workers * 8))))
    count = min(n, -(-n // size // workers) * workers if n else 0)
    return [units[n * i // count:n * (i + 1) // count] for i in range(count)]


def write(plan: ShardPlan, header: DatasetHeader, destination: Path, ctx: Context) -> None:
    """Run every shard of ``plan`` on the context's workers and write ``destination`` from
    their results, in order."""
    global _PLAN
    plan.reading = {name: getattr(ctx, name) for name in READING}
    units = chunks(plan.shards.units, ctx.workers)
    parts = list(zip(units, _scan_header(plan, units, header, ctx)))
    fn: Any = None
    if ctx.executor == "process" and FORK:
        if ctx._pool is not None:  # forked before this plan existed
            ctx._pool.shutdown()
        ctx._pool = ProcessPoolExecutor(max_workers=ctx.workers, mp_context=multiprocessing.get_context("fork"),
                                        initializer=_worker_start, initargs=(os.getpid(),))
        fn = _run_inherited
        _PLAN = plan  # forked workers inherit it: only the parts (units, fetched files) are sent
    before = ctx.report.model_copy(deep=True)  # what a write again in one process starts from
    try:
        lead: list[ShardResult] = []
        kept: list[DatasetItem] = []
        if plan.parts and plan.target.parts.lead is not None and parts:
            lead = _lead(plan, parts, kept)  # before any worker starts
        parts = [p for p in parts if p[0]]
        if fn is None:  # the plan travels with each task: without the unit list, each task's units go with it
            fn = functools.partial(_run_part, replace(plan, shards=replace(plan.shards, units=[])))
        ctx.report.notes.append(f"read in {len(parts)} parts by the workers{' and 1 by the driver' if lead else ''} "
                                f"({plan.shards.format} lists {len(plan.shards.units)} units"
                                f"{'; they wrote their items' if plan.parts else ''})")
        results = itertools.chain(lead, ctx.map(fn, parts, chunksize=1))  # one shard, one task
        items = _unpacked(results, header, ctx, plan.url is not None, plan.parts)
        if plan.view == "instance" and not plan.parts:
            from annobridge.converters import engine

            items = engine._fitted(_numbered(items), plan.target, ctx, plan.derive, plan.geometry)
        dataset = Dataset(header=header, items=items, source=plan.shards.source,
                          format=plan.shards.format, total=plan.shards.total)
        if plan.parts:
            try:
                plan.target.parts.finish(dataset.items, dataset, destination, plan.write_options, ctx)
            except PartsDiffer as why:
                ctx.close()  # the parts still running finish before their files go
                _in_one_process(plan, header, destination, ctx, before, str(why), kept,
                                [u for p, _ in parts for u in p])
        else:
            assert plan.target.write is not None
            plan.target.write(dataset, destination, plan.write_options, ctx)
    except BaseException:
        ctx.close(cancel=True)  # stopped before their copies in plan.scratch go
        raise
    finally:
        _PLAN = None
        if plan.scratch is not None:
            shutil.rmtree(plan.scratch, ignore_errors=True)


def _scan_header(plan: ShardPlan, parts: list[list[Any]], header: DatasetHeader,
                 ctx: Context) -> list[dict[str, bytes]]:
    """Make the workers' scratch folder (a remote source) and complete the header from their
    first pass (``Shards.scan``), before the plan goes to them: they read with the whole header.
    Returns, per part, the files that pass fetched (:class:`Scanned`)."""
    if plan.url is not None:
        plan.scratch = tempfile.mkdtemp(prefix="annobridge-shards.")
    scan = plan.shards.scan
    if scan is None:
        return [{} for _ in parts]
    scanner = functools.partial(scan_shard, scan, plan.shards.root, plan.url, plan.storage_options, plan.scratch)
    try:
        scanned = list(ctx.map(scanner, parts, chunksize=1))
        scan.merge(header, [s.summary for s in scanned])
        return [s.files for s in scanned]
    except BaseException:
        ctx.close(cancel=True)
        if plan.scratch is not None:
            shutil.rmtree(plan.scratch, ignore_errors=True)
        raise


LEAD = 16
"""Units the driver writes itself before the workers start, for a writer with ``Parts.lead``."""


def _lead(plan: ShardPlan, parts: list[tuple[list[Any], dict[str, bytes]]],
          kept: list[DatasetItem]) -> list[ShardResult]:
    """The first units written in the driver (their items read kept in ``kept``); the plan's
    write options then fixed to what they chose (``Parts.lead``), before the workers are
    forked or sent the plan."""
    assert plan.target.parts is not None and plan.target.parts.lead is not None
    units, fetched = parts[0]
    parts[0] = (units[LEAD:], fetched)
    result = run_shard(plan, units[:LEAD], kept, fetched)
    plan.write_options = plan.target.parts.lead(result.out, plan.write_options)
    return [result]


def _in_one_process(plan: ShardPlan, header: DatasetHeader, destination: Path, ctx: Context,
                    before: ConversionReport, why: str, kept: list[DatasetItem], rest: list[Any]) -> None:
    """Write the whole source again in the driver, as without workers, after the parts the
    workers wrote turned out to depend on each other (:class:`PartsDiffer`): the items the
    driver read for the lead part, then the units of the others (which, for a parsed COCO
    file, only the workers' copies of it consumed)."""
    from annobridge.converters import engine
    from annobridge.core import derive as derivation

    for written in destination.parent.iterdir():  # the staging folder: the parts' files, beside it too (masks)
        if written.is_dir() and not written.is_symlink():
            shutil.rmtree(written, ignore_errors=True)
        else:
            written.unlink(missing_ok=True)
    storage.complete(plan.shards.root)  # a remote source's copy: read here after all
    ctx.report = before
    ctx.report.notes.append(f"written again in one process: the parts the workers wrote differ ({why})")
    items = itertools.chain(kept, plan.shards.read(plan.shards.root, rest, header, ctx))
    items = engine._checked(items, ctx, plan.shards.source or str(plan.shards.root))
    dataset = Dataset(header=header, items=items, source=plan.shards.source, format=plan.shards.format,
                      total=plan.shards.total)
    if plan.view is not None:
        dataset = derivation.in_view(dataset, plan.view, plan.overlap, ctx.report)
    dataset.items = engine._fitted(dataset.items, plan.target, ctx, plan.derive, plan.geometry)
    assert plan.target.write is not None
    plan.target.write(dataset, destination, plan.write_options, ctx)


def _unpacked(results: Iterator[ShardResult], header: DatasetHeader, ctx: Context, remote: bool,
              plan_parts: bool) -> Iterator[Any]:
    """The items (or part results) of each shard, once its counts and scenes are merged."""
    seen: set[str] = set()
    for result in results:
        for ref in result.refs or ():
            if ref in seen:
                raise ReadError(f"reference_id {ref!r} is used twice", item=ref, file=ctx.report.source,
                                fix="reference ids must be unique in a dataset")
            seen.add(ref)
        ctx.report.add(result.report)
        header.scenes.update(result.scenes)
        if ctx.progress is not None and result.report.items_read:
            ctx.progress(result.report.items_read)
        if remote and not plan_parts:
            for item in result.out:
                _local_masks(item)
        if result.unnumbered is not None:
            yield from _marked(result)
        else:
            yield from result.out


def _local_masks(item: DatasetItem) -> None:
    """Masks of a remote source point at the driver's fetched copy, as when one process reads
    it (the writer then stores them as it stores local masks)."""
    for a in (*item.annotations, *item.predictions):
        mask = getattr(a, "mask", None)
        if a.type == "segmentation" and mask is not None and mask.location and "://" in mask.location:
            copy = storage.cached_file(mask.location)
            if copy is not None:
                mask.location = str(copy)


def _marked(result: ShardResult) -> Iterator[tuple[DatasetItem, list[bool]]]:
    assert result.unnumbered is not None
    marks = dict(result.unnumbered)
    for position, item in enumerate(result.out):
        yield item, marks.get(position, [False, False])


def _numbered(marked: Iterator[tuple[DatasetItem, list[bool]]]) -> Iterator[DatasetItem]:
    """New instance masks numbered over the dataset, in order, as one process numbers them."""
    from annobridge.core.derive import number_masks

    next_id = 1
    for item, needs in marked:
        for anns, need in zip((item.annotations, item.predictions), needs):
            if need:
                next_id = number_masks(anns, next_id)
        yield item

