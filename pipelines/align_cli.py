"""``fmstf-data align HDR SDR [--plot FILE.png] [--json]``: alignment diagnostics for one pair of files.

Runs exactly what the build runs for a pair (frame-rate mapping, picture areas and geometry, offset search, the
lockstep pass that verifies every frame pair, shots and transitions, triplet selection) but stores nothing, then
prints the offset, its confidence, the geometry and a summary of the per-frame scores. ``--plot`` draws the mean
scores against the candidate offset and the per-frame scores over time (matplotlib, the ``plot`` extra);
:func:`alignment_figure_png` draws the same figure for the build report (``report/alignment/{pair_id}.png``).

Exit status: 0 when the pair aligns and has usable triplets, 1 when it is refused or has none, 2 on errors.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from fmstf_data.align.offset import plan_frame_mapping, video_fps
from fmstf_data.extract.lockstep import PairExtractor
from fmstf_data.extract.options import (
    DEFAULT_MAX_OFFSET_SECONDS,
    DEFAULT_SEARCH_SECONDS,
    FRAMES_SCHEMA,
    ExtractOptions,
)
from pipelines.figures import alignment_figure_png

#: the extraction's own defaults, which the command's options start from
_DEFAULTS = ExtractOptions()


def add_align_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "align", help="offset, confidence, geometry and per-frame scores of a pair",
        description="Align an SDR version to its HDR original from content and report how well every frame pairs.")
    parser.add_argument("hdr", help="the HDR10 file")
    parser.add_argument("sdr", help="the SDR file")
    parser.add_argument("--plot", metavar="FILE.png", help="draw score against offset and per-frame scores")
    parser.add_argument("--json", action="store_true", help="print the full record as JSON")
    parser.add_argument("--max-offset-seconds", type=float, default=DEFAULT_MAX_OFFSET_SECONDS,
                        help="search offsets within +- this many seconds (default %(default)s)")
    parser.add_argument("--search-seconds", type=float, default=DEFAULT_SEARCH_SECONDS,
                        help="compare at most this much video beyond the offset window (default %(default)s)")
    parser.add_argument("--min-pair-score", type=float, default=_DEFAULTS.min_pair_score,
                        help="refuse the pair as different videos below this mean match score (default %(default)s)")
    parser.add_argument("--min-match-score", type=float, default=_DEFAULTS.min_match_score,
                        help="frame pairs below this match score are not used (default %(default)s)")
    parser.add_argument("--cut-score", type=float, default=_DEFAULTS.cut_score,
                        help="shot-cut threshold (default %(default)s)")
    parser.add_argument("--stride-frames", type=int, default=_DEFAULTS.stride_frames,
                        help="triplet stride for the count (default %(default)s)")


def analyse_pair(hdr: str | Path, sdr: str | Path, options: ExtractOptions | None = None, *,
                 max_offset_seconds: float = DEFAULT_MAX_OFFSET_SECONDS,
                 search_seconds: float = DEFAULT_SEARCH_SECONDS) -> dict[str, Any]:
    """Align ``hdr`` and ``sdr`` and verify every frame pair; returns ``{"alignment": ..., "extraction": ...}``
    (the sections a build record carries; ``extraction`` is None when the pair is refused)."""
    mapping = plan_frame_mapping(video_fps(hdr), video_fps(sdr))
    options = (options or ExtractOptions()).for_rates(mapping.hdr_fps, mapping.sdr_fps,
                                                      max_offset_seconds=max_offset_seconds,
                                                      search_seconds=search_seconds)
    extractor = PairExtractor(hdr, sdr, pair_id="align", split="none", mapping=mapping, options=options)
    alignment = extractor.align()
    record: dict[str, Any] = {"hdr": str(hdr), "sdr": str(sdr), "alignment": alignment.to_dict(), "extraction": None,
                              "frames": None}
    if alignment.refusal is None:
        stats = extractor.run()
        record["extraction"], record["frames"] = stats.to_dict(), stats.frames_table().to_pydict()
    return record


def summary_lines(record: dict[str, Any]) -> list[str]:
    """The human summary of :func:`analyse_pair`'s record."""
    alignment, extraction = record["alignment"], record["extraction"]
    details = alignment["geometry_details"]
    runner_up = alignment["runner_up_score"]
    lines = [
        f"HDR       {record['hdr']}: {details['hdr_size'][0]}x{details['hdr_size'][1]}, {alignment['hdr_fps']:.3f} fps",
        f"SDR       {record['sdr']}: {details['sdr_size'][0]}x{details['sdr_size'][1]}, {alignment['sdr_fps']:.3f} fps",
        f"rates     {alignment['frame_mapping']}",
        f"offset    {alignment['offset_frames']:+d} HDR frames (SDR frame 0 shows HDR frame {alignment['offset_frames']})"
        f", match score {alignment['score']:.3f}, detail score {alignment['detail_score']:.3f}",
        f"          confidence {alignment['confidence']:.3f} (best other offset "
        f"{'-' if runner_up is None else f'{runner_up:.3f}'}), {alignment['overlap_frames']} frame pairs compared "
        f"from the first {alignment['searched_frames'][0]} HDR / {alignment['searched_frames'][1]} SDR frames"
        f"{'' if alignment['decisive'] else '; NOT DISTINCT'}",
        f"geometry  {alignment['geometry']}",
        f"          pictures: HDR {_rect(details['hdr_picture'])}, SDR {_rect(details['sdr_picture'])}",
    ]
    if alignment["refusal"]:
        lines.append(f"REFUSED   {alignment['refusal']}")
        return lines
    paired, verified = extraction["paired_frames"], extraction["verified_frames"]
    summary = extraction["score_summary"]
    unverified = ", ".join(f"{reason}: {count}" for reason, count in extraction["unverified"].items()) or "none"
    lines += [
        f"frames    {extraction['decided_frames']} HDR frames, {paired} paired, {verified} verified "
        f"({100 * verified / max(paired, 1):.1f}%); not verified: {unverified}",
        f"scores    match min {summary['min']:.3f}, median {summary['median']:.3f}, mean {summary['mean']:.3f}",
        f"drift     {len(extraction['offset_changes'])} offset change(s) followed"
        + "".join(f"; at HDR frame {frame}: offset {offset:+d}" for frame, offset in extraction["offset_changes"][:8]),
        f"shots     {len(extraction['cut_hdr_frames'])} cut(s) at HDR frames {extraction['cut_hdr_frames'][:20]}; "
        f"{extraction['transition_frames']} frame(s) in fades or dissolves",
        f"triplets  {extraction['kept_centres']} centres kept; refused: "
        + (", ".join(f"{reason}: {count}" for reason, count in extraction["rejected"].items()) or "none"),
        f"cost      alignment {extraction['align_seconds']:.2f} s + re-decoding {extraction['redecode_seconds']:.2f} s"
        f" for {extraction['decode_seconds']:.2f} s of decoding",
    ]
    return lines


def _rect(rect: list[int]) -> str:
    x, y, width, height = rect
    return f"{width}x{height}+{x}+{y}"


def run_align_command(args: argparse.Namespace) -> int:
    options = ExtractOptions(stride_frames=args.stride_frames, min_match_score=args.min_match_score,
                             cut_score=args.cut_score, min_pair_score=args.min_pair_score)
    record = analyse_pair(args.hdr, args.sdr, options, max_offset_seconds=args.max_offset_seconds,
                          search_seconds=args.search_seconds)
    if args.plot:
        frames = None if record["frames"] is None else pa.Table.from_pydict(record["frames"], schema=FRAMES_SCHEMA)
        png = alignment_figure_png(record["alignment"], record["extraction"], frames, title=Path(args.hdr).name)
        Path(args.plot).write_bytes(png)
    if args.json:
        print(json.dumps(record, indent=1, default=str))
    else:
        print("\n".join(summary_lines(record)))
        if args.plot:
            print(f"plot      {args.plot}")
    usable = record["extraction"] is not None and record["extraction"]["kept_centres"] > 0
    return 0 if usable else 1
