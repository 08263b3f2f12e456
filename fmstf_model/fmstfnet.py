"""FMSTFnet: Feature-Modulation Spatio-Temporal Fusion network (Zhang, Chen, Jiang), the whole model.

Input: ``clip [B, N, 3, H, W]``, N >= 3 frames (the loader yields N = 3: t-1, t, t+1) of BT.709 R'G'B' SDR in
[0, 1]; any H, W >= 1 (odd sizes too). Output (:class:`FMSTFOutput`): the pyramid ``[Y_0, ..., Y_s]`` of the centre
frame, PQ-encoded BT.2020 R'G'B' (``Y_k [B, 3, ceil(H/2^(s-k)), ceil(W/2^(s-k))]``, ``Y_s`` full resolution,
not clamped: clamp to [0, 1] at inference, see :meth:`FMSTFnet.predict`), and the recurrent state
``S [B, C, ceil(H/2^s), ceil(W/2^s)]``.

Forward pass (spec §1): Laplacian pyramid of every frame -> CGLFM on every coarsest level (shared weights) ->
STFM steps carrying the state -> ``Y_0`` -> per level k: ``K_k = HF_k(L_k)`` of the centre frame and
``Y_k = AHM_k(Y_{k-1}, K_k)``.

Recurrence (spec §4, BasicVSR pattern): with ``state=None`` a clip of N frames unrolls N - 1 STFM steps inside one
``forward``: a warm-up step centred on frame 0 with the border replicated ``(F_0, F_0, F_1)`` and a zero state, then
steps centred on 1..N-2; the output is the pyramid of frame N-2 (the middle one for N = 3). Gradients flow through
the whole unroll. A ``state`` passed in is the state returned for frame ``clip[:, 0]``; it is detached (a truncated
back-propagation boundary), which rules out "backward through the graph a second time" (spec §9.6). Streaming
(:meth:`FMSTFnet.step`) runs the same steps frame by frame, so it gives the same numbers as the unrolled forward.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from fmstf_data.errors import ModelError
from fmstf_model.cglfm import CGLFM
from fmstf_model.ffc import split_channels
from fmstf_model.high_frequency import AHM, HighFrequencyBranch, ResidualBlockNoBN
from fmstf_model.pyramid import LaplacianPyramid
from fmstf_model.stfm import STFM


@dataclass(frozen=True)
class FMSTFConfig:
    """FMSTFnet hyper-parameters (spec §8). ``FMSTFConfig.default()`` for 4K work, ``.tiny()`` for CPU tests."""

    pyramid_levels: int = 3
    """s, number of pyramid downsamplings (LPTN ``num_high``); training crops should be >= 2**(s+5) px."""
    channels: int = 64
    """C, width of the low-frequency features F and of the state S (HDRTVNet GFM ``nf``)."""
    encoder_channels: tuple[int, ...] = (64, 64, 128, 128, 128)
    """widths of CGLFM's global encoder stages; the paper has five downsamplings."""
    ffc_global_ratio: float = 0.75
    """share of FFC channels in the spectral (global) path (LaMa ``ffc_resnet_075``)."""
    hf_channels: int = 32
    """c_h, width of the high-frequency branches and of AHM."""
    hf_blocks: int = 3
    """n_r, residual blocks per high-frequency level (LPTN ``nrb_high``)."""
    n_hashes: int = 4
    """hash rounds of NLSA."""
    chunk_size: int = 144
    """k, NLSA chunk size (tokens)."""
    reduction: int = 4
    """r, the match embedding has C / r channels."""
    res_scale: float = 0.1
    """scale of the attention output added to its input (NLSA)."""
    vit_blocks: int = 2
    """Restormer blocks in STFM."""
    vit_heads: int = 2
    """MDTA heads; C must be divisible by it."""
    ffn_expansion: float = 2.66
    """GDFN hidden width factor (Restormer)."""
    hash_seed: int = 0
    """seed of the hash rotations in eval mode (the three attention modules use seed, seed+1, seed+2)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "encoder_channels", tuple(self.encoder_channels))
        for name in ("channels", "hf_channels", "n_hashes", "chunk_size", "reduction", "vit_heads"):
            _require_int(name, getattr(self, name), minimum=1)
        for name in ("pyramid_levels", "hf_blocks", "vit_blocks", "hash_seed"):
            _require_int(name, getattr(self, name), minimum=0)
        if not self.encoder_channels:
            raise ModelError("encoder_channels must name at least one stage, got ()")
        for width in self.encoder_channels:
            _require_int("encoder_channels[...]", width, minimum=1)
        if not 0.0 < self.ffc_global_ratio < 1.0:
            raise ModelError(f"ffc_global_ratio must be in (0, 1), got {self.ffc_global_ratio}")
        for width in (self.channels, *self.encoder_channels):
            local, spectral = split_channels(width, self.ffc_global_ratio)
            if local < 1 or spectral < 2:
                raise ModelError(
                    f"an FFC of {width} channels with ffc_global_ratio={self.ffc_global_ratio} has {local} local and "
                    f"{spectral} global channels; need >= 1 and >= 2: widen channels/encoder_channels"
                )
        if self.channels % self.reduction:
            raise ModelError(f"channels ({self.channels}) must be a multiple of reduction ({self.reduction})")
        if self.channels % self.vit_heads:
            raise ModelError(f"channels ({self.channels}) must be a multiple of vit_heads ({self.vit_heads})")
        if not (math.isfinite(self.res_scale) and self.res_scale > 0):
            raise ModelError(f"res_scale must be a positive finite number, got {self.res_scale}")
        if not (math.isfinite(self.ffn_expansion) and int(self.channels * self.ffn_expansion) >= 1):
            raise ModelError(f"ffn_expansion must give a hidden width >= 1, got {self.ffn_expansion}")

    @classmethod
    def default(cls) -> FMSTFConfig:
        """The 4K configuration of spec §8 (about 1.6 M parameters)."""
        return cls()

    @classmethod
    def tiny(cls) -> FMSTFConfig:
        """A small configuration for CPU tests (spec §8, "tiny"), about 93 K parameters.

        ``res_scale`` is 0.1 as in the default, not the spec table's 1: with 1 the recurrent state of a freshly
        initialised model grows geometrically when streaming (mean |S| ~1e13 after 60 frames), with 0.1 it
        settles (~9), as the default config's does.
        """
        return cls(
            pyramid_levels=2,
            channels=16,
            encoder_channels=(16, 16, 32, 32, 32),
            hf_channels=8,
            hf_blocks=1,
            n_hashes=2,
            chunk_size=16,
            reduction=4,
            res_scale=0.1,
            vit_blocks=1,
            vit_heads=1,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-safe dict (tuples as lists), e.g. for checkpoints."""
        values = dataclasses.asdict(self)
        values["encoder_channels"] = list(self.encoder_channels)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> FMSTFConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ModelError` instead of being dropped silently."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ModelError(f"unknown FMSTFConfig fields {unknown}; known: {sorted(known)}")
        return cls(**values)


def _require_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ModelError(f"{name} must be an integer >= {minimum}, got {value!r}")


class FMSTFOutput(NamedTuple):
    """What :class:`FMSTFnet` returns (a NamedTuple, so DDP can traverse it)."""

    pyramid: list[Tensor]
    """``[Y_0 (coarsest), ..., Y_s (full resolution)]``, ``Y_k [B, 3, H_k, W_k]``, PQ R'G'B', not clamped."""
    state: Tensor
    """recurrent state ``S [B, C, h, w]`` of the output frame."""


@dataclass(frozen=True)
class StreamState:
    """What :meth:`FMSTFnet.step` carries from one frame to the next. Start with ``FMSTFnet.init_stream()``."""

    prev_feature: Tensor | None = None
    """F of the frame before the pending centre frame (None at the start of the video)."""
    centre_feature: Tensor | None = None
    """F of the pending centre frame, which is output once its next frame (or the end) arrives."""
    centre_highs: tuple[Tensor, ...] = ()
    """Laplacian levels ``L_1..L_s`` of the pending centre frame."""
    recurrent: Tensor | None = None
    """S of the frame before the pending centre frame (None = zeros)."""


class FMSTFnet(nn.Module):
    """FMSTFnet (see the module docstring for shapes and the recurrence).

    Args:
        config: hyper-parameters; ``FMSTFConfig.default()`` when None. Weights start MSRA-initialised.
    """

    def __init__(self, config: FMSTFConfig | None = None):
        super().__init__()
        self.config = config = config if config is not None else FMSTFConfig.default()
        self.pyramid = LaplacianPyramid(config.pyramid_levels)
        self.cglfm = CGLFM(config.channels, config.encoder_channels, config.ffc_global_ratio)
        self.stfm = STFM(
            config.channels,
            reduction=config.reduction,
            n_hashes=config.n_hashes,
            chunk_size=config.chunk_size,
            res_scale=config.res_scale,
            vit_blocks=config.vit_blocks,
            vit_heads=config.vit_heads,
            ffn_expansion=config.ffn_expansion,
            hash_seed=config.hash_seed,
        )
        levels = range(config.pyramid_levels)
        self.high_frequency = nn.ModuleList(HighFrequencyBranch(config.hf_channels, config.hf_blocks) for _ in levels)
        self.ahm = nn.ModuleList(AHM(config.hf_channels) for _ in levels)
        init_weights(self)

    def encode_frames(self, frames: Tensor) -> tuple[Tensor, list[Tensor]]:
        """``frames [N, 3, H, W]`` -> (``F [N, C, h, w]`` from CGLFM, Laplacian levels ``[L_1..L_s]``)."""
        gaussian, highs = self.pyramid.decompose(frames)
        return self.cglfm(gaussian[0].to(frames.dtype)), highs

    def decode(self, state: Tensor, highs: list[Tensor]) -> FMSTFOutput:
        """``S^t [B, C, h, w]`` and the centre frame's ``[L_1..L_s]`` -> the output pyramid (eq. (3) per level)."""
        image = self.stfm.to_image(state)
        pyramid = [image]
        for branch, ahm, high in zip(self.high_frequency, self.ahm, highs):
            image = ahm(image, branch(high.to(image.dtype)))
            pyramid.append(image)
        return FMSTFOutput(pyramid=pyramid, state=state)

    def forward(self, clip: Tensor, state: Tensor | None = None) -> FMSTFOutput:
        """``clip [B, N, 3, H, W]`` (N >= 3), optional ``state`` of frame ``clip[:, 0]`` -> output of frame N-2."""
        if clip.dim() != 5 or clip.shape[1] < 3 or clip.shape[2] != 3 or not clip.is_floating_point():
            raise ModelError(
                f"clip must be a float tensor [B, N>=3 frames, 3, H, W], got {clip.dtype} {tuple(clip.shape)}"
            )
        batch, frames = clip.shape[:2]
        features, highs = self.encode_frames(clip.flatten(0, 1))
        features = features.unflatten(0, (batch, frames))  # [B, N, C, h, w]
        if state is None:
            state = self.stfm(features[:, 0], features[:, 0], features[:, 1], torch.zeros_like(features[:, 0]))
        elif state.shape != features[:, 0].shape:
            raise ModelError(f"state must have shape {tuple(features[:, 0].shape)}, got {tuple(state.shape)}")
        else:
            state = state.detach()
        for centre in range(1, frames - 1):
            state = self.stfm(features[:, centre - 1], features[:, centre], features[:, centre + 1], state)
        centre_highs = [high.unflatten(0, (batch, frames))[:, frames - 2] for high in highs]
        return self.decode(state, centre_highs)

    @torch.no_grad()
    def predict(self, clip: Tensor, state: Tensor | None = None) -> Tensor:
        """Full-resolution HDR frame ``[B, 3, H, W]`` of ``clip``'s frame N-2, clamped to [0, 1], without gradients.

        Use after ``model.eval()``: in training mode the hash rotations are random on every call.
        """
        return self(clip, state).pyramid[-1].clamp(0.0, 1.0)

    def init_stream(self) -> StreamState:
        """An empty stream: feed frames to :meth:`step`, then ``None`` once to flush the last frame."""
        return StreamState()

    @torch.no_grad()
    def step(self, frame: Tensor | None, stream: StreamState) -> tuple[FMSTFOutput | None, StreamState]:
        """Streaming inference, one frame at a time: ``frame [B, 3, H, W]``, or None at the end of the video.

        Returns (the output of the previous frame, or None for the first frame; the new stream state). Frame t is
        output when frame t+1 arrives; ``step(None, ...)`` outputs the last frame (its next frame replicated) and
        returns an empty stream. So a video of n frames gives n outputs, equal to the unrolled forward (eval mode,
        same hash seed). CGLFM runs once per frame. Runs without gradients.
        """
        if frame is not None:
            if frame.dim() != 4 or frame.shape[1] != 3:
                raise ModelError(f"frame must be [B, 3, H, W], got {tuple(frame.shape)}")
            feature, highs = self.encode_frames(frame)
            if stream.centre_feature is None:
                return None, StreamState(centre_feature=feature, centre_highs=tuple(highs))
            if feature.shape != stream.centre_feature.shape:
                raise ModelError(
                    f"frame size changed mid-stream: features {tuple(feature.shape)} after "
                    f"{tuple(stream.centre_feature.shape)}; start a new stream with init_stream()"
                )
            following = feature
        elif stream.centre_feature is None:
            return None, StreamState()
        else:
            following = stream.centre_feature

        centre = stream.centre_feature
        previous = stream.prev_feature if stream.prev_feature is not None else centre
        recurrent = stream.recurrent if stream.recurrent is not None else torch.zeros_like(centre)
        output = self.decode(self.stfm(previous, centre, following, recurrent), list(stream.centre_highs))
        if frame is None:
            return output, StreamState()
        return output, StreamState(
            prev_feature=centre, centre_feature=feature, centre_highs=tuple(highs), recurrent=output.state
        )

    def stream_frames(self, frames: Iterable[Tensor]) -> Iterator[Tensor]:
        """Whole-video inference: ``[B, 3, H, W]`` frames in, one clamped full-resolution HDR frame out per frame."""
        stream = self.init_stream()
        for frame in _with_end(frames):
            output, stream = self.step(frame, stream)
            if output is not None:
                yield output.pyramid[-1].clamp(0.0, 1.0)


def _with_end(frames: Iterable[Tensor]) -> Iterator[Tensor | None]:
    yield from frames
    yield None


def init_weights(model: nn.Module) -> None:
    """MSRA initialisation (paper §III; HDRTVNet ``initialize_weights``), with two groups scaled by 0.1.

    ``kaiming_normal_(mode='fan_in', a=0)`` on every Conv2d and Linear weight, biases zero. Then x0.1 on:

    - the convolutions of residual blocks, so each block starts close to the identity (HDRTVNet);
    - the image outputs: STFM's ``Y_0`` head and every AHM's phi2. Measured reason (``bench/bench_model.py
      --init-probe``): with plain MSRA the outputs start far above the [0, 1] targets and training pushes them
      below zero, where the ReLU of eq. (3) gives no gradient: in the tiny config 97 % of full-resolution pixels
      are dead at step 150 and level 1 stays ~0 (loss 0.58 at step 300); with x0.1 under 2 % are dead and the loss
      is 0.09 (docs/model.md, "Initialisation").

    Norm layers keep ones/zeros.
    """
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, a=0, mode="fan_in")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, ResidualBlockNoBN):
                scaled = [module.conv1, module.conv2]
            elif isinstance(module, AHM):
                scaled = [module.phi2]
            elif isinstance(module, STFM):
                scaled = [module.image_head]
            else:
                continue
            for conv in scaled:
                conv.weight.mul_(0.1)
