"""AMP-safe regions (spec §9.8): parts that must not run in half precision use these two helpers.

FFTs (half-precision cuFFT only takes power-of-two sizes), attention scores and softmax, normalisation statistics
and the pyramid run with autocast off, in float32; float64 inputs stay float64 (the exactness tests use them).
Callers cast their results back to the input's dtype where the next layer expects it.
"""

from __future__ import annotations

import torch
from torch import Tensor


def full_precision(x: Tensor) -> Tensor:
    """``x`` as float32, or unchanged when it is float64."""
    return x if x.dtype == torch.float64 else x.float()


def autocast_off(x: Tensor) -> torch.autocast:
    """Context manager disabling autocast on ``x``'s device type."""
    return torch.autocast(device_type=x.device.type, enabled=False)
