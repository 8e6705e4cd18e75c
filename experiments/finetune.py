"""Fine-tuning of a split model with the codec in the forward pass.

Each step runs the head in float32, passes its output through
``codec.simulate`` and trains on the decoded features. ``simulate`` returns
exactly what the real decoder returns. Its backward pass keeps the forward
pass's selection mask fixed and passes gradients through the quantizer
unchanged (straight-through estimation). By default only the tail trains: the head is
frozen, with its batch normalization in eval mode. With ``train_all`` the
whole model trains and gradients reach the head through ``simulate``.

Only a validation split, held out from the training images, drives the
learning-rate schedule, early stopping and the choice of the returned
weights. ``finetune`` takes no test images, so the test set cannot
influence what it returns.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from codec import CodecConfig, simulate
from splitnet.checkpoint import fingerprint_state, to_storage
from splitnet.data import ImageSet, augment, normalize, train_val_indices
from splitnet.model import SplitModel

_LOGGER = logging.getLogger(__name__)

OPTIMIZERS = ("adam", "sgd")
SCHEDULERS = ("plateau", "cosine")


@dataclass(frozen=True)
class FinetuneOptions:
    """Fine-tuning settings; ``patience`` counts validations without improvement, and 0 turns early stopping off."""

    steps: int
    batch_size: int = 128
    train_all: bool = False
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    scheduler: str = "plateau"
    eval_every: int = 50
    patience: int = 4
    bf16: bool = True
    augment: bool = True
    eval_batch_size: int = 200

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ValueError(f"invalid fine-tuning steps {self.steps}; pass 0 (no fine-tuning) or more")
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise ValueError(f"invalid batch sizes {self.batch_size}, {self.eval_batch_size}; both must be at least 1")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {self.scheduler!r}; valid: {', '.join(SCHEDULERS)}")
        if not self.lr > 0:
            raise ValueError(f"invalid learning rate {self.lr}; it must be positive, for example 0.001")
        if self.eval_every < 1:
            raise ValueError(f"invalid validation interval {self.eval_every}; it must be at least 1 step")
        if self.patience < 0:
            raise ValueError(f"invalid patience {self.patience}; pass 0 to turn early stopping off, or more")

    def as_dict(self) -> dict[str, Any]:
        """Return the options as a JSON-compatible dictionary, with ``trained`` naming the trained part."""
        options = asdict(self)
        options["trained"] = "all" if self.train_all else "tail"
        return options


@dataclass
class FinetuneResult:
    """Outcome of one fine-tuning run: its validation history and the step whose weights it returned."""

    selected_step: int
    steps_run: int
    stopped_early: bool
    history: list[dict[str, Any]]
    train_losses: list[float] = field(repr=False)
    wall_time_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        """Return the deterministic part of the result as a JSON-compatible dictionary."""
        selected = next(point for point in self.history if point["step"] == self.selected_step)
        return {
            "selected_step": self.selected_step,
            "steps_run": self.steps_run,
            "stopped_early": self.stopped_early,
            "val_accuracy_initial": self.history[0]["val_accuracy"],
            "val_accuracy_selected": selected["val_accuracy"],
            "val_loss_selected": selected["val_loss"],
            "history": self.history,
        }


def split_train_val(train_set: ImageSet, val_size: int, seed: int) -> tuple[ImageSet, ImageSet]:
    """Hold out ``val_size`` training images for validation with ``splitnet.data.train_val_indices``.

    ``experiments.train`` holds out its validation images the same way. So
    with the base model's training images and seed, and a ``val_size`` no
    larger than its own, the validation part contains only images that the
    base model never trained on.
    """
    if not 0 < val_size < len(train_set):
        raise ValueError(
            f"invalid --val-size {val_size}: it must be between 1 and {len(train_set) - 1}, "
            f"the number of training images minus one"
        )
    train_index, val_index = train_val_indices(len(train_set), val_size, seed)
    return train_set.subset(train_index), train_set.subset(val_index)


def round_to_storage(model: nn.Module) -> str:
    """Round the floating-point weights of ``model`` through float16, as checkpoints store them; return their fingerprint.

    After this, the model computes what a model loaded from its saved
    checkpoint computes, and the fingerprint equals the checkpoint's.
    """
    stored = to_storage(model.state_dict())
    model.load_state_dict({name: tensor.float() if tensor.is_floating_point() else tensor
                           for name, tensor in stored.items()})
    return fingerprint_state(stored)


@torch.no_grad()
def decoded_batches(
    model: SplitModel,
    image_set: ImageSet,
    config: CodecConfig,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    batch_size: int,
) -> list[torch.Tensor]:
    """Return the decoded features of ``image_set``, batch by batch, with the head in eval mode."""
    was_training = model.head.training
    model.head.eval()
    batches = []
    for start in range(0, len(image_set), batch_size):
        features = model.head(normalize(image_set.images[start : start + batch_size], mean, std))
        batches.append(simulate(features, config))
    model.head.train(was_training)
    return batches


@torch.no_grad()
def validation_scores(
    model: SplitModel,
    val_set: ImageSet,
    config: CodecConfig,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    batch_size: int,
    cached: list[torch.Tensor] | None,
) -> tuple[float, float]:
    """Return the mean cross-entropy and the accuracy of the model, in eval mode and float32, on ``val_set``.

    ``cached`` contains the decoded features of a frozen head. Without it,
    the head runs again.
    """
    modes = (model.head.training, model.tail.training)
    model.eval()
    batches = cached if cached is not None else decoded_batches(model, val_set, config, mean, std, batch_size)

    loss_sum = 0.0
    correct = 0
    for index, decoded in enumerate(batches):
        labels = val_set.labels[index * batch_size : (index + 1) * batch_size]
        logits = model.tail(decoded)
        loss_sum += float(nn.functional.cross_entropy(logits, labels, reduction="sum"))
        correct += int((logits.argmax(1) == labels).sum())
    model.head.train(modes[0])
    model.tail.train(modes[1])
    return loss_sum / len(val_set), correct / len(val_set)


def build_optimizer(parameters: list[nn.Parameter], options: FinetuneOptions) -> torch.optim.Optimizer:
    """Create the optimizer that ``options`` names."""
    if options.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=options.lr, weight_decay=options.weight_decay)
    return torch.optim.SGD(parameters, lr=options.lr, momentum=options.momentum, nesterov=options.momentum > 0,
                           weight_decay=options.weight_decay)


def set_trainable(model: SplitModel, train_all: bool) -> list[nn.Parameter]:
    """Freeze the head unless ``train_all``, put the trained part in train mode and return its parameters."""
    for parameter in model.head.parameters():
        parameter.requires_grad_(train_all)
    model.head.train(train_all)
    model.tail.train()
    trained = model if train_all else model.tail
    return [parameter for parameter in trained.parameters() if parameter.requires_grad]


def training_batch(
    train_set: ImageSet,
    step: int,
    options: FinetuneOptions,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the uint8 images and labels of one step: epoch-wise shuffled, full batches, optionally augmented."""
    per_epoch = len(train_set) // options.batch_size
    epoch, position = divmod(step, per_epoch)
    order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    index = order[position * options.batch_size : (position + 1) * options.batch_size]

    images = train_set.images[index]
    if options.augment:
        images = augment(images, torch.Generator().manual_seed(seed * 1_000_003 + step))
    return images, train_set.labels[index]


def finetune(
    model: SplitModel,
    config: CodecConfig,
    train_set: ImageSet,
    val_set: ImageSet,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    options: FinetuneOptions,
    seed: int,
    progress: bool = False,
) -> FinetuneResult:
    """Fine-tune ``model`` in place with the codec in the loop and load the best weights on validation.

    Validation runs before the first step and every ``eval_every`` steps
    (and after the last). The best validation accuracy, ties going to the
    lower validation loss, selects the weights. ``plateau`` halves the
    learning rate when the validation loss has not improved for two
    validations, and ``cosine`` anneals it to zero over ``steps``. Training
    stops early after ``patience`` validations without a better accuracy.
    Seeds torch's global generator with ``seed``; batches and augmentation
    use their own generators derived from it.
    """
    if options.batch_size > len(train_set):
        raise ValueError(
            f"fine-tuning batch size {options.batch_size} exceeds the {len(train_set)} training images; "
            "lower --batch-size"
        )
    started = time.monotonic()
    torch.manual_seed(seed)
    parameters = set_trainable(model, options.train_all)
    optimizer = build_optimizer(parameters, options)
    if options.scheduler == "cosine":
        scheduler: Any = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(options.steps, 1))
    else:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=1)

    cached = None if options.train_all else decoded_batches(model, val_set, config, mean, std, options.eval_batch_size)
    val_loss, val_accuracy = validation_scores(model, val_set, config, mean, std, options.eval_batch_size, cached)
    history = [{"step": 0, "train_loss": None, "val_loss": val_loss, "val_accuracy": val_accuracy,
                "lr": optimizer.param_groups[0]["lr"]}]
    best = (val_accuracy, -val_loss)
    best_step = 0
    best_state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    stale = 0
    stopped_early = False
    train_losses: list[float] = []
    model.to(memory_format=torch.channels_last)

    bar = tqdm(range(1, options.steps + 1), desc=f"fine-tuning {config.mode} keep {config.keep_ratio:g}",
               unit="step", disable=not progress, leave=False)
    for step in bar:
        images, labels = training_batch(train_set, step - 1, options, seed)
        batch = normalize(images, mean, std).contiguous(memory_format=torch.channels_last)
        with torch.set_grad_enabled(options.train_all):
            features = model.head(batch)
        decoded = simulate(features, config).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=options.bf16):
            loss = nn.functional.cross_entropy(model.tail(decoded), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if options.scheduler == "cosine":
            scheduler.step()
        train_losses.append(loss.item())
        bar.set_postfix(loss=f"{train_losses[-1]:.3f}")

        if step % options.eval_every and step != options.steps:
            continue
        val_loss, val_accuracy = validation_scores(model, val_set, config, mean, std, options.eval_batch_size, cached)
        recent = train_losses[history[-1]["step"] : step]
        history.append({"step": step, "train_loss": sum(recent) / len(recent), "val_loss": val_loss,
                        "val_accuracy": val_accuracy, "lr": optimizer.param_groups[0]["lr"]})
        if options.scheduler == "plateau":
            scheduler.step(val_loss)
        if (val_accuracy, -val_loss) > best:
            best, best_step, stale = (val_accuracy, -val_loss), step, 0
            best_state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
        else:
            stale += 1
        _LOGGER.debug("step %d: validation loss %.4f, accuracy %.4f", step, val_loss, val_accuracy)
        if options.patience and stale >= options.patience and step < options.steps:
            stopped_early = True
            break

    model.load_state_dict(best_state)
    model.to(memory_format=torch.contiguous_format)
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    model.eval()
    return FinetuneResult(best_step, len(train_losses), stopped_early, history, train_losses,
                          time.monotonic() - started)
