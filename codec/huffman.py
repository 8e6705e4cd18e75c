"""Canonical Huffman tables: construction, compact serialization and decoding.

Table layout, MSB first, for symbols of ``w`` bits:

- 5 bits: L, the longest code length (1..31), or 0 for a one-symbol table;
- if L = 0: one symbol, ``w`` bits. Its code is empty, so every occurrence
  costs 0 bits and the symbol count in the header gives their number;
- if L > 0: for each length 1..L, the number of codes of that length in
  ``w + 1`` bits, then every symbol in canonical order (by code length, then
  by value) in ``w`` bits each.

This is the counts-then-symbols form of DEFLATE and JPEG. A received table
must describe a complete prefix code (Kraft sum exactly 1) with at least two
distinct symbols, or be a one-symbol table.

Code construction and decoding run compiled in ``codec.kernels``; the tests
check both against bitarray's ``canonical_huffman`` and ``canonical_decode``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from bitarray import bitarray

from codec.bitpack import pack_fields
from codec.errors import BitstreamError
from codec.kernels import LENGTH_FIELD_BITS, build_code, decode_canonical, read_table_fields, ungroup


@dataclass(eq=False)
class HuffmanTable:
    """A canonical code: ``count[l]`` codes of length l, for ``symbols`` in canonical order."""

    symbol_bits: int
    count: list[int]
    symbols: np.ndarray  # int64

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HuffmanTable):
            return NotImplemented
        return (self.symbol_bits, self.count, self.symbols.tolist()) == (
            other.symbol_bits, other.count, other.symbols.tolist()
        )

    @property
    def max_length(self) -> int:
        return len(self.count) - 1

    def table_bits(self) -> int:
        """Return the size of the serialized table in bits."""
        if self.max_length == 0:
            return LENGTH_FIELD_BITS + self.symbol_bits
        return LENGTH_FIELD_BITS + self.max_length * (self.symbol_bits + 1) + len(self.symbols) * self.symbol_bits


@dataclass
class HuffmanCode:
    """The code of every symbol value: its bits as an integer and its length (0 where absent)."""

    values: np.ndarray
    lengths: np.ndarray

    def encode(self, symbols: np.ndarray) -> bitarray:
        """Return the concatenated codes of ``symbols``."""
        return pack_fields(self.values[symbols], self.lengths[symbols])


def build_table(frequencies: np.ndarray, symbol_bits: int) -> tuple[HuffmanTable, HuffmanCode]:
    """Build the canonical Huffman code for symbol frequencies indexed by symbol value.

    Needs at least one symbol with a non-zero frequency. The encoder builds
    its codes with the same compiled ``codec.kernels.build_code``.
    """
    if not np.any(frequencies):
        raise ValueError("cannot build a Huffman table without symbols")
    count, symbols, values, lengths = build_code(np.ascontiguousarray(frequencies, dtype=np.int64))
    table = HuffmanTable(symbol_bits, count.tolist(), symbols)
    return table, HuffmanCode(values, lengths)


def write_table(table: HuffmanTable) -> bitarray:
    """Serialize ``table`` in the layout described in the module docstring."""
    fields = [table.max_length]
    widths = [LENGTH_FIELD_BITS]
    if table.max_length > 0:
        fields += table.count[1:]
        widths += [table.symbol_bits + 1] * table.max_length
    fields += table.symbols.tolist()
    widths += [table.symbol_bits] * len(table.symbols)
    return pack_fields(np.asarray(fields), np.asarray(widths))


def read_table(table_bits: bitarray, symbol_bits: int, what: str) -> HuffmanTable:
    """Parse and check a table that fills ``table_bits`` exactly."""
    count, symbols, position, needed = read_table_fields(
        np.frombuffer(table_bits.tobytes(), dtype=np.uint8), len(table_bits), symbol_bits
    )
    if position < 0:
        raise BitstreamError(
            f"{what} table is truncated: a group of its fields needs {needed} bits, "
            f"the table has {len(table_bits)} in all"
        )

    count = count.tolist()
    max_length = len(count) - 1
    if max_length > 0:
        if count[-1] == 0:
            raise BitstreamError(f"{what} table declares longest code length {max_length} but has no code of it")
        total = sum(count)
        if total < 2 or total > (1 << symbol_bits):
            raise BitstreamError(
                f"{what} table lists {total} symbols; a {symbol_bits}-bit alphabet allows 2..{1 << symbol_bits}"
            )
        kraft = sum(c << (max_length - length) for length, c in enumerate(count) if length)
        if kraft != 1 << max_length:
            raise BitstreamError(
                f"{what} table is not a complete prefix code: Kraft sum {kraft}/{1 << max_length}, expected 1"
            )
        if np.bincount(symbols, minlength=1 << symbol_bits).max() > 1:
            raise BitstreamError(f"{what} table lists a symbol twice")

    if position != len(table_bits):
        raise BitstreamError(f"{what} table has {len(table_bits) - position} unexpected trailing bits")
    return HuffmanTable(symbol_bits, count, symbols)


def decode_symbols(bits: bitarray, table: HuffmanTable, count: int, what: str, group: int = 1) -> np.ndarray:
    """Decode exactly ``count`` symbols that fill ``bits`` exactly, as uint8.

    With ``group`` > 1, each symbol is split into ``group`` values as
    ``codec.sections.ungroup_levels`` does, and ``count * group`` values
    come back.
    """
    value_bits = table.symbol_bits // group
    if table.max_length == 0:
        if len(bits):
            raise BitstreamError(f"{what} uses a one-symbol table but carries {len(bits)} code bits, expected 0")
        return ungroup(np.full(count, int(table.symbols[0]), dtype=np.uint8), value_bits, group)

    # Every code is 1..L bits long, which bounds the work before decoding.
    if not count <= len(bits) <= count * table.max_length:
        raise BitstreamError(
            f"{what} has {len(bits)} code bits for {count} symbols; "
            f"codes of 1..{table.max_length} bits need {count}..{count * table.max_length}"
        )
    decoded, used = decode_canonical(
        np.frombuffer(bits.tobytes(), dtype=np.uint8),
        len(bits),
        count,
        np.asarray(table.count, dtype=np.int64),
        np.ascontiguousarray(table.symbols, dtype=np.int64),
        value_bits,
        group,
    )
    if used < 0:
        raise BitstreamError(
            f"{what} does not decode: its {len(bits)} code bits end before {count} symbols are complete"
        )
    if used != len(bits):
        raise BitstreamError(f"{what} decodes {count} symbols from {used} bits but carries {len(bits)}")
    return decoded
