"""Checks on a ClassifyRequest, and the gRPC status code of each rejection."""

from __future__ import annotations

import re

import grpc

from cloud_server.engine import ImageDecodeError, TailEngine
from codec import ChecksumError, UnsupportedVersionError
from sparsesplit.v1 import service_pb2

REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class RequestRejected(Exception):
    """A request that the server rejects, with the status code and the message for the client."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def check_request(request: service_pb2.ClassifyRequest, engine: TailEngine, max_batch: int) -> None:
    """Raise ``RequestRejected`` unless the request's id, model, split and batch size are valid here."""
    if not REQUEST_ID_PATTERN.fullmatch(request.request_id):
        raise RequestRejected(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"invalid request_id {request.request_id[:160]!r}; use 1 to 128 characters from "
            "A-Z, a-z, 0-9, '.', '_', ':' and '-'",
        )

    if request.model_fingerprint != engine.fingerprint:
        raise RequestRejected(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"model fingerprint {request.model_fingerprint[:64]!r} differs from the server's "
            f"{engine.fingerprint}; run the head of the same checkpoint that the server loaded",
        )

    if request.split != engine.split:
        raise RequestRejected(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"split point {request.split[:64]!r} differs from the server's {engine.split!r}; "
            f"run the head up to {engine.split} or connect to a server started with --split {request.split[:64]}",
        )

    count = len(request.bitstreams)
    if count == 0:
        raise RequestRejected(
            grpc.StatusCode.INVALID_ARGUMENT,
            "the request contains no bitstreams; send one bitstream per image, at least one",
        )
    if count > max_batch:
        raise RequestRejected(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"the request contains {count} images, but this server accepts at most {max_batch} per request; "
            "split the batch into smaller requests, for example over ClassifyStream",
        )


def rejection_for_decode_error(failure: ImageDecodeError, engine: TailEngine) -> RequestRejected:
    """Return the rejection for a bitstream that failed to decode, with its status code and the fix."""
    error = failure.error
    if isinstance(error, UnsupportedVersionError):
        return RequestRejected(grpc.StatusCode.FAILED_PRECONDITION, f"image {failure.index}: {error}")
    if isinstance(error, ChecksumError):
        return RequestRejected(
            grpc.StatusCode.DATA_LOSS,
            f"image {failure.index}: {error}; the bitstream was damaged in transit, so send it again",
        )

    shape = "x".join(str(side) for side in engine.feature_shape)
    return RequestRejected(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"image {failure.index}: {error}; send the bytes that codec.encode returns for the head's output "
        f"at split {engine.split}, a {shape} map for {engine.input_size}x{engine.input_size} input images",
    )
