"""The "ViT" of STFM: Restormer transformer blocks (spec §4, "ViT").

Zamir et al., "Restormer", CVPR'22 (swz30/Restormer ``basicsr/models/archs/restormer_arch.py``):

- ``x = x + MDTA(LN(x))``; ``x = x + GDFN(LN(x))``; ``[B, C, h, w] -> [B, C, h, w]``, any h, w >= 1.
- MDTA (multi-Dconv head transposed attention): q, k, v from conv1x1 + depthwise conv3x3; attention is between
  *channels* (``[C/heads, C/heads]`` per head, q and k L2-normalised over pixels, learned temperature), so its cost
  is O(C^2 hw) and it needs no positional embedding: it runs on any size, 4K included, where a patch ViT would need
  its positional embedding interpolated.
- GDFN (gated-Dconv feed-forward): conv1x1 to 2 * int(C * 2.66), depthwise conv3x3, ``gelu(x1) * x2``, conv1x1 back.
- LayerNorm over channels, per pixel, with bias. Convolutions without bias, as in Restormer.

AMP: layer norm, q/k normalisation, the attention scores and their softmax run in float32 (spec §9.8): the
q.k sums run over every pixel of the map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fmstf_data.errors import ModelError
from fmstf_model.precision import autocast_off, full_precision


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of each pixel: ``[B, C, h, w] -> [B, C, h, w]``, statistics in float32."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        with autocast_off(x):
            out = self.norm(full_precision(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return out.to(x.dtype)


class MDTA(nn.Module):
    """Multi-Dconv head transposed (channel) attention: ``[B, C, h, w] -> [B, C, h, w]``."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        if channels % heads:
            raise ModelError(f"transformer channels ({channels}) must be divisible by the number of heads ({heads})")
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(channels, 3 * channels, 1, bias=False)
        self.qkv_depthwise = nn.Conv2d(3 * channels, 3 * channels, 3, padding=1, groups=3 * channels, bias=False)
        self.project = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, height, width = x.shape
        qkv = self.qkv_depthwise(self.qkv(x)).view(batch, 3, self.heads, channels // self.heads, height * width)
        with autocast_off(x):
            q, k, v = full_precision(qkv).unbind(dim=1)  # each [B, heads, C/heads, hw]
            q = F.normalize(q, dim=-1)
            k = F.normalize(k, dim=-1)
            attention = torch.softmax((q @ k.transpose(-1, -2)) * self.temperature.to(q.dtype), dim=-1)
            out = (attention @ v).reshape(batch, channels, height, width)
        return self.project(out.to(x.dtype))


class GDFN(nn.Module):
    """Gated-Dconv feed-forward network: ``[B, C, h, w] -> [B, C, h, w]``, hidden width ``int(C * expansion)``."""

    def __init__(self, channels: int, expansion: float):
        super().__init__()
        hidden = int(channels * expansion)
        self.project_in = nn.Conv2d(channels, 2 * hidden, 1, bias=False)
        self.depthwise = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden, bias=False)
        self.project_out = nn.Conv2d(hidden, channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        gate, value = self.depthwise(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(gate) * value)


class TransformerBlock(nn.Module):
    """Restormer block: ``[B, C, h, w] -> [B, C, h, w]``.

    Args:
        channels: C. heads: MDTA heads (C must be divisible by it). ffn_expansion: GDFN width factor (2.66).
    """

    def __init__(self, channels: int, heads: int, ffn_expansion: float = 2.66):
        super().__init__()
        self.norm1 = ChannelLayerNorm(channels)
        self.attention = MDTA(channels, heads)
        self.norm2 = ChannelLayerNorm(channels)
        self.feed_forward = GDFN(channels, ffn_expansion)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.feed_forward(self.norm2(x))
