"""High-frequency branches and the Adaptive Hybrid Module (AHM) (paper §II and §II.C, spec §5).

- :class:`HighFrequencyBranch` (one per level k = 1..s, separate weights): ``L_k [B, 3, H_k, W_k] ->
  K_k [B, c_h, H_k, W_k]``: conv3x3(3 -> c_h), then n_r residual blocks without BatchNorm (conv-ReLU-conv plus
  identity, He et al. [10] as in HDRTVNet's ``ResidualBlock_noBN``; their convs are initialised x0.1, see
  ``fmstfnet.init_weights``).
- :class:`AHM` implements eq. (3) read with consistent levels (spec §0): the paper's
  ``Y_{s+1} = h(phi2(cat(up(phi1(Y_s)), K_s)))`` combines a level-s image with a level-s detail map and cannot
  produce level s+1; the reading used is ``Y_k = relu(phi2(cat(up(phi1(Y_{k-1})), K_k)))`` for k = 1..s, with
  ``K_k = f_Res(L_k)`` (§II; not "the high-frequency component of F^t", which the text contradicts).
  phi1 = conv3x3(3 -> c_h), up = bilinear to ``K_k``'s exact size (``align_corners=False``), phi2 =
  conv3x3(2c_h -> 3), h = ReLU. ``[B, 3, H_{k-1}, W_{k-1}], [B, c_h, H_k, W_k] -> [B, 3, H_k, W_k]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ResidualBlockNoBN(nn.Module):
    """``x + conv3x3(relu(conv3x3(x)))``: ``[B, c, h, w] -> [B, c, h, w]``."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class HighFrequencyBranch(nn.Module):
    """``L_k [B, 3, H_k, W_k] -> K_k [B, c_h, H_k, W_k]``: conv3x3(3 -> c_h) and ``blocks`` residual blocks."""

    def __init__(self, channels: int, blocks: int):
        super().__init__()
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.blocks = nn.Sequential(*(ResidualBlockNoBN(channels) for _ in range(blocks)))

    def forward(self, high: Tensor) -> Tensor:
        return self.blocks(self.head(high))


class AHM(nn.Module):
    """Adaptive Hybrid Module, eq. (3): ``(Y_{k-1} [B, 3, H_{k-1}, W_{k-1}], K_k [B, c_h, H_k, W_k]) -> Y_k``."""

    def __init__(self, channels: int):
        super().__init__()
        self.phi1 = nn.Conv2d(3, channels, 3, padding=1)
        self.phi2 = nn.Conv2d(2 * channels, 3, 3, padding=1)

    def forward(self, coarse: Tensor, detail: Tensor) -> Tensor:
        up = F.interpolate(self.phi1(coarse), size=detail.shape[-2:], mode="bilinear", align_corners=False)
        return F.relu(self.phi2(torch.cat((up, detail), dim=1)))
