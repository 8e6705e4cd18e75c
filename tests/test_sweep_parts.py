"""Parts of the sweep harness: the JPEG payload size, the results file and the memory probes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from experiments.baselines import encode_image, jpeg_payload_size
from experiments.memory import rss_peak_rise, traced_peak
from experiments.results import RESULTS_NAME, ResultsConflictError, ResultsFile, setting_key

PROVENANCE = {"command": "test", "started_at": "2026-01-01T00:00:00+00:00"}


def sample_image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)


def segment_end(data: bytes, marker: int) -> tuple[int, int]:
    """Return the start and end offsets of the first segment with ``marker`` in a JPEG file."""
    position = 2
    while data[position + 1] != marker:
        position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
    return position, position + 2 + int.from_bytes(data[position + 2 : position + 4], "big")


def test_jpeg_payload_keeps_frame_and_scan() -> None:
    data = encode_image(sample_image(), "jpeg", 50)
    frame_start, frame_end = segment_end(data, 0xC0)
    scan_start, _ = segment_end(data, 0xDA)

    # SOI, the frame header, then everything from the scan header to EOI.
    expected = 2 + (frame_end - frame_start) + (len(data) - scan_start)
    assert jpeg_payload_size(data) == expected
    assert data.endswith(b"\xff\xd9")


def test_jpeg_payload_rejects_other_data() -> None:
    webp = encode_image(sample_image(), "webp", 50)

    with pytest.raises(ValueError, match="not a JPEG file"):
        jpeg_payload_size(webp)


def test_setting_key_format() -> None:
    assert setting_key("global", 0.1, 4, 2) == "global/keep=0.1/block=4/bits=2"
    assert setting_key("region-wise", 1.0, 8, 4) == "region-wise/keep=1/block=8/bits=4"


def test_results_file_resumes_same_key(tmp_path: Path) -> None:
    first = ResultsFile.open(tmp_path, "key-a", {"grid": 1}, PROVENANCE)
    first.add({"key": "global/keep=0.1/block=4/bits=2", "mode": "global", "keep_ratio": 0.1, "block_size": 4,
               "bits": 2})

    again = ResultsFile.open(tmp_path, "key-a", {"grid": 2}, {**PROVENANCE, "started_at": "later"})

    assert again.keys == {"global/keep=0.1/block=4/bits=2"}
    assert again.document["config"] == {"grid": 2}
    assert again.document["provenance"]["started_at"] == PROVENANCE["started_at"]
    assert again.document["provenance"]["resumed_at"] == "later"
    assert not list(tmp_path.glob("*.tmp"))


def test_results_file_rejects_other_key(tmp_path: Path) -> None:
    ResultsFile.open(tmp_path, "key-a", {}, PROVENANCE).save()

    with pytest.raises(ResultsConflictError, match="another configuration"):
        ResultsFile.open(tmp_path, "key-b", {}, PROVENANCE)
    assert ResultsFile.open(tmp_path, "key-b", {}, PROVENANCE, fresh=True).keys == set()


def test_results_file_rejects_invalid_json(tmp_path: Path) -> None:
    (tmp_path / RESULTS_NAME).write_text("{ truncated")

    with pytest.raises(ResultsConflictError, match="cannot read the earlier results"):
        ResultsFile.open(tmp_path, "key-a", {}, PROVENANCE)


def test_results_file_orders_records(tmp_path: Path) -> None:
    results = ResultsFile.open(tmp_path, "key-a", {}, PROVENANCE)
    for mode, keep in (("global", 0.1), ("channel-wise", 0.1), ("global", 0.5)):
        results.add({"key": setting_key(mode, keep, 4, 2), "mode": mode, "keep_ratio": keep, "block_size": 4,
                     "bits": 2})

    written = json.loads((tmp_path / RESULTS_NAME).read_text())

    assert [record["key"] for record in written["records"]] == [
        "channel-wise/keep=0.1/block=4/bits=2", "global/keep=0.5/block=4/bits=2", "global/keep=0.1/block=4/bits=2",
    ]


def test_rss_peak_rise_sees_allocation() -> None:
    size = 64 * 1024 * 1024

    rise = rss_peak_rise(lambda: np.ones(size, dtype=np.uint8))

    if rise is None:
        pytest.skip("peak RSS cannot be reset here (needs Linux /proc/self/clear_refs)")
    assert size * 0.9 <= rise <= size * 1.5


def test_traced_peak_sees_numpy_buffer() -> None:
    size = 8 * 1024 * 1024

    peak = traced_peak(lambda: np.ones(size, dtype=np.uint8))

    assert size <= peak <= size * 1.1
