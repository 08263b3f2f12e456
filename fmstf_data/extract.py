"""One streaming pass per pair: decode both versions once, align, verify every frame pair, pick triplets, emit samples.

:class:`PairExtractor` works in two phases over the same two decoders:

1. :meth:`~PairExtractor.align` decodes the start of both versions: the first ``geometry_frames`` frames give the
   picture areas and the geometry (:mod:`fmstf_data.geometry`), then the offset search (:mod:`fmstf_data.align`)
   compares a growing prefix (``first_search_frames``, doubling up to ``max_offset_frames + search_frames``) and
   stops as soon as one offset stands out. The decoded frames are kept while they fit ``buffer_bytes``: then the
   second phase replays them and each video is decoded exactly once. Only when the search needed more frames than
   fit (large offsets, 4K video) is the prefix decoded a second time.
2. :meth:`~PairExtractor.samples` runs the two decoders in lockstep: HDR tick ``t`` (every ``hdr_step``-th HDR
   frame) is paired with SDR frame ``t - shift``; every pair is verified by :class:`~fmstf_data.align.FrameMatcher`
   (which follows dropped and duplicated frames), every HDR tick gets its shot (:class:`~fmstf_data.shots.
   ShotTracker`) and transition flag (:class:`~fmstf_data.shots.TransitionDetector`), and as each tick is decided the
   triplet centred on the previous one is offered to :class:`~fmstf_data.select.TripletSelector`. Memory stays at a
   few frames of each side (a lookahead of ``window_frames + 2`` ticks plus the triplet), whatever the video length.

The HDR planes of a sample are the decoder's exact planes (contract 2). The SDR planes are the decoder's planes,
resampled onto the HDR geometry only when the versions differ (:meth:`fmstf_data.geometry.Geometry.map_sdr_planes`).
``hdr_frames`` and ``sdr_frames`` in every sample are the true decode-order indices of the frames stored.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fmstf_data.align import (
    FrameMapping,
    FrameMatch,
    FrameMatcher,
    FrameSignature,
    OffsetEstimate,
    SignatureMatrix,
    VerifyOptions,
    estimate_offset,
    frame_signature,
    thumbnail_size,
)
from fmstf_data.errors import AlignmentError
from fmstf_data.geometry import Geometry, PictureAreaDetector, Registration, plan_geometry, register_rects
from fmstf_data.samples import Sample, sample_key
from fmstf_data.select import TripletSelector, triplet_problem
from fmstf_data.shots import DEFAULT_CUT_SCORE, ShotTracker, TransitionDetector
from fmstf_data.video import DecodedFrame, iter_planes

logger = logging.getLogger(__name__)

#: one character per HDR tick in :attr:`ExtractionStats.frame_status`
STATUS_CODES = {None: "v", "flat frame": "f", "low match score": "l", "weak detail score": "w",
                "a neighbouring SDR frame matches better": "s", "a neighbouring HDR frame matches better": "h",
                "no SDR frame": "-"}


@dataclass(frozen=True)
class ExtractOptions:
    """Options of the alignment and extraction pass.

    Attributes:
        stride_frames: minimum distance between kept triplet centres, in HDR frames.
        min_match_score: frame pairs scoring below this (Spearman of rank thumbnails) are not used.
        cut_score: consecutive HDR frames scoring below this are in different shots.
        start_frame: first HDR frame index that may be used (segment start), inclusive.
        end_frame: HDR frame index where the usable segment ends, exclusive (None = to the end).
        max_offset_frames: the offset search covers [-this, +this] HDR frames.
        search_frames: frames (of SDR-frame duration) compared beyond the offset window, at most.
        first_search_frames: the search starts with this prefix and doubles it until one offset stands out.
        min_pair_score: a pair whose best offset's mean match score is below this is "different videos".
        min_pair_detail_score: likewise for the mean detail score (the sharp, motion-sensitive score).
        min_confidence: an offset "stands out" when its mean detail score beats every other by this much.
        geometry_frames: frames of each version that the picture-area (black bar) detection looks at.
        buffer_bytes: decoded frames kept from the search for replay; beyond it the prefix is decoded again.
        window_frames, resync_margin: per-frame verification (:class:`VerifyOptions`).
        registration_pairs: frame pairs the registration (:func:`fmstf_data.geometry.register_rects`) compares.
        max_registration_crop: the largest crop (fraction of the width) the registration tries on either side.
        min_registration_gain: the registration's regions replace the black-bar ones when they raise the mean
            detail score by this much.
        strong_detail_score: a distinct offset whose mean detail score reaches this needs no registration (a
            misregistration of 1 % of the width would have lowered it); below, the registration runs.
        min_registration_score: when no offset is accepted, the registration is still tried at the best match-score
            offset if that mean match score reaches this (a zoomed version still matches roughly).
    """

    stride_frames: int = 8
    min_match_score: float = 0.8
    cut_score: float = DEFAULT_CUT_SCORE
    start_frame: int = 0
    end_frame: int | None = None
    max_offset_frames: int = 120
    search_frames: int = 240
    first_search_frames: int = 24
    min_pair_score: float = 0.6
    min_pair_detail_score: float = 0.25
    min_confidence: float = 0.03
    geometry_frames: int = 8
    buffer_bytes: int = 256 << 20
    window_frames: int = 2
    resync_margin: float = 0.01
    registration_pairs: int = 8
    max_registration_crop: float = 0.25
    min_registration_gain: float = 0.05
    strong_detail_score: float = 0.5
    min_registration_score: float = 0.4

    def __post_init__(self) -> None:
        if self.stride_frames < 1:
            raise ValueError(f"stride_frames must be >= 1, got {self.stride_frames}")
        for name in ("min_match_score", "min_pair_score", "min_pair_detail_score", "cut_score"):
            if not -1.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [-1, 1], got {getattr(self, name)}")
        if self.start_frame < 0 or (self.end_frame is not None and self.end_frame <= self.start_frame):
            raise ValueError(f"bad segment [{self.start_frame}, {self.end_frame})")
        if self.max_offset_frames < 0 or self.search_frames < 1 or self.first_search_frames < 2:
            raise ValueError(f"need max_offset_frames >= 0, search_frames >= 1, first_search_frames >= 2, got "
                             f"{self.max_offset_frames}, {self.search_frames}, {self.first_search_frames}")
        if self.geometry_frames < 1 or self.buffer_bytes < 0:
            raise ValueError(f"need geometry_frames >= 1 and buffer_bytes >= 0, got {self.geometry_frames}, "
                             f"{self.buffer_bytes}")
        self.verify_options()  # validates the verification fields

    def verify_options(self) -> VerifyOptions:
        return VerifyOptions(window_frames=self.window_frames, resync_margin=self.resync_margin,
                             min_match_score=self.min_match_score)


def _rounded(value: float) -> float | None:
    return round(value, 4) if math.isfinite(value) else None


@dataclass(frozen=True)
class Alignment:
    """What :meth:`PairExtractor.align` found.

    Attributes:
        estimate: the offset search result (with its score curves).
        geometry: how SDR pixels map onto the HDR frame.
        mapping: how frame indices correspond (frame rates).
        refusal: why the pair is refused as "different videos", None when accepted.
        decisive: the offset stood out (``min_confidence``) before the search ran out of frames.
        registration: the last registration run (its regions are the geometry's when it gained enough).
    """

    estimate: OffsetEstimate
    geometry: Geometry
    mapping: FrameMapping
    refusal: str | None
    decisive: bool
    registration: Registration | None = None

    @property
    def offset_frames(self) -> int:
        return self.estimate.offset_frames

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (offset, scores and curves, geometry, frame mapping)."""
        return {**self.estimate.to_dict(), "geometry": self.geometry.describe(),
                "geometry_details": self.geometry.to_dict(), "scale_x": self.geometry.scale[0],
                "scale_y": self.geometry.scale[1], "frame_mapping": self.mapping.describe(),
                "hdr_fps": float(self.mapping.hdr_fps), "sdr_fps": float(self.mapping.sdr_fps),
                "decisive": self.decisive, "refusal": self.refusal,
                "registration": None if self.registration is None else {
                    "hdr_rect": list(self.registration.hdr_rect), "sdr_rect": list(self.registration.sdr_rect),
                    "detail_score": _rounded(self.registration.score),
                    "initial_detail_score": _rounded(self.registration.initial_score),
                    "candidates": self.registration.candidates}}


@dataclass
class FramePair:
    """One HDR tick and its SDR partner (if any), as the extractor saw them."""

    hdr: DecodedFrame
    sdr: DecodedFrame | None
    match: FrameMatch
    shot: int
    transition: str | None
    _sdr_on_hdr_grid: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def score(self) -> float:
        return self.match.match_score

    def sdr_planes(self, geometry: Geometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """SDR planes on the HDR geometry (resampled once, then cached)."""
        if self.sdr is None:
            raise AlignmentError(f"HDR frame {self.hdr.index} has no SDR partner")
        if self._sdr_on_hdr_grid is None:
            self._sdr_on_hdr_grid = geometry.map_sdr_planes(self.sdr.y, self.sdr.cb, self.sdr.cr)
        return self._sdr_on_hdr_grid


@dataclass
class ExtractionStats:
    """What one pass saw; filled while :meth:`PairExtractor.samples` runs.

    Attributes:
        hdr_frames_decoded, sdr_frames_decoded: frames each decoder returned (re-decoded ones included).
        hdr_frames_redecoded, sdr_frames_redecoded: frames decoded a second time after the offset search.
        paired_frames: HDR ticks that had an SDR partner.
        hdr_ticks: HDR frame index of every tick decided, in order.
        sdr_partners: SDR partner per tick (-1: none).
        scores: match score per tick (0 without a partner); detail_scores: detail score per tick.
        frame_status: one character per tick (:data:`STATUS_CODES`; ``"t"`` verified but in a transition).
        low_score_frames: paired ticks below ``min_match_score``.
        unverified: count of ticks by verification problem.
        cut_hdr_frames: HDR frame indices that start a new shot.
        transition_hdr_frames: HDR frames flagged as fade or dissolve.
        offset_changes: [HDR frame, new offset_frames] where a dropped or duplicated frame was followed.
        kept_centres: HDR indices of the centres kept; rejected: count of candidate centres refused, by reason.
        decode_seconds: time spent decoding (re-decoding included); redecode_seconds: the re-decoding part.
        align_seconds: time spent on alignment proper (picture areas, signatures, search, verification, shots).
        search_seconds: the offset search's part of it (comparing the prefixes' signatures).
    """

    hdr_frames_decoded: int = 0
    sdr_frames_decoded: int = 0
    hdr_frames_redecoded: int = 0
    sdr_frames_redecoded: int = 0
    paired_frames: int = 0
    hdr_ticks: list[int] = field(default_factory=list)
    sdr_partners: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    detail_scores: list[float] = field(default_factory=list)
    frame_status: list[str] = field(default_factory=list)
    low_score_frames: int = 0
    unverified: dict[str, int] = field(default_factory=dict)
    cut_hdr_frames: list[int] = field(default_factory=list)
    transition_hdr_frames: list[int] = field(default_factory=list)
    offset_changes: list[list[int]] = field(default_factory=list)
    kept_centres: list[int] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)
    decode_seconds: float = 0.0
    redecode_seconds: float = 0.0
    align_seconds: float = 0.0
    search_seconds: float = 0.0

    def score_summary(self) -> dict[str, float]:
        """min / median / mean match score over paired ticks (NaN when none)."""
        values = np.asarray([s for s, j in zip(self.scores, self.sdr_partners) if j >= 0])
        if values.size == 0:
            return {"min": float("nan"), "median": float("nan"), "mean": float("nan")}
        return {"min": float(values.min()), "median": float(np.median(values)), "mean": float(values.mean())}

    @property
    def verified_frames(self) -> int:
        return sum(1 for status in self.frame_status if status in "vt")

    @property
    def alignment_cost_share(self) -> float:
        """Alignment time (plus any re-decoding) over the time a single decode of both videos took."""
        decode = self.decode_seconds - self.redecode_seconds
        return (self.align_seconds + self.redecode_seconds) / decode if decode > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (per-tick curves rounded)."""
        return {
            "hdr_frames_decoded": self.hdr_frames_decoded, "sdr_frames_decoded": self.sdr_frames_decoded,
            "hdr_frames_redecoded": self.hdr_frames_redecoded, "sdr_frames_redecoded": self.sdr_frames_redecoded,
            "paired_frames": self.paired_frames, "verified_frames": self.verified_frames,
            "low_score_frames": self.low_score_frames, "unverified": dict(sorted(self.unverified.items())),
            "score_summary": self.score_summary(), "cut_hdr_frames": self.cut_hdr_frames,
            "transition_hdr_frames": self.transition_hdr_frames, "offset_changes": self.offset_changes,
            "kept_centres": len(self.kept_centres), "rejected": dict(sorted(self.rejected.items())),
            "frame_hdr_indices": self.hdr_ticks, "frame_sdr_indices": self.sdr_partners,
            "frame_scores": [round(score, 4) for score in self.scores],
            "frame_detail_scores": [round(score, 4) for score in self.detail_scores],
            "frame_status": "".join(self.frame_status), "status_codes": {v: k or "verified"
                                                                         for k, v in STATUS_CODES.items()},
            "decode_seconds": round(self.decode_seconds, 3), "redecode_seconds": round(self.redecode_seconds, 3),
            "align_seconds": round(self.align_seconds, 3), "search_seconds": round(self.search_seconds, 3),
            "alignment_cost_share": round(self.alignment_cost_share, 4)
            if math.isfinite(self.alignment_cost_share) else None,
        }


class _Side:
    """One version's decoder: frames in decode order, kept during the search while the byte budget allows."""

    def __init__(self, path: str | Path, name: str, stats: ExtractionStats) -> None:
        self.path = path
        self.name = name
        self.stats = stats
        self._frames = iter_planes(path)
        self.buffer: deque[DecodedFrame] = deque()
        self.buffer_bytes = 0
        self.buffering = True
        self.restart = False
        self.ended = False
        self.decoded = 0  # frames pulled from the first decoder
        self.signatures: dict[int, FrameSignature] = {}  # search-phase signatures, reused in the second phase

    def _count(self, seconds: float, redecoded: bool) -> None:
        setattr(self.stats, f"{self.name}_frames_decoded", getattr(self.stats, f"{self.name}_frames_decoded") + 1)
        self.stats.decode_seconds += seconds
        if redecoded:
            setattr(self.stats, f"{self.name}_frames_redecoded",
                    getattr(self.stats, f"{self.name}_frames_redecoded") + 1)
            self.stats.redecode_seconds += seconds

    def read(self) -> DecodedFrame | None:
        """The next frame of the search phase (None at the end)."""
        if self.ended:
            return None
        started = time.perf_counter()
        frame = next(self._frames, None)
        if frame is None:
            self.ended = True
            return None
        self._count(time.perf_counter() - started, False)
        self.decoded += 1
        if self.buffering:
            self.buffer.append(frame)
            self.buffer_bytes += frame.y.nbytes + frame.cb.nbytes + frame.cr.nbytes
        return frame

    def drop_buffer(self) -> None:
        """Stop keeping frames: the second phase will decode the prefix again."""
        if self.buffering:
            logger.info("%s: %s search prefix exceeds the buffer; it will be decoded again", self.path, self.name)
        self.buffer.clear()
        self.buffer_bytes = 0
        self.buffering = False
        self.restart = True

    def frames(self, indices: set[int]) -> dict[int, DecodedFrame]:
        """Frames ``indices`` (all below :attr:`decoded`): from the kept prefix, else decoded again."""
        if not self.restart:
            return {frame.index: frame for frame in self.buffer if frame.index in indices}
        found = {}
        for frame in self.rescan(max(indices) + 1):
            if frame.index in indices:
                found[frame.index] = frame
        return found

    def rescan(self, count: int) -> Iterator[DecodedFrame]:
        """Decode the first ``count`` frames again with a second decoder (counted as re-decoded)."""
        frames = iter_planes(self.path)
        try:
            for _ in range(count):
                started = time.perf_counter()
                frame = next(frames, None)
                if frame is None:
                    return
                self._count(time.perf_counter() - started, True)
                yield frame
        finally:
            frames.close()

    def replay(self) -> Iterator[DecodedFrame]:
        """Every frame from the first, for the second phase: the kept prefix then the live decoder, or a new
        decoder when the prefix was not kept."""
        if self.restart:
            self._frames.close()
            frames = iter_planes(self.path)
            while True:
                started = time.perf_counter()
                frame = next(frames, None)
                if frame is None:
                    return
                self._count(time.perf_counter() - started, frame.index < self.decoded)
                yield frame
        self.buffer_bytes = 0
        while self.buffer:
            yield self.buffer.popleft()
        while True:
            started = time.perf_counter()
            frame = next(self._frames, None)
            if frame is None:
                return
            self._count(time.perf_counter() - started, False)
            yield frame


class PairExtractor:
    """Aligns one pair and streams its samples; statistics accumulate in :attr:`stats`.

    Args:
        hdr_path, sdr_path: local video files.
        pair_id, split: the pair's id (contract 1) and split (contract 4), written into every sample.
        mapping: how the frame rates relate (:func:`fmstf_data.align.plan_frame_mapping`).
        options: :class:`ExtractOptions`.
        sample_metadata: extra JSON-ready metadata copied into every sample (colour tags, HDR10 metadata, ...).
        sdr_fill_codes: SDR (luma, chroma) black written outside the mapped picture.
    """

    def __init__(self, hdr_path: str | Path, sdr_path: str | Path, *, pair_id: str, split: str,
                 mapping: FrameMapping, options: ExtractOptions, sample_metadata: Mapping[str, Any] | None = None,
                 sdr_fill_codes: tuple[int, int] = (16, 128)) -> None:
        self.hdr_path = hdr_path
        self.sdr_path = sdr_path
        self.pair_id = pair_id
        self.split = split
        self.mapping = mapping
        self.options = options
        self.sample_metadata = dict(sample_metadata or {})
        self.sdr_fill_codes = sdr_fill_codes
        self.stats = ExtractionStats()
        self.alignment: Alignment | None = None
        self._hdr = _Side(hdr_path, "hdr", self.stats)
        self._sdr = _Side(sdr_path, "sdr", self.stats)
        self._size: tuple[int, int] | None = None
        self._geometry: Geometry | None = None
        self._registration: Registration | None = None
        self._bounds: tuple[tuple[int, int, int, int], tuple[int, int, int, int]] | None = None

    # ---- phase 1 ----------------------------------------------------------------------------------------------

    def _signature(self, side: _Side, frame: DecodedFrame) -> FrameSignature:
        geometry = self.alignment.geometry if self.alignment else self._geometry
        rect = geometry.hdr_picture if side is self._hdr else geometry.sdr_picture
        started = time.perf_counter()
        signature = frame_signature(frame, self._size, rect)
        self.stats.align_seconds += time.perf_counter() - started
        return signature

    def _read_search(self, side: _Side, count: int) -> None:
        """Decode ``side`` up to ``count`` frames, with signatures; keeps the buffers within the budget."""
        while side.decoded < count and not side.ended:
            frame = side.read()
            if frame is None:
                break
            side.signatures[frame.index] = self._signature(side, frame)
            for candidate in (self._hdr, self._sdr):  # the HDR buffer is the bigger one: drop it first
                if self._hdr.buffer_bytes + self._sdr.buffer_bytes <= self.options.buffer_bytes:
                    break
                candidate.drop_buffer()

    def _search(self, length: int) -> tuple[OffsetEstimate, int]:
        """Grow the compared prefix from ``length`` SDR frames (doubling) until one offset stands out, the cap is
        reached or the videos end; returns the estimate and the last prefix length."""
        options, step = self.options, self.mapping.hdr_step
        cap = math.ceil(options.max_offset_frames / step) + options.search_frames  # in SDR frames
        length = min(cap, length)
        while True:
            self._read_search(self._sdr, length)
            self._read_search(self._hdr, step * length)
            started = time.perf_counter()
            hdr = SignatureMatrix.stack([self._hdr.signatures[i] for i in range(self._hdr.decoded)])
            sdr = SignatureMatrix.stack([self._sdr.signatures[i] for i in range(self._sdr.decoded)])
            min_overlap = max(4, min(length // 4, options.search_frames // 2, len(sdr)))
            estimate = estimate_offset(hdr, sdr, max_offset_frames=options.max_offset_frames, hdr_step=step,
                                       min_overlap_frames=min_overlap)
            elapsed = time.perf_counter() - started
            self.stats.align_seconds += elapsed
            self.stats.search_seconds += elapsed
            exhausted = (self._hdr.ended or self._hdr.decoded < step * length) and \
                (self._sdr.ended or self._sdr.decoded < length)
            if self._decisive(estimate) or length >= cap or exhausted:
                return estimate, length
            length = min(cap, 2 * length)

    def _accepted(self, estimate: OffsetEstimate) -> bool:
        return estimate.score >= self.options.min_pair_score and \
            estimate.detail_score >= self.options.min_pair_detail_score

    def _decisive(self, estimate: OffsetEstimate) -> bool:
        return self._accepted(estimate) and estimate.confidence >= self.options.min_confidence

    def _register(self, estimate: OffsetEstimate, *, coarse: bool, at_best_match: bool = False) -> bool:
        """Refine which regions of the two versions correspond (a crop or zoom that black bars do not show) on up
        to ``registration_pairs`` frame pairs: at the found offset, or with ``coarse`` at the best match-score
        offset (the coarse registration forgives a frame or two). Adopts the result when it raises the mean detail
        score by ``min_registration_gain`` (coarse: when it moves the regions at all) and recomputes the prefix's
        signatures; True when the geometry changed."""
        options, step = self.options, self.mapping.hdr_step
        scores = np.asarray(estimate.candidate_scores, dtype=float)
        if coarse or at_best_match:
            if not np.isfinite(scores).any() or np.nanmax(scores) < options.min_registration_score:
                return False  # not even similar content: nothing to register
            offset = estimate.candidate_offsets[int(np.nanargmax(scores))]
        else:
            offset = estimate.offset_frames
        sdr_candidates = [j for j in range(self._sdr.decoded) if 0 <= step * j + offset < self._hdr.decoded
                          and not self._sdr.signatures[j].flat and not self._hdr.signatures[step * j + offset].flat]
        if not sdr_candidates:
            return False
        count = min(options.registration_pairs, len(sdr_candidates))
        chosen = [sdr_candidates[round(k * (len(sdr_candidates) - 1) / max(count - 1, 1))] for k in range(count)]
        started = time.perf_counter()
        hdr_frames = self._hdr.frames({step * j + offset for j in chosen})
        sdr_frames = self._sdr.frames(set(chosen))
        pairs = [(hdr_frames[step * j + offset], sdr_frames[j]) for j in chosen]
        geometry = self._geometry
        registration = register_rects(pairs, geometry.hdr_picture, geometry.sdr_picture, coarse=coarse,
                                      max_crop=options.max_registration_crop, hdr_bounds=self._bounds[0],
                                      sdr_bounds=self._bounds[1])
        self.stats.align_seconds += time.perf_counter() - started
        unchanged = (registration.hdr_rect, registration.sdr_rect) == (geometry.hdr_picture, geometry.sdr_picture)
        if unchanged or (not coarse and not registration.gain >= options.min_registration_gain):
            return False
        self._registration = registration
        self._geometry = plan_geometry((geometry.hdr_width, geometry.hdr_height),
                                       (geometry.sdr_width, geometry.sdr_height), hdr_picture=registration.hdr_rect,
                                       sdr_picture=registration.sdr_rect, fill_codes=self.sdr_fill_codes)
        logger.info("%s: %s registration moved the regions to HDR %s, SDR %s (detail score %.3f -> %.3f)",
                    self.pair_id, "coarse" if coarse else "fine", registration.hdr_rect, registration.sdr_rect,
                    registration.initial_score, registration.score)
        for side in (self._hdr, self._sdr):  # the prefix's signatures again, on the new regions
            frames = side.buffer if not side.restart else side.rescan(side.decoded)
            for frame in frames:
                side.signatures[frame.index] = self._signature(side, frame)
        return True

    def align(self) -> Alignment:
        """Phase 1: picture areas, geometry, offset search and registration on the start of both versions.

        Raises:
            AlignmentError: the geometry cannot be mapped, or a version has no frame.
        """
        if self.alignment is not None:
            return self.alignment
        options, step = self.options, self.mapping.hdr_step
        started = time.perf_counter()
        detectors = {"hdr": PictureAreaDetector(), "sdr": PictureAreaDetector()}
        for side, count in ((self._hdr, step * options.geometry_frames), (self._sdr, options.geometry_frames)):
            while side.decoded < count and not side.ended:
                frame = side.read()
                if frame is not None:
                    detect_started = time.perf_counter()
                    detectors[side.name].update(frame.y, frame.bit_depth)
                    self.stats.align_seconds += time.perf_counter() - detect_started
        if not self._hdr.buffer or not self._sdr.buffer:
            raise AlignmentError(f"no frames decoded ({len(self._hdr.buffer)} HDR, {len(self._sdr.buffer)} SDR)")
        hdr_first, sdr_first = self._hdr.buffer[0], self._sdr.buffer[0]
        self._geometry = plan_geometry((hdr_first.width, hdr_first.height), (sdr_first.width, sdr_first.height),
                                       hdr_picture=detectors["hdr"].picture(),
                                       sdr_picture=detectors["sdr"].picture(), fill_codes=self.sdr_fill_codes)
        self._size = thumbnail_size(*self._geometry.hdr_picture[2:])
        for side in (self._hdr, self._sdr):
            for frame in side.buffer:
                side.signatures[frame.index] = self._signature(side, frame)

        self._bounds = (self._geometry.hdr_picture, self._geometry.sdr_picture)
        estimate, length = self._search(options.first_search_frames)
        strong = self._decisive(estimate) and estimate.detail_score >= options.strong_detail_score
        moved = not strong and self._register(estimate, coarse=True)
        if moved:
            estimate, length = self._search(length)
        if not strong and (self._accepted(estimate) or moved) and \
                self._register(estimate, coarse=False, at_best_match=not self._accepted(estimate)):
            estimate, length = self._search(length)
        accepted, decisive = self._accepted(estimate), self._decisive(estimate)
        refusal = None
        if not accepted:
            refusal = (f"the two sides do not look like the same video: best mean match score {estimate.score:.3f} "
                       f"and detail score {estimate.detail_score:.3f} (at offset {estimate.offset_frames:+d} "
                       f"frames, over {estimate.overlap_frames} frame pairs) against the thresholds "
                       f"{options.min_pair_score} and {options.min_pair_detail_score}")
        elif not decisive:
            logger.warning("%s: offset %+d frames is not distinct (confidence %.3f < %.3f): per-frame verification "
                           "will decide which frames are usable", self.pair_id, estimate.offset_frames,
                           estimate.confidence, options.min_confidence)
        self.alignment = Alignment(estimate=estimate, geometry=self._geometry, mapping=self.mapping,
                                   refusal=refusal, decisive=decisive, registration=self._registration)
        logger.info("%s: offset %+d frames (score %.3f, detail %.3f, confidence %.3f) from %d/%d frames in %.2f s; %s",
                    self.pair_id, estimate.offset_frames, estimate.score, estimate.detail_score, estimate.confidence,
                    self._hdr.decoded, self._sdr.decoded, time.perf_counter() - started, self._geometry.describe())
        return self.alignment

    # ---- phase 2 ----------------------------------------------------------------------------------------------

    def _check_size(self, frame: DecodedFrame, side: str) -> None:
        geometry = self.alignment.geometry
        expected = (geometry.hdr_width, geometry.hdr_height) if side == "hdr" else \
            (geometry.sdr_width, geometry.sdr_height)
        if (frame.width, frame.height) != expected:
            raise AlignmentError(f"frame size changed mid-stream ({side.upper()} frame {frame.index}: "
                                 f"{frame.width}x{frame.height}); {geometry.describe()} was planned")

    def _frame_pairs(self) -> Iterator[FramePair]:
        """Every HDR tick with its verified (or not) SDR partner, in order."""
        alignment = self.align()
        if alignment.refusal is not None:
            raise AlignmentError(alignment.refusal)
        options, step = self.options, self.mapping.hdr_step
        phase, shift = alignment.offset_frames % step, alignment.offset_frames // step
        hdr_source, sdr_source = self._hdr.replay(), self._sdr.replay()
        hdr_ticks: dict[int, tuple[DecodedFrame, FrameSignature]] = {}
        sdr_frames: dict[int, tuple[DecodedFrame, FrameSignature]] = {}
        state = {"hdr_next": 0, "sdr_next": 0, "hdr_end": False, "sdr_end": False}
        transitions = TransitionDetector(cut_score=options.cut_score)
        shots = ShotTracker(cut_score=options.cut_score)
        stop_tick = None if options.end_frame is None else \
            (options.end_frame - phase) // step + options.window_frames + transitions.lookahead + 2

        def signature_of(side: _Side, frame: DecodedFrame) -> FrameSignature:
            cached = side.signatures.pop(frame.index, None)
            return cached if cached is not None else self._signature(side, frame)

        def load_hdr(tick: int) -> None:
            while state["hdr_next"] <= tick and not state["hdr_end"]:
                if stop_tick is not None and state["hdr_next"] > stop_tick:
                    state["hdr_end"] = True
                    return
                frame = next(hdr_source, None)
                if frame is None:
                    state["hdr_end"] = True
                    return
                if frame.index < phase or (frame.index - phase) % step:
                    continue
                self._check_size(frame, "hdr")
                signature = signature_of(self._hdr, frame)
                hdr_ticks[state["hdr_next"]] = (frame, signature)
                transitions.add(signature)
                state["hdr_next"] += 1

        def load_sdr(index: int) -> None:
            while state["sdr_next"] <= index and not state["sdr_end"]:
                frame = next(sdr_source, None)
                if frame is None:
                    state["sdr_end"] = True
                    return
                self._check_size(frame, "sdr")
                sdr_frames[frame.index] = (frame, signature_of(self._sdr, frame))
                state["sdr_next"] += 1

        matcher = FrameMatcher(shift, options.verify_options(),
                               hdr=lambda t: hdr_ticks[t][1] if t in hdr_ticks else None,
                               sdr=lambda j: sdr_frames[j][1] if j in sdr_frames else None)
        tick = 0
        while True:
            last_tick, last_sdr = matcher.needs(tick)
            load_hdr(max(last_tick, tick + transitions.lookahead))
            load_sdr(last_sdr)
            if tick not in hdr_ticks:
                break
            started = time.perf_counter()
            match = matcher.decide(tick)
            frame, signature = hdr_ticks[tick]
            cuts_before = len(shots.cut_frames)
            shot = shots.update(signature)
            transition = transitions.flag(tick)
            self.stats.align_seconds += time.perf_counter() - started
            self._record(frame, match, shots, cuts_before, transition, phase, step)
            sdr = sdr_frames[match.sdr_index][0] if match.sdr_index is not None else None
            yield FramePair(hdr=frame, sdr=sdr, match=match, shot=shot, transition=transition)
            if match.sdr_index is None and state["sdr_end"] and tick - matcher.shift >= state["sdr_next"]:
                break  # the SDR version ended: no later tick can have a partner
            for old in [t for t in hdr_ticks if t < tick - 16]:  # kept for the drift evidence's anchors
                del hdr_ticks[old]
            lowest_sdr = tick - matcher.shift - 16 - 2 * options.window_frames
            for old in [j for j in sdr_frames if j < lowest_sdr]:
                del sdr_frames[old]
            tick += 1

    def _record(self, frame: DecodedFrame, match: FrameMatch, shots: ShotTracker, cuts_before: int,
                transition: str | None, phase: int, step: int) -> None:
        stats = self.stats
        stats.hdr_ticks.append(frame.index)
        stats.sdr_partners.append(-1 if match.sdr_index is None else match.sdr_index)
        stats.scores.append(match.match_score)
        stats.detail_scores.append(match.detail_score)
        status = STATUS_CODES.get(match.problem, "?")
        stats.frame_status.append("t" if status == "v" and transition else status)
        if match.sdr_index is not None:
            stats.paired_frames += 1
            if match.match_score < self.options.min_match_score:
                stats.low_score_frames += 1
        if match.problem is not None:
            stats.unverified[match.problem] = stats.unverified.get(match.problem, 0) + 1
        if len(shots.cut_frames) > cuts_before:
            stats.cut_hdr_frames.append(frame.index)
        if transition:
            stats.transition_hdr_frames.append(frame.index)
        if match.resynced:
            stats.offset_changes.append([frame.index, frame.index - step * match.sdr_index])

    def _problem(self, window: tuple[FramePair, FramePair, FramePair]) -> str | None:
        """Why this window's centre cannot be a triplet centre, or None."""
        return triplet_problem(
            [pair.hdr.index for pair in window], [pair.match.sdr_index for pair in window],
            [pair.shot for pair in window], [pair.match.problem for pair in window],
            [pair.transition for pair in window], start_frame=self.options.start_frame,
            end_frame=self.options.end_frame)

    def _sample(self, window: tuple[FramePair, FramePair, FramePair]) -> Sample:
        geometry = self.alignment.geometry
        centre = window[1]
        hdr = tuple(np.stack([getattr(pair.hdr, name) for pair in window]) for name in ("y", "cb", "cr"))
        sdr_planes = [pair.sdr_planes(geometry) for pair in window]
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
            "detail_scores": [round(pair.match.detail_score, 6) for pair in window],
            "width": geometry.hdr_width,
            "height": geometry.hdr_height,
            "sdr_resampled_from": [geometry.sdr_width, geometry.sdr_height] if geometry.needs_resampling else None,
            "sdr_resampling_filter": geometry.to_dict()["resampling_filter"],
            "sdr_rect": list(geometry.sdr_rect) if geometry.needs_resampling else None,
            "hdr_rect": list(geometry.hdr_rect) if geometry.needs_resampling else None,
        }
        return Sample(key=sample_key(self.pair_id, centre.hdr.index), hdr=hdr, sdr=sdr, metadata=metadata)

    def _triplets(self, emit: bool) -> Iterator[Sample]:
        selector = TripletSelector(stride_frames=self.options.stride_frames)
        window: deque[FramePair] = deque(maxlen=3)
        try:
            for pair in self._frame_pairs():
                window.append(pair)
                if len(window) < 3:
                    continue
                triplet = (window[0], window[1], window[2])
                if selector.offer(triplet[1].hdr.index, self._problem(triplet)):
                    self.stats.kept_centres.append(triplet[1].hdr.index)
                    if emit:
                        yield self._sample(triplet)
        finally:
            self.stats.rejected = dict(selector.rejected_reasons)

    def samples(self) -> Iterator[Sample]:
        """Phase 2: decode both videos in lockstep, yielding the kept triplets in increasing centre order.

        Raises:
            AlignmentError: the pair was refused by :meth:`align`, or a frame size changed mid-stream.
        """
        yield from self._triplets(emit=True)

    def run(self) -> ExtractionStats:
        """Phase 2 without making samples (diagnostics): every frame pair verified, centres chosen, nothing stored."""
        for _ in self._triplets(emit=False):
            pass
        return self.stats
