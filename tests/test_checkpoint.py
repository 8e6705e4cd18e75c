"""Checkpoint files: round trip, fingerprint check and invalid files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from splitnet.checkpoint import (
    FORMAT_VERSION,
    REQUIRED_METADATA,
    CheckpointError,
    fingerprint_state,
    load_checkpoint,
    save_checkpoint,
    to_storage,
)
from splitnet.model import build_model

METADATA = {
    "arch": "cifar_resnet18",
    "num_classes": 3,
    "class_names": ["ant", "bee", "cow"],
    "mean": [0.4914, 0.4822, 0.4465],
    "std": [0.2470, 0.2435, 0.2616],
    "input_size": 32,
    "history": [{"epoch": 1, "loss": 1.5, "val_accuracy": 0.25}],
    "test_accuracy": 0.5,
}


def model_with_batch_statistics() -> torch.nn.Module:
    """Build a model whose batch-norm statistics differ from their initial values."""
    model = build_model("cifar_resnet18", num_classes=3)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model.train()
        model(torch.randn(4, 3, 32, 32, generator=generator) * 2 + 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module, dict[str, Any]]:
    """Save one checkpoint and return its path, the original model and the metadata as written."""
    path = tmp_path_factory.mktemp("checkpoint") / "model.pt"
    model = model_with_batch_statistics()
    written = save_checkpoint(path, model, METADATA)
    return path, model, written


def rewrite_payload(source: Path, target: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """Copy the raw checkpoint dictionary from ``source`` to ``target`` after ``change`` edits it."""
    payload = torch.load(source, map_location="cpu", weights_only=True)
    change(payload)
    torch.save(payload, target)
    return target


def test_round_trip_metadata(saved) -> None:
    path, _, written = saved

    loaded = load_checkpoint(path)

    assert loaded.metadata == {**METADATA, "fingerprint": written["fingerprint"]}
    assert loaded.fingerprint == written["fingerprint"]


def test_round_trip_fingerprint(saved) -> None:
    path, model, written = saved

    expected = fingerprint_state(to_storage(model.state_dict()))

    assert written["fingerprint"] == expected
    assert load_checkpoint(path).fingerprint == expected


def test_round_trip_outputs(saved) -> None:
    path, model, _ = saved
    rounded = build_model("cifar_resnet18", num_classes=3)
    rounded.load_state_dict(
        {
            name: tensor.half().float() if tensor.is_floating_point() else tensor
            for name, tensor in model.state_dict().items()
        }
    )
    rounded.eval()
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))

    loaded = load_checkpoint(path)
    with torch.no_grad():
        expected = rounded(images)
        actual = loaded.model(images)
        original = model(images)

    assert not loaded.model.training
    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-6)
    # Rounding to float16 changes the outputs, but only slightly.
    torch.testing.assert_close(actual, original, rtol=0.05, atol=0.05)


def test_load_changed_weight(saved, tmp_path: Path) -> None:
    path, _, _ = saved

    def change_one_weight(payload: dict[str, Any]) -> None:
        weight = payload["state_dict"]["fc.weight"].clone()
        weight[0, 0] += 1
        payload["state_dict"]["fc.weight"] = weight

    changed = rewrite_payload(path, tmp_path / "changed.pt", change_one_weight)

    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(changed)


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found: .*absent.pt"):
        load_checkpoint(tmp_path / "absent.pt")


def test_load_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.pt"
    path.write_text("not a checkpoint\n")

    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(path)


def test_load_plain_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "state_dict.pt"
    torch.save(build_model("cifar_resnet18", num_classes=3).state_dict(), path)

    with pytest.raises(CheckpointError, match="not a splitnet-checkpoint file"):
        load_checkpoint(path)


def test_load_wrong_format_version(saved, tmp_path: Path) -> None:
    path, _, _ = saved
    next_version = FORMAT_VERSION + 1

    def set_version(payload: dict[str, Any]) -> None:
        payload["format_version"] = next_version

    changed = rewrite_payload(path, tmp_path / "next_version.pt", set_version)

    with pytest.raises(CheckpointError, match=f"format version {next_version}"):
        load_checkpoint(changed)


@pytest.mark.parametrize("key", [*REQUIRED_METADATA, "fingerprint"])
def test_load_missing_metadata(saved, tmp_path: Path, key: str) -> None:
    path, _, _ = saved

    def drop_key(payload: dict[str, Any]) -> None:
        del payload["metadata"][key]

    changed = rewrite_payload(path, tmp_path / f"without_{key}.pt", drop_key)

    with pytest.raises(CheckpointError, match=f"metadata lacks {key}"):
        load_checkpoint(changed)


@pytest.mark.parametrize("key", REQUIRED_METADATA)
def test_save_missing_metadata(tmp_path: Path, key: str) -> None:
    path = tmp_path / "model.pt"
    metadata = {name: value for name, value in METADATA.items() if name != key}

    with pytest.raises(CheckpointError, match=f"metadata lacks {key}"):
        save_checkpoint(path, build_model("cifar_resnet18", num_classes=3), metadata)
    assert not path.exists()
