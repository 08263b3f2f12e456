"""CGLFM: Combined Global and Local Feature Modulation (paper §II.A, spec §3).

Runs per frame (weights shared across frames) on the coarsest pyramid level ``I_0 [B, 3, h, w]`` and returns the
preliminary HDR feature map ``F [B, C, h, w]``.

1. Head: ``I^F = conv3x3(C->C)(lrelu(conv3x3(3->C)(I_0)))`` ("two-layer convolution"); ``H_G := I^F``.
2. Global encoder f_CGFM: five stages ``FFC(c_{i-1}->c_i) -> AvgPool2d(3, 2, 1) -> InstanceNorm`` (no norm on the
   last stage), HDRTVNet's condition network with its 1x1 convs replaced by FFC. ``c_0 = C``.
3. f_AVG: global average pool -> ``C^G [B, c_5]``; ``C_A^G = 1 + Linear_A(C^G)``, ``C_B^G = Linear_B(C^G)``, both
   ``[B, C, 1, 1]`` (the "+1" as in HDRTVNet's ``out * scale + shift + out``).
4. Local decoder f_CLFM: five upsamplings; step i resizes (bilinear, to the skip's exact size, so no divisibility
   limits) the running map to encoder level i-1's size, concatenates that level's output and applies
   conv3x3 + LeakyReLU; a last conv3x3(C->2C) gives ``C_A^L = 1 + a`` and ``C_B^L = b``, each ``[B, C, h, w]``.
5. Modulation: eq. (1) ``H_L = C_A^G * H_G + C_B^G``; eq. (2) ``F = C_A^L * H_L + C_B^L``; then conv3x3(C->C).

Choices where the paper is silent (see docs/model.md): average pooling with ``count_include_pad=False`` (border
pixels are not darkened by the zero padding); no Dropout before the global heads (HDRTVNet has 0.5, the spec calls
it optional: it would make the global vector noisy and the tests non-deterministic); :class:`InstanceNorm2dAnySize`
instead of ``nn.InstanceNorm2d``, which raises on 1x1 maps (the deepest stages of small inputs).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fmstf_model.ffc import FFC
from fmstf_model.precision import autocast_off, full_precision


class InstanceNorm2dAnySize(nn.Module):
    """Affine instance normalisation ``[B, C, h, w] -> [B, C, h, w]`` that accepts 1x1 maps.

    Same result as ``nn.InstanceNorm2d(C, affine=True)`` (biased variance, eps 1e-5) where that works; on a 1x1
    map it returns the bias, which is the limit of the formula, instead of raising. Statistics in float32.
    """

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        with autocast_off(x):
            xf = full_precision(x)
            var, mean = torch.var_mean(xf, dim=(2, 3), keepdim=True, correction=0)
            out = (xf - mean) * torch.rsqrt(var + self.eps)
            out = out * self.weight[:, None, None] + self.bias[:, None, None]
        return out.to(x.dtype)


class EncoderStage(nn.Module):
    """``[B, c_in, h, w] -> [B, c_out, ceil(h/2), ceil(w/2)]``: FFC, AvgPool2d(3, 2, 1), optional InstanceNorm."""

    def __init__(self, in_channels: int, out_channels: int, global_ratio: float, normalise: bool):
        super().__init__()
        self.ffc = FFC(in_channels, out_channels, global_ratio)
        self.pool = nn.AvgPool2d(kernel_size=3, stride=2, padding=1, count_include_pad=False)
        self.norm = InstanceNorm2dAnySize(out_channels) if normalise else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.pool(self.ffc(x)))


class CGLFM(nn.Module):
    """Combined Global and Local Feature Modulation: ``I_0 [B, 3, h, w] -> F [B, C, h, w]``, any h, w >= 1.

    Args:
        channels: C, the low-frequency feature width (default 64, tiny 16).
        encoder_channels: c_1..c_n of the global encoder stages (paper: five; default 64,64,128,128,128).
        global_ratio: FFC global channel share (0.75).
    """

    def __init__(self, channels: int, encoder_channels: Sequence[int], global_ratio: float):
        super().__init__()
        self.channels = channels
        self.head = nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        widths = [channels, *encoder_channels]
        last = len(encoder_channels) - 1
        self.encoder = nn.ModuleList(
            EncoderStage(widths[i], widths[i + 1], global_ratio, normalise=i < last)
            for i in range(len(encoder_channels))
        )
        self.global_scale = nn.Linear(widths[-1], channels)
        self.global_shift = nn.Linear(widths[-1], channels)
        # Decoder step i (i = n..1) goes from level i to level i-1: input widths[i] + skip widths[i-1].
        self.decoder = nn.ModuleList(
            nn.Sequential(nn.Conv2d(widths[i] + widths[i - 1], widths[i - 1], 3, padding=1), nn.LeakyReLU(0.2))
            for i in range(len(encoder_channels), 0, -1)
        )
        self.local_head = nn.Conv2d(channels, 2 * channels, 3, padding=1)
        self.tail = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, low: Tensor) -> Tensor:
        features = self.head(low)  # I^F = H_G, [B, C, h, w]
        skips = [features]
        for stage in self.encoder:
            skips.append(stage(skips[-1]))  # level i: [B, c_i, ceil(h/2^i), ceil(w/2^i)]

        pooled = skips[-1].mean(dim=(2, 3))  # C^G [B, c_n]
        global_scale = 1.0 + self.global_scale(pooled)[:, :, None, None]  # C_A^G [B, C, 1, 1]
        global_shift = self.global_shift(pooled)[:, :, None, None]  # C_B^G

        decoded = skips[-1]
        for step, skip in zip(self.decoder, reversed(skips[:-1])):
            decoded = F.interpolate(decoded, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            decoded = step(torch.cat((decoded, skip), dim=1))
        local_scale, local_shift = self.local_head(decoded).chunk(2, dim=1)  # each [B, C, h, w]

        modulated = global_scale * features + global_shift  # eq. (1): H_L
        modulated = (1.0 + local_scale) * modulated + local_shift  # eq. (2)
        return self.tail(modulated)
