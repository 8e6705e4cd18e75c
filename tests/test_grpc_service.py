"""SplitInference on a real in-process server: predictions, status codes, limits and abandoned calls."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import grpc
import pytest
import torch
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from cloud_server.server import DEFAULT_MAX_MESSAGE_BYTES, SERVICE_NAME
from codec import CodecConfig, encode, encode_batch, simulate
from edge_client.client import GRPC_MESSAGE_PREFIX_BYTES, InferenceClient
from edge_client.model import EdgeModel
from sparsesplit.v1 import bitstream_pb2, service_pb2
from tests.grpc_fixtures import (  # noqa: F401 - fixtures
    CODEC,
    SPLIT,
    HeldStream,
    RunningServer,
    bitstreams,
    classify_request,
    edge_model,
    grpc_server,
    random_maps,
    slow_engine,
    start_server,
    sample_images,
    tiny_checkpoint,
)

TIMEOUT_S = 20.0
# Dense coding of every element at 8 bits: the largest bitstreams the codec writes.
DENSE = CodecConfig(mode="global", keep_ratio=1.0, block_size=1, bits=8, border=0)


@torch.no_grad()
def reference_predictions(model: EdgeModel, images: torch.Tensor, config: CodecConfig) -> torch.Tensor:
    """Return the softmax probabilities of the head, ``codec.simulate`` and the tail, all in-process."""
    decoded = simulate(model.head(images), config)
    return torch.softmax(model.model.tail(decoded), dim=1)


def with_crc_flipped(data: bytes) -> bytes:
    outer = bitstream_pb2.FeatureBitstream.FromString(data)
    outer.crc32 ^= 1
    return outer.SerializeToString()


def with_version(data: bytes, version: int) -> bytes:
    outer = bitstream_pb2.FeatureBitstream.FromString(data)
    outer.version = version
    return outer.SerializeToString()


def wrong_shape_bitstream() -> bytes:
    return encode(random_maps(1, (3, 5, 7), seed=0)[0], CODEC)


# Each case: a function of (fingerprint, good bitstreams) that builds the
# request, the expected status code and a fragment of its details.
BAD_REQUESTS: dict[str, tuple[Callable[[str, list[bytes]], service_pb2.ClassifyRequest], grpc.StatusCode, str]] = {
    "garbage_bytes": (
        lambda fingerprint, good: classify_request(fingerprint, [good[0], b"\xff" * 16]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "image 1: not a FeatureBitstream",
    ),
    "wrong_shape": (
        lambda fingerprint, good: classify_request(fingerprint, [good[0], good[1], wrong_shape_bitstream()]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "image 2: bitstream contains a map of shape (3, 5, 7), expected (64, 16, 16)",
    ),
    "flipped_crc": (
        lambda fingerprint, good: classify_request(fingerprint, [with_crc_flipped(good[0])]),
        grpc.StatusCode.DATA_LOSS,
        "image 0: CRC-32 mismatch",
    ),
    "wrong_fingerprint": (
        lambda fingerprint, good: classify_request("0" * 64, good[:2]),
        grpc.StatusCode.FAILED_PRECONDITION,
        "model fingerprint '" + "0" * 64,
    ),
    "wrong_split": (
        lambda fingerprint, good: classify_request(fingerprint, good[:2], split="layer2"),
        grpc.StatusCode.FAILED_PRECONDITION,
        "split point 'layer2' differs from the server's 'layer1'",
    ),
    "version_2": (
        lambda fingerprint, good: classify_request(fingerprint, [good[0], with_version(good[1], 2)]),
        grpc.StatusCode.FAILED_PRECONDITION,
        "image 1: bitstream format version 2 is not supported",
    ),
    "empty_batch": (
        lambda fingerprint, good: classify_request(fingerprint, []),
        grpc.StatusCode.INVALID_ARGUMENT,
        "contains no bitstreams",
    ),
    "empty_request_id": (
        lambda fingerprint, good: classify_request(fingerprint, good[:1], request_id=""),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid request_id ''",
    ),
    "request_id_with_space": (
        lambda fingerprint, good: classify_request(fingerprint, good[:1], request_id="a b"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid request_id 'a b'",
    ),
    "too_many_images": (
        lambda fingerprint, good: classify_request(fingerprint, good + good[:1]),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "contains 13 images, but this server accepts at most 12",
    ),
}


def assert_serves(server: RunningServer, fingerprint: str, good: list[bytes]) -> None:
    """Assert that a valid request on ``server`` succeeds."""
    response = server.stub.Classify(classify_request(fingerprint, good[:2], "next-good"), timeout=TIMEOUT_S)
    assert response.request_id == "next-good"
    assert len(response.predictions) == 2


def test_classify_matches_in_process(grpc_server, edge_model, sample_images, bitstreams):
    response = grpc_server.stub.Classify(
        classify_request(edge_model.fingerprint, bitstreams, "match-1"), timeout=TIMEOUT_S
    )
    expected = reference_predictions(edge_model, sample_images, CODEC)
    top_probabilities, top_indices = expected.topk(3, dim=1)

    assert response.request_id == "match-1"
    assert len(response.predictions) == len(sample_images)
    for image, prediction in enumerate(response.predictions):
        assert prediction.class_index == int(expected[image].argmax())
        assert prediction.class_name == edge_model.class_names[prediction.class_index]
        assert [entry.class_index for entry in prediction.top5] == top_indices[image].tolist()
        assert [entry.probability for entry in prediction.top5] == top_probabilities[image].tolist()


def test_classify_mixes_block_sizes(grpc_server, edge_model, sample_images):
    # Each bitstream is self-contained, so one request may mix codec settings.
    features = edge_model.head(sample_images[:2])
    configs = [CODEC, CodecConfig(mode="region-wise", keep_ratio=0.5, block_size=2, bits=4)]
    mixed = [encode(features[index], config) for index, config in enumerate(configs)]

    response = grpc_server.stub.Classify(classify_request(edge_model.fingerprint, mixed), timeout=TIMEOUT_S)
    for index, config in enumerate(configs):
        expected = reference_predictions(edge_model, sample_images[index : index + 1], config)
        assert response.predictions[index].class_index == int(expected[0].argmax())
        assert response.predictions[index].top5[0].probability == pytest.approx(float(expected[0].max()), abs=1e-5)


def test_classify_reports_timings(grpc_server, edge_model, bitstreams):
    response = grpc_server.stub.Classify(classify_request(edge_model.fingerprint, bitstreams), timeout=TIMEOUT_S)
    timings = response.timings

    assert timings.decode_ms > 0
    assert timings.tail_ms > 0
    assert timings.queue_ms >= 0
    assert timings.total_ms >= timings.decode_ms + timings.tail_ms


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_request_status(grpc_server, edge_model, bitstreams, case):
    build, code, fragment = BAD_REQUESTS[case]
    request = build(edge_model.fingerprint, bitstreams)

    with pytest.raises(grpc.RpcError) as caught:
        grpc_server.stub.Classify(request, timeout=TIMEOUT_S)

    assert caught.value.code() == code
    assert fragment in caught.value.details()
    assert_serves(grpc_server, edge_model.fingerprint, bitstreams)


def test_rejection_is_logged(grpc_server, edge_model, bitstreams, caplog):
    request = classify_request(edge_model.fingerprint, [with_crc_flipped(bitstreams[0])], "logged-1")

    with caplog.at_level(logging.WARNING, logger="cloud_server.service"):
        with pytest.raises(grpc.RpcError):
            grpc_server.stub.Classify(request, timeout=TIMEOUT_S)

    assert "'logged-1'" in caplog.text
    assert "DATA_LOSS" in caplog.text


def test_oversized_message_rejected(grpc_server, edge_model, bitstreams):
    # A dense 64 x 32 x 32 map at 8 bits is about 56 KB, so enough copies of
    # it exceed the default limit of 16 MiB.
    large = encode(random_maps(1, (64, 32, 32), seed=1)[0], DENSE)
    request = classify_request(edge_model.fingerprint, [large] * (DEFAULT_MAX_MESSAGE_BYTES // len(large) + 1))
    assert request.ByteSize() > DEFAULT_MAX_MESSAGE_BYTES

    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as caught:
        grpc_server.stub.Classify(request, timeout=TIMEOUT_S)

    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert time.monotonic() - started < TIMEOUT_S / 2
    assert_serves(grpc_server, edge_model.fingerprint, bitstreams)


def test_stream_matches_unary(grpc_server, edge_model, bitstreams):
    client = InferenceClient(grpc_server.channel, edge_model.fingerprint, SPLIT)
    unary = client.classify(bitstreams)
    chunks = [bitstreams[start : start + 4] for start in range(0, len(bitstreams), 4)]

    results = list(client.classify_stream(chunks, timeout_s=TIMEOUT_S))

    assert len(results) == 3
    assert [len(result.predictions) for result in results] == [4, 4, 4]
    assert [p for result in results for p in result.predictions] == unary.predictions


def test_stream_splits_large_batch(start_server, edge_model, sample_images):
    limit = 64 * 1024
    server = start_server(max_message_bytes=limit)
    dense = encode_batch(edge_model.head(sample_images), DENSE)
    whole = classify_request(edge_model.fingerprint, dense)
    assert whole.ByteSize() > limit

    with pytest.raises(grpc.RpcError) as caught:
        server.stub.Classify(whole, timeout=TIMEOUT_S)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    client = InferenceClient(server.channel, edge_model.fingerprint, SPLIT, max_message_bytes=limit)
    chunks = client.split_batch(dense, max_images=len(dense))
    results = list(client.classify_stream(chunks, timeout_s=TIMEOUT_S))
    predicted = [prediction.class_index for result in results for prediction in result.predictions]
    expected = reference_predictions(edge_model, sample_images, DENSE).argmax(dim=1).tolist()

    assert len(chunks) > 1
    assert max(result.wire_bytes for result in results) <= limit
    assert predicted == expected


def test_stream_bad_message_ends_stream(grpc_server, edge_model, bitstreams):
    requests = [
        classify_request(edge_model.fingerprint, bitstreams[:2], "stream-0"),
        classify_request(edge_model.fingerprint, [with_crc_flipped(bitstreams[2])], "stream-1"),
        classify_request(edge_model.fingerprint, bitstreams[3:5], "stream-2"),
    ]
    call = grpc_server.stub.ClassifyStream(iter(requests), timeout=TIMEOUT_S)

    first = next(call)
    with pytest.raises(grpc.RpcError) as caught:
        next(call)

    assert first.request_id == "stream-0"
    assert caught.value.code() == grpc.StatusCode.DATA_LOSS
    assert "stream message 1: image 0: CRC-32 mismatch" in caught.value.details()
    assert_serves(grpc_server, edge_model.fingerprint, bitstreams)


def test_concurrency_limit(start_server, edge_model, bitstreams):
    server = start_server(max_concurrent_rpcs=1)
    held = HeldStream(server.stub)
    held.send(classify_request(edge_model.fingerprint, bitstreams[:1], "held-0"))

    with pytest.raises(grpc.RpcError) as caught:
        server.stub.Classify(classify_request(edge_model.fingerprint, bitstreams[:1]), timeout=TIMEOUT_S)
    held.close()

    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # The server frees the held call's slot shortly after the client sees it end.
    deadline = time.monotonic() + 5.0
    while True:
        try:
            assert_serves(server, edge_model.fingerprint, bitstreams)
            break
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.mark.parametrize("ending", ["cancel", "deadline"])
def test_abandoned_call_skips_tail(grpc_server, slow_engine, edge_model, bitstreams, monkeypatch, ending):
    counters = grpc_server.service.counters_snapshot()
    monkeypatch.setattr(slow_engine, "decode_delay_s", 0.5)
    request = classify_request(edge_model.fingerprint, bitstreams[:2], f"abandoned-{ending}")

    if ending == "cancel":
        future = grpc_server.stub.Classify.future(request, timeout=TIMEOUT_S)
        time.sleep(0.2)
        assert future.cancel()
    else:
        with pytest.raises(grpc.RpcError) as caught:
            grpc_server.stub.Classify(request, timeout=0.2)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

    stopped = grpc_server.wait_for_counter("stopped", counters["stopped"] + 1)
    monkeypatch.setattr(slow_engine, "decode_delay_s", 0.0)

    assert stopped == counters["stopped"] + 1
    assert grpc_server.service.counters_snapshot()["tail_batches"] == counters["tail_batches"]
    assert_serves(grpc_server, edge_model.fingerprint, bitstreams)


@pytest.mark.parametrize("service", ["", SERVICE_NAME])
def test_health_reports_serving(grpc_server, service):
    stub = health_pb2_grpc.HealthStub(grpc_server.channel)

    response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT_S)

    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_services(grpc_server):
    stub = reflection_pb2_grpc.ServerReflectionStub(grpc_server.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")

    response = next(stub.ServerReflectionInfo(iter([request]), timeout=TIMEOUT_S))
    names = {service.name for service in response.list_services_response.service}

    assert SERVICE_NAME in names
    assert "grpc.health.v1.Health" in names


def test_wire_bytes_include_prefix(grpc_server, edge_model, bitstreams):
    client = InferenceClient(grpc_server.channel, edge_model.fingerprint, SPLIT)

    result = client.classify(bitstreams[:3])

    request = classify_request(edge_model.fingerprint, bitstreams[:3], result.request_id)
    assert result.wire_bytes == request.ByteSize() + GRPC_MESSAGE_PREFIX_BYTES
