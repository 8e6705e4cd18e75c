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

from codec.config import kept_count


def block_energy(blocks: np.ndarray) -> np.ndarray:
    """Return the C x P sum of squares of each block, in float64."""
    values = blocks.astype(np.float64)
    return np.einsum("cpe,cpe->cp", values, values)


def unit_count(mode: str, channels: int, positions: int) -> int:
    """Return the number of candidate units of a mode."""
    return positions if mode == "region-wise" else channels * positions


def select_units(energy: np.ndarray, mode: str, keep_ratio: float) -> np.ndarray:
    """Return the sorted int64 indices of the kept units for a C x P energy array."""
    channels, positions = energy.shape

    if mode == "global":
        k = kept_count(keep_ratio, channels * positions)
        order = np.argsort(-energy.reshape(-1), kind="stable")[:k]
        return np.sort(order)

    if mode == "region-wise":
        k = kept_count(keep_ratio, positions)
        order = np.argsort(-energy.sum(axis=0), kind="stable")[:k]
        return np.sort(order)

    if mode == "channel-wise":
        k = kept_count(keep_ratio, positions)
        order = np.sort(np.argsort(-energy, axis=1, kind="stable")[:, :k], axis=1)
        offsets = (np.arange(channels, dtype=np.int64) * positions)[:, None]
        return (order + offsets).reshape(-1)

    raise ValueError(f"invalid mode {mode!r}")


def expand_units(units: np.ndarray, mode: str, channels: int, positions: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the channel and position of every kept block, in unit order then channel order.

    Region-wise units expand to one block per channel, ordered by channel
    first, so all three modes list kept blocks by increasing ``c * P + p``.
    """
    if mode == "region-wise":
        channel = np.repeat(np.arange(channels, dtype=np.int64), units.size)
        position = np.tile(units, channels)
        return channel, position
    return units // positions, units % positions
