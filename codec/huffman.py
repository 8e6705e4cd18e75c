"""Canonical Huffman tables: construction, compact serialization and decoding.

Table layout, MSB first, for symbols of ``w`` bits:

- 5 bits: L, the longest code length (1..31), or 0 for a one-symbol table;
- if L = 0: one symbol, ``w`` bits. Its code is empty, so every occurrence
  costs 0 bits and the symbol count alone says how many there are;
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
from bitarray.util import canonical_decode, canonical_huffman

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


def build_table(frequencies: np.ndarray, symbol_bits: int) -> tuple[HuffmanTable, dict[int, bitarray]]:
    """Build the canonical Huffman code for symbol frequencies indexed by symbol value.

    Returns the table and the code of each present symbol. Needs at least one
    symbol with a non-zero frequency.
    """
    present = np.flatnonzero(frequencies)
    if present.size == 0:
        raise ValueError("cannot build a Huffman table without symbols")

    # A one-symbol alphabet gets an empty code: the decoder repeats the
    # symbol as often as the header says, so the data costs no bits at all.
    if present.size == 1:
        symbol = int(present[0])
        return HuffmanTable(symbol_bits, [0], [symbol]), {symbol: bitarray(endian="big")}

    weights = {int(s): int(frequencies[s]) for s in present}
    while True:
        codes, count, symbols = canonical_huffman(weights)
        if len(count) - 1 <= MAX_CODE_LENGTH:
            break
        # Flatten the distribution until the longest code fits in the
        # table's length field; halving keeps every symbol present.
        weights = {s: (w + 1) // 2 for s, w in weights.items()}
    return HuffmanTable(symbol_bits, list(count), list(symbols)), codes


def estimate_cost(frequencies: np.ndarray, symbol_bits: int) -> int:
    """Return the bits of a Huffman code for these frequencies, table included.

    It merges weights as Huffman's algorithm does but builds no codes, so it
    is cheap enough to compare alphabets. Ties may shape the tree
    differently from ``build_table``, which can change the longest code
    length and so the table size by a few bits.
    """
    weights = frequencies[frequencies > 0].tolist()
    if len(weights) == 1:
        return LENGTH_FIELD_BITS + symbol_bits

    heap = [(weight, 0) for weight in weights]
    heapq.heapify(heap)
    code_bits = 0
    while len(heap) > 1:
        weight_a, depth_a = heapq.heappop(heap)
        weight_b, depth_b = heapq.heappop(heap)
        code_bits += weight_a + weight_b
        heapq.heappush(heap, (weight_a + weight_b, max(depth_a, depth_b) + 1))
    max_length = min(heap[0][1], MAX_CODE_LENGTH)
    return LENGTH_FIELD_BITS + max_length * (symbol_bits + 1) + len(weights) * symbol_bits + code_bits


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


def read_table(bit_vector: np.ndarray, symbol_bits: int, what: str) -> HuffmanTable:
    """Parse and check a table that fills ``bit_vector`` exactly."""
    (max_length,), position = unpack_fields(bit_vector, 0, np.array([LENGTH_FIELD_BITS]), f"{what} table")
    max_length = int(max_length)

    if max_length == 0:
        symbols, position = unpack_fields(bit_vector, position, np.array([symbol_bits]), f"{what} table")
        count = [0]
    else:
        counts, position = unpack_fields(
            bit_vector, position, np.full(max_length, symbol_bits + 1), f"{what} table"
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
        symbols, position = unpack_fields(bit_vector, position, np.full(total, symbol_bits), f"{what} table")
        if np.unique(symbols).size != symbols.size:
            raise BitstreamError(f"{what} table lists a symbol twice")

    if position != bit_vector.size:
        raise BitstreamError(f"{what} table has {bit_vector.size - position} unexpected trailing bits")
    return HuffmanTable(symbol_bits, count, [int(s) for s in symbols])


def encode_symbols(codes: dict[int, bitarray], symbols: np.ndarray) -> bitarray:
    """Return the concatenated codes of ``symbols``."""
    coded = bitarray(endian="big")
    if symbols.size and len(codes) > 1:
        coded.encode(codes, symbols.tolist())
    return coded


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
