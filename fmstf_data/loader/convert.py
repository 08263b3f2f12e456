"""Y'CbCr code planes -> R'G'B' for the loader, through the colour core's torch functions (CPU or GPU).

Which conversion a side needs (:func:`fmstf_data.color.params.color_params`) comes from the sample's JSON (``hdr`` / ``sdr`` dicts with ``bit_depth``,
``colorspace``, ``color_range``), with the defaults of the data we build: HDR 10-bit BT.2020 NCL narrow range,
SDR 8-bit BT.709 narrow range. The result is R'G'B' in [0, 1]: for HDR the PQ-encoded BT.2020 signal, for SDR the
BT.709 signal (design contract 3).

In ``output="planes"`` mode the loader ships cropped code planes (with their conversion margin) instead, and
:func:`planes_to_rgb_batch` runs the same conversion and the same flips / turns inside the training step, on the
GPU: its result equals the ``output="rgb"`` batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from fmstf_data.color import torch_ops
from fmstf_data.color.params import SIDES, ColorParams
from fmstf_data.loader.augment import LUMA_MARGIN, apply_geometry


def convert_with_margin(y: torch.Tensor, cb: torch.Tensor, cr: torch.Tensor, params: ColorParams) -> torch.Tensor:
    """Cropped planes with their margin (see :func:`fmstf_data.loader.augment.crop_planes_with_margin`) ->
    R'G'B' float32 [..., 3, h, w] in [0, 1], margin removed."""
    rgb = torch_ops.planes_to_rgb(y, cb, cr, bit_depth=params.bit_depth, matrix=params.matrix,
                                  full_range=params.full_range)
    return rgb[..., LUMA_MARGIN:rgb.shape[-2] - LUMA_MARGIN, LUMA_MARGIN:rgb.shape[-1] - LUMA_MARGIN]


def global_frame(y: torch.Tensor, cb: torch.Tensor, cr: torch.Tensor, params: ColorParams,
                 size: tuple[int, int]) -> torch.Tensor:
    """The whole frame, area-downsampled to ``size`` = (height, width): float32 [frames, 3, height, width].

    Y', Cb and Cr codes are area-averaged (luma from full resolution, chroma from its 4:2:0 plane, both straight to
    ``size``), then converted and clipped: the context a global branch needs, cheaper than converting the whole
    frame first (it differs from averaging the converted frame only where that frame was clipped).
    """
    def shrink(plane: torch.Tensor) -> torch.Tensor:
        return F.interpolate(plane.to(torch.float32).unsqueeze(0), size=size, mode="area").squeeze(0)

    fy, fcb, fcr = torch_ops.codes_to_ycbcr(shrink(y), shrink(cb), shrink(cr), bit_depth=params.bit_depth,
                                            full_range=params.full_range, dtype=torch.float32)
    rgb = torch_ops.ycbcr_to_rgb(fy, fcb, fcr, params.matrix)  # [3, frames, h, w]
    return rgb.transpose(0, 1).clamp_(0.0, 1.0).contiguous()


def planes_to_rgb_batch(batch: Mapping[str, Any], device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """``sdr`` and ``hdr`` float32 [B, 3, 3, h, w] from a batch made with ``output="planes"``, on ``device``.

    Applies each sample's colour parameters and its recorded flips / quarter turns, so the result equals what
    ``output="rgb"`` gives on the CPU. Call it inside the training step after moving nothing else.
    """
    out = {}
    flips_h = batch["flip_h"].tolist()
    flips_v = batch["flip_v"].tolist()
    turns = batch["rot90"].tolist()
    for side in SIDES:
        y, cb, cr = (batch[f"{side}_{plane}"].to(device, non_blocking=True) for plane in ("y", "cb", "cr"))
        params = [ColorParams(**p) for p in batch[f"{side}_color"]]
        groups: dict[ColorParams, list[int]] = {}
        for i, p in enumerate(params):
            groups.setdefault(p, []).append(i)
        rgb = None
        for p, rows in groups.items():
            index = torch.as_tensor(rows, device=y.device)
            converted = convert_with_margin(y.index_select(0, index), cb.index_select(0, index),
                                            cr.index_select(0, index), p)
            if rgb is None:
                rgb = converted.new_empty((len(params), *converted.shape[1:]))
            rgb[index] = converted
        out[side] = torch.stack([apply_geometry(rgb[i], flips_h[i], flips_v[i], turns[i])
                                 for i in range(len(params))])
    return out

