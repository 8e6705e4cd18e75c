"""The SplitInference servicer: request checks, decoding, the tail and status codes."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import grpc

from cloud_server.engine import ImageDecodeError, ImagePrediction, TailEngine
from cloud_server.validation import RequestRejected, check_request, rejection_for_decode_error
from sparsesplit.v1 import service_pb2, service_pb2_grpc

_LOGGER = logging.getLogger(__name__)


class CallInactive(RequestRejected):
    """A call whose client cancelled it or whose deadline passed before the server finished it."""


@dataclass
class ServiceCounters:
    """Request counts since the servicer started."""

    requests: int = 0
    succeeded: int = 0
    rejected: int = 0
    stopped: int = 0
    failed: int = 0
    images: int = 0
    tail_batches: int = 0


class SplitInferenceService(service_pb2_grpc.SplitInferenceServicer):
    """Servicer that classifies batches of bitstreams with one ``TailEngine``.

    Decoding runs in each call's worker thread, but the tail runs one batch
    at a time, so concurrent batches do not compete for the same CPU cores.
    The time a batch waits for the tail is reported as ``queue_ms``.
    """

    def __init__(self, engine: TailEngine, max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.engine = engine
        self.max_batch = max_batch
        self.counters = ServiceCounters()
        self._counter_lock = threading.Lock()
        self._model_lock = threading.Lock()

    def Classify(
        self, request: service_pb2.ClassifyRequest, context: grpc.ServicerContext
    ) -> service_pb2.ClassifyResponse:
        """Classify one batch, or abort the call with the status code of its first problem."""
        outcome = self._serve(request, context, "Classify")
        if isinstance(outcome, RequestRejected):
            context.abort(outcome.code, outcome.message)
        return outcome

    def ClassifyStream(
        self, request_iterator: Iterator[service_pb2.ClassifyRequest], context: grpc.ServicerContext
    ) -> Iterator[service_pb2.ClassifyResponse]:
        """Classify each batch of the stream in order. An invalid batch ends the stream with its status code."""
        index = 0
        while True:
            try:
                request = next(request_iterator)
            except StopIteration:
                return
            except grpc.RpcError:
                # The iterator raises this when the client cancels the call.
                _LOGGER.info("ClassifyStream ended by the client after %d messages", index)
                return

            outcome = self._serve(request, context, f"ClassifyStream message {index}")
            if isinstance(outcome, RequestRejected):
                context.abort(outcome.code, f"stream message {index}: {outcome.message}")
            yield outcome
            index += 1

    def counters_snapshot(self) -> dict[str, int]:
        """Return a copy of the request counters."""
        with self._counter_lock:
            return asdict(self.counters)

    def _count(self, **increments: int) -> None:
        with self._counter_lock:
            for name, value in increments.items():
                setattr(self.counters, name, getattr(self.counters, name) + value)

    def _serve(
        self, request: service_pb2.ClassifyRequest, context: grpc.ServicerContext, rpc: str
    ) -> service_pb2.ClassifyResponse | RequestRejected:
        """Return the response to one request, or the rejection to abort the call with.

        Every rejection and every failure is logged with the request id here.
        """
        self._count(requests=1)
        try:
            response = self._classify(request, context)
        except CallInactive as stop:
            self._count(stopped=1)
            _LOGGER.info("stopped %s request %r: %s", rpc, request.request_id[:128], stop.message)
            return stop
        except RequestRejected as rejection:
            self._count(rejected=1)
            _LOGGER.warning(
                "rejected %s request %r with %s: %s",
                rpc,
                request.request_id[:128],
                rejection.code.name,
                rejection.message,
            )
            return rejection
        except Exception:  # noqa: BLE001 - one failing batch must not stop the server
            self._count(failed=1)
            _LOGGER.exception("internal error on %s request %r", rpc, request.request_id[:128])
            return RequestRejected(
                grpc.StatusCode.INTERNAL,
                f"internal server error on request {request.request_id[:128]!r}; the server log has the traceback",
            )

        self._count(succeeded=1, images=len(request.bitstreams))
        return response

    def _classify(
        self, request: service_pb2.ClassifyRequest, context: grpc.ServicerContext
    ) -> service_pb2.ClassifyResponse:
        started = time.perf_counter()
        check_request(request, self.engine, self.max_batch)
        ensure_active(context, "before decoding")

        decode_started = time.perf_counter()
        try:
            features = self.engine.decode_batch(request.bitstreams)
        except ImageDecodeError as failure:
            raise rejection_for_decode_error(failure, self.engine) from failure
        decoded = time.perf_counter()
        ensure_active(context, "after decoding, so the tail did not run")

        with self._model_lock:
            acquired = time.perf_counter()
            ensure_active(context, "while waiting for the model, so the tail did not run")
            predictions = self.engine.run_tail(features)
            self._count(tail_batches=1)
        finished = time.perf_counter()

        return service_pb2.ClassifyResponse(
            request_id=request.request_id,
            predictions=[prediction_message(prediction) for prediction in predictions],
            timings=service_pb2.ServerTimings(
                queue_ms=1000 * (acquired - decoded),
                decode_ms=1000 * (decoded - decode_started),
                tail_ms=1000 * (finished - acquired),
                total_ms=1000 * (finished - started),
            ),
        )


def ensure_active(context: grpc.ServicerContext, stage: str) -> None:
    """Raise ``CallInactive`` when the client cancelled the call or its deadline has passed."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        raise CallInactive(grpc.StatusCode.DEADLINE_EXCEEDED, f"the deadline passed {stage}")
    if not context.is_active():
        raise CallInactive(grpc.StatusCode.CANCELLED, f"the call was cancelled or timed out {stage}")


def prediction_message(prediction: ImagePrediction) -> service_pb2.Prediction:
    """Convert one engine prediction to its protobuf message."""
    return service_pb2.Prediction(
        class_index=prediction.class_index,
        class_name=prediction.class_name,
        top5=[
            service_pb2.ClassProbability(class_index=index, probability=probability)
            for index, probability in prediction.top
        ],
    )
