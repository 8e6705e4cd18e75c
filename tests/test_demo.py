"""``python -m experiments.demo`` end to end on the CIFAR-10 JPEG archive."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from splitnet.checkpoint import save_checkpoint
from splitnet.data import CIFAR10_CLASSES, NORMALIZATION
from splitnet.model import build_model

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_CHECKPOINT = REPO_ROOT / "checkpoints" / "cifar10_resnet18.pt"
LIMIT = 300


@pytest.fixture(scope="module")
def demo_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return the shipped CIFAR-10 checkpoint, or an untrained stand-in while it does not exist."""
    if SHIPPED_CHECKPOINT.is_file():
        return SHIPPED_CHECKPOINT

    torch.manual_seed(0)
    mean, std = NORMALIZATION["cifar10"]
    path = tmp_path_factory.mktemp("demo_checkpoint") / "untrained.pt"
    metadata = {
        "arch": "cifar_resnet18",
        "num_classes": 10,
        "class_names": list(CIFAR10_CLASSES),
        "mean": list(mean),
        "std": list(std),
        "input_size": 32,
    }
    save_checkpoint(path, build_model("cifar_resnet18", 10).eval(), metadata)
    return path


@pytest.mark.slow
def test_demo_end_to_end(cifar_archive, demo_checkpoint):
    # The demo extracts the archive into data/ of the repository, which git
    # ignores, and reuses an earlier extraction.
    result = subprocess.run(
        [
            sys.executable, "-m", "experiments.demo",
            "--data", str(cifar_archive),
            "--limit", str(LIMIT),
            "--checkpoint", str(demo_checkpoint),
            "--no-progress",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["images"] == LIMIT
    assert 0 <= summary["accuracy"] <= 1
    assert summary["bpp_mean"] > 0
    assert summary["bpp_p50"] <= summary["bpp_p95"]
    assert summary["images_per_second"] > 0
    assert summary["requests"] == -(-LIMIT // 64)
    assert "server process" in result.stderr
    assert "exited with code 0" in result.stderr
