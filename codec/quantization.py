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
    values, per_map, low, high = _gather_blocks(features, index, channel, position, block_size, border)

    offset = low.astype(np.float32)
    with np.errstate(over="ignore"):
        scale = ((high - low) / ((1 << bits) - 1)).astype(np.float32)
    if not np.isfinite(scale).all():
        wide = int(np.flatnonzero(~np.isfinite(scale))[0])
        raise ValueError(
            f"the value range [{low[wide]}, {high[wide]}] of map {wide} is too wide for float32 quantization parameters"
        )

    return _quantize_values(values, per_map, offset, scale, bits), per_map, offset, scale


@njit(cache=True)
def _gather_blocks(
    features: np.ndarray, index: np.ndarray, channel: np.ndarray, position: np.ndarray, block_size: int, border: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    # Copy the coded elements of the kept blocks into one array, in level
    # order, and find the number of elements and the value range of each map.
    count, _, height, width = features.shape
    columns = -(-width // block_size)
    values = np.empty(index.size * block_size * block_size, dtype=np.float32)
    per_map = np.zeros(count, dtype=np.int64)
    low = np.zeros(count)
    high = np.zeros(count)

    written = 0
    for j in range(index.size):
        plane = features[index[j], channel[j]]
        top = (position[j] // columns) * block_size
        left = (position[j] % columns) * block_size
        for y in range(max(top, border), min(top + block_size, height - border)):
            for x in range(max(left, border), min(left + block_size, width - border)):
                values[written] = plane[y, x]
                written += 1
        per_map[index[j]] = written

    # per_map contains running totals so far; turn them into counts per map.
    start = 0
    for i in range(count):
        end = max(per_map[i], start)
        per_map[i] = end - start
        if end > start:
            low[i] = np.float64(values[start:end].min())
            high[i] = np.float64(values[start:end].max())
        start = end
    return values[:written], per_map, low, high


@njit(cache=True)
def _quantize_values(
    values: np.ndarray, per_map: np.ndarray, offset: np.ndarray, scale: np.ndarray, bits: int
) -> np.ndarray:
    # Round each value to the nearest level, in float64 from the float32
    # offset and scale that the bitstream carries.
    levels = np.zeros(values.size, dtype=np.int64)
    top_level = np.float64((1 << bits) - 1)
    start = 0
    for i in range(per_map.size):
        step = np.float64(scale[i])
        base = np.float64(offset[i])
        if step > 0:
            for k in range(start, start + per_map[i]):
                level = np.rint((np.float64(values[k]) - base) / step)
                levels[k] = np.int64(min(max(level, 0.0), top_level))
        start += per_map[i]
    return levels


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
        base, step = offset[index[j]], scale[index[j]]
        plane = out[index[j], channel[j]]
        top = (position[j] // columns) * block_size
        left = (position[j] % columns) * block_size
        for y in range(max(top, ring), min(top + block_size, height - ring)):
            for x in range(max(left, ring), min(left + block_size, width - ring)):
                if read >= levels.size:
                    return -1
                plane[y, x] = base + np.float32(levels[read]) * step
                read += 1
    return read
