"""What a format declares (:class:`Format`, :class:`Capabilities`) and what it gets while it
runs (:class:`Context`, :class:`ConversionReport`).

A format is plain data: a name, its capabilities, and up to three functions::

    read(path, options, context) -> Dataset          # items may be a lazy generator
    write(dataset, destination, options, context) -> None
    detect(path) -> bool

``options`` is an instance of the format's ``read_options``/``write_options`` pydantic model,
built from ``--option key=value`` pairs. Declarations (``Format``, ``Capabilities``) are plain
dataclasses and may name their options models lazily, so listing formats imports no pydantic.
Formats never import click and never register themselves on import: a plugin returns its
formats from the ``register_formats`` hook.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from annobridge.core.errors import AnnobridgeError, FormatError, PluginError

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

    from pydantic import BaseModel

    from annobridge.core.model import Dataset
    from annobridge.core.report import ConversionReport

# pydantic (options models, the report), core.model (numpy, every pydantic model), the process
# pool, core.distributed (socket) and tempfile are imported where they are used, not here:
# plugins import this module to declare their formats, and ``annobridge formats`` must stay
# cheap. ``NoOptions`` and ``ConversionReport`` are still importable from here (module
# ``__getattr__`` below).

T = TypeVar("T")
R = TypeVar("R")


ALL_ANNOTATION_TYPES = frozenset({
    "box", "oriented_box", "line", "polygon", "keypoints", "cuboid", "category",
    "multicategory", "object_mask", "segmentation",
})
"""Every item-level kind: the keys of ``core.model.ANNOTATION_TYPES`` less ``scene_category``,
written out so that declaring a format does not import the model (a test keeps them equal)."""

ALL_ATTRIBUTES = frozenset({
    "actions", "alpha", "area", "bbox", "category_id", "coco_absent", "cvat", "cvat_elements",
    "cvat_ellipse", "cvat_mask_box", "cvat_outside", "cvat_points", "cvat_track", "cvat_xml",
    "difficult", "dont_care", "iscrowd", "isthing", "keyframe", "kitti_text", "label_attributes",
    "num_keypoints", "occluded", "part", "pose", "score", "source", "split", "track_id",
    "truncated", "voc_extra", "voc_instance", "voc_text", "z_order",
})
"""The keys of ``core.model.KNOWN_ATTRIBUTES``, written out for the same reason (a test keeps
them equal)."""


@dataclass(frozen=True)
class Capabilities:
    """What a format can hold. The engine drops (and reports) anything else before writing.

    Args:
        annotation_types: ground-truth annotation kinds (``"box"``, ``"polygon"``, ... the
            ``type`` values of the model) the format holds.
        prediction_types: prediction kinds it holds (predictions carry ``confidence``).
        item_metadata: whether item metadata survives.
        annotation_metadata: whether annotation and segment metadata survive.
        scenes: whether scene structure (frames, scene metadata, scene categories) survives.
        pointclouds: whether point-cloud items survive.
        attributes: format attribute keys (``KNOWN_ATTRIBUTES`` in ``core/model.py``, such
            as ``iscrowd``) the format keeps; a conversion that would need one the format
            lacks reports it lost.
    """

    annotation_types: frozenset[str] = frozenset()
    prediction_types: frozenset[str] = frozenset()
    item_metadata: bool = False
    annotation_metadata: bool = False
    scenes: bool = False
    pointclouds: bool = False
    attributes: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        # a plain dataclass, so that declaring a format imports no pydantic: sets and lists of
        # kinds become frozensets here, as pydantic coerced them
        for name in ("annotation_types", "prediction_types", "attributes"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, (set, frozenset, list, tuple)):
                raise TypeError(f"Capabilities.{name} must be a set of names, got {value!r}")
            if not isinstance(value, frozenset):
                object.__setattr__(self, name, frozenset(value))

    @classmethod
    def full(cls) -> Capabilities:
        """Holds everything the model holds (the canonical JSONL, Nucleus with its extension)."""
        return cls(annotation_types=ALL_ANNOTATION_TYPES, prediction_types=ALL_ANNOTATION_TYPES,
                   item_metadata=True, annotation_metadata=True, scenes=True, pointclouds=True,
                   attributes=ALL_ATTRIBUTES)


Reader = Callable[[Path, Any, "Context"], "Dataset"]
Writer = Callable[["Dataset", Path, Any, "Context"], None]
Detector = Callable[[Path], bool]


@dataclass
class Shards:
    """A source listed as per-item units that workers read in parts (``Format.shards``).

    Args:
        units: cheap, picklable descriptions of the items, in reading order (frame stems,
            file names, line offsets); a unit's items never span two units (a KITTI frame's
            image and point cloud are one unit).
        read: ``read(root, units, header, context)`` yields the items of ``units`` in order,
            reading under ``root`` (the source folder, or a worker's copy of its part of a
            remote source); it may add scenes to ``header``. A module-level function (or a
            ``functools.partial`` of one) when ``portable``.
        root: the local folder the driver listed.
        header: the dataset header (categories, info), read once by the driver.
        files: for remote sources: the paths, relative to the source URL, that a unit's read
            needs (a worker fetches only these), or ``(path, start, end)`` for the bytes of a
            unit in a shared file (a JSONL line: the worker's copy holds them at their offsets),
            or :class:`~annobridge.core.storage.Sized` for a file the read only stats (a
            placeholder, fetched only if opened); None when the units cannot be fetched apart.
        portable: ``read`` runs in any process that sees ``root`` or the source URL (Dask);
            False when it needs state of the driver (a parsed COCO file), which only local
            workers forked from the driver inherit.
        unique_refs: the reader refuses a reference id used twice (Nucleus): workers send
            their ids back and the driver checks across parts.
        source / format / total: as on :class:`Dataset`.
        scan: what of the header only the units' files tell (KITTI's class names, from
            every label file), found by the workers in a first pass over the same shards
            so that the driver reads no per-item file; :class:`HeaderScan`.
    """

    units: list[Any]
    read: Callable[[Path, list[Any], Any, Context], Iterable[Any]]
    root: Path
    header: Any
    files: Callable[[Any], list[Any]] | None = None
    portable: bool = True
    unique_refs: bool = False
    source: str | None = None
    format: str | None = None
    total: int | None = None
    scan: HeaderScan | None = None


@dataclass(frozen=True)
class HeaderScan:
    """A first pass of the workers that completes :attr:`Shards.header` before any item is read.

    Args:
        scan: ``scan(root, units)`` returns a small picklable summary of ``units`` (reading
            their files under ``root``, as ``Shards.read`` does). Module-level, or a
            ``functools.partial`` of one.
        merge: ``merge(header, summaries)`` completes the header from the summaries of every
            shard, in unit order.
        files: the paths of a unit that ``scan`` reads, relative to the source (a worker
            fetches only these from a remote source).
    """

    scan: Callable[[Path, list[Any]], Any]
    merge: Callable[[Any, list[Any]], None]
    files: Callable[[Any], list[str]]


@dataclass(frozen=True)
class Parts:
    """A writer whose items can be written in parts on workers (``Format.parts``): per-file
    formats, whose files of one item depend on that item only.

    Args:
        write: ``write(items, destination, options, dataset, context)`` runs in a worker on
            the fitted items of one shard: writes their own files under the (staging)
            ``destination`` and returns their small picklable results, one per item in
            order, as a list or any picklable iterable of them (KITTI: the part's file names
            and image sets in columns, which cross back much faster than an object per
            item; COCO panoptic: each item's JSON records, as text). ``dataset`` carries the
            header and the source path, no items. Module-level. The single-process writer
            is the same two steps.
        finish: ``finish(results, dataset, destination, options, context)`` runs in the driver
            on every shard's results in order: checks across items (two frames with one
            file name) and writes the aggregate outputs (image-set lists, class lists, the
            panoptic JSON). It raises :class:`PartsDiffer` when the parts cannot be joined
            as one process would have written them.
        keeps_ids: whether the writer stores annotation ids. New instance masks are numbered
            over the whole dataset, which only the driver can do; a writer that stores no ids
            (KITTI) lets each worker number its part's masks (the numbers differ, the output
            does not), so its parts still run on workers.
        lead: ``lead(results, options)`` for a writer whose first items decide how the rest
            are written (YOLO's ``task=auto``): the driver writes the first few items itself,
            before the workers start, and gives this its results; it returns the options
            the other parts are written with (the choice made fixed), or ``options``.
    """

    write: Callable[[Iterable[Any], Path, Any, Any, Context], list[Any]]
    finish: Callable[[Iterable[Any], Any, Path, Any, Context], None]
    keeps_ids: bool = True
    lead: Callable[[list[Any], Any], Any] | None = None


class PartsDiffer(Exception):
    """Raised by ``Parts.finish`` when the parts, written on workers from the same start,
    made choices that depend on order after all (YOLO's ``task=auto``: a part of polygons
    after one that chose pose). The engine then writes the dataset again in one process.
    Never leaves the engine."""


class LazyFunction:
    """A function named by its module and name, imported when it is first called.

    Plugins declare ``read``, ``write`` and ``detect`` this way, so that building the registry
    (``annobridge formats``, ``--help`` of a command) imports no reader or writer and with them
    numpy, Pillow and the model. It pickles by name: a worker process imports it itself.

    Args:
        module: the dotted module path (``"annobridge.plugins.coco.read"``).
        name: the function's name in that module.
    """

    __slots__ = ("module", "name", "_function")

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.name = name
        self._function: Callable[..., Any] | None = None

    @property
    def function(self) -> Callable[..., Any]:
        """The function itself (imported now if it was not yet)."""
        if self._function is None:
            self._function = getattr(importlib.import_module(self.module), self.name)
        return self._function

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        return LazyFunction, (self.module, self.name)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, LazyFunction) and (self.module, self.name) == (other.module, other.name))

    def __hash__(self) -> int:
        return hash((self.module, self.name))

    def __repr__(self) -> str:
        return f"LazyFunction({self.module!r}, {self.name!r})"


def lazy_exports(package: str, names: dict[str, tuple[str, ...]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) for a plugin package that re-exports names of its
    submodules without importing them up front.

    Args:
        package: the package's ``__name__``.
        names: submodule (relative to ``package``) -> the names it provides.

    Returns:
        The ``__getattr__`` to assign in the package: it imports the submodule on first use
        of one of its names and raises AttributeError for any other name (so ``from package
        import submodule`` still finds the submodule).
    """
    where = {name: module for module, provided in names.items() for name in provided}

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return __getattr__


NO_OPTIONS = LazyFunction("annobridge.core.options", "NoOptions")
"""The options model of a format that declares none."""


@dataclass(frozen=True)
class Format:
    """A format a plugin provides.

    Args:
        name: kebab-case name used on the command line (``coco-panoptic``).
        description: one line for ``annobridge formats``.
        capabilities: what the format holds (used to report drops and to draw test data).
        read: builds a :class:`Dataset` from a path; items may be a lazy generator.
        write: consumes a dataset's item stream once and writes ``destination``.
        detect: cheap check whether a path looks like this format (no full parse).
        read_options / write_options: pydantic models of the ``--option`` keys, or a
            :class:`LazyFunction` naming one, imported when options are parsed or described
            (:meth:`options_model`) so that listing formats imports no pydantic.
        output: what ``write`` creates at ``destination``: a ``"file"`` or a ``"directory"``.
            Writers may also create siblings of ``destination`` (mask folders); the engine
            stages everything in a temporary folder and moves it into place at the end.
        capabilities_for: for a format whose holdings depend on its write options (a YOLO
            folder of one task): the capabilities of a write with these parsed options. The
            engine fits items to them instead of ``capabilities``, which stays the union.
        shards: ``shards(path, options, context)`` lists a source as :class:`Shards` so that
            workers read it in parts (``converters/sharded.py``); None (the function, or its
            result for one source) reads it in one process.
        heavy_units: reading one of its units is real work (panoptic: decoding a PNG), so
            local workers read it in parts for any target. Lighter units (a text or JSON
            record, an image header) of a local source are read in parts by local workers
            only for a target that writes them there too (:class:`Parts`): sending the items
            back for the driver to write costs more than reading them (measured 0.38-0.94x
            with 2 workers for Lightly, Nucleus, KITTI and YOLO sources and a JSON writer).
        parts: how workers write their shards' items themselves (:class:`Parts`); without
            it, workers send their fitted items to the driver, which writes them.
    """

    name: str
    description: str
    capabilities: Capabilities
    read: Reader | None = None
    write: Writer | None = None
    detect: Detector | None = None
    read_options: type[BaseModel] | LazyFunction = NO_OPTIONS
    write_options: type[BaseModel] | LazyFunction = NO_OPTIONS
    output: Literal["file", "directory"] = "file"
    capabilities_for: Callable[[BaseModel], Capabilities] | None = None
    shards: Callable[[Path, Any, Context], Shards | None] | None = None
    heavy_units: bool = False
    parts: Parts | None = None
    plugin: str = field(default="", compare=False)

    def options_model(self, which: Literal["read", "write"]) -> type[BaseModel]:
        """The options model of reading or writing (imported now when declared lazily)."""
        model = self.read_options if which == "read" else self.write_options
        if not isinstance(model, LazyFunction):
            return model
        try:
            return model.function
        except (ImportError, AttributeError) as exc:
            raise PluginError(
                f"format {self.name!r}: its {which} options model {model.module}.{model.name} "
                f"cannot be imported ({type(exc).__name__}: {exc})",
                fix=f"reinstall the plugin that provides {self.name!r} ({self.plugin or 'unknown'})",
            ) from exc


def parse_options(fmt: Format, which: Literal["read", "write"],
                  raw: dict[str, Any] | BaseModel | None) -> BaseModel:
    """Validate ``--option`` pairs (or an options model) against a format's options model.

    Keys may use kebab-case (``label-map``) or snake_case. An instance of the format's own
    model is used as it is; another model is read through its fields. Raises FormatError
    naming the option and the accepted keys.
    """
    from pydantic import BaseModel, ValidationError

    model = fmt.options_model(which)
    if isinstance(raw, model):
        return raw
    if isinstance(raw, BaseModel):
        raw = raw.model_dump(exclude_unset=True)
    data = {k.replace("-", "_"): v for k, v in (raw or {}).items()}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        accepted = ", ".join(k.replace("_", "-") for k in model.model_fields) or "none"
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']).replace('_', '-') or 'options'}: {e['msg']}"
            for e in exc.errors()
        )
        raise FormatError(
            f"bad {which} option for format {fmt.name!r}: {problems}",
            fix=f"options accepted: {accepted}",
        ) from exc


def new_report() -> ConversionReport:
    """An empty :class:`ConversionReport` (imports pydantic on first use)."""
    from annobridge.core.report import ConversionReport

    return ConversionReport()


WARNING = "warning: "
"""The prefix of a report note that ``validate`` lists as a warning."""


@dataclass
class Context:
    """Handed to readers and writers while a conversion runs.

    Args:
        report: where drops are recorded (``context.report.drop(...)``).
        workers: processes for :meth:`map`; 1 runs in this process.
        collect_errors: validation mode: :meth:`error` records problems instead of raising,
            so a reader can go on and report every problem in one run.
        progress: called with the number of items just handled.
        on_total: called once with the item count when the reader knows it, else None.
        final_destination: where the output will be once the engine moves it into place.
            Writers get a staging path; a reference from the output to a file outside it
            must be made relative to this, not to the staging path. None when the output
            goes to a URL (object storage).
        executor: where :meth:`map` runs with more than one worker: ``"process"`` (local
            processes), ``"dask"`` (a Dask ``LocalCluster`` of ``workers`` processes) or
            ``"dask://HOST:PORT"`` (an existing Dask scheduler; needs ``annobridge[dask]``).
        storage_options: keyword arguments for the fsspec filesystem of remote locations.
        remote_root: set while a worker reads its part of a remote source from a partial
            local copy: the URL of the copy's root. Readers resolve relative media paths
            (Nucleus masks, point clouds) against it rather than the copy, which holds only
            the part's own files; the media are fetched when used.
        boxes_on_read: set by the engine for a plain conversion: the ground-truth kinds the
            target gets as boxes (:func:`annobridge.core.derive.boxes_on_read`). A reader
            may build these as the box its record carries; readers may ignore it.
        dropped_on_read: set with ``boxes_on_read``: ground-truth kinds the target drops once
            their object has a box, with the reason the engine reports
            (:func:`annobridge.converters.engine.dropped_on_read`). A reader that builds the
            object's box may leave such an annotation out (checked as always), recording the
            drop and the read itself; readers may ignore it.
    """

    report: ConversionReport = field(default_factory=new_report)
    workers: int = 1
    collect_errors: bool = False
    errors: list[AnnobridgeError] = field(default_factory=list)
    progress: Callable[[int], None] | None = None
    on_total: Callable[[int | None], None] | None = None
    final_destination: Path | None = None
    chunksize: int = 8
    executor: str = "process"
    storage_options: dict[str, Any] = field(default_factory=dict)
    remote_root: str | None = None
    side_outputs: list[tuple[Path, str]] = field(default_factory=list)
    boxes_on_read: frozenset[str] = frozenset()
    dropped_on_read: dict[str, str] = field(default_factory=dict)
    shared_out: bool = False
    """Whether :meth:`map` handed any work to workers (else a conversion ran in one process)."""
    _pool: ProcessPoolExecutor | None = field(default=None, repr=False)
    _dask: Any = field(default=None, repr=False)

    def error(self, err: AnnobridgeError) -> None:
        """Raise ``err``, or, when validating, record it so the caller can skip the record."""
        if not self.collect_errors:
            raise err
        self.errors.append(err)

    def warn(self, finding: AnnobridgeError | str) -> None:
        """Note data that is kept as given but looks wrong (``warning: ...`` in the report;
        ``validate`` lists these as warnings). Never raises."""
        self.report.notes.append(f"{WARNING}{finding}")

    def map(self, fn: Callable[[T], R], iterable: Iterable[T], chunksize: int | None = None, *,
            here: Callable[[T], bool] | None = None) -> Iterator[R]:
        """``map(fn, iterable)`` in order, on ``workers`` processes when more than one.

        ``fn`` must be a picklable module-level function. Inputs are submitted in a
        bounded window, so a long stream is never held in memory at once, in chunks of
        ``chunksize`` (default :attr:`chunksize`). With a Dask ``executor`` each chunk of
        inputs is one Dask task. An input for which ``here(x)`` is true runs in this process,
        in its place in the order: its work costs less than sending it to a worker and its
        result back (a record with no mask to encode); when every input does, no worker starts.
        """
        size = chunksize or self.chunksize
        if self.executor == "process" and self.workers <= 1:
            yield from map(fn, iterable)
            return
        submit: Callable[[Callable[[T], R], list[T]], Any] | None = None
        limit = max(self.workers, 1) * 4

        def start() -> Callable[[Callable[[T], R], list[T]], Any]:
            nonlocal limit
            self.shared_out = True
            if self.executor != "process":
                from annobridge.core.distributed import DaskRunner

                if self._dask is None:
                    self._dask = DaskRunner(self.executor, self.workers)
                limit = self._dask.window
                return self._dask.submit
            if self._pool is None:
                from concurrent.futures import ProcessPoolExecutor

                self._pool = ProcessPoolExecutor(max_workers=self.workers, initializer=_worker_start,
                                                 initargs=(os.getpid(),))
            pool = self._pool
            from annobridge.core.distributed import run_chunk

            return lambda f, c: pool.submit(run_chunk, f, c)

        window: deque[Any] = deque()
        chunk: list[T] = []
        for x in iterable:
            if here is not None and here(x):
                if chunk:
                    window.append(submit(fn, chunk))  # type: ignore[misc]  # set with the chunk's first input
                    chunk = []
                window.append(_Done([fn(x)]))
            else:
                submit = submit or start()
                chunk.append(x)
                if len(chunk) < size:
                    continue
                window.append(submit(fn, chunk))
                chunk = []
            if len(window) >= limit:
                yield from window.popleft().result()
        if chunk:
            window.append(submit(fn, chunk))  # type: ignore[misc]
        while window:
            yield from window.popleft().result()

    def side_output(self, url: str) -> Path:
        """A new local folder whose files the engine uploads under ``url`` (any fsspec URL)
        when the conversion succeeds, and removes otherwise (Nucleus ``mask-url``)."""
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="annobridge-side."))
        self.side_outputs.append((folder, url))
        return folder

    def close(self, cancel: bool = False) -> None:
        """Shut the worker pool down: wait for it, or (``cancel``, after an error or a signal)
        stop its processes at once so nothing writes into a staging folder being removed."""
        if self._dask is not None:
            runner, self._dask = self._dask, None
            runner.close(cancel)
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        if not cancel:
            pool.shutdown(cancel_futures=True)
            return
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in processes:
            proc.terminate()
        for proc in processes:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()


class _Done:
    """The results of inputs :meth:`Context.map` ran in this process, in its window of futures."""

    __slots__ = ("results",)

    def __init__(self, results: list[Any]) -> None:
        self.results = results

    def result(self) -> list[Any]:
        return self.results


def _worker_start(parent: int) -> None:
    """In each worker: leave Ctrl-C to the parent (which stops the workers itself, so no worker
    prints a traceback), die on SIGTERM, and exit when the parent is gone (killed with SIGKILL)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    steady_heap()


def steady_heap() -> None:
    """Keep freed buffers of up to 32 MiB in this process's heap (glibc; elsewhere nothing).

    glibc gives a freed block above its mmap threshold back to the OS and maps the next one
    afresh, a page fault per 4 KiB touched; the threshold only rises once such a block is
    freed, so whether a process pays depends on what it freed before. A decoded 640x480
    panoptic PNG is 1.2 MB: measured on 300 of them, a worker without this spent ~35% more
    CPU than the same work in a process whose threshold had risen. Called in annobridge's
    own processes only (the CLI, its workers), never on a library user's process.

    It also puts what is alive now (the imported modules, some 300,000 objects) out of the
    cyclic collector's sight (``gc.freeze``): a full collection, which listing a large source
    triggers, then walks only the newer objects (Lightly -> KITTI with workers: ~0.01 s less
    of the driver's serial time), and a forked worker does not copy those pages by marking them.
    """
    gc.freeze()
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows)
        return
    mallopt(_M_MMAP_THRESHOLD, 32 << 20)
    mallopt(_M_TRIM_THRESHOLD, 64 << 20)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def local_path(location: str, base: Path | None = None) -> Path | None:
    """Resolve a location relative to ``base``; None for URLs."""
    if "://" in location:
        return None
    p = Path(location)
    if not p.is_absolute() and base is not None:
        p = base / p
    return p


def relative_location(path: Path, start: Path) -> str:
    """``path`` relative to ``start`` when possible (for portable outputs), else absolute."""
    try:
        return os.path.relpath(path, start)
    except ValueError:
        return str(path)


_LAZY = {"NoOptions": "annobridge.core.options", "ConversionReport": "annobridge.core.report"}


def __getattr__(name: str) -> Any:
    """``NoOptions`` and ``ConversionReport`` (pydantic models) are imported on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
