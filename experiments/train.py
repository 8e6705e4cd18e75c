"""Train a ResNet-18 classifier and write a checkpoint with its model card.

Example, a run from scratch::

    python -m experiments.train --data ../shared/data/cifar10-jpeg.tar.gz \
        --epochs 30 --run-dir runs/cifar10 --output runs/cifar10_resnet18.pt

The recipe: per-image random crop (4-pixel zero padding) and horizontal flip,
SGD with Nesterov momentum, a one-cycle learning-rate schedule, label
smoothing and ``drop_last`` batches. On a CPU the model runs in
channels_last memory format under bf16 autocast. The run directory keeps
``last.pt`` (weights, optimizer, schedule and progress), so running the same
command again after an interruption resumes where it stopped. ``--compile``
runs the training steps through ``torch.compile``.

Stochastic weight averaging (``--swa-epochs N``): the last N epochs run at
the constant rate ``--swa-lr``, the weights at the end of each of them are
averaged, and the batch-norm statistics of the average are recomputed on the
training images. The checkpoint contains the average. With N equal to
``--epochs`` and ``--init-checkpoint``, a run only averages around an
already trained model; the README lists the commands behind the shipped one.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import shlex
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, update_bn
from tqdm import tqdm

from splitnet.checkpoint import load_checkpoint, save_checkpoint
from splitnet.data import ImageSet, augment, load_split, normalization_for, normalize, train_val_indices
from splitnet.evaluate import accuracy
from splitnet.model import ARCHITECTURES, build_model, load_imagenet_weights

_LOGGER = logging.getLogger(__name__)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m experiments.train", description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="cifar10, cifar100, an ImageFolder directory or a .tar.gz of one")
    parser.add_argument("--data-root", default="data", help="download and extraction folder (default: data)")
    parser.add_argument("--arch", default="cifar_resnet18", choices=ARCHITECTURES)
    parser.add_argument("--input-size", type=int, default=32, help="input side in pixels (default: 32)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.15, help="peak learning rate of the one-cycle schedule")
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--swa-epochs", type=int, default=0,
                        help="last epochs of --epochs that run at --swa-lr and average their weights (default: 0)")
    parser.add_argument("--swa-lr", type=float, default=0.02,
                        help="constant learning rate of the weight-averaging epochs (default: 0.02)")
    parser.add_argument("--val-size", type=int, default=5000, help="training images held out for validation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init-checkpoint", default=None,
                        help="start from the weights of this checkpoint (a second cycle on a trained model)")
    parser.add_argument("--pretrained", default=None,
                        help="start from ImageNet weights: 'imagenet' downloads torchvision's, a path loads a file")
    parser.add_argument("--run-dir", required=True, help="folder for the resumable state (last.pt)")
    parser.add_argument("--output", required=True, help="path of the final float16 checkpoint")
    parser.add_argument("--save-every", type=int, default=50, help="steps between saves of the resumable state")
    parser.add_argument("--limit-train", type=int, default=None, help="use only this many training images (smoke runs)")
    parser.add_argument("--limit-test", type=int, default=None, help="test on only this many images (smoke runs)")
    parser.add_argument("--skip-corrupt", action="store_true", help="skip image files that fail to decode")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: all cores)")
    parser.add_argument("--no-bf16", action="store_true", help="train in float32 instead of bf16 autocast")
    parser.add_argument("--compile", action="store_true",
                        help="run training steps through torch.compile (7 to 12%% faster on the 2-core development "
                             "CPU, after a first compilation of about 45 s)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser.parse_args(argv)


def first_of_permutation(count: int, limit: int, seed: int) -> torch.Tensor:
    """Return ``limit`` indices drawn without replacement with a fixed seed, sorted."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    return order[: min(limit, count)].sort().values


def save_state(path: Path, state: dict[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    torch.save(state, temporary)
    temporary.replace(path)


def describe_machine(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return f"{platform.machine()} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def initial_rows(metadata: dict[str, Any]) -> list[str]:
    """Return the model card rows about the checkpoint a run started from, if any."""
    initial = metadata.get("initialized_from")
    if not initial:
        return []
    return [
        f"| initialized from | `{initial['fingerprint']}`, trained {initial['epochs']} epochs by "
        f"`{initial['command']}` |",
    ]


def averaging_rows(metadata: dict[str, Any]) -> list[str]:
    """Return the model card row about weight averaging, if the run averaged weights."""
    averaging = metadata.get("weight_averaging")
    if not averaging:
        return []
    return [
        f"| weight averaging | the last {averaging['epochs']} epochs at a constant learning rate of "
        f"{averaging['lr']}; {averaging['snapshots']} snapshots (one per epoch) averaged, batch-norm statistics "
        f"recomputed on the training images; validation accuracy of the last snapshot alone "
        f"{100 * averaging['last_iterate_val_accuracy']:.2f}% |",
    ]


def write_model_card(path: Path, metadata: dict[str, Any]) -> None:
    """Write a Markdown model card beside the checkpoint."""
    lines = [
        f"# {path.stem}",
        "",
        f"ResNet-18 (`{metadata['arch']}`) for {metadata['num_classes']} classes, "
        f"{metadata['input_size']}x{metadata['input_size']} RGB input.",
        "",
        "| field | value |",
        "| --- | --- |",
        f"| training data | `{metadata['train_data']}` ({metadata['train_images']} images, "
        f"{metadata['val_images']} held out for validation, seed {metadata['seed']}) |",
        f"| epochs | {metadata['epochs']} |",
        *initial_rows(metadata),
        *averaging_rows(metadata),
        f"| wall time | {metadata['wall_time_s'] / 60:.1f} min |",
        f"| machine | {metadata['machine']} |",
        f"| validation accuracy | {100 * metadata['val_accuracy']:.2f}% |",
        f"| test accuracy | {100 * metadata['test_accuracy']:.2f}% on {metadata['test_images']} images |",
        f"| class names | {', '.join(metadata['class_names'])} |",
        f"| normalisation | mean {metadata['mean']}, std {metadata['std']} |",
        f"| fingerprint | `{metadata['fingerprint']}` |",
        "",
        "Command:",
        "",
        "```",
        metadata["command"],
        "```",
        "",
    ]
    path.write_text("\n".join(lines))


def augmented_batches(
    image_set: ImageSet,
    batch_size: int,
    generator: torch.Generator,
    mean: tuple[float, ...],
    std: tuple[float, ...],
) -> Iterator[torch.Tensor]:
    """Yield augmented, normalized channels_last batches of ``image_set`` in a shuffled order.

    The order is shuffled because a batch of one class would bias the
    batch-norm variance that ``update_bn`` averages over batches.
    """
    order = torch.randperm(len(image_set), generator=generator)
    for start in range(0, len(image_set), batch_size):
        index = order[start : start + batch_size]
        images = normalize(augment(image_set.images[index], generator), mean, std)
        yield images.contiguous(memory_format=torch.channels_last)


def check_same_averaging(state_path: Path, saved: dict[str, Any], args: argparse.Namespace) -> None:
    """Raise SystemExit when a run is resumed with weight-averaging settings other than its own."""
    saved_args = saved.get("args", {})
    saved_epochs, saved_lr = saved_args.get("swa_epochs", 0), saved_args.get("swa_lr", args.swa_lr)
    if saved_epochs != args.swa_epochs or (args.swa_epochs and saved_lr != args.swa_lr):
        raise SystemExit(f"{state_path} was written with --swa-epochs {saved_epochs} --swa-lr {saved_lr}, "
                         f"not --swa-epochs {args.swa_epochs} --swa-lr {args.swa_lr}; rerun with its values "
                         "or choose a new --run-dir")


def resume_schedule(
    scheduler: torch.optim.lr_scheduler.OneCycleLR | None,
    saved_scheduler: dict[str, Any] | None,
    state: dict[str, Any],
    steps_per_epoch: int,
    state_path: Path,
    args: argparse.Namespace,
) -> None:
    """Bring a new one-cycle schedule to the step where the saved run stopped."""
    if scheduler is None and saved_scheduler is None:
        return
    both_cycles = scheduler is not None and saved_scheduler is not None
    if both_cycles and saved_scheduler["total_steps"] == scheduler.total_steps:
        scheduler.load_state_dict(saved_scheduler)
        return

    done_steps = state["epoch"] * steps_per_epoch + state["step"]
    saved_cycle_steps = saved_scheduler["total_steps"] if saved_scheduler is not None else 0
    if scheduler is None or (args.swa_epochs and done_steps >= saved_cycle_steps):
        raise SystemExit(f"{state_path} has begun its weight-averaging epochs, so its --epochs can no longer "
                         f"change (now --epochs {args.epochs}); rerun with its --epochs or choose a new --run-dir")
    if done_steps >= scheduler.total_steps:
        raise SystemExit(f"{state_path} has already run {done_steps} steps, more than --epochs "
                         f"{args.epochs} allows ({scheduler.total_steps}); raise --epochs")

    # A changed --epochs re-plans the one-cycle schedule over the new length
    # and continues from the steps already taken.
    _LOGGER.warning("re-planning the learning-rate schedule from %d to %d steps at step %d",
                    saved_cycle_steps, scheduler.total_steps, done_steps)
    with warnings.catch_warnings():
        # Stepping the schedule alone is the point here.
        warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
        for _ in range(done_steps):
            scheduler.step()


def build_optimizer(parameters: Iterable[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.SGD:
    """Return the SGD optimizer of the recipe: Nesterov momentum 0.9 and weight decay."""
    return torch.optim.SGD(parameters, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)


def train_step(
    forward: Callable[[torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    criterion: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    use_bf16: bool,
) -> torch.Tensor:
    """Run one optimizer step on a batch, under bf16 autocast if ``use_bf16``, and return its loss."""
    with torch.autocast(device_type=images.device.type, dtype=torch.bfloat16, enabled=use_bf16):
        loss = criterion(forward(images), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def train_epoch(
    model: nn.Module,
    forward: Callable[[torch.Tensor], torch.Tensor],
    train_set: ImageSet,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    criterion: nn.Module,
    state: dict[str, Any],
    args: argparse.Namespace,
    device: torch.device,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    save: Callable[[], None],
) -> float:
    """Run the rest of the current epoch from ``state['step']`` and return its mean loss.

    ``forward`` is ``model`` itself or a compiled version of it that shares
    its parameters. ``scheduler`` is stepped after every batch, and None
    keeps the learning rate. ``save`` writes the resumable state every
    ``--save-every`` steps.
    """
    epoch = state["epoch"]
    steps = len(train_set) // args.batch_size
    order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(args.seed * 100_003 + epoch))
    use_bf16 = not args.no_bf16
    model.train()

    losses = []
    bar = tqdm(range(state["step"], steps), desc=f"epoch {epoch + 1}/{args.epochs}", unit="step",
               disable=args.no_progress, initial=state["step"], total=steps)
    started = time.monotonic()
    for step in bar:
        index = order[step * args.batch_size : (step + 1) * args.batch_size]
        generator = torch.Generator().manual_seed(args.seed * 1_000_003 + epoch * 10_007 + step)
        images = normalize(augment(train_set.images[index], generator), mean, std)
        images = images.to(device).contiguous(memory_format=torch.channels_last)
        labels = train_set.labels[index].to(device)

        loss = train_step(forward, optimizer, criterion, images, labels, use_bf16)
        if scheduler is not None:
            scheduler.step()

        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}", lr=f"{optimizer.param_groups[0]['lr']:.4f}")
        state["step"] = step + 1
        if state["step"] % args.save_every == 0 and state["step"] < steps:
            state["wall_time_s"] += time.monotonic() - started
            started = time.monotonic()
            save()
    state["wall_time_s"] += time.monotonic() - started
    return sum(losses) / max(len(losses), 1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not 0 <= args.swa_epochs <= args.epochs:
        raise SystemExit(f"invalid --swa-epochs {args.swa_epochs}: use 0 to --epochs {args.epochs}")
    if args.swa_lr <= 0:
        raise SystemExit(f"invalid --swa-lr {args.swa_lr}: use a positive rate, for example 0.02")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    state_path = run_dir / "last.pt"

    full_train = load_split(args.data, "train", args.input_size, args.data_root, skip_corrupt=args.skip_corrupt,
                            progress=not args.no_progress)
    if args.limit_train:
        full_train = full_train.subset(first_of_permutation(len(full_train), args.limit_train, args.seed))
    train_index, val_index = train_val_indices(len(full_train), min(args.val_size, len(full_train) // 10 or 1), args.seed)
    train_set, val_set = full_train.subset(train_index), full_train.subset(val_index)
    mean, std = normalization_for(args.data)
    num_classes = len(full_train.class_names)
    _LOGGER.info("training on %d images, validating on %d, %d classes", len(train_set), len(val_set), num_classes)

    torch.manual_seed(args.seed)
    model = build_model(args.arch, num_classes)
    if args.pretrained:
        load_imagenet_weights(model, None if args.pretrained == "imagenet" else args.pretrained)
    initialized_from = None
    if args.init_checkpoint:
        initial = load_checkpoint(args.init_checkpoint)
        initialized_from = {key: initial.metadata.get(key)
                            for key in ("fingerprint", "epochs", "val_accuracy", "test_accuracy", "command")}
        if (initial.metadata["arch"], initial.metadata["num_classes"]) != (args.arch, num_classes):
            raise SystemExit(
                f"--init-checkpoint {args.init_checkpoint} is a {initial.metadata['arch']} model for "
                f"{initial.metadata['num_classes']} classes; this run trains {args.arch} for {num_classes}"
            )
        model.load_state_dict(initial.model.state_dict())
    model = model.to(device).to(memory_format=torch.channels_last)

    steps_per_epoch = len(train_set) // args.batch_size
    if steps_per_epoch < 1:
        raise SystemExit(f"--batch-size {args.batch_size} exceeds the {len(train_set)} training images; lower it")
    optimizer = build_optimizer(model.parameters(), args.lr, args.weight_decay)
    # The one-cycle schedule spans the epochs before the weight-averaging
    # ones. With --swa-epochs equal to --epochs there is no cycle at all,
    # which suits a run that starts from --init-checkpoint.
    cycle_epochs = args.epochs - args.swa_epochs
    scheduler = None
    if cycle_epochs > 0:
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, epochs=cycle_epochs,
                                                        steps_per_epoch=steps_per_epoch, pct_start=0.25)
    averaged = AveragedModel(model) if args.swa_epochs else None
    # The compiled module shares the parameters of ``model``. Only ``model``
    # is saved, averaged and validated, so checkpoints keep its key names.
    forward = torch.compile(model) if args.compile else model
    criterion = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)

    state: dict[str, Any] = {"epoch": 0, "step": 0, "wall_time_s": 0.0, "history": [], "args": vars(args)}

    def save() -> None:
        save_state(state_path, {
            **state,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "averaged": averaged.state_dict() if averaged is not None else None,
        })

    if state_path.exists():
        saved = torch.load(state_path, map_location=device, weights_only=False)
        check_same_averaging(state_path, saved, args)
        model.load_state_dict(saved.pop("model"))
        optimizer.load_state_dict(saved.pop("optimizer"))
        if averaged is not None and saved.get("averaged") is not None:
            averaged.load_state_dict(saved["averaged"])
        state.update({key: saved[key] for key in ("epoch", "step", "wall_time_s", "history")})
        resume_schedule(scheduler, saved.pop("scheduler"), state, steps_per_epoch, state_path, args)
        _LOGGER.info("resumed from %s at epoch %d, step %d", state_path, state["epoch"] + 1, state["step"])

    while state["epoch"] < args.epochs:
        averaging = state["epoch"] >= cycle_epochs
        if averaging:
            for group in optimizer.param_groups:
                group["lr"] = args.swa_lr
        loss = train_epoch(model, forward, train_set, optimizer, None if averaging else scheduler, criterion, state,
                           args, device, mean, std, save)
        if averaging:
            averaged.update_parameters(model)
        val_accuracy = accuracy(model, val_set, mean, std, device=device)
        state["history"].append({"epoch": state["epoch"] + 1, "loss": loss, "val_accuracy": val_accuracy})
        _LOGGER.info("epoch %d/%d: loss %.4f, validation accuracy %.2f%%, %.1f min so far",
                     state["epoch"] + 1, args.epochs, loss, 100 * val_accuracy, state["wall_time_s"] / 60)
        state["epoch"] += 1
        state["step"] = 0
        save()

    val_accuracy = state["history"][-1]["val_accuracy"]
    weight_averaging = None
    if averaged is not None:
        # The averaged weights never ran a forward pass, so their batch-norm
        # statistics are stale. Recompute them on the training images.
        started = time.monotonic()
        generator = torch.Generator().manual_seed(args.seed * 1_000_003 + 999_983)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=not args.no_bf16):
            update_bn(augmented_batches(train_set, args.batch_size, generator, mean, std), averaged.module, device)
        model = averaged.module
        val_accuracy = accuracy(model, val_set, mean, std, device=device)
        weight_averaging = {
            "epochs": args.swa_epochs,
            "lr": args.swa_lr,
            "snapshots": int(averaged.n_averaged),
            "last_iterate_val_accuracy": state["history"][-1]["val_accuracy"],
        }
        _LOGGER.info("averaged %d snapshots: validation accuracy %.2f%% (last iterate %.2f%%), batch norm in %.1f s",
                     int(averaged.n_averaged), 100 * val_accuracy, 100 * state["history"][-1]["val_accuracy"],
                     time.monotonic() - started)

    # The test set is used once, on the final model, and chooses nothing.
    test_set = load_split(args.data, "test", args.input_size, args.data_root, skip_corrupt=args.skip_corrupt,
                          progress=not args.no_progress)
    if args.limit_test:
        test_set = test_set.subset(first_of_permutation(len(test_set), args.limit_test, args.seed))
    model = model.float().to(memory_format=torch.contiguous_format)
    test_accuracy = accuracy(model, test_set, mean, std, device=device)

    metadata = {
        "arch": args.arch,
        "num_classes": num_classes,
        "class_names": full_train.class_names,
        "mean": list(mean),
        "std": list(std),
        "input_size": args.input_size,
        "train_data": args.data,
        "train_images": len(train_set),
        "val_images": len(val_set),
        "seed": args.seed,
        "epochs": args.epochs,
        "initialized_from": initialized_from,
        "history": state["history"],
        "val_accuracy": val_accuracy,
        "weight_averaging": weight_averaging,
        "test_accuracy": test_accuracy,
        "test_images": len(test_set),
        "wall_time_s": state["wall_time_s"],
        "machine": describe_machine(device),
        "command": "python -m experiments.train " + shlex.join(argv if argv is not None else sys.argv[1:]),
    }
    output = Path(args.output)
    written = save_checkpoint(output, model.cpu(), metadata)
    write_model_card(output.with_suffix(".md"), written)
    print(json.dumps({key: written[key] for key in ("val_accuracy", "test_accuracy", "epochs", "wall_time_s",
                                                    "fingerprint")}, indent=2))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(main())
