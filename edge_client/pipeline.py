"""The edge's run over a test set: head, encoding, gRPC calls and the summary."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from tqdm import tqdm

from codec import CodecConfig, encode_batch
from edge_client.client import DEFAULT_MAX_MESSAGE_BYTES, InferenceClient
from edge_client.model import EdgeModel
from edge_client.summary import RunRecord, build_summary
from splitnet.data import ImageSet, load_split

_LOGGER = logging.getLogger(__name__)


@dataclass
class EdgeOptions:
    """Settings of one edge run, which the options of ``python -m edge_client`` set."""

    server: str
    checkpoint: str
    data: str = "cifar10"
    data_root: str = "data"
    limit: int | None = None
    batch_size: int = 64
    codec: CodecConfig = field(default_factory=CodecConfig)
    split: str = "layer1"
    deadline_s: float = 30.0
    retries: int = 3
    stream: bool = False
    seed: int = 0
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    progress: bool = True


def select_images(image_set: ImageSet, limit: int | None, seed: int) -> ImageSet:
    """Return ``limit`` images drawn with ``seed``, in their original order, or all of them.

    An ImageFolder set is sorted by class, so its first images would all
    belong to one class. A seeded draw keeps the class mix.
    """
    if limit is None or limit >= len(image_set):
        return image_set
    order = torch.randperm(len(image_set), generator=torch.Generator().manual_seed(seed))[:limit]
    return image_set.subset(order.sort().values)


def model_labels(image_set: ImageSet, class_names: list[str]) -> list[int] | None:
    """Return the labels as the model's class indices, or None when the class names do not match."""
    if image_set.class_names == class_names:
        return image_set.labels.tolist()

    index = {name: position for position, name in enumerate(class_names)}
    missing = sorted(set(image_set.class_names) - index.keys())
    if missing:
        _LOGGER.warning(
            "the data's classes %s are not among the model's classes, so accuracy is not reported",
            ", ".join(missing[:5]),
        )
        return None
    return [index[image_set.class_names[label]] for label in image_set.labels.tolist()]


def encoded_batches(
    model: EdgeModel,
    images: torch.Tensor,
    batch_size: int,
    config: CodecConfig,
    client: InferenceClient,
    record: RunRecord,
) -> Iterator[list[bytes]]:
    """Run the head and the encoder on each batch, and yield the bitstreams of each request.

    A batch whose request would exceed the client's maximum message size
    is split into several requests.
    """
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]

        started = time.perf_counter()
        features = model.head(batch)
        head_done = time.perf_counter()
        bitstreams = encode_batch(features, config)
        encode_done = time.perf_counter()

        record.add_stage("head", 1000 * (head_done - started), len(batch))
        record.add_stage("encode", 1000 * (encode_done - head_done), len(batch))
        record.add_bitstreams(bitstreams)
        yield from client.split_batch(bitstreams, batch_size)


def run_edge(options: EdgeOptions) -> dict[str, Any]:
    """Classify the test images of ``options.data`` through the server and return the summary.

    Raises ``edge_client.client.InferenceError`` when a call ends with a
    non-OK status after its retries.
    """
    if options.batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {options.batch_size}")
    model = EdgeModel.from_path(options.checkpoint, options.split)

    image_set = load_split(options.data, "test", model.input_size, options.data_root, progress=options.progress)
    image_set = select_images(image_set, options.limit, options.seed)
    labels = model_labels(image_set, model.class_names)
    _LOGGER.info("classifying %d images from %s through %s", len(image_set), image_set.source, options.server)

    record = RunRecord()
    client = InferenceClient.connect(
        options.server,
        model.fingerprint,
        options.split,
        deadline_s=options.deadline_s,
        retries=options.retries,
        max_message_bytes=options.max_message_bytes,
    )
    progress = tqdm(total=len(image_set), unit="img", desc="classifying", file=sys.stderr, disable=not options.progress)
    with client, progress:
        started = time.perf_counter()
        requests = encoded_batches(model, image_set.images, options.batch_size, options.codec, client, record)
        if options.stream:
            # The deadline covers the whole stream: deadline_s per batch.
            batches = -(-len(image_set) // options.batch_size)
            results = client.classify_stream(requests, timeout_s=options.deadline_s * batches)
        else:
            results = (client.classify(bitstreams) for bitstreams in requests)
        for result in results:
            record.add_result(result)
            progress.update(len(result.predictions))
        wall_s = time.perf_counter() - started

    settings = {
        "rpc": "ClassifyStream" if options.stream else "Classify",
        "server": options.server,
        "batch_size": options.batch_size,
        "retries": client.retry_count,
        "split": options.split,
        "model_fingerprint": model.fingerprint,
        "data": image_set.source,
        "input_size": model.input_size,
        "codec": asdict(options.codec),
    }
    return build_summary(record, labels, model.input_size * model.input_size, wall_s, settings)
