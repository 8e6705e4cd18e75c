"""Compiled loops of the entropy coder: Huffman code construction, cost estimates and bit packing.

numba compiles these functions to machine code on first use and caches the
result beside this file (or under ``NUMBA_CACHE_DIR``), so later processes
load them in milliseconds. A map's whole payload is written by one call to
``encode_payload``: one compiled call replaces the hundreds of small numpy
calls whose fixed cost dominated the encoder's time. ``codec.huffman``
(tables) and ``codec.sections`` (positions and levels) specify the layouts
written here. Their decoders read the layouts back, and the round-trip
tests check that both sides agree.
"""

from __future__ import annotations

import numpy as np
from numba import njit

LENGTH_FIELD_BITS = 5
MAX_CODE_LENGTH = (1 << LENGTH_FIELD_BITS) - 1
CLASS_BITS = 5
MAX_SYMBOL_BITS = 8
VALUE_GROUPS = (1, 2, 4, 8)

# Level coding methods, as returned by encode_payload.
DENSE_METHOD = 0
ZERO_RUNS_METHOD = 1


@njit(cache=True)
def pack_bits(values: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Write each value in its width (0 to 32 bits), MSB first, into zero-padded bytes.

    Bits of a value above its width are dropped.
    """
    total = 0
    for width in widths:
        total += width
    out = np.zeros((total + 7) // 8, dtype=np.uint8)

    # The accumulator keeps fewer than 8 pending bits between fields, so a
    # 32-bit field never pushes it past 40 bits.
    accumulator, pending, position = 0, 0, 0
    for i in range(values.size):
        width = widths[i]
        if width == 0:
            continue
        accumulator = (accumulator << width) | (values[i] & ((1 << width) - 1))
        pending += width
        while pending >= 8:
            pending -= 8
            out[position] = (accumulator >> pending) & 0xFF
            position += 1
        accumulator &= (1 << pending) - 1
    if pending:
        out[position] = (accumulator << (8 - pending)) & 0xFF
    return out


@njit(cache=True)
def _pop_smallest(
    weights: np.ndarray, order: np.ndarray, node_weight: np.ndarray, next_leaf: int, next_merged: int, created: int
) -> tuple[int, int, int]:
    # A leaf wins a tie against a merged node, because its number is lower.
    leaves = weights.size
    if next_leaf < leaves and (next_merged == created or weights[order[next_leaf]] <= node_weight[next_merged]):
        return order[next_leaf], next_leaf + 1, next_merged
    return next_merged, next_leaf, next_merged + 1


@njit(cache=True)
def huffman_lengths(weights: np.ndarray) -> np.ndarray:
    """Return the Huffman code length of each weight (at least two weights).

    Every step merges the two nodes with the smallest (weight, node number),
    where leaves are numbered 0..n-1 and merged nodes n, n+1, ... as they are
    created. Leaves sorted by weight and merged nodes in creation order are
    both sorted by that key, so comparing the two queue fronts finds the
    minimum (the two-queue method), and ties break deterministically.
    """
    leaves = weights.size
    order = np.argsort(weights, kind="mergesort")
    node_weight = np.zeros(2 * leaves - 1, dtype=np.int64)
    node_weight[:leaves] = weights
    parent = np.zeros(2 * leaves - 1, dtype=np.int64)

    next_leaf, next_merged, created = 0, leaves, leaves
    for _ in range(leaves - 1):
        first, next_leaf, next_merged = _pop_smallest(weights, order, node_weight, next_leaf, next_merged, created)
        second, next_leaf, next_merged = _pop_smallest(weights, order, node_weight, next_leaf, next_merged, created)
        node_weight[created] = node_weight[first] + node_weight[second]
        parent[first] = created
        parent[second] = created
        created += 1

    # A parent is always numbered above its children, so one pass from the
    # root downwards gives every node its depth.
    depth = np.zeros(2 * leaves - 1, dtype=np.int64)
    for node in range(created - 2, -1, -1):
        depth[node] = depth[parent[node]] + 1
    return depth[:leaves].copy()


@njit(cache=True)
def build_code(frequencies: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Build the canonical Huffman code of symbol frequencies indexed by symbol value.

    Returns ``count`` (codes per length 0..L), the symbols in canonical order
    (by length, then value), and each symbol value's code and code length (0
    where absent). Needs at least one symbol with a non-zero frequency.
    """
    present = np.flatnonzero(frequencies)
    code_values = np.zeros(frequencies.size, dtype=np.int64)
    code_lengths = np.zeros(frequencies.size, dtype=np.int64)

    # A one-symbol alphabet gets an empty code: the decoder repeats the
    # symbol as often as the header's count requires, so the data costs no bits.
    if present.size == 1:
        return np.zeros(1, dtype=np.int64), present.astype(np.int64), code_values, code_lengths

    weights = frequencies[present].astype(np.int64)
    lengths = huffman_lengths(weights)
    while lengths.max() > MAX_CODE_LENGTH:
        # Flatten the distribution until the longest code fits in the
        # table's length field; halving keeps every symbol present.
        weights = (weights + 1) // 2
        lengths = huffman_lengths(weights)

    # present is sorted by value, so a stable sort by length gives the
    # canonical order.
    canonical = present[np.argsort(lengths, kind="mergesort")].astype(np.int64)
    count = np.zeros(lengths.max() + 1, dtype=np.int64)
    for length in lengths:
        count[length] += 1

    # Canonical codes as DEFLATE assigns them: consecutive values within a
    # length, the first code of each length following the last of the one before.
    code, index = 0, 0
    for length in range(1, count.size):
        code = (code + count[length - 1]) << 1
        for offset in range(count[length]):
            symbol = canonical[index]
            code_values[symbol] = code + offset
            code_lengths[symbol] = length
            index += 1
    return count, canonical, code_values, code_lengths


@njit(cache=True)
def estimate_cost(frequencies: np.ndarray, symbol_bits: int) -> float:
    """Estimate the bits of a Huffman code for these frequencies, table included.

    Each symbol is charged its self-information, but at least one bit, as a
    Huffman code charges it. The table is charged its exact layout, with the
    longest code taken as the longest self-information. The estimate is
    cheap enough to compare alphabets; ``build_code`` gives the exact code.
    """
    total, distinct = 0, 0
    for frequency in frequencies:
        if frequency:
            total += frequency
            distinct += 1
    if distinct == 1:
        return float(LENGTH_FIELD_BITS + symbol_bits)

    coded, longest = 0.0, 1.0
    for frequency in frequencies:
        if frequency:
            length = max(np.log2(total / frequency), 1.0)
            coded += frequency * length
            longest = max(longest, length)
    max_length = min(int(np.ceil(longest)), MAX_CODE_LENGTH)
    return LENGTH_FIELD_BITS + max_length * (symbol_bits + 1) + distinct * symbol_bits + coded


@njit(cache=True)
def table_fields(count: np.ndarray, symbols: np.ndarray, symbol_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the fields and widths of a serialized table (layout in ``codec.huffman``)."""
    max_length = count.size - 1
    fields = np.zeros(1 + max_length + symbols.size, dtype=np.int64)
    widths = np.zeros(fields.size, dtype=np.int64)
    fields[0] = max_length
    widths[0] = LENGTH_FIELD_BITS
    for length in range(1, max_length + 1):
        fields[length] = count[length]
        widths[length] = symbol_bits + 1
    fields[1 + max_length :] = symbols
    widths[1 + max_length :] = symbol_bits
    return fields, widths


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
        while gap >> classes[i]:
            classes[i] += 1
    return gaps, classes


@njit(cache=True)
def estimate_gap_cost(indices: np.ndarray) -> float:
    """Estimate the bits of ``index_parts(indices)``."""
    _, classes = gap_classes(indices)
    extra = 0
    for c in classes:
        extra += max(c - 1, 0)
    return estimate_cost(np.bincount(classes, minlength=1 << CLASS_BITS), CLASS_BITS) + extra


@njit(cache=True)
def index_parts(indices: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return the fields of the three index parts: class table, class codes and extra bits."""
    gaps, classes = gap_classes(indices)
    count, symbols, code_values, code_lengths = build_code(np.bincount(classes, minlength=1 << CLASS_BITS))

    extra_widths = np.maximum(classes - 1, 0)
    leading = np.zeros(classes.size, dtype=np.int64)
    for i in range(classes.size):
        if classes[i] > 0:
            leading[i] = 1 << (classes[i] - 1)
    return [
        table_fields(count, symbols, CLASS_BITS),
        (code_values[classes], code_lengths[classes]),
        (gaps - leading, extra_widths),
    ]


@njit(cache=True)
def pair_symbols(symbols: np.ndarray, symbol_bits: int) -> np.ndarray:
    """Merge symbols two by two into symbols of twice the bits, the first in the high bits.

    An odd count is padded with a 0 symbol.
    """
    if symbols.size % 2:
        symbols = np.append(symbols, 0)
    return (symbols[0::2] << symbol_bits) | symbols[1::2]


@njit(cache=True)
def choose_group(levels: np.ndarray, bits: int) -> tuple[float, int, np.ndarray]:
    """Return the smallest estimated cost of coding ``levels``, its group size and its symbols.

    Groups of g levels form one symbol of g * bits bits, the first level in
    the most significant bits and the last group padded with level 0. Each
    size in ``VALUE_GROUPS`` with g * bits <= 8 is built by pairing the
    symbols of the size before.
    """
    best_cost = estimate_cost(np.bincount(levels, minlength=1 << bits), bits)
    best_group, best_symbols = 1, levels
    group, current = 1, levels
    while 2 * group <= VALUE_GROUPS[-1] and 2 * group * bits <= MAX_SYMBOL_BITS:
        current = pair_symbols(current, group * bits)
        group *= 2
        cost = estimate_cost(np.bincount(current, minlength=1 << (group * bits)), group * bits)
        if cost < best_cost:
            best_cost, best_group, best_symbols = cost, group, current
    return best_cost, best_group, best_symbols


@njit(cache=True)
def grouped_parts(symbols: np.ndarray, symbol_bits: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return the fields of a symbol table and of the symbols' codes."""
    count, canonical, code_values, code_lengths = build_code(np.bincount(symbols, minlength=1 << symbol_bits))
    return [table_fields(count, canonical, symbol_bits), (code_values[symbols], code_lengths[symbols])]


@njit(cache=True)
def level_parts(levels: np.ndarray, bits: int) -> tuple[int, int, int, list[tuple[np.ndarray, np.ndarray]]]:
    """Code the levels with the cheaper of the two codings in ``codec.sections``.

    Returns the method, the group size, the number of non-zero levels (0 for
    the dense coding) and the fields of each part. No levels at all (every
    kept block lies on the border) gives two empty parts. Levels that are
    all zero use the dense coding, whose one-symbol table makes them nearly free.
    """
    if levels.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return DENSE_METHOD, 1, 0, [(empty, empty), (empty, empty)]

    dense_cost, dense_group, dense_symbols = choose_group(levels, bits)
    nonzero = np.flatnonzero(levels).astype(np.int64)
    if nonzero.size:
        runs_cost, runs_group, runs_symbols = choose_group(levels[nonzero] - 1, bits)
        runs_cost += estimate_gap_cost(nonzero)
        if runs_cost < dense_cost:
            parts = grouped_parts(runs_symbols, runs_group * bits)
            parts.extend(index_parts(nonzero))
            return ZERO_RUNS_METHOD, runs_group, nonzero.size, parts

    return DENSE_METHOD, dense_group, 0, grouped_parts(dense_symbols, dense_group * bits)


@njit(cache=True)
def join_parts(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Pack the fields of every part back to back; return the bytes and each part's length in bits."""
    total = 0
    part_bits = np.zeros(len(parts), dtype=np.int64)
    for i, (values, widths) in enumerate(parts):
        part_bits[i] = widths.sum()
        total += values.size

    values_all = np.empty(total, dtype=np.int64)
    widths_all = np.empty(total, dtype=np.int64)
    start = 0
    for values, widths in parts:
        values_all[start : start + values.size] = values
        widths_all[start : start + values.size] = widths
        start += values.size
    return pack_bits(values_all, widths_all), part_bits


@njit(cache=True)
def encode_payload(units: np.ndarray, levels: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray, int, int, int]:
    """Write a map's payload: the kept units' index parts, then the level parts.

    Returns the payload bytes, each part's length in bits, the level coding
    method, its group size and its number of non-zero levels.
    """
    parts = index_parts(units)
    method, group, nonzero, value_parts = level_parts(levels, bits)
    parts.extend(value_parts)
    payload, part_bits = join_parts(parts)
    return payload, part_bits, method, group, nonzero


@njit(cache=True)
def unpack_bits(data: np.ndarray, start: int, widths: np.ndarray) -> np.ndarray:
    """Read fields of the given widths (0 to 32 bits each), MSB first, from bit ``start`` of ``data``.

    The caller checks that the fields end within ``data``.
    """
    values = np.zeros(widths.size, dtype=np.int64)
    position = start
    for i in range(widths.size):
        value, remaining = 0, widths[i]
        while remaining > 0:
            offset = position & 7
            take = min(8 - offset, remaining)
            chunk = (data[position >> 3] >> (8 - offset - take)) & ((1 << take) - 1)
            value = (value << take) | chunk
            remaining -= take
            position += take
        values[i] = value
    return values


@njit(cache=True)
def decode_canonical(
    data: np.ndarray, bit_count: int, count: int, code_counts: np.ndarray, symbols: np.ndarray
) -> tuple[np.ndarray, int]:
    """Decode ``count`` symbols of a canonical code from the first ``bit_count`` bits of ``data``.

    ``code_counts[l]`` is the number of codes of length l (index 0 unused)
    and ``symbols`` lists the symbols in canonical order. Returns the symbols
    and the number of bits they used, or -1 as that number when the bits run
    out first or hold a code longer than the table's longest. Each code is
    found by comparing its first l bits with the first canonical code of
    length l, one length at a time, as zlib's reference decoder puff does.
    """
    decoded = np.zeros(count, dtype=np.int64)
    max_length = code_counts.size - 1
    position = 0
    for i in range(count):
        code, first, index = 0, 0, 0
        found = False
        for length in range(1, max_length + 1):
            if position >= bit_count:
                return decoded, -1
            code |= (data[position >> 3] >> (7 - (position & 7))) & 1
            position += 1
            codes = code_counts[length]
            if code - codes < first:
                if index + code - first >= symbols.size:
                    return decoded, -1  # counts that list more codes than symbols
                decoded[i] = symbols[index + code - first]
                found = True
                break
            index += codes
            first = (first + codes) << 1
            code <<= 1
        if not found:
            return decoded, -1
    return decoded, position


@njit(cache=True)
def scatter_blocks(
    out: np.ndarray,
    index: np.ndarray,
    channel: np.ndarray,
    position: np.ndarray,
    kept: np.ndarray,
    columns: int,
    block_size: int,
) -> None:
    """Write K x B*B block elements into ``out`` (N x C x H x W) at their maps, channels and block positions.

    Elements of a block that fall in the padding beyond H x W are dropped.
    """
    height, width = out.shape[2], out.shape[3]
    for j in range(kept.shape[0]):
        top = (position[j] // columns) * block_size
        left = (position[j] % columns) * block_size
        for element in range(kept.shape[1]):
            y = top + element // block_size
            x = left + element % block_size
            if y < height and x < width:
                out[index[j], channel[j], y, x] = kept[j, element]
