"""Options and statistics of the per-pair pass (:class:`fmstf_data.extract.lockstep.PairExtractor`).

:class:`ExtractOptions` holds the settings of both phases (alignment in :mod:`fmstf_data.extract.pair_aligner`, lockstep
extraction in :mod:`fmstf_data.extract.lockstep`); :class:`ExtractionStats` is filled by both while a pair is processed and
ends up in the pair's record as a summary (:meth:`ExtractionStats.to_dict`) and, frame by frame, in the pair's
``pairs/{pair_id}.frames.parquet`` (:meth:`ExtractionStats.frames_table`); :data:`STATUS_CODES` names the per-tick
verification outcomes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

import numpy as np
import pyarrow as pa

from fmstf_data.align.shots import DEFAULT_CUT_SCORE
from fmstf_data.align.verify import LOCAL_DAMAGE, VerifyOptions
from fmstf_data.errors import InvalidValueError

#: per-frame verification defaults, shared by the options that map onto VerifyOptions
_VERIFY_DEFAULTS = VerifyOptions()

#: the build's offset window: the search covers [-this, +this] seconds of the HDR timeline
DEFAULT_MAX_OFFSET_SECONDS = 5.0
#: the build's search length: seconds of each video (beyond the offset window) the offset search decodes at most
DEFAULT_SEARCH_SECONDS = 10.0

#: one character per HDR tick in :attr:`ExtractionStats.frame_status`
STATUS_CODES = {None: "v", "flat frame": "f", "low match score": "l", "weak detail score": "w",
                "a neighbouring SDR frame matches better": "s", "a neighbouring HDR frame matches better": "h",
                "no SDR frame": "-", LOCAL_DAMAGE: "d"}
#: what each status character means in ``frames.parquet`` (``t``: verified, inside a fade or dissolve)
STATUS_NAMES = {**{code: problem or "verified" for problem, code in STATUS_CODES.items()},
                "t": "verified, in a fade or dissolve", "?": "unknown"}

#: ``pairs/{pair_id}.frames.parquet``: one row per HDR frame the lockstep pass decided
FRAMES_SCHEMA = pa.schema([
    ("hdr_frame", pa.int32()),
    ("sdr_frame", pa.int32()),            # null: no SDR partner
    ("offset_frames", pa.int32()),        # HDR index - step * SDR index of the partner (null without one)
    ("match_score", pa.float32()),
    ("detail_score", pa.float32()),
    ("status", pa.string()),              # one of STATUS_NAMES' values
    ("shot_start", pa.bool_()),           # the frame starts a new shot (a cut)
    ("kept_centre", pa.bool_()),          # the frame is the centre of a stored triplet
])


#: the longest sample window: a chunk's lead-in (CHUNK_LEAD_IN_TICKS = 24 ticks) must hold half a window before
#: the chunk's first centre
MAX_WINDOW_FRAMES = 25


@dataclass(frozen=True)
class ExtractOptions:
    """Options of the alignment and extraction pass.

    Attributes:
        stride_frames: one triplet centre is kept per window of this many HDR frames (the first usable one).
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
        window_frames: frames per sample, odd, 3 (the triplets of the paper) to :data:`MAX_WINDOW_FRAMES`; the
            centre is frame ``window_frames // 2`` of the window.
        match_window_frames, resync_margin: per-frame verification (:class:`VerifyOptions`: SDR partners compared
            on each side of the expected one).
        registration_pairs: frame pairs the registration (:func:`fmstf_data.align.geometry.register_rects`) compares.
        max_registration_crop: the largest crop (fraction of the width) the registration tries on either side.
        min_registration_gain: the registration's regions replace the black-bar ones when they raise the mean
            detail score by this much.
        strong_detail_score: a distinct offset whose mean detail score reaches this needs no registration (a
            misregistration of 1 % of the width would have lowered it); below, the registration runs.
        min_registration_score: when no offset is accepted, the registration is still tried at the best match-score
            offset if that mean match score reaches this (a zoomed version still matches roughly).
        decoder_threads: FFmpeg threads per decoder (None: FFmpeg's choice, one per CPU); the frames decoded do
            not depend on it.
    """

    stride_frames: int = 8
    min_match_score: float = _VERIFY_DEFAULTS.min_match_score
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
    window_frames: int = 3
    match_window_frames: int = _VERIFY_DEFAULTS.window_frames
    resync_margin: float = _VERIFY_DEFAULTS.resync_margin
    registration_pairs: int = 8
    max_registration_crop: float = 0.25
    min_registration_gain: float = 0.05
    strong_detail_score: float = 0.5
    decoder_threads: int | None = None
    min_registration_score: float = 0.4

    def __post_init__(self) -> None:
        if self.stride_frames < 1:
            raise InvalidValueError(f"stride_frames must be >= 1, got {self.stride_frames}")
        for name in ("min_match_score", "min_pair_score", "min_pair_detail_score", "cut_score"):
            if not -1.0 <= getattr(self, name) <= 1.0:
                raise InvalidValueError(f"{name} must be in [-1, 1], got {getattr(self, name)}")
        if self.start_frame < 0 or (self.end_frame is not None and self.end_frame <= self.start_frame):
            raise InvalidValueError(f"bad segment [{self.start_frame}, {self.end_frame})")
        if self.max_offset_frames < 0 or self.search_frames < 1 or self.first_search_frames < 2:
            raise InvalidValueError(f"need max_offset_frames >= 0, search_frames >= 1, first_search_frames >= 2, got "
                             f"{self.max_offset_frames}, {self.search_frames}, {self.first_search_frames}")
        if self.decoder_threads is not None and self.decoder_threads < 1:
            raise InvalidValueError(f"decoder_threads must be >= 1 (or None for FFmpeg's choice), got "
                                    f"{self.decoder_threads}")
        if self.geometry_frames < 1 or self.buffer_bytes < 0:
            raise InvalidValueError(f"need geometry_frames >= 1 and buffer_bytes >= 0, got {self.geometry_frames}, "
                             f"{self.buffer_bytes}")
        if type(self.window_frames) is not int or not 3 <= self.window_frames <= MAX_WINDOW_FRAMES \
                or self.window_frames % 2 == 0:
            raise InvalidValueError(f"window_frames must be odd, 3..{MAX_WINDOW_FRAMES}, got {self.window_frames!r}")
        self.verify_options()  # validates the verification fields

    def for_rates(self, hdr_fps: float | Fraction, sdr_fps: float | Fraction, *,
                  max_offset_seconds: float = DEFAULT_MAX_OFFSET_SECONDS,
                  search_seconds: float = DEFAULT_SEARCH_SECONDS) -> ExtractOptions:
        """These options with the offset window and search length given in seconds, converted to frames at the
        pair's rates (``max_offset_frames`` at the HDR rate, ``search_frames`` at the SDR rate, rounded up). The
        build, ``fmstf-data align`` and the alignment benchmark all size their search this way."""
        return replace(self, max_offset_frames=math.ceil(max_offset_seconds * float(hdr_fps)),
                       search_frames=math.ceil(search_seconds * float(sdr_fps)))

    def verify_options(self) -> VerifyOptions:
        return VerifyOptions(window_frames=self.match_window_frames, resync_margin=self.resync_margin,
                             min_match_score=self.min_match_score)


#: ticks a chunk decodes before the first frame it owns: the first CHUNK_ANCHOR_TICKS re-find the pairing
#: (:func:`fmstf_data.align.verify.anchor_shift`), the rest let the per-frame verification, shot and transition
#: detection reach the state a pass from the start has at the chunk's first frame
CHUNK_LEAD_IN_TICKS = 24
CHUNK_ANCHOR_TICKS = 12
#: a chunk looks for the pairing within this many SDR frames of the pair's offset (drift met before the chunk)
CHUNK_DRIFT_FRAMES = 24


@dataclass(frozen=True)
class ChunkSpan:
    """A span of the HDR timeline whose triplet centres (and per-frame rows) one chunk task owns.

    Attributes:
        index: the chunk's number in its pair, from 0.
        start_frame: first HDR frame owned; end_frame: one past the last (None: to the end of the video).
    """

    index: int
    start_frame: int
    end_frame: int | None

    def __post_init__(self) -> None:
        if self.index < 0 or self.start_frame < 0 or (self.end_frame is not None and
                                                      self.end_frame <= self.start_frame):
            raise InvalidValueError(f"bad chunk {self.index}: [{self.start_frame}, {self.end_frame})")

    def owns(self, hdr_frame: int) -> bool:
        return self.start_frame <= hdr_frame and (self.end_frame is None or hdr_frame < self.end_frame)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "start_frame": self.start_frame, "end_frame": self.end_frame}


def plan_chunks(start_frame: int, end_frame: int | None, frame_count: int, chunk_frames: int,
                stride_frames: int) -> list[ChunkSpan]:
    """Cut the segment [start_frame, end_frame) (None: to the video's ``frame_count`` frames, and the last chunk
    then runs to the end) of the HDR timeline into chunks at multiples of ``chunk_frames``, rounded up to a multiple
    of ``stride_frames`` so that every stride window lies in one chunk and the kept centres do not depend on the
    chunking (:mod:`fmstf_data.align.triplets`)."""
    limit = frame_count if end_frame is None else min(end_frame, frame_count)
    if chunk_frames < 1 or stride_frames < 1 or limit <= start_frame:
        raise InvalidValueError(f"need chunk_frames >= 1, stride_frames >= 1 and a non-empty segment, got "
                                f"{chunk_frames}, {stride_frames}, [{start_frame}, {limit})")
    size = -(-chunk_frames // stride_frames) * stride_frames
    bounds = [start_frame] + list(range((start_frame // size + 1) * size, limit, size))
    return [ChunkSpan(index, first, bounds[index + 1] if index + 1 < len(bounds) else end_frame)
            for index, first in enumerate(bounds)]


@dataclass
class ExtractionStats:
    """What one pass saw; filled while :meth:`fmstf_data.extract.lockstep.PairExtractor.samples` runs.

    Attributes:
        hdr_frames_decoded, sdr_frames_decoded: frames each decoder returned (re-decoded ones included).
        hdr_frames_redecoded, sdr_frames_redecoded: frames decoded a second time after the offset search.
        paired_frames: HDR ticks that had an SDR partner.
        hdr_ticks: HDR frame index of every tick decided, in order.
        sdr_partners: SDR partner per tick (-1: none).
        hdr_step: HDR frames per SDR frame of the pass's frame mapping (a tick's offset is its HDR index minus
            ``hdr_step`` times its SDR partner's index).
        scores: match score per tick (0 without a partner); detail_scores: detail score per tick.
        frame_status: one character per tick (:data:`STATUS_CODES`; ``"t"`` verified but in a transition).
        low_score_frames: paired ticks below ``min_match_score``.
        unverified: count of ticks by verification problem.
        damaged_frames: ticks refused as locally damaged (a corrupt stream, :data:`~fmstf_data.align.verify.
            LOCAL_DAMAGE`; also counted in ``unverified``).
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
    hdr_step: int = 1
    scores: list[float] = field(default_factory=list)
    detail_scores: list[float] = field(default_factory=list)
    frame_status: list[str] = field(default_factory=list)
    low_score_frames: int = 0
    unverified: dict[str, int] = field(default_factory=dict)
    damaged_frames: int = 0
    cut_hdr_frames: list[int] = field(default_factory=list)
    transition_hdr_frames: list[int] = field(default_factory=list)
    offset_changes: list[list[int]] = field(default_factory=list)
    kept_centres: list[int] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)
    decode_seconds: float = 0.0
    redecode_seconds: float = 0.0
    align_seconds: float = 0.0
    search_seconds: float = 0.0

    def frames_table(self) -> pa.Table:
        """One row per decided HDR tick (:data:`FRAMES_SCHEMA`), in decoding order."""
        cuts, kept = set(self.cut_hdr_frames), set(self.kept_centres)
        return pa.Table.from_pydict({
            "hdr_frame": self.hdr_ticks,
            "sdr_frame": [None if partner < 0 else partner for partner in self.sdr_partners],
            "offset_frames": [None if partner < 0 else frame - self.hdr_step * partner
                              for frame, partner in zip(self.hdr_ticks, self.sdr_partners)],
            "match_score": self.scores,
            "detail_score": self.detail_scores,
            "status": [STATUS_NAMES.get(code, "unknown") for code in self.frame_status],
            "shot_start": [frame in cuts for frame in self.hdr_ticks],
            "kept_centre": [frame in kept for frame in self.hdr_ticks],
        }, schema=FRAMES_SCHEMA)

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
        """JSON-ready summary: counts, score summary, cuts and offset changes; its size does not grow with the frame
        count except through cuts and offset changes (per-frame values: :meth:`frames_table`)."""
        return {
            "hdr_frames_decoded": self.hdr_frames_decoded, "sdr_frames_decoded": self.sdr_frames_decoded,
            "hdr_frames_redecoded": self.hdr_frames_redecoded, "sdr_frames_redecoded": self.sdr_frames_redecoded,
            "decided_frames": len(self.hdr_ticks),
            "paired_frames": self.paired_frames, "verified_frames": self.verified_frames,
            "low_score_frames": self.low_score_frames, "unverified": dict(sorted(self.unverified.items())),
            "damaged_frames": self.damaged_frames,
            "score_summary": self.score_summary(), "cut_hdr_frames": self.cut_hdr_frames,
            "transition_frames": len(self.transition_hdr_frames), "offset_changes": self.offset_changes,
            "kept_centres": len(self.kept_centres), "rejected": dict(sorted(self.rejected.items())),
            "decode_seconds": round(self.decode_seconds, 3), "redecode_seconds": round(self.redecode_seconds, 3),
            "align_seconds": round(self.align_seconds, 3), "search_seconds": round(self.search_seconds, 3),
            "alignment_cost_share": round(self.alignment_cost_share, 4)
            if math.isfinite(self.alignment_cost_share) else None,
        }
