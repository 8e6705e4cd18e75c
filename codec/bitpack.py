"""Vectorized packing of unsigned integer fields of varying width, MSB first.

Short runs of fields go through one Python integer, because that costs less
than the fixed overhead of a dozen numpy calls. Long runs go through numpy on
64-bit words. Both paths give the same bits.
"""

from __future__ import annotations

import numpy as np
from bitarray import bitarray
from bitarray.util import ba2int, int2ba

from codec.errors import BitstreamError

MAX_FIELD_BITS = 32  # the widest field unpack_fields reads
SHORT_RUN = 48  # up to this many fields, pack and unpack with one Python integer


def _pack_short(values: list[int], widths: list[int], total: int) -> bitarray:
    word = 0
    for value, width in zip(values, widths):
        word = (word << width) | (value & ((1 << width) - 1))
    return int2ba(word, length=total, endian="big")


def _pack_long(values: np.ndarray, widths: np.ndarray, total: int) -> bitarray:
    # Field i occupies bits [start, start + width) of the stream. It falls in
    # 64-bit word start // 64 and, when it crosses that word's end, spills
    # its low bits into the next word. Fields of one word never overlap, so
    # OR-ing the contributions of each word assembles it.
    values = values.astype(np.uint64) & ((np.uint64(1) << widths.astype(np.uint64)) - np.uint64(1))
    starts = np.cumsum(widths) - widths
    word = starts >> 6
    end = (starts & 63) + widths
    spill = np.maximum(end - 64, 0)
    high = (values >> spill.astype(np.uint64)) << np.maximum(64 - end, 0).astype(np.uint64)

    words = np.zeros((total + 63) // 64 + 1, dtype=np.uint64)
    first = np.flatnonzero(np.diff(word, prepend=-1))
    words[word[first]] = np.bitwise_or.reduceat(high, first)
    crossing = np.flatnonzero(spill)
    if crossing.size:
        words[word[crossing] + 1] |= values[crossing] << (64 - spill[crossing]).astype(np.uint64)

    packed = bitarray(endian="big")
    packed.frombytes(words.astype(">u8").tobytes())
    del packed[total:]
    return packed


def pack_fields(values: np.ndarray, widths: np.ndarray) -> bitarray:
    """Concatenate each value written in its width (0 to 32 bits), most significant bit first.

    Bits of a value above its width are dropped.
    """
    values = np.asarray(values, dtype=np.int64)
    widths = np.asarray(widths, dtype=np.int64)
    total = int(widths.sum())
    if total == 0:
        return bitarray(endian="big")
    if values.size <= SHORT_RUN:
        return _pack_short(values.tolist(), widths.tolist(), total)
    return _pack_long(values, widths, total)


def _unpack_short(bits: bitarray, start: int, end: int, widths: list[int]) -> np.ndarray:
    word = ba2int(bits[start:end]) if end > start else 0
    fields, shift = [], end - start
    for width in widths:
        shift -= width
        fields.append((word >> shift) & ((1 << width) - 1))
    return np.array(fields, dtype=np.int64)


def _unpack_long(bits: bitarray, start: int, widths: np.ndarray) -> np.ndarray:
    # Each field lies within the 8 bytes that start at the byte holding its
    # first bit, because a field has at most 32 bits and starts at most 7
    # bits into that byte. Read those bytes as one big-endian 64-bit word,
    # drop the bits before the field, then keep its top ``width`` bits.
    data = np.frombuffer(bits.tobytes() + bytes(8), dtype=np.uint8)
    starts = start + np.cumsum(widths) - widths
    windows = data[(starts >> 3)[:, None] + np.arange(8)]
    words = windows.view(">u8").reshape(-1).astype(np.uint64)
    aligned = words << (starts & 7).astype(np.uint64)
    values = aligned >> (64 - np.maximum(widths, 1)).astype(np.uint64)
    return np.where(widths > 0, values, 0).astype(np.int64)


def unpack_fields(bits: bitarray, start: int, widths: np.ndarray, what: str) -> tuple[np.ndarray, int]:
    """Read fields of the given widths (0 to 32 bits each) from ``bits`` at ``start``.

    Returns the int64 values and the position after the last field. Raises
    ``BitstreamError`` naming ``what`` when the bits run out.
    """
    widths = np.asarray(widths, dtype=np.int64)
    end = start + int(widths.sum())
    if end > len(bits):
        raise BitstreamError(f"{what} is truncated: it needs {end - start} bits, {len(bits) - start} are left")
    if widths.size == 0:
        return np.zeros(0, dtype=np.int64), end
    if widths.size <= SHORT_RUN:
        return _unpack_short(bits, start, end, widths.tolist()), end
    return _unpack_long(bits, start, widths), end
