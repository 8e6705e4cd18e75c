"""Baselines measured on the same test images as the codec.

- ``whole_model``: the unsplit model on the original images.
- ``uncompressed_split``: head, then tail, with the float32 feature map
  passed on unchanged; its BPP is the float32 map's size.
- ``input_coding``: JPEG and WebP of the input image at several qualities,
  decoded and classified by the whole model. Sizes are the whole files,
  headers included, and for JPEG also the payload without its tables (see
  ``jpeg_payload_size``).

The test images themselves may already be JPEG files (the CIFAR-10 JPEG
archive is), so the input-coding baseline codes decoded pixels a second
time, as an edge device would.
"""

from __future__ import annotations

import io
import time
from typing import Any

import numpy as np
import torch
from PIL import Image
from PIL import features as pil_features
from torch import nn
from tqdm import tqdm

from splitnet.data import ImageSet, normalize
from splitnet.evaluate import predict
from splitnet.model import SplitModel

# Pillow save options per format: baseline JPEG with the standard
# (unoptimized) Huffman tables and 4:2:0 chroma subsampling, and lossy WebP
# at Pillow's default effort.
IMAGE_FORMATS: dict[str, tuple[str, dict[str, Any]]] = {
    "jpeg": ("JPEG", {"subsampling": "4:2:0", "optimize": False, "progressive": False}),
    "webp": ("WEBP", {"lossless": False, "method": 4}),
}

# JPEG segments that a decoder knowing the encoder's tables can do without:
# APP0..APP15 (0xE0..0xEF), COM (0xFE), DQT (0xDB) and DHT (0xC4).
_TABLE_AND_APP_MARKERS = frozenset([*range(0xE0, 0xF0), 0xFE, 0xDB, 0xC4])
_SOS = 0xDA


def jpeg_payload_size(data: bytes) -> int:
    """Return the size of a single-scan JPEG file without its APPn, COM, DQT and DHT segments.

    What remains is what a decoder that already has the quantization and
    Huffman tables needs: SOI, the frame header (SOF), the scan header
    (SOS), the entropy-coded data and EOI. The frame header is kept because
    it carries the image size, as the codec's bitstream carries the map's
    shape. Raises ``ValueError`` for data that is not a JPEG file.
    """
    if data[:2] != b"\xff\xd8":
        raise ValueError(f"not a JPEG file: it starts with {data[:2].hex()}, expected ffd8 (SOI)")

    position = 2
    dropped = 0
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            raise ValueError(f"invalid JPEG marker at byte {position}: {data[position]:02x}, expected ff")
        marker = data[position + 1]
        if marker == 0xFF:
            position += 1
            continue
        if marker == _SOS:
            return len(data) - dropped
        segment = 2 + int.from_bytes(data[position + 2 : position + 4], "big")
        if marker in _TABLE_AND_APP_MARKERS:
            dropped += segment
        position += segment
    raise ValueError("invalid JPEG file: no SOS (start of scan) marker")


def encode_image(pixels: np.ndarray, image_format: str, quality: int) -> bytes:
    """Encode an H x W x 3 uint8 RGB array as a JPEG or WebP file."""
    pil_format, options = IMAGE_FORMATS[image_format]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=pil_format, quality=quality, **options)
    return buffer.getvalue()


def decode_image(data: bytes) -> np.ndarray:
    """Decode an image file into an H x W x 3 uint8 RGB array."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def top1_accuracy(
    network: nn.Module,
    image_set: ImageSet,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    batch_size: int,
) -> float:
    """Return the whole model's top-1 accuracy on ``image_set`` as correct / total, from 0 to 1."""
    predicted = predict(network, image_set, mean, std, batch_size)
    return int((predicted == image_set.labels).sum()) / len(image_set)


def encoder_descriptions() -> dict[str, str]:
    """Describe the JPEG and WebP encoders and their settings."""
    return {
        "jpeg": f"Pillow, libjpeg {pil_features.version('jpg')}, baseline, standard Huffman tables, 4:2:0",
        "webp": f"Pillow, libwebp {pil_features.version('webp')}, lossy, method 4",
    }


def input_coding(
    network: nn.Module,
    image_set: ImageSet,
    image_format: str,
    quality: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    batch_size: int,
) -> dict[str, Any]:
    """Code every image of ``image_set`` at one quality and classify the decoded images."""
    pixels = int(image_set.images.shape[-2]) * int(image_set.images.shape[-1])
    arrays = image_set.images.permute(0, 2, 3, 1).numpy()

    sizes, payload_sizes, decoded = [], [], []
    for array in arrays:
        data = encode_image(np.ascontiguousarray(array), image_format, quality)
        sizes.append(len(data))
        if image_format == "jpeg":
            payload_sizes.append(jpeg_payload_size(data))
        decoded.append(decode_image(data))

    coded_images = torch.from_numpy(np.stack(decoded).transpose(0, 3, 1, 2).copy())
    coded_set = ImageSet(coded_images, image_set.labels, image_set.class_names, f"{image_format} q{quality}")
    bpp = np.asarray(sizes, dtype=np.float64) * 8 / pixels
    return {
        "format": image_format,
        "quality": quality,
        "accuracy": top1_accuracy(network, coded_set, mean, std, batch_size),
        "bytes_mean": float(np.mean(sizes)),
        "bpp_mean": float(bpp.mean()),
        "bpp_p50": float(np.percentile(bpp, 50)),
        "bpp_p95": float(np.percentile(bpp, 95)),
        "payload_bpp_mean": float(np.mean(payload_sizes)) * 8 / pixels if payload_sizes else None,
        "compression_ratio_rgb": pixels * 3 / float(np.mean(sizes)),
    }


@torch.no_grad()
def split_accuracy(
    model: SplitModel,
    image_set: ImageSet,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    batch_size: int,
) -> float:
    """Return the top-1 accuracy of head, then tail, on float32 features with no codec between them."""
    model.eval()
    correct = 0
    for start in range(0, len(image_set), batch_size):
        batch = normalize(image_set.images[start : start + batch_size], mean, std)
        logits = model.tail(model.head(batch))
        correct += int((logits.argmax(1) == image_set.labels[start : start + batch_size]).sum())
    return correct / len(image_set)


@torch.no_grad()
def split_times_ms(
    model: SplitModel,
    images: torch.Tensor,
    mean: tuple[float, ...],
    std: tuple[float, ...],
) -> dict[str, float]:
    """Return the mean head and tail wall time per image at batch 1, in milliseconds, after one warm-up image."""
    model.eval()
    model.tail(model.head(normalize(images[:1], mean, std)))

    head_ms, tail_ms = [], []
    for index in range(images.shape[0]):
        batch = normalize(images[index : index + 1], mean, std)
        started = time.perf_counter()
        features = model.head(batch)
        middle = time.perf_counter()
        model.tail(features)
        head_ms.append(1000 * (middle - started))
        tail_ms.append(1000 * (time.perf_counter() - middle))
    return {"images": int(images.shape[0]), "head_ms_mean": float(np.mean(head_ms)),
            "tail_ms_mean": float(np.mean(tail_ms))}


def measure_baselines(
    network: nn.Module,
    model: SplitModel,
    image_set: ImageSet,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    batch_size: int,
    qualities: dict[str, list[int]],
    timing_images: int,
    progress: bool = False,
) -> dict[str, Any]:
    """Measure every baseline on ``image_set``; ``qualities`` maps ``jpeg`` and ``webp`` to their quality lists."""
    channels, height, width = model.feature_shape(int(image_set.images.shape[-1]))
    pixels = int(image_set.images.shape[-2]) * int(image_set.images.shape[-1])
    feature_bytes = channels * height * width * 4

    coded = []
    jobs = [(image_format, quality) for image_format, values in qualities.items() for quality in values]
    for image_format, quality in tqdm(jobs, desc="input-coding baselines", unit="quality", disable=not progress,
                                      leave=False):
        coded.append(input_coding(network, image_set, image_format, quality, mean, std, batch_size))

    return {
        "whole_model": {"accuracy": top1_accuracy(network, image_set, mean, std, batch_size)},
        "uncompressed_split": {
            "accuracy": split_accuracy(model, image_set, mean, std, batch_size),
            "feature_shape": [channels, height, width],
            "bytes": feature_bytes,
            "bpp": feature_bytes * 8 / pixels,
            "compression_ratio_rgb": pixels * 3 / feature_bytes,
        },
        "input_coding": coded,
        "encoders": encoder_descriptions(),
        "timing": split_times_ms(model, image_set.images[:timing_images], mean, std),
    }
