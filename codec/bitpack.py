"""Vectorized packing of unsigned integer fields of varying width, MSB first."""

from __future__ import annotations

import numpy as np
from bitarray import bitarray

from codec.errors import BitstreamError

MAX_FIELD_BITS = 32


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


def to_bit_vector(bits: bitarray) -> np.ndarray:
    """Return the bits of ``bits`` as a uint8 numpy array of zeros and ones."""
    return np.unpackbits(np.frombuffer(bits.tobytes(), dtype=np.uint8))[: len(bits)]


def unpack_fields(bit_vector: np.ndarray, start: int, widths: np.ndarray, what: str) -> tuple[np.ndarray, int]:
    """Read fields of the given widths from ``bit_vector`` at ``start``.

    Returns the int64 values and the position after the last field. Raises
    ``BitstreamError`` naming ``what`` when the bits run out.
    """
    widths = np.asarray(widths, dtype=np.int64)
    end = start + int(widths.sum())
    if end > bit_vector.size:
        raise BitstreamError(f"{what} is truncated: it needs {end - start} bits, {bit_vector.size - start} are left")
    if widths.size == 0 or end == start:
        return np.zeros(widths.size, dtype=np.int64), end

    span = int(widths.max())
    column = np.arange(span, dtype=np.int64)[None, :]
    starts = start + np.cumsum(widths) - widths
    present = column < widths[:, None]
    index = np.where(present, starts[:, None] + column, 0)
    weights = np.where(present, np.left_shift(1, np.maximum(widths[:, None] - 1 - column, 0)), 0)
    values = (bit_vector[index].astype(np.int64) * weights).sum(axis=1)
    return values, end
