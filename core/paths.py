"""Paths that come from data: keep them inside their root.

A converter runs on files from strangers. Every path read from a file (an image
``file_name``, a mask or point-cloud path, an id used as a file name, a task name) is
hostile until checked: ``../../etc/passwd`` or ``/etc/passwd`` must never make annobridge
read or write outside the source, the named roots and the destination. This module is the
one place that check lives; every plugin calls it before it opens or writes such a path.

* :func:`contained` resolves a location against its root and refuses anything that lands
  outside it (absolute paths, ``..`` that climbs out, a drive letter, a symlink that points
  out, NUL bytes); :func:`contained_text` is the same check on plain strings.
* :func:`safe_name` turns an id into one file-name component, reversibly
  (:func:`unsafe_name` inverts it), so ids never create folders or climb out.
* :func:`write_new_file` writes one output file of a writer with the fewest system calls
  (writers make tens of thousands of label files).
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path, PurePosixPath, PureWindowsPath
from urllib.parse import quote, unquote

from annobridge.core.errors import AnnobridgeError, ReadError
from annobridge.core.storage import cached_file, join_url, url_of

_DRIVE = re.compile(r"^[A-Za-z]:")


def path_problem(location: str) -> str | None:
    """Why ``location`` may not be used as a path relative to a root, or None when it may.

    Checks the text only (no file system): absolute POSIX or Windows paths, drive letters,
    UNC paths, NUL bytes, and ``..`` components that climb above the root.
    """
    if (location and location[0] != "/" and ".." not in location and "\\" not in location
            and ":" not in location and "\x00" not in location):
        return None  # the common case, decided without pathlib (a writer asks once per image)
    if not location:
        return "the path is empty"
    if "\x00" in location:
        return "the path contains a NUL byte"
    if location.startswith(("/", "\\")) or _DRIVE.match(location) or PureWindowsPath(location).is_absolute():
        return "the path is absolute"
    depth = 0
    for part in PurePosixPath(location.replace("\\", "/")).parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                return "the path climbs out of its folder with '..'"
        elif part not in (".", ""):
            depth += 1
    return None


def contained(
    root: str | os.PathLike[str],
    location: str,
    *,
    what: str,
    file: str | os.PathLike[str] | None = None,
    where: str | None = None,
    item: str | None = None,
    error: type[AnnobridgeError] = ReadError,
    made_here: bool = False,
) -> Path:
    """``root / location``, checked to stay inside ``root``.

    Args:
        root: the folder the location is relative to (the source folder, an explicit images
            root or ``input`` option, or the writer's staging destination).
        location: the path as it stands in the data.
        what: the field it came from, for the message (``"file_name"``, ``"mask_url"``).
        file, where, item: the place of the record, passed to the error.
        error: the error class to raise (``ReadError`` for readers, ``WriteError`` for writers).
        made_here: ``root`` is a folder this run made and only it fills (a writer's staging
            folder): it holds no symbolic link the writer did not make, so the text check
            alone decides and no path is resolved (resolving costs a ``stat`` per component
            of both paths, on every one of tens of thousands of label files).

    Returns:
        The joined path (not resolved, so symlinks inside the root keep their names).

    Raises:
        ``error`` naming the field, the item and the reason when the location is absolute,
        climbs out with ``..``, or resolves (through symlinks) to a place outside ``root``.
    """
    return Path(contained_text(os.fspath(root), location, what=what, file=file, where=where, item=item,
                               error=error, made_here=made_here))


def contained_text(
    root: str | os.PathLike[str],
    location: str,
    *,
    what: str,
    file: str | os.PathLike[str] | None = None,
    where: str | None = None,
    item: str | None = None,
    error: type[AnnobridgeError] = ReadError,
    made_here: bool = False,
) -> str:
    """:func:`contained` as a plain string: ``root`` joined with ``location`` as ``os.path.join``
    does (not normalised). For a writer's per-item hot path, where building a ``Path`` costs
    more than the check (a label file per image)."""
    problem = path_problem(location)
    path = os.path.join(root, location.replace("\\", "/")) if problem is None else None
    if path is not None and not made_here and not _inside(root, path):
        problem = "the path leads outside its folder through a symbolic link"
    if problem is not None:
        raise error(
            f"{what} {location!r} is not inside {str(Path(root))!r}: {problem}",
            file=file, where=where, item=item,
            fix="paths in annotation files must be relative to their root and stay inside it",
        )
    assert path is not None
    return path


_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def write_new_file(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` as UTF-8 to ``path``, making its folder only when the open finds it missing.

    A writer's label files: ``os.open`` + ``os.write`` (three system calls, where ``open()``
    adds a ``fstat``, an ``ioctl`` and two ``lseek``), and no ``mkdir`` per file (50,000 frames
    paid 50,000 ``mkdir`` calls). Line ends are written as given (``\\n``).
    """
    data = text.encode("utf-8")
    try:
        fd = os.open(path, _NEW_FILE, 0o666)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, _NEW_FILE, 0o666)
    try:
        done = os.write(fd, data)  # all of it, but for a full disk or a signal
        if done < len(data):
            view = memoryview(data)[done:]
            while view:
                view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def is_contained(root: str | os.PathLike[str], location: str) -> bool:
    """Whether :func:`contained` accepts ``location`` under ``root`` (for reported skips)."""
    try:
        contained(root, location, what="path")
    except AnnobridgeError:
        return False
    return True


def source_root(source: str | os.PathLike[str] | None) -> Path | None:
    """The folder a dataset's media must lie in: ``source`` when it is a folder, else its folder.

    None for items built in memory (no source): their paths are the caller's own.
    """
    if source is None:
        return None
    path = Path(source)
    return path if path.is_dir() else path.parent


def media_file(location: str | None, root: Path | None) -> tuple[Path | None, str]:
    """The local file a writer may read to copy ``location``, or None and why not.

    A writer copying media (KITTI ``media=copy``, Nucleus point clouds) or drawing them
    (``annobridge render``) reads only files inside ``root`` (see :func:`source_root`): a
    relative location is tried under ``root`` and then as given (readers such as KITTI hand
    on paths they joined to their source already); a file that is reached outside ``root``
    (an absolute path elsewhere, ``..``, a symbolic link out) is not read, nor is a URL, and
    the caller reports it as a skip with the reason returned here (``"not a local file"``,
    ``"missing"``, or one starting ``"outside the source folder"``). The URL of a file in a
    fetched remote source (core.storage) is read from its local copy.
    """
    if location and "://" in location:  # a remote source's file: its key was checked on fetching
        copy = cached_file(location)
        return (copy, "") if copy is not None else (None, "not a local file")
    if not location:
        return None, "not a local file"
    if "\x00" in location:
        return None, "the path contains a NUL byte"
    # plain strings: this runs once per item of a conversion that copies media
    candidates: tuple[str, ...] = (location,)
    if root is not None and path_problem(location) is None:
        candidates = (os.path.join(root, location), location)
    for candidate in candidates:
        if not os.path.isfile(candidate):
            continue
        path = Path(candidate)
        if root is not None and not _inside(root, path):
            return None, f"outside the source folder {str(root)!r}"
        return path, ""
    base = url_of(root) if root is not None and path_problem(location) is None else None
    if base is not None:  # beside a remote source, not in the local copy (or in another process's)
        copy = cached_file(join_url(base, posixpath.normpath(location)))
        if copy is not None:
            return copy, ""
    return None, "missing"


def _inside(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> bool:
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


_SAFE = "-_.,+=@()[]{}~!$&' "
_UNCHANGED = re.compile(r"[A-Za-z0-9_.\-~,+=@()\[\]{}!$&' ]+")
"""Names ``quote`` leaves as they are (ASCII letters, digits and the safe marks)."""


def safe_name(name: str) -> str:
    """One file-name component for ``name`` (an id), reversibly.

    Path separators, ``%``, ``:``, control characters and other unsafe characters are
    percent-encoded (``a/b`` → ``a%2Fb``); a name that is empty or made only of dots, or
    starts with a dot, gets its dots encoded too, so no id can be ``.``, ``..`` or a hidden
    file. Ordinary ids (``img_001``, ``000123``) come out unchanged. :func:`unsafe_name`
    gives the id back.
    """
    if _UNCHANGED.fullmatch(name) and not name.startswith("."):  # most ids: nothing to encode
        return name
    out = quote(name, safe=_SAFE)
    if out.startswith("."):
        dots = len(out) - len(out.lstrip("."))
        out = "%2E" * dots + out[dots:]
    if not out:
        out = "%00empty"
    return out


def unsafe_name(component: str) -> str:
    """The id :func:`safe_name` made ``component`` from."""
    if component == "%00empty":
        return ""
    return unquote(component)
