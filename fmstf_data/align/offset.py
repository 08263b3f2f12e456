"""Frame-rate mapping and the offset search: which HDR frame SDR frame 0 shows.

The offset is ``hdr_index = hdr_step * sdr_index + offset_frames`` (negative when the SDR version starts earlier
than the HDR one); ``hdr_step`` is 1 unless the HDR version has an integer multiple of the SDR frame rate
(:func:`plan_frame_mapping`). :func:`estimate_offset` scores every candidate offset in a window by the mean detail
score (:func:`fmstf_data.align.signatures.detail_score`) of the frames it pairs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from fmstf_data.align.signatures import SignatureMatrix
from fmstf_data.errors import AlignmentError, InvalidValueError, ProbeError

logger = logging.getLogger(__name__)

#: frame-rate ratios within this relative tolerance of an integer are treated as that integer (covers 1000/1001)
FRAME_RATE_TOLERANCE = 0.0015


# ---- frame rates --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameMapping:
    """How frame indices of the two versions correspond when their frame rates differ.

    ``hdr_step`` HDR frames pass per SDR frame: 1 for equal rates (also 24 vs 24000/1001: the same frames, retimed
    by 0.1%, pair one to one, and a retiming that drops a frame now and then is caught by per-frame verification),
    n when the HDR version has n times the SDR rate (50 vs 25: every other HDR frame is used).
    """

    hdr_fps: Fraction
    sdr_fps: Fraction
    hdr_step: int = 1

    def __post_init__(self) -> None:
        if self.hdr_step < 1:
            raise InvalidValueError(f"hdr_step must be >= 1, got {self.hdr_step}")

    def describe(self) -> str:
        rates = f"HDR {float(self.hdr_fps):.3f} fps, SDR {float(self.sdr_fps):.3f} fps"
        if self.hdr_step == 1:
            return f"{rates}: frames pair one to one"
        return f"{rates}: every {self.hdr_step}th HDR frame pairs with an SDR frame"


def plan_frame_mapping(hdr_fps: float | Fraction, sdr_fps: float | Fraction) -> FrameMapping:
    """The :class:`FrameMapping` of two frame rates, or a refusal saying why.

    Raises:
        AlignmentError: a rate is missing, the SDR rate is higher than the HDR rate, or the ratio is neither about 1
            (within :data:`FRAME_RATE_TOLERANCE`, e.g. 1000/1001) nor about an integer.
    """
    if not hdr_fps or not sdr_fps or hdr_fps <= 0 or sdr_fps <= 0:
        raise AlignmentError(f"frame rates must be known and positive, got HDR {hdr_fps}, SDR {sdr_fps}")
    hdr = Fraction(hdr_fps).limit_denominator(100000)
    sdr = Fraction(sdr_fps).limit_denominator(100000)
    ratio = float(hdr / sdr)
    step = round(ratio)
    if step >= 1 and abs(ratio / step - 1.0) <= FRAME_RATE_TOLERANCE:
        return FrameMapping(hdr_fps=hdr, sdr_fps=sdr, hdr_step=step)
    if ratio < 1:
        raise AlignmentError(
            f"the SDR version has a higher frame rate ({float(sdr):.3f} fps) than the HDR version "
            f"({float(hdr):.3f} fps): an SDR version made from the HDR one cannot have more distinct frames; "
            f"use an SDR version at the HDR frame rate")
    raise AlignmentError(
        f"frame rates HDR {float(hdr):.3f} fps and SDR {float(sdr):.3f} fps differ by a ratio of {ratio:.4f}, "
        f"neither about 1 nor an integer: frames cannot be paired one to one (pulldown or frame blending); "
        f"use versions with equal frame rates or rates in an integer ratio (50 vs 25)")


def video_fps(path: str | Path) -> Fraction:
    """The declared average frame rate of the first video stream of ``path`` (container metadata).

    Raises:
        ProbeError: the file cannot be opened, has no video stream or declares no rate.
    """
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ProbeError(f"{path} has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    except av.error.FFmpegError as error:
        raise ProbeError(f"cannot open {path}: {error}") from error
    if not rate:
        raise ProbeError(f"{path} declares no frame rate")
    return Fraction(rate)


# ---- offset search ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OffsetEstimate:
    """Result of the offset search.

    Attributes:
        offset_frames: HDR frame index shown by SDR frame 0 (``hdr = hdr_step * sdr + offset``).
        score: mean match score (Spearman) of the frames paired at that offset, in [-1, 1].
        detail_score: mean detail score at that offset (the quantity the search maximises).
        runner_up_score: best mean detail score at any other offset (how distinct the peak is; NaN if none).
        overlap_frames: number of frame pairs the best offset was scored on.
        hdr_step: HDR frames per SDR frame (:class:`FrameMapping`).
        candidate_offsets: every offset tried.
        candidate_scores: mean match score per tried offset (NaN where the overlap was too short).
        candidate_detail_scores: mean detail score per tried offset (NaN likewise).
        searched_frames: (HDR, SDR) frames the search compared.
    """

    offset_frames: int
    score: float
    detail_score: float
    runner_up_score: float
    overlap_frames: int
    hdr_step: int = 1
    candidate_offsets: tuple[int, ...] = field(default=(), repr=False)
    candidate_scores: tuple[float, ...] = field(default=(), repr=False)
    candidate_detail_scores: tuple[float, ...] = field(default=(), repr=False)
    searched_frames: tuple[int, int] = (0, 0)

    @property
    def confidence(self) -> float:
        """Detail-score peak height above the best other offset (0 = ambiguous)."""
        if not np.isfinite(self.runner_up_score):
            return max(0.0, self.detail_score)
        return max(0.0, self.detail_score - self.runner_up_score)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary with the score curves (NaN as None)."""
        def clean(values: Sequence[float]) -> list[float | None]:
            return [None if not math.isfinite(v) else round(v, 4) for v in values]

        return {"offset_frames": self.offset_frames, "score": round(self.score, 6),
                "detail_score": round(self.detail_score, 6),
                "runner_up_score": None if not math.isfinite(self.runner_up_score) else round(self.runner_up_score, 6),
                "confidence": round(self.confidence, 6), "overlap_frames": self.overlap_frames,
                "hdr_step": self.hdr_step, "searched_frames": list(self.searched_frames),
                "candidate_offsets": list(self.candidate_offsets),
                "candidate_scores": clean(self.candidate_scores),
                "candidate_detail_scores": clean(self.candidate_detail_scores)}


def _diagonal_means(similarity: np.ndarray, offsets: np.ndarray, hdr_step: int, min_overlap: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Mean of entries [hdr_step * j + offset, j] of ``similarity`` [n_hdr, n_sdr] per offset (NaN when fewer than
    ``min_overlap`` entries exist), and the entry counts."""
    n_hdr, n_sdr = similarity.shape
    means = np.full(offsets.size, np.nan)
    counts = np.zeros(offsets.size, dtype=np.int64)
    sdr = np.arange(n_sdr)
    for position, offset in enumerate(offsets):
        hdr = hdr_step * sdr + int(offset)
        valid = (hdr >= 0) & (hdr < n_hdr)
        counts[position] = int(valid.sum())
        if counts[position] >= min_overlap:
            means[position] = float(similarity[hdr[valid], sdr[valid]].mean())
    return means, counts


def estimate_offset(hdr: SignatureMatrix, sdr: SignatureMatrix, *, max_offset_frames: int, hdr_step: int = 1,
                    min_overlap_frames: int = 8) -> OffsetEstimate:
    """The offset in [-max_offset_frames, +max_offset_frames] whose paired frames have the highest mean detail
    score; see the module docstring.

    Raises:
        AlignmentError: no offset leaves ``min_overlap_frames`` frame pairs to compare.
    """
    min_overlap = max(1, min(min_overlap_frames, len(hdr), len(sdr)))
    offsets = np.arange(-max_offset_frames, max_offset_frames + 1)
    if len(hdr) == 0 or len(sdr) == 0:
        raise AlignmentError(f"no frames to compare ({len(hdr)} HDR, {len(sdr)} SDR)")
    detail_means, counts = _diagonal_means(hdr.detail @ sdr.detail.T, offsets, hdr_step, min_overlap)
    rank_means, _ = _diagonal_means(hdr.rank @ sdr.rank.T, offsets, hdr_step, min_overlap)
    if not np.isfinite(detail_means).any():
        raise AlignmentError(
            f"no offset within +-{max_offset_frames} frames leaves {min_overlap} frame pairs to compare "
            f"({len(hdr)} HDR, {len(sdr)} SDR frames)")
    best = int(np.nanargmax(detail_means))
    others = np.delete(detail_means, best)
    runner_up = float(np.nanmax(others)) if np.isfinite(others).any() else float("nan")
    return OffsetEstimate(
        offset_frames=int(offsets[best]), score=float(rank_means[best]), detail_score=float(detail_means[best]),
        runner_up_score=runner_up, overlap_frames=int(counts[best]), hdr_step=hdr_step,
        candidate_offsets=tuple(int(o) for o in offsets), candidate_scores=tuple(float(s) for s in rank_means),
        candidate_detail_scores=tuple(float(s) for s in detail_means), searched_frames=(len(hdr), len(sdr)))
