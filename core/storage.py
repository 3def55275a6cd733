"""Remote locations (``s3://``, ``gs://``, ``az://``, ``memory://``, ``http(s)://``) through fsspec.

Formats only ever see local paths. The engine bridges at its two ends:

- **Reading**: :func:`fetch` copies a remote source into a local cache folder before the
  reader runs: a folder is mirrored as a tree; a file is fetched together with its
  siblings named after it (``NAME.json`` brings ``NAME/``, ``NAME.masks/``,
  ``NAME.pointclouds/`` ...: where writers put masks and point clouds). HTTP(S) sources
  are single files.
- **Listing** (``lazy``): the copy starts as the tree's names only, from one fsspec ``find``:
  each file is a placeholder of its size, fetched the moment this process opens it for
  reading (an audit hook on ``open``, :func:`_on_open`), so detection and a reader's shard
  listing fetch only the files they read (a YAML, a JSON, ``ImageSets/``). Then either
  :func:`complete` fetches the rest in one batch (a reader reads the copy), or
  :func:`drop_pending` removes the placeholders (sharded runs: workers fetch their parts).
  Placeholders never outlive the listing, so no process reads one without the hook.
- **Writing**: the writer stages locally as always; :func:`publish` uploads the staged
  entries under a staging prefix ``PARENT/.NAME.<token>.partial/`` beside the destination
  and, once every byte is up, copies them into place server-side and removes the prefix.

Object storage has no atomic rename across many keys. What holds: a failed upload (or a
failed conversion, which never reaches the upload) leaves nothing under the destination;
the staging prefix is removed. The final server-side copy is not atomic: a reader listing
the destination during it may see part of the output, and a process killed during it can
leave part of the output and the ``.partial`` prefix behind. A failure the copy reports is
cleaned up (objects it created are removed) unless ``overwrite`` replaced older objects,
which cannot be restored.

Credentials and endpoints come the way each filesystem finds them (``AWS_ENDPOINT_URL``,
``AWS_PROFILE``, ``~/.aws``, ``GOOGLE_APPLICATION_CREDENTIALS``, ``AZURE_STORAGE_*``),
plus ``storage_options`` passed to the filesystem (``--storage-option key=value``).
"""

from __future__ import annotations

import atexit
import glob
import hashlib
import json
import logging
import os
import posixpath
import re
import secrets
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from annobridge.core.errors import FormatError, ReadError, WriteError

logger = logging.getLogger(__name__)

StorageOptions = dict[str, Any]

_PROTOCOL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")

EXTRAS = {
    "s3": ("s3", "s3fs"), "s3a": ("s3", "s3fs"),
    "gs": ("gcs", "gcsfs"), "gcs": ("gcs", "gcsfs"),
    "az": ("azure", "adlfs"), "abfs": ("azure", "adlfs"), "abfss": ("azure", "adlfs"), "adl": ("azure", "adlfs"),
    "http": ("http", "aiohttp"), "https": ("http", "aiohttp"),
}
"""Protocol -> (annobridge extra, the package it installs)."""


def protocol(location: str | Path) -> str | None:
    """The lower-case protocol of a URL (``s3``), or None for a plain path."""
    m = _PROTOCOL.match(str(location))
    return m.group(1).lower() if m else None


def is_remote(location: str | Path) -> bool:
    """True for a URL that is not ``file://`` (those are local paths)."""
    return protocol(location) not in (None, "file")


def local(location: str | Path) -> Path:
    """A local location as a Path: ``file:///x`` becomes ``/x``."""
    text = str(location)
    return Path(text[len("file://"):]) if protocol(text) == "file" else Path(text)


def parse_storage_options(pairs: Iterable[str]) -> StorageOptions:
    """``key=value`` pairs as filesystem keyword arguments.

    Values are read as JSON when they parse (``true``, ``3``, ``{"a": 1}``), else kept as
    text; a dotted key nests (``client_kwargs.region_name=eu-west-1``).
    """
    out: StorageOptions = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise FormatError(f"storage option {pair!r} is not key=value",
                              fix="e.g. --storage-option profile=prod or endpoint_url=http://host:9000")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        *parents, last = key.strip().split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return out


def filesystem(url: str, storage_options: StorageOptions | None = None) -> tuple[Any, str]:
    """The fsspec filesystem for ``url`` and the path inside it.

    Raises:
        FormatError: the protocol is unknown, or its package is not installed (naming the
            annobridge extra that installs it).
    """
    proto = protocol(url) or "file"
    try:
        import fsspec
    except ImportError as exc:  # pragma: no cover - fsspec is a dependency
        raise FormatError(f"{url}: remote locations need fsspec", fix="pip install fsspec") from exc
    try:
        return fsspec.core.url_to_fs(url, **(storage_options or {}))
    except ImportError as exc:
        extra, package = EXTRAS.get(proto, (None, None))
        fix = (f"pip install 'annobridge[{extra}]' (installs {package})" if extra
               else f"install the fsspec implementation for {proto}://")
        raise FormatError(f"{url}: {proto}:// locations need a package that is not installed ({exc})",
                          fix=fix) from exc
    except ValueError as exc:
        raise FormatError(f"{url}: {exc}", fix="use s3://, gs://, az://, memory://, http(s):// or a local path") from exc
    except TypeError as exc:
        raise FormatError(f"{url}: a storage option is not accepted by the {proto} filesystem: {exc}",
                          fix="check the --storage-option keys against the filesystem's documentation") from exc


def _join(parent: str, name: str) -> str:
    return f"{parent.rstrip('/')}/{name}" if parent else name


def _tree(fs: Any, root: str) -> list[str]:
    """Every file (object) under ``root``, sorted."""
    return sorted(fs.find(root, withdirs=False))


@dataclass
class _Copy:
    """A local copy of a remote source: which local file is which object, and which files
    are still placeholders (``pending``) or were removed unfetched (``absent``)."""

    fs: Any
    keys: dict[str, str] = field(default_factory=dict)  # local path -> object key
    pending: set[str] = field(default_factory=set)
    absent: set[str] = field(default_factory=set)


_COPY_OF: dict[Path, _Copy] = {}
_PENDING: dict[str, _Copy] = {}
"""Placeholder files of every lazy copy (local path -> its copy), fetched when opened."""
_LOCK = threading.RLock()
_HOOKED = False


def fetch(url: str, storage_options: StorageOptions | None = None, *, lazy: bool = False) -> tuple[Path, Path]:
    """Copy a remote source into a new local cache folder.

    With ``lazy``, only the file ``url`` names is fetched now; every other file is a
    placeholder fetched when opened, or by :func:`complete` (see the module doc).

    Returns ``(path, cache)``: the local counterpart of ``url`` and the cache folder to remove
    when the conversion is done. Raises ReadError when ``url`` does not exist or cannot be read.
    """
    fs, path = filesystem(url, storage_options)
    path = path.rstrip("/")
    name = posixpath.basename(path) or "input"
    cache = Path(tempfile.mkdtemp(prefix="annobridge-fetch."))
    try:
        remote: list[str] = []
        locals_: list[str] = []
        sizes: list[int | None] = []

        def add_tree(root: str, into: Path) -> None:
            for key, info in sorted(fs.find(root, withdirs=False, detail=True).items()):
                rel = key[len(root):].lstrip("/")
                if any(part in ("..", ".") for part in rel.split("/")) or "\x00" in rel or "\\" in rel:
                    raise ReadError("an object key leads outside its folder ('..', '.' or '\\' in it)",
                                    file=_url(fs, key), fix="rename the object; keys are copied as paths")
                remote.append(key)
                locals_.append(str(into / rel))
                sizes.append(info.get("size"))

        http = protocol(url) in ("http", "https")
        if not http and fs.isdir(path):
            add_tree(path, cache / name)
            if not remote:
                (cache / name).mkdir()
        elif fs.exists(path):
            remote.append(path)
            locals_.append(str(cache / name))
            sizes.append(None)
            if not http:  # the siblings writers create next to a file, named after it
                parent = posixpath.dirname(path)
                stem = name.split(".", 1)[0]
                for sibling, info in sorted(fs.glob(_join(parent, glob.escape(stem)) + "*", detail=True).items()):
                    sibling = sibling.rstrip("/")
                    base = posixpath.basename(sibling)
                    if sibling == path or not (base == stem or base.startswith(stem + ".")):
                        continue  # not NAME/ or NAME.*: another dataset (train.json vs training/)
                    if info.get("type") == "directory" or fs.isdir(sibling):
                        add_tree(sibling, cache / posixpath.basename(sibling))
                    else:
                        remote.append(sibling)
                        locals_.append(str(cache / posixpath.basename(sibling)))
                        sizes.append(info.get("size"))
        else:
            raise ReadError("input does not exist", file=url)
        for target in locals_:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        copy = _Copy(fs, dict(zip(locals_, remote)))
        now = [(key, local) for key, local in zip(remote, locals_) if not lazy or local == str(cache / name)]
        logger.info("fetching %d of %d object(s) from %s", len(now), len(remote), url)
        if now:
            fs.get([k for k, _ in now], [p for _, p in now])
        if lazy:
            fetched_now = {p for _, p in now}
            _lay(copy, {local: size for local, size in zip(locals_, sizes) if local not in fetched_now})
        _COPY_OF[cache] = copy
        return cache / name, cache
    except ReadError:
        shutil.rmtree(cache, ignore_errors=True)
        raise
    except Exception as exc:  # noqa: BLE001 - fsspec/botocore raise many kinds
        shutil.rmtree(cache, ignore_errors=True)
        raise ReadError(f"cannot fetch the input: {exc}", file=url,
                        fix="check the URL, the credentials and --storage-option") from exc


def _lay(copy: _Copy, sizes: dict[str, int | None]) -> None:
    """Lay placeholder files of ``copy`` (local path -> size), fetched when this process opens
    one for reading (:func:`_on_open`)."""
    for local, size in sizes.items():
        Path(local).parent.mkdir(parents=True, exist_ok=True)
        with open(local, "wb") as fh:  # the size without the bytes (a sparse file)
            fh.truncate(int(size or 0))
        copy.pending.add(local)
    _watch(copy)


def _watch(copy: _Copy) -> None:
    global _HOOKED
    with _LOCK:
        for local in copy.pending:
            _PENDING[local] = copy
        if not _HOOKED:
            sys.addaudithook(_on_open)
            _HOOKED = True


def _on_open(event: str, args: tuple[Any, ...]) -> None:
    """Audit hook: a placeholder opened for reading is fetched before the open goes on."""
    if event != "open" or not _PENDING:
        return
    path, mode, flags = args
    if isinstance(path, int):
        return
    if mode is None:  # os.open: its flags say
        if flags & (os.O_WRONLY | os.O_RDWR) == os.O_WRONLY:
            return
    elif "r" not in mode and "+" not in mode:
        return
    text = os.fsdecode(path)
    if not os.path.isabs(text):
        text = os.path.abspath(text)
    if text in _PENDING:
        _materialize([text])


def _materialize(paths: Iterable[str]) -> None:
    """Fetch these placeholders (or removed files) of lazy copies, one batch per copy."""
    with _LOCK:
        by_copy: dict[int, tuple[_Copy, list[str]]] = {}
        for p in paths:
            copy = _PENDING.pop(p, None)
            if copy is None:
                copy = next((c for c in _COPY_OF.values() if p in c.absent), None)
            if copy is not None:
                by_copy.setdefault(id(copy), (copy, []))[1].append(p)
        for copy, locals_ in by_copy.values():
            try:
                for p in locals_:
                    Path(p).parent.mkdir(parents=True, exist_ok=True)
                copy.fs.get([copy.keys[p] for p in locals_], locals_)
            except Exception as exc:  # noqa: BLE001 - fsspec/botocore raise many kinds
                for p in locals_:
                    _PENDING[p] = copy
                raise ReadError(f"cannot fetch the input: {exc}", file=_url(copy.fs, copy.keys[locals_[0]]),
                                fix="check the URL, the credentials and --storage-option") from exc
            copy.pending.difference_update(locals_)
            copy.absent.difference_update(locals_)


def _copy_of(location: str | Path) -> _Copy | None:
    """The copy of the source URL ``location``, or the copy a local path lies in."""
    for (source, _), (_, cache) in _FETCHED.items():
        if source == str(location) or (isinstance(location, Path) and location.is_relative_to(cache)):
            return _COPY_OF.get(cache)
    return None


class Sized(NamedTuple):
    """A file of a remote source that a reader only stats (a KITTI scan's size check), listed
    by ``Shards.files`` with its size from the driver's listing: a worker's copy holds a
    placeholder of ``size`` bytes (:func:`placeholders`), downloaded only if something opens
    it, so that the process that reads the bytes (a writer converting the scan) fetches it once."""

    path: str
    size: int


def placeholders(fs: Any, files: dict[str, tuple[str, int]]) -> None:
    """Lay placeholder files (local path -> (object key in ``fs``, size)), fetched when this
    process opens one for reading, as a lazy copy's (:func:`_on_open`); :func:`forget` them
    before their folder goes."""
    _lay(_Copy(fs, {local: key for local, (key, _) in files.items()}),
         {local: size for local, (_, size) in files.items()})


def forget(folder: Path) -> None:
    """Drop the placeholders laid under ``folder`` (:func:`placeholders`), which is being removed."""
    prefix = str(folder) + os.sep
    with _LOCK:
        for p in [p for p in _PENDING if p.startswith(prefix)]:
            del _PENDING[p]


def complete(url: str | Path) -> None:
    """Fetch whatever the lazy copy of ``url`` (a source URL, or a local path in its copy) still
    lacks, in one batch: a reader reads it now. Nothing happens for other paths."""
    copy = _copy_of(url)
    if copy is not None and (copy.pending or copy.absent):
        missing = sorted(copy.pending | copy.absent)
        logger.info("fetching the %d other object(s) of %s", len(missing), url)
        _materialize(missing)


def drop_pending(url: str) -> None:
    """Remove the placeholders of the lazy copy of ``url``: workers fetch those files themselves,
    and nothing here may read a placeholder's empty bytes (media are then fetched by URL)."""
    copy = _copy_of(url)
    if copy is None:
        return
    with _LOCK:
        for p in copy.pending:
            _PENDING.pop(p, None)
            Path(p).unlink(missing_ok=True)
        copy.absent |= copy.pending
        copy.pending = set()


_FETCHED: dict[tuple[str, str], tuple[Path, Path]] = {}


def fetched(url: str, storage_options: StorageOptions | None = None, *, lazy: bool = False) -> Path:
    """:func:`fetch`, once per process for a URL and options: detection and reading share the
    copy (a lazy one is completed unless ``lazy``). :func:`release` removes it; whatever is
    left is removed when the process exits."""
    key = (url, json.dumps(storage_options or {}, sort_keys=True, default=str))
    if key not in _FETCHED:
        _FETCHED[key] = fetch(url, storage_options, lazy=True)
    if not lazy:
        complete(url)
    return _FETCHED[key][0]


def _parent_url(url: str) -> str:
    """The folder URL ``url`` lies in, ending ``://`` for a bucket root (``s3://b`` -> ``s3://``)."""
    head, sep, rest = url.rstrip("/").partition("://")
    if not sep:
        return url.rstrip("/").rsplit("/", 1)[0]
    return f"{head}://{rest.rsplit('/', 1)[0] if '/' in rest else ''}"


def _slash(url: str) -> str:
    """``url`` as a prefix of the URLs under it (``s3://b`` -> ``s3://b/``; ``s3://`` stays)."""
    return url if url.endswith("/") else url + "/"


def as_url(location: str) -> str:
    """A location inside a fetched copy as the URL it was fetched from (media locations that
    readers resolved into the cache); anything else as it is."""
    for (url, _), (_, cache) in _FETCHED.items():
        root = str(cache) + "/"
        if location.startswith(root):
            return _slash(_parent_url(url)) + location[len(root):]
    return location


def url_of(path: Path) -> str | None:
    """The URL a local folder (or file) of a fetched copy came from, or None; in a worker,
    the copies its driver made (:func:`sources`) count too."""
    text = str(path)
    copies = {str(cache): _parent_url(url) for (url, _), (_, cache) in _FETCHED.items()}
    copies.update(_COPIES)
    for copy, url in copies.items():
        if text == copy:
            return url
        if text.startswith(copy + "/"):
            return join_url(url, text[len(copy) + 1:])
    return None


def cached_file(url: str) -> Path | None:
    """The local copy of a media file of a remote source (a file writers copy), or None.

    The driver finds it in its fetched copy; a worker (which cannot see that copy) fetches
    the one file itself, through fsspec with the source's storage options, when ``url`` lies
    under a source it was told about (:func:`remember_source`) and its key climbs nowhere.
    """
    for (source, _), (_, cache) in _FETCHED.items():
        root = _slash(_parent_url(source))
        if url.startswith(root):
            path = cache / url[len(root):]
            if str(path) in _PENDING:
                _materialize([str(path)])
            if path.is_file():
                return path
    for root, options in _SOURCES.items():
        rel = url[len(_slash(root)):] if root and url.startswith(_slash(root)) else None
        if not rel or any(part in ("", ".", "..") for part in rel.split("/")) or "\\" in rel or "\x00" in rel:
            continue
        path = _media_cache() / root.replace("://", "/") / rel
        if not path.is_file():
            fs, key = filesystem(url, options)
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fs.get_file(key, str(path))
            except FileNotFoundError:
                return None
            except Exception as exc:  # noqa: BLE001 - fsspec/botocore raise many kinds
                raise ReadError(f"cannot fetch the media file: {exc}", file=url,
                                fix="check the URL, the credentials and --storage-option") from exc
        return path
    return None


MAX_MASK_BYTES = 256 * 2**20
"""The most a remote mask PNG may weigh (its pixels are capped separately, before decoding)."""


def options_for(url: str) -> StorageOptions:
    """The storage options of the remote source ``url`` lies under (the longest match), else
    the conversion's (:func:`remember_source`), else none (the environment's credentials)."""
    best = ""
    for root in _SOURCES:
        if root and url.startswith(_slash(root)) and len(root) > len(best):
            best = root
    return dict(_SOURCES.get(best, {}))


def fetch_bytes(url: str, limit: int, *, what: str = "file") -> bytes:
    """The bytes of one remote file, at most ``limit`` of them; a key that climbs (``..``) is
    refused, as :func:`fetch` refuses it.

    Raises:
        ReadError: the key climbs, the file is missing or larger than ``limit``, or the fetch fails.
    """
    path = url.split("://", 1)[-1].split("?", 1)[0]
    if any(part in (".", "..") for part in path.split("/")) or "\x00" in url:
        raise ReadError(f"the {what} URL leads outside its folder ('.' or '..' in it)", file=url)
    fs, key = filesystem(url, options_for(url))
    try:
        with fs.open(key, "rb") as fh:
            data = fh.read(limit + 1)
    except FileNotFoundError:
        raise ReadError(f"{what} does not exist", file=url, fix="upload it, or fix the URL") from None
    except Exception as exc:  # noqa: BLE001 - fsspec/botocore raise many kinds
        raise ReadError(f"cannot fetch the {what}: {exc}", file=url,
                        fix="check the URL, the credentials and --storage-option") from exc
    if len(data) > limit:
        raise ReadError(f"{what} is larger than {limit // 2**20} MiB", file=url)
    return data


def media_copy(url: str, *, what: str = "mask file") -> Path:
    """A local copy of the remote file ``url``: the fetched copy of its source when there is
    one, else fetched now into this process's media cache (:func:`fetch_bytes`' checks)."""
    copy = cached_file(url)
    if copy is not None:
        return copy
    data = fetch_bytes(url, MAX_MASK_BYTES, what=what)
    path = _media_cache() / "urls" / hashlib.sha256(url.encode()).hexdigest() / posixpath.basename(url.split("?")[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


_SOURCES: dict[str, StorageOptions] = {}
"""Remote sources (their parent URL) whose media files this process may fetch, with their options."""
_MEDIA = threading.local()  # each thread's own media folder: a worker thread drops only its own


def remember_source(url: str | None, storage_options: StorageOptions | None = None) -> None:
    """Let this process (a worker) fetch media files lying beside the remote source ``url``;
    ``storage_options`` also become the default for other URLs (:func:`options_for`)."""
    if storage_options:
        _SOURCES[""] = dict(storage_options)
    if url is not None and is_remote(url):
        _SOURCES[_parent_url(url)] = dict(storage_options or {})


_COPIES: dict[str, str] = {}
"""Local copies the driver made (folder -> URL), known to a worker through :func:`sources`."""


def remember_sources(state: dict[str, Any]) -> None:
    """Take the remote sources (URL root -> storage options) and the driver's copies that
    :func:`sources` gave in another process: media under them are fetched here."""
    _SOURCES.update(state.get("roots", {}))
    _COPIES.update(state.get("copies", {}))


def sources() -> dict[str, Any]:
    """The remote sources of this process (fetched or remembered) and its local copies of
    them, to hand to workers (:func:`remember_sources`)."""
    roots = {_parent_url(url): json.loads(options) for url, options in _FETCHED}
    roots.update(_SOURCES)
    copies = {str(cache): _parent_url(url) for (url, _), (_, cache) in _FETCHED.items()}
    copies.update(_COPIES)
    return {"roots": roots, "copies": copies}


def drop_media() -> None:
    """Remove the media files this thread fetched itself (a worker, once its task is done)."""
    folder = getattr(_MEDIA, "folder", None)
    if folder is not None:
        _MEDIA.folder = None
        shutil.rmtree(folder, ignore_errors=True)


def _media_cache() -> Path:
    if getattr(_MEDIA, "folder", None) is None:
        _MEDIA.folder = Path(tempfile.mkdtemp(prefix="annobridge-media."))
    return _MEDIA.folder


def release(url: str) -> None:
    """Remove the local copies of ``url`` made by :func:`fetched`."""
    for key in [k for k in _FETCHED if k[0] == url]:
        cache = _FETCHED.pop(key)[1]
        copy = _COPY_OF.pop(cache, None)
        with _LOCK:
            for p in copy.pending if copy is not None else ():
                _PENDING.pop(p, None)
        shutil.rmtree(cache, ignore_errors=True)


@atexit.register
def _release_all() -> None:
    for url in {k[0] for k in _FETCHED}:
        release(url)
    drop_media()


def exists(url: str, storage_options: StorageOptions | None = None) -> bool:
    fs, path = filesystem(url, storage_options)
    return bool(fs.exists(path.rstrip("/")))


def publish(stage: Path, parent_url: str, name: str, *, overwrite: bool,
            storage_options: StorageOptions | None = None) -> list[str]:
    """Upload every entry of the local folder ``stage`` into ``parent_url`` (see the module doc).

    ``name`` names the staging prefix (``.NAME.<token>.partial``). Returns the URLs of the
    entries written. Raises WriteError when an entry exists and not ``overwrite``, or when
    the upload fails (nothing is left under the destination).
    """
    fs, parent = filesystem(parent_url, storage_options)
    parent = parent.rstrip("/")
    entries = sorted(stage.iterdir())
    if not entries:
        raise WriteError("the writer produced no output", file=parent_url)
    targets = [_join(parent, e.name) for e in entries]
    if not overwrite:
        for entry, target in zip(entries, targets):
            if fs.exists(target):
                raise WriteError("output already exists", file=_url(fs, target),
                                 fix="pass --overwrite to replace it, or choose another path")
    partial = _join(parent, f".{name}.{secrets.token_hex(4)}.partial")
    sources: list[str] = []
    uploads: list[str] = []
    finals: list[str] = []
    for entry in entries:
        files = sorted(p for p in entry.rglob("*") if p.is_file()) if entry.is_dir() else [entry]
        for f in files:
            rel = f.relative_to(stage).as_posix()
            sources.append(str(f))
            uploads.append(_join(partial, rel))
            finals.append(_join(parent, rel))
    try:
        try:
            fs.put(sources, uploads)
        except Exception as exc:  # noqa: BLE001
            raise WriteError(f"cannot upload the output: {exc}", file=_url(fs, partial),
                             fix="check the credentials, the endpoint and --storage-option") from exc
        stale: list[str] = []
        if overwrite:
            keep = set(finals)
            for target in targets:
                if fs.isdir(target):
                    stale.extend(k for k in _tree(fs, target) if k not in keep)
        try:
            fs.copy(uploads, finals)  # server-side copies, batched by async filesystems
        except Exception as exc:  # noqa: BLE001
            if not overwrite:  # nothing was there before: whatever exists now is ours
                _remove_quietly(fs, finals)
            raise WriteError(f"cannot move the output into place: {exc}", file=_url(fs, parent),
                             fix="check the credentials and the free space, then run again") from exc
        _remove_quietly(fs, stale)
    finally:
        try:
            fs.rm(partial, recursive=True)
        except (FileNotFoundError, OSError):
            pass
        except Exception:  # noqa: BLE001 - leave the prefix, say so
            logger.warning("could not remove the staging prefix %s", _url(fs, partial))
    return [_url(fs, t) for t in targets]


def split(url: str, storage_options: StorageOptions | None = None) -> tuple[str, str]:
    """``(parent URL, name)`` of a destination URL; WriteError for a bucket root."""
    fs, path = filesystem(url, storage_options)
    path = path.rstrip("/")
    parent, name = posixpath.dirname(path), posixpath.basename(path)
    if not name or (not parent and protocol(url) not in ("memory", "file")):
        raise WriteError("the destination is a bucket or container root", file=url,
                         fix="give a name inside it, e.g. s3://bucket/out")
    return fs.unstrip_protocol(parent or "/"), name


def remove(urls: list[str], storage_options: StorageOptions | None = None) -> None:
    """Remove what :func:`publish` wrote (after a later step failed); problems are logged."""
    for url in urls:
        fs, path = filesystem(url, storage_options)
        try:
            fs.rm(path, recursive=True)
        except Exception:  # noqa: BLE001
            logger.warning("could not remove %s", url)


def _remove_quietly(fs: Any, keys: list[str]) -> None:
    if not keys:
        return
    try:
        fs.rm(keys)
    except Exception:  # noqa: BLE001
        logger.warning("could not remove %d object(s) of a failed upload", len(keys))


def _url(fs: Any, path: str) -> str:
    """A path inside ``fs`` as a URL (``s3://b/k``); local paths stay plain."""
    url = fs.unstrip_protocol(path)
    return url[len("file://"):] if url.startswith("file://") else url


def join_url(prefix: str, name: str) -> str:
    """``prefix`` + ``/`` + ``name`` for a URL prefix given with or without its trailing slash."""
    if not name:
        return prefix
    return prefix + name if prefix.endswith("://") else f"{prefix.rstrip('/')}/{name}"
