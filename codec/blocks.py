"""Border zeroing and the cutting of feature maps into square blocks.

A C x H x W map is padded with zeros at the bottom and right to
Hp x Wp, multiples of the block size B, and viewed as C x P x B*B, where
P = (Hp / B) * (Wp / B) block positions are numbered in raster order and the
B*B elements of a block are in raster order too.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit


def block_grid(height: int, width: int, block_size: int) -> tuple[int, int]:
    """Return the number of block rows and block columns that cover an H x W map."""
    return -(-height // block_size), -(-width // block_size)


def to_blocks(features: np.ndarray, block_size: int, border: int) -> np.ndarray:
    """Zero the border ring of a C x H x W map and return its C x P x B*B blocks."""
    channels, height, width = features.shape
    rows, cols = block_grid(height, width, block_size)
    padded = np.zeros((channels, rows * block_size, cols * block_size), dtype=features.dtype)
    padded[:, :height, :width] = features
    if border:
        padded[:, :border, :] = 0
        padded[:, :, :border] = 0
        padded[:, max(height - border, 0) : height, :] = 0
        padded[:, :, max(width - border, 0) : width] = 0

    blocks = padded.reshape(channels, rows, block_size, cols, block_size).transpose(0, 1, 3, 2, 4)
    return blocks.reshape(channels, rows * cols, block_size * block_size)


def from_blocks(blocks: np.ndarray, height: int, width: int, block_size: int) -> np.ndarray:
    """Reassemble C x P x B*B blocks into a C x H x W map, dropping the padding."""
    channels = blocks.shape[0]
    rows, cols = block_grid(height, width, block_size)
    grid = blocks.reshape(channels, rows, cols, block_size, block_size).transpose(0, 1, 3, 2, 4)
    return np.ascontiguousarray(grid.reshape(channels, rows * block_size, cols * block_size)[:, :height, :width])


def interior_mask(height: int, width: int, border: int) -> np.ndarray:
    """Return an H x W boolean mask that is False on the border ring."""
    mask = np.zeros((height, width), dtype=bool)
    if 2 * border < height and 2 * border < width:
        mask[border : height - border, border : width - border] = True
    return mask


@functools.lru_cache(maxsize=16)
def coded_element_mask(height: int, width: int, block_size: int, border: int) -> np.ndarray:
    """Return a read-only P x B*B mask of the block elements that carry values.

    Elements on the border ring or in the padding are zero by construction,
    so neither the encoder nor the decoder spends symbols on them.
    """
    rows, cols = block_grid(height, width, block_size)
    padded = np.zeros((rows * block_size, cols * block_size), dtype=bool)
    padded[:height, :width] = interior_mask(height, width, border)
    grid = padded.reshape(rows, block_size, cols, block_size).transpose(0, 2, 1, 3)
    mask = np.ascontiguousarray(grid.reshape(rows * cols, block_size * block_size))
    mask.flags.writeable = False
    return mask


@njit(cache=True)
def element_offsets(height: int, width: int, block_size: int, border: int) -> tuple[np.ndarray, np.ndarray]:
    """Return where the coded elements of each block position lie in an H x W plane.

    Row p of the first array lists the offsets ``y * W + x`` of the coded
    elements of block position p in raster order, padded with zeros to
    B*B. The second array counts them. These are the True entries of
    ``coded_element_mask``, as offsets that a loop can use directly.
    """
    columns = -(-width // block_size)
    rows = -(-height // block_size)
    offsets = np.zeros((rows * columns, block_size * block_size), dtype=np.int64)
    counts = np.zeros(rows * columns, dtype=np.int64)
    for position in range(rows * columns):
        top = (position // columns) * block_size
        left = (position % columns) * block_size
        for y in range(max(top, border), min(top + block_size, height - border)):
            for x in range(max(left, border), min(left + block_size, width - border)):
                offsets[position, counts[position]] = y * width + x
                counts[position] += 1
    return offsets, counts


@njit(cache=True)
def mark_coded_elements(
    out: np.ndarray, index: np.ndarray, channel: np.ndarray, position: np.ndarray, block_size: int, border: np.ndarray
) -> None:
    """Mark the coded elements of the kept blocks True in N x C x H x W ``out``.

    Block j lies in map ``index[j]``, channel ``channel[j]`` and block
    position ``position[j]``. ``border`` contains each map's border width.
    ``out`` must be C-contiguous.
    """
    _, channels, height, width = out.shape
    flat = out.reshape(-1)
    ring = -1
    offsets, counts = element_offsets(height, width, block_size, 0)
    for j in range(index.size):
        # Maps of one batch nearly always share their border, so the
        # offsets are rebuilt only when it changes.
        if border[index[j]] != ring:
            ring = border[index[j]]
            offsets, counts = element_offsets(height, width, block_size, ring)
        base = (index[j] * channels + channel[j]) * height * width
        for k in range(counts[position[j]]):
            flat[base + offsets[position[j], k]] = True
