"""Packing of unsigned integer fields of varying width, MSB first, between bitarrays and numpy.

The bit loops run compiled in ``codec.kernels``.
"""

from __future__ import annotations

import numpy as np
from bitarray import bitarray

from codec.errors import BitstreamError
from codec.kernels import pack_bits, unpack_bits

MAX_FIELD_BITS = 32  # the widest field unpack_fields reads


def pack_fields(values: np.ndarray, widths: np.ndarray) -> bitarray:
    """Concatenate each value written in its width (0 to 32 bits), most significant bit first.

    Bits of a value above its width are dropped.
    """
    widths = np.ascontiguousarray(widths, dtype=np.int64)
    packed = bitarray(endian="big")
    packed.frombytes(pack_bits(np.ascontiguousarray(values, dtype=np.int64), widths).tobytes())
    del packed[int(widths.sum()) :]
    return packed


def unpack_fields(bits: bitarray, start: int, widths: np.ndarray, what: str) -> tuple[np.ndarray, int]:
    """Read fields of the given widths (0 to 32 bits each) from ``bits`` at ``start``.

    Returns the int64 values and the position after the last field. Raises
    ``BitstreamError`` naming ``what`` when the bits run out.
    """
    widths = np.ascontiguousarray(widths, dtype=np.int64)
    end = start + int(widths.sum())
    if end > len(bits):
        raise BitstreamError(f"{what} is truncated: it needs {end - start} bits, {len(bits) - start} are left")
    if widths.size == 0:
        return np.zeros(0, dtype=np.int64), end
    return unpack_bits(np.frombuffer(bits.tobytes(), dtype=np.uint8), start, widths), end
