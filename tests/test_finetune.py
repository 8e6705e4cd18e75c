"""Fine-tuning with the codec in the loop: it learns, and only validation images choose its weights."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

from codec import CodecConfig
from experiments import finetune as finetune_module
from experiments.finetune import FinetuneOptions, finetune, split_train_val, validation_scores
from experiments.sweep_setting import SweepContext, evaluate_setting
from splitnet.data import NORMALIZATION, ImageSet, load_split
from splitnet.model import SplitModel, build_model

MEAN, STD = NORMALIZATION["imagenet"]
CONFIG = CodecConfig(mode="global", keep_ratio=0.5, block_size=4, bits=4)


@dataclasses.dataclass
class TinyData:
    train: ImageSet
    val: ImageSet
    test: ImageSet


@pytest.fixture(scope="module")
def tiny_data(tiny_image_folder: Path) -> TinyData:
    """Split the 24 training images of the tiny tree into 20 for training and 4 for validation."""
    train, val = split_train_val(load_split(str(tiny_image_folder), "train", 32, progress=False), 4, seed=0)
    return TinyData(train, val, load_split(str(tiny_image_folder), "test", 32, progress=False))


def tiny_model() -> SplitModel:
    """Build a 3-class CIFAR ResNet-18 with fixed initial weights, split after layer1."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return SplitModel(build_model("cifar_resnet18", 3), "layer1")


def run_finetune(data: TinyData, model: SplitModel | None = None, **options: Any) -> tuple[SplitModel, Any]:
    """Fine-tune a tiny model (or ``model``) on the tiny data and return the model and the result."""
    model = model or tiny_model()
    settings = {"steps": 6, "batch_size": 10, "eval_every": 2, "patience": 0, "eval_batch_size": 8, **options}
    with torch.random.fork_rng():
        result = finetune(model, CONFIG, data.train, data.val, MEAN, STD, FinetuneOptions(**settings), seed=0)
    return model, result


def sweep_context(data: TinyData, test: ImageSet, **options: Any) -> SweepContext:
    """Build the context of a sweep over the tiny data with ``test`` as its test images."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        network = build_model("cifar_resnet18", 3)
    settings = {"steps": 2, "batch_size": 10, "eval_every": 1, "patience": 0, "eval_batch_size": 8, **options}
    return SweepContext(
        network=network, model=SplitModel(network, "layer1").eval(), split="layer1",
        metadata={"fingerprint": "base"}, mean=MEAN, std=STD, test_set=test, train_set=data.train,
        val_set=data.val, finetune_options=FinetuneOptions(**settings), seed=0, memory_images=1, save_dir=None,
        progress=False,
    )


def test_split_train_val_disjoint(tiny_data: TinyData) -> None:
    train_pixels = {bytes(image.numpy()) for image in tiny_data.train.images}
    val_pixels = {bytes(image.numpy()) for image in tiny_data.val.images}

    assert len(tiny_data.train) == 20
    assert len(tiny_data.val) == 4
    assert not train_pixels & val_pixels


def test_split_train_val_invalid_size(tiny_data: TinyData) -> None:
    with pytest.raises(ValueError, match="invalid --val-size 20"):
        split_train_val(tiny_data.train, 20, seed=0)


def test_finetune_lowers_training_loss(tiny_data: TinyData) -> None:
    _, result = run_finetune(tiny_data, steps=8, batch_size=5, eval_every=8, augment=False)
    losses = result.train_losses

    assert len(losses) == 8
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3


def test_finetune_returns_selected_weights(tiny_data: TinyData) -> None:
    model, result = run_finetune(tiny_data, steps=4, eval_every=1)
    best = max(result.history, key=lambda point: (point["val_accuracy"], -point["val_loss"]))
    val_loss, val_accuracy = validation_scores(model, tiny_data.val, CONFIG, MEAN, STD, 8, None)

    assert [point["step"] for point in result.history] == list(range(5))
    assert result.selected_step == best["step"]
    assert val_accuracy == best["val_accuracy"]
    assert val_loss == pytest.approx(best["val_loss"], rel=1e-5)


def test_finetune_stops_early(tiny_data: TinyData) -> None:
    _, result = run_finetune(tiny_data, steps=30, eval_every=1, patience=1)

    assert result.stopped_early
    assert result.steps_run < 30
    assert result.history[-1]["step"] == result.steps_run
    # With patience 1, training stops at the first validation after the best one.
    assert result.steps_run == result.selected_step + 1


def test_finetune_head_frozen_by_default(tiny_data: TinyData) -> None:
    model = tiny_model()
    head_before = {name: tensor.clone() for name, tensor in model.head.state_dict().items()}

    run_finetune(tiny_data, model, steps=2, eval_every=2)

    for name, tensor in model.head.state_dict().items():
        assert torch.equal(tensor, head_before[name]), name


def test_finetune_batch_too_large(tiny_data: TinyData) -> None:
    with pytest.raises(ValueError, match="batch size 21 exceeds the 20 training images"):
        run_finetune(tiny_data, batch_size=21)


def test_finetune_options_invalid() -> None:
    with pytest.raises(ValueError, match="unknown optimizer 'lion'"):
        FinetuneOptions(steps=1, optimizer="lion")
    with pytest.raises(ValueError, match="unknown scheduler 'step'"):
        FinetuneOptions(steps=1, scheduler="step")


def test_test_set_cannot_reach_selection(tiny_data: TinyData, monkeypatch: pytest.MonkeyPatch) -> None:
    # A garbage test set: noise images and a label that no prediction can match.
    generator = torch.Generator().manual_seed(1)
    noise = torch.randint(0, 256, tuple(tiny_data.test.images.shape), dtype=torch.uint8, generator=generator)
    garbage = ImageSet(noise, torch.full_like(tiny_data.test.labels, 99), tiny_data.test.class_names, "garbage")

    seen = []
    score = finetune_module.validation_scores
    batch = finetune_module.training_batch

    def spy_scores(model, val_set, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(("validation", val_set))
        return score(model, val_set, *args, **kwargs)

    def spy_batch(train_set, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(("training", train_set))
        return batch(train_set, *args, **kwargs)

    monkeypatch.setattr(finetune_module, "validation_scores", spy_scores)
    monkeypatch.setattr(finetune_module, "training_batch", spy_batch)
    with torch.random.fork_rng():
        real = evaluate_setting(sweep_context(tiny_data, tiny_data.test), CONFIG)
    with torch.random.fork_rng():
        scrambled = evaluate_setting(sweep_context(tiny_data, garbage), CONFIG)

    assert real["finetune"] == scrambled["finetune"]
    assert scrambled["accuracy_finetuned"] == 0.0
    assert {kind for kind, _ in seen} == {"validation", "training"}
    for kind, image_set in seen:
        assert image_set is (tiny_data.val if kind == "validation" else tiny_data.train)


def test_finetune_all_measures_bits_again(tiny_data: TinyData) -> None:
    with torch.random.fork_rng():
        record = evaluate_setting(sweep_context(tiny_data, tiny_data.test, train_all=True), CONFIG)
    tuned = record["finetuned_codec"]

    assert record["finetune"] is not None
    assert tuned is not None
    assert "accuracy" not in tuned
    assert tuned["decode_matches_simulate"] is True
    assert tuned["bpp_mean"] > 0
    assert 0.0 <= record["accuracy_finetuned"] <= 1.0
