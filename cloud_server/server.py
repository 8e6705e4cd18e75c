"""Construction of the gRPC server: SplitInference, health checking and reflection."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from cloud_server.engine import TailEngine
from cloud_server.service import SplitInferenceService
from codec.warmup import warm_up
from sparsesplit.v1 import service_pb2, service_pb2_grpc

_LOGGER = logging.getLogger(__name__)

SERVICE_NAME = service_pb2.DESCRIPTOR.services_by_name["SplitInference"].full_name

DEFAULT_MAX_WORKERS = 4
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# Calls beyond max_workers wait for a worker thread, and calls beyond this
# limit get RESOURCE_EXHAUSTED at once. Health checks and reflection calls
# count too. An open ClassifyStream keeps its worker thread until it ends.
DEFAULT_MAX_CONCURRENT_RPCS = 16
DEFAULT_MAX_BATCH = 256
DEFAULT_GRACE_S = 5.0


class BindError(RuntimeError):
    """An address that the server cannot listen on."""


def create_server(
    address: str,
    checkpoint: str | Path,
    split: str = "layer1",
    max_workers: int = DEFAULT_MAX_WORKERS,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_concurrent_rpcs: int = DEFAULT_MAX_CONCURRENT_RPCS,
    max_batch: int = DEFAULT_MAX_BATCH,
    health_servicer: health.HealthServicer | None = None,
) -> tuple[grpc.Server, int]:
    """Load the checkpoint's tail after ``split`` and build a server bound to ``address``.

    Returns the server, not yet started, and the bound port, which the
    operating system chooses when ``address`` ends in port 0.
    """
    engine = TailEngine.from_checkpoint(checkpoint, split)
    _LOGGER.info("codec loops compiled or loaded in %.1f s", warm_up())
    return build_server(
        SplitInferenceService(engine, max_batch),
        address,
        max_workers=max_workers,
        max_message_bytes=max_message_bytes,
        max_concurrent_rpcs=max_concurrent_rpcs,
        health_servicer=health_servicer,
    )


def build_server(
    service: SplitInferenceService,
    address: str,
    max_workers: int = DEFAULT_MAX_WORKERS,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_concurrent_rpcs: int = DEFAULT_MAX_CONCURRENT_RPCS,
    health_servicer: health.HealthServicer | None = None,
) -> tuple[grpc.Server, int]:
    """Build a server for ``service`` with health checking and reflection, and bind it to ``address``.

    gRPC itself rejects messages over ``max_message_bytes`` and calls beyond
    ``max_concurrent_rpcs`` with RESOURCE_EXHAUSTED, before the servicer runs.

    NOTE: because those two rejections never reach the servicer, the server's
    log does not list them. Only the client receives their status.
    """
    if max_workers < 1:
        raise ValueError(f"max_workers must be at least 1, got {max_workers}")
    if max_message_bytes < 1:
        raise ValueError(f"max_message_bytes must be at least 1, got {max_message_bytes}")
    if max_concurrent_rpcs < 1:
        raise ValueError(f"max_concurrent_rpcs must be at least 1, got {max_concurrent_rpcs}")

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="sparsesplit-rpc"),
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ],
        maximum_concurrent_rpcs=max_concurrent_rpcs,
    )
    service_pb2_grpc.add_SplitInferenceServicer_to_server(service, server)

    if health_servicer is None:
        health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)

    try:
        port = server.add_insecure_port(address)
    except RuntimeError as error:  # grpcio's error for an address it cannot bind
        raise BindError(f"cannot listen on {address}: {error}; choose another host or port") from error
    health_servicer.set(health.OVERALL_HEALTH, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    return server, port


def serve(
    host: str,
    port: int,
    checkpoint: str | Path,
    split: str = "layer1",
    max_workers: int = DEFAULT_MAX_WORKERS,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_concurrent_rpcs: int = DEFAULT_MAX_CONCURRENT_RPCS,
    max_batch: int = DEFAULT_MAX_BATCH,
    grace_s: float = DEFAULT_GRACE_S,
    stop_event: threading.Event | None = None,
    on_started: Callable[[int], None] | None = None,
) -> None:
    """Run a server until SIGINT, SIGTERM or ``stop_event``, then stop it gracefully.

    The signal handlers are installed only when this runs in the main
    thread. ``on_started`` receives the bound port once the server accepts
    calls. On stop, health checks report NOT_SERVING, new calls are
    rejected, and calls in progress get ``grace_s`` seconds to finish.
    """
    stop_event = stop_event or threading.Event()
    health_servicer = health.HealthServicer()
    service = SplitInferenceService(TailEngine.from_checkpoint(checkpoint, split), max_batch)
    server, bound_port = build_server(
        service,
        format_address(host, port),
        max_workers=max_workers,
        max_message_bytes=max_message_bytes,
        max_concurrent_rpcs=max_concurrent_rpcs,
        health_servicer=health_servicer,
    )

    previous_handlers = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            # The handler runs in the main thread, which may hold the event's lock
            # inside stop_event.wait(). Another thread sets the event, so the lock cannot deadlock.
            previous_handlers[signum] = signal.signal(
                signum, lambda received, frame: threading.Thread(target=stop_event.set, daemon=True).start()
            )

    try:
        server.start()
        _LOGGER.info(
            "started SplitInference on %s (workers %d, max message %d bytes, max concurrent rpcs %d, max batch %d)",
            format_address(host, bound_port),
            max_workers,
            max_message_bytes,
            max_concurrent_rpcs,
            max_batch,
        )
        if on_started is not None:
            on_started(bound_port)
        stop_event.wait()

        _LOGGER.info("stopping: rejecting new calls, %.1f s of grace for calls in progress", grace_s)
        health_servicer.enter_graceful_shutdown()
        server.stop(grace_s).wait()
        counters = service.counters_snapshot()
        _LOGGER.info(
            "stopped SplitInference on %s: %s",
            format_address(host, bound_port),
            ", ".join(f"{name} {value}" for name, value in counters.items()),
        )
    finally:
        server.stop(None)
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)


def format_address(host: str, port: int) -> str:
    """Return ``host:port``, with brackets around an IPv6 host."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"
