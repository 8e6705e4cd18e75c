"""A cloud server in a child process: start it on a free port, wait until it serves, stop it."""

from __future__ import annotations

import json
import logging
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cloud_server.server import SERVICE_NAME, format_address

_LOGGER = logging.getLogger(__name__)


class ServerProcessError(RuntimeError):
    """A server child process that exited or timed out before it served."""


class ServerProcess:
    """``python -m cloud_server`` as a child process on a port chosen by the operating system.

    Use it as a context manager: entering starts the server and waits until
    its health service reports SERVING, and leaving stops it. The child's
    stderr (its log) goes to ``stderr``, by default this process's stderr.
    """

    def __init__(
        self,
        checkpoint: str | Path,
        split: str = "layer1",
        host: str = "127.0.0.1",
        extra_args: list[str] | tuple[str, ...] = (),
        stderr: IO[Any] | int | None = None,
        startup_timeout_s: float = 120.0,
    ) -> None:
        self.command = [
            sys.executable,
            "-m",
            "cloud_server",
            "--checkpoint",
            str(checkpoint),
            "--split",
            split,
            "--host",
            host,
            "--port",
            "0",
            *extra_args,
        ]
        self.host = host
        self.stderr = stderr
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen[str] | None = None
        self.port: int | None = None

    @property
    def address(self) -> str:
        """Return the ``host:port`` that clients connect to."""
        if self.port is None:
            raise ServerProcessError("the server has not started; call start() first")
        return format_address(self.host, self.port)

    def start(self) -> int:
        """Start the child, read the port from its first stdout line and wait until it serves.

        Returns the port. Raises ``ServerProcessError`` when the child exits
        or does not report SERVING within ``startup_timeout_s``.
        """
        deadline = time.monotonic() + self.startup_timeout_s
        _LOGGER.info("starting %s", " ".join(self.command))
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=self.stderr, text=True)

        self.port = self._read_port(deadline)
        self.wait_until_serving(deadline - time.monotonic())
        _LOGGER.info("server process %d is serving on %s", self.process.pid, self.address)
        return self.port

    def wait_until_serving(self, timeout_s: float) -> None:
        """Poll the health service until it reports SERVING for SplitInference."""
        deadline = time.monotonic() + timeout_s
        last_state = "no answer"
        with grpc.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                self._raise_if_exited()
                try:
                    response = stub.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=2.0)
                    if response.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                    last_state = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
                except grpc.RpcError as error:
                    last_state = f"{error.code().name}: {error.details()}"
                time.sleep(0.1)
        raise ServerProcessError(
            f"server on {self.address} did not report SERVING within {timeout_s:.0f} s "
            f"(last health check: {last_state}); see its log"
        )

    def stop(self, timeout_s: float = 15.0) -> int:
        """Stop the child with SIGTERM, kill it if it still runs after ``timeout_s``, and return its exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _LOGGER.warning(
                    "server process %d did not exit %.0f s after SIGTERM; killing it", self.process.pid, timeout_s
                )
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        _LOGGER.info("server process %d exited with code %d", self.process.pid, self.process.returncode)
        return self.process.returncode

    def __enter__(self) -> "ServerProcess":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _read_port(self, deadline: float) -> int:
        """Return the port from the child's first stdout line, ``{"port": N}``."""
        assert self.process is not None and self.process.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        stdout = self.process.stdout
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()

        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise ServerProcessError(
                f"server process {self.process.pid} printed no port within {self.startup_timeout_s:.0f} s; see its log"
            ) from None
        if not line:
            # End of file: the child is exiting, so give it a moment to report its exit code.
            try:
                self.process.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                pass
            self._raise_if_exited()
            raise ServerProcessError(f"server process {self.process.pid} closed its stdout before printing its port")

        try:
            return int(json.loads(line)["port"])
        except (ValueError, KeyError, TypeError) as error:
            raise ServerProcessError(f"expected {{\"port\": N}} as the server's first line, got {line!r}") from error

    def _raise_if_exited(self) -> None:
        assert self.process is not None
        code = self.process.poll()
        if code is not None:
            raise ServerProcessError(f"server process {self.process.pid} exited with code {code}; see its log")
