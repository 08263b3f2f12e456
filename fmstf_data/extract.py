"""One streaming pass over a pair: decode both versions once, verify every frame pair, pick triplets, emit samples.

Given the offset found by :mod:`fmstf_data.align` (``hdr_index = sdr_index + offset_frames``), the two decoders run
in lockstep: HDR frame i is paired with SDR frame i - offset. For every pair the extractor computes the frame match
score and the HDR shot number; it keeps the last three frame pairs in a ring buffer and, as each new one arrives,
decides whether the previous frame is a usable triplet centre (:mod:`fmstf_data.select`). Memory stays at three
frames of each side, whatever the video length, and each video is decoded once.

The HDR planes of a sample are the decoder's exact planes (contract 2). The SDR planes are the decoder's planes too,
resampled onto the HDR geometry only when the sizes differ (:mod:`fmstf_data.geometry`).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from fmstf_data.align import frame_signature, match_score
from fmstf_data.errors import AlignmentError
from fmstf_data.geometry import RESAMPLING_FILTER, Geometry, resample_planes
from fmstf_data.samples import Sample, sample_key
from fmstf_data.select import TripletSelector
from fmstf_data.shots import DEFAULT_CUT_SCORE, ShotTracker
from fmstf_data.video import DecodedFrame, iter_planes

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtractOptions:
    """Options of the extraction pass.

    Attributes:
        stride_frames: minimum distance between kept triplet centres, in HDR frames.
        min_match_score: frame pairs scoring below this (Spearman of rank thumbnails) are not used.
        cut_score: consecutive HDR frames scoring below this are in different shots.
        start_frame: first HDR frame index that may be used (segment start), inclusive.
        end_frame: HDR frame index where the usable segment ends, exclusive (None = to the end).
    """

    stride_frames: int = 8
    min_match_score: float = 0.8
    cut_score: float = DEFAULT_CUT_SCORE
    start_frame: int = 0
    end_frame: int | None = None

    def __post_init__(self) -> None:
        if self.stride_frames < 1:
            raise ValueError(f"stride_frames must be >= 1, got {self.stride_frames}")
        if not -1.0 <= self.min_match_score <= 1.0:
            raise ValueError(f"min_match_score must be in [-1, 1], got {self.min_match_score}")
        if self.start_frame < 0 or (self.end_frame is not None and self.end_frame <= self.start_frame):
            raise ValueError(f"bad segment [{self.start_frame}, {self.end_frame})")


@dataclass
class FramePair:
    """One HDR frame and its SDR partner, as the extractor saw them."""

    hdr: DecodedFrame
    sdr: DecodedFrame
    score: float
    shot: int
    _sdr_on_hdr_grid: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def sdr_planes(self, geometry: Geometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """SDR planes on the HDR geometry (resampled once, then cached)."""
        if self._sdr_on_hdr_grid is None:
            if geometry.needs_resampling:
                self._sdr_on_hdr_grid = resample_planes(self.sdr.y, self.sdr.cb, self.sdr.cr,
                                                        geometry.hdr_height, geometry.hdr_width)
            else:
                self._sdr_on_hdr_grid = (self.sdr.y, self.sdr.cb, self.sdr.cr)
        return self._sdr_on_hdr_grid


@dataclass
class ExtractionStats:
    """What one pass saw; filled while :meth:`PairExtractor.samples` runs.

    Attributes:
        hdr_frames_decoded, sdr_frames_decoded: frames each decoder returned.
        paired_frames: frame pairs compared.
        scores: match score per paired frame, in order (for reports and plots).
        low_score_frames: paired frames below ``min_match_score``.
        cut_hdr_frames: HDR frame indices that start a new shot.
        kept_centres: HDR indices of the centres kept.
        rejected: count of candidate centres refused, by reason.
    """

    hdr_frames_decoded: int = 0
    sdr_frames_decoded: int = 0
    paired_frames: int = 0
    scores: list[float] = field(default_factory=list)
    low_score_frames: int = 0
    cut_hdr_frames: list[int] = field(default_factory=list)
    kept_centres: list[int] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)

    def score_summary(self) -> dict[str, float]:
        if not self.scores:
            return {"min": float("nan"), "median": float("nan"), "mean": float("nan")}
        values = np.asarray(self.scores)
        return {"min": float(values.min()), "median": float(np.median(values)), "mean": float(values.mean())}


class PairExtractor:
    """Streams the samples of one pair; statistics accumulate in :attr:`stats`.

    Args:
        hdr_path, sdr_path: local video files.
        pair_id, split: the pair's id (contract 1) and split (contract 4), written into every sample.
        offset_frames: ``hdr_index = sdr_index + offset_frames``.
        geometry: how SDR frames map onto the HDR frame.
        options: :class:`ExtractOptions`.
        sample_metadata: extra JSON-ready metadata copied into every sample (colour tags, HDR10 metadata, ...).
    """

    def __init__(self, hdr_path: str | Path, sdr_path: str | Path, *, pair_id: str, split: str, offset_frames: int,
                 geometry: Geometry, options: ExtractOptions, sample_metadata: Mapping[str, Any] | None = None
                 ) -> None:
        self.hdr_path = hdr_path
        self.sdr_path = sdr_path
        self.pair_id = pair_id
        self.split = split
        self.offset_frames = offset_frames
        self.geometry = geometry
        self.options = options
        self.sample_metadata = dict(sample_metadata or {})
        self.stats = ExtractionStats()

    def _frame_pairs(self) -> Iterator[FramePair]:
        hdr_frames = iter_planes(self.hdr_path)
        sdr_frames = iter_planes(self.sdr_path)
        skip_hdr = max(0, self.offset_frames)
        skip_sdr = max(0, -self.offset_frames)
        for _ in islice(hdr_frames, skip_hdr):
            self.stats.hdr_frames_decoded += 1
        for _ in islice(sdr_frames, skip_sdr):
            self.stats.sdr_frames_decoded += 1
        shots = ShotTracker(cut_score=self.options.cut_score)
        for hdr in hdr_frames:
            if self.options.end_frame is not None and hdr.index >= self.options.end_frame:
                break  # past the segment: nothing later can be used
            self.stats.hdr_frames_decoded += 1
            sdr = next(sdr_frames, None)
            if sdr is None:  # the SDR version ended first: nothing after this can be paired
                break
            self.stats.sdr_frames_decoded += 1
            if (hdr.width, hdr.height) != (self.geometry.hdr_width, self.geometry.hdr_height) or \
                    (sdr.width, sdr.height) != (self.geometry.sdr_width, self.geometry.sdr_height):
                raise AlignmentError(
                    f"frame size changed mid-stream (HDR frame {hdr.index}: {hdr.width}x{hdr.height}, "
                    f"SDR frame {sdr.index}: {sdr.width}x{sdr.height}); {self.geometry.describe()} was planned")
            hdr_signature = frame_signature(hdr)
            score = match_score(hdr_signature, frame_signature(sdr))
            cuts_before = len(shots.cut_frames)
            shot = shots.update(hdr_signature)
            if len(shots.cut_frames) > cuts_before:
                self.stats.cut_hdr_frames.append(hdr.index)
            self.stats.paired_frames += 1
            self.stats.scores.append(score)
            if score < self.options.min_match_score:
                self.stats.low_score_frames += 1
            yield FramePair(hdr=hdr, sdr=sdr, score=score, shot=shot)

    def _problem(self, window: tuple[FramePair, FramePair, FramePair]) -> str | None:
        """Why this window's centre cannot be a triplet centre, or None."""
        centre = window[1].hdr.index
        if centre - 1 < self.options.start_frame or (
                self.options.end_frame is not None and centre + 1 >= self.options.end_frame):
            return "outside segment"
        if len({pair.shot for pair in window}) > 1:
            return "spans a shot cut"
        if any(pair.score < self.options.min_match_score for pair in window):
            return "low match score"
        return None

    def _sample(self, window: tuple[FramePair, FramePair, FramePair]) -> Sample:
        centre = window[1]
        hdr = tuple(np.stack([getattr(pair.hdr, name) for pair in window]) for name in ("y", "cb", "cr"))
        sdr_planes = [pair.sdr_planes(self.geometry) for pair in window]
        sdr = tuple(np.stack([planes[plane] for planes in sdr_planes]) for plane in range(3))
        metadata = {
            **self.sample_metadata,
            "pair_id": self.pair_id,
            "split": self.split,
            "shot": centre.shot,
            "centre_frame": centre.hdr.index,
            "hdr_frames": [pair.hdr.index for pair in window],
            "sdr_frames": [pair.sdr.index for pair in window],
            "hdr_pts_seconds": [pair.hdr.pts_seconds for pair in window],
            "sdr_pts_seconds": [pair.sdr.pts_seconds for pair in window],
            "match_scores": [round(pair.score, 6) for pair in window],
            "width": self.geometry.hdr_width,
            "height": self.geometry.hdr_height,
            "sdr_resampled_from": [self.geometry.sdr_width, self.geometry.sdr_height]
            if self.geometry.needs_resampling else None,
            "sdr_resampling_filter": RESAMPLING_FILTER if self.geometry.needs_resampling else None,
        }
        return Sample(key=sample_key(self.pair_id, centre.hdr.index), hdr=hdr, sdr=sdr, metadata=metadata)

    def samples(self) -> Iterator[Sample]:
        """Decode both videos once, in lockstep, yielding the kept triplets in increasing centre order."""
        selector = TripletSelector(stride_frames=self.options.stride_frames)
        window: deque[FramePair] = deque(maxlen=3)
        for pair in self._frame_pairs():
            window.append(pair)
            if len(window) < 3:
                continue
            triplet = (window[0], window[1], window[2])
            if selector.offer(triplet[1].hdr.index, self._problem(triplet)):
                self.stats.kept_centres.append(triplet[1].hdr.index)
                yield self._sample(triplet)
        self.stats.rejected = dict(selector.rejected_reasons)
