"""Benchmark the codec: real bits against the entropy bound and zstd, and its speed.

For every mode, keep ratio and bit depth it codes the same feature maps
and reports the mean real bits per map, which is the serialized
bitstream's size. It also reports the bound: the zero-order entropy of the
levels plus log2 of the number of ways to choose the kept units. zstd level
19 and zlib level 9 compress the same quantized sparse data, a bitmap of
kept units followed by the uint8 levels. It also times encoding and
decoding per map beside the head's forward time per image, all on one CPU
thread: one map per call against the head at batch 1, and 64 maps per
``encode_batch`` or ``decode_batch`` call against the head at batch 64. Results go to stdout as JSON; ``--markdown`` also
prints a table to stderr.

    python -m experiments.bench_codec --checkpoint checkpoints/cifar10_resnet18.pt \
        --data ../shared/data/cifar10-jpeg.tar.gz --maps 200 --markdown
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import zstandard

from codec import CodecConfig, decode, decode_batch, encode, encode_batch
from codec.sparse import analyze
from codec.selection import unit_count
from experiments.features import model_features, synthetic_features
from splitnet.model import SplitModel, build_model

_LOGGER = logging.getLogger(__name__)

BATCH = 64  # maps per encode_batch and decode_batch call, and images per batched head call
ROUNDS = 3  # timing rounds per codec measurement, of which the median is reported
HEAD_ROUNDS = 5  # timing rounds of the head's forward pass


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m experiments.bench_codec", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="model whose head output to code; without it, synthetic maps")
    parser.add_argument("--data", default="cifar10", help="test images for --checkpoint (name, folder or .tar.gz)")
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--split", default="layer1")
    parser.add_argument("--maps", type=int, default=200, help="number of feature maps (default: 200)")
    parser.add_argument("--modes", default="channel-wise,region-wise,global")
    parser.add_argument("--keep-ratios", default="0.5,0.1,0.05")
    parser.add_argument("--bits", default="2,4")
    parser.add_argument("--block-size", type=int, default=4)
    parser.add_argument("--border", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table to stderr")
    return parser.parse_args(argv)


def sparse_payload(features: np.ndarray, config: CodecConfig) -> bytes:
    """Return the baseline's input: a bitmap of the kept units, then the uint8 levels."""
    sparse = analyze(features, config)
    units = np.zeros(unit_count(config.mode, sparse.shape[0], sparse.positions), dtype=bool)
    units[sparse.units] = True
    return np.packbits(units).tobytes() + sparse.levels.astype(np.uint8).tobytes()


def median_of_rounds(measure: Callable[[], float], rounds: int) -> float:
    """Return the median of ``rounds`` calls of ``measure``, which times one round.

    One round is short, a tenth of a second or so, and a single round of
    the head varied from 2.3 to 3.0 ms per image between runs on the dev
    CPU. The median of a few rounds is steadier.
    """
    return float(np.median([measure() for _ in range(rounds)]))


def time_per_call(function, items: list, rounds: int = ROUNDS) -> float:
    """Return the wall time of ``function`` per item over ``items``, median of ``rounds`` rounds, in milliseconds."""
    function(items[0])  # warm-up: first-call caches and lazy imports

    def one_round() -> float:
        started = time.perf_counter()
        for item in items:
            function(item)
        return 1000 * (time.perf_counter() - started) / len(items)

    return median_of_rounds(one_round, rounds)


def time_per_map(function, batches: list, rounds: int = ROUNDS) -> float:
    """Return the wall time of ``function`` over ``batches`` per item of the batches, median of rounds, in ms."""
    function(batches[0])  # warm-up

    def one_round() -> float:
        started = time.perf_counter()
        for batch in batches:
            function(batch)
        return 1000 * (time.perf_counter() - started) / sum(len(batch) for batch in batches)

    return median_of_rounds(one_round, rounds)


def chunks(items: Any, size: int) -> list:
    return [items[start : start + size] for start in range(0, len(items), size)]


@torch.no_grad()
def head_time_ms(model: SplitModel, shape: tuple[int, int, int], batch: int = 1, images: int = 50) -> float:
    """Return the head's forward time per image at the given batch size, in milliseconds."""
    inputs = torch.randn(batch, *shape)
    repeats = max(1, images // batch)
    for _ in range(2):
        model.head(inputs)

    def one_round() -> float:
        started = time.perf_counter()
        for _ in range(repeats):
            model.head(inputs)
        return 1000 * (time.perf_counter() - started) / (repeats * batch)

    return median_of_rounds(one_round, HEAD_ROUNDS)


def measure(maps: np.ndarray, config: CodecConfig, compressor: zstandard.ZstdCompressor) -> dict:
    """Return one result row for ``config`` over ``maps``."""
    streams, stats = zip(*(encode(m, config, with_stats=True) for m in maps))
    payloads = [sparse_payload(m, config) for m in maps]

    encode_ms = time_per_call(lambda m: encode(m, config), list(maps))
    decode_ms = time_per_call(decode, list(streams))
    batch_encode_ms = time_per_map(lambda batch: encode_batch(batch, config), chunks(maps, BATCH))
    batch_decode_ms = time_per_map(decode_batch, chunks(list(streams), BATCH))

    real = np.mean([s.total_bits for s in stats])
    header = np.mean([s.header_bits for s in stats])
    bound = np.mean([s.bound_bits for s in stats])
    return {
        "mode": config.mode,
        "keep_ratio": config.keep_ratio,
        "bits": config.bits,
        "real_bits": float(real),
        "header_bits": float(header),
        "table_bits": float(np.mean([s.table_bits for s in stats])),
        "position_bits": float(np.mean([s.position_bits for s in stats])),
        "value_bits": float(np.mean([s.value_bits for s in stats])),
        "bound_bits": float(bound),
        "value_entropy_bits": float(np.mean([s.value_entropy_bits for s in stats])),
        "coded_values": float(np.mean([s.coded_values for s in stats])),
        "value_codings": sorted({s.value_coding for s in stats}),
        "position_bound_bits": float(np.mean([s.position_bound_bits for s in stats])),
        "real_over_bound_plus_header": float(real / (bound + header)),
        "meets_bound_target": bool(real <= 1.10 * bound + header),
        "zstd19_bits": float(np.mean([8 * len(compressor.compress(p)) for p in payloads])),
        "zlib9_bits": float(np.mean([8 * len(zlib.compress(p, 9)) for p in payloads])),
        "value_groups": sorted({s.value_group for s in stats}),
        "encode_ms": encode_ms,
        "decode_ms": decode_ms,
        "batch_encode_ms": batch_encode_ms,
        "batch_decode_ms": batch_decode_ms,
    }


def per_value(bits: float, row: dict) -> str:
    return f"{bits / row['coded_values']:.3f}" if row["coded_values"] else "-"


def markdown_table(rows: list[dict], head_ms: float, batch_head_ms: float) -> str:
    lines = [
        "| mode | keep | bits | real bits | bound | header | real / (1.1 bound + header) | zstd-19 | zlib-9 "
        f"| beats zstd | value and table bits per value (H0) | encode ms | decode ms | (enc+dec) / head "
        f"| batch {BATCH} enc+dec ms | (batch enc+dec) / batch head |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        ratio = row["real_bits"] / (1.1 * row["bound_bits"] + row["header_bits"])
        batched = row["batch_encode_ms"] + row["batch_decode_ms"]
        lines.append(
            f"| {row['mode']} | {row['keep_ratio']} | {row['bits']} | {row['real_bits']:.0f} | {row['bound_bits']:.0f} "
            f"| {row['header_bits']:.0f} | {ratio:.3f} | {row['zstd19_bits']:.0f} | {row['zlib9_bits']:.0f} "
            f"| {'yes' if row['real_bits'] <= row['zstd19_bits'] else 'no'} "
            f"| {per_value(row['value_bits'] + row['table_bits'], row)} ({per_value(row['value_entropy_bits'], row)}) "
            f"| {row['encode_ms']:.2f} "
            f"| {row['decode_ms']:.2f} | {(row['encode_ms'] + row['decode_ms']) / head_ms:.3f} "
            f"| {batched:.2f} | {batched / batch_head_ms:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)

    if args.checkpoint:
        maps, model, metadata = model_features(args.checkpoint, args.data, args.maps, args.split, args.data_root, args.seed)
        source = f"{args.checkpoint} {args.split} on {args.maps} test images of {args.data}"
        input_size = int(metadata["input_size"])
    else:
        maps = synthetic_features(args.maps, seed=args.seed)
        model = SplitModel(build_model("cifar_resnet18", 10), args.split).eval()
        source = f"synthetic post-ReLU maps 64x32x32 (experiments.features.synthetic_features), seed {args.seed}"
        input_size = 32
    head_ms = head_time_ms(model, (3, input_size, input_size))
    batch_head_ms = head_time_ms(model, (3, input_size, input_size), batch=BATCH, images=4 * BATCH)
    _LOGGER.info("coding %d maps of shape %s; head forward %.2f ms per image, %.2f at batch %d",
                 len(maps), maps.shape[1:], head_ms, batch_head_ms, BATCH)

    compressor = zstandard.ZstdCompressor(level=19)
    rows = []
    for mode in args.modes.split(","):
        for keep_ratio in (float(r) for r in args.keep_ratios.split(",")):
            for bits in (int(b) for b in args.bits.split(",")):
                config = CodecConfig(mode=mode, keep_ratio=keep_ratio, block_size=args.block_size, bits=bits,
                                     border=args.border)
                rows.append(measure(maps, config, compressor))
                _LOGGER.info("%s keep %.2f bits %d: %.0f bits", mode, keep_ratio, bits, rows[-1]["real_bits"])

    result = {
        "source": source,
        "maps": len(maps),
        "feature_shape": list(maps.shape[1:]),
        "block_size": args.block_size,
        "border": args.border,
        "head_forward_ms": head_ms,
        "batch_size": BATCH,
        "batch_head_forward_ms": batch_head_ms,
        "machine": f"{platform.machine()} {platform.processor() or 'CPU'}, 1 torch thread, torch {torch.__version__}",
        "timing": f"median of {ROUNDS} rounds per codec time, {HEAD_ROUNDS} rounds for the head",
        "rows": rows,
    }
    print(json.dumps(result, indent=2))
    if args.markdown:
        print(markdown_table(rows, head_ms, batch_head_ms), file=sys.stderr)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(main())
