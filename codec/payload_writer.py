"""The compiled payload writer: positions and levels of one map in a single call.

``codec.sections`` specifies the payload (gap coding of positions, dense
and zero-run coding of levels) and decodes it. This module writes it,
choosing the level coding by estimated cost, with numba-compiled loops
from ``codec.kernels``. The round-trip tests check that both sides agree.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from codec.kernels import LENGTH_FIELD_BITS, build_code, estimate_cost, histogram

# 5-bit gap classes cover gaps below 2**31, far above the 2**24 elements
# that a map may have (codec.sparse.MAX_ELEMENTS). ``histogram`` relies on it.
CLASS_BITS = 5
MAX_SYMBOL_BITS = 8
VALUE_GROUPS = (1, 2, 4, 8)

# Level coding methods, as returned by encode_payload.
DENSE_METHOD = 0
ZERO_RUNS_METHOD = 1


@njit(cache=True)
def _put(out: np.ndarray, position: int, value: int, width: int) -> int:
    # OR the low ``width`` bits of ``value`` into ``out`` at bit ``position``,
    # MSB first, and return the position after them.
    value &= (1 << width) - 1
    while width > 0:
        room = 8 - (position & 7)
        take = min(room, width)
        width -= take
        out[position >> 3] |= ((value >> width) & ((1 << take) - 1)) << (room - take)
        position += take
    return position


@njit(cache=True)
def table_bit_count(count: np.ndarray, symbol_count: int, symbol_bits: int) -> int:
    """Return the size in bits of a serialized table (layout in ``codec.huffman``)."""
    return LENGTH_FIELD_BITS + (count.size - 1) * (symbol_bits + 1) + symbol_count * symbol_bits


@njit(cache=True)
def put_table(out: np.ndarray, position: int, count: np.ndarray, symbols: np.ndarray, symbol_bits: int) -> int:
    """Write a table (layout in ``codec.huffman``) at bit ``position`` of ``out``; return the position after it."""
    max_length = count.size - 1
    position = _put(out, position, max_length, LENGTH_FIELD_BITS)
    for length in range(1, max_length + 1):
        position = _put(out, position, count[length], symbol_bits + 1)
    for symbol in symbols:
        position = _put(out, position, symbol, symbol_bits)
    return position


@njit(cache=True)
def put_codes(
    out: np.ndarray, position: int, symbols: np.ndarray, code_values: np.ndarray, code_lengths: np.ndarray
) -> int:
    """Write the code of each symbol at bit ``position`` of ``out`` and return the position after them."""
    for symbol in symbols:
        position = _put(out, position, code_values[symbol], code_lengths[symbol])
    return position


@njit(cache=True)
def gap_classes(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the gap of each sorted, distinct index and its class, the gap's bit length (0 for 0)."""
    gaps = np.empty(indices.size, dtype=np.int64)
    classes = np.zeros(indices.size, dtype=np.int64)
    previous = -1
    for i in range(indices.size):
        gap = indices[i] - previous - 1
        previous = indices[i]
        gaps[i] = gap
        gap_class = 0
        while gap >> gap_class:
            gap_class += 1
        classes[i] = gap_class
    return gaps, classes


@njit(cache=True)
def extra_bit_count(class_frequencies: np.ndarray) -> int:
    """Return the number of extra bits of gaps with these class frequencies: c - 1 per gap of class c >= 2."""
    total = 0
    for gap_class in range(2, class_frequencies.size):
        total += class_frequencies[gap_class] * (gap_class - 1)
    return total


@njit(cache=True)
def put_extras(out: np.ndarray, position: int, gaps: np.ndarray, classes: np.ndarray) -> int:
    """Write the bits of each gap below its leading one and return the position after them."""
    for i in range(gaps.size):
        if classes[i] >= 2:
            position = _put(out, position, gaps[i], classes[i] - 1)
    return position


@njit(cache=True)
def pair_symbols(symbols: np.ndarray, symbol_bits: int) -> np.ndarray:
    """Merge symbols two by two into symbols of twice the bits, the first in the high bits.

    An odd count is padded with a 0 symbol.
    """
    paired = np.empty((symbols.size + 1) // 2, dtype=np.int64)
    for i in range(paired.size):
        low = symbols[2 * i + 1] if 2 * i + 1 < symbols.size else 0
        paired[i] = (symbols[2 * i] << symbol_bits) | low
    return paired


@njit(cache=True)
def choose_group(levels: np.ndarray, bits: int) -> tuple[float, int, np.ndarray]:
    """Return the smallest estimated cost of coding ``levels``, its group size and its symbols.

    Groups of g levels form one symbol of g * bits bits, the first level in
    the most significant bits and the last group padded with level 0. Each
    size in ``VALUE_GROUPS`` with g * bits <= 8 is built by pairing the
    symbols of the size before.
    """
    best_cost = estimate_cost(histogram(levels, 1 << bits), bits)
    best_group, best_symbols = 1, levels
    group, current = 1, levels
    while 2 * group <= VALUE_GROUPS[-1] and 2 * group * bits <= MAX_SYMBOL_BITS:
        current = pair_symbols(current, group * bits)
        group *= 2
        cost = estimate_cost(histogram(current, 1 << (group * bits)), group * bits)
        if cost < best_cost:
            best_cost, best_group, best_symbols = cost, group, current
    return best_cost, best_group, best_symbols


@njit(cache=True)
def code_section(
    symbols: np.ndarray, symbol_bits: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Build the Huffman code of ``symbols``: returns the code, the table size and the code size in bits.

    The code is ``(count, canonical symbols, code values, code lengths)`` as
    ``build_code`` returns it, and the symbols themselves come back first.
    No symbols give an empty table and code of 0 bits.
    """
    frequencies = histogram(symbols, 1 << symbol_bits)
    if symbols.size == 0:
        return symbols, np.zeros(1, dtype=np.int64), symbols, frequencies, frequencies, 0, 0
    count, canonical, code_values, code_lengths = build_code(frequencies)
    code_bits = 0
    for symbol in range(frequencies.size):
        code_bits += frequencies[symbol] * code_lengths[symbol]
    table_bits = table_bit_count(count, canonical.size, symbol_bits)
    return symbols, count, canonical, code_values, code_lengths, table_bits, code_bits


@njit(cache=True)
def estimate_gap_cost(classes: np.ndarray) -> float:
    """Estimate the bits of coding gaps of these classes: class codes, class table and extra bits."""
    frequencies = histogram(classes, 1 << CLASS_BITS)
    return estimate_cost(frequencies, CLASS_BITS) + extra_bit_count(frequencies)


@njit(cache=True)
def _nonzero_indices(levels: np.ndarray) -> np.ndarray:
    count = 0
    for level in levels:
        count += level != 0
    indices = np.empty(count, dtype=np.int64)
    written = 0
    for i in range(levels.size):
        if levels[i]:
            indices[written] = i
            written += 1
    return indices


@njit(cache=True)
def choose_level_coding(
    levels: np.ndarray, bits: int
) -> tuple[int, int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pick the cheaper of the two level codings in ``codec.sections`` by their estimated cost.

    Returns the method, the group size, the number of non-zero levels (0 for
    the dense coding), the level symbols to code and, for zero runs, the
    non-zero levels' indices with their gaps and gap classes. Levels that
    are all zero use the dense coding, whose one-symbol table makes them
    nearly free.
    """
    empty = np.zeros(0, dtype=np.int64)
    dense_cost, dense_group, dense_symbols = choose_group(levels, bits)
    nonzero = _nonzero_indices(levels)
    if nonzero.size:
        runs_cost, runs_group, runs_symbols = choose_group(levels[nonzero] - 1, bits)
        gaps, classes = gap_classes(nonzero)
        runs_cost += estimate_gap_cost(classes)
        if runs_cost < dense_cost:
            return ZERO_RUNS_METHOD, runs_group, nonzero.size, runs_symbols, nonzero, gaps, classes
    return DENSE_METHOD, dense_group, 0, dense_symbols, empty, empty, empty


@njit(cache=True)
def encode_indices(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Write sorted, distinct indices as three parts: class table, class codes and extra bits.

    Returns the bytes and each part's length in bits.
    """
    gaps, classes = gap_classes(indices)
    _, count, canonical, code_values, code_lengths, table_bits, code_bits = code_section(classes, CLASS_BITS)
    part_bits = np.array([table_bits, code_bits, extra_bit_count(histogram(classes, 1 << CLASS_BITS))], dtype=np.int64)

    out = np.zeros((part_bits.sum() + 7) // 8, dtype=np.uint8)
    position = put_table(out, 0, count, canonical, CLASS_BITS)
    position = put_codes(out, position, classes, code_values, code_lengths)
    put_extras(out, position, gaps, classes)
    return out, part_bits


@njit(cache=True)
def encode_payload(units: np.ndarray, levels: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray, int, int, int]:
    """Write a map's payload: the kept units' index parts, then the level parts.

    Returns the payload bytes, each part's length in bits, the level coding
    method, its group size and its number of non-zero levels. No levels at
    all (every kept block lies on the border) gives two empty level parts.
    """
    unit_gaps, unit_classes = gap_classes(units)
    unit_code = code_section(unit_classes, CLASS_BITS)
    unit_extra_bits = extra_bit_count(histogram(unit_classes, 1 << CLASS_BITS))

    method, group, nonzero = DENSE_METHOD, 1, 0
    symbols = np.zeros(0, dtype=np.int64)
    run_gaps, run_classes = symbols, symbols
    if levels.size:
        method, group, nonzero, symbols, _, run_gaps, run_classes = choose_level_coding(levels, bits)
    level_code = code_section(symbols, group * bits)
    run_code = code_section(run_classes, CLASS_BITS)

    part_bits = np.zeros(8 if method == ZERO_RUNS_METHOD else 5, dtype=np.int64)
    part_bits[0], part_bits[1], part_bits[2] = unit_code[5], unit_code[6], unit_extra_bits
    if levels.size:
        part_bits[3], part_bits[4] = level_code[5], level_code[6]
    if method == ZERO_RUNS_METHOD:
        part_bits[5], part_bits[6] = run_code[5], run_code[6]
        part_bits[7] = extra_bit_count(histogram(run_classes, 1 << CLASS_BITS))

    out = np.zeros((part_bits.sum() + 7) // 8, dtype=np.uint8)
    position = put_table(out, 0, unit_code[1], unit_code[2], CLASS_BITS)
    position = put_codes(out, position, unit_classes, unit_code[3], unit_code[4])
    position = put_extras(out, position, unit_gaps, unit_classes)
    if levels.size:
        position = put_table(out, position, level_code[1], level_code[2], group * bits)
        position = put_codes(out, position, symbols, level_code[3], level_code[4])
    if method == ZERO_RUNS_METHOD:
        position = put_table(out, position, run_code[1], run_code[2], CLASS_BITS)
        position = put_codes(out, position, run_classes, run_code[3], run_code[4])
        put_extras(out, position, run_gaps, run_classes)
    return out, part_bits, method, group, nonzero
