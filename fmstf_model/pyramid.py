"""Laplacian pyramid with exact reconstruction, for any image size (odd sizes and 1-pixel levels included).

Shapes and ordering follow the FMSTFnet paper (§II): level 0 is the *coarsest*.

- Gaussian pyramid ``[I_0, ..., I_s]``: ``I_k`` is ``[N, C, H_k, W_k]`` with ``H_s = H`` and
  ``H_{k-1} = ceil(H_k / 2)``, so ``H_k = ceil(H / 2**(s-k))``.
- Laplacian (high-frequency) pyramid ``[L_1, ..., L_s]``: ``L_k = I_k - up(I_{k-1}, size of I_k)``, same shape as
  ``I_k``.
- Reconstruction: ``I_k = up(I_{k-1}) + L_k``; exact up to one float rounding per level, because decomposition and
  reconstruction call the *same* ``up`` (spec §9.1).

The operator follows LPTN's ``Lap_Pyramid_Conv`` (5x5 binomial kernel / 256; down = blur then keep every second
pixel; up = zero insertion, blur with 4x the kernel, crop), with one deliberate change:

- **Replicate padding instead of reflect.** Reflect padding needs the pad (2) to be smaller than the dimension, so
  it fails on 1- and 2-pixel levels (which the tiny config and small inputs produce, spec §9.10). Replicate
  padding works on any size and, like reflect, keeps a constant image constant. ``up`` pads the *coarse* image by
  one pixel before zero insertion and then blurs without padding, which keeps the even/odd phase of the inserted
  zeros intact at the borders (padding after zero insertion with replicate would not).

The pyramid runs in float32 (or float64 when given float64) with autocast off, so AMP cannot make it inexact.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fmstf_data.errors import ModelError
from fmstf_model.precision import autocast_off, full_precision

_BINOMIAL_5 = (1.0, 4.0, 6.0, 4.0, 1.0)


def level_sizes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    """Sizes ``[(H_0, W_0), ..., (H_s, W_s)]`` of a pyramid with ``levels`` (= s) downsamplings, coarsest first."""
    sizes = [(height, width)]
    for _ in range(levels):
        h, w = sizes[-1]
        sizes.append(((h + 1) // 2, (w + 1) // 2))
    return sizes[::-1]


class LaplacianPyramid(nn.Module):
    """Gaussian / Laplacian pyramid operator with ``levels`` downsamplings (``s`` in the paper).

    Args:
        levels: number of downsamplings s >= 0 (FMSTFnet default 3, tiny config 2).

    The 5x5 kernel is a non-persistent buffer: it follows ``.to(device)`` but stays out of ``state_dict``.
    """

    def __init__(self, levels: int):
        super().__init__()
        if levels < 0:
            raise ModelError(f"pyramid levels must be >= 0, got {levels}")
        self.levels = levels
        taps = torch.tensor(_BINOMIAL_5, dtype=torch.float64)
        kernel = torch.outer(taps, taps) / 256.0
        self.register_buffer("kernel", kernel.to(torch.float32)[None, None], persistent=False)

    def _blur(self, x: Tensor, gain: float, pad: int) -> Tensor:
        """Depthwise 5x5 binomial blur of ``x [N, C, h, w]`` after ``pad`` pixels of replicate padding."""
        channels = x.shape[1]
        weight = (self.kernel.to(x.dtype) * gain).expand(channels, 1, 5, 5)
        if pad:
            x = F.pad(x, (pad, pad, pad, pad), mode="replicate")
        return F.conv2d(x, weight, groups=channels)

    def down(self, x: Tensor) -> Tensor:
        """``[N, C, h, w] -> [N, C, ceil(h/2), ceil(w/2)]``: blur, then keep even rows and columns."""
        return self._blur(x, 1.0, pad=2)[:, :, ::2, ::2]

    def up(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        """``[N, C, h, w] -> [N, C, size]`` with ``size`` in ``{2h-1, 2h} x {2w-1, 2w}``.

        Pads the coarse image by one pixel (replicate), inserts zeros (sample j at position 2j), blurs with 4x the
        kernel without padding (giving exactly 2h x 2w) and crops to ``size``.
        """
        n, c, h, w = x.shape
        padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
        zeros = padded.new_zeros(n, c, 2 * (h + 2), 2 * (w + 2))
        zeros[:, :, ::2, ::2] = padded
        full = self._blur(zeros, 4.0, pad=0)
        return full[:, :, : size[0], : size[1]]

    def gaussian(self, x: Tensor) -> list[Tensor]:
        """Gaussian pyramid ``[I_0 (coarsest), ..., I_s = x]`` of ``x [N, C, H, W]``."""
        with autocast_off(x):
            x = full_precision(x)
            levels = [x]
            for _ in range(self.levels):
                levels.append(self.down(levels[-1]))
        return levels[::-1]

    def decompose(self, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """``x [N, C, H, W]`` -> (Gaussian ``[I_0..I_s]``, Laplacian ``[L_1..L_s]``), both coarsest first."""
        gaussian = self.gaussian(x)
        with autocast_off(x):
            highs = [fine - self.up(coarse, fine.shape[-2:]) for coarse, fine in zip(gaussian[:-1], gaussian[1:])]
        return gaussian, highs

    def reconstruct(self, low: Tensor, highs: list[Tensor]) -> Tensor:
        """Inverse of :meth:`decompose`: ``I_0 [N, C, H_0, W_0]`` and ``[L_1..L_s]`` -> ``I_s [N, C, H, W]``."""
        if len(highs) != self.levels:
            raise ModelError(f"expected {self.levels} high-frequency levels, got {len(highs)}")
        with autocast_off(low):
            image = full_precision(low)
            for high in highs:
                image = self.up(image, high.shape[-2:]) + full_precision(high)
        return image

