"""The block-sparse, quantized form of a feature map: what the bitstream carries.

``analyze`` turns a dense map into a ``SparseMap`` and ``reconstruct`` turns
one back into a dense map. The encoder, the decoder and ``simulate`` all go
through these two functions, which is why ``simulate`` equals
``decode(encode(x))`` bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from codec.blocks import block_grid, mark_coded_elements
from codec.config import CodecConfig
from codec.quantization import dequantize_blocks, quantize_units
from codec.selection import block_energy, expand_ragged_units, expand_units, select_units

# Largest map, in elements, that the encoder writes and the decoder accepts:
# 2**24 float32 values are 64 MiB, far above a ResNet-18 split at 224x224
# (64 x 56 x 56 = 200,704 values).
MAX_ELEMENTS = 1 << 24
MAX_SIDE = 1 << 16

# analyze_batch works on this many maps at a time. With 64 x 32 x 32 maps,
# encoding in chunks of 16 ran 5 to 10% faster than whole batches of 64,
# likely because a chunk's arrays stay in the CPU caches.
_BATCH_CHUNK = 16


@dataclass
class SparseMap:
    """Kept units and their quantization levels for one C x H x W map."""

    shape: tuple[int, int, int]
    config: CodecConfig
    units: np.ndarray  # sorted int64 unit indices (see codec.selection)
    levels: np.ndarray  # uint8 level of every coded element, in kept-block order
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


# Expected layout of an input with 3 or 4 axes, for error messages.
_LAYOUTS = {
    3: "one C x H x W feature map (encode_batch takes N x C x H x W batches)",
    4: "an N x C x H x W batch of feature maps (encode takes one C x H x W map)",
}


def as_features(features: Any, axes: int) -> np.ndarray:
    """Return ``features`` (numpy or torch, C x H x W or N x C x H x W) as a finite float32 numpy array.

    Raises ``ValueError`` for another number of axes, an empty or oversized
    map, or NaN and infinite values.
    """
    if hasattr(features, "detach"):
        features = features.detach().to("cpu").float().numpy()
    array = np.asarray(features, dtype=np.float32)

    if array.ndim != axes:
        raise ValueError(f"expected {_LAYOUTS[axes]}, got shape {tuple(array.shape)}")
    if min(array.shape) < 1:
        raise ValueError(f"feature shape {tuple(array.shape)} has an empty dimension")
    if max(array.shape[-3:]) > MAX_SIDE or math.prod(array.shape[-3:]) > MAX_ELEMENTS:
        raise ValueError(
            f"feature map shape {tuple(array.shape[-3:])} exceeds the codec's limits "
            f"({MAX_SIDE} per dimension, {MAX_ELEMENTS} elements in all)"
        )
    finite = np.isfinite(array)
    if not finite.all():
        bad = int(array.size - finite.sum())
        raise ValueError(f"features contain {bad} NaN or infinite values; the codec accepts finite values only")
    return array


def analyze(features: Any, config: CodecConfig) -> SparseMap:
    """Select, in one C x H x W map, the blocks to keep and quantize their values."""
    return _analyze_checked(as_features(features, 3)[None], config)[0]


def analyze_batch(features: Any, config: CodecConfig) -> list[SparseMap]:
    """Run ``analyze`` on every map of an N x C x H x W batch, with numpy calls shared by the batch.

    Each map is still selected and quantized on its own: the result for a
    map does not depend on the other maps of the batch.
    """
    batch = as_features(features, 4)
    maps = []
    for start in range(0, batch.shape[0], _BATCH_CHUNK):
        maps += _analyze_checked(batch[start : start + _BATCH_CHUNK], config)
    return maps


def _analyze_checked(batch: np.ndarray, config: CodecConfig) -> list[SparseMap]:
    _, channels, height, width = batch.shape
    shape = (channels, height, width)
    batch = np.ascontiguousarray(batch)
    energy = block_energy(batch, config.block_size, config.border)

    units = select_units(energy, config.mode, config.keep_ratio)
    levels, per_map, offset, scale = quantize_units(
        batch, units, config.mode, config.block_size, config.border, config.bits
    )

    return [
        SparseMap(shape, config, units[index], map_levels, offset[index], scale[index])
        for index, map_levels in enumerate(np.split(levels, np.cumsum(per_map)[:-1]))
    ]


def _kept_blocks(maps: Sequence[SparseMap]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return the map, channel and position of every kept block of ``maps``, and each map's border.

    The maps must share their shape and block size.
    """
    shape, block_size = maps[0].shape, maps[0].config.block_size
    for number, sparse in enumerate(maps):
        if sparse.shape != shape or sparse.config.block_size != block_size:
            raise ValueError(
                f"map {number} has shape {sparse.shape} and block size {sparse.config.block_size}, "
                f"map 0 has {shape} and {block_size}; reconstruct them in separate batches"
            )

    units = np.concatenate([sparse.units for sparse in maps]).astype(np.int64, copy=False)
    starts = np.zeros(len(maps) + 1, dtype=np.int64)
    starts[1:] = np.cumsum([sparse.units.size for sparse in maps])
    region_wise = np.array([sparse.config.mode == "region-wise" for sparse in maps])
    index, channel, position = expand_ragged_units(units, starts, region_wise, shape[0], maps[0].positions)
    border = np.array([sparse.config.border for sparse in maps], dtype=np.int64)
    return index, channel, position, border


def reconstruct(sparse: SparseMap) -> np.ndarray:
    """Return the dense float32 C x H x W map, zero outside the kept blocks."""
    return reconstruct_batch([sparse])[0]


def reconstruct_batch(maps: Sequence[SparseMap]) -> np.ndarray:
    """Return the dense float32 N x C x H x W maps of ``SparseMap`` objects of one shape and block size."""
    index, channel, position, border = _kept_blocks(maps)
    levels = np.concatenate([sparse.levels for sparse in maps])
    offset = np.array([sparse.offset for sparse in maps], dtype=np.float32)
    scale = np.array([sparse.scale for sparse in maps], dtype=np.float32)

    dense = np.zeros((len(maps), *maps[0].shape), dtype=np.float32)
    dequantize_blocks(dense, index, channel, position, levels, offset, scale, maps[0].config.block_size, border)
    return dense


def coded_mask(sparse: SparseMap) -> np.ndarray:
    """Return the C x H x W boolean mask of the elements whose values are coded."""
    return coded_mask_batch([sparse])[0]


def coded_mask_batch(maps: Sequence[SparseMap]) -> np.ndarray:
    """Return the N x C x H x W boolean masks of coded elements of maps of one shape and block size."""
    index, channel, position, border = _kept_blocks(maps)
    mask = np.zeros((len(maps), *maps[0].shape), dtype=bool)
    mark_coded_elements(mask, index, channel, position, maps[0].config.block_size, border)
    return mask
