"""The training-speed benchmark, on tiny batches."""

from __future__ import annotations

import contextlib
import io
import json
import re

import pytest
import torch

from experiments.bench_train import main


def run_bench(*options: str) -> dict:
    threads = torch.get_num_threads()
    stdout = io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout):
            assert main(["--threads", "1", *options]) == 0
    finally:
        torch.set_num_threads(threads)
    return json.loads(stdout.getvalue())


def test_bench_train_reports_each_config() -> None:
    summary = run_bench("--configs", "fp32,bf16", "--batch-size", "4", "--steps", "2", "--warmup", "1")

    assert [result["config"] for result in summary["results"]] == ["fp32", "bf16"]
    for result in summary["results"]:
        assert result["step_s"] > 0
        assert result["images_per_s"] == pytest.approx(4 / result["step_s"])
        assert result["epoch_min"] == pytest.approx(45_000 / 4 * result["step_s"] / 60)
    assert summary["batch_size"] == 4


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--configs", "fp16"), "invalid --configs 'fp16'"),
        (("--configs", ","), "invalid --configs ','"),
        (("--steps", "0"), "invalid --steps 0"),
        (("--warmup", "0"), "--warmup 0"),
    ],
)
def test_bench_train_rejects_bad_options(options: tuple[str, ...], message: str) -> None:
    with pytest.raises(SystemExit, match=re.escape(message)):
        run_bench(*options)
