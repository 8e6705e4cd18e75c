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
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass

import numpy as np
from bitarray import bitarray
from bitarray.util import canonical_decode

from codec.bitpack import pack_fields, unpack_fields
from codec.errors import BitstreamError

LENGTH_FIELD_BITS = 5
MAX_CODE_LENGTH = (1 << LENGTH_FIELD_BITS) - 1


@dataclass
class HuffmanTable:
    """A canonical code: ``count[l]`` codes of length l, for ``symbols`` in canonical order."""

    symbol_bits: int
    count: list[int]
    symbols: list[int]

    @property
    def max_length(self) -> int:
        return len(self.count) - 1

    def code_lengths(self) -> np.ndarray:
        """Return an int64 array mapping each symbol value to its code length (0 where absent)."""
        lengths = np.zeros(1 << self.symbol_bits, dtype=np.int64)
        if self.max_length == 0:
            return lengths  # the one symbol's code is empty
        per_symbol = np.repeat(np.arange(len(self.count)), self.count)
        lengths[np.asarray(self.symbols, dtype=np.int64)] = per_symbol
        return lengths

    def table_bits(self) -> int:
        """Return the size of the serialized table in bits."""
        if self.max_length == 0:
            return LENGTH_FIELD_BITS + self.symbol_bits
        return LENGTH_FIELD_BITS + self.max_length * (self.symbol_bits + 1) + len(self.symbols) * self.symbol_bits


def huffman_lengths(weights: list[int]) -> list[int]:
    """Return the Huffman code length of each weight (at least two weights).

    Ties merge the node created first, so the lengths are deterministic.
    """
    heap = [(weight, node) for node, weight in enumerate(weights)]
    heapq.heapify(heap)
    members = [[node] for node in range(len(weights))]
    lengths = [0] * len(weights)

    while len(heap) > 1:
        weight_a, node_a = heapq.heappop(heap)
        weight_b, node_b = heapq.heappop(heap)
        merged = members[node_a] + members[node_b]
        for leaf in merged:
            lengths[leaf] += 1
        members.append(merged)
        heapq.heappush(heap, (weight_a + weight_b, len(members) - 1))
    return lengths


@dataclass
class HuffmanCode:
    """The code of every symbol value: its bits as an integer and its length (0 where absent)."""

    values: np.ndarray
    lengths: np.ndarray

    def encode(self, symbols: np.ndarray) -> bitarray:
        """Return the concatenated codes of ``symbols``."""
        return pack_fields(self.values[symbols], self.lengths[symbols])


def canonical_codes(table: HuffmanTable) -> HuffmanCode:
    """Assign canonical codes as DEFLATE does: by length, then consecutive values in table order."""
    values = np.zeros(1 << table.symbol_bits, dtype=np.int64)
    lengths = np.zeros(1 << table.symbol_bits, dtype=np.int64)

    first_code, index = 0, 0
    for length in range(1, table.max_length + 1):
        first_code = (first_code + table.count[length - 1]) << 1
        for offset in range(table.count[length]):
            symbol = table.symbols[index]
            values[symbol] = first_code + offset
            lengths[symbol] = length
            index += 1
    return HuffmanCode(values, lengths)


def build_table(frequencies: np.ndarray, symbol_bits: int) -> tuple[HuffmanTable, HuffmanCode]:
    """Build the canonical Huffman code for symbol frequencies indexed by symbol value.

    Needs at least one symbol with a non-zero frequency.
    """
    present = np.flatnonzero(frequencies)
    if present.size == 0:
        raise ValueError("cannot build a Huffman table without symbols")

    # A one-symbol alphabet gets an empty code: the decoder repeats the
    # symbol as often as the header's count requires, so the data costs no bits.
    if present.size == 1:
        table = HuffmanTable(symbol_bits, [0], [int(present[0])])
        return table, canonical_codes(table)

    weights = frequencies[present].tolist()
    while True:
        lengths = huffman_lengths(weights)
        if max(lengths) <= MAX_CODE_LENGTH:
            break
        # Flatten the distribution until the longest code fits in the
        # table's length field; halving keeps every symbol present.
        weights = [(weight + 1) // 2 for weight in weights]

    order = sorted(range(present.size), key=lambda i: (lengths[i], int(present[i])))
    count = [0] * (max(lengths) + 1)
    for length in lengths:
        count[length] += 1
    table = HuffmanTable(symbol_bits, count, [int(present[i]) for i in order])
    return table, canonical_codes(table)


def estimate_cost(frequencies: np.ndarray, symbol_bits: int) -> float:
    """Estimate the bits of a Huffman code for these frequencies, table included.

    Each symbol is charged its self-information, but at least one bit, as a
    Huffman code charges it. The table is charged its exact layout, with the
    longest code taken as the longest self-information. The estimate is
    cheap enough to compare alphabets; ``build_table`` gives the exact code.
    """
    counts = frequencies[frequencies > 0].astype(np.float64)
    if counts.size == 1:
        return float(LENGTH_FIELD_BITS + symbol_bits)

    lengths = np.maximum(np.log2(counts.sum() / counts), 1.0)
    max_length = min(int(np.ceil(lengths.max())), MAX_CODE_LENGTH)
    table = LENGTH_FIELD_BITS + max_length * (symbol_bits + 1) + counts.size * symbol_bits
    return float(table + (counts * lengths).sum())


def write_table(table: HuffmanTable) -> bitarray:
    """Serialize ``table`` in the layout described in the module docstring."""
    fields = [table.max_length]
    widths = [LENGTH_FIELD_BITS]
    if table.max_length > 0:
        fields += table.count[1:]
        widths += [table.symbol_bits + 1] * table.max_length
    fields += table.symbols
    widths += [table.symbol_bits] * len(table.symbols)
    return pack_fields(np.asarray(fields), np.asarray(widths))


def read_table(table_bits: bitarray, symbol_bits: int, what: str) -> HuffmanTable:
    """Parse and check a table that fills ``table_bits`` exactly."""
    (max_length,), position = unpack_fields(table_bits, 0, np.array([LENGTH_FIELD_BITS]), f"{what} table")
    max_length = int(max_length)

    if max_length == 0:
        symbols, position = unpack_fields(table_bits, position, np.array([symbol_bits]), f"{what} table")
        count = [0]
    else:
        counts, position = unpack_fields(
            table_bits, position, np.full(max_length, symbol_bits + 1), f"{what} table"
        )
        count = [0] + [int(c) for c in counts]
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
        symbols, position = unpack_fields(table_bits, position, np.full(total, symbol_bits), f"{what} table")
        if np.unique(symbols).size != symbols.size:
            raise BitstreamError(f"{what} table lists a symbol twice")

    if position != len(table_bits):
        raise BitstreamError(f"{what} table has {len(table_bits) - position} unexpected trailing bits")
    return HuffmanTable(symbol_bits, count, [int(s) for s in symbols])


def decode_symbols(bits: bitarray, table: HuffmanTable, count: int, what: str) -> np.ndarray:
    """Decode exactly ``count`` symbols that fill ``bits`` exactly."""
    if table.max_length == 0:
        if len(bits):
            raise BitstreamError(f"{what} uses a one-symbol table but carries {len(bits)} code bits, expected 0")
        return np.full(count, table.symbols[0], dtype=np.int64)

    # Every code is 1..L bits long, which bounds the work before decoding.
    if not count <= len(bits) <= count * table.max_length:
        raise BitstreamError(
            f"{what} has {len(bits)} code bits for {count} symbols; "
            f"codes of 1..{table.max_length} bits need {count}..{count * table.max_length}"
        )
    try:
        decoded = np.fromiter(
            itertools.islice(canonical_decode(bits, table.count, table.symbols), count), dtype=np.int64, count=count
        )
    except ValueError as error:
        raise BitstreamError(f"{what} does not decode: {error}") from error

    used = int(table.code_lengths()[decoded].sum())
    if used != len(bits):
        raise BitstreamError(f"{what} decodes {count} symbols from {used} bits but carries {len(bits)}")
    return decoded
