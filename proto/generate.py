"""Regenerate the committed ``*_pb2.py`` and ``*_pb2.pyi`` files from the ``.proto`` files.

Run from the repository root with ``python proto/generate.py``. It needs
grpcio-tools (a development dependency), whose pinned release determines the
generated code. ``--check`` writes nothing and exits 1 if a committed file
differs from what would be generated.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def generate(output: Path) -> None:
    """Run protoc on every .proto file, writing the generated modules under ``output``."""
    from grpc_tools import protoc

    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"--python_out={output}",
        f"--pyi_out={output}",
        f"--grpc_python_out={output}",
    ] + [str(path) for path in proto_files()]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed; see its messages above")


def generated_files(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for pattern in ("*_pb2.py", "*_pb2.pyi", "*_pb2_grpc.py")
        for path in root.rglob(pattern)
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="proto/generate.py", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)

    if not args.check:
        generate(PROTO_ROOT)
        return 0

    with tempfile.TemporaryDirectory() as scratch:
        generate(Path(scratch))
        expected = generated_files(Path(scratch))
    actual = generated_files(PROTO_ROOT)
    stale = sorted(name for name in expected.keys() | actual.keys() if expected.get(name) != actual.get(name))
    for name in stale:
        print(f"out of date: proto/{name}; run python proto/generate.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
