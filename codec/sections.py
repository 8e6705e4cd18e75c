"""Coding of the two payload sections: value levels and kept-unit positions.

Each section is a table, then Huffman codes, then raw extra bits, packed
MSB first. Their exact bit lengths travel in the header, so byte padding is
never read as data.

Values: the b-bit levels are grouped ``g`` at a time into one symbol of
``g * b`` bits (the first level in the most significant bits; the last group
is padded with level 0). Grouping lets Huffman codes spend less than one bit
per level and captures the correlation of neighbouring levels. The encoder
tries every ``g`` in ``VALUE_GROUPS`` with ``g * b <= 8`` and keeps the one
with the fewest bits, table included.

Positions: the sorted unit indices become gaps, ``u[0]`` and then
``u[i] - u[i-1] - 1``. A gap d is coded as its class ``c`` = bit length of d
(0 for d = 0) with a Huffman code over 5-bit classes, followed in the extra
bits by the ``c - 1`` low bits of d (d minus its leading one) for c >= 2, as
JPEG codes coefficient magnitudes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from bitarray import bitarray

from codec.bitpack import pack_fields, to_bit_vector, unpack_fields
from codec.errors import BitstreamError
from codec.huffman import build_table, decode_symbols, encode_symbols, read_table, write_table

VALUE_GROUPS = (1, 2, 4, 8)
MAX_SYMBOL_BITS = 8
CLASS_BITS = 5


@dataclass
class Section:
    """A coded section: its bytes and the exact bit length of each part."""

    data: bytes
    table_bits: int
    code_bits: int
    extra_bits: int

    @classmethod
    def from_parts(cls, table: bitarray, codes: bitarray, extra: bitarray) -> "Section":
        joined = table + codes + extra
        return cls(joined.tobytes(), len(table), len(codes), len(extra))

    def split(self, what: str) -> tuple[bitarray, bitarray, bitarray]:
        """Return the table, code and extra bits, after checking the lengths against the data."""
        total = self.table_bits + self.code_bits + self.extra_bits
        if len(self.data) != (total + 7) // 8:
            raise BitstreamError(
                f"{what} section declares {total} bits, which need {(total + 7) // 8} bytes, "
                f"but carries {len(self.data)} bytes"
            )
        bits = bitarray(endian="big")
        bits.frombytes(self.data)
        if bits[total:].any():
            raise BitstreamError(f"{what} section has non-zero padding bits")
        table_end = self.table_bits
        code_end = table_end + self.code_bits
        return bits[:table_end], bits[table_end:code_end], bits[code_end:total]


EMPTY_SECTION = Section(b"", 0, 0, 0)


def value_groups(bits: int) -> list[int]:
    """Return the group sizes that the encoder tries for ``bits``-bit levels."""
    return [g for g in VALUE_GROUPS if g * bits <= MAX_SYMBOL_BITS]


def group_levels(levels: np.ndarray, bits: int, group: int) -> np.ndarray:
    """Pack ``group`` consecutive levels into one symbol each."""
    padded = np.zeros(-(-levels.size // group) * group, dtype=np.int64)
    padded[: levels.size] = levels
    shifts = bits * np.arange(group - 1, -1, -1, dtype=np.int64)
    return (padded.reshape(-1, group) << shifts).sum(axis=1)


def ungroup_levels(symbols: np.ndarray, bits: int, group: int, count: int) -> np.ndarray:
    """Split symbols back into ``count`` levels."""
    shifts = bits * np.arange(group - 1, -1, -1, dtype=np.int64)
    levels = (symbols[:, None] >> shifts) & ((1 << bits) - 1)
    return levels.reshape(-1)[:count]


def encode_values(levels: np.ndarray, bits: int) -> tuple[Section, int]:
    """Code the levels with the cheapest group size; return the section and that size.

    No levels at all (every kept block lies on the border) gives an empty
    section.
    """
    if levels.size == 0:
        return EMPTY_SECTION, 1

    best = None
    for group in value_groups(bits):
        symbols = group_levels(levels, bits, group)
        frequencies = np.bincount(symbols, minlength=1 << (group * bits))
        table, codes = build_table(frequencies, group * bits)
        cost = table.table_bits() + int((frequencies * table.code_lengths()).sum())
        if best is None or cost < best[0]:
            best = (cost, group, table, codes, symbols)

    _, group, table, codes, symbols = best
    return Section.from_parts(write_table(table), encode_symbols(codes, symbols), bitarray()), group


def decode_values(section: Section, bits: int, group: int, count: int) -> np.ndarray:
    """Decode ``count`` levels of ``bits`` bits coded ``group`` per symbol."""
    table_bits, code_bits, extra_bits = section.split("values")
    if count == 0:
        if section.table_bits or section.code_bits or section.extra_bits:
            raise BitstreamError("values section must be empty when no element is coded")
        return np.zeros(0, dtype=np.int64)
    if extra_bits:
        raise BitstreamError(f"values section carries {len(extra_bits)} extra bits, expected 0")

    table = read_table(to_bit_vector(table_bits), group * bits, "values")
    symbols = decode_symbols(code_bits, table, -(-count // group), "values")
    levels = ungroup_levels(symbols, bits, group, -(-count // group) * group)
    if levels[count:].any():
        raise BitstreamError("values section pads its last group with non-zero levels")
    return levels[:count]


def gap_classes(gaps: np.ndarray) -> np.ndarray:
    """Return the bit length of each non-negative gap (0 for 0)."""
    classes = np.zeros(gaps.size, dtype=np.int64)
    nonzero = gaps > 0
    classes[nonzero] = np.floor(np.log2(gaps[nonzero])).astype(np.int64) + 1
    return classes


def encode_positions(units: np.ndarray) -> Section:
    """Code sorted, distinct unit indices as gap classes plus extra bits."""
    gaps = np.diff(units, prepend=-1) - 1
    classes = gap_classes(gaps)
    extra_widths = np.maximum(classes - 1, 0)
    extras = gaps - np.where(classes > 0, np.left_shift(1, np.maximum(classes - 1, 0)), 0)

    frequencies = np.bincount(classes, minlength=1 << CLASS_BITS)
    table, codes = build_table(frequencies, CLASS_BITS)
    return Section.from_parts(write_table(table), encode_symbols(codes, classes), pack_fields(extras, extra_widths))


def decode_positions(section: Section, count: int, units: int) -> np.ndarray:
    """Decode ``count`` sorted unit indices, each below ``units``."""
    table_bits, code_bits, extra_bits = section.split("positions")
    table = read_table(to_bit_vector(table_bits), CLASS_BITS, "positions")
    classes = decode_symbols(code_bits, table, count, "positions")

    if classes.max() > max(1, int(units - 1).bit_length()):
        raise BitstreamError(f"positions section has a gap class {int(classes.max())} too large for {units} units")
    extra_widths = np.maximum(classes - 1, 0)
    if int(extra_widths.sum()) != len(extra_bits):
        raise BitstreamError(
            f"positions section carries {len(extra_bits)} extra bits, its classes need {int(extra_widths.sum())}"
        )
    extras, _ = unpack_fields(to_bit_vector(extra_bits), 0, extra_widths, "positions extra bits")

    gaps = extras + np.where(classes > 0, np.left_shift(1, np.maximum(classes - 1, 0)), 0)
    positions = np.cumsum(gaps + 1) - 1
    if positions[-1] >= units:
        raise BitstreamError(f"positions section points at unit {int(positions[-1])}, beyond the {units} units")
    return positions
