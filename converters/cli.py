"""The ``annobridge`` command line (click only; the work is done by the engine).

Exit codes: 0 success, 1 an annobridge error (bad input, existing output, a failed
validation), 2 a usage error, 3 a drop under --fail-on-drop, 130 / 143 interrupted by SIGINT / SIGTERM (the engine removes
its staging folder and stops its workers first). Errors print as one line without a traceback.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from annobridge.core.errors import AnnobridgeError, FormatError, ValidationWarning

if TYPE_CHECKING:
    from annobridge.core.formats import Format

# Heavy modules (the engine, the model, every plugin) are imported inside the commands that
# use them, so ``annobridge --help`` and completion start fast.


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived: unwinds like KeyboardInterrupt, so the engine removes its
    staging folder and stops its workers on the way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum: int, frame: Any) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):  # a second signal must not cut the clean-up short
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signum)


_LOUDNESS = re.compile(r"^(-q|--quiet|-v+|--verbose)$")


class _Main(click.Group):
    """Turns AnnobridgeError into a clean message and exit code 1; SIGINT and SIGTERM into one
    line and exit code 128 + the signal number (130, 143); takes ``-q``/``-v`` after the
    subcommand too (``annobridge convert a b --to coco -q``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args = list(args)
        first = next((n for n, a in enumerate(args) if not a.startswith("-")), None)
        if first is not None:
            tail = args[first:]
            end = tail.index("--") if "--" in tail else len(tail)
            moved = [a for a in tail[:end] if _LOUDNESS.match(a)]
            if moved:
                args = args[:first] + moved + [a for a in tail[:end] if not _LOUDNESS.match(a)] + tail[end:]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        previous = ({sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
                    if threading.current_thread() is threading.main_thread() else {})
        try:
            return super().invoke(ctx)
        except AnnobridgeError as exc:
            raise click.ClickException(str(exc)) from exc
        except (Interrupted, KeyboardInterrupt) as exc:
            signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
            click.echo(f"annobridge: interrupted by {signal.Signals(signum).name}; "
                       "nothing was written (partial output removed)", err=True)
            ctx.exit(128 + signum)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


@click.group(cls=_Main)
@click.version_option(package_name="annobridge")
@click.option("-v", "--verbose", count=True, help="More log output (repeat for debug).")
@click.option("-q", "--quiet", is_flag=True, help="No progress and no summary, errors only.")
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """Convert computer-vision annotations between formats, reporting anything lost."""
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    ctx.obj = {"quiet": quiet}


def _parse_pairs(pairs: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not key=value", param_hint="--option")
        out[key.strip()] = value
    return out


def split_options(pairs: dict[str, str], reader: Format | None, writer: Format | None) -> tuple[dict, dict]:
    """Route each ``--option`` to the reader's and/or writer's options by the keys they declare."""
    read: dict[str, str] = {}
    write: dict[str, str] = {}
    read_keys = reader.options_model("read").model_fields if reader and pairs else {}
    write_keys = writer.options_model("write").model_fields if writer and pairs else {}
    for key, value in pairs.items():
        field = key.replace("-", "_")
        taken = False
        if field in read_keys:
            read[field] = value
            taken = True
        if field in write_keys:
            write[field] = value
            taken = True
        if not taken:
            accepted = sorted(f.replace("_", "-") for f in set(read_keys) | set(write_keys))
            names = " and ".join(f.name for f in (reader, writer) if f is not None)
            raise FormatError(f"option {key!r} is not known to {names}",
                              fix=f"options accepted: {', '.join(accepted) or 'none'}")
    return read, write


def complete_formats(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Shell completion of format names (``--from``, ``--to``, ``formats FMT``)."""
    from annobridge.core.plugins import get_registry
    try:
        names = get_registry().formats
    except AnnobridgeError:
        return []
    return [name for name in sorted(names) if name.startswith(incomplete)]


def _keep(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    ctx.meta[f"annobridge.{param.name}"] = value
    return value


def pipeline_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--map-labels``, ``--keep-labels`` and ``--fail-on-drop`` for a command that converts;
    the values land in ``ctx.meta`` (read by :func:`label_step` and :func:`exit_on_drop`)."""
    for option in reversed((
        click.option("--map-labels", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     expose_value=False, callback=_keep,
                     help="JSON object or CSV old,new of label renames (empty/null removes the label)."),
        click.option("--keep-labels", expose_value=False, callback=_keep,
                     help="Keep only annotations with these labels (comma-separated, after --map-labels)."),
        click.option("--fail-on-drop", is_flag=True, expose_value=False, callback=_keep,
                     help="Exit with code 3 when anything was dropped (for pipelines)."),
    )):
        fn = option(fn)
    return fn


def label_step(ctx: click.Context) -> Callable[..., Any] | None:
    """The label mapping/filtering step of ``--map-labels``/``--keep-labels``, or None."""
    from annobridge.converters.api import label_transform

    mapping = ctx.meta.get("annobridge.map_labels")
    keep = ctx.meta.get("annobridge.keep_labels")
    if mapping is None and keep is None:
        return None
    return label_transform(mapping, [k.strip() for k in keep.split(",") if k.strip()] if keep else None)


def exit_on_drop(ctx: click.Context, report: Any) -> None:
    """Exit 3 under ``--fail-on-drop`` when the report holds any drop."""
    if ctx.meta.get("annobridge.fail_on_drop") and report.dropped:
        click.echo(f"dropped {sum(sum(r.values()) for r in report.dropped.values())} thing(s) "
                   "(--fail-on-drop)", err=True)
        ctx.exit(3)


class _Progress:
    """A progress bar on stderr (a counter when the total is unknown); only when stderr is a
    terminal and not quiet."""

    WIDTH = 30

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.count = 0
        self.total: int | None = None
        self._last = 0.0

    def set_total(self, total: int | None) -> None:
        self.total = total

    def __call__(self, n: int) -> None:
        self.count += n
        now = time.monotonic()
        if now - self._last > 0.1:
            self._last = now
            self._draw()

    def _draw(self) -> None:
        if self.total:
            filled = int(self.WIDTH * min(self.count, self.total) / self.total)
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            click.echo(f"\r[{bar}] {self.count}/{self.total} items", nl=False, err=True)
        else:
            click.echo(f"\r{self.count} items", nl=False, err=True)

    def done(self) -> None:
        if self.enabled and self.count:
            self._draw()
            click.echo("", err=True)

    @property
    def callback(self) -> Callable[[int], None] | None:
        return self if self.enabled else None

    @property
    def total_callback(self) -> Callable[[int | None], None] | None:
        return self.set_total if self.enabled else None


@main.command()
@click.argument("src")
@click.argument("dst")
@click.option("--from", "src_format", shell_complete=complete_formats,
              help="Source format (detected when omitted; needed when SRC is - for stdin).")
@click.option("--to", "dst_format", required=True, shell_complete=complete_formats,
              help="Target format (DST - writes a single-file format to stdout).")
@click.option("--overwrite", is_flag=True, help="Replace DST if it exists.")
@click.option("--option", "-o", "options", multiple=True, metavar="KEY=VALUE",
              help="A reader or writer option, e.g. gt=instances.json (repeatable).")
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Processes for per-item work; output is identical to one process.")
@click.option("--executor", default="process", show_default=True, metavar="process|dask|dask://HOST:PORT",
              help="Where per-item work runs with --workers: local processes, a Dask LocalCluster of "
                   "--workers processes, or an existing Dask scheduler (needs annobridge[dask]).")
@click.option("--storage-option", "storage_options", multiple=True, metavar="KEY=VALUE",
              help="An fsspec filesystem option for s3://, gs://, az:// ... paths, e.g. profile=prod or "
                   "endpoint_url=http://127.0.0.1:9000 (repeatable; values are JSON or text).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--task", type=click.Choice(["panoptic", "instance", "semantic"]), default=None,
              help="Convert the segmentation to this view first (panoptic <-> instance <-> semantic).")
@click.option("--things-only", is_flag=True, help="With --task instance: drop stuff segments.")
@click.option("--overlap", type=click.Choice(["error", "keep-first", "keep-last"]), default="error",
              show_default=True, help="Overlapping objects when rasterising instances.")
@click.option("--stuff", type=click.Choice(["category", "background", "drop"]), default=None,
              help="With --task instance: one mask per stuff category (default), one merged "
                   "background mask, or none.")
@click.option("--semantic-bits", type=click.Choice(["8", "16"]), default="8", show_default=True,
              help="With --task semantic: 8-bit (at most 255 classes) or 16-bit class values.")
@click.option("--classes", default=None, metavar="A,B,...",
              help="With --task semantic: the class order (values 1, 2, ...; 'background' is 0); "
                   "default: the dataset's categories.")
@click.option("--derive", type=click.Choice(["auto", "none"]), default="auto", show_default=True,
              help="auto: convert what the target cannot hold into a kind it holds (polygon -> box, "
                   "mask -> polygon, ...); none: drop it and report.")
@click.option("--geometry", type=click.Choice(["box", "polygon", "mask"]), default=None,
              help="Preferred kind to derive where the target holds several.")
@pipeline_options
@click.pass_context
def convert(ctx: click.Context, src: str, dst: str, src_format: str | None, dst_format: str,
            overwrite: bool, options: tuple[str, ...], workers: int, executor: str,
            storage_options: tuple[str, ...], as_json: bool,
            task: str | None = None, things_only: bool = False, overlap: str = "error",
            stuff: str | None = None, semantic_bits: str = "8", classes: str | None = None,
            derive: str = "auto", geometry: str | None = None) -> None:
    """Convert SRC to DST in format --to.

    SRC and DST are paths or URLs (s3://, gs://, az://, memory://; http(s):// for SRC)."""
    from annobridge.converters import engine
    from annobridge.converters.stdio import StdioPaths
    from annobridge.core.formats import steady_heap
    from annobridge.core.plugins import get_registry
    from annobridge.core.storage import parse_storage_options
    steady_heap()  # this process is annobridge's own: its workers, forked, inherit it too
    if (things_only or stuff) and task != "instance":
        raise click.UsageError("--things-only and --stuff need --task instance")
    if classes is not None and task != "semantic":
        raise click.UsageError("--classes needs --task semantic")
    if str(src) == "-" and src_format is None:
        raise click.UsageError("reading standard input (SRC -) needs --from FMT")
    registry = get_registry()
    writer = engine.resolve_writer(dst_format, registry)
    stdio = StdioPaths(src, dst)
    ctx.call_on_close(stdio.close)
    stdio.check_writer(writer)
    src, dst = stdio.source, stdio.destination
    fs_options = parse_storage_options(storage_options)
    reader = engine.resolve_reader(src, src_format, registry, fs_options)
    read_opts, write_opts = split_options(_parse_pairs(options), reader, writer)
    progress = _Progress(not ctx.obj["quiet"])
    report = engine.convert(src, dst, src_format=reader.name, dst_format=writer.name,
                            read_options=read_opts, write_options=write_opts,
                            overwrite=overwrite, workers=workers, executor=executor,
                            storage_options=fs_options, progress=progress.callback,
                            on_total=progress.total_callback, registry=registry,
                            task=task, things_only=things_only, overlap=overlap, stuff=stuff,
                            semantic_bits=int(semantic_bits), transform=label_step(ctx),
                            classes=[c.strip() for c in classes.split(",") if c.strip()] if classes else None,
                            derive=derive, geometry=geometry)
    progress.done()
    stdio.send()
    if as_json:
        click.echo(json.dumps(report.model_dump() | {"written": report.written}, indent=2),
                   err=stdio.to_stdout)
    elif not ctx.obj["quiet"]:
        click.echo(report.summary(), err=stdio.to_stdout)
    exit_on_drop(ctx, report)


@main.command()
@click.argument("name", required=False, shell_complete=complete_formats)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def formats(name: str | None, as_json: bool) -> None:
    """List the formats every installed plugin provides, or one format NAME and its options."""
    from annobridge.converters.describe import describe_format
    from annobridge.core.plugins import get_registry

    registry = get_registry()
    chosen = [registry.get(name)] if name else [f for _, f in sorted(registry.formats.items())]
    # the table of all formats shows no options: their models (pydantic) stay unimported
    rows = [describe_format(f, options=bool(name or as_json)) for f in chosen]
    if as_json:
        click.echo(json.dumps(rows[0] if name else rows, indent=2))
        return
    width = max((len(r["name"]) for r in rows), default=4)
    click.echo(f"{'FORMAT':<{width}}  RW  ANNOTATIONS / PREDICTIONS")
    for r in rows:
        rw = ("r" if r["read"] else "-") + ("w" if r["write"] else "-")
        kinds = ",".join(r["annotations"]) or "-"
        preds = ",".join(r["predictions"]) or "-"
        click.echo(f"{r['name']:<{width}}  {rw}  {kinds} / {preds}")
        click.echo(f"{'':<{width}}      {r['description']}")
        if name:
            for which in ("read", "write"):
                opts = r[f"{which}_options"]
                click.echo(f"{which} options (--option KEY=VALUE):" + ("" if opts else " none"))
                for o in opts:
                    default = "required" if o["required"] else f"default {json.dumps(o['default'])}"
                    click.echo(f"  {o['name']} ({o['type']}, {default})")
                    if o["description"]:
                        click.echo(f"      {o['description']}")


@main.command()
def plugins() -> None:
    """List installed plugins as JSON, with any that failed to load."""
    from annobridge.core.plugins import FormatRegistry, get_plugin_manager
    pm = get_plugin_manager()
    registry = FormatRegistry.from_manager(pm)
    out = []
    for plugin in pm.get_plugins():
        name = pm.get_name(plugin)
        out.append({
            "name": name,
            "hooks": sorted(h.name for h in pm.get_hookcallers(plugin) or []),
            "formats": sorted({f.name for f in registry.formats.values() if f.plugin == name}
                              | {n for n, fs in registry.conflicts.items() if any(f.plugin == name for f in fs)}),
        })
    out.sort(key=lambda p: p["name"])
    failures = [{"name": f.name, "error": f.error} for f in pm.failures]
    conflicts = [{"format": n, "plugins": [f.plugin for f in fs]} for n, fs in sorted(registry.conflicts.items())]
    click.echo(json.dumps({"plugins": out, "failed": failures, "conflicts": conflicts}, indent=2))


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--from", "--format", "src_format", help="Format (detected when omitted).")
@click.option("--option", "-o", "options", multiple=True, metavar="KEY=VALUE")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write PNG charts and summary.json here (needs annobridge[plots]).")
def inspect(path: Path, src_format: str | None, options: tuple[str, ...], as_json: bool,
            plots_dir: Path | None) -> None:
    """Summarise a dataset: items, annotations per kind and label, metadata fields and types."""
    from annobridge.converters import engine
    from annobridge.converters.plots import DatasetFigures, pyplot, write_plots
    from annobridge.core.formats import Context
    from annobridge.core.metadata import infer_schema
    from annobridge.core.plugins import get_registry

    if plots_dir is not None:
        pyplot()  # fail before reading when matplotlib is missing
    registry = get_registry()
    reader = engine.resolve_reader(path, src_format, registry)
    read_opts, _ = split_options(_parse_pairs(options), reader, None)
    dataset = engine.read_dataset(path, reader.name, read_opts, context=Context(), registry=registry)
    figures = DatasetFigures(measure=plots_dir is not None)
    # scenes as a live view: streaming readers fill header.scenes while items are read
    scopes = infer_schema(figures.counted(dataset.items), dataset.header.scenes.values())
    items, kinds, labels = figures.items, figures.kinds, figures.object_labels
    if plots_dir is not None:
        written = write_plots(figures.summary(scopes), plots_dir)
        click.echo(f"wrote {len(written)} file(s) to {plots_dir}", err=True)
    fields = {scope: s.fields for scope, s in scopes.items()}
    if as_json:
        click.echo(json.dumps({
            "format": reader.name, "items": items, "annotations": dict(kinds), "labels": dict(labels),
            "metadata": {scope: {p: {"type": f.inferred, "distinct": len(f.distinct),
                                     "histogram": f.histogram()}
                                 for p, f in fs.items()} for scope, fs in fields.items() if fs},
            "geo": {scope: sorted(s.geo_paths) for scope, s in scopes.items() if s.geo_paths},
        }, indent=2))
        return
    click.echo(f"{path} ({reader.name}): {items} items")
    for kind, n in sorted(kinds.items()):
        click.echo(f"  {kind:<24} {n}")
    if labels:
        click.echo("labels:")
        for label, n in labels.most_common():
            click.echo(f"  {label:<24} {n}")
    for scope, fs in fields.items():
        if fs:
            click.echo(f"{scope} metadata:")
            for p, f in sorted(fs.items()):
                click.echo(f"  {p:<24} {f.inferred:<16} {len(f.distinct)} distinct")
                hist = f.histogram()
                top = max((n for _, n in hist), default=0)
                for label, n in hist:
                    bar = "#" * (round(20 * n / top) if top else 0)
                    click.echo(f"      {label[:22]:<22} {n:>6} {bar}")
        geo = scopes[scope].geo_paths
        if geo:
            click.echo(f"  geographic coordinates (lat/lon) at: {', '.join(p or '(top level)' for p in sorted(geo))}")


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--format", "--from", "src_format", shell_complete=complete_formats,
              help="Format (detected when omitted).")
@click.option("--option", "-o", "options", multiple=True, metavar="KEY=VALUE")
@click.option("--to", "dst_format", default=None,
              help="Also check that this format's writer accepts the data (default: the format "
                   "read; 'none' checks reading only).")
@click.option("--json", "as_json", is_flag=True,
              help="Print {valid, format, problems: [{message, file, where, item, fix}], warnings}.")
def validate(path: Path, src_format: str | None, options: tuple[str, ...], dst_format: str | None,
             as_json: bool) -> None:
    """Read PATH and list every problem found, with its location, and everything writing it
    would refuse (the first 100 of each, then a count); exit 1 if any. Warnings (data kept as
    given that other tools may reject) are listed after them and do not fail."""
    from annobridge.converters import engine
    from annobridge.core.plugins import get_registry

    registry = get_registry()
    reader = engine.resolve_reader(path, src_format, registry)
    writer = (registry.get(dst_format) if dst_format not in (None, "none")
              else reader if dst_format is None and reader.write is not None else None)
    read_opts, write_opts = split_options(_parse_pairs(options), reader, writer)
    found = engine.validate(path, reader.name, read_opts, write_to="" if dst_format == "none" else dst_format,
                            write_options=write_opts, registry=registry, warnings=True)
    problems = [p for p in found if not isinstance(p, ValidationWarning)]
    warnings = [p for p in found if isinstance(p, ValidationWarning)]
    if as_json:
        click.echo(json.dumps({
            "path": str(path), "format": reader.name, "valid": not problems,
            "problems": [{"message": str(p), "kind": type(p).__name__, "problem": p.problem, "file": p.file,
                          "where": p.where, "item": p.item, "fix": p.fix} for p in problems],
            "warnings": [str(w) for w in warnings],
        }, indent=2))
        if problems:
            sys.exit(1)
        return
    for line in _capped([str(p) for p in problems], "problems"):
        click.echo(line)
    for line in _capped([f"warning: {w}" for w in warnings], "warnings"):
        click.echo(line)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) found in {path}"
                                   + (f", and {len(warnings)} warning(s)" if warnings else ""))
    click.echo(f"{path}: valid {reader.name}" + (f" ({len(warnings)} warning(s))" if warnings else ""))


VALIDATE_SHOWN = 100
"""``validate`` prints this many problems (and as many warnings); ``--json`` lists all."""


def _capped(lines: list[str], what: str) -> list[str]:
    if len(lines) <= VALIDATE_SHOWN:
        return lines
    return lines[:VALIDATE_SHOWN] + [f"... and {len(lines) - VALIDATE_SHOWN} more {what} (--json lists all)"]


# --------------------------------------------------------------------------- metadata


@main.group()
def metadata() -> None:
    """Write metadata onto a dataset's items and save it back in its own format."""


@metadata.command("import")
@click.argument("dataset", type=click.Path(exists=True, path_type=Path))
@click.option("--from-csv", "csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV with a header row; cells typed (numbers, true/false, empty = missing).")
@click.option("--from-json", "json_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON list of objects, or an object of file name -> metadata.")
@click.option("--key", default="file_name", show_default=True, help="Column naming each row's file.")
@click.option("--replace", is_flag=True, help="Replace each item's metadata (default: merge top-level keys).")
@click.option("--skip-unknown", is_flag=True, help="Skip rows naming no item (counted) instead of failing.")
@click.option("--scenes", is_flag=True, help="Rows name scenes by reference id (scene metadata) instead of items.")
@click.option("--format", "--from", "src_format", help="Dataset format (detected when omitted).")
@click.option("--option", "-o", "options", multiple=True, metavar="KEY=VALUE",
              help="A reader or writer option of the dataset's format (repeatable).")
@click.pass_context
def metadata_import(ctx: click.Context, dataset: Path, csv_file: Path | None, json_file: Path | None,
                    key: str, replace: bool, skip_unknown: bool, scenes: bool, src_format: str | None,
                    options: tuple[str, ...]) -> None:
    """Import per-file metadata from a CSV or JSON table into DATASET (nothing is written on any error)."""
    from annobridge.converters import engine
    from annobridge.converters.metadata_tools import import_metadata
    from annobridge.core.plugins import get_registry

    if (csv_file is None) == (json_file is None):
        raise click.UsageError("give exactly one of --from-csv FILE or --from-json FILE")
    registry = get_registry()
    fmt = engine.resolve_reader(dataset, src_format, registry)
    read_opts, write_opts = split_options(_parse_pairs(options), fmt, fmt)
    table = csv_file or json_file
    result = import_metadata(dataset, table, key=key, table_kind="csv" if csv_file else "json",  # type: ignore[arg-type]
                             replace=replace, skip_unknown=skip_unknown, scenes=scenes, format=fmt.name,
                             read_options=read_opts, write_options=write_opts, registry=registry)
    if not ctx.obj["quiet"]:
        click.echo(f"{dataset} ({result.format}): metadata {'replaced' if replace else 'merged'} on "
                   f"{result.updated} of {result.items} {'scenes' if scenes else 'items'}")
        if result.skipped_unknown:
            click.echo(f"skipped {len(result.skipped_unknown)} row(s) naming no item: "
                       + ", ".join(result.skipped_unknown[:5]) + (" ..." if len(result.skipped_unknown) > 5 else ""))
        if result.report is not None and result.report.dropped:
            click.echo(result.report.summary())


@metadata.command("compute")
@click.argument("dataset", type=click.Path(exists=True, path_type=Path))
@click.option("--stats", required=True, help="Comma-separated stats, e.g. luminance,rgb-ratios.")
@click.option("--format", "--from", "src_format", help="Dataset format (detected when omitted).")
@click.option("--option", "-o", "options", multiple=True, metavar="KEY=VALUE",
              help="A reader or writer option of the dataset's format (repeatable).")
@click.pass_context
def metadata_compute(ctx: click.Context, dataset: Path, stats: str, src_format: str | None,
                     options: tuple[str, ...]) -> None:
    """Compute image statistics into each item's metadata and save DATASET back."""
    from annobridge.converters import engine
    from annobridge.converters.metadata_tools import compute_metadata
    from annobridge.core.plugins import FormatRegistry, get_plugin_manager

    names = [s.strip() for s in stats.split(",") if s.strip()]
    if not names:
        raise click.BadParameter("name at least one stat", param_hint="--stats")
    pm = get_plugin_manager()
    registry = FormatRegistry.from_manager(pm)
    fmt = engine.resolve_reader(dataset, src_format, registry)
    read_opts, write_opts = split_options(_parse_pairs(options), fmt, fmt)
    show = not ctx.obj["quiet"] and sys.stderr.isatty()
    bars: list[Any] = []

    def advance(done: int, total: int) -> None:
        if not show:
            return
        if not bars:
            bars.append(click.progressbar(length=total, label="computing", file=sys.stderr, show_pos=True))
        bars[0].update(1)

    try:
        result = compute_metadata(dataset, names, format=fmt.name, read_options=read_opts,
                                  write_options=write_opts, progress=advance, plugin_manager=pm)
    finally:
        for bar in bars:
            bar.render_finish()
    if not ctx.obj["quiet"]:
        click.echo(f"{dataset} ({result.format}): computed {', '.join(names)} for {result.updated} of "
                   f"{result.items} items")
        if result.skipped_no_image:
            click.echo(f"skipped {len(result.skipped_no_image)} item(s) without a readable local image: "
                       + ", ".join(result.skipped_no_image[:5]))


# --------------------------------------------------------------------------- render


@main.command()
@click.argument("dataset", type=click.Path(exists=True, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--from", "--format", "src_format", help="Format of DATASET (detected when omitted).")
@click.option("--option", "-o", "options", multiple=True, metavar="KEY=VALUE",
              help="A reader option of DATASET's format (repeatable).")
@click.option("--items", "count", type=click.IntRange(min=1), help="Only the first N items.")
@click.option("--ids", help="Only these reference ids (comma-separated).")
@click.option("--images-root", type=click.Path(file_okay=False, path_type=Path),
              help="Folder image paths are relative to (default: the dataset's folder).")
@click.option("--compare", type=click.Path(exists=True, path_type=Path),
              help="A second dataset drawn beside the first for the items both have.")
@click.option("--compare-from", "compare_format", help="Format of --compare (detected when omitted).")
@click.option("--compare-images-root", type=click.Path(file_okay=False, path_type=Path),
              help="Images root of --compare (default: its folder).")
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Processes drawing the PNGs; the output is identical to one process.")
@click.option("--overwrite", is_flag=True, help="Write into OUT_DIR even if it is not empty.")
@click.pass_context
def render(ctx: click.Context, dataset: Path, out_dir: Path, src_format: str | None,
           options: tuple[str, ...], count: int | None, ids: str | None, images_root: Path | None,
           compare: Path | None, compare_format: str | None, compare_images_root: Path | None,
           workers: int, overwrite: bool) -> None:
    """Draw DATASET's annotations on its images: one PNG per item in OUT_DIR."""
    from annobridge.converters import engine
    from annobridge.converters.render import render_dataset
    from annobridge.core.plugins import get_registry

    if count is not None and ids:
        raise click.UsageError("give --items N or --ids a,b, not both")
    registry = get_registry()
    reader = engine.resolve_reader(dataset, src_format, registry)
    read_opts, _ = split_options(_parse_pairs(options), reader, None)
    result = render_dataset(dataset, out_dir, format=reader.name, options=read_opts, items=count,
                            ids=[i.strip() for i in ids.split(",") if i.strip()] if ids else None,
                            images_root=images_root, compare=compare, compare_format=compare_format,
                            compare_images_root=compare_images_root, workers=workers,
                            overwrite=overwrite, registry=registry)
    if not ctx.obj["quiet"]:
        click.echo(f"wrote {len(result.written)} PNG(s) to {out_dir}")
        for side, lonely in ((dataset, result.unmatched_left), (compare, result.unmatched_right)):
            if compare is not None and lonely:
                click.echo(f"only in {side} ({len(lonely)}): " + ", ".join(lonely[:20])
                           + (" ..." if len(lonely) > 20 else ""))


# --------------------------------------------------------------------------- merge and split


@main.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option("--to", "dst_format", required=True, shell_complete=complete_formats, help="Target format.")
@click.option("--from", "src_format", shell_complete=complete_formats,
              help="Format of every source (each detected when omitted).")
@click.option("--overwrite", is_flag=True, help="Replace DST if it exists.")
@click.option("--update", is_flag=True,
              help="Nucleus update=True: a later source's item replaces an earlier one's metadata "
                   "(absent keys deleted), upserts its annotations by annotation_id and replaces "
                   "its ground-truth segmentation (default: annotations added, metadata merged).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pipeline_options
@click.pass_context
def merge(ctx: click.Context, sources: tuple[Path, ...], dst: Path, dst_format: str,
          src_format: str | None, overwrite: bool, update: bool, as_json: bool) -> None:
    """Merge SOURCES into one dataset DST (items with the same reference id become one item)."""
    from annobridge.converters.datasetops import merge_files

    if len(sources) < 2:
        raise click.UsageError("merge needs at least two SOURCES and a DST")
    report = merge_files(sources, dst, dst_format, from_format=src_format, overwrite=overwrite,
                         transform=label_step(ctx), update=update)
    if as_json:
        click.echo(json.dumps(report.model_dump() | {"written": report.written}, indent=2))
    elif not ctx.obj["quiet"]:
        click.echo(report.summary())
    exit_on_drop(ctx, report)


@main.command()
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--ratios", default="train=0.8,val=0.2", show_default=True,
              help="Subset names and shares, summing to 1.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the shuffle.")
@click.option("--stratify", is_flag=True, help="Keep each label's share alike across subsets.")
@click.option("--from", "src_format", shell_complete=complete_formats, help="Source format (detected when omitted).")
@click.option("--to", "dst_format", shell_complete=complete_formats, help="Target format (default: the source's).")
@click.option("--overwrite", is_flag=True, help="Replace subsets that exist.")
@click.pass_context
def split(ctx: click.Context, src: Path, out_dir: Path, ratios: str, seed: int, stratify: bool,
          src_format: str | None, dst_format: str | None, overwrite: bool) -> None:
    """Split SRC into subsets (train/val/...) written into OUT_DIR, reproducibly for a --seed."""
    from annobridge.converters.datasetops import parse_ratios, split_file

    reports = split_file(src, out_dir, parse_ratios(ratios), from_format=src_format, to_format=dst_format,
                         seed=seed, stratify=stratify, overwrite=overwrite)
    if not ctx.obj["quiet"]:
        for name, report in reports.items():
            click.echo(f"{name}: {report.items_written} items -> {report.destination}")
            for what, reasons in sorted(report.dropped.items()):
                for reason, n in sorted(reasons.items()):
                    click.echo(f"  dropped {n} x {what}: {reason}")
