"""FMSTFnet (SDR -> HDR10 video reconstruction) in PyTorch: the model, its configurations and its loss.

See docs/model.md for shapes, parameter counts, timings and every choice made where the paper is silent.
"""

from fmstf_model.fmstfnet import FMSTFConfig, FMSTFnet, FMSTFOutput, StreamState, init_weights
from fmstf_model.losses import FMSTFLoss, LossTerms
from fmstf_model.pyramid import LaplacianPyramid

__all__ = [
    "FMSTFConfig",
    "FMSTFLoss",
    "FMSTFOutput",
    "FMSTFnet",
    "LaplacianPyramid",
    "LossTerms",
    "StreamState",
    "init_weights",
]
