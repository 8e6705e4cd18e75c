"""Codec settings shared by the encoder, the decoder and ``simulate``."""

from __future__ import annotations

import math
from dataclasses import dataclass

MODES = ("channel-wise", "region-wise", "global")
KEEP_RATIOS = (1.0, 0.5, 0.3, 0.1, 0.05)  # the ratios the experiments sweep; any in (0, 1] works
MAX_BITS = 8
MAX_BLOCK_SIZE = 64
MAX_BORDER = 1024


@dataclass(frozen=True)
class CodecConfig:
    """Block-sparse quantization settings.

    ``mode`` picks how blocks compete: ``channel-wise``, ``region-wise`` or
    ``global``. ``keep_ratio`` is the fraction of blocks kept (of block
    positions in region-wise mode). ``block_size`` is the side of a block in
    feature pixels, where 1 means element sparsity. ``bits`` is the depth of
    the uniform quantizer, and ``border`` is the width of the zeroed ring in
    feature pixels.
    """

    mode: str = "global"
    keep_ratio: float = 0.1
    block_size: int = 4
    bits: int = 2
    border: int = 1

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"invalid mode {self.mode!r}; valid: {', '.join(MODES)}")
        if not (isinstance(self.keep_ratio, (int, float)) and 0.0 < self.keep_ratio <= 1.0):
            raise ValueError(f"invalid keep_ratio {self.keep_ratio!r}; it must be in (0, 1], for example 0.1")
        if not (isinstance(self.block_size, int) and 1 <= self.block_size <= MAX_BLOCK_SIZE):
            raise ValueError(f"invalid block_size {self.block_size!r}; valid: integers 1..{MAX_BLOCK_SIZE}")
        if not (isinstance(self.bits, int) and 1 <= self.bits <= MAX_BITS):
            raise ValueError(f"invalid bits {self.bits!r}; valid: integers 1..{MAX_BITS}")
        if not (isinstance(self.border, int) and 0 <= self.border <= MAX_BORDER):
            raise ValueError(f"invalid border {self.border!r}; valid: integers 0..{MAX_BORDER}")


def kept_count(keep_ratio: float, units: int) -> int:
    """Return how many of ``units`` candidates to keep: ``keep_ratio * units`` rounded half up, at least 1."""
    return min(units, max(1, math.floor(keep_ratio * units + 0.5)))
