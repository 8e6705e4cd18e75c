"""Block-sparse quantization of feature maps with Huffman-coded, self-contained bitstreams.

    from codec import CodecConfig, encode, decode, simulate, BitstreamError
    cfg = CodecConfig(mode="global", keep_ratio=0.1, block_size=4, bits=2, border=1)
    data = encode(features, cfg)   # one C x H x W float32 map -> bytes
    restored = decode(data)        # float32 C x H x W numpy array
    batch = simulate(x, cfg)       # N x C x H x W torch -> decode(encode(x[i])), differentiable

``encode_batch`` and ``decode_batch`` do the same as ``encode`` and ``decode``
on every map of an N x C x H x W batch, and share the numpy work between maps.
"""

from codec.bitstream import FORMAT_VERSION, CodecStats, decode, decode_batch, encode, encode_batch, read_sparse
from codec.config import KEEP_RATIOS, MODES, CodecConfig
from codec.errors import BitstreamError, ChecksumError, UnsupportedVersionError
from codec.simulate import simulate

__all__ = [
    "FORMAT_VERSION",
    "KEEP_RATIOS",
    "MODES",
    "BitstreamError",
    "ChecksumError",
    "CodecConfig",
    "CodecStats",
    "UnsupportedVersionError",
    "decode",
    "decode_batch",
    "encode",
    "encode_batch",
    "read_sparse",
    "simulate",
]
