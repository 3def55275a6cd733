"""Limits on hostile input: JSON numbers and nesting, image sizes, and the errors they raise.

A converter reads files from strangers. Whatever the file holds, a reader raises a
:class:`~annobridge.core.errors.ReadError` naming the file and the place, never a raw
traceback, and never builds a value the rest of the pipeline cannot trust:

* **JSON numbers** must be finite: ``NaN``, ``Infinity`` and numbers that overflow a double
  (``1e400``) are refused with their line and column. An integer too long for a double
  (over 308 digits) may have at most :data:`MAX_INT_DIGITS` digits, so a 5,000-digit one is
  refused before Python spends quadratic time converting it. (orjson reads integers beyond
  64 bits but within a double's range as floats, as annobridge always has.)
* **JSON nesting** is limited to :data:`MAX_JSON_DEPTH` levels (orjson's limit; the
  standard library would hit Python's recursion limit).
* **Images and masks**: the header is read first; an image declaring more pixels than
  :func:`max_pixels` (default :data:`DEFAULT_MAX_PIXELS`, set ``ANNOBRIDGE_MAX_PIXELS`` to
  change it) or more than the item's own ``width x height`` is refused before any pixel is
  decoded. Broken chunks, truncated files and Pillow's decompression-bomb check all become
  ReadErrors.
"""

from __future__ import annotations

import functools
import gc
import json
import math
import os
import re
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec
import orjson

from annobridge.core.errors import AnnobridgeError, ReadError

MAX_INT_DIGITS = 100
"""Digits an integer may have where annobridge parses it as an integer (JSON past orjson, KITTI
rows, metadata CSV cells)."""

MAX_JSON_DEPTH = 1024
"""Levels of arrays and objects a JSON document may nest."""

DEFAULT_MAX_PIXELS = 100_000_000
"""Pixels an image or mask header may declare (10000 x 10000) unless ``ANNOBRIDGE_MAX_PIXELS``
says otherwise."""


def max_pixels() -> int:
    """The pixel cap: ``ANNOBRIDGE_MAX_PIXELS`` when set to a positive integer, else the default."""
    raw = os.environ.get("ANNOBRIDGE_MAX_PIXELS", "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    return DEFAULT_MAX_PIXELS


# --------------------------------------------------------------------------- JSON


class _Refused(json.JSONDecodeError):
    """A number the decoder hooks refuse; a JSONDecodeError so lenient callers treat it alike."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem, "", 0)
        self.problem = problem


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not a number JSON allows")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"number {text[:40]} is out of range for a double")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refused(f"an integer of {len(text.lstrip('-'))} digits is longer than "
                       f"{MAX_INT_DIGITS} digits")
    return int(text)


def json_decoder() -> json.JSONDecoder:
    """A standard-library decoder that refuses NaN, Infinity, overflowing floats and huge ints
    (raising :class:`json.JSONDecodeError` subclasses, so ``raw_decode`` callers catch them)."""
    return json.JSONDecoder(parse_constant=_constant, parse_float=_float, parse_int=_int)


_DECODER = json_decoder()
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"0" * 9)
_RUN_19 = b"0" * 19


def _has_long_integer(raw: bytes) -> bool:
    """Whether a number token has 19 digits or more before any ``.``/exponent: msgspec reads
    those as Python ints where orjson (and annobridge) read integers beyond 64 bits as floats,
    so such documents skip msgspec. Digit runs inside strings (RLE counts, file names) follow
    a quote, a letter or another character no number follows, and are passed over. The scan
    runs in C (translate, find): a regex over a 188 MB file took longer than parsing it. It
    goes chunk by chunk so that it never holds a second copy of a large document."""
    for offset in range(0, len(raw), _SCAN_CHUNK):
        zeros = raw[offset:offset + _SCAN_CHUNK + 18].translate(_DIGITS_TO_ZERO)
        pos = zeros.find(_RUN_19)
        while pos != -1 and pos < _SCAN_CHUNK:  # a run starting later is the next chunk's
            at = offset + pos
            start = at - 1 if at and raw[at - 1] == 0x2D else at  # a minus sign
            if start == 0 or raw[start - 1] in b"[,: \t\r\n":
                return True
            pos = zeros.find(_RUN_19, pos + 19)
    return False


_SCAN_CHUNK = 1 << 23
_ORJSON_PLACE = re.compile(r"line (\d+) column (\d+)")


def load_json(raw: bytes | str, *, file: str | os.PathLike[str] | None = None,
              where: str | None = None, item: str | None = None) -> Any:
    """Parse JSON text or bytes under the limits above.

    msgspec parses bytes first (strict, and lean: no intermediate document), unless a number
    has 19 digits or more; orjson parses what msgspec refuses or skips, and what orjson refuses
    is parsed again by the standard library with checking hooks, which accepts integers
    beyond 64 bits and names the problem.

    Args:
        raw: the document (bytes must be UTF-8).
        file, where, item: the place, for the error (``where`` is a line for JSON lines;
            the line and column inside the document are added).

    Raises:
        ReadError: not UTF-8, not JSON, a non-finite or overflowing number, an integer longer
            than :data:`MAX_INT_DIGITS` digits, or nesting deeper than :data:`MAX_JSON_DEPTH`.
    """
    enabled = gc.isenabled()
    gc.disable()  # a parse builds only acyclic containers: collections during it find nothing
    try:  # to free and walk the growing tree again and again (three quarters of a 224 MB parse)
        return _load_json(raw, file=file, where=where, item=item)
    finally:
        if enabled:
            gc.enable()


def _load_json(raw: bytes | str, *, file: str | os.PathLike[str] | None, where: str | None,
               item: str | None) -> Any:
    if isinstance(raw, bytes) and not _has_long_integer(raw):
        # msgspec builds Python objects straight from the bytes; orjson builds a yyjson
        # document first, which on a 188 MB COCO file raised the parse's peak by half again.
        # Whatever msgspec refuses goes through orjson below, which names the problem.
        try:
            return msgspec.json.decode(raw)
        except (msgspec.DecodeError, RecursionError):
            pass
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        first = exc
    m = _ORJSON_PLACE.search(str(first))
    place = f"line {m.group(1)}, column {m.group(2)}" if m else None
    number_where = where if where is not None or not m else f"line {m.group(1)}"
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise ReadError(f"not UTF-8 text: {exc.reason} at byte {exc.start}", file=file, where=where,
                        item=item, fix="save the file as UTF-8") from exc
    if "depth limit" in str(first):
        raise ReadError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels ({place})", file=file,
                        where=where, item=item) from first
    try:
        obj, end = _DECODER.raw_decode(text, len(text) - len(text.lstrip()))
        if text[end:].strip():
            raise json.JSONDecodeError("extra data after the JSON value", text, end)
        return obj
    except _Refused as exc:
        problem = f"{exc.problem} ({place})" if place else exc.problem
        raise ReadError(problem, file=file, where=number_where, item=item,
                        fix="numbers must be finite (write null for a missing value)") from exc
    except json.JSONDecodeError as exc:
        raise ReadError(f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", file=file,
                        where=where or f"line {exc.lineno}", item=item,
                        fix="the file may be truncated or not JSON; re-export it") from exc
    except RecursionError as exc:
        raise ReadError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels", file=file, where=where,
                        item=item) from exc


_THAW: bool | None = None
"""Whether :func:`thaw_parsed` may unfreeze: nothing was frozen before the first
:func:`freeze_parsed` (None: no parse is frozen now)."""


def freeze_parsed() -> None:
    """Put what is alive now, a large parse among it, out of the cyclic collector's sight
    (``gc.freeze``): its containers die by reference counting, and every full collection
    while items are built would walk them all again. :func:`thaw_parsed` undoes it."""
    global _THAW
    if _THAW is None:
        _THAW = gc.get_freeze_count() == 0
    gc.freeze()


def thaw_parsed() -> None:
    """Undo :func:`freeze_parsed`: ``gc.unfreeze`` has no partial form, so it runs only when
    nothing was frozen before, never thawing what the program calling annobridge froze (a
    server that freezes before forking) or the CLI's :func:`~annobridge.core.formats.steady_heap`.
    Otherwise the parse stays frozen: reference counting still frees it (it holds no cycles)."""
    global _THAW
    if _THAW:
        gc.unfreeze()
    _THAW = None


def load_json_lazily(raw: bytes, *lazy: str) -> dict[str, Any] | None:
    """The top-level object of ``raw``, parsed except for the lists under the ``lazy`` keys:
    each holds its elements unparsed (``msgspec.Raw`` slices of ``raw``), for
    :func:`load_json_element` to parse one at a time.

    A reader that converts the elements one by one then never holds the whole parsed tree:
    on a 224 MB COCO file, 0.45 GB at the peak instead of 1.35 GB, and faster too (each
    element's objects are freed while still in the CPU cache). The whole document is checked
    here for syntax and nesting (msgspec splits it); the members, and later each element,
    are parsed by orjson, whose numbers are :func:`load_json`'s (integers beyond 64 bits
    become floats, non-finite ones are refused), so no long-integer scan is needed.

    Returns:
        The members in document order, or None when the document is not an object with a
        list under every ``lazy`` key, or needs :func:`load_json`'s careful path (a syntax error, a
        bad number outside the lazy list): call :func:`load_json` then.
    """
    enabled = gc.isenabled()
    gc.disable()  # as in load_json: the parsed members are acyclic
    try:
        lists = msgspec.json.decode(raw, type=_lazy_lists(lazy))  # the one pass over the big lists
        if any(getattr(lists, key) is None for key in lazy):
            return None
        top = _members(raw, lists, lazy) if type(raw) is bytes else None
        if top is None:
            top = msgspec.json.decode(raw, type=dict[str, msgspec.Raw])
        return {key: (getattr(lists, key) if key in lazy else orjson.loads(memoryview(value)))
                for key, value in top.items()}
    except (msgspec.DecodeError, orjson.JSONDecodeError, RecursionError):  # ValidationError included
        return None
    finally:
        if enabled:
            gc.enable()


@functools.lru_cache(maxsize=8)
def _lazy_lists(lazy: tuple[str, ...]) -> type[msgspec.Struct]:
    """The top-level object's ``lazy`` lists, split into their elements (other members skipped)."""
    return msgspec.defstruct("_LazyLists", [(key, list[msgspec.Raw] | None, None) for key in lazy])


def _members(raw: bytes, lists: Any, lazy: tuple[str, ...]) -> dict[str, msgspec.Raw] | None:
    """The top-level members of ``raw``, unparsed, in document order, without scanning the
    ``lazy`` lists again (224 MB of COCO: 0.19 s instead of 0.36 s): they are cut out of the
    document (their elements are slices of ``raw``, whose addresses give the span) before
    the members are split. None when the elements are not slices of ``raw``."""
    import numpy as np

    def at(buffer: Any) -> int:
        return int(np.frombuffer(buffer, dtype=np.uint8).ctypes.data)

    base = at(raw)
    spans = sorted((at(v[0]) - base, at(v[-1]) - base + len(memoryview(v[-1])), key)
                   for key in lazy if (v := getattr(lists, key)))
    if any(not 0 <= start < stop <= len(raw) for start, stop, _ in spans):
        return None
    pieces, cuts, end, kept = [], [], 0, 0
    for start, stop, key in spans:
        pieces.append(raw[end:start])
        kept += start - end
        cuts.append((key, kept))  # where the list's elements were, in the shortened document
        end = stop
    short = b"".join([*pieces, raw[end:]]) if spans else raw
    top = msgspec.json.decode(short, type=dict[str, msgspec.Raw])
    for key, cut in cuts:  # the member kept under the key must be the list cut out, not another one
        value = top[key]
        first = at(value) - at(short)
        if not first < cut < first + len(memoryview(value)):
            raise msgspec.DecodeError(f"the member {key!r} is given twice")
    return top


def load_json_element(element: Any, raw: bytes, *, file: str | os.PathLike[str] | None = None,
                      where: str | None = None) -> Any:
    """Parse one element kept by :func:`load_json_lazily` under the limits of :func:`load_json`.

    Args:
        element: the ``msgspec.Raw`` element.
        raw: the whole document it was cut from: a refused element is reported as
            :func:`load_json` reports the whole document (line and column in the file).
        where: the element's JSON pointer, in case the whole document parses after all.

    Raises:
        ReadError: as :func:`load_json`.
    """
    try:
        return orjson.loads(memoryview(element))
    except orjson.JSONDecodeError:
        load_json(raw, file=file)  # raises, naming the line and column in the file
        return load_json(bytes(element), file=file, where=where)


# --------------------------------------------------------------------------- images


def _image_errors() -> tuple[type[BaseException], ...]:
    from PIL import Image

    return (OSError, SyntaxError, ValueError, EOFError, zlib.error, Image.DecompressionBombError)


def check_pixels(size: tuple[int, int], *, expected: tuple[int | None, int | None] | None = None,
                 what: str = "image", file: str | os.PathLike[str] | None = None,
                 item: str | None = None) -> None:
    """Refuse an image whose header declares too many pixels (before decoding it).

    Args:
        size: ``(width, height)`` from the header.
        expected: the item's ``(width, height)``; the image may not hold more pixels than that.

    Raises:
        ReadError: over :func:`max_pixels`, or over ``expected``'s area.
    """
    w, h = size
    cap = max_pixels()
    if w * h > cap:
        raise ReadError(f"{what} header declares {w}x{h} = {w * h} pixels, more than the limit of {cap}",
                        file=file, item=item,
                        fix="set ANNOBRIDGE_MAX_PIXELS to a larger number if the image is genuine")
    if expected is not None and expected[0] and expected[1] and w * h > expected[0] * expected[1]:
        raise ReadError(f"{what} header declares {w}x{h} pixels, more than its item's "
                        f"{expected[0]}x{expected[1]}", file=file, item=item,
                        fix="the mask must have the size of its image")


@contextmanager
def open_image(path: Any, *, what: str = "image", file: str | os.PathLike[str] | None = None,
               item: str | None = None,
               expected: tuple[int | None, int | None] | None = None) -> Iterator[Any]:
    """``PIL.Image.open(path)`` with the header checked by :func:`check_pixels` first; any
    Pillow failure inside the block (broken chunk, truncated data, decompression bomb) becomes
    a ReadError naming ``file`` (default ``path``) and ``item``."""
    from PIL import Image

    name = file if file is not None else (path if isinstance(path, (str, os.PathLike)) else None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
        with img:
            check_pixels(img.size, expected=expected, what=what, file=name, item=item)
            yield img
    except AnnobridgeError:
        raise
    except FileNotFoundError as exc:
        raise ReadError(f"{what} does not exist", file=name, item=item,
                        fix="put the file where the annotations say, or fix its path") from exc
    except _image_errors() as exc:
        raise ReadError(f"{what} is not a readable image: {type(exc).__name__}: {exc}", file=name,
                        item=item) from exc
