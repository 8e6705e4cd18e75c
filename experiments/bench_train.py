"""Benchmark training speed: images per second of ResNet-18 training steps.

Each configuration runs the training step of ``python -m experiments.train``
(SGD with Nesterov momentum, label smoothing, channels_last) on random batches:
float32, bf16 autocast, and bf16 autocast through ``torch.compile`` (the
``--compile`` option). The first steps warm up, and for the compiled model
they include the compilation, which is reported on its own. Results go to
stdout as JSON.

    python -m experiments.bench_train --steps 8
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from typing import Any

import torch
from torch import nn

from experiments.train import build_optimizer, train_step
from splitnet.model import ARCHITECTURES, build_model

_LOGGER = logging.getLogger(__name__)

CONFIGS = ("fp32", "bf16", "bf16-compile")
TRAIN_IMAGES = 45_000  # training images per CIFAR epoch once validation is held out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m experiments.bench_train", description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="cifar_resnet18", choices=ARCHITECTURES)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per configuration (default: 8)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before them (default: 2)")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated subset of {', '.join(CONFIGS)}")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: all cores)")
    return parser.parse_args(argv)


def time_config(config: str, args: argparse.Namespace) -> dict[str, Any]:
    """Time ``args.steps`` training steps of a fresh model in one configuration."""
    torch.manual_seed(0)
    model = build_model(args.arch, 10).to(memory_format=torch.channels_last)
    model.train()
    forward = torch.compile(model) if config.endswith("-compile") else model
    optimizer = build_optimizer(model.parameters(), lr=0.05, weight_decay=5e-4)
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    shape = (args.batch_size, 3, args.input_size, args.input_size)
    images = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (args.batch_size,))

    use_bf16 = config.startswith("bf16")

    started = time.perf_counter()
    for _ in range(args.warmup):
        train_step(forward, optimizer, criterion, images, labels, use_bf16)
    warmup_s = time.perf_counter() - started

    started = time.perf_counter()
    for _ in range(args.steps):
        train_step(forward, optimizer, criterion, images, labels, use_bf16)
    step_s = (time.perf_counter() - started) / args.steps

    return {
        "config": config,
        "step_s": step_s,
        "images_per_s": args.batch_size / step_s,
        "epoch_min": TRAIN_IMAGES / args.batch_size * step_s / 60,
        "warmup_s": warmup_s,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configs = [name.strip() for name in args.configs.split(",") if name.strip()]
    unknown = sorted(set(configs) - set(CONFIGS))
    if unknown or not configs:
        raise SystemExit(f"invalid --configs {args.configs!r}: use a comma-separated subset of {', '.join(CONFIGS)}")
    if args.steps < 1 or args.warmup < 1:
        raise SystemExit(f"invalid --steps {args.steps} or --warmup {args.warmup}: use 1 or more of each")
    if args.threads:
        torch.set_num_threads(args.threads)

    results = []
    for config in configs:
        _LOGGER.info("timing %s", config)
        results.append(time_config(config, args))

    summary = {
        "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
        "arch": args.arch,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "results": results,
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(main())
