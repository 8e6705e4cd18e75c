"""Smoke test of `python -m experiments.train` on the tiny ImageFolder tree, run in-process."""

from __future__ import annotations

import contextlib
import io
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from experiments.train import augmented_batches, main
from splitnet.checkpoint import load_checkpoint
from splitnet.data import NORMALIZATION, ImageSet

EPOCHS = 6

# The tiny tree has 24 training images. train.py holds out a tenth of them
# (2) for validation, so batches of 4 give 5 steps per epoch. With the peak
# learning rate of 0.01 the mean training loss of the last epoch was about a
# third of the first epoch's for each of three initial weight seeds. A peak
# of 0.05 made the loss jump above 10 in the middle epochs.
TRAIN_OPTIONS = [
    "--epochs", str(EPOCHS),
    "--batch-size", "4",
    "--lr", "0.01",
    "--val-size", "2",
    "--seed", "0",
    "--threads", "1",
    "--no-progress",
]

EXPECTED_METADATA_KEYS = {
    "arch", "num_classes", "class_names", "mean", "std", "input_size", "train_data", "train_images",
    "val_images", "seed", "epochs", "history", "val_accuracy", "test_accuracy", "test_images",
    "wall_time_s", "machine", "command", "fingerprint", "initialized_from", "weight_averaging",
}


@dataclass
class TrainRun:
    data: Path
    run_dir: Path
    output: Path
    stdout: str
    elapsed_s: float


def run_train(
    data: Path,
    run_dir: Path,
    output: Path,
    extra_options: tuple[str, ...] = (),
    global_seed: int = 0,
) -> TrainRun:
    """Run ``experiments.train.main`` and capture its stdout and wall time.

    main() sets torch's global thread count from --threads, so this restores
    it afterwards. ``extra_options`` override TRAIN_OPTIONS. main() runs
    with torch's global generator seeded with ``global_seed``, inside
    fork_rng so that the seed does not leak into other tests.
    """
    argv = [
        "--data", str(data),
        "--data-root", str(run_dir.parent / "data_root"),
        "--run-dir", str(run_dir),
        "--output", str(output),
        *TRAIN_OPTIONS,
        *extra_options,
    ]
    threads = torch.get_num_threads()
    stdout = io.StringIO()
    started = time.monotonic()
    try:
        with torch.random.fork_rng(), contextlib.redirect_stdout(stdout):
            # main() seeds the initial weights from --seed; a different
            # global seed here proves that it does.
            torch.manual_seed(global_seed)
            exit_code = main(argv)
    finally:
        torch.set_num_threads(threads)
    elapsed_s = time.monotonic() - started

    assert exit_code == 0
    return TrainRun(data, run_dir, output, stdout.getvalue(), elapsed_s)


@pytest.fixture(scope="module")
def trained(tiny_image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainRun:
    base = tmp_path_factory.mktemp("train")
    return run_train(tiny_image_folder, base / "run", base / "output" / "tiny.pt")


@pytest.fixture(scope="module")
def metadata(trained: TrainRun) -> dict[str, Any]:
    return load_checkpoint(trained.output).metadata


def test_train_writes_files(trained: TrainRun) -> None:
    assert trained.output.is_file()
    assert trained.output.with_suffix(".md").is_file()
    assert (trained.run_dir / "last.pt").is_file()


def test_train_metadata_keys(metadata: dict[str, Any]) -> None:
    assert set(metadata) == EXPECTED_METADATA_KEYS


def test_train_metadata_values(metadata: dict[str, Any], tiny_image_folder: Path) -> None:
    mean, std = NORMALIZATION["imagenet"]

    assert metadata["arch"] == "cifar_resnet18"
    assert metadata["num_classes"] == 3
    assert metadata["class_names"] == sorted(child.name for child in (tiny_image_folder / "train").iterdir())
    assert metadata["input_size"] == 32
    assert metadata["mean"] == list(mean)
    assert metadata["std"] == list(std)
    assert metadata["train_images"] == 22
    assert metadata["val_images"] == 2
    assert metadata["test_images"] == 6
    assert metadata["epochs"] == EPOCHS
    assert len(metadata["history"]) == EPOCHS
    assert 0.0 <= metadata["test_accuracy"] <= 1.0


def test_train_loss_decreases(metadata: dict[str, Any]) -> None:
    losses = [entry["loss"] for entry in metadata["history"]]

    assert losses[-1] < losses[0]


def test_train_model_card(trained: TrainRun, metadata: dict[str, Any]) -> None:
    card = trained.output.with_suffix(".md").read_text()

    assert metadata["fingerprint"] in card
    assert metadata["command"] in card


def test_train_stdout_summary(trained: TrainRun, metadata: dict[str, Any]) -> None:
    summary = json.loads(trained.stdout)

    assert summary["fingerprint"] == metadata["fingerprint"]
    assert summary["test_accuracy"] == metadata["test_accuracy"]


def test_train_resume_finished_run(trained: TrainRun, metadata: dict[str, Any]) -> None:
    # A second output path in the same run directory leaves the first
    # checkpoint untouched for the other tests.
    resumed = run_train(trained.data, trained.run_dir, trained.output.with_name("resumed.pt"))
    resumed_metadata = load_checkpoint(resumed.output).metadata

    # The finished run only evaluates and saves again. It trains no step, so
    # the weights, the history and the recorded training time stay the same.
    assert resumed_metadata["history"] == metadata["history"]
    assert resumed_metadata["fingerprint"] == metadata["fingerprint"]
    assert resumed_metadata["wall_time_s"] == metadata["wall_time_s"]
    assert resumed.elapsed_s < trained.elapsed_s / 2


def test_train_seed_reproducible(tiny_image_folder: Path, tmp_path: Path) -> None:
    one_epoch = ("--epochs", "1")
    # Both runs pass --seed 0, so only the global generator differs.
    first = run_train(tiny_image_folder, tmp_path / "first", tmp_path / "first.pt", one_epoch, global_seed=1)
    second = run_train(tiny_image_folder, tmp_path / "second", tmp_path / "second.pt", one_epoch, global_seed=2)

    assert load_checkpoint(first.output).fingerprint == load_checkpoint(second.output).fingerprint


def test_train_extends_finished_run(tiny_image_folder: Path, tmp_path: Path) -> None:
    # A finished one-epoch run, rerun with --epochs 2, re-plans its
    # schedule and trains one more epoch from where it stopped.
    first = run_train(tiny_image_folder, tmp_path / "run", tmp_path / "one.pt", ("--epochs", "1"))
    second = run_train(tiny_image_folder, tmp_path / "run", tmp_path / "two.pt", ("--epochs", "2"))

    one = load_checkpoint(first.output).metadata
    two = load_checkpoint(second.output).metadata
    assert [entry["epoch"] for entry in two["history"]] == [1, 2]
    assert two["history"][0] == one["history"][0]
    assert two["fingerprint"] != one["fingerprint"]


def test_train_rejects_shorter_rerun(tiny_image_folder: Path, tmp_path: Path) -> None:
    run_train(tiny_image_folder, tmp_path / "run", tmp_path / "two.pt", ("--epochs", "2"))
    with pytest.raises(SystemExit, match="raise --epochs"):
        run_train(tiny_image_folder, tmp_path / "run", tmp_path / "one.pt", ("--epochs", "1"))


def test_train_from_pretrained_file(tiny_image_folder: Path, tmp_path: Path) -> None:
    from torchvision.models import resnet18

    torch.manual_seed(3)
    weights = tmp_path / "imagenet_resnet18.pth"
    torch.save(resnet18().state_dict(), weights)

    run = run_train(tiny_image_folder, tmp_path / "run", tmp_path / "tuned.pt", ("--epochs", "1", "--pretrained", str(weights)))
    assert load_checkpoint(run.output).metadata["epochs"] == 1


def test_train_from_checkpoint(trained: TrainRun, tiny_image_folder: Path, tmp_path: Path) -> None:
    source = load_checkpoint(trained.output).metadata
    run = run_train(
        tiny_image_folder, tmp_path / "run", tmp_path / "second.pt", ("--epochs", "1", "--init-checkpoint", str(trained.output))
    )
    metadata = load_checkpoint(run.output).metadata

    assert metadata["initialized_from"]["fingerprint"] == source["fingerprint"]
    assert source["fingerprint"] in run.output.with_suffix(".md").read_text()
    assert metadata["history"][0]["loss"] < source["history"][0]["loss"]


@pytest.fixture(scope="module")
def averaged(tiny_image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainRun:
    base = tmp_path_factory.mktemp("averaged")
    return run_train(tiny_image_folder, base / "run", base / "averaged.pt", ("--epochs", "3", "--swa-epochs", "2"))


def test_averaging_metadata(averaged: TrainRun) -> None:
    metadata = load_checkpoint(averaged.output).metadata

    assert metadata["weight_averaging"]["snapshots"] == 2
    assert metadata["weight_averaging"]["epochs"] == 2
    assert metadata["weight_averaging"]["lr"] == 0.02
    assert metadata["weight_averaging"]["last_iterate_val_accuracy"] == metadata["history"][-1]["val_accuracy"]
    assert [entry["epoch"] for entry in metadata["history"]] == [1, 2, 3]
    assert 0.0 <= metadata["val_accuracy"] <= 1.0
    assert "| weight averaging | the last 2 epochs" in averaged.output.with_suffix(".md").read_text()


def test_averaging_changes_weights(averaged: TrainRun, tiny_image_folder: Path, tmp_path: Path) -> None:
    # The same three epochs without averaging end on other weights.
    plain = run_train(tiny_image_folder, tmp_path / "run", tmp_path / "plain.pt", ("--epochs", "3"))

    assert load_checkpoint(plain.output).metadata["weight_averaging"] is None
    assert load_checkpoint(plain.output).fingerprint != load_checkpoint(averaged.output).fingerprint


def test_averaging_rerun_same_weights(averaged: TrainRun) -> None:
    # Rerunning a finished run recomputes the batch-norm statistics with the
    # same seeded batches, so the checkpoint is the same.
    options = ("--epochs", "3", "--swa-epochs", "2")
    resumed = run_train(averaged.data, averaged.run_dir, averaged.output.with_name("again.pt"), options)

    assert load_checkpoint(resumed.output).fingerprint == load_checkpoint(averaged.output).fingerprint


def test_averaging_only_run(averaged: TrainRun, tiny_image_folder: Path, tmp_path: Path) -> None:
    # --swa-epochs equal to --epochs runs no one-cycle schedule at all.
    options = ("--epochs", "2", "--swa-epochs", "2", "--init-checkpoint", str(averaged.output))
    run = run_train(tiny_image_folder, tmp_path / "run", tmp_path / "swa_only.pt", options)
    metadata = load_checkpoint(run.output).metadata

    assert metadata["weight_averaging"]["snapshots"] == 2
    assert metadata["initialized_from"]["fingerprint"] == load_checkpoint(averaged.output).fingerprint


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--epochs", "2", "--swa-epochs", "3"), "invalid --swa-epochs 3: use 0 to --epochs 2"),
        (("--epochs", "2", "--swa-epochs", "-1"), "invalid --swa-epochs -1"),
        (("--epochs", "2", "--swa-epochs", "1", "--swa-lr", "0"), "invalid --swa-lr 0.0"),
    ],
)
def test_rejects_bad_averaging_options(
    tiny_image_folder: Path, tmp_path: Path, options: tuple[str, ...], message: str
) -> None:
    with pytest.raises(SystemExit, match=re.escape(message)):
        run_train(tiny_image_folder, tmp_path / "run", tmp_path / "bad.pt", options)


def test_rejects_other_averaging_resume(averaged: TrainRun, tmp_path: Path) -> None:
    output = tmp_path / "other.pt"
    with pytest.raises(SystemExit, match="was written with --swa-epochs 2 --swa-lr 0.02"):
        run_train(averaged.data, averaged.run_dir, output, ("--epochs", "3", "--swa-epochs", "1"))
    with pytest.raises(SystemExit, match="has begun its weight-averaging epochs"):
        run_train(averaged.data, averaged.run_dir, output, ("--epochs", "4", "--swa-epochs", "2"))


def test_augmented_batches_cover_images() -> None:
    # Each image gets a distinct constant value, which survives cropping at
    # the centre pixel and flipping, so the batches can be traced back.
    count = 10
    images = torch.arange(count, dtype=torch.uint8).view(count, 1, 1, 1).expand(count, 3, 32, 32).contiguous()
    image_set = ImageSet(images, torch.zeros(count, dtype=torch.long), ["only"], "synthetic")
    batches = list(augmented_batches(image_set, 4, torch.Generator().manual_seed(0), (0.0,) * 3, (1 / 255,) * 3))

    assert [batch.shape[0] for batch in batches] == [4, 4, 2]
    assert all(batch.is_contiguous(memory_format=torch.channels_last) for batch in batches)
    centres = torch.cat([batch[:, 0, 16, 16] for batch in batches]).round().long()
    assert sorted(centres.tolist()) == list(range(count))
    assert centres.tolist() != list(range(count))


def test_averaging_recomputes_batch_norm(averaged: TrainRun) -> None:
    # The recomputation counts one batch per 4 of the 22 training images.
    # Without it the averaged copy keeps the count of the untrained model, 0.
    model = load_checkpoint(averaged.output).model

    assert int(model.bn1.num_batches_tracked) == 6
    assert int(model.layer4[1].bn2.num_batches_tracked) == 6


@pytest.mark.slow
def test_train_compiled_matches_eager(
    tiny_image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The compiled steps use other kernels than the eager ones, so the two
    # runs agree closely, not bit for bit: the epoch losses differed by 0.4%
    # and 0.8% on the development machine. The checkpoint loads, so its keys
    # are the plain model's and not those of the compiled wrapper.
    compiled_modules = []
    real_compile = torch.compile

    def recording_compile(module: torch.nn.Module) -> Any:
        compiled_modules.append(module)
        return real_compile(module)

    options = ("--epochs", "2")
    eager = run_train(tiny_image_folder, tmp_path / "eager", tmp_path / "eager.pt", options)
    monkeypatch.setattr(torch, "compile", recording_compile)
    compiled = run_train(tiny_image_folder, tmp_path / "compiled", tmp_path / "compiled.pt", (*options, "--compile"))

    assert len(compiled_modules) == 1

    eager_losses = [entry["loss"] for entry in load_checkpoint(eager.output).metadata["history"]]
    compiled_losses = [entry["loss"] for entry in load_checkpoint(compiled.output).metadata["history"]]
    assert compiled_losses == pytest.approx(eager_losses, rel=0.03)
    assert "--compile" in load_checkpoint(compiled.output).metadata["command"]
