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
    # An accumulator takes whole codes and hands out 32 bits at a time. It
    # keeps fewer than 32 pending bits between codes, so with a code of up
    # to 32 bits it never exceeds 63 bits. It starts with the bits already
    # written to the first, partly filled byte.
    byte, pending = position >> 3, position & 7
    accumulator = 0
    if pending:
        accumulator = np.int64(out[byte]) >> (8 - pending)
    for symbol in symbols:
        accumulator = (accumulator << code_lengths[symbol]) | code_values[symbol]
        pending += code_lengths[symbol]
        if pending >= 32:
            pending -= 32
            word = accumulator >> pending
            out[byte] = word >> 24
            out[byte + 1] = (word >> 16) & 0xFF
            out[byte + 2] = (word >> 8) & 0xFF
            out[byte + 3] = word & 0xFF
            byte += 4
            accumulator &= (1 << pending) - 1

    while pending >= 8:
        pending -= 8
        out[byte] = (accumulator >> pending) & 0xFF
        byte += 1
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
def _stable_order(weights: np.ndarray) -> np.ndarray:
    # The stable argsort of the weights. For up to 2**16 weights below
    # 2**47, as the codec's alphabets and counts are, sorting the distinct
    # keys weight * 2**16 + index orders equal weights by index. On 256
    # weights this took 2.7 us here, numba's mergesort argsort 5.8 us.
    if weights.size > 1 << 16 or weights.max() >= 1 << 47:
        return np.argsort(weights, kind="mergesort")
    keys = np.sort((weights << 16) | np.arange(weights.size))
    return keys & 0xFFFF


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
    order = _stable_order(weights)
    node_weight = np.zeros(2 * leaves - 1, dtype=np.int64)
    node_weight[:leaves] = weights
    parent = np.zeros(2 * leaves - 1, dtype=np.int64)

    next_leaf, next_merged, created = 0, leaves, leaves
    for _ in range(leaves - 1):
        for _ in range(2):
            # Pop the smaller queue front. A leaf wins a tie against a
            # merged node, because its number is lower.
            if next_leaf < leaves and (next_merged == created or weights[order[next_leaf]] <= node_weight[next_merged]):
                node = order[next_leaf]
                next_leaf += 1
            else:
                node = next_merged
                next_merged += 1
            node_weight[created] += node_weight[node]
            parent[node] = created
        created += 1

    # A parent is always numbered above its children, so one pass from the
    # root downwards gives every node its depth.
    depth = np.zeros(2 * leaves - 1, dtype=np.int64)
    for node in range(created - 2, -1, -1):
        depth[node] = depth[parent[node]] + 1
    return depth[:leaves].copy()


@njit(cache=True)
def limited_lengths(weights: np.ndarray) -> np.ndarray:
    """Return the Huffman code lengths of at least two weights, with no code longer than ``MAX_CODE_LENGTH``."""
    lengths = huffman_lengths(weights)
    while lengths.max() > MAX_CODE_LENGTH:
        # Flatten the distribution until the longest code fits in the
        # table's length field; halving keeps every symbol present.
        weights = (weights + 1) // 2
        lengths = huffman_lengths(weights)
    return lengths


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

    lengths = limited_lengths(frequencies[present].astype(np.int64))

    # present is sorted by value, so placing the symbols by length, in
    # order within each length (a counting sort), gives the canonical order.
    count = np.zeros(lengths.max() + 1, dtype=np.int64)
    for length in lengths:
        count[length] += 1
    start = np.zeros(count.size, dtype=np.int64)
    for length in range(1, count.size):
        start[length] = start[length - 1] + count[length - 1]
    canonical = np.empty(present.size, dtype=np.int64)
    for i in range(present.size):
        canonical[start[lengths[i]]] = present[i]
        start[lengths[i]] += 1

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
    # Four partial histograms: repeated symbols then go to four different
    # counters, so an increment need not wait for the one before it. This
    # ran 2 to 4 times faster here than a single histogram.
    counts = np.zeros((4, size), dtype=np.int64)
    whole = symbols.size - symbols.size % 4
    for i in range(0, whole, 4):
        counts[0, symbols[i]] += 1
        counts[1, symbols[i + 1]] += 1
        counts[2, symbols[i + 2]] += 1
        counts[3, symbols[i + 3]] += 1
    for i in range(whole, symbols.size):
        counts[0, symbols[i]] += 1
    return counts.sum(axis=0)


@njit(cache=True, inline="always")
def bit_length(value: int) -> int:
    """Return the number of bits of a value in 0..2**32-1 (0 for 0), like ``int.bit_length``, without a loop."""
    length = 0
    if value >= 1 << 16:
        value >>= 16
        length += 16
    if value >= 1 << 8:
        value >>= 8
        length += 8
    if value >= 1 << 4:
        value >>= 4
        length += 4
    if value >= 1 << 2:
        value >>= 2
        length += 2
    if value >= 2:
        value >>= 1
        length += 1
    return length + value


@njit(cache=True, inline="always")
def _take(data: np.ndarray, buffer: int, filled: int, next_byte: int, width: int) -> tuple[int, int, int, int]:
    # Return the next ``width`` (0 to 32) bits from a bit buffer over
    # ``data`` and the buffer's new state. The low ``filled`` bits of
    # ``buffer`` are the unread bits before byte ``next_byte``, MSB first.
    # Bits above them are stale and masked off. Past the end of ``data``
    # the buffer reads zeros.
    if filled < width:
        while filled <= 48:
            buffer = (buffer << 8) | (np.int64(data[next_byte]) if next_byte < data.size else 0)
            next_byte += 1
            filled += 8
    filled -= width
    return (buffer >> filled) & ((1 << width) - 1), buffer, filled, next_byte


@njit(cache=True)
def unpack_bits(data: np.ndarray, start: int, widths: np.ndarray) -> np.ndarray:
    """Read fields of the given widths (0 to 32 bits each), MSB first, from bit ``start`` of ``data``.

    The caller checks that the fields end within ``data``.
    """
    values = np.zeros(widths.size, dtype=np.int64)
    _, buffer, filled, next_byte = _take(data, 0, 0, start >> 3, start & 7)
    for i in range(widths.size):
        values[i], buffer, filled, next_byte = _take(data, buffer, filled, next_byte, widths[i])
    return values


@njit(cache=True)
def read_table_fields(
    data: np.ndarray, bit_count: int, symbol_bits: int
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Read the fields of a table (layout in ``codec.huffman``) from the first ``bit_count`` bits of ``data``.

    Returns the counts per code length (index 0 unused, so a one-symbol
    table gives ``[0]``), the symbols, and the position after the last
    field. When a group of fields does not fit, the position is -1 and the
    last item is the number of bits that group needed from where it
    started. Otherwise the last item is 0. The caller checks the fields'
    values.
    """
    empty = np.zeros(0, dtype=np.int64)
    if bit_count < LENGTH_FIELD_BITS:
        return empty, empty, -1, LENGTH_FIELD_BITS
    max_length, buffer, filled, next_byte = _take(data, 0, 0, 0, LENGTH_FIELD_BITS)
    position = LENGTH_FIELD_BITS

    count = np.zeros(max_length + 1, dtype=np.int64)
    symbol_count = 1
    if max_length > 0:
        if position + max_length * (symbol_bits + 1) > bit_count:
            return empty, empty, -1, max_length * (symbol_bits + 1)
        symbol_count = 0
        for length in range(1, max_length + 1):
            count[length], buffer, filled, next_byte = _take(data, buffer, filled, next_byte, symbol_bits + 1)
            symbol_count += count[length]
        position += max_length * (symbol_bits + 1)

    if position + symbol_count * symbol_bits > bit_count:
        return count, empty, -1, symbol_count * symbol_bits
    symbols = np.zeros(symbol_count, dtype=np.int64)
    for i in range(symbol_count):
        symbols[i], buffer, filled, next_byte = _take(data, buffer, filled, next_byte, symbol_bits)
    return count, symbols, position + symbol_count * symbol_bits, 0


# Codes of up to this many bits are decoded by one table lookup.
LOOKUP_BITS = 11


@njit(cache=True)
def _lookup_table(code_counts: np.ndarray, symbols: np.ndarray, lookup_bits: int) -> tuple[np.ndarray, np.ndarray]:
    # Entry p of the tables covers the codes that ``p`` (lookup_bits bits)
    # starts with: the symbol and length of a code of at most lookup_bits
    # bits, or length 0 where a longer code starts. Symbols have at most 8 bits.
    table_symbol = np.zeros(1 << lookup_bits, dtype=np.uint8)
    table_length = np.zeros(1 << lookup_bits, dtype=np.int64)
    code, index = 0, 0
    for length in range(1, code_counts.size):
        for _ in range(code_counts[length]):
            if length <= lookup_bits and index < symbols.size:
                first = code << (lookup_bits - length)
                table_symbol[first : first + (1 << (lookup_bits - length))] = symbols[index]
                table_length[first : first + (1 << (lookup_bits - length))] = length
            code += 1
            index += 1
        code <<= 1
    return table_symbol, table_length


@njit(cache=True, inline="always")
def _split(out: np.ndarray, index: int, symbol: int, value_bits: int, group: int) -> None:
    # Write symbol ``index`` as ``group`` values of ``value_bits`` bits, the first from the high bits.
    for g in range(group):
        out[index * group + g] = (symbol >> (value_bits * (group - 1 - g))) & ((1 << value_bits) - 1)


@njit(cache=True)
def decode_canonical(
    data: np.ndarray, bit_count: int, count: int, code_counts: np.ndarray, symbols: np.ndarray,
    value_bits: int, group: int,
) -> tuple[np.ndarray, int]:
    """Decode ``count`` symbols (of at most 8 bits) of a canonical code from the first ``bit_count`` bits of ``data``.

    ``code_counts[l]`` is the number of codes of length l (index 0 unused)
    and ``symbols`` lists the symbols in canonical order. Each symbol is
    split as ``ungroup`` does into ``group`` values of ``value_bits`` bits
    (one value, the symbol itself, when ``value_bits`` is the symbol size),
    so the function returns ``count * group`` uint8 values. It also
    returns the number of bits used, or -1 as that number when the bits run
    out first or hold a code longer than the table's longest. Short codes
    are found by one table lookup. Longer ones are found by comparing their
    first l bits with the first canonical code of length l, one length at a
    time, as zlib's reference decoder puff does.
    """
    decoded = np.zeros(count * group, dtype=np.uint8)
    max_length = code_counts.size - 1
    lookup_bits = min(max_length, LOOKUP_BITS)
    lookup_mask = (1 << lookup_bits) - 1
    table_symbol, table_length = _lookup_table(code_counts, symbols, lookup_bits)

    # The low ``filled`` bits of ``buffer`` are the bits that follow
    # ``position``, MSB first, and end at a byte boundary of ``data``. The
    # bits above them are stale and are masked off when read, so no masking
    # step lies between one code's lookup and the next. Past the end of
    # ``data`` the buffer reads zeros. Table lookups do not check
    # ``bit_count``: codes that run past it leave ``position`` beyond it,
    # which the end of the function reports.
    position, buffer, filled, next_byte = 0, 0, 0, 0
    for i in range(count):
        # Refill to 49..56 bits at once, so that most codes need no refill.
        if filled < lookup_bits:
            while filled <= 48:
                buffer = (buffer << 8) | (np.int64(data[next_byte]) if next_byte < data.size else 0)
                next_byte += 1
                filled += 8
        prefix = (buffer >> (filled - lookup_bits)) & lookup_mask
        length = table_length[prefix]
        if length:
            _split(decoded, i, table_symbol[prefix], value_bits, group)
            position += length
            filled -= length
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
                _split(decoded, i, symbols[index + code - first], value_bits, group)
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
        buffer = np.int64(data[next_byte]) if next_byte < data.size else 0
        next_byte += 1
    if position > bit_count:
        return decoded, -1
    return decoded, position


@njit(cache=True)
def gaps_to_indices(classes: np.ndarray, data: np.ndarray, bit_count: int) -> tuple[np.ndarray, int]:
    """Rebuild sorted indices from gap classes and the extra bits in the first ``bit_count`` bits of ``data``.

    A gap of class c >= 2 is a leading one followed by c - 1 extra bits;
    class 1 is the gap 1 and class 0 the gap 0. Returns the indices and the
    number of extra bits the classes need. When that number differs from
    ``bit_count``, nothing is read and the indices are empty. The caller
    checks that every class is below 32.
    """
    needed = 0
    for i in range(classes.size):
        needed += max(classes[i] - 1, 0)
    if needed != bit_count:
        return np.zeros(0, dtype=np.int64), needed

    indices = np.empty(classes.size, dtype=np.int64)
    index, buffer, filled, next_byte = -1, 0, 0, 0
    for i in range(classes.size):
        # No branch on the class: class 0 and 1 read no extra bits, and
        # (1 << c) >> 1 is the leading one, 0 for class 0.
        extra, buffer, filled, next_byte = _take(data, buffer, filled, next_byte, max(classes[i] - 1, 0))
        index += ((1 << classes[i]) >> 1) + extra + 1
        indices[i] = index
    return indices, needed


@njit(cache=True)
def ungroup(symbols: np.ndarray, bits: int, group: int) -> np.ndarray:
    """Split each symbol of ``group * bits`` bits into ``group`` levels, the first from the high bits."""
    levels = np.empty(symbols.size * group, dtype=np.uint8)
    for i in range(symbols.size):
        _split(levels, i, symbols[i], bits, group)
    return levels
