"""Edge half of split inference: the head, the codec and a gRPC client of the cloud server.

    with InferenceClient.connect("127.0.0.1:50051", model.fingerprint, "layer1") as client:
        result = client.classify(encode_batch(model.head(images), CodecConfig()))

``python -m edge_client --server HOST:PORT --checkpoint PATH`` classifies a
test set and prints a JSON summary.
"""

from codec import encode_batch
from edge_client.client import BatchResult, InferenceClient, InferenceError, Prediction, ServerTimings
from edge_client.model import EdgeModel
from edge_client.pipeline import EdgeOptions, run_edge

__all__ = [
    "BatchResult",
    "EdgeModel",
    "EdgeOptions",
    "InferenceClient",
    "InferenceError",
    "Prediction",
    "ServerTimings",
    "encode_batch",
    "run_edge",
]
