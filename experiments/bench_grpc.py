"""Compare split inference through gRPC on loopback with the same work done in one process.

On the same test images, both paths run the head, encode every feature map
and classify the bitstreams. The gRPC path sends them to a cloud server on
127.0.0.1, which decodes them and runs the tail. The in-process path decodes
them and runs the tail itself. For each batch size the benchmark reports
the throughput in images per second and the p50 and p95 latency of a batch
and per image (a batch's time divided by its images). Each time runs end to
end, from the uint8 images to the predictions. Results go to stdout as
JSON, and logs go to stderr.

    python -m experiments.bench_grpc --checkpoint checkpoints/cifar10_resnet18.pt \\
        --data ../shared/data/cifar10-jpeg.tar.gz --limit 1024
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from cloud_server.engine import TailEngine
from cloud_server.process import ServerProcess
from cloud_server.server import create_server
from codec import MODES, CodecConfig, encode_batch
from edge_client.cli import positive_int
from edge_client.client import InferenceClient
from edge_client.model import EdgeModel
from edge_client.pipeline import select_images
from splitnet.data import load_split
from splitnet.model import SPLIT_POINTS

_LOGGER = logging.getLogger(__name__)

# A function that classifies one batch of uint8 images and returns the class indices.
Classifier = Callable[[torch.Tensor], list[int]]


def batch_size_list(text: str) -> list[int]:
    """Parse comma-separated batch sizes, each at least 1."""
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid batch sizes {text!r}; use integers separated by commas, like 1,64")
    if min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"invalid batch sizes {text!r}; each must be at least 1")
    return sizes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m experiments.bench_grpc", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="checkpoint file (.pt) for both paths")
    parser.add_argument("--data", default="cifar10", help="test images: cifar10, cifar100, a folder or a .tar.gz")
    parser.add_argument("--data-root", default="data", help="download and extraction folder (default: data)")
    parser.add_argument(
        "--limit", type=positive_int, default=512, help="number of test images, drawn with --seed (default: 512)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the image draw (default: 0)")
    parser.add_argument(
        "--batch-sizes", type=batch_size_list, default=[1, 64], help="comma-separated batch sizes (default: 1,64)"
    )
    parser.add_argument(
        "--server",
        choices=("subprocess", "inprocess"),
        default="subprocess",
        help="run the server as a child process or in this process's threads (default: subprocess)",
    )
    parser.add_argument("--split", default="layer1", choices=SPLIT_POINTS, help="split point (default: layer1)")
    parser.add_argument("--mode", default="global", choices=MODES, help="block selection mode (default: global)")
    parser.add_argument("--keep-ratio", type=float, default=0.1, help="fraction of blocks kept (default: 0.1)")
    parser.add_argument("--block-size", type=int, default=4, help="block side in feature pixels (default: 4)")
    parser.add_argument("--bits", type=int, default=2, help="quantizer depth in bits (default: 2)")
    parser.add_argument("--border", type=int, default=1, help="zeroed border ring in feature pixels (default: 1)")
    parser.add_argument(
        "--warmup", type=int, default=2, help="untimed batches per path and batch size before timing (default: 2)"
    )
    args = parser.parse_args(argv)
    if args.warmup < 0:
        parser.error(f"--warmup must be 0 or more, got {args.warmup}")
    try:
        args.codec = CodecConfig(
            mode=args.mode, keep_ratio=args.keep_ratio, block_size=args.block_size, bits=args.bits, border=args.border
        )
    except ValueError as error:
        parser.error(str(error))
    return args


def latency_stats(batch_ms: list[float], batch_sizes: list[int]) -> dict[str, Any]:
    """Return throughput and p50/p95 latency of a run, per batch and per image, in milliseconds."""
    batch = np.asarray(batch_ms)
    per_image = batch / np.asarray(batch_sizes)
    return {
        "batches": len(batch_ms),
        "images": int(sum(batch_sizes)),
        "images_per_second": float(sum(batch_sizes) / (batch.sum() / 1000)),
        "batch_ms": {"p50": float(np.percentile(batch, 50)), "p95": float(np.percentile(batch, 95))},
        "per_image_ms": {"p50": float(np.percentile(per_image, 50)), "p95": float(np.percentile(per_image, 95))},
    }


def time_paths(
    paths: dict[str, Classifier], images: torch.Tensor, batch_size: int, warmup: int
) -> dict[str, tuple[dict[str, Any], list[int]]]:
    """Classify ``images`` batch by batch on every path and return each path's stats and predictions.

    The paths take turns on each batch, so a change in the machine's load
    during the run affects them alike. ``warmup`` batches per path run first
    and are not timed.
    """
    starts = list(range(0, len(images), batch_size))
    for start in starts[:warmup]:
        for classify in paths.values():
            classify(images[start : start + batch_size])

    batch_ms: dict[str, list[float]] = {name: [] for name in paths}
    predictions: dict[str, list[int]] = {name: [] for name in paths}
    sizes = []
    for start in starts:
        batch = images[start : start + batch_size]
        sizes.append(len(batch))
        for name, classify in paths.items():
            started = time.perf_counter()
            predictions[name].extend(classify(batch))
            batch_ms[name].append(1000 * (time.perf_counter() - started))
    return {name: (latency_stats(batch_ms[name], sizes), predictions[name]) for name in paths}


def in_process_classifier(edge: EdgeModel, engine: TailEngine, config: CodecConfig) -> Classifier:
    """Return a classifier that runs head, encode, decode and tail in this process."""

    def classify(images: torch.Tensor) -> list[int]:
        bitstreams = encode_batch(edge.head(images), config)
        predictions = engine.run_tail(engine.decode_batch(bitstreams))
        return [prediction.class_index for prediction in predictions]

    return classify


def grpc_classifier(edge: EdgeModel, client: InferenceClient, config: CodecConfig) -> Classifier:
    """Return a classifier that runs head and encode here and the rest on the server."""

    def classify(images: torch.Tensor) -> list[int]:
        bitstreams = encode_batch(edge.head(images), config)
        predictions = []
        for chunk in client.split_batch(bitstreams, len(bitstreams)):
            predictions.extend(prediction.class_index for prediction in client.classify(chunk).predictions)
        return predictions

    return classify


def run_benchmark(args: argparse.Namespace, address: str, edge: EdgeModel, engine: TailEngine) -> dict[str, Any]:
    """Time both paths at every batch size on the same images and return the results."""
    config = args.codec
    image_set = load_split(args.data, "test", edge.input_size, args.data_root, progress=False)
    images = select_images(image_set, args.limit, args.seed).images

    results: dict[str, Any] = {}
    agree = True
    with InferenceClient.connect(address, edge.fingerprint, args.split, deadline_s=120.0) as client:
        paths = {
            "in_process": in_process_classifier(edge, engine, config),
            "grpc": grpc_classifier(edge, client, config),
        }
        for batch_size in args.batch_sizes:
            _LOGGER.info("timing both paths at batch %d on %d images", batch_size, len(images))
            timed = time_paths(paths, images, batch_size, args.warmup)
            entry: dict[str, Any] = {name: stats for name, (stats, _) in timed.items()}
            entry["grpc_throughput_ratio"] = (
                entry["grpc"]["images_per_second"] / entry["in_process"]["images_per_second"]
            )
            agree = agree and timed["grpc"][1] == timed["in_process"][1]
            results[f"batch_{batch_size}"] = entry

    return {
        "images": len(images),
        "data": image_set.source,
        "server": args.server,
        "address": address,
        "split": args.split,
        "model_fingerprint": edge.fingerprint,
        "codec": asdict(config),
        "predictions_agree": agree,
        "results": results,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    edge = EdgeModel.from_path(args.checkpoint, args.split)
    engine = TailEngine.from_checkpoint(args.checkpoint, args.split)

    if args.server == "subprocess":
        with ServerProcess(args.checkpoint, args.split) as server:
            report = run_benchmark(args, server.address, edge, engine)
    else:
        server, port = create_server("127.0.0.1:0", args.checkpoint, args.split)
        server.start()
        try:
            report = run_benchmark(args, f"127.0.0.1:{port}", edge, engine)
        finally:
            server.stop(None)

    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    sys.exit(main())
