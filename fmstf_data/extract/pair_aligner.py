"""Phase 1 of the per-pair pass: decode the start of both versions, find picture areas, geometry and offset.

:class:`PairAligner` decodes the start of both versions: the first ``geometry_frames`` frames give the picture areas
and the geometry (:mod:`fmstf_data.align.geometry`), then the offset search (:mod:`fmstf_data.align`) compares a growing
prefix (``first_search_frames``, doubling up to ``max_offset_frames + search_frames``) and stops as soon as one offset
stands out; a registration (:func:`fmstf_data.align.geometry.register_rects`) refines the corresponding regions when the
offset is weak. The decoded frames are kept (:class:`_Side`) while they fit ``buffer_bytes``: then the second phase
(:class:`fmstf_data.extract.lockstep.PairExtractor`) replays them and each video is decoded exactly once. Only when the search
needed more frames than fit (large offsets, 4K video) is the prefix decoded a second time. The result is an
:class:`Alignment` record.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fmstf_data.align.geometry import Geometry, PictureAreaDetector, Registration, plan_geometry, register_rects
from fmstf_data.align.offset import FrameMapping, OffsetEstimate, estimate_offset
from fmstf_data.align.signatures import FrameSignature, SignatureMatrix, frame_signature, thumbnail_size
from fmstf_data.errors import AlignmentError
from fmstf_data.extract.options import ExtractionStats, ExtractOptions
from fmstf_data.video.decode import DecodedFrame, iter_planes
from fmstf_data.video.seek import FrameTimeline

logger = logging.getLogger(__name__)


def _rounded(value: float) -> float | None:
    return round(value, 4) if math.isfinite(value) else None


@dataclass(frozen=True)
class Alignment:
    """What :meth:`PairAligner.align` found.

    Attributes:
        estimate: the offset search result (with its score curves).
        geometry: how SDR pixels map onto the HDR frame.
        mapping: how frame indices correspond (frame rates).
        refusal: why the pair is refused as "different videos", None when accepted.
        decisive: the offset stood out (``min_confidence``) before the search ran out of frames.
        registration: the last registration run (its regions are the geometry's when it gained enough).
        thumbnail_size: (width, height) of the signature thumbnails (chunks of the pair compute theirs alike).
    """

    estimate: OffsetEstimate
    geometry: Geometry
    mapping: FrameMapping
    refusal: str | None
    decisive: bool
    registration: Registration | None = None
    thumbnail_size: tuple[int, int] | None = None

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


class _Side:
    """One version's decoder: frames in decode order, kept during the search while the byte budget allows."""

    def __init__(self, path: str | Path, name: str, stats: ExtractionStats, threads: bool | int = True) -> None:
        self.path = path
        self.name = name
        self.stats = stats
        self.threads = threads
        self._frames = iter_planes(path, threads=threads)
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
        frames = iter_planes(self.path, threads=self.threads)
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
            frames = iter_planes(self.path, threads=self.threads)
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


class PairAligner:
    """Aligns one pair (phase 1, :meth:`align`); :class:`fmstf_data.extract.lockstep.PairExtractor` adds the lockstep pass.

    Statistics accumulate in :attr:`stats`; the decoders of both versions (:class:`_Side`) stay open for phase 2.

    Args:
        hdr_path, sdr_path: local video files.
        pair_id, split: the pair's id (contract 1) and split (contract 4), written into every sample.
        mapping: how the frame rates relate (:func:`fmstf_data.align.offset.plan_frame_mapping`).
        options: :class:`~fmstf_data.extract.options.ExtractOptions`.
        sample_metadata: extra JSON-ready metadata copied into every sample (colour tags, HDR10 metadata, ...).
        sdr_fill_codes: SDR (luma, chroma) black written outside the mapped picture.
        alignment: the pair's alignment, found earlier (a chunk task): :meth:`align` then decodes nothing.
        timelines: (HDR, SDR) frame timelines (:class:`fmstf_data.video.seek.FrameTimeline`, windows covering the
            chunk are enough): needed for a chunk that starts inside the video.
    """

    def __init__(self, hdr_path: str | Path, sdr_path: str | Path, *, pair_id: str, split: str,
                 mapping: FrameMapping, options: ExtractOptions, sample_metadata: Mapping[str, Any] | None = None,
                 sdr_fill_codes: tuple[int, int] = (16, 128), alignment: Alignment | None = None,
                 timelines: tuple[FrameTimeline, FrameTimeline] | None = None) -> None:
        self.hdr_path = hdr_path
        self.sdr_path = sdr_path
        self.pair_id = pair_id
        self.split = split
        self.mapping = mapping
        self.options = options
        self.sample_metadata = dict(sample_metadata or {})
        self.sdr_fill_codes = sdr_fill_codes
        self.timelines = timelines
        self.stats = ExtractionStats()
        self.alignment: Alignment | None = None
        threads = True if options.decoder_threads is None else options.decoder_threads
        self._hdr = _Side(hdr_path, "hdr", self.stats, threads)
        self._sdr = _Side(sdr_path, "sdr", self.stats, threads)
        self._size: tuple[int, int] | None = None
        self._geometry: Geometry | None = None
        self._registration: Registration | None = None
        self._bounds: tuple[tuple[int, int, int, int], tuple[int, int, int, int]] | None = None
        if alignment is not None:
            if alignment.thumbnail_size is None:
                raise AlignmentError("the given alignment has no thumbnail size")
            self.alignment, self._size = alignment, alignment.thumbnail_size

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
                                   refusal=refusal, decisive=decisive, registration=self._registration,
                                   thumbnail_size=self._size)
        logger.info("%s: offset %+d frames (score %.3f, detail %.3f, confidence %.3f) from %d/%d frames in %.2f s; %s",
                    self.pair_id, estimate.offset_frames, estimate.score, estimate.detail_score, estimate.confidence,
                    self._hdr.decoded, self._sdr.decoded, time.perf_counter() - started, self._geometry.describe())
        return self.alignment
