"""ResNet-18 variants and their split into an edge head and a cloud tail."""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn
from torchvision.models import ResNet18_Weights, resnet18

_LOGGER = logging.getLogger(__name__)

# "cifar_resnet18" is torchvision's resnet18 with a 3x3 stride-1 stem and no
# max-pool, the usual variant for 32x32 inputs. "resnet18" is the ImageNet
# model unchanged.
ARCHITECTURES = ("cifar_resnet18", "resnet18")

# Split points, named by the module after which the head ends.
SPLIT_POINTS = ("layer1", "layer2", "layer3", "layer4")

_STEM = ("conv1", "bn1", "relu", "maxpool")


def build_model(arch: str, num_classes: int) -> nn.Module:
    """Build an untrained ResNet-18 of the given architecture."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; valid: {', '.join(ARCHITECTURES)}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")

    model = resnet18(weights=None, num_classes=num_classes)
    if arch == "cifar_resnet18":
        model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    return model


def load_imagenet_weights(model: nn.Module, source: str | Path | None = None) -> list[str]:
    """Copy ImageNet ResNet-18 weights into ``model`` where the shapes match.

    ``source`` is a local state-dict file, or None to use torchvision's
    download (which needs a network connection). Returns the names of the
    parameters left untouched because their shapes differ, such as the CIFAR
    stem or a classifier with another number of classes.
    """
    if source is None:
        state = ResNet18_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(
                f"ImageNet weights file not found: {path}; pass a torchvision resnet18 state dict"
            )
        state = torch.load(path, map_location="cpu", weights_only=True)

    own = model.state_dict()
    matching = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(k for k in own if k not in matching)
    model.load_state_dict(matching, strict=False)
    if skipped:
        _LOGGER.info("kept the initial values of %d tensors: %s", len(skipped), ", ".join(skipped))
    return skipped


class SplitModel(nn.Module):
    """A ResNet-18 cut after ``split``: ``tail(head(x))`` equals the whole model's output.

    The head runs the stem and the residual stages up to and including
    ``split``. The tail runs the remaining stages, the pooling and the
    classifier. Both share their modules with ``model``.
    """

    def __init__(self, model: nn.Module, split: str = "layer1") -> None:
        super().__init__()
        if split not in SPLIT_POINTS:
            raise ValueError(f"unknown split point {split!r}; valid: {', '.join(SPLIT_POINTS)}")
        self.split = split

        cut = SPLIT_POINTS.index(split) + 1
        head_names = list(_STEM) + list(SPLIT_POINTS[:cut])
        tail_names = list(SPLIT_POINTS[cut:])
        self.head = nn.Sequential(OrderedDict((name, getattr(model, name)) for name in head_names))

        tail = OrderedDict((name, getattr(model, name)) for name in tail_names)
        tail["avgpool"] = model.avgpool
        tail["flatten"] = nn.Flatten(1)
        tail["fc"] = model.fc
        self.tail = nn.Sequential(tail)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.head(x))

    def feature_shape(self, input_size: int) -> tuple[int, int, int]:
        """Return the C, H, W shape of the head's output for a square input."""
        with torch.no_grad():
            probe = torch.zeros(1, 3, input_size, input_size)
            was_training = self.head.training
            self.head.eval()
            shape = tuple(self.head(probe).shape[1:])
            self.head.train(was_training)
        return shape  # type: ignore[return-value]
