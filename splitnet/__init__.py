"""The ResNet-18 shared by the edge, the server and the experiments, cut at a named module."""

from splitnet.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from splitnet.model import ARCHITECTURES, SPLIT_POINTS, SplitModel, build_model

__all__ = [
    "ARCHITECTURES",
    "SPLIT_POINTS",
    "Checkpoint",
    "CheckpointError",
    "SplitModel",
    "build_model",
    "load_checkpoint",
    "save_checkpoint",
]
