"""The compiled payload writer: positions and levels of one map in a single call.

``codec.sections`` specifies the payload (gap coding of positions, dense
and zero-run coding of levels) and decodes it. This module writes it,
choosing the level coding by its exact size, with numba-compiled loops
from ``codec.kernels``. The round-trip tests check that both sides agree.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from codec.kernels import LENGTH_FIELD_BITS, build_code, histogram, put_codes

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
def group_sizes(bits: int) -> int:
    """Return how many sizes of ``VALUE_GROUPS`` fit in one symbol of at most 8 bits: groups 1, 2, 4, ... of that count."""
    sizes = 0
    while sizes < len(VALUE_GROUPS) and VALUE_GROUPS[sizes] * bits <= MAX_SYMBOL_BITS:
        sizes += 1
    return sizes


@njit(cache=True)
def pack_groups(values: np.ndarray, bits: int, group: int) -> np.ndarray:
    """Pack ``group`` values at a time into one symbol, the first in the high bits, the last group padded with 0."""
    symbols = np.empty((values.size + group - 1) // group, dtype=np.int64)
    for k in range(symbols.size):
        symbol = 0
        for i in range(k * group, k * group + group):
            symbol = (symbol << bits) | (values[i] if i < values.size else 0)
        symbols[k] = symbol
    return symbols


@njit(cache=True)
def group_histogram(values: np.ndarray, bits: int, group: int) -> np.ndarray:
    """Return the histogram (256 bins) of the symbols that ``pack_groups`` makes, without making them."""
    counts = np.zeros(1 << MAX_SYMBOL_BITS, dtype=np.int64)
    full = values.size // group
    for k in range(full):
        symbol = 0
        for i in range(k * group, k * group + group):
            symbol = (symbol << bits) | values[i]
        counts[symbol] += 1

    if values.size % group:
        symbol = 0
        for i in range(full * group, full * group + group):
            symbol = (symbol << bits) | (values[i] if i < values.size else 0)
        counts[symbol] += 1
    return counts


@njit(cache=True)
def level_statistics(levels: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Count what the size computations of both level codings need.

    Returns four items. The first is the symbol histograms of the dense
    coding, row r for groups of ``VALUE_GROUPS[r]`` levels. The second is
    the same histograms of the non-zero levels minus one, for the zero-run
    coding. The last two are the histogram of the zero runs' gap classes and
    the non-zero levels minus one.
    """
    sizes = group_sizes(bits)
    dense = np.zeros((sizes, 1 << MAX_SYMBOL_BITS), dtype=np.int64)
    runs = np.zeros((sizes, 1 << MAX_SYMBOL_BITS), dtype=np.int64)
    classes = np.zeros(1 << CLASS_BITS, dtype=np.int64)

    nonzero_levels = np.empty(levels.size, dtype=np.int64)
    nonzero, previous = 0, -1
    for i in range(levels.size):
        if levels[i]:
            gap, gap_class = i - previous - 1, 0
            while gap >> gap_class:
                gap_class += 1
            classes[gap_class] += 1
            nonzero_levels[nonzero] = levels[i] - 1
            previous = i
            nonzero += 1
    nonzero_levels = nonzero_levels[:nonzero]

    for row in range(sizes):
        dense[row] = group_histogram(levels, bits, VALUE_GROUPS[row])
        runs[row] = group_histogram(nonzero_levels, bits, VALUE_GROUPS[row])
    return dense, runs, classes, nonzero_levels


@njit(cache=True)
def code_bit_count(frequencies: np.ndarray, symbol_bits: int) -> float:
    """Return the exact bits of the table and codes of symbols with these frequencies (at least one non-zero)."""
    count, canonical, _, code_lengths = build_code(np.ascontiguousarray(frequencies))
    bits = table_bit_count(count, canonical.size, symbol_bits)
    for symbol in range(frequencies.size):
        bits += frequencies[symbol] * code_lengths[symbol]
    return float(bits)


@njit(cache=True)
def cheapest_group(histograms: np.ndarray, bits: int) -> tuple[float, int]:
    """Return the smallest coded size in bits over the group sizes of ``level_statistics`` histograms, and its group."""
    best_cost, best_group = np.inf, 1
    for row in range(histograms.shape[0]):
        symbol_bits = VALUE_GROUPS[row] * bits
        cost = code_bit_count(histograms[row, : 1 << symbol_bits], symbol_bits)
        if cost < best_cost:
            best_cost, best_group = cost, VALUE_GROUPS[row]
    return best_cost, best_group


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
def choose_level_coding(
    levels: np.ndarray, bits: int
) -> tuple[int, int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pick the smaller of the two level codings in ``codec.sections``, by their exact size in bits.

    Returns the method, the group size, the number of non-zero levels (0 for
    the dense coding), the level symbols to code and, for zero runs, the
    non-zero levels' indices with their gaps and gap classes. Levels that
    are all zero use the dense coding, whose one-symbol table makes them
    nearly free.
    """
    empty = np.zeros(0, dtype=np.int64)
    dense, runs, classes, nonzero_levels = level_statistics(levels, bits)
    dense_cost, dense_group = cheapest_group(dense, bits)
    if nonzero_levels.size:
        runs_cost, runs_group = cheapest_group(runs, bits)
        runs_cost += code_bit_count(classes, CLASS_BITS) + extra_bit_count(classes)
        if runs_cost < dense_cost:
            indices = np.flatnonzero(levels).astype(np.int64)
            gaps, gap_class = gap_classes(indices)
            symbols = pack_groups(nonzero_levels, bits, runs_group)
            return ZERO_RUNS_METHOD, runs_group, nonzero_levels.size, symbols, indices, gaps, gap_class
    return DENSE_METHOD, dense_group, 0, pack_groups(levels, bits, dense_group), empty, empty, empty


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
