"""Entropy coding of the payload: kept-unit positions and value levels.

The payload is a sequence of parts (Huffman tables, Huffman codes and raw
extra bits) packed back to back, MSB first. The header carries the exact
bit length of every part, so byte padding is never read as data.

Gaps: a sorted sequence of distinct indices becomes gaps, ``i[0]`` and then
``i[n] - i[n-1] - 1``. A gap d is coded as its class c, the bit length of d
(0 for d = 0), with a Huffman code over 5-bit classes, and the extra bits
hold, gap by gap, the c - 1 bits of d below its leading one (for c >= 2), as
JPEG codes coefficient magnitudes. Positions are the gaps of the kept units.

Levels have two codings, and the encoder computes the exact size of both
(every group size of each) and keeps the smallest:

- dense: the b-bit levels are grouped g at a time into one symbol of g * b
  bits, the first level in the most significant bits and the last group
  padded with level 0. A Huffman code over groups can spend less than one
  bit per level and captures the correlation of neighbouring levels. The encoder
  tries every g in ``VALUE_GROUPS`` with g * b <= 8.
- zero runs: the indices of the non-zero levels are coded as gaps, and the
  non-zero levels minus one are grouped as in the dense coding. Post-ReLU
  features quantize mostly to level 0, and a Huffman code cannot spend less
  than one bit per symbol, so runs beat groups when zeros dominate.

``codec.payload_writer`` writes the payload in compiled code. The decoder
here checks every declared size before its compiled loops read the bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from bitarray import bitarray

from codec import kernels, payload_writer
from codec.errors import BitstreamError
from codec.huffman import decode_symbols, read_table
from codec.payload_writer import CLASS_BITS

DENSE = "dense"
ZERO_RUNS = "zero-runs"

# Number of payload parts for each coding: 3 for positions (table, codes,
# extra bits), then 2 for the levels (table, codes), then for zero runs 3
# more for the run gaps.
PART_COUNTS = {DENSE: 5, ZERO_RUNS: 8}


@dataclass
class LevelCoding:
    """The coding method of the levels and the header fields that the decoder needs for it."""

    method: str
    group: int
    nonzero: int


def join_parts(parts: list[bitarray]) -> tuple[bytes, list[int]]:
    """Concatenate parts into bytes, zero-padded, and return them with each part's length in bits."""
    joined = bitarray(endian="big")
    for part in parts:
        joined += part
    return joined.tobytes(), [len(part) for part in parts]


def split_parts(payload: bytes, part_bits: list[int], expected: int) -> list[bitarray]:
    """Cut ``payload`` into ``expected`` parts after checking their lengths against it."""
    if len(part_bits) != expected:
        raise BitstreamError(f"payload declares {len(part_bits)} parts, this coding needs {expected}")
    total = sum(part_bits)
    if len(payload) != (total + 7) // 8:
        raise BitstreamError(
            f"payload declares {total} bits, which need {(total + 7) // 8} bytes, but carries {len(payload)} bytes"
        )

    bits = bitarray(endian="big")
    bits.frombytes(payload)
    if bits[total:].any():
        raise BitstreamError("payload has non-zero padding bits")

    parts, start = [], 0
    for length in part_bits:
        parts.append(bits[start : start + length])
        start += length
    return parts


def encode_indices(indices: np.ndarray) -> list[bitarray]:
    """Code sorted, distinct indices as gap classes and extra bits: [table, codes, extra bits]."""
    payload, part_bits = payload_writer.encode_indices(np.ascontiguousarray(indices, dtype=np.int64))
    return split_parts(payload.tobytes(), part_bits.tolist(), 3)


def decode_indices(parts: list[bitarray], count: int, limit: int, what: str) -> np.ndarray:
    """Decode ``count`` sorted, distinct indices below ``limit``."""
    table_bits, code_bits, extra_bits = parts
    table = read_table(table_bits, CLASS_BITS, what)
    classes = decode_symbols(code_bits, table, count, what)

    if int(classes.max()) > max(1, (limit - 1).bit_length()):
        raise BitstreamError(f"{what} has a gap class {int(classes.max())}, too large for {limit} indices")
    indices, needed = kernels.gaps_to_indices(
        classes, np.frombuffer(extra_bits.tobytes(), dtype=np.uint8), len(extra_bits)
    )
    if needed != len(extra_bits):
        raise BitstreamError(f"{what} carries {len(extra_bits)} extra bits, its classes need {needed}")
    if indices[-1] >= limit:
        raise BitstreamError(f"{what} points at index {int(indices[-1])}, beyond the {limit} available")
    return indices


def ungroup_levels(symbols: np.ndarray, bits: int, group: int) -> np.ndarray:
    """Split each symbol back into ``group`` uint8 levels."""
    symbols = np.ascontiguousarray(symbols, dtype=np.uint8)
    return symbols if group == 1 else kernels.ungroup(symbols, bits, group)


def decode_grouped(parts: list[bitarray], bits: int, group: int, count: int, what: str) -> np.ndarray:
    table_bits, code_bits = parts
    table = read_table(table_bits, group * bits, what)
    levels = decode_symbols(code_bits, table, -(-count // group), what, group)
    if levels[count:].any():
        raise BitstreamError(f"{what} pads its last group with non-zero levels")
    return levels[:count]


def encode_payload(units: np.ndarray, levels: np.ndarray, bits: int) -> tuple[bytes, list[int], LevelCoding]:
    """Write a map's payload: the kept units' three parts, then the parts of the cheaper level coding.

    Returns the payload bytes, each part's length in bits and the level
    coding. No levels at all (every kept block lies on the border) gives two
    empty level parts. Levels that are all zero use the dense coding, whose
    one-symbol table makes them nearly free.
    """
    payload, part_bits, method, group, nonzero = payload_writer.encode_payload(
        np.ascontiguousarray(units, dtype=np.int64), np.ascontiguousarray(levels, dtype=np.uint8), bits
    )
    coding = LevelCoding(ZERO_RUNS if method == payload_writer.ZERO_RUNS_METHOD else DENSE, group, nonzero)
    return payload.tobytes(), part_bits.tolist(), coding


def decode_levels(parts: list[bitarray], coding: LevelCoding, bits: int, count: int) -> np.ndarray:
    """Decode ``count`` levels of ``bits`` bits from their parts."""
    if count == 0:
        if any(len(part) for part in parts) or coding.method != DENSE:
            raise BitstreamError("values must be empty, dense-coded parts when no element is coded")
        return np.zeros(0, dtype=np.uint8)

    if coding.method == DENSE:
        return decode_grouped(parts, bits, coding.group, count, "values")

    if not 1 <= coding.nonzero <= count:
        raise BitstreamError(f"nonzero_values {coding.nonzero} is outside 1..{count}")
    # The symbols are non-zero levels minus one. Check them before adding
    # one, which could wrap around in uint8.
    nonzero_levels = decode_grouped(parts[:2], bits, coding.group, coding.nonzero, "values")
    if int(nonzero_levels.max()) >= (1 << bits) - 1:
        raise BitstreamError(f"values hold level {int(nonzero_levels.max()) + 1}, above the {bits}-bit maximum")
    nonzero_levels += 1
    indices = decode_indices(parts[2:], coding.nonzero, count, "zero runs")

    levels = np.zeros(count, dtype=np.uint8)
    levels[indices] = nonzero_levels
    return levels
