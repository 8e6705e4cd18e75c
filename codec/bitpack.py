"""Vectorized packing of unsigned integer fields of varying width, MSB first."""

from __future__ import annotations

import numpy as np
from bitarray import bitarray

from codec.errors import BitstreamError

MAX_FIELD_BITS = 32  # the widest field unpack_fields reads


def pack_fields(values: np.ndarray, widths: np.ndarray) -> bitarray:
    """Concatenate each value written in its width in bits, most significant bit first."""
    values = np.asarray(values, dtype=np.int64)
    widths = np.asarray(widths, dtype=np.int64)
    total = int(widths.sum())
    if total == 0:
        return bitarray(endian="big")

    span = int(widths.max())
    shifts = np.arange(span - 1, -1, -1, dtype=np.int64)
    bits = (values[:, None] >> shifts) & 1
    present = np.arange(span)[None, :] >= (span - widths)[:, None]

    packed = bitarray(endian="big")
    packed.frombytes(np.packbits(bits[present].astype(np.uint8)).tobytes())
    return packed[:total]


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
    return np.where(widths > 0, values, 0).astype(np.int64), end
