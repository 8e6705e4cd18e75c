"""Compiled loops of the Huffman coder: code construction, histograms, bit packing and decoding.

numba compiles these functions to machine code on first use and caches the
result (beside this file, or where ``NUMBA_CACHE_DIR`` points), so later processes
load them in milliseconds. One compiled call replaces the many small numpy
calls whose fixed cost dominated the coder's time. ``codec.huffman``
specifies the table layout, and ``codec.payload_writer`` uses these loops
to write whole payloads.
"""

from __future__ import annotations

import numpy as np
from numba import njit

LENGTH_FIELD_BITS = 5
MAX_CODE_LENGTH = (1 << LENGTH_FIELD_BITS) - 1


@njit(cache=True)
def put_codes(
    out: np.ndarray, position: int, symbols: np.ndarray, code_values: np.ndarray, code_lengths: np.ndarray
) -> int:
    """Write the code of each symbol at bit ``position`` of ``out`` and return the position after them.

    A code has at most 32 bits and no bits set above its length.
    """
    # An accumulator takes whole codes and hands out whole bytes. It keeps
    # fewer than 8 pending bits between codes, so it never exceeds 40 bits.
    # It starts with the bits already written to the first, partly filled byte.
    byte, pending = position >> 3, position & 7
    accumulator = 0
    if pending:
        accumulator = np.int64(out[byte]) >> (8 - pending)
    for symbol in symbols:
        accumulator = (accumulator << code_lengths[symbol]) | code_values[symbol]
        pending += code_lengths[symbol]
        while pending >= 8:
            pending -= 8
            out[byte] = (accumulator >> pending) & 0xFF
            byte += 1
        accumulator &= (1 << pending) - 1
    if pending:
        out[byte] = (accumulator << (8 - pending)) & 0xFF
    return 8 * byte + pending


@njit(cache=True)
def pack_bits(values: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Write each value in its width (0 to 32 bits), MSB first, into zero-padded bytes.

    Bits of a value above its width are dropped.
    """
    out = np.zeros((widths.sum() + 7) // 8, dtype=np.uint8)
    put_codes(out, 0, np.arange(values.size), values & ((1 << widths) - 1), widths)
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
def histogram(symbols: np.ndarray, size: int) -> np.ndarray:
    """Return the count of each value 0..size-1 in ``symbols``, whose values must lie in that range."""
    counts = np.zeros(size, dtype=np.int64)
    for symbol in symbols:
        counts[symbol] += 1
    return counts


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


# Codes of up to this many bits are decoded by one table lookup.
LOOKUP_BITS = 9


@njit(cache=True)
def _lookup_table(code_counts: np.ndarray, symbols: np.ndarray, lookup_bits: int) -> tuple[np.ndarray, np.ndarray]:
    # Entry p of the table covers the codes that ``p`` (lookup_bits bits)
    # starts with: the symbol and code length of a code of at most
    # lookup_bits bits, or length 0 where a longer code starts.
    table_symbol = np.zeros(1 << lookup_bits, dtype=np.int64)
    table_length = np.zeros(1 << lookup_bits, dtype=np.int64)
    code, index = 0, 0
    for length in range(1, code_counts.size):
        for _ in range(code_counts[length]):
            if length <= lookup_bits and index < symbols.size:
                first = code << (lookup_bits - length)
                last = first + (1 << (lookup_bits - length))
                table_symbol[first:last] = symbols[index]
                table_length[first:last] = length
            code += 1
            index += 1
        code <<= 1
    return table_symbol, table_length


@njit(cache=True)
def decode_canonical(
    data: np.ndarray, bit_count: int, count: int, code_counts: np.ndarray, symbols: np.ndarray
) -> tuple[np.ndarray, int]:
    """Decode ``count`` symbols of a canonical code from the first ``bit_count`` bits of ``data``.

    ``code_counts[l]`` is the number of codes of length l (index 0 unused)
    and ``symbols`` lists the symbols in canonical order. Returns the symbols
    and the number of bits they used, or -1 as that number when the bits run
    out first or hold a code longer than the table's longest. Short codes
    are found by one table lookup. Longer ones are found by comparing their
    first l bits with the first canonical code of length l, one length at a
    time, as zlib's reference decoder puff does.
    """
    decoded = np.zeros(count, dtype=np.int64)
    max_length = code_counts.size - 1
    lookup_bits = min(max_length, LOOKUP_BITS)
    table_symbol, table_length = _lookup_table(code_counts, symbols, lookup_bits)

    # ``buffer`` contains the ``filled`` bits that follow ``position``, MSB
    # first, and always ends at a byte boundary of ``data``. Past the end of
    # ``data`` it reads zeros, which decode into nothing because a code must
    # also end within ``bit_count``.
    position, buffer, filled, next_byte = 0, 0, 0, 0
    for i in range(count):
        while filled < lookup_bits:
            buffer = (buffer << 8) | (np.int64(data[next_byte]) if next_byte < data.size else 0)
            next_byte += 1
            filled += 8
        prefix = buffer >> (filled - lookup_bits)
        length = table_length[prefix]
        if length:
            if position + length > bit_count:
                return decoded, -1
            decoded[i] = table_symbol[prefix]
            position += length
            filled -= length
            buffer &= (1 << filled) - 1
            continue

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

        # Restart the buffer at the byte that contains the new position.
        next_byte = position >> 3
        filled = 8 - (position & 7)
        buffer = np.int64(data[next_byte]) & ((1 << filled) - 1) if next_byte < data.size else 0
        next_byte += 1
    return decoded, position


@njit(cache=True)
def ungroup(symbols: np.ndarray, bits: int, group: int) -> np.ndarray:
    """Split each symbol of ``group * bits`` bits into ``group`` levels, the first from the high bits."""
    levels = np.empty(symbols.size * group, dtype=np.int64)
    mask = (1 << bits) - 1
    for i in range(symbols.size):
        for g in range(group):
            levels[i * group + g] = (symbols[i] >> (bits * (group - 1 - g))) & mask
    return levels
