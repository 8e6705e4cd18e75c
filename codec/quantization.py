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

from codec.blocks import element_offsets


def quantize_units(
    features: np.ndarray, units: np.ndarray, mode: str, block_size: int, border: int, bits: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Quantize the coded elements of the kept units of N x C x H x W float32 maps.

    Row n of ``units`` contains map n's sorted kept units (see
    ``codec.selection``). Returns the uint8 levels of every coded element
    (map by map, blocks in the order of ``codec.selection.expand_units``,
    elements in raster order), their number per map, and each map's float32
    offset and scale. A map with constant coded values, or none at all, gets
    scale 0: every value is then level 0 and reconstructs exactly as
    ``offset`` (0 without values), with no division by zero.

    Raises ``ValueError`` when a map's value range is too wide for a float32 scale.
    """
    features = np.ascontiguousarray(features, dtype=np.float32)
    units = np.ascontiguousarray(units, dtype=np.int64)
    levels, per_map, offset, scale, low, high = _quantize_units(
        features, units, mode == "region-wise", block_size, border, bits
    )
    if not np.isfinite(scale).all():
        wide = int(np.flatnonzero(~np.isfinite(scale))[0])
        raise ValueError(
            f"the value range [{low[wide]}, {high[wide]}] of map {wide} is too wide for float32 quantization parameters"
        )
    return levels, per_map, offset, scale


@njit(cache=True, inline="always")
def _unit_block(units: np.ndarray, n: int, j: int, region_wise: bool, positions: int) -> tuple[int, int]:
    # The channel and position of block j of map n, in the order of
    # codec.selection.expand_units.
    if region_wise:
        return j // units.shape[1], units[n, j % units.shape[1]]
    return units[n, j] // positions, units[n, j] % positions


@njit(cache=True)
def _quantize_units(
    features: np.ndarray, units: np.ndarray, region_wise: bool, block_size: int, border: int, bits: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    # The first pass copies the coded elements into one array, in level
    # order, and finds each map's value range. The second rounds each value
    # to the nearest level, in float64 from the float32 offset and scale
    # that the bitstream carries. Reading the features once, in place, and
    # quantizing the contiguous copy ran faster than reading them twice.
    count, channels, height, width = features.shape
    flat = features.reshape(-1)
    offsets, counts = element_offsets(height, width, block_size, border)
    blocks = units.shape[1] * channels if region_wise else units.shape[1]
    values = np.empty(count * blocks * block_size * block_size, dtype=np.float32)
    per_map = np.zeros(count, dtype=np.int64)
    low = np.zeros(count)
    high = np.zeros(count)
    written = 0
    for n in range(count):
        low_value, high_value = np.float32(np.inf), np.float32(-np.inf)
        for j in range(blocks):
            channel, position = _unit_block(units, n, j, region_wise, counts.size)
            base = (n * channels + channel) * height * width
            for k in range(counts[position]):
                value = flat[base + offsets[position, k]]
                values[written + k] = value
                # New extremes are rare, so these branches predict well.
                if value < low_value:
                    low_value = value
                if value > high_value:
                    high_value = value
            written += counts[position]
            per_map[n] += counts[position]
        if per_map[n]:
            low[n], high[n] = low_value, high_value

    # The same float64 steps as numpy would take, then rounding to float32.
    offset = low.astype(np.float32)
    scale = ((high - low) / ((1 << bits) - 1)).astype(np.float32)

    levels = np.zeros(written, dtype=np.uint8)
    top_level = np.float64((1 << bits) - 1)
    start = 0
    for n in range(count):
        step, base_value = np.float64(scale[n]), np.float64(offset[n])
        if step > 0:
            for k in range(start, start + per_map[n]):
                # Clamping by comparisons and converting through int32 ran
                # 1.5x faster here than min/max and a direct uint8 conversion.
                level = np.rint((np.float64(values[k]) - base_value) / step)
                level = level if level > 0.0 else 0.0
                level = level if level < top_level else top_level
                levels[k] = np.int32(level)
        start += per_map[n]
    return levels, per_map, offset, scale, low, high


def dequantize_blocks(
    out: np.ndarray, index: np.ndarray, channel: np.ndarray, position: np.ndarray, levels: np.ndarray,
    offset: np.ndarray, scale: np.ndarray, block_size: int, border: np.ndarray,
) -> None:
    """Write ``offset + level * scale`` (float32) of each coded element into N x C x H x W ``out``.

    The inverse of ``quantize_units``: blocks and ``levels`` are in its
    order, and ``offset``, ``scale`` and ``border`` hold one value per map.
    Raises ``ValueError`` when the number of levels differs from the number
    of coded elements in the blocks, or when ``out`` is not C-contiguous.
    """
    if not out.flags.c_contiguous:
        raise ValueError("dequantize_blocks writes into a C-contiguous array; pass np.ascontiguousarray(out)")
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
    _, channels, height, width = out.shape
    flat = out.reshape(-1)
    ring = -1
    offsets, counts = element_offsets(height, width, block_size, 0)
    read = 0
    for j in range(index.size):
        # Maps of one batch nearly always share their border, so the
        # offsets are rebuilt only when it changes.
        if border[index[j]] != ring:
            ring = border[index[j]]
            offsets, counts = element_offsets(height, width, block_size, ring)
        block = position[j]
        size = counts[block]
        if read + size > levels.size:
            return -1

        base = (index[j] * channels + channel[j]) * height * width
        start, step = offset[index[j]], scale[index[j]]
        for k in range(size):
            flat[base + offsets[block, k]] = start + np.float32(levels[read + k]) * step
        read += size
    return read
