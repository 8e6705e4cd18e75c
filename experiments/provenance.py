"""Provenance of a results file: the git commit, the library versions and the machine."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent

# Distributions whose versions can change a figure or the bitstream format.
LIBRARIES = (
    "torch", "torchvision", "numpy", "bitarray", "protobuf", "grpcio", "zstandard", "pillow", "matplotlib",
)


def run_git(*args: str) -> str | None:
    """Run a git command in the repository and return its stripped stdout, or None when git fails."""
    try:
        completed = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout.strip()


def git_commit() -> str | None:
    """Return the commit that HEAD points to, or None outside a git checkout."""
    return run_git("rev-parse", "HEAD") or None


def git_dirty() -> bool | None:
    """Return whether the checkout has uncommitted changes, or None outside a git checkout."""
    status = run_git("status", "--porcelain")
    return None if status is None else bool(status)


def library_versions() -> dict[str, str | None]:
    """Return the installed version of each library in LIBRARIES, None where one is missing."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def machine_description() -> str:
    """Describe the CPU, the core count and the torch thread count."""
    processor = platform.processor() or platform.machine()
    return f"{processor}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, {platform.system()}"


def utc_now() -> str:
    """Return the current UTC time in ISO 8601 format, to the second."""
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def provenance(command: str) -> dict[str, Any]:
    """Collect the provenance block of a results file."""
    return {
        "command": command,
        "started_at": utc_now(),
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "versions": library_versions(),
        "machine": machine_description(),
    }
