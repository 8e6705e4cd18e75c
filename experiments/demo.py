"""Run split inference end to end on loopback: a cloud server process and the edge client.

    python -m experiments.demo --data ../shared/data/cifar10-jpeg.tar.gz --limit 500

The demo starts ``python -m cloud_server`` on 127.0.0.1 with a port chosen
by the operating system and waits until its health service reports
SERVING. The edge client then classifies ``--limit`` test images through
it, and the demo prints the edge's JSON summary on stdout and stops the
server with SIGTERM. Both sides load the same checkpoint. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from cloud_server.process import ServerProcess, ServerProcessError
from edge_client.cli import add_edge_arguments, describe_failure, options_from_args
from edge_client.client import InferenceError
from edge_client.pipeline import run_edge
from splitnet.checkpoint import CheckpointError

DEFAULT_CHECKPOINT = "checkpoints/cifar10_resnet18.pt"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.demo", description=__doc__.splitlines()[0])
    add_edge_arguments(parser, checkpoint_default=DEFAULT_CHECKPOINT)
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=120.0,
        help="seconds to wait for the server to load the model and report SERVING (default: 120)",
    )
    parser.set_defaults(limit=500)
    args = parser.parse_args(argv)

    if not Path(args.checkpoint).is_file():
        print(
            f"error: checkpoint not found: {args.checkpoint}; train it with python -m experiments.train "
            "or pass --checkpoint PATH",
            file=sys.stderr,
        )
        return 2

    server = ServerProcess(
        args.checkpoint,
        split=args.split,
        extra_args=["--max-message-bytes", str(args.max_message_bytes)],
        startup_timeout_s=args.startup_timeout,
    )
    try:
        with server:
            options = options_from_args(parser, args, server.address)
            summary = run_edge(options)
    except ServerProcessError as error:
        print(f"error: the server failed to start: {error}", file=sys.stderr)
        return 1
    except InferenceError as error:
        print(describe_failure(error, server.address), file=sys.stderr)
        return 1
    except (CheckpointError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    sys.exit(main())
