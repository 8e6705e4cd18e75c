"""Shared checks for codec round trips, used by the parametrized and the random tests."""

from __future__ import annotations

import numpy as np
import torch

from codec import CodecConfig, decode, encode, read_sparse, simulate
from codec.blocks import interior_mask
from codec.config import kept_count
from codec.sparse import coded_mask


def check_round_trip(features: np.ndarray, config: CodecConfig) -> np.ndarray:
    """Encode and decode ``features`` and assert every property a caller relies on.

    Returns the decoded map.
    """
    data, stats = encode(features, config, with_stats=True)
    decoded = decode(data)
    sparse = read_sparse(data)

    # The bitstream is what simulate predicts, bit for bit.
    simulated = simulate(torch.from_numpy(features)[None], config)[0].numpy()
    assert decoded.dtype == np.float32
    assert decoded.shape == features.shape
    assert np.array_equal(decoded, simulated)

    # Statistics describe the bytes that were produced.
    assert stats.total_bits == 8 * len(data)
    assert stats.header_bits + stats.table_bits + stats.position_bits + stats.value_bits == stats.total_bits
    assert stats.kept_units == sparse.units.size

    # The right number of units is kept, and zeros stand everywhere else.
    channels, height, width = features.shape
    rows, cols = -(-height // config.block_size), -(-width // config.block_size)
    units = rows * cols if config.mode == "region-wise" else channels * rows * cols
    per_group = rows * cols if config.mode == "channel-wise" else units
    expected = kept_count(config.keep_ratio, per_group) * (channels if config.mode == "channel-wise" else 1)
    assert sparse.units.size == expected
    mask = coded_mask(sparse)
    assert not decoded[~mask].any()
    assert not mask[:, ~interior_mask(height, width, config.border)].any()

    # Coded elements are within half a quantization step of the input.
    if mask.any():
        error = np.abs(decoded[mask].astype(np.float64) - features[mask].astype(np.float64))
        tolerance = float(sparse.scale) / 2 + 1e-6 * max(1.0, float(np.abs(features).max()))
        assert error.max() <= tolerance
    return decoded


def relu_features(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    """Return a post-ReLU-like map: non-negative, about half zeros, some strong channels."""
    gains = rng.gamma(1.0, 1.0, size=(shape[0], 1, 1))
    return np.maximum(rng.normal(size=shape) * gains, 0).astype(np.float32)
