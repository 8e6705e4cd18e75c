"""The edge's half of the split model: the head and the codec that compresses its output."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from splitnet.checkpoint import Checkpoint, load_checkpoint
from splitnet.data import normalize
from splitnet.model import SplitModel

_LOGGER = logging.getLogger(__name__)


class EdgeModel:
    """The head of a checkpoint's model up to ``split``, in eval mode, with the checkpoint's preprocessing."""

    def __init__(self, checkpoint: Checkpoint, split: str = "layer1") -> None:
        self.model = SplitModel(checkpoint.model, split).eval()
        self.metadata: dict[str, Any] = checkpoint.metadata
        self.split = split
        self.fingerprint = checkpoint.fingerprint
        self.class_names = [str(name) for name in checkpoint.metadata["class_names"]]
        self.input_size = int(checkpoint.metadata["input_size"])
        self.mean = tuple(float(value) for value in checkpoint.metadata["mean"])
        self.std = tuple(float(value) for value in checkpoint.metadata["std"])

    @classmethod
    def from_path(cls, path: str | Path, split: str = "layer1") -> "EdgeModel":
        """Load a checkpoint file and keep its head up to ``split``."""
        model = cls(load_checkpoint(path), split)
        _LOGGER.info("loaded %s (fingerprint %s), head up to %s", path, model.fingerprint[:12], split)
        return model

    @torch.no_grad()
    def head(self, images: torch.Tensor) -> torch.Tensor:
        """Normalize an N x 3 x S x S uint8 batch and return the head's N x C x H x W float32 output."""
        return self.model.head(normalize(images, self.mean, self.std))

