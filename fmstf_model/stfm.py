"""STFM: Spatio-Temporal Fusion Module, one recurrent step (paper §II.B, spec §4 "Wiring").

All maps are ``[B, C, h, w]`` at the coarsest pyramid level. One step::

    X1  = HSTNAM1(F^{t-1}, F^t, F^{t+1})      # first inter-frame fusion
    X2  = HNAM(X1)                            # spatial non-local attention
    X3  = ViT(X2)                             # Restormer blocks
    S^t = HSTNAM2(S^{t-1}, X3, F^{t+1})       # second inter-frame fusion, with the recurrent state
    Y_0 = conv3x3(C -> 3)(S^t)                # the low-frequency HDR image (see :meth:`STFM.to_image`)

The paper says STFM has four inputs (F^{t-1}, F^t, F^{t+1}, S^{t-1}) and performs two inter-frame fusions, and
Table II ablates HSTNAM1, ViT and HSTNAM2 separately; Figs. 2-3 are not in the text, so this wiring is the spec's
reading [G]. The recurrent state is S^t itself (C channels): the paper's "intermediate feature rather than image".

Every module runs on every step, also when the state is zeros (the first frame): a skipped module would leave
parameters without gradients and break DDP with ``find_unused_parameters=False`` (spec §9.5).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fmstf_model.hashing_attention import HNAM, HSTNAM
from fmstf_model.transformer import TransformerBlock


class STFM(nn.Module):
    """One STFM step; see the module docstring for the wiring.

    Args:
        channels: C. reduction, n_hashes, chunk_size, res_scale: hashing attention settings (see HashingCore).
        vit_blocks, vit_heads, ffn_expansion: Restormer blocks. hash_seed: eval-mode seed; the three attention
        modules use hash_seed, +1 and +2 so their rotations differ.
    """

    def __init__(
        self,
        channels: int,
        *,
        reduction: int,
        n_hashes: int,
        chunk_size: int,
        res_scale: float,
        vit_blocks: int,
        vit_heads: int,
        ffn_expansion: float,
        hash_seed: int,
    ):
        super().__init__()
        attention = dict(reduction=reduction, n_hashes=n_hashes, chunk_size=chunk_size, res_scale=res_scale)
        self.hstnam1 = HSTNAM(channels, hash_seed=hash_seed, **attention)
        self.hnam = HNAM(channels, hash_seed=hash_seed + 1, **attention)
        self.vit = nn.Sequential(*(TransformerBlock(channels, vit_heads, ffn_expansion) for _ in range(vit_blocks)))
        self.hstnam2 = HSTNAM(channels, hash_seed=hash_seed + 2, **attention)
        self.image_head = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, f_prev: Tensor, f_cur: Tensor, f_next: Tensor, s_prev: Tensor) -> Tensor:
        """``F^{t-1}, F^t, F^{t+1}, S^{t-1}`` (each ``[B, C, h, w]``) -> ``S^t [B, C, h, w]``."""
        x = self.hstnam1(torch.stack((f_prev, f_cur, f_next), dim=1))
        x = self.vit(self.hnam(x))
        return self.hstnam2(torch.stack((s_prev, x, f_next), dim=1))

    def to_image(self, state: Tensor) -> Tensor:
        """``S^t [B, C, h, w] -> Y_0 [B, 3, h, w]``, the low-frequency HDR frame."""
        return self.image_head(state)
