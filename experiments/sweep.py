"""Sweep codec settings on a split model: accuracy against real bits, with and without fine-tuning.

Example::

    python -m experiments.sweep --checkpoint checkpoints/cifar10_resnet18.pt \\
        --data path/to/cifar10-jpeg.tar.gz --split layer1 \\
        --modes channel-wise,region-wise,global --keep-ratios 1.0,0.5,0.3,0.1,0.05 \\
        --block-sizes 4 --bits 2,4 --subset 1000 --finetune-steps 300 --out out/sweep

For every setting (mode x keep ratio x block size x bits) it measures the
accuracy through ``codec.simulate`` and the tail on the test images. It
also measures the real bits per pixel of every encoded image, the bound,
the bit split, compression ratios, zstd-19 on the same sparse data, coding
times and peak memory. With ``--finetune-steps`` it fine-tunes a copy of
the model for each setting with the codec in the loop. Baselines (whole
model, float32 split, JPEG and WebP of the input) run on the same images.

``--out`` receives compression_results.json (documented in
docs/results-schema.md), four figures and summary.md. The JSON file is
rewritten after each setting, so a rerun with the same ``--out`` skips the
settings that it contains. Progress bars go to stderr, and a JSON list of
the written files goes to stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from tqdm import tqdm

from codec import KEEP_RATIOS, MODES, CodecConfig
from experiments.baselines import measure_baselines
from experiments.finetune import OPTIMIZERS, SCHEDULERS, FinetuneOptions, split_train_val
from experiments.plots import write_figures
from experiments.provenance import provenance
from experiments.report import write_summary
from experiments.results import ResultsConflictError, ResultsFile, run_key, setting_key
from experiments.sweep_setting import SweepContext, evaluate_setting
from splitnet.checkpoint import CheckpointError, load_checkpoint
from splitnet.data import ImageFileError, ImageSet, load_split, normalize
from splitnet.model import SPLIT_POINTS, SplitModel

_LOGGER = logging.getLogger(__name__)

SUMMARY_NAME = "summary.md"

# Configuration fields that change no figure, so a rerun that changes them
# still resumes: the grid, where files go, and how much is timed or drawn.
UNKEYED_FIELDS = ("checkpoint", "data", "grid", "memory_images", "plot_images", "timing_images", "threads",
                  "save_finetuned")

_T = TypeVar("_T")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m experiments.sweep", description=__doc__.splitlines()[0])

    inputs = parser.add_argument_group("model and data")
    inputs.add_argument("--checkpoint", required=True, help="base model, written by experiments.train")
    inputs.add_argument("--data", required=True, help="cifar10, cifar100, an ImageFolder directory or a .tar.gz of one")
    inputs.add_argument("--data-root", default="data", help="download and extraction folder (default: data)")
    inputs.add_argument("--split", default="layer1", choices=SPLIT_POINTS, help="module after which the head ends")
    inputs.add_argument("--subset", type=int, default=None,
                        help="evaluate on this many test images drawn with --seed (default: all)")
    inputs.add_argument("--seed", type=int, default=0,
                        help="seed of the test subset, the validation split and fine-tuning (default: 0)")
    inputs.add_argument("--skip-corrupt", action="store_true", help="skip image files that fail to decode")

    grid = parser.add_argument_group("codec settings (every combination is one setting)")
    grid.add_argument("--modes", default=",".join(MODES), help="comma-separated selection modes (default: all)")
    grid.add_argument("--keep-ratios", default=",".join(f"{ratio:g}" for ratio in KEEP_RATIOS),
                      help="comma-separated fractions of blocks kept, each in (0, 1]")
    grid.add_argument("--block-sizes", default="4", help="comma-separated block sides in feature pixels")
    grid.add_argument("--bits", default="2,4", help="comma-separated quantizer depths in bits")
    grid.add_argument("--border", type=int, default=1, help="width of the zeroed border ring (default: 1)")

    output = parser.add_argument_group("output")
    output.add_argument("--out", required=True, help="output folder; rerunning with the same folder resumes")
    output.add_argument("--fresh", action="store_true", help="discard earlier results in --out instead of resuming")
    output.add_argument("--save-finetuned", default=None, help="folder for the fine-tuned checkpoints")

    tuning = parser.add_argument_group("fine-tuning")
    tuning.add_argument("--finetune-steps", type=int, default=0,
                        help="maximum fine-tuning steps per setting; 0 (the default) skips fine-tuning")
    tuning.add_argument("--finetune-all", action="store_true",
                        help="fine-tune head and tail; by default the head stays frozen")
    tuning.add_argument("--batch-size", type=int, default=128, help="images per fine-tuning step (default: 128)")
    tuning.add_argument("--optimizer", default="adam", choices=OPTIMIZERS)
    tuning.add_argument("--lr", type=float, default=1e-3, help="initial learning rate (default: 0.001)")
    tuning.add_argument("--momentum", type=float, default=0.9, help="SGD momentum, Nesterov when above 0")
    tuning.add_argument("--weight-decay", type=float, default=0.0)
    tuning.add_argument("--scheduler", default="plateau", choices=SCHEDULERS,
                        help="plateau: halve the learning rate when the validation loss stalls; cosine: anneal to 0")
    tuning.add_argument("--eval-every", type=int, default=50, help="fine-tuning steps between validations")
    tuning.add_argument("--patience", type=int, default=4,
                        help="validations without a better accuracy before stopping early; 0 never stops early")
    tuning.add_argument("--val-size", type=int, default=1000,
                        help="training images held out for validation with --seed (default: 1000)")
    tuning.add_argument("--no-bf16", action="store_true", help="fine-tune in float32 instead of bf16 autocast")
    tuning.add_argument("--no-augment", action="store_true", help="fine-tune without random crops and flips")

    measuring = parser.add_argument_group("measurements and baselines")
    measuring.add_argument("--eval-batch-size", type=int, default=200, help="images per evaluation batch")
    measuring.add_argument("--jpeg-qualities", default="10,30,50,75,90", help="JPEG qualities of the input baseline")
    measuring.add_argument("--webp-qualities", default="10,30,50,75,90", help="WebP qualities of the input baseline")
    measuring.add_argument("--memory-images", type=int, default=3, help="images whose peak memory is measured")
    measuring.add_argument("--timing-images", type=int, default=20, help="images for the head and tail times")
    measuring.add_argument("--plot-images", type=int, default=64, help="images behind the distribution figures")
    measuring.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    measuring.add_argument("--no-progress", action="store_true", help="hide progress bars")

    args = parser.parse_args(argv)
    check_args(parser, args)
    return args


def parse_list(text: str, convert: Callable[[str], _T], option: str, example: str) -> list[_T]:
    """Split a comma-separated option value and convert each item; raise ValueError naming the bad item."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ValueError(f"{option} is empty; pass a comma-separated list such as {example}")
    values = []
    for item in items:
        try:
            values.append(convert(item))
        except ValueError as error:
            raise ValueError(f"invalid {option} item {item!r}; pass a comma-separated list such as {example}") from error
    return list(dict.fromkeys(values))


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Parse the list options into ``args`` and report every invalid value through ``parser.error``."""
    try:
        args.mode_list = parse_list(args.modes, str, "--modes", ",".join(MODES))
        args.keep_list = parse_list(args.keep_ratios, float, "--keep-ratios", "1.0,0.5,0.1")
        args.block_list = parse_list(args.block_sizes, int, "--block-sizes", "4")
        args.bits_list = parse_list(args.bits, int, "--bits", "2,4")
        args.qualities = {
            "jpeg": parse_list(args.jpeg_qualities, int, "--jpeg-qualities", "10,50,90"),
            "webp": parse_list(args.webp_qualities, int, "--webp-qualities", "10,50,90"),
        }
        args.configs = [
            CodecConfig(mode=mode, keep_ratio=keep, block_size=block, bits=bits, border=args.border)
            for mode in args.mode_list for block in args.block_list for bits in args.bits_list
            for keep in args.keep_list
        ]
        args.finetune_options = FinetuneOptions(
            steps=args.finetune_steps, batch_size=args.batch_size, train_all=args.finetune_all,
            optimizer=args.optimizer, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
            scheduler=args.scheduler, eval_every=args.eval_every, patience=args.patience, bf16=not args.no_bf16,
            augment=not args.no_augment, eval_batch_size=args.eval_batch_size,
        )
    except ValueError as error:
        parser.error(str(error))

    for image_format, qualities in args.qualities.items():
        bad = [quality for quality in qualities if not 1 <= quality <= 100]
        if bad:
            parser.error(f"invalid --{image_format}-qualities {bad}; valid qualities are 1..100")
    for option in ("subset", "memory_images", "timing_images", "plot_images", "threads"):
        value = getattr(args, option)
        if value is not None and value < 1:
            parser.error(f"invalid --{option.replace('_', '-')} {value}; it must be at least 1")


def images_sha256(image_set: ImageSet) -> str:
    """Return the SHA-256 hex digest of an image set's pixels and labels."""
    digest = hashlib.sha256()
    digest.update(image_set.images.contiguous().numpy().tobytes())
    digest.update(image_set.labels.contiguous().numpy().astype("<i8").tobytes())
    return digest.hexdigest()


def load_images(args: argparse.Namespace, split: str, input_size: int) -> ImageSet:
    """Load one split of ``--data``, turning a missing or unreadable source into SystemExit."""
    try:
        return load_split(args.data, split, input_size, args.data_root, skip_corrupt=args.skip_corrupt,
                          progress=not args.no_progress)
    except (FileNotFoundError, ValueError, ImageFileError) as error:
        raise SystemExit(f"error: cannot load the {split} images of --data {args.data}: {error}") from error


def subset_indices(count: int, subset: int | None, seed: int) -> torch.Tensor:
    """Return the sorted indices of ``subset`` images drawn without replacement with ``seed``, or all of them."""
    if subset is None:
        return torch.arange(count)
    if subset > count:
        raise SystemExit(f"error: --subset {subset} exceeds the {count} test images; lower it or leave it out")
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    return order[:subset].sort().values


def run_config(args: argparse.Namespace, metadata: dict[str, Any], model: SplitModel, test_set: ImageSet,
               train_set: ImageSet | None, val_set: ImageSet | None) -> dict[str, Any]:
    """Return the ``config`` block of the results file."""
    input_size = int(metadata["input_size"])
    return {
        "checkpoint": args.checkpoint,
        "checkpoint_fingerprint": metadata["fingerprint"],
        "arch": metadata["arch"],
        "num_classes": int(metadata["num_classes"]),
        "input_size": input_size,
        "mean": list(metadata["mean"]),
        "std": list(metadata["std"]),
        "split": args.split,
        "feature_shape": list(model.feature_shape(input_size)),
        "data": args.data,
        "test_images": len(test_set),
        "subset": args.subset,
        "test_data_sha256": images_sha256(test_set),
        "seed": args.seed,
        "border": args.border,
        "grid": {"modes": args.mode_list, "keep_ratios": args.keep_list, "block_sizes": args.block_list,
                 "bits": args.bits_list},
        "eval_batch_size": args.eval_batch_size,
        "finetune": args.finetune_options.as_dict(),
        "val_size": args.val_size if args.finetune_steps else None,
        "train_images": len(train_set) if train_set is not None else None,
        "val_images": len(val_set) if val_set is not None else None,
        "train_data_sha256": images_sha256(train_set) if train_set is not None else None,
        "val_data_sha256": images_sha256(val_set) if val_set is not None else None,
        "baseline_qualities": args.qualities,
        "memory_images": min(args.memory_images, len(test_set)),
        "timing_images": min(args.timing_images, len(test_set)),
        "plot_images": min(args.plot_images, len(test_set)),
        "threads": torch.get_num_threads(),
        "save_finetuned": args.save_finetuned,
    }


@torch.no_grad()
def sample_features(model: SplitModel, image_set: ImageSet, count: int, mean: tuple[float, ...],
                    std: tuple[float, ...]) -> np.ndarray:
    """Return the head's float32 output on the first ``count`` images."""
    model.eval()
    return model.head(normalize(image_set.images[:count], mean, std)).numpy()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    progress = not args.no_progress
    out_dir = Path(args.out)

    try:
        checkpoint = load_checkpoint(args.checkpoint)
    except CheckpointError as error:
        raise SystemExit(f"error: {error}") from error
    metadata = checkpoint.metadata
    network = checkpoint.model
    model = SplitModel(network, args.split).eval()
    mean, std = tuple(metadata["mean"]), tuple(metadata["std"])
    input_size = int(metadata["input_size"])

    test_set = load_images(args, "test", input_size)
    test_set = test_set.subset(subset_indices(len(test_set), args.subset, args.seed))
    train_set = val_set = None
    if args.finetune_steps:
        try:
            train_set, val_set = split_train_val(load_images(args, "train", input_size), args.val_size, args.seed)
        except ValueError as error:
            raise SystemExit(f"error: {error}") from error
    _LOGGER.info("%d test images, %s training images, %s validation images", len(test_set),
                 len(train_set) if train_set is not None else "no", len(val_set) if val_set is not None else "no")

    config = run_config(args, metadata, model, test_set, train_set, val_set)
    key = run_key({name: value for name, value in config.items() if name not in UNKEYED_FIELDS})
    command = "python -m experiments.sweep " + shlex.join(argv if argv is not None else sys.argv[1:])
    try:
        results = ResultsFile.open(out_dir, key, config, provenance(command), fresh=args.fresh)
    except ResultsConflictError as error:
        raise SystemExit(f"error: {error}") from error

    if results.baselines is None:
        results.set_baselines(measure_baselines(network, model, test_set, mean, std, args.eval_batch_size,
                                                args.qualities, config["timing_images"], progress))
    # A resumed run writes its own configuration and provenance before the first new setting.
    results.save()

    context = SweepContext(
        network=network, model=model, split=args.split, metadata=metadata, mean=mean, std=std, test_set=test_set,
        train_set=train_set, val_set=val_set, finetune_options=args.finetune_options, seed=args.seed,
        memory_images=config["memory_images"], save_dir=Path(args.save_finetuned) if args.save_finetuned else None,
        progress=progress,
    )
    done = results.keys
    todo = [c for c in args.configs if setting_key(c.mode, c.keep_ratio, c.block_size, c.bits) not in done]
    _LOGGER.info("%d settings to measure, %d already in %s", len(todo), len(args.configs) - len(todo), results.path)
    for codec_config in tqdm(todo, desc="settings", unit="setting", disable=not progress):
        record = evaluate_setting(context, codec_config)
        results.add(record)
        _LOGGER.info("%s: accuracy %.2f%%, fine-tuned %s, %.4f BPP", record["key"], 100 * record["accuracy"],
                     "-" if record["accuracy_finetuned"] is None else f"{100 * record['accuracy_finetuned']:.2f}%",
                     record["bpp_mean"])

    features = sample_features(model, test_set, config["plot_images"], mean, std)
    figures = write_figures(out_dir, results.document, features, input_size * input_size)
    summary_path = out_dir / SUMMARY_NAME
    write_summary(results.document, summary_path)

    checkpoints = [record["finetune"]["checkpoint"] for record in results.document["records"]
                   if record["finetune"] and record["finetune"]["checkpoint"]]
    print(json.dumps({
        "results": str(results.path),
        "summary": str(summary_path),
        "figures": [str(path) for path in figures],
        "settings": len(args.configs),
        "measured": len(todo),
        "resumed": len(args.configs) - len(todo),
        "finetuned_checkpoints": [str(Path(args.save_finetuned) / name) for name in checkpoints]
        if args.save_finetuned else [],
    }, indent=2))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(main())
