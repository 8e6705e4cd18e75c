"""Random round trips of the codec's building blocks: bit fields, Huffman tables and gaps."""

from __future__ import annotations

import numpy as np
import pytest
from bitarray import bitarray
from bitarray.util import canonical_decode, canonical_huffman
from hypothesis import given, settings
from hypothesis import strategies as st

from codec.bitpack import pack_fields, unpack_fields
from codec.blocks import coded_element_mask, element_offsets, to_blocks
from codec.errors import BitstreamError
from codec.huffman import build_table, decode_symbols, read_table, write_table
from codec.kernels import MAX_CODE_LENGTH
from codec.payload_writer import (
    DENSE_METHOD,
    VALUE_GROUPS,
    choose_level_coding,
    code_bit_count,
    encode_payload,
    frequency_code,
    group_sizes,
    level_statistics,
    pack_groups,
)
from codec.sections import decode_indices, encode_indices, ungroup_levels
from codec.selection import expand_ragged_units, expand_units, top_k_indices

FAST = settings(max_examples=200, deadline=None)


@FAST
@given(st.lists(st.integers(0, 32), min_size=0, max_size=60), st.integers(0, 2**32 - 1), st.integers(0, 7))
def test_fields_round_trip(widths, seed, start):
    rng = np.random.default_rng(seed)
    widths = np.array(widths, dtype=np.int64)
    values = np.array([int(rng.integers(0, 1 << w)) if w else 0 for w in widths], dtype=np.int64)
    packed = pack_fields(np.r_[0, values], np.r_[start, widths])

    unpacked, end = unpack_fields(packed, start, widths, "test")
    assert unpacked.tolist() == values.tolist()
    assert end == len(packed)


@FAST
@given(st.lists(st.integers(0, 32), min_size=0, max_size=120), st.integers(0, 2**32 - 1))
def test_fields_whole_and_pieces_agree(widths, seed):
    # A run packed whole and in two pieces joined must give the same bits.
    rng = np.random.default_rng(seed)
    widths = np.array(widths, dtype=np.int64)
    values = rng.integers(0, 1 << 40, widths.size)  # bits above each width must be dropped
    whole = pack_fields(values, widths)

    cut = widths.size // 2
    pieces = pack_fields(values[:cut], widths[:cut]) + pack_fields(values[cut:], widths[cut:])
    assert whole == pieces
    expected = values & ((1 << widths) - 1)
    assert unpack_fields(whole, 0, widths, "test")[0].tolist() == expected.tolist()
    assert unpack_fields(pieces, 0, widths, "test")[0].tolist() == expected.tolist()


def test_fields_truncated():
    with pytest.raises(BitstreamError, match="truncated"):
        unpack_fields(pack_fields(np.array([5]), np.array([3])), 0, np.array([3, 1]), "test")


@FAST
@given(st.lists(st.integers(0, 255), min_size=1, max_size=400))
def test_huffman_round_trip(symbols):
    symbols = np.array(symbols, dtype=np.int64)
    table, codes = build_table(np.bincount(symbols, minlength=256), 8)

    parsed = read_table(write_table(table), 8, "test")
    decoded = decode_symbols(codes.encode(symbols), parsed, symbols.size, "test")
    assert parsed == table
    assert decoded.tolist() == symbols.tolist()


def test_huffman_one_symbol_costs_nothing():
    table, codes = build_table(np.bincount([3, 3, 3], minlength=8), 3)
    assert table.max_length == 0
    assert len(codes.encode(np.array([3, 3, 3]))) == 0


def fibonacci(count: int) -> list[int]:
    numbers = [1, 1]
    while len(numbers) < count:
        numbers.append(numbers[-1] + numbers[-2])
    return numbers[:count]


def test_huffman_length_limit():
    # Fibonacci frequencies force the deepest possible tree: 40 symbols
    # would need codes of 39 bits without the limit.
    table, codes = build_table(np.array(fibonacci(40)), 6)
    symbols = np.arange(40)
    assert table.max_length <= MAX_CODE_LENGTH
    assert decode_symbols(codes.encode(symbols), table, 40, "test").tolist() == symbols.tolist()


@FAST
@given(st.sets(st.integers(0, 5000), min_size=1, max_size=300))
def test_gaps_round_trip(indices):
    indices = np.array(sorted(indices), dtype=np.int64)
    decoded = decode_indices(encode_indices(indices), indices.size, 5001, "test")
    assert decoded.tolist() == indices.tolist()


@FAST
@given(st.integers(1, 8), st.lists(st.integers(0, 255), min_size=1, max_size=50))
def test_grouping_round_trip(bits, raw):
    levels = np.array(raw, dtype=np.int64) % (1 << bits)
    for group in VALUE_GROUPS[: group_sizes(bits)]:
        symbols = pack_groups(levels, bits, group)
        assert ungroup_levels(symbols, bits, group)[: levels.size].tolist() == levels.tolist()


@FAST
@given(st.integers(1, 8), st.lists(st.integers(0, 255), min_size=1, max_size=200))
def test_level_statistics_match_groups(bits, raw):
    # The one-pass histograms equal those of the symbols that would be coded.
    levels = np.array(raw, dtype=np.int64) % (1 << bits)
    dense, runs, nonzero_levels, nonzero_indices, dense_symbols, runs_symbols = level_statistics(levels, bits)
    indices = np.flatnonzero(levels)
    largest = VALUE_GROUPS[group_sizes(bits) - 1]
    assert dense_symbols.tolist() == pack_groups(levels, bits, largest).tolist()
    assert runs_symbols.tolist() == pack_groups(levels[indices] - 1, bits, largest).tolist()
    assert nonzero_indices.tolist() == indices.tolist()
    assert nonzero_levels.tolist() == (levels[indices] - 1).tolist()
    for row, group in enumerate(VALUE_GROUPS[: group_sizes(bits)]):
        expected = np.bincount(pack_groups(levels, bits, group), minlength=256)
        assert dense[row].tolist() == expected.tolist()
        expected = np.bincount(pack_groups(levels[indices] - 1, bits, group), minlength=256)
        assert runs[row].tolist() == expected.tolist()


@FAST
@given(st.integers(1, 8), st.lists(st.integers(0, 255), min_size=1, max_size=200))
def test_chosen_level_coding_round_trip(bits, raw):
    levels = np.array(raw, dtype=np.int64) % (1 << bits)
    method, group, nonzero, symbols, frequencies, indices, _, _ = choose_level_coding(levels, bits)
    assert group * bits <= 8
    assert frequencies.tolist() == np.bincount(symbols, minlength=1 << (group * bits)).tolist()
    if method == DENSE_METHOD:
        assert ungroup_levels(symbols, bits, group)[: levels.size].tolist() == levels.tolist()
    else:
        assert indices.tolist() == np.flatnonzero(levels).tolist()
        assert ungroup_levels(symbols, bits, group)[:nonzero].tolist() == (levels[indices] - 1).tolist()


@FAST
@given(st.lists(st.integers(0, 63), min_size=2, max_size=2000))
def test_huffman_cost_matches_bitarray(symbols):
    # Huffman codes differ in tie-breaking but all have the optimal total
    # length; bitarray's canonical_huffman is the reference. Without a
    # length limit at play (at most 2000 symbols keep codes short), the
    # totals must be equal.
    symbols = np.array(symbols, dtype=np.int64)
    frequencies = np.bincount(symbols, minlength=64)
    table, codes = build_table(frequencies, 6)
    if table.max_length == 0:
        return
    reference, _, _ = canonical_huffman({int(s): int(f) for s, f in enumerate(frequencies) if f})
    expected = sum(int(frequencies[s]) * len(code) for s, code in reference.items())
    assert len(codes.encode(symbols)) == expected


@FAST
@given(st.lists(st.integers(0, 31), min_size=1, max_size=1000))
def test_huffman_decode_matches_bitarray(symbols):
    # bitarray's canonical_decode reads the same canonical code as the
    # compiled decoder, given the same counts and symbol order.
    symbols = np.array(symbols, dtype=np.int64)
    table, codes = build_table(np.bincount(symbols, minlength=32), 5)
    if table.max_length == 0:
        return
    bits = codes.encode(symbols)
    reference = list(canonical_decode(bitarray(bits), table.count, table.symbols))
    assert decode_symbols(bits, table, symbols.size, "test").tolist() == reference
    assert reference == symbols.tolist()


def test_huffman_decode_runs_out_of_bits():
    table, codes = build_table(np.array([5, 3, 1, 1]), 2)
    bits = codes.encode(np.array([0, 1, 2, 3, 3]))  # "1" alone starts a code of 2 or more bits
    with pytest.raises(BitstreamError, match="end before 6 symbols"):
        decode_symbols(bits + bitarray("1"), table, 6, "test")


def coded_bits(symbols: np.ndarray, symbol_bits: int) -> int:
    table, codes = build_table(np.bincount(symbols, minlength=1 << symbol_bits), symbol_bits)
    return len(write_table(table)) + len(codes.encode(symbols))


@FAST
@given(st.integers(1, 8), st.lists(st.integers(0, 255), min_size=1, max_size=300))
def test_level_coding_is_smallest(bits, raw):
    # The writer's level parts are no longer than any other candidate coding.
    levels = np.array(raw, dtype=np.int64) % (1 << bits)
    _, part_bits, _, _, _ = encode_payload(np.array([0], dtype=np.int64), levels, bits)
    chosen = int(part_bits[3:].sum())

    indices = np.flatnonzero(levels)
    for group in VALUE_GROUPS[: group_sizes(bits)]:
        assert chosen <= coded_bits(pack_groups(levels, bits, group), group * bits)
        if indices.size:
            runs = coded_bits(pack_groups(levels[indices] - 1, bits, group), group * bits)
            runs += sum(len(part) for part in encode_indices(indices))
            assert chosen <= runs


@FAST
@given(st.lists(st.integers(0, 1000), min_size=1, max_size=64).filter(any))
def test_code_bit_count_is_the_written_size(raw):
    # The size used to choose a coding equals the size of the code written.
    frequencies = np.zeros(64, dtype=np.int64)
    frequencies[: len(raw)] = raw
    table_bits, code_bits = frequency_code(frequencies, 6)[4:]
    assert code_bit_count(frequencies, 6) == table_bits + code_bits


def test_code_bit_count_with_length_limit():
    # Fibonacci frequencies need codes longer than the limit, so the sizes
    # must agree after the distribution is flattened too.
    frequencies = np.zeros(64, dtype=np.int64)
    frequencies[:40] = fibonacci(40)
    table_bits, code_bits = frequency_code(frequencies, 6)[4:]
    assert code_bit_count(frequencies, 6) == table_bits + code_bits


@FAST
@given(st.integers(1, 3), st.lists(st.integers(0, 3), min_size=1, max_size=40), st.integers(1, 40))
def test_top_k_indices_match_stable_sort(rows, raw, k):
    # Scores from a few small integers tie often, and ties go to the lowest index.
    scores = np.array([raw[row:] + raw[:row] for row in range(rows)], dtype=np.float32)
    k = min(k, scores.shape[1])
    indices = top_k_indices(scores, k)
    for row in range(rows):
        expected = np.sort(np.argsort(-scores[row], kind="stable")[:k])
        assert indices[row].tolist() == expected.tolist()


@pytest.mark.parametrize(
    ("height", "width", "block_size", "border"),
    [(32, 32, 4, 1), (5, 7, 4, 0), (9, 6, 2, 2), (3, 3, 4, 2), (6, 6, 1, 1)],
)
def test_element_offsets_match_coded_mask(height, width, block_size, border):
    offsets, counts = element_offsets(height, width, block_size, border)
    plane = np.arange(height * width, dtype=np.float32).reshape(1, height, width)
    flat_index = to_blocks(plane, block_size, 0)[0].astype(np.int64)
    mask = coded_element_mask(height, width, block_size, border)
    for position in range(mask.shape[0]):
        expected = flat_index[position][mask[position]]
        assert offsets[position, : counts[position]].tolist() == expected.tolist()


def test_ragged_expansion_matches_expand_units():
    # Maps of different modes and unit counts, expanded in one call.
    channels, positions = 3, 8
    maps = [
        ("global", np.array([0, 5, 9, 17, 23])),
        ("region-wise", np.array([1, 4, 6])),
        ("channel-wise", np.array([1, 4, 9, 12, 17, 20])),
        ("region-wise", np.array([7])),
    ]
    starts = np.cumsum([0] + [units.size for _, units in maps])
    region_wise = np.array([mode == "region-wise" for mode, _ in maps])
    index, channel, position = expand_ragged_units(
        np.concatenate([units for _, units in maps]), starts, region_wise, channels, positions
    )

    expected = [expand_units(units, mode, channels, positions) for mode, units in maps]
    sizes = [np.size(map_channel) for map_channel, _ in expected]
    assert index.tolist() == np.repeat(np.arange(len(maps)), sizes).tolist()
    assert channel.tolist() == np.concatenate([np.ravel(c) for c, _ in expected]).tolist()
    assert position.tolist() == np.concatenate([np.ravel(p) for _, p in expected]).tolist()
