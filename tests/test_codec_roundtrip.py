"""Round trips of the block-sparse codec over modes, block sizes, depths and shapes."""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
import pytest
import torch

from codec import MODES, BitstreamError, CodecConfig, decode, decode_batch, encode, encode_batch, read_sparse, simulate
from codec.blocks import from_blocks, to_blocks
from codec.selection import block_energy
from codec.sparse import coded_mask, reconstruct
from tests.codec_invariants import check_round_trip, relu_features

SHAPES = [(64, 32, 32), (64, 30, 30), (1, 5, 7)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("bits", [1, 2, 4, 8])
@pytest.mark.parametrize("block_size", [1, 2, 4, 8])
@pytest.mark.parametrize("mode", MODES)
def test_round_trip_exact(mode, block_size, bits, shape):
    rng = np.random.default_rng(zlib.crc32(repr((mode, block_size, bits, shape)).encode()))
    features = relu_features(rng, shape)
    check_round_trip(features, CodecConfig(mode=mode, keep_ratio=0.1, block_size=block_size, bits=bits))


@pytest.mark.parametrize("keep_ratio", [1.0, 0.5, 0.3, 0.1, 0.05])
@pytest.mark.parametrize("mode", MODES)
def test_round_trip_keep_ratios(mode, keep_ratio):
    features = relu_features(np.random.default_rng(1), (16, 16, 16))
    check_round_trip(features, CodecConfig(mode=mode, keep_ratio=keep_ratio))


def test_signed_values_round_trip():
    features = np.random.default_rng(2).normal(size=(8, 12, 12)).astype(np.float32)
    check_round_trip(features, CodecConfig(mode="global", keep_ratio=0.5, bits=4))


def test_torch_input_accepted():
    features = relu_features(np.random.default_rng(3), (4, 8, 8))
    config = CodecConfig()
    assert encode(torch.from_numpy(features), config) == encode(features, config)


def test_blocks_inverse():
    features = np.arange(2 * 5 * 7, dtype=np.float32).reshape(2, 5, 7)
    assert np.array_equal(from_blocks(to_blocks(features, 4, 0), 5, 7, 4), features)


@pytest.mark.parametrize(("shape", "block_size", "border"), [((3, 16, 16), 4, 1), ((2, 5, 7), 4, 0), ((2, 9, 6), 2, 2)])
def test_block_energy_sums_block_squares(shape, block_size, border):
    # Each block's squares are added one at a time in raster order, in
    # float32, so the energies, and the blocks they select, are exact.
    features = relu_features(np.random.default_rng(5), shape)
    blocks = to_blocks(features, block_size, border)
    expected = np.zeros(blocks.shape[:2], dtype=np.float32)
    for element in range(blocks.shape[2]):
        expected += blocks[:, :, element] * blocks[:, :, element]
    assert np.array_equal(block_energy(features, block_size, border), expected)


@pytest.mark.parametrize("mode", MODES)
def test_selection_keeps_highest_energy(mode):
    features = relu_features(np.random.default_rng(4), (8, 16, 16))
    config = CodecConfig(mode=mode, keep_ratio=0.25, block_size=4, border=0)
    sparse = read_sparse(encode(features, config))
    energy = block_energy(features, 4, 0)

    if mode == "global":
        kept = energy.reshape(-1)[sparse.units]
        dropped = np.delete(energy.reshape(-1), sparse.units)
        assert kept.min() >= dropped.max()
    elif mode == "region-wise":
        totals = energy.sum(axis=0)
        assert totals[sparse.units].min() >= np.delete(totals, sparse.units).max()
    else:
        for channel in range(8):
            mine = sparse.units[sparse.units // 16 == channel] % 16
            assert energy[channel, mine].min() >= np.delete(energy[channel], mine).max()


@pytest.mark.parametrize("mode", MODES)
def test_ties_break_to_lowest_index(mode):
    features = np.ones((2, 8, 8), dtype=np.float32)
    config = CodecConfig(mode=mode, keep_ratio=0.5, block_size=4, border=0)
    units = read_sparse(encode(features, config)).units
    expected = {"global": [0, 1, 2, 3], "region-wise": [0, 1], "channel-wise": [0, 1, 4, 5]}[mode]
    assert units.tolist() == expected


# Degenerate inputs: each is handled on purpose and must round-trip exactly.


@pytest.mark.parametrize("mode", MODES)
def test_all_zero_map(mode):
    features = np.zeros((4, 8, 8), dtype=np.float32)
    decoded = check_round_trip(features, CodecConfig(mode=mode))
    assert not decoded.any()


def test_single_nonzero_value():
    features = np.zeros((4, 8, 8), dtype=np.float32)
    features[2, 5, 3] = 7.5
    decoded = check_round_trip(features, CodecConfig(mode="global", keep_ratio=0.05))
    assert decoded[2, 5, 3] == np.float32(7.5)
    assert np.count_nonzero(decoded) == 1


@pytest.mark.parametrize("bits", [1, 2, 8])
def test_constant_map_exact(bits):
    features = np.full((3, 9, 9), 0.3125, dtype=np.float32)
    decoded = check_round_trip(features, CodecConfig(mode="region-wise", keep_ratio=1.0, bits=bits, border=0))
    assert np.array_equal(decoded, features)


def test_dead_channel():
    features = relu_features(np.random.default_rng(5), (4, 8, 8))
    features[1] = 0
    check_round_trip(features, CodecConfig(mode="channel-wise", keep_ratio=0.5))


def test_keep_all_blocks():
    features = relu_features(np.random.default_rng(6), (4, 8, 8))
    sparse = read_sparse(encode(features, CodecConfig(keep_ratio=1.0, border=0)))
    assert sparse.units.size == 4 * 4


def test_k_rounding_below_one_keeps_one():
    features = relu_features(np.random.default_rng(7), (1, 5, 7))
    sparse = read_sparse(encode(features, CodecConfig(mode="global", keep_ratio=0.05, block_size=4)))
    assert sparse.units.size == 1


def test_one_symbol_alphabet_costs_no_code_bits():
    features = np.zeros((2, 8, 8), dtype=np.float32)
    _, stats = encode(features, CodecConfig(keep_ratio=1.0, border=0), with_stats=True)
    assert stats.value_bits == 0
    assert stats.position_bits == 0


def test_blocks_only_on_border_code_no_values():
    # With 1x1 blocks and the default border, the all-zero map keeps unit 0,
    # a border pixel, so no element is coded at all.
    features = np.zeros((2, 6, 6), dtype=np.float32)
    data, stats = encode(features, CodecConfig(mode="global", keep_ratio=0.01, block_size=1), with_stats=True)
    assert stats.coded_values == 0
    assert not decode(data).any()


def test_border_wider_than_map():
    features = relu_features(np.random.default_rng(8), (2, 6, 6))
    decoded = check_round_trip(features, CodecConfig(border=3))
    assert not decoded.any()


# Invalid input to the encoder and invalid settings.


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.full((2, 4, 4), np.nan, dtype=np.float32), "NaN"),
        (np.full((2, 4, 4), np.inf, dtype=np.float32), "NaN or infinite"),
        (np.zeros((4, 4), dtype=np.float32), r"shape \(4, 4\)"),
        (np.zeros((1, 2, 4, 4), dtype=np.float32), r"shape \(1, 2, 4, 4\)"),
        (np.zeros((0, 4, 4), dtype=np.float32), "empty dimension"),
    ],
    ids=["nan", "inf", "rank-2", "rank-4", "empty"],
)
def test_encode_rejects_bad_maps(bad, match):
    with pytest.raises(ValueError, match=match):
        encode(bad, CodecConfig())


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("mode", "row-wise", "invalid mode 'row-wise'; valid: channel-wise, region-wise, global"),
        ("keep_ratio", 0.0, "invalid keep_ratio 0.0"),
        ("keep_ratio", 1.5, "invalid keep_ratio 1.5"),
        ("block_size", 0, "invalid block_size 0"),
        ("bits", 9, "invalid bits 9; valid: integers 1..8"),
        ("bits", 0, "invalid bits 0"),
        ("border", -1, "invalid border -1"),
    ],
)
def test_config_rejects_invalid(field, value, match):
    with pytest.raises(ValueError, match=match):
        CodecConfig(**{field: value})


def test_simulate_gradient_flows_through_kept_elements():
    rng = np.random.default_rng(9)
    features = torch.from_numpy(np.stack([relu_features(rng, (4, 8, 8)) for _ in range(2)]))
    features.requires_grad_(True)
    config = CodecConfig(keep_ratio=0.25)
    simulate(features, config).sum().backward()
    for index in range(2):
        sparse = read_sparse(encode(features[index].detach(), config))
        assert torch.equal(features.grad[index] != 0, torch.from_numpy(coded_mask(sparse)))


def test_simulate_rejects_single_map():
    with pytest.raises(ValueError, match="N x C x H x W"):
        simulate(torch.zeros(4, 8, 8), CodecConfig())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(64, 32, 32), (3, 5, 7)])
def test_batch_calls_equal_single_calls(mode, shape):
    # Maps of different scales and sparsity in one batch: sharing the numpy
    # work must not let one map change another's selection or quantization.
    rng = np.random.default_rng(7)
    batch = np.stack([relu_features(rng, shape) * scale for scale in (1.0, 0.01, 30.0)] + [np.zeros(shape, np.float32)])
    config = CodecConfig(mode=mode, keep_ratio=0.1, bits=2)

    streams = encode_batch(batch, config)
    assert streams == [encode(feature_map, config) for feature_map in batch]
    pairs = encode_batch(batch, config, with_stats=True)
    assert [data for data, _ in pairs] == streams
    assert [stats for _, stats in pairs] == [encode(m, config, with_stats=True)[1] for m in batch]

    decoded = decode_batch(streams, expected_shape=shape)
    assert np.array_equal(decoded, np.stack([decode(data) for data in streams]))
    assert np.array_equal(decoded, simulate(torch.from_numpy(batch), config).numpy())


def test_decode_batch_names_the_bad_bitstream():
    rng = np.random.default_rng(8)
    good = encode(relu_features(rng, (4, 8, 8)), CodecConfig())
    other = encode(relu_features(rng, (4, 8, 12)), CodecConfig())
    with pytest.raises(BitstreamError, match="bitstream 1: "):
        decode_batch([good, good[:-3]])
    with pytest.raises(BitstreamError, match=r"bitstream 1 contains a \(4, 8, 12\) map"):
        decode_batch([good, other])
    with pytest.raises(BitstreamError, match=r"bitstream 0: .*expected \(4, 8, 12\)"):
        decode_batch([good], expected_shape=(4, 8, 12))
    with pytest.raises(ValueError, match="at least one bitstream"):
        decode_batch([])


def test_encode_batch_rejects_a_single_map():
    with pytest.raises(ValueError, match="N x C x H x W"):
        encode_batch(np.zeros((4, 8, 8), np.float32), CodecConfig())


@pytest.mark.parametrize("extra", [-1, 1])
def test_reconstruct_rejects_level_count_mismatch(extra):
    features = relu_features(np.random.default_rng(6), (4, 8, 8))
    sparse = read_sparse(encode(features, CodecConfig(mode="global", keep_ratio=0.5, block_size=4, bits=2)))
    levels = sparse.levels[:-1] if extra < 0 else np.append(sparse.levels, 0)
    damaged = dataclasses.replace(sparse, levels=levels)
    with pytest.raises(ValueError, match="levels"):
        reconstruct(damaged)
