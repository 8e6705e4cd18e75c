"""Edge client pieces: batching by size, retries on UNAVAILABLE, image selection and the summary."""

from __future__ import annotations

import logging
import socket
import threading

import grpc
import pytest
import torch

from cloud_server.server import build_server
from cloud_server.service import SplitInferenceService
from edge_client.client import GRPC_MESSAGE_PREFIX_BYTES, InferenceClient, InferenceError
from edge_client.pipeline import model_labels, select_images
from edge_client.summary import RunRecord, build_summary, mean_p50_p95
from splitnet.data import ImageSet
from tests.grpc_fixtures import (  # noqa: F401 - fixtures
    SPLIT,
    bitstreams,
    edge_model,
    sample_images,
    slow_engine,
    tiny_checkpoint,
)


def free_port() -> int:
    """Return a loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def offline_client() -> InferenceClient:
    """Return a client whose channel is never used to connect."""
    client = InferenceClient(grpc.insecure_channel("127.0.0.1:9"), "f" * 64, SPLIT, max_message_bytes=1000)
    yield client
    client.close()


def test_split_batch_limits_images(offline_client):
    chunks = offline_client.split_batch([b"x" * 10] * 7, max_images=3)

    assert [len(chunk) for chunk in chunks] == [3, 3, 1]


def test_split_batch_limits_bytes(offline_client):
    # A request of n 280-byte bitstreams takes 101 + 283 * n bytes with the gRPC prefix, so 3 fit in 1000.
    data = [bytes([index]) * 280 for index in range(7)]

    chunks = offline_client.split_batch(data, max_images=100)
    sizes = [offline_client.make_request(chunk).ByteSize() + GRPC_MESSAGE_PREFIX_BYTES for chunk in chunks]
    one_more = offline_client.make_request(chunks[0] + chunks[1][:1]).ByteSize() + GRPC_MESSAGE_PREFIX_BYTES

    assert [len(chunk) for chunk in chunks] == [3, 3, 1]
    assert max(sizes) <= 1000
    assert one_more > 1000
    assert [item for chunk in chunks for item in chunk] == data


def test_split_batch_oversized_alone(offline_client):
    chunks = offline_client.split_batch([b"a" * 10, b"b" * 5000, b"c" * 10], max_images=100)

    assert [len(chunk) for chunk in chunks] == [1, 1, 1]


def test_unreachable_server_retries(edge_model, bitstreams, caplog):
    address = f"127.0.0.1:{free_port()}"
    client = InferenceClient.connect(address, edge_model.fingerprint, SPLIT, retries=2, backoff_s=0.01)

    with client, caplog.at_level(logging.WARNING, logger="edge_client.client"):
        with pytest.raises(InferenceError) as caught:
            client.classify(bitstreams[:1])

    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert client.retry_count == 2
    assert "retry 1 of 2" in caplog.text
    assert "retry 2 of 2" in caplog.text


def test_non_retryable_status_fails_at_once(edge_model, bitstreams, slow_engine):
    server, port = build_server(SplitInferenceService(slow_engine, max_batch=12), "127.0.0.1:0")
    server.start()
    client = InferenceClient.connect(f"127.0.0.1:{port}", "0" * 64, SPLIT, retries=3, backoff_s=0.01)

    with client:
        with pytest.raises(InferenceError) as caught:
            client.classify(bitstreams[:1])
    server.stop(None)

    assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert client.retry_count == 0


@pytest.mark.parametrize("stream", [False, True])
def test_late_server_retries_succeed(edge_model, bitstreams, slow_engine, stream):
    port = free_port()
    started: list[grpc.Server] = []

    def start_late() -> None:
        server, _ = build_server(SplitInferenceService(slow_engine, max_batch=12), f"127.0.0.1:{port}")
        server.start()
        started.append(server)

    timer = threading.Timer(0.3, start_late)
    timer.start()
    client = InferenceClient.connect(
        f"127.0.0.1:{port}", edge_model.fingerprint, SPLIT, retries=8, backoff_s=0.1, max_backoff_s=1.0
    )
    try:
        with client:
            if stream:
                batches = [bitstreams[:4], bitstreams[4:8], bitstreams[8:]]
                results = list(client.classify_stream(batches, timeout_s=30))
            else:
                results = [client.classify(bitstreams)]
    finally:
        timer.join()
        for server in started:
            server.stop(None)

    assert client.retry_count >= 1
    assert sum(len(result.predictions) for result in results) == len(bitstreams)


def test_stream_resumes_after_restart(edge_model, bitstreams, slow_engine):
    first, port = build_server(SplitInferenceService(slow_engine, max_batch=12), "127.0.0.1:0")
    first.start()
    servers = [first]
    first_answered = threading.Event()

    def batches():
        yield bitstreams[:4]
        # Replace the server while the stream is open, so the call fails with UNAVAILABLE.
        first_answered.wait(10)
        servers[0].stop(None).wait()
        second, _ = build_server(SplitInferenceService(slow_engine, max_batch=12), f"127.0.0.1:{port}")
        second.start()
        servers.append(second)
        yield bitstreams[4:8]
        yield bitstreams[8:]

    client = InferenceClient.connect(f"127.0.0.1:{port}", edge_model.fingerprint, SPLIT, retries=5, backoff_s=0.1)
    results = []
    try:
        with client:
            for result in client.classify_stream(batches(), timeout_s=30):
                results.append(result)
                first_answered.set()
    finally:
        for server in servers:
            server.stop(None)

    assert client.retry_count >= 1
    assert len(servers) == 2
    assert [len(result.predictions) for result in results] == [4, 4, 4]
    assert len({result.request_id for result in results}) == 3


def test_stream_source_error_raised(edge_model, bitstreams, slow_engine):
    server, port = build_server(SplitInferenceService(slow_engine, max_batch=12), "127.0.0.1:0")
    server.start()

    def batches():
        yield bitstreams[:2]
        raise RuntimeError("head failed")

    client = InferenceClient.connect(f"127.0.0.1:{port}", edge_model.fingerprint, SPLIT)
    with client:
        with pytest.raises(RuntimeError, match="head failed"):
            list(client.classify_stream(batches(), timeout_s=30))
    server.stop(None)


def test_mean_p50_p95_values():
    stats = mean_p50_p95(list(range(1, 101)))

    assert stats["mean"] == pytest.approx(50.5)
    assert stats["p50"] == pytest.approx(50.5)
    assert stats["p95"] == pytest.approx(95.05)


def test_mean_p50_p95_empty():
    assert mean_p50_p95([]) == {"mean": None, "p50": None, "p95": None}


def test_summary_bits_per_pixel():
    record = RunRecord()
    record.add_bitstreams([b"x" * 100, b"x" * 300])
    record.predictions.extend([1, 2])
    record.add_stage("head", 10.0, 2)

    summary = build_summary(record, [1, 0], input_pixels=32 * 32, wall_s=0.5, settings={"rpc": "Classify"})

    assert summary["bpp_mean"] == pytest.approx(200 * 8 / 1024)
    assert summary["bpp_p95"] == pytest.approx((100 + 0.95 * 200) * 8 / 1024)
    assert summary["accuracy"] == pytest.approx(0.5)
    assert summary["latency_ms"]["head"]["mean"] == pytest.approx(5.0)
    assert summary["images_per_second"] == pytest.approx(4.0)
    assert summary["rpc"] == "Classify"


def image_set(labels: list[int], class_names: list[str]) -> ImageSet:
    images = torch.arange(len(labels), dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 3, 2, 2).contiguous()
    return ImageSet(images, torch.tensor(labels), class_names, "memory")


def test_select_images_keeps_order():
    images = image_set([0] * 50 + [1] * 50, ["a", "b"])

    selected = select_images(images, 20, seed=0)
    positions = selected.images[:, 0, 0, 0].tolist()

    assert len(selected) == 20
    assert positions == sorted(positions)
    assert set(selected.labels.tolist()) == {0, 1}


def test_select_images_without_limit():
    images = image_set([0, 1, 1], ["a", "b"])

    assert select_images(images, None, seed=0) is images


def test_model_labels_reordered():
    images = image_set([0, 1, 1], ["b", "a"])

    assert model_labels(images, ["a", "b", "c"]) == [1, 0, 0]


def test_model_labels_unknown_class():
    images = image_set([0, 1], ["a", "z"])

    assert model_labels(images, ["a", "b"]) is None
