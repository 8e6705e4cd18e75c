"""``python -m cloud_server`` as a child process, driven by ``python -m edge_client``."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from cloud_server.process import ServerProcess, ServerProcessError
from edge_client.__main__ import main as edge_main
from edge_client.client import InferenceClient, InferenceError
from tests.grpc_fixtures import (  # noqa: F401 - fixtures
    SPLIT,
    bitstreams,
    edge_model,
    other_checkpoint,
    sample_images,
    tiny_checkpoint,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
SUMMARY_KEYS = (
    "images",
    "accuracy",
    "bpp_mean",
    "bpp_p50",
    "bpp_p95",
    "wire_bytes_per_image",
    "latency_ms",
    "images_per_second",
    "codec",
)


@pytest.fixture(scope="module")
def server_process(tiny_checkpoint, tmp_path_factory):
    """Run one server child process for the module's tests and stop it afterwards."""
    log_path = tmp_path_factory.mktemp("server_log") / "server.log"
    with log_path.open("w") as log, ServerProcess(tiny_checkpoint, SPLIT, stderr=log) as server:
        yield server


def run_edge_cli(capsys, arguments: list[str]) -> tuple[int, dict | None, str]:
    """Run ``python -m edge_client`` in this process and return its exit code, parsed stdout and stderr."""
    code = edge_main(arguments)
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out else None, captured.err


def edge_arguments(server: ServerProcess, checkpoint: Path, data: Path, *extra: str) -> list[str]:
    return [
        "--server", server.address,
        "--checkpoint", str(checkpoint),
        "--data", str(data),
        "--data-root", str(data),
        "--batch-size", "4",
        "--no-progress",
        *extra,
    ]  # fmt: skip


def test_process_classifies(server_process, edge_model, bitstreams):
    with InferenceClient.connect(server_process.address, edge_model.fingerprint, SPLIT) as client:
        result = client.classify(bitstreams)

    assert server_process.port > 0
    assert len(result.predictions) == len(bitstreams)
    assert all(prediction.class_name in edge_model.class_names for prediction in result.predictions)


@pytest.mark.parametrize("rpc", ["unary", "stream"])
def test_edge_cli_summary(server_process, tiny_checkpoint, tiny_image_folder, capsys, rpc):
    extra = ["--stream"] if rpc == "stream" else []

    code, summary, _ = run_edge_cli(capsys, edge_arguments(server_process, tiny_checkpoint, tiny_image_folder, *extra))

    assert code == 0
    for key in SUMMARY_KEYS:
        assert key in summary
    assert summary["images"] == 6
    assert summary["requests"] == 2
    assert summary["rpc"] == ("ClassifyStream" if rpc == "stream" else "Classify")
    assert 0 <= summary["accuracy"] <= 1
    assert summary["bpp_mean"] == pytest.approx(summary["bitstream_bytes_mean"] * 8 / (16 * 16))
    assert summary["wire_bytes_per_image"] > summary["bitstream_bytes_mean"]


def test_edge_cli_rpcs_agree(server_process, tiny_checkpoint, tiny_image_folder, capsys):
    arguments = edge_arguments(server_process, tiny_checkpoint, tiny_image_folder)

    _, unary, _ = run_edge_cli(capsys, arguments)
    _, stream, _ = run_edge_cli(capsys, [*arguments, "--stream"])

    assert unary["accuracy"] == stream["accuracy"]
    assert unary["bpp_mean"] == stream["bpp_mean"]


def test_edge_cli_wrong_checkpoint(server_process, other_checkpoint, tiny_image_folder, capsys):
    code, summary, stderr = run_edge_cli(capsys, edge_arguments(server_process, other_checkpoint, tiny_image_folder))

    assert code == 1
    assert summary is None
    assert "FAILED_PRECONDITION" in stderr
    assert "model fingerprint" in stderr


def test_process_stops_on_sigterm(tiny_checkpoint, edge_model, bitstreams, tmp_path):
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        server = ServerProcess(tiny_checkpoint, SPLIT, stderr=log)
        with server:
            with InferenceClient.connect(server.address, edge_model.fingerprint, SPLIT) as client:
                client.classify(bitstreams[:2])
        exit_code = server.process.returncode
    log_text = log_path.read_text()

    assert exit_code == 0
    assert "started SplitInference on 127.0.0.1:" in log_text
    assert "stopping" in log_text
    assert "stopped SplitInference" in log_text
    assert "succeeded 1" in log_text


def test_process_missing_checkpoint(tmp_path):
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        server = ServerProcess(tmp_path / "missing.pt", SPLIT, stderr=log, startup_timeout_s=60)
        with pytest.raises(ServerProcessError, match="exited with code 2"):
            server.start()
        server.stop()

    assert "checkpoint not found" in log_path.read_text()


def test_process_rejects_bad_call(server_process, edge_model):
    channel = grpc.insecure_channel(server_process.address)
    client = InferenceClient(channel, edge_model.fingerprint, SPLIT)

    with client, pytest.raises(InferenceError) as caught:
        client.classify([b"\x00" * 8])

    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
