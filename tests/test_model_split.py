"""SplitModel: the head and tail together compute the whole ResNet-18."""

from __future__ import annotations

import pytest
import torch

from splitnet.model import ARCHITECTURES, SPLIT_POINTS, SplitModel, build_model

# Input side per architecture: CIFAR's native 32, and 64 for the ImageNet
# model, which keeps the test fast and still leaves layer4 a 2x2 output
# after the model's 32x downsampling.
INPUT_SIZES = {"cifar_resnet18": 32, "resnet18": 64}


def random_batch(input_size: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, input_size, input_size, generator=generator)


@pytest.fixture(scope="module")
def eval_models() -> dict[str, tuple[torch.nn.Module, torch.Tensor, torch.Tensor]]:
    """Map each architecture to an eval-mode model, an input batch and the model's output.

    The models are built and run once per module, so each parametrized
    case adds only the split model's forward pass.
    """
    models = {}
    for arch in ARCHITECTURES:
        model = build_model(arch, num_classes=10).eval()
        images = random_batch(INPUT_SIZES[arch])
        with torch.no_grad():
            output = model(images)
        models[arch] = (model, images, output)
    return models


@pytest.mark.parametrize("split", SPLIT_POINTS)
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_split_matches_whole_model(eval_models, arch: str, split: str) -> None:
    model, images, expected = eval_models[arch]
    split_model = SplitModel(model, split)

    with torch.no_grad():
        actual = split_model.tail(split_model.head(images))

    # The split runs the same modules in the same order, so the outputs
    # should be bitwise identical.
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("arch", "split", "expected_shape"),
    [
        ("cifar_resnet18", "layer1", (64, 32, 32)),
        ("cifar_resnet18", "layer2", (128, 16, 16)),
        ("cifar_resnet18", "layer3", (256, 8, 8)),
        ("cifar_resnet18", "layer4", (512, 4, 4)),
        ("resnet18", "layer1", (64, 16, 16)),
        ("resnet18", "layer4", (512, 2, 2)),
    ],
)
def test_feature_shape(eval_models, arch: str, split: str, expected_shape: tuple[int, int, int]) -> None:
    model, _, _ = eval_models[arch]
    split_model = SplitModel(model, split)

    assert split_model.feature_shape(INPUT_SIZES[arch]) == expected_shape


def test_feature_shape_keeps_training_mode() -> None:
    split_model = SplitModel(build_model("cifar_resnet18", num_classes=10), "layer1").train()

    split_model.feature_shape(32)

    assert split_model.head.training


def test_split_shares_modules() -> None:
    model = build_model("cifar_resnet18", num_classes=10)
    split_model = SplitModel(model, "layer2")

    assert split_model.head.layer2 is model.layer2
    assert split_model.tail.layer3 is model.layer3
    assert split_model.tail.fc is model.fc


def test_split_invalid_point() -> None:
    model = build_model("cifar_resnet18", num_classes=10)

    with pytest.raises(ValueError, match="'layer5'"):
        SplitModel(model, "layer5")


def test_build_invalid_arch() -> None:
    with pytest.raises(ValueError, match="'resnet50'"):
        build_model("resnet50", num_classes=10)


def test_build_invalid_num_classes() -> None:
    with pytest.raises(ValueError, match="got 0"):
        build_model("cifar_resnet18", num_classes=0)
