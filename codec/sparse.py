"""The block-sparse, quantized form of a feature map: what the bitstream carries.

``analyze`` turns a dense map into a ``SparseMap`` and ``reconstruct`` turns
one back into a dense map. The encoder, the decoder and ``simulate`` all go
through these two functions, which is why ``simulate`` equals
``decode(encode(x))`` bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from codec.blocks import block_grid, coded_element_mask, from_blocks, to_blocks
from codec.config import CodecConfig
from codec.quantization import dequantize, quantization_parameters, quantize
from codec.selection import block_energy, expand_units, select_units

# Largest map, in elements, that the encoder writes and the decoder accepts:
# 2**24 float32 values are 64 MiB, far above a ResNet-18 split at 224x224
# (64 x 56 x 56 = 200,704 values).
MAX_ELEMENTS = 1 << 24
MAX_SIDE = 1 << 16


@dataclass
class SparseMap:
    """Kept units and their quantization levels for one C x H x W map."""

    shape: tuple[int, int, int]
    config: CodecConfig
    units: np.ndarray  # sorted int64 unit indices (see codec.selection)
    levels: np.ndarray  # int64 level of every coded element, in kept-block order
    offset: np.float32
    scale: np.float32

    @property
    def positions(self) -> int:
        """Return P, the number of block positions per channel."""
        rows, cols = block_grid(self.shape[1], self.shape[2], self.config.block_size)
        return rows * cols

    def kept_blocks(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the channel and position index of every kept block."""
        return expand_units(self.units, self.config.mode, self.shape[0], self.positions)

    def element_mask(self) -> np.ndarray:
        """Return the K x B*B mask of coded elements in the kept blocks."""
        _, position = self.kept_blocks()
        channels, height, width = self.shape
        return coded_element_mask(height, width, self.config.block_size, self.config.border)[position]


def as_feature_array(features: Any) -> np.ndarray:
    """Return ``features`` (numpy or torch, C x H x W) as a finite float32 numpy array."""
    if hasattr(features, "detach"):
        features = features.detach().to("cpu").float().numpy()
    array = np.asarray(features, dtype=np.float32)

    if array.ndim != 3:
        raise ValueError(f"expected one C x H x W feature map, got shape {tuple(array.shape)}; encode maps one at a time")
    if min(array.shape) < 1:
        raise ValueError(f"feature map shape {tuple(array.shape)} has an empty dimension")
    if max(array.shape) > MAX_SIDE or array.size > MAX_ELEMENTS:
        raise ValueError(
            f"feature map shape {tuple(array.shape)} exceeds the codec's limits "
            f"({MAX_SIDE} per dimension, {MAX_ELEMENTS} elements in all)"
        )
    if not np.isfinite(array).all():
        bad = int(array.size - np.isfinite(array).sum())
        raise ValueError(f"feature map contains {bad} NaN or infinite values; the codec accepts finite values only")
    return array


def analyze(features: Any, config: CodecConfig) -> SparseMap:
    """Select, in one C x H x W map, the blocks to keep and quantize their values."""
    array = as_feature_array(features)
    channels, height, width = array.shape
    blocks = to_blocks(array, config.block_size, config.border)

    units = select_units(block_energy(blocks), config.mode, config.keep_ratio)

    sparse = SparseMap((channels, height, width), config, units, np.zeros(0, np.int64), np.float32(0), np.float32(0))
    channel, position = sparse.kept_blocks()
    values = blocks[channel, position][sparse.element_mask()]

    sparse.offset, sparse.scale = quantization_parameters(values, config.bits)
    sparse.levels = quantize(values, sparse.offset, sparse.scale, config.bits)
    return sparse


def reconstruct(sparse: SparseMap) -> np.ndarray:
    """Return the dense float32 C x H x W map, zero outside the kept blocks."""
    channels, height, width = sparse.shape
    block_size = sparse.config.block_size
    channel, position = sparse.kept_blocks()

    kept = np.zeros((channel.size, block_size * block_size), dtype=np.float32)
    kept[sparse.element_mask()] = dequantize(sparse.levels, sparse.offset, sparse.scale)

    blocks = np.zeros((channels, sparse.positions, block_size * block_size), dtype=np.float32)
    blocks[channel, position] = kept
    return from_blocks(blocks, height, width, block_size)


def coded_mask(sparse: SparseMap) -> np.ndarray:
    """Return the C x H x W boolean mask of the elements whose values are coded."""
    channels, height, width = sparse.shape
    block_size = sparse.config.block_size
    channel, position = sparse.kept_blocks()

    blocks = np.zeros((channels, sparse.positions, block_size * block_size), dtype=bool)
    blocks[channel, position] = sparse.element_mask()
    return from_blocks(blocks, height, width, block_size)
