"""Measurement of one sweep setting: codec figures, peak memory and, if requested, fine-tuning.

``evaluate_setting`` returns one record of compression_results.json (see
docs/results-schema.md). Fine-tuning works on a copy of the base model. The
test images reach it only after fine-tuning has returned its selected
weights.
"""

from __future__ import annotations

import copy
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from codec import CodecConfig
from experiments.finetune import FinetuneOptions, finetune, round_to_storage
from experiments.measure import codec_accuracy, measure_codec
from experiments.memory import measure_memory
from experiments.results import setting_key
from splitnet.checkpoint import save_checkpoint
from splitnet.data import ImageSet
from splitnet.model import SplitModel


@dataclass
class SweepContext:
    """Models, images and options that the measurement of one setting needs."""

    network: nn.Module  # the whole base model, copied for fine-tuning and saved in checkpoints
    model: SplitModel  # head and tail sharing the modules of ``network``
    split: str
    metadata: dict[str, Any]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    test_set: ImageSet
    train_set: ImageSet | None
    val_set: ImageSet | None
    finetune_options: FinetuneOptions
    seed: int
    memory_images: int
    save_dir: Path | None
    progress: bool


def setting_seed(seed: int, key: str) -> int:
    """Derive a setting's fine-tuning seed from the run seed and the setting key, independent of the order."""
    return (seed * 1_000_003 + zlib.crc32(key.encode("utf-8"))) % (2**31)


def checkpoint_name(split: str, config: CodecConfig) -> str:
    """Return the file name of a setting's fine-tuned checkpoint."""
    return f"{split}_{config.mode}_keep{config.keep_ratio:g}_block{config.block_size}_bits{config.bits}.pt"


def finetuned_metadata(context: SweepContext, config: CodecConfig, summary: dict[str, Any],
                       test_accuracy: float) -> dict[str, Any]:
    """Return the base checkpoint's metadata plus the codec setting and the fine-tuning record.

    The base model's own figures (such as ``test_accuracy``) stay as they
    are; the fine-tuned model's are under ``finetune``.
    """
    metadata = {key: value for key, value in context.metadata.items() if key != "fingerprint"}
    metadata["base_fingerprint"] = context.metadata["fingerprint"]
    metadata["split"] = context.split
    metadata["codec"] = {"mode": config.mode, "keep_ratio": config.keep_ratio, "block_size": config.block_size,
                         "bits": config.bits, "border": config.border}
    metadata["finetune"] = {
        **context.finetune_options.as_dict(),
        **{key: value for key, value in summary.items() if key != "history"},
        "train_images": len(context.train_set),
        "val_images": len(context.val_set),
        "test_accuracy": test_accuracy,
        "test_images": len(context.test_set),
    }
    return metadata


def finetune_setting(context: SweepContext, config: CodecConfig, key: str) -> dict[str, Any]:
    """Fine-tune a copy of the base model for one setting and measure the selected weights on the test images.

    Returns the record fields ``accuracy_finetuned``, ``finetuned_codec``,
    ``finetune`` and ``finetune_s``.
    """
    network = copy.deepcopy(context.network)
    tuned = SplitModel(network, context.split)
    seed = setting_seed(context.seed, key)
    result = finetune(tuned, config, context.train_set, context.val_set, context.mean, context.std,
                      context.finetune_options, seed, context.progress)
    fingerprint = round_to_storage(network)

    # The test images are used here for the first time, once, on the selected weights.
    batch_size = context.finetune_options.eval_batch_size
    finetuned_codec = None
    if context.finetune_options.train_all:
        finetuned_codec, _ = measure_codec(tuned, context.test_set, config, context.mean, context.std, batch_size)
        accuracy = finetuned_codec.pop("accuracy")
    else:
        accuracy = codec_accuracy(tuned, context.test_set, config, context.mean, context.std, batch_size)

    summary = result.summary()
    saved = None
    if context.save_dir is not None:
        saved = checkpoint_name(context.split, config)
        save_checkpoint(context.save_dir / saved, network, finetuned_metadata(context, config, summary, accuracy))
    return {
        "accuracy_finetuned": accuracy,
        "finetuned_codec": finetuned_codec,
        "finetune": {**summary, "seed": seed, "fingerprint": fingerprint, "checkpoint": saved},
        "finetune_s": result.wall_time_s,
    }


def evaluate_setting(context: SweepContext, config: CodecConfig) -> dict[str, Any]:
    """Measure one setting, fine-tune for it if asked, and return its results record."""
    key = setting_key(config.mode, config.keep_ratio, config.block_size, config.bits)
    batch_size = context.finetune_options.eval_batch_size
    figures, timing = measure_codec(context.model, context.test_set, config, context.mean, context.std, batch_size,
                                    context.progress)
    memory = measure_memory(context.model, context.test_set.images[: context.memory_images], config, context.mean,
                            context.std)

    tuned: dict[str, Any] = {"accuracy_finetuned": None, "finetuned_codec": None, "finetune": None}
    if context.finetune_options.steps:
        tuned = finetune_setting(context, config, key)
        timing["finetune_s"] = tuned.pop("finetune_s")

    accuracy = figures.pop("accuracy")
    return {
        "key": key,
        "mode": config.mode,
        "keep_ratio": config.keep_ratio,
        "block_size": config.block_size,
        "bits": config.bits,
        "border": config.border,
        "test_images": len(context.test_set),
        "accuracy": accuracy,
        "accuracy_finetuned": tuned["accuracy_finetuned"],
        **figures,
        "finetuned_codec": tuned["finetuned_codec"],
        "finetune": tuned["finetune"],
        "timing": timing,
        "memory": memory,
    }
