"""End-to-end runs of `python -m experiments.sweep` on the tiny ImageFolder tree, in-process."""

from __future__ import annotations

import contextlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from codec import CodecConfig
from experiments import sweep
from experiments.measure import codec_accuracy
from experiments.plots import FIGURE_NAMES
from experiments.results import RESULTS_NAME
from splitnet.checkpoint import load_checkpoint, save_checkpoint
from splitnet.data import NORMALIZATION, load_split
from splitnet.model import SplitModel, build_model

SCHEMA_DOC = Path(__file__).resolve().parent.parent / "docs" / "results-schema.md"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Two modes x two keep ratios x one bit depth, with two fine-tuning steps
# at batch 4 on the 24 training images of the tiny tree (4 held out for
# validation) and short baseline and memory measurements.
SWEEP_OPTIONS = [
    "--modes", "global,region-wise",
    "--keep-ratios", "0.5,0.1",
    "--block-sizes", "4",
    "--bits", "2",
    "--finetune-steps", "2",
    "--batch-size", "4",
    "--val-size", "4",
    "--eval-every", "1",
    "--eval-batch-size", "8",
    "--jpeg-qualities", "10,90",
    "--webp-qualities", "10,90",
    "--memory-images", "1",
    "--timing-images", "2",
    "--plot-images", "4",
    "--seed", "0",
    "--threads", "1",
    "--no-progress",
]
SETTINGS = 4

# Python types of every record field that is never null in this run.
RECORD_TYPES: dict[str, type | tuple[type, ...]] = {
    "key": str, "mode": str, "keep_ratio": float, "block_size": int, "bits": int, "border": int,
    "test_images": int, "accuracy": float, "accuracy_finetuned": float, "feature_shape": list,
    "bytes_mean": float, "bpp_mean": float, "bpp_p50": float, "bpp_p95": float, "bound_bpp_mean": float,
    "bits_mean": dict, "kept_blocks_mean": float, "kept_unit_fraction_mean": float,
    "compression_ratio_float32": float, "compression_ratio_rgb": float, "zstd19_bpp_mean": float,
    "decode_matches_simulate": bool, "finetune": dict, "timing": dict, "memory": dict,
}


@dataclass
class SweepRun:
    out: Path
    stdout: str

    @property
    def document(self) -> dict[str, Any]:
        return json.loads((self.out / RESULTS_NAME).read_text())

    @property
    def summary(self) -> dict[str, Any]:
        return json.loads(self.stdout)


def run_sweep(checkpoint: Path, data: Path, out: Path, *extra: str) -> SweepRun:
    """Run ``experiments.sweep.main`` and capture stdout, restoring torch's thread count and random state."""
    argv = [
        "--checkpoint", str(checkpoint),
        "--data", str(data),
        "--data-root", str(out.parent / "data_root"),
        "--out", str(out),
        "--save-finetuned", str(out / "checkpoints"),
        *SWEEP_OPTIONS,
        *extra,
    ]
    threads = torch.get_num_threads()
    stdout = io.StringIO()
    try:
        with torch.random.fork_rng(), contextlib.redirect_stdout(stdout):
            assert sweep.main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    return SweepRun(out, stdout.getvalue())


def documented_fields(heading: str) -> set[str]:
    """Return the backticked field names in the first column of the first table after ``heading`` in the schema doc."""
    lines = SCHEMA_DOC.read_text().splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith(heading))
    fields: set[str] = set()
    in_table = False
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            in_table = True
            first_cell = line.split("|")[1]
            fields.update(re.findall(r"`([A-Za-z0-9_.]+)`", first_cell))
        elif in_table:
            break
    return fields


def without_volatile(value: Any) -> Any:
    """Drop the fields that may differ between identical runs: times, memory, provenance and the output paths."""
    if isinstance(value, dict):
        return {key: without_volatile(item) for key, item in value.items()
                if key not in ("timing", "memory", "provenance", "save_finetuned")}
    if isinstance(value, list):
        return [without_volatile(item) for item in value]
    return value


@pytest.fixture(scope="module")
def tiny_checkpoint(tiny_image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Save an untrained 3-class CIFAR ResNet-18 with fixed weights as a checkpoint."""
    path = tmp_path_factory.mktemp("sweep_checkpoint") / "tiny.pt"
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model("cifar_resnet18", 3)
    mean, std = NORMALIZATION["imagenet"]
    class_names = sorted(child.name for child in (tiny_image_folder / "train").iterdir())
    save_checkpoint(path, model, {"arch": "cifar_resnet18", "num_classes": 3, "class_names": class_names,
                                  "mean": list(mean), "std": list(std), "input_size": 32})
    return path


@pytest.fixture(scope="module")
def interrupted(tiny_checkpoint: Path, tiny_image_folder: Path,
                tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Interrupt a sweep during its third setting; return the output folder and the results left behind."""
    out = tmp_path_factory.mktemp("sweep_resumed") / "out"
    measure_setting = sweep.evaluate_setting
    calls = []

    def interrupt_third(context: sweep.SweepContext, config: CodecConfig) -> dict[str, Any]:
        calls.append(config)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return measure_setting(context, config)

    with pytest.MonkeyPatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(sweep, "evaluate_setting", interrupt_third)
        run_sweep(tiny_checkpoint, tiny_image_folder, out)
    return out, json.loads((out / RESULTS_NAME).read_text())


@pytest.fixture(scope="module")
def resumed(interrupted: tuple[Path, dict[str, Any]], tiny_checkpoint: Path, tiny_image_folder: Path) -> SweepRun:
    """Rerun the interrupted sweep with the same output folder."""
    out, _ = interrupted
    return run_sweep(tiny_checkpoint, tiny_image_folder, out)


@pytest.fixture(scope="module")
def uninterrupted(tiny_checkpoint: Path, tiny_image_folder: Path,
                  tmp_path_factory: pytest.TempPathFactory) -> SweepRun:
    """Run the same sweep in one go into another folder."""
    return run_sweep(tiny_checkpoint, tiny_image_folder, tmp_path_factory.mktemp("sweep_fresh") / "out")


def test_sweep_interrupt_keeps_finished(interrupted: tuple[Path, dict[str, Any]]) -> None:
    _, document = interrupted

    assert len(document["records"]) == 2
    assert document["baselines"] is not None


def test_sweep_resume_skips_finished(interrupted: tuple[Path, dict[str, Any]], resumed: SweepRun) -> None:
    _, before = interrupted
    after = {record["key"]: record for record in resumed.document["records"]}

    assert resumed.summary["measured"] == SETTINGS - 2
    assert resumed.summary["resumed"] == 2
    assert len(after) == SETTINGS
    # Skipped settings keep their records byte for byte, timings included.
    for record in before["records"]:
        assert after[record["key"]] == record


def test_sweep_rerun_measures_nothing(resumed: SweepRun, tiny_checkpoint: Path, tiny_image_folder: Path) -> None:
    records = resumed.document["records"]

    rerun = run_sweep(tiny_checkpoint, tiny_image_folder, resumed.out)

    assert rerun.summary["measured"] == 0
    assert rerun.summary["resumed"] == SETTINGS
    assert rerun.document["records"] == records


def test_sweep_same_seed_same_figures(resumed: SweepRun, uninterrupted: SweepRun) -> None:
    assert without_volatile(resumed.document) == without_volatile(uninterrupted.document)


def test_sweep_other_config_rejected(resumed: SweepRun, tiny_checkpoint: Path, tiny_image_folder: Path) -> None:
    with pytest.raises(SystemExit, match="another configuration"):
        run_sweep(tiny_checkpoint, tiny_image_folder, resumed.out, "--seed", "1")


def test_sweep_top_level_schema(uninterrupted: SweepRun) -> None:
    document = uninterrupted.document

    assert set(document) == documented_fields("## Top level")
    assert set(document["config"]) == documented_fields("## `config`")
    assert set(document["provenance"]) == documented_fields("## `provenance`") - {"resumed_at"}
    assert document["schema_version"] == 1
    assert document["config"]["test_images"] == 6
    assert document["config"]["train_images"] == 20
    assert document["config"]["val_images"] == 4


def test_sweep_baselines_schema(uninterrupted: SweepRun) -> None:
    baselines = uninterrupted.document["baselines"]
    documented = documented_fields("## `baselines`")
    coded_fields = documented_fields("Each `input_coding` object")

    assert {f"whole_model.{key}" for key in baselines["whole_model"]} <= documented
    assert {f"uncompressed_split.{key}" for key in baselines["uncompressed_split"]} <= documented
    assert [(row["format"], row["quality"]) for row in baselines["input_coding"]] == [
        ("jpeg", 10), ("jpeg", 90), ("webp", 10), ("webp", 90)]
    for row in baselines["input_coding"]:
        assert set(row) == coded_fields
        assert 0.0 <= row["accuracy"] <= 1.0
        assert row["bpp_mean"] > 0
    jpeg_low, jpeg_high = baselines["input_coding"][:2]
    assert jpeg_low["bpp_mean"] < jpeg_high["bpp_mean"]
    assert 0 < jpeg_low["payload_bpp_mean"] < jpeg_low["bpp_mean"]
    assert baselines["uncompressed_split"]["bpp"] == 64 * 32 * 32 * 32 / (32 * 32)


def test_sweep_record_schema(uninterrupted: SweepRun) -> None:
    records = uninterrupted.document["records"]
    documented = documented_fields("## `records[]`")

    assert len(records) == SETTINGS
    assert [record["key"] for record in records] == [
        "region-wise/keep=0.5/block=4/bits=2", "region-wise/keep=0.1/block=4/bits=2",
        "global/keep=0.5/block=4/bits=2", "global/keep=0.1/block=4/bits=2",
    ]
    for record in records:
        assert set(record) == documented
        for field, expected_type in RECORD_TYPES.items():
            assert isinstance(record[field], expected_type), f"{record['key']}: {field} is {record[field]!r}"
        assert record["finetuned_codec"] is None
        assert set(record["finetune"]) == documented_fields("`finetune`:")
        assert set(record["timing"]) == documented_fields("`timing`")
        assert set(record["memory"]) == documented_fields("`memory`")
        assert set(record["bits_mean"]) == {"total", "header", "tables", "positions", "values", "bound",
                                            "value_entropy", "position_bound"}


def test_sweep_record_figures(uninterrupted: SweepRun) -> None:
    for record in uninterrupted.document["records"]:
        bits = record["bits_mean"]
        assert record["decode_matches_simulate"] is True
        assert 0.0 <= record["accuracy"] <= 1.0
        assert record["bpp_mean"] == pytest.approx(bits["total"] / (32 * 32))
        assert bits["total"] == pytest.approx(bits["header"] + bits["tables"] + bits["positions"] + bits["values"])
        assert record["compression_ratio_float32"] == pytest.approx(64 * 32 * 32 * 4 / record["bytes_mean"])
        assert record["compression_ratio_rgb"] == pytest.approx(32 * 32 * 3 / record["bytes_mean"])
        assert record["kept_unit_fraction_mean"] == pytest.approx(record["keep_ratio"], abs=0.02)
        assert record["memory"]["encoder_traced_peak_bytes"] > 0
        assert record["timing"]["encode_ms_mean"] > 0


def test_sweep_lower_keep_fewer_bits(uninterrupted: SweepRun) -> None:
    by_key = {record["key"]: record for record in uninterrupted.document["records"]}

    for mode in ("global", "region-wise"):
        assert by_key[f"{mode}/keep=0.1/block=4/bits=2"]["bpp_mean"] < by_key[f"{mode}/keep=0.5/block=4/bits=2"]["bpp_mean"]


def test_sweep_figures_are_png(uninterrupted: SweepRun) -> None:
    for name in FIGURE_NAMES:
        data = (uninterrupted.out / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE), name
        assert len(data) > 1000, name
    assert [Path(path).name for path in uninterrupted.summary["figures"]] == list(FIGURE_NAMES)


def test_sweep_summary_table(uninterrupted: SweepRun) -> None:
    summary = (uninterrupted.out / "summary.md").read_text()

    for record in uninterrupted.document["records"]:
        assert f"| {record['mode']} | {record['keep_ratio']:g} | 4 | 2 |" in summary
    assert "## Baselines" in summary
    assert "| JPEG quality 10 |" in summary


def test_sweep_finetuned_checkpoints(uninterrupted: SweepRun, tiny_image_folder: Path) -> None:
    test_set = load_split(str(tiny_image_folder), "test", 32, progress=False)
    paths = [Path(path) for path in uninterrupted.summary["finetuned_checkpoints"]]

    assert len(paths) == SETTINGS
    for record in uninterrupted.document["records"]:
        path = uninterrupted.out / "checkpoints" / record["finetune"]["checkpoint"]
        loaded = load_checkpoint(path)
        codec = loaded.metadata["codec"]
        config = CodecConfig(codec["mode"], codec["keep_ratio"], codec["block_size"], codec["bits"], codec["border"])
        accuracy = codec_accuracy(SplitModel(loaded.model, loaded.metadata["split"]), test_set, config,
                                  tuple(loaded.metadata["mean"]), tuple(loaded.metadata["std"]), 8)

        assert path in paths
        assert loaded.fingerprint == record["finetune"]["fingerprint"]
        assert (codec["mode"], codec["keep_ratio"]) == (record["mode"], record["keep_ratio"])
        assert loaded.metadata["finetune"]["selected_step"] == record["finetune"]["selected_step"]
        assert accuracy == record["accuracy_finetuned"]


def test_sweep_unknown_mode(tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        sweep.parse_args(["--checkpoint", str(tiny_checkpoint), "--data", "x", "--out", str(tmp_path),
                          "--modes", "global,diagonal"])

    assert raised.value.code == 2
    assert "invalid mode 'diagonal'" in capsys.readouterr().err


def test_sweep_missing_checkpoint(tiny_image_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="checkpoint not found"):
        sweep.main(["--checkpoint", str(tmp_path / "missing.pt"), "--data", str(tiny_image_folder),
                    "--out", str(tmp_path / "out"), "--no-progress"])


def test_sweep_subset_too_large(tiny_checkpoint: Path, tiny_image_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="--subset 7 exceeds the 6 test images"):
        sweep.main(["--checkpoint", str(tiny_checkpoint), "--data", str(tiny_image_folder),
                    "--data-root", str(tmp_path / "data_root"), "--out", str(tmp_path / "out"), "--subset", "7",
                    "--no-progress"])
