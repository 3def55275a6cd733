"""Label Studio's brush RLE: the ``rle-pack`` bit stream of an RGBA image, decoded and encoded.

Label Studio stores a brush region as ``value.rle``, a list of byte values (0..255) that
pack, most significant bit first (thi.ng ``rle-pack``, as label_studio_converter.brush
reads it):

* 32 bits: ``num``, the number of values (``original_width * original_height * 4``: RGBA,
  row-major, top row first);
* 5 bits: word size - 1 (Label Studio writes 8-bit words);
* 4 x 4 bits: the four run-length field sizes - 1 (Label Studio writes ``[3, 4, 8, 16]``);
* then records until ``num`` values are out: 1 bit ``repeat``, 2 bits choosing a field
  size, a field of that size holding ``count - 1``; a repeat record is followed by one
  word repeated ``count`` times, a literal record by ``count`` words;
* zero bits pad the last byte.

A pixel is inside the region when its alpha byte is non-zero (label_studio_converter reads
the alpha channel as the mask). :func:`encode_mask` writes inside pixels as
``255, 255, 255, 255`` and outside ones as zeros, as label_studio_converter's
``image2rle`` does, with the same field sizes.
"""

from __future__ import annotations

import numpy as np

RLE_SIZES = (3, 4, 8, 16)
"""Run-length field sizes Label Studio's writers use."""


class BrushError(ValueError):
    """The RLE is not a well-formed rle-pack stream (the message says what is wrong)."""


class _Bits:
    """Reads unsigned big-endian fields from a bit array."""

    def __init__(self, data: bytes) -> None:
        self.bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
        self.pos = 0

    def read(self, n: int) -> int:
        end = self.pos + n
        if end > self.bits.size:
            raise BrushError(f"the stream ends after {self.bits.size} bits, expected at least {end}")
        value = 0
        for bit in self.bits[self.pos:end].tolist():
            value = (value << 1) | bit
        self.pos = end
        return value


def decode_rgba(rle: list[int]) -> np.ndarray:
    """The flat array of values an rle-pack stream holds (RGBA bytes for a brush).

    Raises:
        BrushError: a byte outside 0..255, a truncated stream, or a run past ``num``.
    """
    try:
        data = bytes(rle)
    except (TypeError, ValueError) as exc:
        raise BrushError("rle must be a list of byte values 0..255") from exc
    bits = _Bits(data)
    num = bits.read(32)
    word = bits.read(5) + 1
    sizes = [bits.read(4) + 1 for _ in range(4)]
    out = np.zeros(num, dtype=np.uint8 if word <= 8 else np.uint32)
    i = 0
    while i < num:
        repeat = bits.read(1)
        j = i + 1 + bits.read(sizes[bits.read(2)])
        if j > num:
            raise BrushError(f"a run ends at value {j}, past the {num} values the header declares")
        if repeat:
            out[i:j] = bits.read(word)
        else:
            for k in range(i, j):
                out[k] = bits.read(word)
        i = j
    return out


def decode_mask(rle: list[int], width: int, height: int) -> np.ndarray:
    """A ``(height, width)`` uint8 0/1 mask: 1 where the RGBA alpha byte is non-zero.

    Raises:
        BrushError: the stream is malformed or does not hold ``width * height * 4`` values.
    """
    values = decode_rgba(rle)
    if values.size != width * height * 4:
        raise BrushError(f"the RLE holds {values.size} values, expected width x height x 4 = "
                         f"{width} x {height} x 4 = {width * height * 4} (RGBA)")
    return (values.reshape(height, width, 4)[:, :, 3] != 0).astype(np.uint8)


def encode_values(values: np.ndarray, sizes: tuple[int, int, int, int] = RLE_SIZES) -> list[int]:
    """rle-pack ``values`` (uint8) with 8-bit words: a repeat record for every run of equal
    values (split at the largest field), a one-value literal record for a value on its own."""
    values = np.asarray(values, dtype=np.uint8).reshape(-1)
    parts = [f"{values.size:032b}", f"{7:05b}", "".join(f"{s - 1:04b}" for s in sizes)]
    if values.size:
        change = np.flatnonzero(values[1:] != values[:-1]) + 1
        starts = np.concatenate(([0], change))
        lengths = np.diff(np.concatenate((starts, [values.size])))
        largest = 1 << sizes[3]
        for length, value in zip(lengths.tolist(), values[starts].tolist()):
            word = f"{value:08b}"
            if length == 1:
                parts.append(f"000{0:0{sizes[0]}b}{word}")
                continue
            while length > 0:
                run = min(length, largest)
                field = next(k for k, s in enumerate(sizes) if run <= 1 << s)
                parts.append(f"1{field:02b}{run - 1:0{sizes[field]}b}{word}")
                length -= run
    bits = "".join(parts)
    bits += "0" * (-len(bits) % 8)
    packed = np.packbits(np.frombuffer(bits.encode("ascii"), dtype=np.uint8) - ord("0"))
    return packed.tolist()


def encode_mask(mask: np.ndarray) -> list[int]:
    """Label Studio's RLE of a 2D mask: inside (non-zero) pixels as RGBA ``255, 255, 255, 255``."""
    inside = (np.asarray(mask) != 0).astype(np.uint8) * 255
    return encode_values(np.repeat(inside.reshape(-1), 4))
