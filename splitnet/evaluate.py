"""Batched inference over an in-memory image set."""

from __future__ import annotations

import torch
from torch import nn
from tqdm import tqdm

from splitnet.data import ImageSet, normalize


@torch.no_grad()
def predict(
    model: nn.Module,
    image_set: ImageSet,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> torch.Tensor:
    """Return the predicted class of every image, in order, as an int64 tensor."""
    model.eval()
    if len(image_set) == 0:
        return torch.zeros(0, dtype=torch.long)
    predictions = []
    starts = range(0, len(image_set), batch_size)
    for start in tqdm(starts, desc="evaluating", unit="batch", disable=not progress, leave=False):
        batch = normalize(image_set.images[start : start + batch_size], mean, std).to(device)
        batch = batch.contiguous(memory_format=torch.channels_last)
        predictions.append(model(batch).argmax(1).cpu())
    return torch.cat(predictions)


def accuracy(
    model: nn.Module,
    image_set: ImageSet,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> float:
    """Return the top-1 accuracy of ``model`` on ``image_set``, from 0 to 1."""
    predicted = predict(model, image_set, mean, std, batch_size, device, progress)
    if len(image_set) == 0:
        raise ValueError("cannot measure accuracy on an empty image set")
    return int((predicted == image_set.labels).sum()) / len(image_set)
