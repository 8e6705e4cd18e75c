"""Cloud half of split inference: a gRPC server that decodes feature bitstreams and runs the tail.

    server, port = create_server("127.0.0.1:0", "checkpoints/cifar10_resnet18.pt", split="layer1")
    server.start()

``python -m cloud_server --checkpoint PATH`` runs it until SIGINT or SIGTERM.
"""

from cloud_server.engine import ImagePrediction, TailEngine
from cloud_server.server import SERVICE_NAME, build_server, create_server, serve
from cloud_server.service import SplitInferenceService

__all__ = [
    "SERVICE_NAME",
    "ImagePrediction",
    "SplitInferenceService",
    "TailEngine",
    "build_server",
    "create_server",
    "serve",
]
