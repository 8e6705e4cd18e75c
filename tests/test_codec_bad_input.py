"""Hostile, truncated and corrupted bitstreams raise BitstreamError and nothing else."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec.bitpack import pack_fields
from codec.sections import join_parts, split_parts
from codec import BitstreamError, ChecksumError, CodecConfig, UnsupportedVersionError, decode, encode
from sparsesplit.v1 import bitstream_pb2 as pb
from tests.codec_invariants import relu_features

FEATURES = relu_features(np.random.default_rng(0), (8, 12, 12))
VALID = {mode: encode(FEATURES, CodecConfig(mode=mode, keep_ratio=0.3)) for mode in ("global", "region-wise", "channel-wise")}
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def body_of(data: bytes) -> pb.FeatureMap:
    return pb.FeatureMap.FromString(pb.FeatureBitstream.FromString(data).body)


def rewrap(body: pb.FeatureMap | bytes, version: int = 1) -> bytes:
    """Wrap a body with a correct CRC, so that the decoder must catch the damage itself."""
    raw = body if isinstance(body, bytes) else body.SerializeToString()
    return pb.FeatureBitstream(version=version, crc32=zlib.crc32(raw), body=raw).SerializeToString()


def decode_or_bitstream_error(data: bytes) -> None:
    """Decode ``data``; a success must be a sane map, a failure must be a BitstreamError."""
    try:
        decoded = decode(data)
    except BitstreamError:
        return
    assert decoded.dtype == np.float32
    assert decoded.ndim == 3


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes(data):
    decode_or_bitstream_error(data)


@FUZZ
@given(st.sampled_from(sorted(VALID)), st.data())
def test_random_mutations(mode, data):
    stream = bytearray(VALID[mode])
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(stream) - 1))
        stream[index] = data.draw(st.integers(0, 255))
    decode_or_bitstream_error(bytes(stream))


@FUZZ
@given(st.sampled_from(sorted(VALID)), st.data())
def test_random_body_mutations_with_valid_crc(mode, data):
    body = bytearray(pb.FeatureBitstream.FromString(VALID[mode]).body)
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(body) - 1))
        body[index] ^= 1 << data.draw(st.integers(0, 7))
    decode_or_bitstream_error(rewrap(bytes(body)))


@FUZZ
@given(st.sampled_from(sorted(VALID)), st.data())
def test_random_truncations(mode, data):
    stream = VALID[mode]
    cut = data.draw(st.integers(0, len(stream) - 1))
    with pytest.raises(BitstreamError):
        decode(stream[:cut])


@FUZZ
@given(st.sampled_from(sorted(VALID)), st.lists(st.integers(0, 2**20), min_size=0, max_size=10))
def test_random_part_lengths(mode, part_bits):
    body = body_of(VALID[mode])
    del body.part_bits[:]
    body.part_bits.extend(part_bits)
    decode_or_bitstream_error(rewrap(body))


def test_crc_mismatch_is_checksum_error():
    outer = pb.FeatureBitstream.FromString(VALID["global"])
    outer.crc32 ^= 1
    with pytest.raises(ChecksumError, match="CRC-32 mismatch"):
        decode(outer.SerializeToString())


@pytest.mark.parametrize("version", [0, 2, 99])
def test_unknown_version(version):
    outer = pb.FeatureBitstream.FromString(VALID["global"])
    with pytest.raises(UnsupportedVersionError, match=f"version {version} is not supported"):
        decode(rewrap(outer.body, version=version))


def mutated(**changes) -> bytes:
    body = body_of(VALID["global"])
    for field, value in changes.items():
        setattr(body, field, value)
    return rewrap(body)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"channels": 0}, "declared shape"),
        ({"channels": 60000, "height": 60000, "width": 60000}, "declared shape"),
        ({"height": 70000}, "declared shape"),
        ({"mode": 0}, "unknown selection mode 0"),
        ({"mode": 7}, "unknown selection mode 7"),
        ({"block_size": 0}, "block_size 0"),
        ({"block_size": 65}, "block_size 65"),
        ({"bits": 9}, "bits 9"),
        ({"border": 5000}, "border 5000"),
        ({"value_coding": 0}, "unknown value coding 0"),
        ({"value_coding": 9}, "unknown value coding 9"),
        ({"value_coding": 1, "nonzero_values": 3}, "nonzero_values 3 is set"),
        ({"value_group": 3}, "value_group 3"),
        ({"scale": float("nan")}, "quantization parameters"),
        ({"offset": float("inf")}, "quantization parameters"),
        ({"scale": -1.0}, "quantization parameters"),
        ({"kept_units": 0}, "kept_units 0"),
        ({"kept_units": 10**6}, "kept_units 1000000"),
        ({"kept_units": 5}, "positions"),
    ],
    ids=lambda value: str(value),
)
def test_invalid_header_fields(changes, match):
    with pytest.raises(BitstreamError, match=match):
        decode(mutated(**changes))


def test_expected_shape_mismatch():
    with pytest.raises(BitstreamError, match=r"shape \(8, 12, 12\), expected \(64, 32, 32\)"):
        decode(VALID["global"], expected_shape=(64, 32, 32))


def test_part_length_beyond_data():
    body = body_of(VALID["global"])
    body.part_bits[4] += 800
    with pytest.raises(BitstreamError, match="payload declares"):
        decode(rewrap(body))


def test_missing_part_rejected():
    body = body_of(VALID["global"])
    del body.part_bits[-1]
    with pytest.raises(BitstreamError, match="parts"):
        decode(rewrap(body))


def test_nonzero_padding_rejected():
    body = body_of(VALID["global"])
    if sum(body.part_bits) % 8 == 0:
        pytest.fail("fixture has no padding bits; pick other features")
    payload = bytearray(body.payload)
    payload[-1] |= 1
    body.payload = bytes(payload)
    with pytest.raises(BitstreamError, match="padding"):
        decode(rewrap(body))


def test_incomplete_prefix_code_rejected():
    # A positions table whose codes leave part of the code space unused:
    # one code of length 1 and one of length 2 (Kraft sum 3/4).
    body = body_of(VALID["global"])
    parts = split_parts(body.payload, list(body.part_bits), len(body.part_bits))
    parts[0] = pack_fields(np.array([2, 1, 1, 0, 1]), np.array([5, 6, 6, 5, 5]))
    body.payload, part_bits = join_parts(parts)
    del body.part_bits[:]
    body.part_bits.extend(part_bits)
    with pytest.raises(BitstreamError, match="Kraft sum 3/4"):
        decode(rewrap(body))


def test_non_bytes_rejected():
    with pytest.raises(TypeError, match="bytes, not str"):
        decode("not bytes")  # type: ignore[arg-type]
