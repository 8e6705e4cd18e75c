"""Uniform scalar quantization of the kept values.

With ``bits`` = b, the 2**b levels are ``offset + q * scale`` for
q = 0 .. 2**b - 1, where ``offset`` is the minimum kept value and
``scale`` = (max - min) / (2**b - 1). Both are rounded to float32 before use,
because the bitstream carries them as float32, so the encoder quantizes
against exactly the levels that the decoder reconstructs.
"""

from __future__ import annotations

import numpy as np


def quantization_parameters(values: np.ndarray, bits: int) -> tuple[np.float32, np.float32]:
    """Return the float32 offset and scale for ``values``.

    A constant input, or no input at all, gets scale 0: every value is then
    level 0 and reconstructs exactly as ``offset``, with no division by zero.
    """
    if values.size == 0:
        return np.float32(0.0), np.float32(0.0)

    low = float(values.min())
    high = float(values.max())
    offset = np.float32(low)
    scale = np.float32((high - low) / ((1 << bits) - 1))
    if not np.isfinite(scale):
        raise ValueError(f"the value range [{low}, {high}] is too wide for float32 quantization parameters")
    return offset, scale


def quantize(values: np.ndarray, offset: np.float32, scale: np.float32, bits: int) -> np.ndarray:
    """Map values to int64 levels 0 .. 2**bits - 1, rounding to the nearest level."""
    if scale == 0:
        return np.zeros(values.shape, dtype=np.int64)
    levels = np.rint((values.astype(np.float64) - np.float64(offset)) / np.float64(scale))
    return np.clip(levels, 0, (1 << bits) - 1).astype(np.int64)


def dequantize(levels: np.ndarray, offset: np.float32, scale: np.float32) -> np.ndarray:
    """Return the float32 value of each level."""
    return np.float32(offset) + levels.astype(np.float32) * np.float32(scale)
