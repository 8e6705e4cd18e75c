"""Block energies and the top-k selection of the three modes.

A selection is a sorted array of unit indices. Units are (channel, position)
pairs numbered ``channel * P + position`` in the channel-wise and global
modes, and block positions ``0..P-1`` in the region-wise mode, where a kept
position is kept in every channel. Sorting with a stable sort on the negated
energy makes ties go to the lowest index, so every run selects the same
blocks.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from codec.config import kept_count


def block_energy(features: np.ndarray, block_size: int, border: int) -> np.ndarray:
    """Return the sum of squares of each block of N x C x H x W maps as N x C x P (C x P for one C x H x W map).

    Blocks are those of ``codec.blocks.to_blocks``, with the border ring and
    the padding counted as zeros.
    """
    features = np.ascontiguousarray(features, dtype=np.float32)
    if features.ndim == 3:
        return _block_energy(features[None], block_size, border)[0]
    return _block_energy(features, block_size, border)


@njit(cache=True)
def _block_energy(features: np.ndarray, block_size: int, border: int) -> np.ndarray:
    # The sum runs in float32 over each block's elements in raster order.
    # Its rounding is fixed for a given input, and the encoder and simulate
    # both call this function, so they always rank blocks the same way.
    count, channels, height, width = features.shape
    columns = -(-width // block_size)
    rows = -(-height // block_size)
    energy = np.zeros((count, channels, rows * columns), dtype=np.float32)
    for index in range(count):
        for channel in range(channels):
            for position in range(rows * columns):
                top = (position // columns) * block_size
                left = (position % columns) * block_size
                total = np.float32(0.0)
                for y in range(max(top, border), min(top + block_size, height - border)):
                    for x in range(max(left, border), min(left + block_size, width - border)):
                        value = features[index, channel, y, x]
                        total += value * value
                energy[index, channel, position] = total
    return energy


def unit_count(mode: str, channels: int, positions: int) -> int:
    """Return the number of candidate units of a mode."""
    return positions if mode == "region-wise" else channels * positions


def top_k_mask(scores: np.ndarray, k: int) -> np.ndarray:
    """Return a mask of the ``k`` highest scores in each row, ties going to the lowest index.

    This selects the same entries as the first ``k`` of a stable argsort on
    ``-scores``: everything above the k-th largest score, then the earliest
    entries equal to it.
    """
    rows, count = scores.shape
    if k >= count:
        return np.ones(scores.shape, dtype=bool)

    # np.sort, not np.partition: with numpy 2.4, partition took about 7 ms on
    # 65,536 post-ReLU element energies, where the SIMD sort takes under 1 ms.
    threshold = np.sort(scores, axis=1)[:, count - k][:, None]
    above = scores > threshold
    tied = scores == threshold
    missing = k - above.sum(axis=1, keepdims=True)
    return above | (tied & (np.cumsum(tied, axis=1) <= missing))


def select_units(energy: np.ndarray, mode: str, keep_ratio: float) -> np.ndarray:
    """Return the sorted int64 indices of the kept units for an N x C x P energy array, one row per map."""
    count, channels, positions = energy.shape
    if mode == "global":
        scores = energy.reshape(count, channels * positions)
        k = kept_count(keep_ratio, channels * positions)
    elif mode == "region-wise":
        scores = energy.sum(axis=1)
        k = kept_count(keep_ratio, positions)
    elif mode == "channel-wise":
        scores = energy.reshape(count * channels, positions)
        k = kept_count(keep_ratio, positions)
    else:
        raise ValueError(f"invalid mode {mode!r}")

    # Every row of the mask keeps exactly k entries, so the kept indices of
    # a map are one row of the flat indices. Channel-wise rows are channels:
    # their positions are renumbered as units c * P + p.
    kept = np.flatnonzero(top_k_mask(scores, k)).astype(np.int64)
    if mode == "region-wise":
        return (kept % positions).reshape(count, k)
    return (kept % (channels * positions)).reshape(count, -1)


def expand_units(units: np.ndarray, mode: str, channels: int, positions: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the channel and position of every kept block, in unit order then channel order.

    ``units`` holds one map's units, or one row of units per map; the
    results then have one row per map. Region-wise units expand to one
    block per channel, ordered by channel first, so all three modes list
    kept blocks by increasing ``c * P + p``.
    """
    if mode == "region-wise":
        kept = units.shape[-1]
        channel = np.repeat(np.arange(channels, dtype=np.int64), kept)
        position = np.tile(units, channels)
        return np.broadcast_to(channel, position.shape), position
    return units // positions, units % positions
