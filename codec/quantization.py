"""Uniform scalar quantization of the kept values.

With ``bits`` = b, the 2**b levels are ``offset + q * scale`` for
q = 0 .. 2**b - 1, where ``offset`` is the minimum kept value and
``scale`` = (max - min) / (2**b - 1). Both are rounded to float32 before use,
because the bitstream carries them as float32, so the encoder quantizes
against exactly the levels that the decoder reconstructs.
"""

from __future__ import annotations

import numpy as np
from numba import njit


def quantize_blocks(
    features: np.ndarray, index: np.ndarray, channel: np.ndarray, position: np.ndarray,
    block_size: int, border: int, bits: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Quantize the coded elements of the kept blocks of N x C x H x W float32 maps.

    Block j of ``index``, ``channel`` and ``position`` belongs to map
    ``index[j]``, and blocks are listed map by map. Returns the int64 levels
    of every coded element (block by block, elements in raster order), their
    number per map, and each map's float32 offset and scale. A map with
    constant coded values, or none at all, gets scale 0: every value is then
    level 0 and reconstructs exactly as ``offset`` (0 without values), with
    no division by zero.

    Raises ``ValueError`` when a map's value range is too wide for a float32 scale.
    """
    levels, per_map, low, high = _quantize_blocks(features, index, channel, position, block_size, border, bits)

    offset = low.astype(np.float32)
    with np.errstate(over="ignore"):
        scale = ((high - low) / ((1 << bits) - 1)).astype(np.float32)
    if not np.isfinite(scale).all():
        wide = int(np.flatnonzero(~np.isfinite(scale))[0])
        raise ValueError(
            f"the value range [{low[wide]}, {high[wide]}] of map {wide} is too wide for float32 quantization parameters"
        )

    _level_blocks(features, index, channel, position, block_size, border, bits, offset, scale, levels)
    return levels, per_map, offset, scale


@njit(cache=True)
def _quantize_blocks(
    features: np.ndarray, index: np.ndarray, channel: np.ndarray, position: np.ndarray,
    block_size: int, border: int, bits: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    # First pass: the number of coded elements and the value range of each map.
    count, _, height, width = features.shape
    columns = -(-width // block_size)
    per_map = np.zeros(count, dtype=np.int64)
    low = np.full(count, np.inf)
    high = np.full(count, -np.inf)
    for j in range(index.size):
        top = (position[j] // columns) * block_size
        left = (position[j] % columns) * block_size
        for y in range(max(top, border), min(top + block_size, height - border)):
            for x in range(max(left, border), min(left + block_size, width - border)):
                value = np.float64(features[index[j], channel[j], y, x])
                low[index[j]] = min(low[index[j]], value)
                high[index[j]] = max(high[index[j]], value)
                per_map[index[j]] += 1

    for i in range(count):
        if per_map[i] == 0:
            low[i] = 0.0
            high[i] = 0.0
    return np.zeros(per_map.sum(), dtype=np.int64), per_map, low, high


@njit(cache=True)
def _level_blocks(
    features: np.ndarray, index: np.ndarray, channel: np.ndarray, position: np.ndarray,
    block_size: int, border: int, bits: int, offset: np.ndarray, scale: np.ndarray, levels: np.ndarray,
) -> None:
    # Second pass: round each coded value to the nearest level, in float64
    # from the float32 offset and scale that the bitstream carries.
    _, _, height, width = features.shape
    columns = -(-width // block_size)
    top_level = (1 << bits) - 1
    written = 0
    for j in range(index.size):
        step = np.float64(scale[index[j]])
        base = np.float64(offset[index[j]])
        top = (position[j] // columns) * block_size
        left = (position[j] % columns) * block_size
        for y in range(max(top, border), min(top + block_size, height - border)):
            for x in range(max(left, border), min(left + block_size, width - border)):
                level = 0.0
                if step > 0:
                    level = min(max(np.rint((np.float64(features[index[j], channel[j], y, x]) - base) / step), 0.0),
                                top_level)
                levels[written] = np.int64(level)
                written += 1


def dequantize_blocks(
    out: np.ndarray, index: np.ndarray, channel: np.ndarray, position: np.ndarray, levels: np.ndarray,
    offset: np.ndarray, scale: np.ndarray, block_size: int, border: np.ndarray,
) -> None:
    """Write ``offset + level * scale`` (float32) of each coded element into N x C x H x W ``out``.

    The inverse of ``quantize_blocks``: blocks and ``levels`` are in its
    order, and ``offset``, ``scale`` and ``border`` hold one value per map.
    Raises ``ValueError`` when the number of levels differs from the number
    of coded elements in the blocks.
    """
    read = _dequantize_blocks(out, index, channel, position, levels, offset, scale, block_size, border)
    if read < 0:
        raise ValueError(f"the kept blocks have more coded elements than the {levels.size} levels given")
    if read != levels.size:
        raise ValueError(f"{levels.size} levels given for {read} coded elements; they must be equal")


@njit(cache=True)
def _dequantize_blocks(
    out: np.ndarray, index: np.ndarray, channel: np.ndarray, position: np.ndarray, levels: np.ndarray,
    offset: np.ndarray, scale: np.ndarray, block_size: int, border: np.ndarray,
) -> int:
    # Returns the number of coded elements, or -1 when levels run out first.
    height, width = out.shape[2], out.shape[3]
    columns = -(-width // block_size)
    read = 0
    for j in range(index.size):
        ring = border[index[j]]
        top = (position[j] // columns) * block_size
        left = (position[j] % columns) * block_size
        for y in range(max(top, ring), min(top + block_size, height - ring)):
            for x in range(max(left, ring), min(left + block_size, width - ring)):
                if read >= levels.size:
                    return -1
                out[index[j], channel[j], y, x] = offset[index[j]] + np.float32(levels[read]) * scale[index[j]]
                read += 1
    return read
