"""Peak memory of the edge step (head and encoder) and of the server step (decoder and tail).

Both steps run on one image at batch 1, as the edge client and the server
run them, and each figure is the maximum over the measured images:

- ``edge_peak_rss_rise_bytes`` and ``server_peak_rss_rise_bytes``: how far
  the process's peak resident set size (RSS) rises above its RSS before the
  step. This counts everything the step makes resident: torch tensors,
  numpy arrays, Python objects and allocator overhead. It excludes what was
  resident before, such as the model's weights and the input image. Each
  step runs once before the measured calls, so one-time costs (lazy
  initialization, library code pages) are left out. Before each measured
  call, Python's garbage is collected, glibc's ``malloc_trim`` returns free
  heap pages to the kernel, and writing 5 to ``/proc/self/clear_refs``
  resets the peak (VmHWM) to the current RSS (VmRSS). The figure is VmHWM
  after the call minus VmRSS before it, so it needs Linux; elsewhere it is
  None.
- ``encoder_traced_peak_bytes`` and ``decoder_traced_peak_bytes``: the peak
  of ``tracemalloc``'s traced memory during the ``encode`` or ``decode``
  call alone. It counts Python objects and numpy buffers (numpy reports its
  allocations to tracemalloc), not torch's allocator, so it is the codec's
  own working memory.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from codec import CodecConfig, decode, encode
from splitnet.data import normalize
from splitnet.model import SplitModel

_LOGGER = logging.getLogger(__name__)

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")

METHOD = "rss-peak-rise+tracemalloc"


def status_bytes(field: str) -> int:
    """Return a kB field of /proc/self/status, such as VmRSS or VmHWM, in bytes."""
    for line in _STATUS.read_text().splitlines():
        name, _, value = line.partition(":")
        if name == field:
            return int(value.split()[0]) * 1024
    raise KeyError(f"{_STATUS} has no {field} field")


def trim_heap() -> None:
    """Return free heap memory to the kernel where glibc is the C library, and do nothing elsewhere."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def rss_peak_rise(step: Callable[[], Any]) -> int | None:
    """Return how many bytes the peak RSS rises above the current RSS while ``step`` runs, or None off Linux."""
    gc.collect()
    trim_heap()
    try:
        before = status_bytes("VmRSS")
        _CLEAR_REFS.write_text("5")
    except (OSError, KeyError) as error:
        _LOGGER.debug("peak RSS is not measurable here: %s", error)
        return None

    step()
    return max(0, status_bytes("VmHWM") - before)


def traced_peak(step: Callable[[], Any]) -> int:
    """Return the peak of memory traced by ``tracemalloc`` while ``step`` runs, above the memory traced before it."""
    started_here = not tracemalloc.is_tracing()
    if started_here:
        tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        step()
        return max(0, tracemalloc.get_traced_memory()[1] - baseline)
    finally:
        if started_here:
            tracemalloc.stop()


def largest(values: list[int | None]) -> int | None:
    """Return the maximum of ``values``, or None if any is None."""
    return None if any(value is None for value in values) else max(values)  # type: ignore[type-var]


@torch.no_grad()
def measure_memory(
    model: SplitModel,
    images: torch.Tensor,
    config: CodecConfig,
    mean: tuple[float, ...],
    std: tuple[float, ...],
) -> dict[str, Any]:
    """Measure the peak memory of the edge and server steps on each uint8 image of an N x 3 x H x W batch."""
    model.eval()

    def head_features(image: torch.Tensor) -> torch.Tensor:
        return model.head(normalize(image, mean, std))[0]

    def classify(data: bytes) -> torch.Tensor:
        restored = torch.from_numpy(decode(data))[None]
        return model.tail(restored).argmax(1)

    first = images[:1]
    classify(encode(head_features(first), config))

    edge, server, encoder, decoder = [], [], [], []
    for index in range(images.shape[0]):
        image = images[index : index + 1]
        features = head_features(image).numpy()
        data = encode(features, config)

        edge.append(rss_peak_rise(lambda: encode(head_features(image), config)))
        server.append(rss_peak_rise(lambda: classify(data)))
        encoder.append(traced_peak(lambda: encode(features, config)))
        decoder.append(traced_peak(lambda: decode(data)))

    return {
        "method": METHOD,
        "images": int(images.shape[0]),
        "edge_peak_rss_rise_bytes": largest(edge),
        "server_peak_rss_rise_bytes": largest(server),
        "encoder_traced_peak_bytes": max(encoder),
        "decoder_traced_peak_bytes": max(decoder),
    }
