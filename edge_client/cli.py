"""Command-line options of the edge run, shared by ``python -m edge_client`` and the experiments."""

from __future__ import annotations

import argparse

import grpc

from codec import MODES, CodecConfig
from edge_client.client import DEFAULT_MAX_MESSAGE_BYTES, InferenceError
from edge_client.pipeline import EdgeOptions
from splitnet.model import SPLIT_POINTS

# Hints on what to do next, for the status codes whose details do not already say it.
STATUS_HINTS = {
    grpc.StatusCode.UNAVAILABLE: "check that the server is running and reachable at {server}",
    grpc.StatusCode.DEADLINE_EXCEEDED: "raise --deadline or lower --batch-size",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "lower --batch-size, or use --stream, or raise the server's limits",
}


def positive_int(text: str) -> int:
    """Parse a command-line integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_edge_arguments(parser: argparse.ArgumentParser, checkpoint_default: str | None = None) -> None:
    """Add the options of an edge run, except --server, to ``parser``."""
    if checkpoint_default is None:
        parser.add_argument(
            "--checkpoint", required=True, help="checkpoint file (.pt), the same one that the server loaded"
        )
    else:
        parser.add_argument(
            "--checkpoint",
            default=checkpoint_default,
            help=f"checkpoint file (.pt) for the edge and the server (default: {checkpoint_default})",
        )

    parser.add_argument("--data", default="cifar10", help="cifar10, cifar100, an ImageFolder folder or a .tar.gz of one")
    parser.add_argument("--data-root", default="data", help="download and extraction folder (default: data)")
    parser.add_argument("--limit", type=positive_int, help="number of test images, drawn with --seed (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draw of --limit images (default: 0)")

    parser.add_argument("--batch-size", type=positive_int, default=64, help="images per request (default: 64)")
    parser.add_argument("--split", default="layer1", choices=SPLIT_POINTS, help="split point (default: layer1)")
    parser.add_argument("--mode", default="global", choices=MODES, help="block selection mode (default: global)")
    parser.add_argument(
        "--keep-ratio", type=float, default=0.1, help="fraction of blocks kept, in (0, 1] (default: 0.1)"
    )
    parser.add_argument("--block-size", type=int, default=4, help="block side in feature pixels (default: 4)")
    parser.add_argument("--bits", type=int, default=2, help="quantizer depth in bits (default: 2)")
    parser.add_argument("--border", type=int, default=1, help="zeroed border ring in feature pixels (default: 1)")

    parser.add_argument(
        "--deadline",
        type=float,
        default=30.0,
        help="deadline of each request, in seconds. With --stream, the whole call gets this deadline once "
        "per batch (default: 30)",
    )
    parser.add_argument(
        "--retries", type=int, default=3, help="retries of a call that fails with UNAVAILABLE (default: 3)"
    )
    parser.add_argument("--stream", action="store_true", help="send the batches over one ClassifyStream call")
    parser.add_argument(
        "--max-message-bytes",
        type=positive_int,
        default=DEFAULT_MAX_MESSAGE_BYTES,
        help="split batches whose request would exceed this size, in bytes; "
        f"match the server's --max-message-bytes (default: {DEFAULT_MAX_MESSAGE_BYTES})",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def options_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace, server: str) -> EdgeOptions:
    """Build the options of an edge run, reporting invalid codec settings through ``parser``."""
    if args.retries < 0:
        parser.error(f"--retries must be 0 or more, got {args.retries}")
    if args.deadline <= 0:
        parser.error(f"--deadline must be positive, got {args.deadline}")
    try:
        codec = CodecConfig(
            mode=args.mode, keep_ratio=args.keep_ratio, block_size=args.block_size, bits=args.bits, border=args.border
        )
    except ValueError as error:
        parser.error(str(error))

    return EdgeOptions(
        server=server,
        checkpoint=args.checkpoint,
        data=args.data,
        data_root=args.data_root,
        limit=args.limit,
        batch_size=args.batch_size,
        codec=codec,
        split=args.split,
        deadline_s=args.deadline,
        retries=args.retries,
        stream=args.stream,
        seed=args.seed,
        max_message_bytes=args.max_message_bytes,
        progress=not args.no_progress,
    )


def describe_failure(error: InferenceError, server: str) -> str:
    """Return the error line for a failed call, with a hint where the status code has one."""
    message = f"error: {error}"
    hint = STATUS_HINTS.get(error.code)
    if hint:
        message += f" ({hint.format(server=server)})"
    return message
