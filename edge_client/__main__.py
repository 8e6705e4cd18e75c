"""Run the edge: classify test images through a cloud server, ``python -m edge_client --server HOST:PORT``.

The edge runs the head of the checkpoint's model, encodes each image's
feature map and sends the bitstreams over gRPC. It prints one JSON summary
on stdout. Logs and the progress bar go to stderr. It exits with 1 when a
call fails with a non-OK status and with 2 when the checkpoint or data
cannot be loaded.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from edge_client.cli import add_edge_arguments, describe_failure, options_from_args
from edge_client.client import InferenceError
from edge_client.pipeline import run_edge
from splitnet.checkpoint import CheckpointError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_client", description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True, help="address of the cloud server, HOST:PORT")
    add_edge_arguments(parser)
    args = parser.parse_args(argv)
    options = options_from_args(parser, args, args.server)

    try:
        summary = run_edge(options)
    except InferenceError as error:
        print(describe_failure(error, args.server), file=sys.stderr)
        return 1
    except (CheckpointError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    sys.exit(main())
