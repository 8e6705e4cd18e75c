"""The compiled payload writer: positions and levels of one map in a single call.

``codec.sections`` specifies the payload (gap coding of positions, dense
and zero-run coding of levels) and decodes it. This module writes it,
choosing the level coding by its exact size, with numba-compiled loops
from ``codec.kernels``. The round-trip tests check that both sides agree.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from codec.kernels import LENGTH_FIELD_BITS, bit_length, build_code, histogram, limited_lengths, put_codes

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
        classes[i] = bit_length(gap)
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
    widths = np.maximum(classes - 1, 0)
    return put_codes(out, position, np.arange(gaps.size), gaps & ((1 << widths) - 1), widths)


@njit(cache=True)
def group_sizes(bits: int) -> int:
    """Return how many sizes of ``VALUE_GROUPS`` fit in a symbol of up to 8 bits: groups 1, 2, 4, ... of that count."""
    sizes = 0
    while sizes < len(VALUE_GROUPS) and VALUE_GROUPS[sizes] * bits <= MAX_SYMBOL_BITS:
        sizes += 1
    return sizes


@njit(cache=True)
def pack_groups(values: np.ndarray, bits: int, group: int) -> np.ndarray:
    """Pack ``group`` values at a time into one symbol, the first in the high bits, the last group padded with 0."""
    symbols = np.empty((values.size + group - 1) // group, dtype=np.uint8)
    whole = values.size // group
    for k in range(whole):
        symbol = 0
        for i in range(k * group, k * group + group):
            symbol = (symbol << bits) | values[i]
        symbols[k] = symbol

    if whole < symbols.size:
        symbol = 0
        for i in range(whole * group, whole * group + group):
            symbol = (symbol << bits) | (values[i] if i < values.size else 0)
        symbols[whole] = symbol
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
def grouped_histograms(values: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``group_histogram`` for every group size that fits ``bits``, and the symbols of the largest size.

    Row r of the histograms is for groups of ``VALUE_GROUPS[r]`` values, and
    the symbols are those of ``pack_groups`` for the largest size. Only that
    size reads the values: the sizes are powers of two, so each symbol of a
    group splits into the symbols of its two halves, which are the symbols
    of the next smaller size at the same positions. The values after the
    last whole group of the largest size are counted directly, with each
    size's padding.
    """
    sizes = group_sizes(bits)
    counts = np.zeros((sizes, 1 << MAX_SYMBOL_BITS), dtype=np.int64)
    largest = VALUE_GROUPS[sizes - 1]
    symbols = pack_groups(values, bits, largest)
    whole = values.size // largest
    counts[sizes - 1] = histogram(symbols[:whole], 1 << MAX_SYMBOL_BITS)

    for row in range(sizes - 2, -1, -1):
        half_bits = VALUE_GROUPS[row] * bits
        for symbol in range(1 << (2 * half_bits)):
            counts[row, symbol >> half_bits] += counts[row + 1, symbol]
            counts[row, symbol & ((1 << half_bits) - 1)] += counts[row + 1, symbol]

    if whole * largest < values.size:
        for row in range(sizes):
            counts[row] += group_histogram(values[whole * largest :], bits, VALUE_GROUPS[row])
    return counts, symbols


@njit(cache=True)
def level_statistics(
    levels: np.ndarray, bits: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Count what the size computations of both level codings need.

    Returns six items. The first is the symbol histograms of the dense
    coding, row r for groups of ``VALUE_GROUPS[r]`` levels. The second is
    the same histograms of the non-zero levels minus one, for the zero-run
    coding. Then come the non-zero levels minus one, their indices, and
    the symbols of the largest group size for both codings.
    """
    # Writing every level and index, and advancing only past non-zero
    # ones, avoids a branch that predicts badly when many levels are zero.
    nonzero_levels = np.empty(levels.size, dtype=np.uint8)
    indices = np.empty(levels.size, dtype=np.int64)
    nonzero = 0
    for i in range(levels.size):
        nonzero_levels[nonzero] = levels[i] - 1
        indices[nonzero] = i
        nonzero += levels[i] != 0

    nonzero_levels, indices = nonzero_levels[:nonzero], indices[:nonzero]
    dense, dense_symbols = grouped_histograms(levels, bits)
    runs, runs_symbols = grouped_histograms(nonzero_levels, bits)
    return dense, runs, nonzero_levels, indices, dense_symbols, runs_symbols


@njit(cache=True)
def code_bit_count(frequencies: np.ndarray, symbol_bits: int) -> float:
    """Return the exact bits of the table and codes of symbols with these frequencies (at least one non-zero).

    This is the size ``frequency_code`` gives, from the code lengths alone.
    """
    present = np.flatnonzero(frequencies)
    if present.size == 1:
        return float(table_bit_count(np.zeros(1, dtype=np.int64), 1, symbol_bits))
    weights = frequencies[present].astype(np.int64)
    lengths = limited_lengths(weights)
    bits = LENGTH_FIELD_BITS + lengths.max() * (symbol_bits + 1) + present.size * symbol_bits
    for i in range(weights.size):
        bits += weights[i] * lengths[i]
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
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Build the Huffman code of ``symbols``: returns the code, the table size and the code size in bits.

    The code is ``(count, canonical symbols, code values, code lengths)`` as
    ``build_code`` returns it. No symbols give an empty table and code of 0 bits.
    """
    return frequency_code(histogram(symbols, 1 << symbol_bits), symbol_bits)


@njit(cache=True)
def frequency_code(
    frequencies: np.ndarray, symbol_bits: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Return what ``code_section`` returns, from the symbols' frequencies (``1 << symbol_bits`` of them)."""
    if frequencies.sum() == 0:
        empty = np.zeros(0, dtype=np.int64)
        return np.zeros(1, dtype=np.int64), empty, frequencies, frequencies, 0, 0
    count, canonical, code_values, code_lengths = build_code(frequencies)
    code_bits = 0
    for symbol in range(frequencies.size):
        code_bits += frequencies[symbol] * code_lengths[symbol]
    table_bits = table_bit_count(count, canonical.size, symbol_bits)
    return count, canonical, code_values, code_lengths, table_bits, code_bits


@njit(cache=True)
def _group_symbols(
    histograms: np.ndarray, largest_symbols: np.ndarray, values: np.ndarray, bits: int, group: int
) -> tuple[np.ndarray, np.ndarray]:
    # The symbols of ``values`` in groups of ``group`` and their frequencies,
    # reusing the largest group size's symbols from ``level_statistics``.
    row = 0
    while VALUE_GROUPS[row] != group:
        row += 1
    symbols = largest_symbols if row == histograms.shape[0] - 1 else pack_groups(values, bits, group)
    return symbols, np.ascontiguousarray(histograms[row, : 1 << (group * bits)])


@njit(cache=True)
def choose_level_coding(
    levels: np.ndarray, bits: int
) -> tuple[int, int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pick the smaller of the two level codings in ``codec.sections``, by their exact size in bits.

    Returns the method, the group size, the number of non-zero levels (0 for
    the dense coding), the level symbols to code and their frequencies and,
    for zero runs, the non-zero levels' indices with their gaps and gap
    classes. Levels that are all zero use the dense coding, whose one-symbol
    table makes them nearly free.
    """
    empty = np.zeros(0, dtype=np.int64)
    dense, runs, nonzero_levels, indices, dense_symbols, runs_symbols = level_statistics(levels, bits)
    dense_cost, dense_group = cheapest_group(dense, bits)
    if nonzero_levels.size:
        gaps, classes = gap_classes(indices)
        class_frequencies = histogram(classes, 1 << CLASS_BITS)
        runs_cost, runs_group = cheapest_group(runs, bits)
        runs_cost += code_bit_count(class_frequencies, CLASS_BITS) + extra_bit_count(class_frequencies)
        if runs_cost < dense_cost:
            symbols, frequencies = _group_symbols(runs, runs_symbols, nonzero_levels, bits, runs_group)
            return ZERO_RUNS_METHOD, runs_group, nonzero_levels.size, symbols, frequencies, indices, gaps, classes

    symbols, frequencies = _group_symbols(dense, dense_symbols, levels, bits, dense_group)
    return DENSE_METHOD, dense_group, 0, symbols, frequencies, empty, empty, empty


@njit(cache=True)
def encode_indices(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Write sorted, distinct indices as three parts: class table, class codes and extra bits.

    Returns the bytes and each part's length in bits.
    """
    gaps, classes = gap_classes(indices)
    count, canonical, code_values, code_lengths, table_bits, code_bits = code_section(classes, CLASS_BITS)
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
    symbols = np.zeros(0, dtype=np.uint8)
    run_gaps = run_classes = np.zeros(0, dtype=np.int64)
    frequencies = np.zeros(1 << bits, dtype=np.int64)
    if levels.size:
        method, group, nonzero, symbols, frequencies, _, run_gaps, run_classes = choose_level_coding(levels, bits)
    level_code = frequency_code(frequencies, group * bits)
    run_code = code_section(run_classes, CLASS_BITS)

    part_bits = np.zeros(8 if method == ZERO_RUNS_METHOD else 5, dtype=np.int64)
    part_bits[0], part_bits[1], part_bits[2] = unit_code[4], unit_code[5], unit_extra_bits
    if levels.size:
        part_bits[3], part_bits[4] = level_code[4], level_code[5]
    if method == ZERO_RUNS_METHOD:
        part_bits[5], part_bits[6] = run_code[4], run_code[5]
        part_bits[7] = extra_bit_count(histogram(run_classes, 1 << CLASS_BITS))

    out = np.zeros((part_bits.sum() + 7) // 8, dtype=np.uint8)
    position = put_table(out, 0, unit_code[0], unit_code[1], CLASS_BITS)
    position = put_codes(out, position, unit_classes, unit_code[2], unit_code[3])
    position = put_extras(out, position, unit_gaps, unit_classes)
    if levels.size:
        position = put_table(out, position, level_code[0], level_code[1], group * bits)
        position = put_codes(out, position, symbols, level_code[2], level_code[3])
    if method == ZERO_RUNS_METHOD:
        position = put_table(out, position, run_code[0], run_code[1], CLASS_BITS)
        position = put_codes(out, position, run_classes, run_code[2], run_code[3])
        put_extras(out, position, run_gaps, run_classes)
    return out, part_bits, method, group, nonzero
