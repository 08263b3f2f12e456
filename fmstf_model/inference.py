"""Frame-by-frame SDR -> HDR inference for evaluation and conversion: FMSTFnet (streamed, optionally tiled) or a
BT.2446 baseline, behind one interface.

A :class:`FrameConverter` turns a stream of SDR frames ``[B, 3, H, W]`` (BT.709 R'G'B' in [0, 1]) into a stream of
HDR frames ``[B, 3, H, W]`` (PQ BT.2020 R'G'B' in [0, 1]), one out per frame in, in order.

**FMSTFnet** runs with its recurrent state through :meth:`FMSTFnet.step` (frame t comes out when frame t+1 arrives).
With ``tile_size`` set, the full-resolution work is tiled: the Laplacian pyramid (3 channels), CGLFM and STFM still
see the whole frame at the coarsest level (so the global branch and the attention see everything, and the state is
the untiled one), while each level's high-frequency branch ``HF_k`` and AHM, the ``c_h``-channel maps that dominate
memory at 4K, run tile by tile on overlapping windows. The overlap (``halo``) covers their receptive field
(``2 + 2 n_r`` px at that level), and the bilinear upsampling inside AHM is evaluated at the exact source positions
of the whole-frame upsampling, so a tiled frame equals the untiled one up to float rounding (tested to 1e-5).
Limits: the coarsest level (``H / 2^s`` x ``W / 2^s``, 270 x 480 for 4K with s = 3) is never tiled; its hashing
attention needs about 5 GB at 4K (docs/model.md), and the full-resolution pyramid a few hundred MB.

**Baselines** (:mod:`fmstf_model.baselines`) are per-frame functions.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from fmstf_data.errors import ModelError
from fmstf_model.baselines import BASELINE_LABELS, BASELINES, sdr_to_hdr
from fmstf_model.fmstfnet import FMSTFnet


class FrameConverter(Protocol):
    """SDR frames in, HDR frames out (see the module docstring)."""

    name: str

    def stream(self, frames: Iterable[Tensor]) -> Iterator[Tensor]: ...


class BaselineConverter:
    """A BT.2446 inverse method as a :class:`FrameConverter`."""

    def __init__(self, method: str):
        if method not in BASELINES:
            raise ModelError(f"unknown method {method!r}: use one of {list(BASELINES)}")
        self.method = method
        self.name = method
        self.label = BASELINE_LABELS[method]

    def stream(self, frames: Iterable[Tensor]) -> Iterator[Tensor]:
        for frame in frames:
            yield sdr_to_hdr(frame, self.method).to(frame.dtype)


class ModelConverter:
    """FMSTFnet as a :class:`FrameConverter`, streaming with its recurrent state, optionally tiled.

    Args:
        model: the network (put in eval mode here).
        name: a label for tables and logs.
        tile_size: tile side in full-resolution pixels for the per-level high-frequency work, or None (whole frames).
        halo: overlap around each tile at each level; default ``4 + 2 n_r`` (receptive field plus a margin).
    """

    def __init__(self, model: FMSTFnet, *, name: str = "FMSTFnet", tile_size: int | None = None,
                 halo: int | None = None):
        if tile_size is not None and tile_size < 8:
            raise ModelError(f"tile_size must be >= 8 px, got {tile_size}")
        self.model = model.eval()
        self.name = name
        self.label = name
        self.tile_size = tile_size
        self.halo = halo if halo is not None else 4 + 2 * model.config.hf_blocks

    @torch.no_grad()
    def stream(self, frames: Iterable[Tensor]) -> Iterator[Tensor]:
        if self.tile_size is None:
            yield from self.model.stream_frames(frames)
            return
        yield from self._tiled_stream(frames)

    def _tiled_stream(self, frames: Iterable[Tensor]) -> Iterator[Tensor]:
        """:meth:`FMSTFnet.step`'s recurrence with :func:`tiled_decode` in place of ``decode``."""
        model = self.model
        previous = centre = recurrent = None
        centre_highs: list[Tensor] = []
        for frame in itertools.chain(frames, [None]):
            if frame is not None:
                feature, highs = model.encode_frames(frame)
                if centre is None:
                    centre, centre_highs = feature, highs
                    continue
                following = feature
            elif centre is None:
                return
            else:
                following = centre
            state = model.stfm(previous if previous is not None else centre, centre, following,
                               recurrent if recurrent is not None else torch.zeros_like(centre))
            yield tiled_decode(model, state, centre_highs, self.tile_size, self.halo).clamp(0.0, 1.0)
            if frame is None:
                return
            previous, centre, centre_highs, recurrent = centre, feature, highs, state


def convert_clip(converter: FrameConverter, clip: Tensor) -> Tensor:
    """Every frame of ``clip [B, T, 3, H, W]`` (SDR) converted -> ``[B, T, 3, H, W]`` (HDR), streamed in order."""
    outputs = list(converter.stream(clip.unbind(1)))
    if len(outputs) != clip.shape[1]:
        raise ModelError(f"converter {converter.name} gave {len(outputs)} frames for {clip.shape[1]}")
    return torch.stack(outputs, dim=1)


# ---- tiling ---------------------------------------------------------------------------------------------------


def _source_taps(start: int, stop: int, n_in: int, n_out: int, offset: int, device: torch.device):
    """Bilinear taps of outputs ``start..stop-1`` of a resize ``n_in -> n_out`` (``align_corners=False``, PyTorch's
    source-index rule), as indices into a crop of the input starting at ``offset``, and their weights."""
    position = torch.arange(start, stop, dtype=torch.float64, device=device)
    source = ((position + 0.5) * (n_in / n_out) - 0.5).clamp_min(0.0)
    low = source.floor().long().clamp_max(n_in - 1)
    high = (low + 1).clamp_max(n_in - 1)
    weight = source - low
    return low - offset, high - offset, weight


def bilinear_window(x: Tensor, offset: tuple[int, int], full_in: tuple[int, int], full_out: tuple[int, int],
                    rows: tuple[int, int], cols: tuple[int, int]) -> Tensor:
    """Rows ``rows`` and columns ``cols`` of ``F.interpolate(full, size=full_out, mode="bilinear",
    align_corners=False)``, computed from ``x``, the crop of ``full`` (size ``full_in``) starting at ``offset``."""
    r_low, r_high, r_weight = _source_taps(*rows, full_in[0], full_out[0], offset[0], x.device)
    c_low, c_high, c_weight = _source_taps(*cols, full_in[1], full_out[1], offset[1], x.device)
    if min(r_low.min(), c_low.min()) < 0 or r_high.max() >= x.shape[-2] or c_high.max() >= x.shape[-1]:
        raise ModelError("internal error: the tile's coarse window does not cover its bilinear taps")
    r_weight = r_weight.to(x.dtype)[:, None]
    c_weight = c_weight.to(x.dtype)
    x = x.index_select(-2, r_low) * (1 - r_weight) + x.index_select(-2, r_high) * r_weight
    return x.index_select(-1, c_low) * (1 - c_weight) + x.index_select(-1, c_high) * c_weight


def _tiles(size: int, tile: int) -> list[tuple[int, int]]:
    return [(start, min(size, start + tile)) for start in range(0, size, tile)]


def _tiled_level(branch, ahm, coarse: Tensor, high: Tensor, tile: int, halo: int) -> Tensor:
    """``ahm(coarse, branch(high))`` computed tile by tile: ``[B, 3, h, w], [B, 3, H, W] -> [B, 3, H, W]``."""
    height, width = high.shape[-2:]
    h, w = coarse.shape[-2:]
    out = high.new_empty(high.shape[0], 3, height, width)
    for r0, r1 in _tiles(height, tile):
        for c0, c1 in _tiles(width, tile):
            er0, er1 = max(0, r0 - halo), min(height, r1 + halo)
            ec0, ec1 = max(0, c0 - halo), min(width, c1 + halo)
            detail = branch(high[..., er0:er1, ec0:ec1])
            # the coarse rows/columns the bilinear taps of this window read, plus 2 for phi1's 3x3 convolution
            r_taps = _source_taps(er0, er1, h, height, 0, high.device)
            c_taps = _source_taps(ec0, ec1, w, width, 0, high.device)
            cr0, cr1 = max(0, int(r_taps[0].min()) - 2), min(h, int(r_taps[1].max()) + 3)
            cc0, cc1 = max(0, int(c_taps[0].min()) - 2), min(w, int(c_taps[1].max()) + 3)
            features = ahm.phi1(coarse[..., cr0:cr1, cc0:cc1])
            up = bilinear_window(features, (cr0, cc0), (h, w), (height, width), (er0, er1), (ec0, ec1))
            window = F.relu(ahm.phi2(torch.cat((up, detail), dim=1)))
            out[..., r0:r1, c0:c1] = window[..., r0 - er0:r1 - er0, c0 - ec0:c1 - ec0]
    return out


def tiled_decode(model: FMSTFnet, state: Tensor, highs: list[Tensor], tile: int, halo: int) -> Tensor:
    """The full-resolution output of :meth:`FMSTFnet.decode` (``pyramid[-1]``) with each level tiled."""
    image = model.stfm.to_image(state)
    for branch, ahm, high in zip(model.high_frequency, model.ahm, highs):
        image = _tiled_level(branch, ahm, image, high.to(image.dtype), tile, halo)
    return image
