"""Loading ImageNet ResNet-18 weights from a local file into both architectures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.models import resnet18

from splitnet.model import build_model, load_imagenet_weights


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(resnet18().state_dict(), path)
    return path


def test_pretrained_cifar_keeps_stem_and_head(weights_file: Path) -> None:
    model = build_model("cifar_resnet18", 10)
    skipped = load_imagenet_weights(model, weights_file)
    source = torch.load(weights_file, weights_only=True)

    assert skipped == ["conv1.weight", "fc.bias", "fc.weight"]
    assert torch.equal(model.layer1[0].conv1.weight, source["layer1.0.conv1.weight"])
    assert torch.equal(model.layer4[1].bn2.running_var, source["layer4.1.bn2.running_var"])


def test_pretrained_imagenet_loads_everything(weights_file: Path) -> None:
    model = build_model("resnet18", 1000)
    assert load_imagenet_weights(model, weights_file) == []
    assert torch.equal(model.fc.weight, torch.load(weights_file, weights_only=True)["fc.weight"])


def test_pretrained_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="ImageNet weights file not found"):
        load_imagenet_weights(build_model("resnet18", 10), tmp_path / "absent.pth")
