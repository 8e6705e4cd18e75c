"""Compilation of the codec's numba loops ahead of the first real map."""

from __future__ import annotations

import time

import numpy as np

from codec.bitstream import decode_batch, encode_batch, read_sparse
from codec.config import MODES, CodecConfig
from codec.sparse import coded_mask_batch


def warm_up() -> float:
    """Encode and decode small maps in every mode, so numba compiles or loads every loop they use.

    The first call in a fresh installation compiles for some seconds and
    writes numba's cache; later processes load the cache in well under a
    second. Returns the seconds spent.
    """
    started = time.monotonic()
    rng = np.random.default_rng(0)
    maps = np.maximum(rng.standard_normal((2, 4, 12, 12)), 0).astype(np.float32)
    maps[1] = 0.0  # all-zero levels: a one-symbol table, decoded without the code loop
    for mode in MODES:
        config = CodecConfig(mode=mode, keep_ratio=0.5, block_size=4, bits=2, border=1)
        bitstreams = encode_batch(maps, config)
        decode_batch(bitstreams)
        coded_mask_batch([read_sparse(data) for data in bitstreams])
    return time.monotonic() - started
