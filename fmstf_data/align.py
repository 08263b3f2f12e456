"""Temporal alignment of an SDR version to its HDR original, from content.

The two versions of a video differ by an unknown tone curve and gamut mapping, by resolution, framing, codec and
bitrate, and by frames trimmed at either end. Timestamps and file names cannot be trusted, so frames are compared by
*signatures* that survive any monotonic tone curve:

1. the luma plane's picture area (see :mod:`fmstf_data.geometry`) is area-averaged onto a small thumbnail grid that
   is the same for both versions (about 96 x 54 for 16:9, :func:`thumbnail_size`), in 8-bit code units;
2. the thumbnail is replaced by the ranks of its pixels (ties get their average rank): a rank transform is unchanged
   by any increasing tone curve, so the two versions' rank images agree up to noise;
3. the **rank signature** is the zero-mean, unit-norm rank image, and the **detail signature** the zero-mean,
   unit-norm Laplacian of the rank image (its edges and texture).

Two scores compare frames, both correlations in [-1, 1]:

- :func:`match_score` (rank signatures) is Spearman's rank correlation of the thumbnails: "the same picture". It is
  near 1 for the two versions of one frame whatever the tone curve, and near 0 for unrelated pictures, but it
  changes slowly over time (neighbouring frames of a shot score almost as high).
- :func:`detail_score` (detail signatures) changes fast with motion: "the same instant". Its peak over candidate
  partners is sharp, so it picks the offset and verifies each frame's partner against its neighbours.

Flat frames (black, a uniform fade) have no ranks to compare: both signatures are zero and every score is 0.

The offset is ``hdr_index = hdr_step * sdr_index + offset_frames``: the HDR frame index that SDR frame 0 shows
(negative when the SDR version starts earlier than the HDR one); ``hdr_step`` is 1 unless the HDR version has an
integer multiple of the SDR frame rate (:func:`plan_frame_mapping`). :func:`estimate_offset` scores every candidate
offset in a window by the mean detail score of the frames it pairs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

from fmstf_data.errors import AlignmentError, ProbeError
from fmstf_data.video import DecodedFrame

logger = logging.getLogger(__name__)

#: thumbnail pixels of a signature (96 x 54 for 16:9): small enough to be cheap, fine enough to see motion
SIGNATURE_PIXELS = 96 * 54
#: a thumbnail whose luma codes vary less than this (standard deviation, in 8-bit code units) counts as flat
FLAT_STD_CODES_8BIT = 1.0
#: the area average first decimates planes by an integer stride that keeps at least this many samples per
#: thumbnail pixel along each axis (a cheap pre-reduction for large frames)
MIN_SAMPLES_PER_THUMBNAIL_PIXEL = 4
#: frame-rate ratios within this relative tolerance of an integer are treated as that integer (covers 1000/1001)
FRAME_RATE_TOLERANCE = 0.0015


def thumbnail_size(width: int, height: int) -> tuple[int, int]:
    """Signature thumbnail (width, height) for a picture of the given aspect: about :data:`SIGNATURE_PIXELS`
    pixels, each side at least 8. Both versions of a pair use the HDR picture's thumbnail size."""
    if width <= 0 or height <= 0:
        raise AlignmentError(f"picture size must be positive, got {width}x{height}")
    aspect = width / height
    thumb_width = max(8, round(math.sqrt(SIGNATURE_PIXELS * aspect)))
    thumb_height = max(8, round(thumb_width / aspect))
    return thumb_width, thumb_height


def luma_thumbnail(y: np.ndarray, bit_depth: int, size: tuple[int, int],
                   rect: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Area-average a luma code plane [H, W] (or its ``rect`` = (x, y, width, height)) to ``size`` = (width, height).

    Returns float32 [height, width] in 8-bit code units. Large planes are first decimated by an integer stride
    that keeps :data:`MIN_SAMPLES_PER_THUMBNAIL_PIXEL` samples per thumbnail pixel along each axis.
    """
    if rect is not None:
        left, top, width, height = rect
        y = y[top:top + height, left:left + width]
    thumb_width, thumb_height = size
    stride = max(1, min(y.shape[0] // (MIN_SAMPLES_PER_THUMBNAIL_PIXEL * thumb_height),
                        y.shape[1] // (MIN_SAMPLES_PER_THUMBNAIL_PIXEL * thumb_width)))
    if stride > 1:
        y = y[::stride, ::stride]
    plane = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
    thumbnail = F.interpolate(plane[None, None], size=(thumb_height, thumb_width), mode="area")[0, 0].numpy()
    if bit_depth != 8:  # scaled here, on the small array (numpy: no thread pool to wake for a tiny job)
        thumbnail = thumbnail * np.float32(1.0 / (1 << (bit_depth - 8)))
    return thumbnail


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 of a 1-D array as float64, ties sharing their average rank."""
    order = np.argsort(values)
    sorted_values = values[order]
    boundaries = np.flatnonzero(sorted_values[1:] != sorted_values[:-1]) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [values.size]))
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat((starts + ends - 1) / 2.0, ends - starts)
    return ranks


def _unit(vector: np.ndarray) -> np.ndarray:
    vector = vector - vector.mean()
    norm = float(np.linalg.norm(vector))
    if norm < 1e-9:
        return np.zeros(vector.size, dtype=np.float32)
    return (vector / norm).astype(np.float32)


def rank_signature(thumbnail: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-norm rank transform of a thumbnail (float32 vector); all zeros when the frame is flat."""
    values = thumbnail.astype(np.float64, copy=False).ravel()
    if values.std() < FLAT_STD_CODES_8BIT:
        return np.zeros(values.size, dtype=np.float32)
    return _unit(average_ranks(values))


@dataclass(frozen=True)
class FrameSignature:
    """What alignment knows about one frame.

    Attributes:
        rank: zero-mean, unit-norm rank image, float32 [h * w] (zeros when flat).
        detail: zero-mean, unit-norm Laplacian of the rank image, float32 [(h - 2) * (w - 2)] (zeros when flat).
        level: mean luma of the thumbnail, 8-bit code units (fade detection).
        thumbnail: the thumbnail itself, float32 [h, w], 8-bit code units (dissolve detection).
    """

    rank: np.ndarray = field(repr=False)
    detail: np.ndarray = field(repr=False)
    level: float
    thumbnail: np.ndarray = field(repr=False)

    @property
    def flat(self) -> bool:
        """True when the frame has no texture to compare (black, uniform)."""
        return not self.rank.any()


def signature_from_thumbnail(thumbnail: np.ndarray) -> FrameSignature:
    """The :class:`FrameSignature` of a thumbnail [h, w] (h, w >= 3) in 8-bit code units."""
    height, width = thumbnail.shape
    level = float(thumbnail.mean())
    values = thumbnail.astype(np.float64).ravel()
    if values.std() < FLAT_STD_CODES_8BIT:
        zeros = np.zeros(values.size, dtype=np.float32)
        return FrameSignature(zeros, np.zeros((height - 2) * (width - 2), np.float32), level, thumbnail)
    ranks = average_ranks(values)
    image = ranks.reshape(height, width)
    laplacian = (4 * image[1:-1, 1:-1] - image[:-2, 1:-1] - image[2:, 1:-1] - image[1:-1, :-2] - image[1:-1, 2:])
    return FrameSignature(_unit(ranks), _unit(laplacian.ravel()), level, thumbnail)


def frame_signature(frame: DecodedFrame, size: tuple[int, int],
                    rect: tuple[int, int, int, int] | None = None) -> FrameSignature:
    """Signature of a decoded frame's picture area ``rect`` = (x, y, width, height) on a ``size`` thumbnail."""
    return signature_from_thumbnail(luma_thumbnail(frame.y, frame.bit_depth, size, rect))


def match_score(a: FrameSignature, b: FrameSignature) -> float:
    """Spearman rank correlation of two frames' thumbnails, in [-1, 1] (0 if either is flat)."""
    return float(np.dot(a.rank, b.rank))


def detail_score(a: FrameSignature, b: FrameSignature) -> float:
    """Correlation of two frames' rank-image Laplacians, in [-1, 1] (0 if either is flat): sharp in time."""
    return float(np.dot(a.detail, b.detail))


@dataclass(frozen=True)
class SignatureMatrix:
    """Signatures of consecutive frames stacked: ``rank`` [n, D], ``detail`` [n, E] (float32)."""

    rank: np.ndarray
    detail: np.ndarray

    def __post_init__(self) -> None:
        if self.rank.ndim != 2 or self.detail.ndim != 2 or len(self.rank) != len(self.detail):
            raise ValueError(f"rank {self.rank.shape} and detail {self.detail.shape} must be [n, D] and [n, E]")

    def __len__(self) -> int:
        return len(self.rank)

    @classmethod
    def stack(cls, signatures: Sequence[FrameSignature]) -> SignatureMatrix:
        if not signatures:
            return cls(np.zeros((0, 1), np.float32), np.zeros((0, 1), np.float32))
        return cls(np.stack([s.rank for s in signatures]), np.stack([s.detail for s in signatures]))


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
            raise ValueError(f"hdr_step must be >= 1, got {self.hdr_step}")

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


# ---- per-frame verification ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyOptions:
    """Per-frame verification and re-synchronisation (:class:`FrameMatcher`).

    Attributes:
        window_frames: partners compared on each side of the expected one (drops and duplicates up to this many
            frames at once are followed).
        resync_margin: a neighbouring SDR frame must beat the expected partner by this much in detail score (and
            one version must show the drop or duplicate itself, see ``jump_factor``) before the offset moves.
        min_match_score: frame pairs whose match score (Spearman) is below this are not verified.
        min_detail_score: frame pairs whose detail score is below this are not verified (too weak to tell one
            instant from the next).
        jump_factor, repeat_factor, min_step: a step between consecutive frames of one version (1 - their match
            score) is a *jump* (frames dropped) when at least ``jump_factor`` times the median of the two steps on
            either side, a *repeat* (a frame shown twice) when at most ``repeat_factor`` times it; pictures whose
            typical step is below ``min_step`` are still and tell nothing.
    """

    window_frames: int = 2
    resync_margin: float = 0.01
    min_match_score: float = 0.8
    min_detail_score: float = 0.2
    jump_factor: float = 1.6
    repeat_factor: float = 0.3
    min_step: float = 0.002

    def __post_init__(self) -> None:
        if self.window_frames < 1:
            raise ValueError(f"window_frames must be >= 1, got {self.window_frames}")
        if self.resync_margin < 0 or not 0 < self.repeat_factor < 1 < self.jump_factor:
            raise ValueError(f"need resync_margin >= 0 and 0 < repeat_factor < 1 < jump_factor, got "
                             f"{self.resync_margin}, {self.repeat_factor}, {self.jump_factor}")
        if not -1.0 <= self.min_match_score <= 1.0:
            raise ValueError(f"min_match_score must be in [-1, 1], got {self.min_match_score}")


#: reasons a frame pair fails verification
FLAT_FRAME = "flat frame"
LOW_MATCH = "low match score"
WEAK_DETAIL = "weak detail score"
SDR_NEIGHBOUR_BETTER = "a neighbouring SDR frame matches better"
HDR_NEIGHBOUR_BETTER = "a neighbouring HDR frame matches better"
NO_SDR_FRAME = "no SDR frame"


@dataclass(frozen=True)
class FrameMatch:
    """The decision for one HDR tick (an HDR frame on the paired grid).

    Attributes:
        tick: the HDR tick; sdr_index: its SDR partner (None when the SDR version has no frame there).
        match_score, detail_score: the pair's scores (0 without a partner).
        problem: why the pair failed verification, None when verified.
        resynced: this tick moved the offset (a dropped or duplicated frame was followed).
    """

    tick: int
    sdr_index: int | None
    match_score: float
    detail_score: float
    problem: str | None
    resynced: bool = False

    @property
    def verified(self) -> bool:
        return self.problem is None


SignatureLookup = Callable[[int], "FrameSignature | None"]


class FrameMatcher:
    """Streaming per-frame verification with local re-synchronisation.

    Tick ``t`` (HDR frames on the paired grid) is expected to show SDR frame ``t - shift``. :meth:`decide` compares
    that partner with the SDR frames ``window_frames`` either side by detail score (row check) and the partner with
    the HDR ticks either side (column check). The pair is verified when it is not flat, its match score reaches
    ``min_match_score``, its detail score ``min_detail_score``, and no neighbour on either side matches better
    (mutual best). In a still picture the neighbours match as well and noise decides: such frames may go
    unverified, never paired wrongly.
    When a neighbouring SDR frame beats the expected partner by ``resync_margin``, is the mutual best, the next
    tick agrees, and one version's own frames show the skip or repeat this assumes (:meth:`_drift_evidence`, which
    compares frames within each version and so cannot be fooled by a slightly wrong spatial geometry), the shift
    moves there: a dropped frame on the SDR side shifts all later pairs by one, a duplicated one back by one.

    Args:
        shift: initial ``tick - sdr_index``.
        hdr, sdr: lookups of signatures by tick / SDR index, returning None outside the known range; the caller
            makes sure that the ticks and SDR frames :meth:`needs` names are known (or do not exist).
    """

    def __init__(self, shift: int, options: VerifyOptions, hdr: SignatureLookup, sdr: SignatureLookup) -> None:
        self.shift = shift
        self.options = options
        self._hdr = hdr
        self._sdr = sdr
        self._detail: dict[tuple[int, int], float] = {}


    def _within(self, lookup: SignatureLookup, a: int, b: int) -> float | None:
        """Match score between two frames of one version (None when either is unknown)."""
        first, second = (lookup(a) if a >= 0 else None), (lookup(b) if b >= 0 else None)
        return None if first is None or second is None else match_score(first, second)

    def _step(self, lookup: SignatureLookup, index: int) -> float | None:
        """How far frame ``index`` moved from frame ``index - 1`` of one version: 1 - their match score."""
        similarity = self._within(lookup, index - 1, index)
        return None if similarity is None else 1.0 - similarity

    def _anomaly(self, lookup: SignatureLookup, index: int, kind: str) -> bool:
        """True when the step into frame ``index`` of one version stands out from the steps around it: a *jump*
        (at least ``jump_factor`` times their median: frames were dropped) or a *repeat* (at most
        ``repeat_factor`` times it: a frame was shown again)."""
        own = self._step(lookup, index)
        around = [self._step(lookup, k) for k in (index - 2, index - 1, index + 1, index + 2)]
        around = [step for step in around if step is not None]
        if own is None or len(around) < 2:
            return False
        typical = float(np.median(around))
        if typical < self.options.min_step:
            return False  # a still picture: nothing to tell
        if kind == "jump":
            return own >= self.options.jump_factor * typical
        return own <= self.options.repeat_factor * typical

    def _drift_evidence(self, tick: int, best: int, move: int) -> bool:
        """True when one version's own frames show the drop or duplicate that moving the partner of ``tick`` to
        ``best`` (``move`` frames from the expected one) assumes. Moving back (``move < 0``) means the SDR version
        skipped frames (a jump into SDR frame ``best``) or the HDR version repeated one (a repeat into tick
        ``tick``); moving on means the SDR version repeated a frame (into ``best - 1``) or the HDR version skipped
        one (a jump into ``tick``). Each test compares frames within one version (match score: nearly noise-free,
        smooth in time), so a slightly wrong spatial geometry between the versions cannot fake it."""
        if move < 0:
            return self._anomaly(self._sdr, best, "jump") or self._anomaly(self._hdr, tick, "repeat")
        return self._anomaly(self._sdr, best - 1, "repeat") or self._anomaly(self._hdr, tick, "jump")

    def needs(self, tick: int) -> tuple[int, int]:
        """(last tick, last SDR index) that :meth:`decide` of ``tick`` may read."""
        window = self.options.window_frames
        return tick + window + 1, tick - self.shift + 2 * window + 2

    def _score(self, tick: int, sdr_index: int) -> float | None:
        key = (tick, sdr_index)
        if key not in self._detail:
            hdr, sdr = self._hdr(tick), self._sdr(sdr_index) if sdr_index >= 0 else None
            self._detail[key] = None if hdr is None or sdr is None else detail_score(hdr, sdr)
        return self._detail[key]

    def _row(self, tick: int, centre: int) -> dict[int, float]:
        window = self.options.window_frames
        row = {}
        for index in range(centre - window, centre + window + 1):
            score = self._score(tick, index)
            if score is not None:
                row[index] = score
        return row

    def _row_best(self, tick: int, sdr_index: int) -> bool:
        """True when no SDR neighbour of ``sdr_index`` matches ``tick`` better."""
        row = self._row(tick, sdr_index)
        return sdr_index in row and row[sdr_index] >= max(row.values())

    def _column_best(self, tick: int, sdr_index: int) -> bool:
        """True when no HDR neighbour of ``tick`` matches ``sdr_index`` better."""
        window = self.options.window_frames
        own = self._score(tick, sdr_index)
        if own is None:
            return False
        others = [self._score(t, sdr_index) for t in range(tick - window, tick + window + 1) if t != tick and t >= 0]
        others = [score for score in others if score is not None]
        return not others or own >= max(others)

    def decide(self, tick: int) -> FrameMatch:
        """Pair ``tick`` (ticks must be decided in increasing order)."""
        hdr = self._hdr(tick)
        if hdr is None:
            raise KeyError(f"tick {tick} is not known")
        expected = tick - self.shift
        if expected < 0 or self._sdr(expected) is None:
            return FrameMatch(tick, None, 0.0, 0.0, NO_SDR_FRAME)
        row = self._row(tick, expected)
        best = max(row, key=lambda index: (row[index], index == expected))
        resynced = False
        chosen = expected
        if best != expected and row[best] - row[expected] >= self.options.resync_margin \
                and self._column_best(tick, best) and self._row_best(tick + 1, best + 1) \
                and self._drift_evidence(tick, best, best - expected):
            chosen, resynced = best, True
            self.shift = tick - best
        sdr = self._sdr(chosen)
        match, detail = match_score(hdr, sdr), self._score(tick, chosen)
        if hdr.flat or sdr.flat:
            problem = FLAT_FRAME
        elif match < self.options.min_match_score:
            problem = LOW_MATCH
        elif detail < self.options.min_detail_score:
            problem = WEAK_DETAIL
        elif not self._row_best(tick, chosen):
            problem = SDR_NEIGHBOUR_BETTER
        elif not self._column_best(tick, chosen):
            problem = HDR_NEIGHBOUR_BETTER
        else:
            problem = None
        for key in [key for key in self._detail if key[0] < tick - 2 * self.options.window_frames - 2]:
            del self._detail[key]
        return FrameMatch(tick, chosen, match, float(detail), problem, resynced)

