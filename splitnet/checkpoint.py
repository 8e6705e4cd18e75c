"""Checkpoint files: fp16 weights with the metadata that edge and server compare.

A checkpoint is a ``torch.save`` dictionary with these keys:

- ``format``: the string ``"splitnet-checkpoint"``;
- ``format_version``: 1;
- ``metadata``: a JSON-compatible dictionary (see ``REQUIRED_METADATA``);
- ``state_dict``: the model's tensors, floating-point ones stored as float16.

The fingerprint is a SHA-256 over every stored tensor's name, dtype, shape
and bytes, in sorted name order. It identifies the weights as stored, so the
edge and the server can check that they load the same model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from splitnet.model import build_model

FORMAT = "splitnet-checkpoint"
FORMAT_VERSION = 1

# Keys every checkpoint's metadata must have, so that a loader can rebuild
# the model and its input pipeline without other files.
REQUIRED_METADATA = ("arch", "num_classes", "class_names", "mean", "std", "input_size")


class CheckpointError(ValueError):
    """A checkpoint file that is missing, of another format or inconsistent."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: the float32 model in eval mode and its metadata."""

    model: nn.Module
    metadata: dict[str, Any]

    @property
    def fingerprint(self) -> str:
        return str(self.metadata["fingerprint"])


def to_storage(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return a copy of ``state_dict`` with floating-point tensors in float16."""
    stored = {}
    for name, tensor in state_dict.items():
        tensor = tensor.detach().to("cpu")
        if tensor.is_floating_point():
            tensor = tensor.to(torch.float16)
        stored[name] = tensor.contiguous().clone()
    return stored


def fingerprint_state(state_dict: dict[str, torch.Tensor]) -> str:
    """Return the SHA-256 hex digest of the tensors of ``state_dict`` as they are."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().to("cpu").contiguous()
        digest.update(name.encode("utf-8"))
        digest.update(str(tensor.dtype).encode("ascii"))
        digest.update(repr(tuple(tensor.shape)).encode("ascii"))
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(path: str | Path, model: nn.Module, metadata: dict[str, Any]) -> dict[str, Any]:
    """Write ``model`` in float16 with ``metadata`` and its fingerprint to ``path``.

    Returns the metadata as written, fingerprint included.
    """
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise CheckpointError(f"checkpoint metadata lacks {', '.join(missing)}")

    stored = to_storage(model.state_dict())
    written = dict(metadata)
    written["fingerprint"] = fingerprint_state(stored)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    torch.save(
        {"format": FORMAT, "format_version": FORMAT_VERSION, "metadata": written, "state_dict": stored},
        temporary,
    )
    temporary.replace(path)
    return written


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load a checkpoint written by ``save_checkpoint`` and verify its fingerprint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}; pass the path of a .pt file")

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several unrelated types for bad files
        raise CheckpointError(f"cannot read checkpoint {path}: {error}") from error

    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} file")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version!r}; this release reads version {FORMAT_VERSION}"
        )

    metadata = payload.get("metadata")
    state = payload.get("state_dict")
    if not isinstance(metadata, dict) or not isinstance(state, dict):
        raise CheckpointError(f"{path} is invalid: it lacks its metadata or state_dict; write it with save_checkpoint")
    missing = [key for key in (*REQUIRED_METADATA, "fingerprint") if key not in metadata]
    if missing:
        raise CheckpointError(
            f"{path} is invalid: its metadata lacks {', '.join(missing)}; write it with save_checkpoint"
        )

    actual = fingerprint_state(state)
    if actual != metadata.get("fingerprint"):
        raise CheckpointError(
            f"{path} is corrupt: its weights hash to {actual[:12]}, "
            f"but its metadata records {str(metadata.get('fingerprint'))[:12]}"
        )

    try:
        model = build_model(metadata["arch"], int(metadata["num_classes"]))
        model.load_state_dict({name: tensor.to(torch.float32) if tensor.is_floating_point() else tensor
                               for name, tensor in state.items()})
    except (ValueError, RuntimeError) as error:
        raise CheckpointError(f"{path} is invalid: its weights do not fit its metadata: {error}") from error
    model.eval()
    return Checkpoint(model=model, metadata=metadata)
