"""Fast Fourier convolution (FFC), the global operation of CGLFM's encoder (spec §3.3).

Follows LaMa (``saicinpainting/training/modules/ffc.py``) and the FFC paper (Chi et al., NeurIPS'20):

- A feature map ``[B, c, h, w]`` is split into a local part (the first ``c - g`` channels) and a global part (the
  last ``g = int(c * global_ratio)`` channels, ratio 0.75 as in LaMa's ``ffc_resnet_075``).
- Local output = ``l2l(x_l) + g2l(x_g)``; global output = ``l2g(x_l) + g2g(x_g)``; the two are concatenated again
  and go through LeakyReLU(0.2). l2l, g2l, l2g are 3x3 convolutions with **zero** padding (reflect padding
  crashes on the 1-2 px maps of the deepest stages).
- g2g is a :class:`SpectralTransform`: 1x1 conv to half width + ReLU, a :class:`FourierUnit`, a residual add and a
  1x1 conv back to full width. The Fourier unit sees the whole map, so every output pixel depends on every input
  pixel: the "global operation" of the paper.

Choices where LaMa differs: BatchNorm is dropped everywhere (spec §9.9: statistics from batch-7 crops do not match
full-frame inference) and the local Fourier unit (LFU) is off, as in LaMa's released configs.

AMP: the FFT runs in float32 with autocast off (spec §9.8: half-precision cuFFT only takes power-of-two sizes, and
a 270x480 map is not one); the result is cast back to the input's dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fmstf_data.errors import ModelError
from fmstf_model.precision import autocast_off, full_precision


def split_channels(channels: int, global_ratio: float) -> tuple[int, int]:
    """(local, global) channel counts of an FFC map of ``channels`` channels; global = int(channels * ratio)."""
    global_channels = int(channels * global_ratio)
    return channels - global_channels, global_channels


class FourierUnit(nn.Module):
    """Convolution in the frequency domain: ``[B, c_in, h, w] -> [B, c_out, h, w]``, any h, w >= 1.

    ``rfft2(norm='ortho')`` -> real and imaginary parts stacked on channels ``[B, 2c_in, h, w//2+1]`` -> 1x1 conv
    -> ReLU -> back to complex -> ``irfft2(s=(h, w), norm='ortho')``.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.out_channels = out_channels
        self.conv = nn.Conv2d(2 * in_channels, 2 * out_channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, height, width = x.shape
        with autocast_off(x):
            spectrum = torch.fft.rfft2(full_precision(x), norm="ortho")  # [B, c, h, w//2+1], complex
            stacked = torch.stack((spectrum.real, spectrum.imag), dim=2).flatten(1, 2)  # [B, 2c, h, w//2+1]
            mixed = F.relu(self.conv(stacked))
            mixed = mixed.view(batch, self.out_channels, 2, height, -1)
            spectrum = torch.complex(mixed[:, :, 0], mixed[:, :, 1])
            out = torch.fft.irfft2(spectrum, s=(height, width), norm="ortho")
        return out.to(x.dtype)


class SpectralTransform(nn.Module):
    """LaMa's g2g path: ``[B, c_in, h, w] -> [B, c_out, h, w]``.

    ``y = relu(conv1x1(x))`` (c_out // 2 channels), ``out = conv1x1(y + FourierUnit(y))``.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        hidden = max(out_channels // 2, 1)
        self.reduce = nn.Conv2d(in_channels, hidden, kernel_size=1, bias=False)
        self.fourier = FourierUnit(hidden, hidden)
        self.expand = nn.Conv2d(hidden, out_channels, kernel_size=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.reduce(x))
        return self.expand(y + self.fourier(y))


class FFC(nn.Module):
    """One FFC layer on a single tensor: ``[B, c_in, h, w] -> [B, c_out, h, w]``, followed by LeakyReLU(0.2).

    The first ``c - int(c * global_ratio)`` channels of input and output are the local part, the rest the global
    part (see the module docstring). Both parts must have at least one channel.

    Args:
        in_channels, out_channels: c_in, c_out.
        global_ratio: share of channels in the global (spectral) path, 0 < ratio < 1 (LaMa: 0.75).
    """

    def __init__(self, in_channels: int, out_channels: int, global_ratio: float = 0.75):
        super().__init__()
        self.in_local, self.in_global = split_channels(in_channels, global_ratio)
        self.out_local, self.out_global = split_channels(out_channels, global_ratio)
        if min(self.in_local, self.in_global, self.out_local, self.out_global) < 1:
            raise ModelError(
                f"FFC({in_channels}->{out_channels}) with global_ratio={global_ratio} leaves a path without channels "
                f"(local/global in: {self.in_local}/{self.in_global}, out: {self.out_local}/{self.out_global}); "
                "use more channels or a ratio further from 0 and 1"
            )
        self.local_to_local = nn.Conv2d(self.in_local, self.out_local, 3, padding=1)
        self.global_to_local = nn.Conv2d(self.in_global, self.out_local, 3, padding=1)
        self.local_to_global = nn.Conv2d(self.in_local, self.out_global, 3, padding=1)
        self.global_to_global = SpectralTransform(self.in_global, self.out_global)

    def forward(self, x: Tensor) -> Tensor:
        x_local, x_global = x.split((self.in_local, self.in_global), dim=1)
        out_local = self.local_to_local(x_local) + self.global_to_local(x_global)
        out_global = self.local_to_global(x_local) + self.global_to_global(x_global)
        return F.leaky_relu(torch.cat((out_local, out_global), dim=1), 0.2)
