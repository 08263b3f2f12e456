"""The ground-truth check of alignment: run a :class:`fmstf_data.synth.cases.Case` exactly as the build runs a
pair (:class:`fmstf_data.extract.PairExtractor` with the build's offset window and search length) and check every
kept triplet against the truth: wrongly paired (an SDR frame that does not show its HDR partner), across a cut, or
touching a fade or dissolve frame; and the found geometry against the true picture regions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from fmstf_data.align.offset import plan_frame_mapping, video_fps
from fmstf_data.errors import AlignmentError
from fmstf_data.extract.lockstep import PairExtractor
from fmstf_data.extract.options import ExtractOptions
from fmstf_data.synth.cases import Case, Master, make_case_files


@dataclass
class CaseResult:
    """What the alignment did with a :class:`Case`, checked against its truth."""

    name: str
    expect: str
    refused: str | None = None
    offset_frames: int | None = None
    truth_offset: int | None = None
    confidence: float = float("nan")
    triplets: int = 0
    wrong_triplets: int = 0
    cut_triplets: int = 0
    transition_triplets: int = 0
    verified_share: float = float("nan")
    offset_changes: int = 0
    min_verified_detail: float = float("nan")
    geometry: str = ""
    geometry_error_px: float | None = None
    geometry_ok: bool | None = None
    seconds: float = 0.0

    @property
    def exact(self) -> bool:
        return self.refused is None and self.offset_frames == self.truth_offset

    @property
    def ok(self) -> bool:
        if self.expect != "aligned":
            return self.refused is not None
        return self.exact and self.triplets > 0 and self.geometry_ok is not False and \
            not (self.wrong_triplets or self.cut_triplets or self.transition_triplets)


#: a found geometry is right when it puts the true SDR region's edges within this many HDR pixels of the truth
GEOMETRY_TOLERANCE_PX = 1.5


def mapping_error(geometry, expected_hdr_rect, expected_sdr_rect) -> float:
    """Largest distance, in HDR pixels, between where the found geometry and the true one put the corners of the
    true SDR region (rects not given are the whole frames)."""
    true_hdr = expected_hdr_rect or (0, 0, geometry.hdr_width, geometry.hdr_height)
    true_sdr = expected_sdr_rect or (0, 0, geometry.sdr_width, geometry.sdr_height)
    error = 0.0
    for axis in (0, 1):
        for edge in (true_sdr[axis], true_sdr[axis] + true_sdr[axis + 2]):
            def mapped(hdr_rect, sdr_rect):
                return hdr_rect[axis] + (edge - sdr_rect[axis]) * hdr_rect[axis + 2] / sdr_rect[axis + 2]
            error = max(error, abs(mapped(true_hdr, true_sdr) - mapped(geometry.hdr_rect, geometry.sdr_rect)))
    return error


def extract_options(hdr_fps: Fraction, sdr_fps: Fraction, *, stride_frames: int = 4) -> ExtractOptions:
    """The extraction's defaults with the build's offset window and search length for these rates (the build's
    default stride is 8; the cases use 4 to check more triplets)."""
    return ExtractOptions(stride_frames=stride_frames).for_rates(hdr_fps, sdr_fps)


def run_case(case: Case, masters: dict[str, Master], workdir: Path) -> CaseResult:
    """Align the case's files as the build does and check every kept triplet against the truth."""
    hdr_path, sdr_path = make_case_files(case, masters, workdir)
    result = CaseResult(case.name, case.expect, truth_offset=case.truth_offset)
    started = time.perf_counter()
    try:
        mapping = plan_frame_mapping(video_fps(hdr_path), video_fps(sdr_path))
        extractor = PairExtractor(hdr_path, sdr_path, pair_id="bench", split="train", mapping=mapping,
                                  options=extract_options(mapping.hdr_fps, mapping.sdr_fps))
        alignment = extractor.align()
        result.offset_frames = alignment.offset_frames
        result.confidence = alignment.estimate.confidence
        result.geometry = alignment.geometry.describe()
        geometry = alignment.geometry
        if case.expect_hdr_rect or case.expect_sdr_rect:
            result.geometry_error_px = mapping_error(geometry, case.expect_hdr_rect, case.expect_sdr_rect)
            result.geometry_ok = result.geometry_error_px <= GEOMETRY_TOLERANCE_PX
        samples = [sample.metadata for sample in extractor.samples()]
    except AlignmentError as error:
        result.refused = str(error)
        result.seconds = time.perf_counter() - started
        return result
    result.seconds = time.perf_counter() - started
    stats = extractor.stats
    result.verified_share = stats.verified_frames / max(stats.paired_frames, 1)
    result.offset_changes = len(stats.offset_changes)
    verified = [d for d, status in zip(stats.detail_scores, stats.frame_status) if status in "vt"]
    result.min_verified_detail = min(verified) if verified else float("nan")
    master = masters[case.master]
    cuts = set(master.cuts)
    transitions = set(master.transition_frames)
    result.triplets = len(samples)
    for meta in samples:
        shown = [case.sdr.shows[j] for j in meta["sdr_frames"]]
        true_hdr = [index + case.hdr_start for index in meta["hdr_frames"]]
        if shown != true_hdr or case.sdr_master is not None:
            result.wrong_triplets += 1
        if any(true_hdr[0] < cut <= true_hdr[-1] for cut in cuts):
            result.cut_triplets += 1
        if transitions.intersection(range(true_hdr[0], true_hdr[-1] + 1)):
            result.transition_triplets += 1
    return result
