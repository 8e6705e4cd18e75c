"""``encode`` and ``decode``: a feature map to a self-contained bitstream and back.

The wire format is documented field by field in
``proto/sparsesplit/v1/bitstream.proto``. ``encode`` returns exactly the
bytes that ``decode`` needs, and ``decode`` checks every declared size
against the data present before it allocates or decodes anything.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass
from typing import Any, Literal, overload

import numpy as np
from google.protobuf.message import DecodeError
from sparsesplit.v1 import bitstream_pb2 as pb

from codec.blocks import block_grid, coded_element_mask
from codec.config import MAX_BITS, MAX_BLOCK_SIZE, MAX_BORDER, MODES, CodecConfig
from codec.errors import BitstreamError, ChecksumError, UnsupportedVersionError
from codec.payload_writer import MAX_SYMBOL_BITS, VALUE_GROUPS
from codec.sections import (
    DENSE,
    PART_COUNTS,
    ZERO_RUNS,
    LevelCoding,
    decode_indices,
    decode_levels,
    encode_payload,
    split_parts,
)
from codec.selection import unit_count
from codec.sparse import MAX_ELEMENTS, MAX_SIDE, SparseMap, analyze, analyze_batch, reconstruct, reconstruct_batch

FORMAT_VERSION = 1

_MODE_TO_PROTO = {
    "channel-wise": pb.SELECTION_MODE_CHANNEL_WISE,
    "region-wise": pb.SELECTION_MODE_REGION_WISE,
    "global": pb.SELECTION_MODE_GLOBAL,
}
_PROTO_TO_MODE = {value: key for key, value in _MODE_TO_PROTO.items()}
_CODING_TO_PROTO = {DENSE: pb.VALUE_CODING_DENSE, ZERO_RUNS: pb.VALUE_CODING_ZERO_RUNS}
_PROTO_TO_CODING = {value: key for key, value in _CODING_TO_PROTO.items()}

# Parts of the payload that hold Huffman tables, position codes and value
# codes (see the part_bits field of the FeatureMap message).
_TABLE_PARTS = (0, 3, 5)
_POSITION_PARTS = (1, 2)


@dataclass
class CodecStats:
    """Sizes of one encoded map, in bits, and the bounds they are measured against.

    ``total_bits`` is the serialized bitstream's length. ``header_bits`` is
    everything except tables, codes and extra bits: protobuf framing,
    shape, settings, quantization parameters, CRC and byte padding.
    ``value_bits`` covers the level codes and, for zero-run coding, the
    codes and extra bits of the runs.
    ``value_entropy_bits`` is the zero-order entropy of the levels times
    their number, and ``position_bound_bits`` is log2 of the number of ways
    to choose the kept units (per channel in channel-wise mode). Their sum,
    ``bound_bits``, is a reference rather than a limit: grouped and zero-run
    level coding exploit the correlation of neighbouring levels and can
    spend fewer bits than the zero-order entropy.
    """

    total_bits: int
    header_bits: int
    table_bits: int
    position_bits: int
    value_bits: int
    kept_blocks: int
    kept_units: int
    coded_values: int
    value_group: int
    value_coding: str
    value_entropy_bits: float
    position_bound_bits: float

    @property
    def bound_bits(self) -> float:
        return self.value_entropy_bits + self.position_bound_bits

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "bound_bits": self.bound_bits}


def log2_binomial(n: int, k: int) -> float:
    """Return log2 of n choose k."""
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)) / math.log(2)


def zero_order_entropy_bits(levels: np.ndarray) -> float:
    """Return the number of levels times the entropy of their empirical distribution, in bits."""
    if levels.size == 0:
        return 0.0
    counts = np.bincount(levels).astype(np.float64)
    counts = counts[counts > 0]
    probabilities = counts / levels.size
    return float(-(counts * np.log2(probabilities)).sum())


def position_bound(sparse: SparseMap) -> float:
    channels = sparse.shape[0]
    positions = sparse.positions
    mode = sparse.config.mode
    if mode == "channel-wise":
        return channels * log2_binomial(positions, sparse.units.size // channels)
    return log2_binomial(unit_count(mode, channels, positions), sparse.units.size)


def write_bitstream(sparse: SparseMap) -> tuple[bytes, list[int], LevelCoding]:
    """Serialize a ``SparseMap``; return the bytes, the payload part lengths and the level coding."""
    config = sparse.config
    payload, part_bits, coding = encode_payload(sparse.units, sparse.levels, config.bits)

    body = pb.FeatureMap(
        channels=sparse.shape[0],
        height=sparse.shape[1],
        width=sparse.shape[2],
        mode=_MODE_TO_PROTO[config.mode],
        block_size=config.block_size,
        border=config.border,
        bits=config.bits,
        kept_units=sparse.units.size,
        offset=float(sparse.offset),
        scale=float(sparse.scale),
        value_coding=_CODING_TO_PROTO[coding.method],
        value_group=coding.group,
        nonzero_values=coding.nonzero,
        payload=payload,
        part_bits=part_bits,
    ).SerializeToString()
    data = pb.FeatureBitstream(version=FORMAT_VERSION, crc32=zlib.crc32(body), body=body).SerializeToString()
    return data, part_bits, coding


def collect_stats(sparse: SparseMap, data: bytes, part_bits: list[int], coding: LevelCoding) -> CodecStats:
    """Return the ``CodecStats`` of a bitstream written by ``write_bitstream``."""
    table_bits = sum(part_bits[i] for i in _TABLE_PARTS if i < len(part_bits))
    position_bits = sum(part_bits[i] for i in _POSITION_PARTS)
    return CodecStats(
        total_bits=8 * len(data),
        header_bits=8 * len(data) - sum(part_bits),
        table_bits=table_bits,
        position_bits=position_bits,
        value_bits=sum(part_bits) - table_bits - position_bits,
        kept_blocks=sparse.kept_blocks()[0].size,
        kept_units=sparse.units.size,
        coded_values=sparse.levels.size,
        value_group=coding.group,
        value_coding=coding.method,
        value_entropy_bits=zero_order_entropy_bits(sparse.levels),
        position_bound_bits=position_bound(sparse),
    )


@overload
def encode(features: Any, config: CodecConfig, *, with_stats: Literal[False] = ...) -> bytes: ...
@overload
def encode(features: Any, config: CodecConfig, *, with_stats: Literal[True]) -> tuple[bytes, CodecStats]: ...


def encode(features: Any, config: CodecConfig, *, with_stats: bool = False) -> bytes | tuple[bytes, CodecStats]:
    """Compress one C x H x W float map (numpy or torch) into a bitstream.

    Raises ``ValueError`` for a map of another rank, an empty or oversized
    shape, or NaN and infinite values. With ``with_stats``, also returns the
    ``CodecStats`` of the bitstream.
    """
    sparse = analyze(features, config)
    data, part_bits, coding = write_bitstream(sparse)
    if not with_stats:
        return data
    return data, collect_stats(sparse, data, part_bits, coding)


@overload
def encode_batch(features: Any, config: CodecConfig, *, with_stats: Literal[False] = ...) -> list[bytes]: ...
@overload
def encode_batch(
    features: Any, config: CodecConfig, *, with_stats: Literal[True]
) -> list[tuple[bytes, CodecStats]]: ...


def encode_batch(
    features: Any, config: CodecConfig, *, with_stats: bool = False
) -> list[bytes] | list[tuple[bytes, CodecStats]]:
    """Compress every map of an N x C x H x W batch into its own bitstream.

    Each bitstream equals ``encode(features[i], config)``; the batch only
    shares the selection and quantization work between maps. With
    ``with_stats``, each item is a ``(bytes, CodecStats)`` pair.
    """
    encoded = []
    for sparse in analyze_batch(features, config):
        data, part_bits, coding = write_bitstream(sparse)
        encoded.append((data, collect_stats(sparse, data, part_bits, coding)) if with_stats else data)
    return encoded


def parse(data: bytes) -> pb.FeatureMap:
    """Check the version and CRC of a bitstream and parse its body."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"a bitstream is bytes, not {type(data).__name__}")
    try:
        outer = pb.FeatureBitstream.FromString(bytes(data))
    except (DecodeError, ValueError) as error:
        raise BitstreamError(f"not a FeatureBitstream message ({len(data)} bytes): {error}") from error

    if outer.version != FORMAT_VERSION:
        raise UnsupportedVersionError(
            f"bitstream format version {outer.version} is not supported; this decoder reads version "
            f"{FORMAT_VERSION}, so re-encode with a matching release"
        )
    actual = zlib.crc32(outer.body)
    if actual != outer.crc32:
        raise ChecksumError(f"CRC-32 mismatch: body hashes to {actual:08x}, header records {outer.crc32:08x}")

    try:
        return pb.FeatureMap.FromString(outer.body)
    except (DecodeError, ValueError) as error:
        raise BitstreamError(f"bitstream body is not a FeatureMap message: {error}") from error


def check_header(body: pb.FeatureMap) -> None:
    """Check the shape and settings of a parsed body against the format's limits."""
    shape = (body.channels, body.height, body.width)
    if min(shape) < 1 or max(shape) > MAX_SIDE or math.prod(shape) > MAX_ELEMENTS:
        raise BitstreamError(
            f"declared shape {shape} is outside the limits: each side 1..{MAX_SIDE}, at most {MAX_ELEMENTS} elements"
        )
    if body.mode not in _PROTO_TO_MODE:
        raise BitstreamError(f"unknown selection mode {body.mode}; valid: {', '.join(MODES)}")
    if not 1 <= body.block_size <= MAX_BLOCK_SIZE:
        raise BitstreamError(f"block_size {body.block_size} is outside 1..{MAX_BLOCK_SIZE}")
    if not 1 <= body.bits <= MAX_BITS:
        raise BitstreamError(f"bits {body.bits} is outside 1..{MAX_BITS}")
    if body.border > MAX_BORDER:
        raise BitstreamError(f"border {body.border} is above {MAX_BORDER}")
    if body.value_coding not in _PROTO_TO_CODING:
        raise BitstreamError(f"unknown value coding {body.value_coding}; valid: {DENSE}, {ZERO_RUNS}")
    if body.value_group not in VALUE_GROUPS or body.value_group * body.bits > MAX_SYMBOL_BITS:
        raise BitstreamError(
            f"value_group {body.value_group} is invalid for {body.bits}-bit levels; "
            f"valid: {', '.join(str(g) for g in VALUE_GROUPS if g * body.bits <= MAX_SYMBOL_BITS)}"
        )
    if not (math.isfinite(body.offset) and math.isfinite(body.scale) and body.scale >= 0):
        raise BitstreamError(f"invalid quantization parameters: offset {body.offset}, scale {body.scale}")


def read_sparse(data: bytes, expected_shape: tuple[int, int, int] | None = None) -> SparseMap:
    """Parse and entropy-decode a bitstream into a ``SparseMap`` without densifying it.

    The map's ``config.keep_ratio`` is the kept fraction itself: kept units
    over candidate units (per channel in channel-wise mode).
    """
    body = parse(data)
    check_header(body)
    shape = (int(body.channels), int(body.height), int(body.width))
    if expected_shape is not None and shape != tuple(expected_shape):
        raise BitstreamError(f"bitstream contains a map of shape {shape}, expected {tuple(expected_shape)}")

    mode = _PROTO_TO_MODE[body.mode]
    rows, cols = block_grid(shape[1], shape[2], body.block_size)
    positions = rows * cols
    units_total = unit_count(mode, shape[0], positions)
    if not 1 <= body.kept_units <= units_total:
        raise BitstreamError(f"kept_units {body.kept_units} is outside 1..{units_total}")
    config = CodecConfig(
        mode=mode,
        keep_ratio=body.kept_units / units_total,
        block_size=int(body.block_size),
        bits=int(body.bits),
        border=int(body.border),
    )

    coding = LevelCoding(_PROTO_TO_CODING[body.value_coding], int(body.value_group), int(body.nonzero_values))
    if coding.method == DENSE and coding.nonzero:
        raise BitstreamError(f"nonzero_values {coding.nonzero} is set, but the values are dense-coded")
    parts = split_parts(body.payload, list(body.part_bits), PART_COUNTS[coding.method])

    units = decode_indices(parts[:3], int(body.kept_units), units_total, "positions")
    if mode == "channel-wise":
        per_channel = np.bincount(units // positions, minlength=shape[0])
        if per_channel.min() != per_channel.max():
            raise BitstreamError("channel-wise bitstream keeps different numbers of blocks in different channels")

    # Coded elements: those of each kept block position, once per channel
    # for region-wise units, which stand for a position in every channel.
    per_position = coded_element_mask(shape[1], shape[2], config.block_size, config.border).sum(axis=1)
    if mode == "region-wise":
        coded = shape[0] * int(per_position[units].sum())
    else:
        coded = int(per_position[units % positions].sum())
    levels = decode_levels(parts[3:], coding, config.bits, coded)
    return SparseMap(shape, config, units, levels, np.float32(body.offset), np.float32(body.scale))


def decode(data: bytes, expected_shape: tuple[int, int, int] | None = None) -> np.ndarray:
    """Rebuild the float32 C x H x W map of a bitstream, zero outside the kept blocks.

    Raises ``BitstreamError`` for any bitstream that is truncated, corrupted
    or inconsistent (``ChecksumError`` for a CRC mismatch and
    ``UnsupportedVersionError`` for another format version), or whose shape
    differs from ``expected_shape`` when one is given.
    """
    return reconstruct(read_sparse(data, expected_shape))


def decode_batch(bitstreams: list[bytes], expected_shape: tuple[int, int, int] | None = None) -> np.ndarray:
    """Decode bitstreams of maps of one shape into an N x C x H x W float32 array.

    Each map equals ``decode(bitstreams[i])``. Raises ``BitstreamError``
    naming the index of the first invalid bitstream, or of the first one
    whose shape or block size differs from the first bitstream's.
    """
    if not bitstreams:
        raise ValueError("decode_batch needs at least one bitstream")
    maps = []
    for index, data in enumerate(bitstreams):
        try:
            sparse = read_sparse(data, expected_shape)
        except BitstreamError as error:
            raise type(error)(f"bitstream {index}: {error}") from error
        first = maps[0] if maps else sparse
        if (sparse.shape, sparse.config.block_size) != (first.shape, first.config.block_size):
            raise BitstreamError(
                f"bitstream {index} contains a {sparse.shape} map in {sparse.config.block_size}-pixel blocks, "
                f"bitstream 0 a {first.shape} map in {first.config.block_size}-pixel blocks, so "
                "decode maps of different shapes in separate batches"
            )
        maps.append(sparse)
    return reconstruct_batch(maps)
