"""Uniform scalar quantization of the kept values.

With ``bits`` = b, the 2**b levels are ``offset + q * scale`` for
q = 0 .. 2**b - 1, where ``offset`` is the minimum kept value and
``scale`` = (max - min) / (2**b - 1). Both are rounded to float32 before use,
because the bitstream carries them as float32, so the encoder quantizes
against exactly the levels that the decoder reconstructs.
"""

from __future__ import annotations

import numpy as np


def quantization_parameters(values: np.ndarray, coded: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the float32 offset and scale of each map, for N x ... values and their coded mask.

    Only values where ``coded`` is True count. A map with constant coded
    values, or none at all, gets scale 0: every value is then level 0 and
    reconstructs exactly as ``offset`` (0 without values), with no division
    by zero.
    """
    axes = tuple(range(1, values.ndim))
    present = coded.any(axis=axes)
    low = np.where(coded, values, np.inf).min(axis=axes).astype(np.float64)
    high = np.where(coded, values, -np.inf).max(axis=axes).astype(np.float64)
    low[~present] = 0.0
    high[~present] = 0.0

    offset = low.astype(np.float32)
    with np.errstate(over="ignore"):
        scale = ((high - low) / ((1 << bits) - 1)).astype(np.float32)
    if not np.isfinite(scale).all():
        wide = int(np.flatnonzero(~np.isfinite(scale))[0])
        raise ValueError(
            f"the value range [{low[wide]}, {high[wide]}] of map {wide} is too wide for float32 quantization parameters"
        )
    return offset, scale


def quantize(values: np.ndarray, offset: np.ndarray, scale: np.ndarray, bits: int) -> np.ndarray:
    """Map values to int64 levels 0 .. 2**bits - 1, rounding to the nearest level.

    ``offset`` and ``scale`` are float32 and broadcast against ``values``;
    where the scale is 0, every level is 0.
    """
    offset = np.asarray(offset, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        levels = np.rint((values.astype(np.float64) - offset) / scale)
    levels = np.where(scale > 0, levels, 0.0)
    return np.clip(levels, 0, (1 << bits) - 1).astype(np.int64)


def dequantize(levels: np.ndarray, offset: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Return the float32 value of each level; ``offset`` and ``scale`` broadcast against ``levels``."""
    return np.asarray(offset, dtype=np.float32) + levels.astype(np.float32) * np.asarray(scale, dtype=np.float32)
