"""One streaming pass per pair: decode both versions once, align, verify every frame pair, pick triplets, emit samples.

:class:`PairExtractor` works in two phases over the same two decoders:

1. :meth:`~PairExtractor.align` decodes the start of both versions: the first ``geometry_frames`` frames give the
   picture areas and the geometry (:mod:`fmstf_data.align.geometry`), then the offset search (:mod:`fmstf_data.align`)
   compares a growing prefix (``first_search_frames``, doubling up to ``max_offset_frames + search_frames``) and
   stops as soon as one offset stands out. The decoded frames are kept while they fit ``buffer_bytes``: then the
   second phase replays them and each video is decoded exactly once. Only when the search needed more frames than
   fit (large offsets, 4K video) is the prefix decoded a second time.
2. :meth:`~PairExtractor.samples` runs the two decoders in lockstep: HDR tick ``t`` (every ``hdr_step``-th HDR
   frame) is paired with SDR frame ``t - shift``; every pair is verified by :class:`~fmstf_data.align.verify.FrameMatcher`
   (which follows dropped and duplicated frames), every HDR tick gets its shot (:class:`~fmstf_data.align.shots.
   ShotTracker`) and transition flag (:class:`~fmstf_data.align.shots.TransitionDetector`), and as each tick is decided the
   triplet centred on the previous one is offered to :class:`~fmstf_data.align.triplets.TripletSelector`. Memory stays at a
   few frames of each side (a lookahead of ``window_frames + 2`` ticks plus the triplet), whatever the video length.

The HDR planes of a sample are the decoder's exact planes (contract 2). The SDR planes are the decoder's planes,
resampled onto the HDR geometry only when the versions differ (:meth:`fmstf_data.align.geometry.Geometry.map_sdr_planes`).
``hdr_frames`` and ``sdr_frames`` in every sample are the true decode-order indices of the frames stored.

The first phase, its :class:`Alignment` record and the decoders' buffering live in :mod:`fmstf_data.extract.pair_aligner`
(:class:`PairExtractor` extends its :class:`~fmstf_data.extract.pair_aligner.PairAligner`); the options and statistics in
:mod:`fmstf_data.extract.options`. Their names are re-exported here.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from fmstf_data.align.geometry import Geometry
from fmstf_data.align.shots import ShotTracker, TransitionDetector
from fmstf_data.align.signatures import FrameSignature
from fmstf_data.align.triplets import TripletSelector, triplet_problem
from fmstf_data.align.verify import LOCAL_DAMAGE, FrameMatch, FrameMatcher, anchor_shift
from fmstf_data.errors import AlignmentError
from fmstf_data.extract.options import (
    CHUNK_ANCHOR_TICKS,
    CHUNK_DRIFT_FRAMES,
    CHUNK_LEAD_IN_TICKS,
    STATUS_CODES,
    ChunkSpan,
    ExtractionStats,
)
from fmstf_data.extract.pair_aligner import PairAligner, _Side
from fmstf_data.store.samples import Sample, sample_key
from fmstf_data.video.decode import DecodedFrame
from fmstf_data.video.seek import SeekingDecoder


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


class PairExtractor(PairAligner):
    """Aligns one pair and streams its samples; statistics accumulate in :attr:`stats`.

    Args:
        hdr_path, sdr_path: local video files.
        pair_id, split: the pair's id (contract 1) and split (contract 4), written into every sample.
        mapping: how the frame rates relate (:func:`fmstf_data.align.offset.plan_frame_mapping`).
        options: :class:`ExtractOptions`.
        sample_metadata: extra JSON-ready metadata copied into every sample (colour tags, HDR10 metadata, ...).
        sdr_fill_codes: SDR (luma, chroma) black written outside the mapped picture.
    """

    # ---- phase 2 ----------------------------------------------------------------------------------------------

    def _check_size(self, frame: DecodedFrame, side: str) -> None:
        geometry = self.alignment.geometry
        expected = (geometry.hdr_width, geometry.hdr_height) if side == "hdr" else \
            (geometry.sdr_width, geometry.sdr_height)
        if (frame.width, frame.height) != expected:
            raise AlignmentError(f"frame size changed mid-stream ({side.upper()} frame {frame.index}: "
                                 f"{frame.width}x{frame.height}); {geometry.describe()} was planned")

    def _sources(self, chunk: ChunkSpan | None, first_tick: int, sdr_first: int
                 ) -> tuple[Iterator[DecodedFrame], Iterator[DecodedFrame]]:
        """The two decoders: the phase-1 replay for a whole pass, else decoders that seek to the keyframe before
        the chunk's lead-in (frames named by their timestamps, :mod:`fmstf_data.video.seek`)."""
        if chunk is None or self.timelines is None:
            if first_tick > 0 or sdr_first > 0:
                raise AlignmentError("a chunk that starts inside the video needs the frame timelines of both sides")
            return self._hdr.replay(), self._sdr.replay()
        hdr_first = self.alignment.offset_frames % self.mapping.hdr_step + self.mapping.hdr_step * first_tick
        threads = self._hdr.threads
        return (self._counted(SeekingDecoder(self.hdr_path, self.timelines[0], hdr_first, threads=threads), "hdr"),
                self._counted(SeekingDecoder(self.sdr_path, self.timelines[1], sdr_first, threads=threads), "sdr"))

    def _counted(self, decoder: SeekingDecoder, side: str) -> Iterator[DecodedFrame]:
        """``decoder``'s frames, its decoding (skipped frames included) counted and timed in :attr:`stats`."""
        frames = iter(decoder)
        counted = 0
        while True:
            started = time.perf_counter()
            frame = next(frames, None)
            self.stats.decode_seconds += time.perf_counter() - started
            name = f"{side}_frames_decoded"
            setattr(self.stats, name, getattr(self.stats, name) + decoder.frames_decoded - counted)
            counted = decoder.frames_decoded
            if frame is None:
                return
            yield frame

    def _frame_pairs(self, chunk: ChunkSpan | None = None) -> Iterator[FramePair]:
        """Every HDR tick with its verified (or not) SDR partner, in order: from the first frame, or for a chunk
        from its lead-in (:data:`~fmstf_data.extract.options.CHUNK_LEAD_IN_TICKS` ticks before its first frame)
        to the lookahead past its last."""
        alignment = self.align()
        if alignment.refusal is not None:
            raise AlignmentError(alignment.refusal)
        options, step = self.options, self.mapping.hdr_step
        self.stats.hdr_step = step
        phase, shift = alignment.offset_frames % step, alignment.offset_frames // step
        owned_tick = 0 if chunk is None else max(0, -(-(chunk.start_frame - phase) // step))
        first_tick = max(0, owned_tick - CHUNK_LEAD_IN_TICKS)
        anchored = first_tick > 0
        sdr_first = max(0, first_tick - shift - CHUNK_DRIFT_FRAMES - 2 * options.match_window_frames - 2) if anchored \
            else 0
        hdr_source, sdr_source = self._sources(chunk, first_tick, sdr_first)
        hdr_ticks: dict[int, tuple[DecodedFrame, FrameSignature]] = {}
        sdr_frames: dict[int, tuple[DecodedFrame, FrameSignature]] = {}
        state = {"hdr_next": first_tick, "sdr_next": sdr_first, "hdr_end": False, "sdr_end": False}
        transitions = TransitionDetector(cut_score=options.cut_score, first_frame=first_tick)
        shots = ShotTracker(cut_score=options.cut_score)
        ends = [end for end in (options.end_frame, None if chunk is None else chunk.end_frame) if end is not None]
        stop_tick = None if not ends else \
            (min(ends) - phase) // step + options.match_window_frames + options.window_frames // 2 \
            + transitions.lookahead + 2

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
                if frame.index < phase + step * first_tick or (frame.index - phase) % step:
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
                if frame.index < sdr_first:
                    continue
                self._check_size(frame, "sdr")
                sdr_frames[frame.index] = (frame, signature_of(self._sdr, frame))
                state["sdr_next"] += 1

        def hdr_lookup(t: int) -> FrameSignature | None:
            return hdr_ticks[t][1] if t in hdr_ticks else None

        def sdr_lookup(j: int) -> FrameSignature | None:
            return sdr_frames[j][1] if j in sdr_frames else None

        if anchored:  # re-find the pairing at the lead-in: drift met before the chunk is not known here
            anchor_ticks = range(first_tick, first_tick + CHUNK_ANCHOR_TICKS)
            load_hdr(anchor_ticks[-1] + 1)
            load_sdr(anchor_ticks[-1] - shift + CHUNK_DRIFT_FRAMES + 1)
            found = anchor_shift(hdr_lookup, sdr_lookup, anchor_ticks,
                                 range(shift - CHUNK_DRIFT_FRAMES, shift + CHUNK_DRIFT_FRAMES + 1),
                                 min_detail_score=options.min_pair_detail_score, min_confidence=options.min_confidence)
            shift = shift if found is None else found
        matcher = FrameMatcher(shift, options.verify_options(), hdr=hdr_lookup, sdr=sdr_lookup)
        tick = first_tick
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
            if chunk is None or chunk.owns(frame.index):
                self._record(frame, match, shots, cuts_before, transition, phase, step)
            sdr = sdr_frames[match.sdr_index][0] if match.sdr_index is not None else None
            yield FramePair(hdr=frame, sdr=sdr, match=match, shot=shot, transition=transition)
            if match.sdr_index is None and state["sdr_end"] and tick - matcher.shift >= state["sdr_next"]:
                break  # the SDR version ended: no later tick can have a partner
            for old in [t for t in hdr_ticks if t < tick - 16]:  # kept for the drift evidence's anchors
                del hdr_ticks[old]
            lowest_sdr = tick - matcher.shift - 16 - 2 * options.match_window_frames - options.window_frames
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
        if match.problem == LOCAL_DAMAGE:
            stats.damaged_frames += 1
        if len(shots.cut_frames) > cuts_before:
            stats.cut_hdr_frames.append(frame.index)
        if transition:
            stats.transition_hdr_frames.append(frame.index)
        if match.resynced:
            stats.offset_changes.append([frame.index, frame.index - step * match.sdr_index])

    def _problem(self, window: tuple[FramePair, ...]) -> str | None:
        """Why this window's centre cannot be a sample centre, or None (the rules hold for the whole window)."""
        return triplet_problem(
            [pair.hdr.index for pair in window], [pair.match.sdr_index for pair in window],
            [pair.shot for pair in window], [pair.match.problem for pair in window],
            [pair.transition for pair in window], start_frame=self.options.start_frame,
            end_frame=self.options.end_frame)

    def _sample(self, window: tuple[FramePair, ...]) -> Sample:
        geometry = self.alignment.geometry
        centre = window[len(window) // 2]
        hdr = tuple(np.stack([getattr(pair.hdr, name) for pair in window]) for name in ("y", "cb", "cr"))
        sdr_planes = [pair.sdr_planes(geometry) for pair in window]
        sdr = tuple(np.stack([planes[plane] for planes in sdr_planes]) for plane in range(3))
        metadata = {
            **self.sample_metadata,
            "pair_id": self.pair_id,
            "split": self.split,
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

    def _triplets(self, emit: bool, chunk: ChunkSpan | None = None) -> Iterator[Sample]:
        selector = TripletSelector(stride_frames=self.options.stride_frames)
        size = self.options.window_frames
        window: deque[FramePair] = deque(maxlen=size)
        try:
            for pair in self._frame_pairs(chunk):
                window.append(pair)
                if len(window) < size:
                    continue
                frames = tuple(window)
                centre = frames[size // 2].hdr.index
                if chunk is not None and not chunk.owns(centre):
                    continue
                if selector.offer(centre, self._problem(frames)):
                    self.stats.kept_centres.append(centre)
                    if emit:
                        yield self._sample(frames)
        finally:
            self.stats.rejected = dict(selector.rejected_reasons)

    def samples(self, chunk: ChunkSpan | None = None) -> Iterator[Sample]:
        """Phase 2: decode both videos in lockstep, yielding the kept triplets in increasing centre order; with
        ``chunk``, only the triplets centred in its span (and only its frames in :attr:`stats`), decoding from the
        keyframe before its lead-in (needs :attr:`timelines`).

        Raises:
            AlignmentError: the pair was refused by :meth:`align`, or a frame size changed mid-stream.
        """
        yield from self._triplets(emit=True, chunk=chunk)

    def run(self) -> ExtractionStats:
        """Phase 2 without making samples (diagnostics): every frame pair verified, centres chosen, nothing stored."""
        for _ in self._triplets(emit=False):
            pass
        return self.stats
