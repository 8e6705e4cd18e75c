"""A SplitInference client with deadlines, retries on UNAVAILABLE and size-aware batching."""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import grpc

from sparsesplit.v1 import service_pb2, service_pb2_grpc

_LOGGER = logging.getLogger(__name__)

# gRPC frames each message with a 1-byte compression flag and a 4-byte length.
GRPC_MESSAGE_PREFIX_BYTES = 5
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Prediction:
    """The server's classification of one image."""

    class_index: int
    class_name: str
    top5: list[tuple[int, float]]


@dataclass(frozen=True)
class ServerTimings:
    """The server's time on one request, in milliseconds."""

    queue_ms: float
    decode_ms: float
    tail_ms: float
    total_ms: float


@dataclass(frozen=True)
class BatchResult:
    """The response to one request, with its round-trip time and its size on the wire."""

    request_id: str
    predictions: list[Prediction]
    server: ServerTimings
    round_trip_ms: float
    # Serialized request bytes plus gRPC's 5-byte message prefix. HTTP/2
    # frame headers and TCP/IP headers are not included.
    wire_bytes: int


class InferenceError(Exception):
    """A call that ended with a non-OK gRPC status, after any retries."""

    def __init__(self, rpc: str, request_id: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{rpc} request {request_id!r} failed with {code.name}: {details}")
        self.rpc = rpc
        self.request_id = request_id
        self.code = code
        self.details = details


@dataclass
class _Outgoing:
    request: service_pb2.ClassifyRequest
    wire_bytes: int
    sent_at: float = 0.0


class _StreamSource:
    """Batches shared by the request iterators of successive attempts of one stream."""

    def __init__(self, batches: Iterable[Sequence[bytes]]) -> None:
        self.batches = iter(batches)
        self.lock = threading.Lock()
        self.generation = 0
        self.error: BaseException | None = None


class InferenceClient:
    """Client for SplitInference that sends the edge model's fingerprint and split with each batch.

    Every call gets ``deadline_s`` seconds. A call that fails with
    UNAVAILABLE is retried up to ``retries`` times, after
    ``backoff_s * 2**attempt`` seconds (at most ``max_backoff_s``, with 20%
    random jitter). Other non-OK statuses raise ``InferenceError`` at once.
    """

    def __init__(
        self,
        channel: grpc.Channel,
        fingerprint: str,
        split: str,
        deadline_s: float | None = 30.0,
        retries: int = 3,
        backoff_s: float = 0.2,
        max_backoff_s: float = 5.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, got {retries}")
        self.channel = channel
        self.stub = service_pb2_grpc.SplitInferenceStub(channel)
        self.fingerprint = fingerprint
        self.split = split
        self.deadline_s = deadline_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_message_bytes = max_message_bytes
        self.retry_count = 0
        self._id_prefix = f"edge-{uuid.uuid4().hex[:8]}"
        self._ids = itertools.count()

    @classmethod
    def connect(cls, target: str, fingerprint: str, split: str, **options: float | int | None) -> "InferenceClient":
        """Open an insecure channel to ``target`` (``host:port``) and return a client on it."""
        return cls(grpc.insecure_channel(target), fingerprint, split, **options)  # type: ignore[arg-type]

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()

    def __enter__(self) -> "InferenceClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def make_request(self, bitstreams: Sequence[bytes]) -> service_pb2.ClassifyRequest:
        """Build a request with a new request id for one batch of bitstreams."""
        return service_pb2.ClassifyRequest(
            request_id=f"{self._id_prefix}-{next(self._ids):06d}",
            model_fingerprint=self.fingerprint,
            split=self.split,
            bitstreams=list(bitstreams),
        )

    def split_batch(self, bitstreams: Sequence[bytes], max_images: int) -> list[list[bytes]]:
        """Split a batch into request-sized chunks of at most ``max_images`` bitstreams.

        Each chunk's request, gRPC prefix included, stays within
        ``max_message_bytes``, except a chunk of one bitstream that is
        larger on its own, which the server rejects with RESOURCE_EXHAUSTED.
        """
        if max_images < 1:
            raise ValueError(f"max_images must be at least 1, got {max_images}")
        # An upper bound of the request's other fields: request ids never exceed 12 digits.
        header = service_pb2.ClassifyRequest(
            request_id=f"{self._id_prefix}-{'9' * 12}", model_fingerprint=self.fingerprint, split=self.split
        )
        overhead = header.ByteSize() + GRPC_MESSAGE_PREFIX_BYTES

        chunks: list[list[bytes]] = []
        current: list[bytes] = []
        size = overhead
        for data in bitstreams:
            field_size = 1 + varint_size(len(data)) + len(data)
            if current and (len(current) >= max_images or size + field_size > self.max_message_bytes):
                chunks.append(current)
                current, size = [], overhead
            current.append(data)
            size += field_size
        if current:
            chunks.append(current)
        return chunks

    def classify(self, bitstreams: Sequence[bytes]) -> BatchResult:
        """Classify one batch with the unary Classify rpc and return its result."""
        outgoing = self._outgoing(bitstreams)
        request_id = outgoing.request.request_id

        for attempt in itertools.count():
            outgoing.sent_at = time.perf_counter()
            try:
                response = self.stub.Classify(outgoing.request, timeout=self.deadline_s)
            except grpc.RpcError as error:
                if not self._should_retry(error, attempt, "Classify", request_id):
                    raise InferenceError("Classify", request_id, error.code(), error.details() or "") from error
                continue
            return self._result(outgoing, response, "Classify")
        raise AssertionError("unreachable")

    def classify_stream(
        self, batches: Iterable[Sequence[bytes]], timeout_s: float | None = None
    ) -> Iterator[BatchResult]:
        """Classify each batch over one ClassifyStream call and yield the results in order.

        ``batches`` is consumed lazily in gRPC's sending thread, so the next
        batch can be prepared while the server works on the previous one.
        ``timeout_s`` is the deadline of the whole call. When the stream
        fails with UNAVAILABLE, a new stream resends the unanswered batches
        and continues.
        """
        source = _StreamSource(batches)
        pending: deque[_Outgoing] = deque()
        failures = 0
        while True:
            with source.lock:
                source.generation += 1
                generation = source.generation
            replay = list(pending)
            call = self.stub.ClassifyStream(
                self._stream_requests(source, generation, replay, pending), timeout=timeout_s
            )
            try:
                for response in call:
                    outgoing = pending.popleft()
                    yield self._result(outgoing, response, "ClassifyStream")
                    failures = 0
            except grpc.RpcError as error:
                if source.error is not None:
                    raise source.error from error
                request_id = pending[0].request.request_id if pending else "(none)"
                if not self._should_retry(error, failures, "ClassifyStream", request_id):
                    raise InferenceError("ClassifyStream", request_id, error.code(), error.details() or "") from error
                failures += 1
                continue

            if source.error is not None:
                raise source.error
            if pending:
                raise InferenceError(
                    "ClassifyStream",
                    pending[0].request.request_id,
                    grpc.StatusCode.INTERNAL,
                    f"the server closed the stream with {len(pending)} requests unanswered",
                )
            return

    def _stream_requests(
        self, source: _StreamSource, generation: int, replay: list[_Outgoing], pending: deque[_Outgoing]
    ) -> Iterator[service_pb2.ClassifyRequest]:
        """Yield the requests of one stream attempt: unanswered ones first, then new batches.

        A request iterator of an earlier attempt stops as soon as a new
        attempt starts, so no batch is taken from ``source`` twice.
        """
        for outgoing in replay:
            if source.generation != generation:
                return
            outgoing.sent_at = time.perf_counter()
            yield outgoing.request

        while True:
            with source.lock:
                if source.generation != generation:
                    return
                try:
                    bitstreams = next(source.batches)
                except StopIteration:
                    return
                except Exception as error:  # noqa: BLE001 - re-raised in the caller's thread
                    # gRPC would swallow this error and only cancel the call.
                    source.error = error
                    return
                outgoing = self._outgoing(bitstreams)
                pending.append(outgoing)
            outgoing.sent_at = time.perf_counter()
            yield outgoing.request

    def _outgoing(self, bitstreams: Sequence[bytes]) -> _Outgoing:
        request = self.make_request(bitstreams)
        return _Outgoing(request, request.ByteSize() + GRPC_MESSAGE_PREFIX_BYTES)

    def _should_retry(self, error: grpc.RpcError, attempt: int, rpc: str, request_id: str) -> bool:
        """Sleep and return True when ``error`` is UNAVAILABLE and retries remain."""
        if error.code() != grpc.StatusCode.UNAVAILABLE or attempt >= self.retries:
            return False

        delay = min(self.max_backoff_s, self.backoff_s * 2**attempt) * random.uniform(0.8, 1.2)
        self.retry_count += 1
        _LOGGER.warning(
            "%s request %r: server unavailable (%s); retry %d of %d in %.2f s",
            rpc,
            request_id,
            error.details(),
            attempt + 1,
            self.retries,
            delay,
        )
        time.sleep(delay)
        return True

    def _result(self, outgoing: _Outgoing, response: service_pb2.ClassifyResponse, rpc: str) -> BatchResult:
        received = time.perf_counter()
        request = outgoing.request
        if response.request_id != request.request_id or len(response.predictions) != len(request.bitstreams):
            raise InferenceError(
                rpc,
                request.request_id,
                grpc.StatusCode.INTERNAL,
                f"the response to request {request.request_id!r} has request_id {response.request_id!r} "
                f"and {len(response.predictions)} predictions for {len(request.bitstreams)} images",
            )

        timings = response.timings
        return BatchResult(
            request_id=response.request_id,
            predictions=[
                Prediction(
                    class_index=prediction.class_index,
                    class_name=prediction.class_name,
                    top5=[(entry.class_index, entry.probability) for entry in prediction.top5],
                )
                for prediction in response.predictions
            ],
            server=ServerTimings(timings.queue_ms, timings.decode_ms, timings.tail_ms, timings.total_ms),
            round_trip_ms=1000 * (received - outgoing.sent_at),
            wire_bytes=outgoing.wire_bytes,
        )


def varint_size(value: int) -> int:
    """Return the number of bytes of ``value`` as a protobuf varint."""
    return max(1, (value.bit_length() + 6) // 7)
