"""Run the cloud server: ``python -m cloud_server --checkpoint PATH``.

The first line on stdout is JSON with the bound port, for example
``{"port": 50051}``, so that a parent process can start the server with
``--port 0`` and read the port that the operating system chose. Logs go to
stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from cloud_server.server import (
    BindError,
    DEFAULT_GRACE_S,
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_CONCURRENT_RPCS,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_WORKERS,
    serve,
)
from splitnet.checkpoint import CheckpointError
from splitnet.model import SPLIT_POINTS

_LOGGER = logging.getLogger(__name__)


def positive_int(text: str) -> int:
    """Parse a command-line integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m cloud_server", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="checkpoint file (.pt) whose tail the server runs")
    parser.add_argument("--split", default="layer1", choices=SPLIT_POINTS, help="split point (default: layer1)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=50051, help="TCP port; 0 lets the operating system choose (default: 50051)"
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=DEFAULT_MAX_WORKERS,
        help=f"worker threads that handle calls (default: {DEFAULT_MAX_WORKERS})",
    )
    parser.add_argument(
        "--max-message-bytes",
        type=positive_int,
        default=DEFAULT_MAX_MESSAGE_BYTES,
        help=f"maximum size of a received or sent message, in bytes (default: {DEFAULT_MAX_MESSAGE_BYTES})",
    )
    parser.add_argument(
        "--max-concurrent",
        type=positive_int,
        default=DEFAULT_MAX_CONCURRENT_RPCS,
        help="maximum number of calls in progress, health checks included; "
        f"further calls get RESOURCE_EXHAUSTED (default: {DEFAULT_MAX_CONCURRENT_RPCS})",
    )
    parser.add_argument(
        "--max-batch",
        type=positive_int,
        default=DEFAULT_MAX_BATCH,
        help=f"maximum number of images in one request (default: {DEFAULT_MAX_BATCH})",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=DEFAULT_GRACE_S,
        help=f"seconds that calls in progress get to finish on SIGINT or SIGTERM (default: {DEFAULT_GRACE_S})",
    )
    return parser.parse_args(argv)


def print_port(port: int) -> None:
    """Write the bound port as the first line of stdout."""
    print(json.dumps({"port": port}), flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        serve(
            args.host,
            args.port,
            args.checkpoint,
            args.split,
            max_workers=args.workers,
            max_message_bytes=args.max_message_bytes,
            max_concurrent_rpcs=args.max_concurrent,
            max_batch=args.max_batch,
            grace_s=args.grace,
            on_started=print_port,
        )
    except CheckpointError as error:
        _LOGGER.error("cannot load the model: %s", error)
        return 2
    except BindError as error:
        _LOGGER.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    sys.exit(main())
