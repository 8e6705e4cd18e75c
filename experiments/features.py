"""Feature maps to measure the codec on: the real model's head output, or a synthetic stand-in."""

from __future__ import annotations

import numpy as np
import torch

from splitnet.checkpoint import load_checkpoint
from splitnet.data import load_split, normalize
from splitnet.model import SplitModel


def synthetic_features(count: int, shape: tuple[int, int, int] = (64, 32, 32), seed: int = 0) -> np.ndarray:
    """Return ``count`` post-ReLU-like maps: spatially smooth, about 60% zeros, channels of unequal strength.

    Each map is Gaussian noise blurred with a 3x3 box filter (neighbouring
    values correlate, as in convolutional features), scaled by a per-channel
    gain drawn from a gamma distribution, shifted down and passed through a
    ReLU.
    """
    rng = np.random.default_rng(seed)
    noise = torch.from_numpy(rng.normal(size=(count, *shape)).astype(np.float32))
    smooth = torch.nn.functional.avg_pool2d(noise, 3, stride=1, padding=1, count_include_pad=False) * 3.0
    gains = torch.from_numpy(rng.gamma(2.0, 0.5, size=(count, shape[0], 1, 1)).astype(np.float32))
    return torch.relu(smooth * gains - 0.25).numpy()


@torch.no_grad()
def model_features(
    checkpoint: str,
    data: str,
    count: int,
    split: str = "layer1",
    data_root: str = "data",
    seed: int = 0,
    batch_size: int = 100,
) -> tuple[np.ndarray, SplitModel, dict]:
    """Return the head's output on ``count`` test images drawn with ``seed``, the model and its metadata."""
    loaded = load_checkpoint(checkpoint)
    metadata = loaded.metadata
    model = SplitModel(loaded.model, split).eval()

    images = load_split(data, "test", int(metadata["input_size"]), data_root, download=True, progress=False)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:count].sort().values
    images = images.subset(order)

    maps = []
    for start in range(0, len(images), batch_size):
        batch = normalize(images.images[start : start + batch_size], tuple(metadata["mean"]), tuple(metadata["std"]))
        maps.append(model.head(batch).numpy())
    return np.concatenate(maps), model, metadata
