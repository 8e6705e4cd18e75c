"""The server's model: decoding of the edge's bitstreams and the tail of the split network."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from codec import BitstreamError, read_sparse
from codec.sparse import reconstruct, reconstruct_batch
from splitnet.checkpoint import load_checkpoint
from splitnet.model import SplitModel

_LOGGER = logging.getLogger(__name__)

TOP_K = 5


@dataclass(frozen=True)
class ImagePrediction:
    """The most probable class of one image and its top-k classes with softmax probabilities."""

    class_index: int
    class_name: str
    top: list[tuple[int, float]]


class ImageDecodeError(Exception):
    """A bitstream of a batch that failed to decode, with the image's index in the batch."""

    def __init__(self, index: int, error: BitstreamError) -> None:
        super().__init__(f"image {index}: {error}")
        self.index = index
        self.error = error


class TailEngine:
    """A split model in eval mode that decodes feature maps and runs the tail on whole batches.

    ``run_tail`` takes no lock, so callers that share one engine across
    threads decide how many batches run at once.
    """

    def __init__(self, model: SplitModel, metadata: dict[str, Any]) -> None:
        self.model = model.eval()
        self.metadata = metadata
        self.fingerprint = str(metadata["fingerprint"])
        self.split = model.split
        self.class_names = [str(name) for name in metadata["class_names"]]
        self.input_size = int(metadata["input_size"])
        self.feature_shape = model.feature_shape(self.input_size)

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, split: str = "layer1") -> "TailEngine":
        """Load a checkpoint and build the engine for its tail after ``split``."""
        loaded = load_checkpoint(checkpoint)
        engine = cls(SplitModel(loaded.model, split), loaded.metadata)
        _LOGGER.info(
            "loaded %s (fingerprint %s, %d classes), split %s, feature shape %s",
            checkpoint,
            engine.fingerprint[:12],
            len(engine.class_names),
            split,
            engine.feature_shape,
        )
        return engine

    def decode_batch(self, bitstreams: Sequence[bytes]) -> torch.Tensor:
        """Decode one bitstream per image into an N x C x H x W float32 batch.

        Raises ``ImageDecodeError`` for the first bitstream that is invalid or
        whose map shape differs from the head's output shape at this split.
        """
        maps = []
        for index, data in enumerate(bitstreams):
            try:
                maps.append(read_sparse(data, expected_shape=self.feature_shape))
            except BitstreamError as error:
                raise ImageDecodeError(index, error) from error

        # One numpy pass rebuilds maps of one block size; a client may mix
        # block sizes between images, and those are rebuilt one by one.
        if len({sparse.config.block_size for sparse in maps}) == 1:
            return torch.from_numpy(reconstruct_batch(maps))
        return torch.from_numpy(np.stack([reconstruct(sparse) for sparse in maps]))

    @torch.no_grad()
    def run_tail(self, features: torch.Tensor) -> list[ImagePrediction]:
        """Run the tail, softmax and top-k on a decoded batch and return one prediction per image."""
        logits = self.model.tail(features)
        probabilities = torch.softmax(logits.float(), dim=1)
        top_probabilities, top_indices = probabilities.topk(min(TOP_K, probabilities.shape[1]), dim=1)

        predictions = []
        for indices, values in zip(top_indices.tolist(), top_probabilities.tolist()):
            predictions.append(
                ImagePrediction(
                    class_index=indices[0],
                    class_name=self.class_names[indices[0]],
                    top=list(zip(indices, values)),
                )
            )
        return predictions
