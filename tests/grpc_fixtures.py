"""Fixtures for the gRPC tests: tiny checkpoints, in-process servers and request helpers.

Test modules import the fixtures they use from here. The checkpoints hold a
real cifar_resnet18 with random weights for 16x16 inputs, which keeps the
tail fast while every layer still runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import torch

from cloud_server.engine import TailEngine
from cloud_server.server import build_server
from cloud_server.service import SplitInferenceService
from codec import CodecConfig, encode_batch
from edge_client.model import EdgeModel
from sparsesplit.v1 import service_pb2, service_pb2_grpc
from splitnet.checkpoint import load_checkpoint, save_checkpoint
from splitnet.data import NORMALIZATION
from splitnet.model import SplitModel, build_model
from tests.conftest import TINY_CLASSES

INPUT_SIZE = 16
SPLIT = "layer1"
CODEC = CodecConfig(mode="global", keep_ratio=0.1, block_size=4, bits=2, border=1)


def save_tiny_checkpoint(path: Path, seed: int) -> Path:
    """Save a seeded, untrained cifar_resnet18 for TINY_CLASSES with non-default batch-norm statistics."""
    torch.manual_seed(seed)
    model = build_model("cifar_resnet18", len(TINY_CLASSES))
    with torch.no_grad():
        model.train()
        model(torch.randn(8, 3, INPUT_SIZE, INPUT_SIZE, generator=torch.Generator().manual_seed(seed)))
    model.eval()

    mean, std = NORMALIZATION["cifar10"]
    metadata = {
        "arch": "cifar_resnet18",
        "num_classes": len(TINY_CLASSES),
        "class_names": list(TINY_CLASSES),
        "mean": list(mean),
        "std": list(std),
        "input_size": INPUT_SIZE,
        "seed": seed,
    }
    save_checkpoint(path, model, metadata)
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return the path of a tiny checkpoint made with seed 0."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("grpc_checkpoint") / "tiny.pt", seed=0)


@pytest.fixture(scope="session")
def other_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a checkpoint like ``tiny_checkpoint`` but with other weights, so another fingerprint."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("grpc_checkpoint_other") / "other.pt", seed=1)


@pytest.fixture(scope="session")
def edge_model(tiny_checkpoint: Path) -> EdgeModel:
    return EdgeModel.from_path(tiny_checkpoint, SPLIT)


@pytest.fixture(scope="session")
def sample_images() -> torch.Tensor:
    """Return 12 random uint8 images of INPUT_SIZE x INPUT_SIZE, the same in every run."""
    generator = torch.Generator().manual_seed(7)
    return torch.randint(0, 256, (12, 3, INPUT_SIZE, INPUT_SIZE), generator=generator, dtype=torch.uint8)


@pytest.fixture(scope="session")
def bitstreams(edge_model: EdgeModel, sample_images: torch.Tensor) -> list[bytes]:
    """Return the bitstream of each test image under CODEC."""
    return encode_batch(edge_model.head(sample_images), CODEC)


class SlowEngine(TailEngine):
    """A TailEngine that sleeps ``decode_delay_s`` seconds before decoding, to test deadlines."""

    decode_delay_s = 0.0

    def decode_batch(self, bitstreams: Any) -> torch.Tensor:
        time.sleep(self.decode_delay_s)
        return super().decode_batch(bitstreams)


@dataclass
class RunningServer:
    """An in-process server, its servicer and the address to reach it."""

    server: grpc.Server
    service: SplitInferenceService
    address: str
    channel: grpc.Channel

    @property
    def stub(self) -> service_pb2_grpc.SplitInferenceStub:
        return service_pb2_grpc.SplitInferenceStub(self.channel)

    def wait_for_counter(self, name: str, value: int, timeout_s: float = 5.0) -> int:
        """Poll the servicer's counter ``name`` until it reaches ``value``, and return its last value."""
        deadline = time.monotonic() + timeout_s
        while True:
            current = self.service.counters_snapshot()[name]
            if current >= value or time.monotonic() > deadline:
                return current
            time.sleep(0.02)


@pytest.fixture(scope="session")
def slow_engine(tiny_checkpoint: Path) -> SlowEngine:
    checkpoint = load_checkpoint(tiny_checkpoint)
    return SlowEngine(SplitModel(checkpoint.model, SPLIT), checkpoint.metadata)


@pytest.fixture(scope="module")
def start_server(slow_engine: SlowEngine) -> Iterator[Callable[..., RunningServer]]:
    """Return a function that starts an in-process server on 127.0.0.1 port 0 with the given limits.

    Every server shares the tiny checkpoint's engine and is stopped when the
    module's tests are done.
    """
    running: list[RunningServer] = []

    def start(max_batch: int = 12, **limits: int) -> RunningServer:
        service = SplitInferenceService(slow_engine, max_batch)
        server, port = build_server(service, "127.0.0.1:0", **limits)
        server.start()
        address = f"127.0.0.1:{port}"
        running.append(RunningServer(server, service, address, grpc.insecure_channel(address)))
        return running[-1]

    yield start
    for entry in running:
        entry.channel.close()
        entry.server.stop(None)


@pytest.fixture(scope="module")
def grpc_server(start_server: Callable[..., RunningServer]) -> RunningServer:
    """Return an in-process server with the default limits and at most 12 images per request."""
    return start_server()


def classify_request(
    fingerprint: str, bitstreams: list[bytes], request_id: str = "test-1", split: str = SPLIT
) -> service_pb2.ClassifyRequest:
    return service_pb2.ClassifyRequest(
        request_id=request_id, model_fingerprint=fingerprint, split=split, bitstreams=bitstreams
    )


def random_maps(count: int, shape: tuple[int, int, int], seed: int) -> np.ndarray:
    """Return ``count`` float32 maps of ReLU'd Gaussian noise."""
    rng = np.random.default_rng(seed)
    return np.maximum(rng.normal(size=(count, *shape)), 0).astype(np.float32)


class HeldStream:
    """A ClassifyStream call that sends one request per ``send``, so the call stays open in between."""

    def __init__(self, stub: service_pb2_grpc.SplitInferenceStub, timeout_s: float = 30.0) -> None:
        self._requests: list[service_pb2.ClassifyRequest | None] = []
        self._ready = threading.Condition()
        self.call = stub.ClassifyStream(self._iterate(), timeout=timeout_s)

    def send(self, request: service_pb2.ClassifyRequest) -> service_pb2.ClassifyResponse:
        """Send one request and return its response."""
        with self._ready:
            self._requests.append(request)
            self._ready.notify()
        return next(self.call)

    def close(self) -> None:
        """Half-close the stream and wait for the call to end."""
        with self._ready:
            self._requests.append(None)
            self._ready.notify()
        for _ in self.call:
            pass

    def _iterate(self) -> Iterator[service_pb2.ClassifyRequest]:
        while True:
            with self._ready:
                self._ready.wait_for(lambda: bool(self._requests))
                request = self._requests.pop(0)
            if request is None:
                return
            yield request
