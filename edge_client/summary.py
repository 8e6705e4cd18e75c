"""Per-image measurements of an edge run and the JSON summary built from them."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_client.client import BatchResult

# Stages whose latency the summary reports. Each image is charged its
# batch's time divided by the number of images in the batch, so the mean
# over images is the total time of the stage divided by the images.
STAGES = ("head", "encode", "round_trip", "server_queue", "server_decode", "server_tail")


@dataclass
class RunRecord:
    """Measurements of every image sent, in the order the responses arrived.

    Head and encode times may be recorded from gRPC's sending thread while
    results arrive in the caller's thread, so every update takes a lock.
    """

    stage_ms: dict[str, list[float]] = field(default_factory=lambda: {stage: [] for stage in STAGES})
    bitstream_bytes: list[int] = field(default_factory=list)
    predictions: list[int] = field(default_factory=list)
    wire_bytes: int = 0
    requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_stage(self, stage: str, batch_ms: float, images: int) -> None:
        """Charge each of ``images`` images an equal share of a batch's time in ``stage``."""
        with self._lock:
            self.stage_ms[stage].extend([batch_ms / images] * images)

    def add_bitstreams(self, bitstreams: list[bytes]) -> None:
        """Record the size of each image's bitstream, in bytes."""
        with self._lock:
            self.bitstream_bytes.extend(len(data) for data in bitstreams)

    def add_result(self, result: BatchResult) -> None:
        """Record one response: its predictions, wire size, round trip and server timings."""
        images = len(result.predictions)
        self.add_stage("round_trip", result.round_trip_ms, images)
        self.add_stage("server_queue", result.server.queue_ms, images)
        self.add_stage("server_decode", result.server.decode_ms, images)
        self.add_stage("server_tail", result.server.tail_ms, images)
        with self._lock:
            self.predictions.extend(prediction.class_index for prediction in result.predictions)
            self.wire_bytes += result.wire_bytes
            self.requests += 1


def mean_p50_p95(values: list[float] | list[int]) -> dict[str, float | None]:
    """Return the mean, median and 95th percentile of ``values``, or None for each when empty."""
    if not values:
        return {"mean": None, "p50": None, "p95": None}
    array = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(array.mean()),
        "p50": float(np.percentile(array, 50)),
        "p95": float(np.percentile(array, 95)),
    }


def build_summary(
    record: RunRecord,
    labels: list[int] | None,
    input_pixels: int,
    wall_s: float,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """Return the summary of a run as a JSON-compatible dictionary.

    ``labels`` are the true classes in the order of ``record.predictions``,
    in the model's class indices, or None when they are unknown.
    ``input_pixels`` is H * W of one input image, the denominator of bits per pixel.
    """
    images = len(record.predictions)
    bits_per_pixel = [8 * size / input_pixels for size in record.bitstream_bytes]
    bpp = mean_p50_p95(bits_per_pixel)

    accuracy = None
    if labels is not None and images:
        accuracy = float(np.mean(np.asarray(record.predictions) == np.asarray(labels[:images])))

    latency = {}
    for stage in STAGES:
        stats = mean_p50_p95(record.stage_ms[stage])
        latency[stage] = {"mean": stats["mean"], "p95": stats["p95"]}

    return {
        "images": images,
        "accuracy": accuracy,
        "bpp_mean": bpp["mean"],
        "bpp_p50": bpp["p50"],
        "bpp_p95": bpp["p95"],
        "bitstream_bytes_mean": mean_p50_p95(record.bitstream_bytes)["mean"],
        "wire_bytes_per_image": record.wire_bytes / images if images else None,
        "latency_ms": latency,
        "latency_basis": "per image: each batch's time divided by the images in the batch",
        "images_per_second": images / wall_s if wall_s > 0 else None,
        "wall_time_s": wall_s,
        "requests": record.requests,
        **settings,
    }
