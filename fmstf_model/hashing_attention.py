"""Hashing non-local attention: HNAM (one frame) and HSTNAM (three frames, one token set) (paper §II.B, spec §4).

The hashing core is NLSA (Mei et al., "Image super-resolution with non-local sparse attention", CVPR'21), i.e.
Reformer's angular LSH (the paper's ref. [11]) adapted to images:

- match embedding ``q = conv3x3(C -> C/r)(x)``, assembly embedding ``v = conv1x1(C -> C)(x)``; L tokens.
- ``nb = min(L//k + (L//k) % 2, 128)`` buckets, at least 2; chunk size ``k_eff = min(k, L)`` (spec §9.3: L < k
  gave ``nb = 0`` and L < k/2 broke NLSA's pad-by-slicing).
- per hash round, a Gaussian rotation ``R [C/r, nb/2]``; code = ``argmax([qR, -qR])`` (no gradient).
- tokens sorted by code (stable sort), cut into chunks of ``k_eff``; each query attends to the L2-normalised match
  vectors of its own chunk and of the previous and next chunks. Scores are unscaled ``q . k_hat``, no self mask.
- rounds are combined with a softmax over each query's per-round log-sum-exp; block output
  ``x + res_scale * attention``.

Deliberate departures from NLSA (the first two make the result exactly "attention over the chunk and its
neighbours"):

- **Padding is masked, not duplicated.** NLSA pads the last chunk with copies of the last tokens, which counts those
  keys twice; here the padding is zeros and masked out of the softmax.
- **Neighbour chunks are deduplicated.** With one chunk, NLSA's previous/next chunk are the chunk itself; with two,
  both are the other chunk, which then counts twice. Here 1 chunk -> itself, 2 chunks -> both, >=3 -> prev/self/next.
  With one chunk holding every token, the result is exactly dense softmax attention (tested, spec §9.2).
- **Rounds run one after another**, so under ``no_grad`` the transient score memory is one round's
  ``L * 3k`` floats, not ``n_h`` times that (spec §9.2: loop over rounds at inference); in training the graph
  keeps every round's scores either way.

Rotations: in training mode fresh ones are drawn each call (CPU default generator, then moved to the device); in
eval mode they come from a generator seeded with ``hash_seed``, so inference is deterministic and a streamed video
equals the unrolled forward (spec §9.7). Drawing on the CPU gives CPU and GPU runs the same rotations.

AMP: scores, softmax and log-sum-exp run in float32 with autocast off (spec §9.8).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fmstf_data.errors import ModelError
from fmstf_model.precision import autocast_off, full_precision

MAX_BUCKETS = 128
KEY_NORM_EPS = 5e-5  # NLSA's eps for the L2 normalisation of keys


def bucket_count(tokens: int, chunk_size: int) -> int:
    """Number of hash buckets for ``tokens`` tokens: NLSA's ``min(L//k + (L//k) % 2, 128)``, at least 2, even."""
    per_chunk = tokens // min(chunk_size, tokens)
    return max(2, min(per_chunk + per_chunk % 2, MAX_BUCKETS))


def dense_attention(match: Tensor, values: Tensor) -> Tensor:
    """Reference: full softmax attention with NLSA's scores. ``match [N, L, d]``, ``values [N, L, c]`` -> ``[N, L, c]``.

    Memory is ``L**2`` floats: use only on small inputs (tests, checks).
    """
    keys = F.normalize(match, p=2, dim=-1, eps=KEY_NORM_EPS)
    scores = match @ keys.transpose(1, 2)
    return torch.softmax(scores, dim=-1) @ values


def _neighbour_chunks(x: Tensor, chunks: int) -> Tensor:
    """``x [N, n_c, k, ...] -> [N, n_c, m*k, ...]``: each chunk with its distinct neighbours (m = 1, 2 or 3)."""
    offsets = (0,) if chunks == 1 else (0, 1) if chunks == 2 else (-1, 0, 1)
    return torch.cat([torch.roll(x, shifts=-offset, dims=1) for offset in offsets], dim=2)


def _attend_one_round(match: Tensor, values: Tensor, rotation: Tensor, chunk_size: int) -> tuple[Tensor, Tensor]:
    """One hash round: ``match [N, L, d]``, ``values [N, L, c]``, ``rotation [d, nb/2]``.

    Returns (output ``[N, L, c]``, log-sum-exp of each query's scores ``[N, L]``), in token order.
    """
    n, length, dim = match.shape
    channels = values.shape[-1]
    with torch.no_grad():
        rotated = match @ rotation  # [N, L, nb/2]
        codes = torch.cat((rotated, -rotated), dim=-1).argmax(dim=-1)  # [N, L]
        order = torch.sort(codes, dim=-1, stable=True).indices
        undo = torch.argsort(order, dim=-1)
    queries = torch.gather(match, 1, order[..., None].expand(-1, -1, dim))
    values = torch.gather(values, 1, order[..., None].expand(-1, -1, channels))

    chunks = -(-length // chunk_size)
    padding = chunks * chunk_size - length
    if padding:
        queries = F.pad(queries, (0, 0, 0, padding))
        values = F.pad(values, (0, 0, 0, padding))
    queries = queries.view(n, chunks, chunk_size, dim)
    values = values.view(n, chunks, chunk_size, channels)
    keys = _neighbour_chunks(F.normalize(queries, p=2, dim=-1, eps=KEY_NORM_EPS), chunks)  # [N, n_c, m*k, d]
    values = _neighbour_chunks(values, chunks)

    scores = queries @ keys.transpose(-1, -2)  # [N, n_c, k, m*k]
    if padding:
        valid = torch.arange(chunks * chunk_size, device=match.device) < length
        valid = _neighbour_chunks(valid.view(1, chunks, chunk_size), chunks)  # [1, n_c, m*k]
        scores = scores.masked_fill(~valid[:, :, None, :], float("-inf"))
    # Softmax and log-sum-exp from one exp pass over the scores, normalising the [k, c] output instead of the
    # [k, m*k] weights; the shift is detached (the result does not depend on it). Against NLSA's logsumexp then
    # exp(scores - lse): default config, 540p, CPU forward 2.18 s -> 1.80 s, and backward keeps one score-sized
    # tensor instead of two.
    shift = scores.detach().amax(dim=-1, keepdim=True)
    weights = (scores - shift).exp_()
    total = weights.sum(dim=-1, keepdim=True)
    out = (weights @ values) / total  # [N, n_c, k, c]
    lse = shift + total.log()

    out = out.reshape(n, chunks * chunk_size, channels)[:, :length]
    lse = lse.reshape(n, chunks * chunk_size)[:, :length]
    out = torch.gather(out, 1, undo[..., None].expand(-1, -1, channels))
    lse = torch.gather(lse, 1, undo)
    return out, lse


def hashed_attention(match: Tensor, values: Tensor, rotations: Tensor, chunk_size: int) -> Tensor:
    """NLSA attention over token sequences.

    Args:
        match: ``[N, L, d]`` match embeddings (queries; keys are their L2-normalised copies).
        values: ``[N, L, c]`` assembly embeddings.
        rotations: ``[n_hashes, d, nb/2]`` random rotations (see :func:`bucket_count`).
        chunk_size: k; clipped to L.

    Returns ``[N, L, c]``, float32 (float64 for float64 inputs).
    """
    chunk_size = min(chunk_size, match.shape[1])
    with autocast_off(match):
        match = full_precision(match)
        values, rotations = values.to(match.dtype), rotations.to(match.dtype)
        rounds = [_attend_one_round(match, values, rotation, chunk_size) for rotation in rotations]
        outs = torch.stack([out for out, _ in rounds])  # [n_h, N, L, c]
        weights = torch.softmax(torch.stack([lse for _, lse in rounds]), dim=0)  # [n_h, N, L]
        return (outs * weights[..., None]).sum(dim=0)


class HashingCore(nn.Module):
    """Shared NLSA machinery: ``x [B, T, C, h, w] -> x + res_scale * attention`` over all T*h*w tokens at once.

    One set of rotations hashes the tokens of every frame, so bucket ids mean the same thing across frames and a
    token can attend to tokens of other frames (spec §9.4).

    Args:
        channels: C. reduction: r, match width is C // r. n_hashes: rounds. chunk_size: k. res_scale: output scale.
        hash_seed: seed of the rotations in eval mode.
    """

    def __init__(self, channels: int, reduction: int, n_hashes: int, chunk_size: int, res_scale: float, hash_seed: int):
        super().__init__()
        if channels % reduction or channels // reduction < 1:
            raise ModelError(f"channels ({channels}) must be a positive multiple of the reduction ({reduction})")
        self.match_channels = channels // reduction
        self.n_hashes = n_hashes
        self.chunk_size = chunk_size
        self.res_scale = res_scale
        self.hash_seed = hash_seed
        self.conv_match = nn.Conv2d(channels, self.match_channels, 3, padding=1)
        self.conv_assembly = nn.Conv2d(channels, channels, 1)

    def rotations(self, tokens: int, device: torch.device) -> Tensor:
        """``[n_hashes, C/r, nb/2]`` Gaussian rotations for ``tokens`` tokens (seeded in eval mode)."""
        shape = (self.n_hashes, self.match_channels, bucket_count(tokens, self.chunk_size) // 2)
        generator = None if self.training else torch.Generator().manual_seed(self.hash_seed)
        return torch.randn(shape, generator=generator).to(device)

    def forward(self, x: Tensor) -> Tensor:
        batch, frames, channels, height, width = x.shape
        flat = x.flatten(0, 1)  # [B*T, C, h, w]
        match = self.conv_match(flat).view(batch, frames, self.match_channels, height * width)
        values = self.conv_assembly(flat).view(batch, frames, channels, height * width)
        match = match.permute(0, 1, 3, 2).reshape(batch, frames * height * width, self.match_channels)
        values = values.permute(0, 1, 3, 2).reshape(batch, frames * height * width, channels)
        rotations = self.rotations(match.shape[1], x.device)
        out = hashed_attention(match, values, rotations, self.chunk_size)  # [B, T*h*w, C]
        out = out.view(batch, frames, height, width, channels).permute(0, 1, 4, 2, 3)
        return x + self.res_scale * out.to(x.dtype)


class HNAM(nn.Module):
    """Hashing Non-local Attention Module (paper Fig. 3b): spatial attention in one frame, ``[B, C, h, w]`` -> same."""

    def __init__(self, channels: int, reduction: int, n_hashes: int, chunk_size: int, res_scale: float, hash_seed: int):
        super().__init__()
        self.core = HashingCore(channels, reduction, n_hashes, chunk_size, res_scale, hash_seed)

    def forward(self, x: Tensor) -> Tensor:
        return self.core(x[:, None])[:, 0]


class HSTNAM(nn.Module):
    """Hashing Spatio-Temporal Non-local Attention Module (paper Fig. 3a).

    ``x [B, T, C, h, w]`` (T = 3: t-1, t, t+1) -> ``[B, C, h, w]``: NLSA over the T*h*w tokens together (the
    space-time non-local block of Wang et al., CVPR'18, with hashing), then the T outputs are concatenated,
    fused by conv1x1(T*C -> C) and added to the centre frame's input.
    """

    def __init__(
        self,
        channels: int,
        reduction: int,
        n_hashes: int,
        chunk_size: int,
        res_scale: float,
        hash_seed: int,
        frames: int = 3,
    ):
        super().__init__()
        self.frames = frames
        self.core = HashingCore(channels, reduction, n_hashes, chunk_size, res_scale, hash_seed)
        self.fuse = nn.Conv2d(frames * channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] != self.frames:
            raise ModelError(f"HSTNAM expects {self.frames} frames on dim 1, got shape {tuple(x.shape)}")
        attended = self.core(x)  # [B, T, C, h, w]
        return self.fuse(attended.flatten(1, 2)) + x[:, self.frames // 2]
