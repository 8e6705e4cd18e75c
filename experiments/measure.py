"""Accuracy and real bit rate of one codec setting on test images.

Accuracy runs the head, ``codec.simulate`` and the tail in float32, batch by
batch. ``simulate`` returns exactly what ``decode(encode(x))`` returns, and
``measure_codec`` checks that on every image: it encodes each feature map
on its own, decodes the bytes and compares them with the simulated map.
Bits per pixel (BPP) divide the serialized bitstream's bits by the input
image's pixels (H x W), headers and tables included.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import zstandard
from tqdm import tqdm

from codec import CodecConfig, decode, encode, simulate
from codec.blocks import block_grid
from codec.selection import unit_count
from experiments.bench_codec import sparse_payload
from splitnet.data import ImageSet, normalize
from splitnet.model import SplitModel

ZSTD_LEVEL = 19


@torch.no_grad()
def codec_logits(
    model: SplitModel,
    images: torch.Tensor,
    config: CodecConfig,
    mean: tuple[float, ...],
    std: tuple[float, ...],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run a uint8 batch through the head, the codec and the tail; return features, decoded features and logits."""
    features = model.head(normalize(images, mean, std))
    decoded = simulate(features, config)
    return features, decoded, model.tail(decoded)


def codec_accuracy(
    model: SplitModel,
    image_set: ImageSet,
    config: CodecConfig,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    batch_size: int,
) -> float:
    """Return the top-1 accuracy, from 0 to 1, of the model with the codec between head and tail."""
    model.eval()
    correct = 0
    for start in range(0, len(image_set), batch_size):
        images = image_set.images[start : start + batch_size]
        labels = image_set.labels[start : start + batch_size]
        _, _, logits = codec_logits(model, images, config, mean, std)
        correct += int((logits.argmax(1) == labels).sum())
    return correct / len(image_set)


def percentile(values: list[float], q: float) -> float:
    """Return the q-th percentile of ``values`` with linear interpolation."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def measure_codec(
    model: SplitModel,
    image_set: ImageSet,
    config: CodecConfig,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    batch_size: int,
    progress: bool = False,
) -> tuple[dict[str, Any], dict[str, float]]:
    """Measure accuracy, bits and coding time of one setting on every image of ``image_set``.

    Returns the figures (see docs/results-schema.md) and, separately, the
    wall times, which vary between runs. Times are per image on one
    C x H x W float32 numpy map: ``encode`` from the map to bytes and
    ``decode`` from bytes to the map.
    """
    model.eval()
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    height, width = image_set.images.shape[-2:]
    pixels = int(height) * int(width)

    correct = 0
    matches = True
    sizes, zstd_sizes, stats_list, encode_ms, decode_ms = [], [], [], [], []
    feature_shape: tuple[int, ...] = ()
    starts = range(0, len(image_set), batch_size)
    for start in tqdm(starts, desc=f"measuring {config.mode} keep {config.keep_ratio:g}", unit="batch",
                      disable=not progress, leave=False):
        images = image_set.images[start : start + batch_size]
        labels = image_set.labels[start : start + batch_size]
        features, decoded, logits = codec_logits(model, images, config, mean, std)
        correct += int((logits.argmax(1) == labels).sum())
        feature_shape = tuple(features.shape[1:])

        maps = features.numpy()
        expected = decoded.numpy()
        for index, feature_map in enumerate(maps):
            started = time.perf_counter()
            data, stats = encode(feature_map, config, with_stats=True)
            encoded = time.perf_counter()
            restored = decode(data)
            decoded_at = time.perf_counter()

            encode_ms.append(1000 * (encoded - started))
            decode_ms.append(1000 * (decoded_at - encoded))
            matches = matches and bool(np.array_equal(restored, expected[index]))
            sizes.append(len(data))
            stats_list.append(stats)
            zstd_sizes.append(len(compressor.compress(sparse_payload(feature_map, config))))

    figures = coding_figures(sizes, stats_list, zstd_sizes, feature_shape, pixels, config)
    figures["accuracy"] = correct / len(image_set)
    figures["decode_matches_simulate"] = matches
    timing = {
        "encode_ms_mean": float(np.mean(encode_ms)),
        "encode_ms_p95": percentile(encode_ms, 95),
        "decode_ms_mean": float(np.mean(decode_ms)),
        "decode_ms_p95": percentile(decode_ms, 95),
    }
    return figures, timing


def coding_figures(
    sizes: list[int],
    stats_list: list,
    zstd_sizes: list[int],
    feature_shape: tuple[int, ...],
    pixels: int,
    config: CodecConfig,
) -> dict[str, Any]:
    """Summarize the per-image bitstream sizes and statistics of one setting."""
    bpp = [8 * size / pixels for size in sizes]
    channels, height, width = feature_shape
    rows, cols = block_grid(height, width, config.block_size)
    units = unit_count(config.mode, channels, rows * cols)
    mean_bytes = float(np.mean(sizes))

    def mean_of(name: str) -> float:
        return float(np.mean([getattr(stats, name) for stats in stats_list]))

    bound_bits = float(np.mean([stats.bound_bits for stats in stats_list]))
    return {
        "feature_shape": [channels, height, width],
        "bytes_mean": mean_bytes,
        "bpp_mean": float(np.mean(bpp)),
        "bpp_p50": percentile(bpp, 50),
        "bpp_p95": percentile(bpp, 95),
        "bound_bpp_mean": bound_bits / pixels,
        "bits_mean": {
            "total": mean_of("total_bits"),
            "header": mean_of("header_bits"),
            "tables": mean_of("table_bits"),
            "positions": mean_of("position_bits"),
            "values": mean_of("value_bits"),
            "bound": bound_bits,
            "value_entropy": mean_of("value_entropy_bits"),
            "position_bound": mean_of("position_bound_bits"),
        },
        "kept_blocks_mean": mean_of("kept_blocks"),
        "kept_unit_fraction_mean": mean_of("kept_units") / units,
        "compression_ratio_float32": channels * height * width * 4 / mean_bytes,
        "compression_ratio_rgb": pixels * 3 / mean_bytes,
        "zstd19_bpp_mean": float(np.mean([8 * size / pixels for size in zstd_sizes])),
    }
