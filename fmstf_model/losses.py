"""FMSTFnet loss, eq. (4): ``L = lambda_1 * L_r + lambda_2 * L_p`` (paper §II.C, spec §6).

- ``L_r = sum_k w_k * mean|Y_k - G_k|`` over the levels k = 0..s, where ``G_k`` is the *Gaussian* pyramid of the
  ground-truth HDR frame built with the model's own operator (the ``Y_k`` are images, not Laplacian residuals).
  A per-level mean gives every level the same say for the same error; a per-pixel sum would let the
  full-resolution level dominate (spec §9.12). ``w_k`` defaults to 1.
- ``L_p = sum_k sum_l v_l * mean|phi_l(Y_k) - phi_l(G_k)|`` with frozen VGG19 features ``phi_l`` (ImageNet
  normalisation applied to the PQ values), over levels whose short side is >= 32 px (VGG's pooling needs it).
  Default layer conv5_4 before ReLU (HDRTVNet ``define_F``); ``REAL_ESRGAN_LAYERS`` is the alternative set.
- Defaults ``lambda_1 = 1``, ``lambda_2 = 0.01`` [G]: the paper gives no values; tune lambda_2 over
  {1e-3, 1e-2, 1e-1}.

The VGG weights load from a local file (``vgg_weights_path``); nothing downloads. Without a file the perceptual term
is off (0) and the loss logs that once, when it is built. The VGG lives here, outside the model, so model
initialisation and DDP never touch it (spec §9.11).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

from fmstf_data.errors import ModelError
from fmstf_model.precision import full_precision
from fmstf_model.pyramid import LaplacianPyramid
from fmstf_model.vgg import layer_index, load_vgg19_features

logger = logging.getLogger(__name__)

DEFAULT_VGG_LAYERS: Mapping[str, float] = {"conv5_4": 1.0}
"""HDRTVNet's perceptual feature: conv5_4 before its ReLU."""
REAL_ESRGAN_LAYERS: Mapping[str, float] = {
    "conv1_2": 0.1,
    "conv2_2": 0.1,
    "conv3_4": 1.0,
    "conv4_4": 1.0,
    "conv5_4": 1.0,
}
"""Real-ESRGAN ``train_realesrgan_x4plus.yml`` layer weights."""


class LossTerms(NamedTuple):
    """Scalar loss tensors: ``total = reconstruction_weight * reconstruction + perceptual_weight * perceptual``."""

    total: Tensor
    reconstruction: Tensor
    perceptual: Tensor


class FMSTFLoss(nn.Module):
    """Multi-scale L1 over pyramids plus an optional VGG19 perceptual term.

    Args:
        pyramid_levels: s of the model (``FMSTFConfig.pyramid_levels``); predictions have s + 1 levels.
        reconstruction_weight: lambda_1. perceptual_weight: lambda_2 (0 turns the term off).
        level_weights: w_0..w_s for ``L_r`` (coarsest first); all 1 when None.
        vgg_weights_path: local torchvision VGG19 state_dict file; None turns the perceptual term off.
        vgg_layers: ``{layer name: weight}``, e.g. ``DEFAULT_VGG_LAYERS`` or ``REAL_ESRGAN_LAYERS``.
        perceptual_min_size: levels whose short side is below this many pixels get no perceptual term.
    """

    def __init__(
        self,
        pyramid_levels: int,
        *,
        reconstruction_weight: float = 1.0,
        perceptual_weight: float = 0.01,
        level_weights: Sequence[float] | None = None,
        vgg_weights_path: str | Path | None = None,
        vgg_layers: Mapping[str, float] = DEFAULT_VGG_LAYERS,
        perceptual_min_size: int = 32,
    ):
        super().__init__()
        self.pyramid = LaplacianPyramid(pyramid_levels)
        if level_weights is None:
            level_weights = [1.0] * (pyramid_levels + 1)
        if len(level_weights) != pyramid_levels + 1:
            raise ModelError(
                f"level_weights needs {pyramid_levels + 1} values (levels 0..{pyramid_levels}), "
                f"got {list(level_weights)}"
            )
        if reconstruction_weight < 0 or perceptual_weight < 0 or min(level_weights) < 0:
            raise ModelError(
                f"loss weights must be >= 0, got reconstruction={reconstruction_weight}, "
                f"perceptual={perceptual_weight}, levels={list(level_weights)}"
            )
        self.level_weights = [float(w) for w in level_weights]
        self.reconstruction_weight = float(reconstruction_weight)
        self.perceptual_weight = float(perceptual_weight)
        self.perceptual_min_size = perceptual_min_size
        self.vgg_layers = {layer_index(name): float(weight) for name, weight in vgg_layers.items()}
        if not self.vgg_layers:
            raise ModelError("vgg_layers is empty; name at least one layer, e.g. {'conv5_4': 1.0}")

        self.vgg = None
        if perceptual_weight > 0 and vgg_weights_path is not None:
            self.vgg = load_vgg19_features(vgg_weights_path, last_layer=max(self.vgg_layers))
            logger.info("perceptual loss on: VGG19 %s from %s", sorted(vgg_layers), vgg_weights_path)
        elif perceptual_weight > 0:
            logger.warning(
                "perceptual loss off: no VGG19 weights file given (vgg_weights_path=None); "
                "training uses the multi-scale L1 term only"
            )

    @property
    def perceptual_enabled(self) -> bool:
        return self.vgg is not None

    def forward(self, pyramid: Sequence[Tensor], target: Tensor) -> LossTerms:
        """``pyramid`` ``[Y_0..Y_s]`` (model output) and the ground-truth HDR frame ``target [B, 3, H, W]``."""
        reference = self.pyramid.gaussian(target)
        if len(pyramid) != len(reference) or any(y.shape != g.shape for y, g in zip(pyramid, reference)):
            raise ModelError(
                f"prediction pyramid shapes {[tuple(y.shape) for y in pyramid]} do not match the target's Gaussian "
                f"pyramid {[tuple(g.shape) for g in reference]}"
            )
        reconstruction = sum(
            weight * (full_precision(y) - full_precision(g)).abs().mean()
            for weight, y, g in zip(self.level_weights, pyramid, reference)
        )
        perceptual = self._perceptual(pyramid, reference) if self.vgg is not None else reconstruction.new_zeros(())
        total = self.reconstruction_weight * reconstruction + self.perceptual_weight * perceptual
        return LossTerms(total=total, reconstruction=reconstruction, perceptual=perceptual)

    def _perceptual(self, pyramid: Sequence[Tensor], reference: Sequence[Tensor]) -> Tensor:
        total = full_precision(pyramid[0]).new_zeros(())
        for y, g in zip(pyramid, reference):
            if min(y.shape[-2:]) < self.perceptual_min_size:
                continue
            predicted = self.vgg(y, self.vgg_layers)
            with torch.no_grad():
                wanted = self.vgg(g.to(y.dtype), self.vgg_layers)
            for index, weight in self.vgg_layers.items():
                total = total + weight * (full_precision(predicted[index]) - full_precision(wanted[index])).abs().mean()
        return total
