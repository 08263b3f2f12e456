"""Temporal alignment of an SDR version to its HDR original, from content.

The two versions of a video differ by an unknown tone curve and gamut mapping, by resolution, codec and bitrate,
and by some frames trimmed at either end. Timestamps and file names cannot be trusted, so frames are compared by
*signatures* that survive any monotonic tone curve: the luma plane is averaged down to a small thumbnail and each
thumbnail is replaced by the ranks of its pixels (a rank transform is unchanged by a monotonic curve). The match
score of two frames is the Pearson correlation of their rank thumbnails, i.e. Spearman's rank correlation, in
[-1, 1]; flat frames (black, a uniform fade) have no ranks to compare and score 0.

The offset is ``hdr_index = sdr_index + offset_frames``: the HDR frame index that SDR frame 0 shows (negative when
the SDR version starts earlier than the HDR one). It is found by scoring every candidate offset in a window by the
mean match score of the frames it pairs, over a bounded prefix of both videos.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fmstf_data.errors import AlignmentError
from fmstf_data.video import DecodedFrame, iter_planes

logger = logging.getLogger(__name__)

#: thumbnail size (width, height) used for signatures; 16:9, small enough to be cheap, big enough to see motion
SIGNATURE_SIZE = (48, 27)
#: a thumbnail whose luma codes vary less than this (standard deviation, in 8-bit code units) counts as flat
FLAT_STD_CODES_8BIT = 1.0


def luma_thumbnail(y: np.ndarray, bit_depth: int, size: tuple[int, int] = SIGNATURE_SIZE) -> np.ndarray:
    """Area-average a luma code plane [H, W] to ``size`` (width, height), in 8-bit code units, float32 [h, w]."""
    plane = torch.from_numpy(np.ascontiguousarray(y).astype(np.float32, copy=False))
    plane = plane * (1.0 / (1 << (bit_depth - 8)))
    width, height = size
    thumbnail = F.adaptive_avg_pool2d(plane[None, None], (height, width))[0, 0]
    return thumbnail.numpy()


def rank_signature(thumbnail: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-norm rank transform of a thumbnail (float32 vector); all zeros when the frame is flat.

    Ties (equal values) get their average rank, so a frame with large uniform areas still ranks consistently.
    """
    values = thumbnail.astype(np.float64).ravel()
    if values.std() < FLAT_STD_CODES_8BIT:
        return np.zeros(values.size, dtype=np.float32)
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    ranks = np.empty(values.size, dtype=np.float64)
    # average ranks over runs of equal values
    boundaries = np.flatnonzero(np.diff(sorted_values)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [values.size]))
    run_ranks = (starts + ends - 1) / 2.0
    ranks[order] = np.repeat(run_ranks, ends - starts)
    ranks -= ranks.mean()
    norm = np.linalg.norm(ranks)
    return (ranks / norm).astype(np.float32) if norm > 0 else np.zeros(values.size, dtype=np.float32)


def frame_signature(frame: DecodedFrame, crop: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Signature of a decoded frame; ``crop`` = (top, left, height, width) restricts it to the picture area."""
    y = frame.y
    if crop is not None:
        top, left, height, width = crop
        y = y[top:top + height, left:left + width]
    return rank_signature(luma_thumbnail(y, frame.bit_depth))


def match_score(signature_a: np.ndarray, signature_b: np.ndarray) -> float:
    """Spearman rank correlation of two frames from their signatures, in [-1, 1] (0 if either is flat)."""
    return float(np.dot(signature_a, signature_b))


@dataclass(frozen=True)
class OffsetEstimate:
    """Result of the offset search.

    Attributes:
        offset_frames: HDR frame index shown by SDR frame 0 (``hdr = sdr + offset``).
        score: mean match score of the frames paired at that offset, in [-1, 1].
        runner_up_score: best mean score at any offset at least 2 frames away (how distinct the peak is).
        overlap_frames: number of frame pairs the best offset was scored on.
        candidate_offsets: every offset tried.
        candidate_scores: mean score per tried offset (NaN where the overlap was too short).
    """

    offset_frames: int
    score: float
    runner_up_score: float
    overlap_frames: int
    candidate_offsets: tuple[int, ...] = field(repr=False)
    candidate_scores: tuple[float, ...] = field(repr=False)

    @property
    def confidence(self) -> float:
        """Peak height above the runner-up, in score units (0 = ambiguous)."""
        return max(0.0, self.score - self.runner_up_score) if np.isfinite(self.runner_up_score) else self.score


def score_offsets(hdr_signatures: np.ndarray, sdr_signatures: np.ndarray, max_offset_frames: int,
                  min_overlap_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean diagonal match score of the similarity matrix for each offset in [-max, +max].

    Args:
        hdr_signatures: [n_hdr, D]; sdr_signatures: [n_sdr, D] (rows from :func:`rank_signature`).

    Returns:
        (offsets [K] int, mean scores [K] float (NaN where overlap < min_overlap_frames), overlaps [K] int)
    """
    similarity = hdr_signatures @ sdr_signatures.T  # [n_hdr, n_sdr]
    n_hdr, n_sdr = similarity.shape
    offsets = np.arange(-max_offset_frames, max_offset_frames + 1)
    scores = np.full(offsets.size, np.nan)
    overlaps = np.zeros(offsets.size, dtype=np.int64)
    for position, offset in enumerate(offsets):
        diagonal = np.diagonal(similarity, offset=-int(offset))  # entries [j + offset, j]
        overlaps[position] = diagonal.size
        if diagonal.size >= min_overlap_frames:
            scores[position] = float(diagonal.mean())
    return offsets, scores, overlaps


def estimate_offset(hdr_signatures: np.ndarray, sdr_signatures: np.ndarray, *, max_offset_frames: int,
                    min_overlap_frames: int = 8) -> OffsetEstimate:
    """The offset whose paired frames match best; see :func:`score_offsets`.

    Raises:
        AlignmentError: no offset leaves ``min_overlap_frames`` frames to compare.
    """
    min_overlap = min(min_overlap_frames, len(hdr_signatures), len(sdr_signatures))
    offsets, scores, overlaps = score_offsets(hdr_signatures, sdr_signatures, max_offset_frames, max(min_overlap, 1))
    if not np.isfinite(scores).any():
        raise AlignmentError(
            f"no offset within +-{max_offset_frames} frames leaves {min_overlap} frames to compare "
            f"({len(hdr_signatures)} HDR, {len(sdr_signatures)} SDR frames)")
    best = int(np.nanargmax(scores))
    far = np.abs(offsets - offsets[best]) >= 2
    runner_up = float(np.nanmax(scores[far])) if np.isfinite(scores[far]).any() else float("nan")
    return OffsetEstimate(
        offset_frames=int(offsets[best]), score=float(scores[best]), runner_up_score=runner_up,
        overlap_frames=int(overlaps[best]), candidate_offsets=tuple(int(o) for o in offsets),
        candidate_scores=tuple(float(s) for s in scores))


def signatures_of(frames: Iterable[DecodedFrame], limit: int | None = None) -> np.ndarray:
    """Stack the signatures of up to ``limit`` frames into [n, D] float32."""
    rows = []
    for frame in frames:
        rows.append(frame_signature(frame))
        if limit is not None and len(rows) >= limit:
            break
    return np.stack(rows) if rows else np.zeros((0, SIGNATURE_SIZE[0] * SIGNATURE_SIZE[1]), dtype=np.float32)


def estimate_offset_from_files(hdr_path: str | Path, sdr_path: str | Path, *, max_offset_frames: int,
                               prefix_frames: int, min_overlap_frames: int = 8) -> OffsetEstimate:
    """Decode the first ``prefix_frames`` frames of both files and estimate the offset from them."""
    hdr_signatures = signatures_of(iter_planes(hdr_path), limit=prefix_frames)
    sdr_signatures = signatures_of(iter_planes(sdr_path), limit=prefix_frames)
    if len(hdr_signatures) == 0 or len(sdr_signatures) == 0:
        raise AlignmentError(f"no frames decoded ({len(hdr_signatures)} HDR, {len(sdr_signatures)} SDR)")
    return estimate_offset(hdr_signatures, sdr_signatures, max_offset_frames=max_offset_frames,
                           min_overlap_frames=min_overlap_frames)
