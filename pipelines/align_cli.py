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
import io
import json
import math
from pathlib import Path
from typing import Any

from fmstf_data.align import plan_frame_mapping, video_fps
from fmstf_data.errors import FmstfError
from fmstf_data.extract import ExtractOptions, PairExtractor


def add_align_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "align", help="offset, confidence, geometry and per-frame scores of a pair",
        description="Align an SDR version to its HDR original from content and report how well every frame pairs.")
    parser.add_argument("hdr", help="the HDR10 file")
    parser.add_argument("sdr", help="the SDR file")
    parser.add_argument("--plot", metavar="FILE.png", help="draw score against offset and per-frame scores")
    parser.add_argument("--json", action="store_true", help="print the full record as JSON")
    parser.add_argument("--max-offset-seconds", type=float, default=5.0,
                        help="search offsets within +- this many seconds (default 5)")
    parser.add_argument("--search-seconds", type=float, default=10.0,
                        help="compare at most this much video beyond the offset window (default 10)")
    parser.add_argument("--min-pair-score", type=float, default=0.6,
                        help="refuse the pair as different videos below this mean match score (default 0.6)")
    parser.add_argument("--min-match-score", type=float, default=0.8,
                        help="frame pairs below this match score are not used (default 0.8)")
    parser.add_argument("--cut-score", type=float, default=0.5, help="shot-cut threshold (default 0.5)")
    parser.add_argument("--stride-frames", type=int, default=8, help="triplet stride for the count (default 8)")


def analyse_pair(hdr: str | Path, sdr: str | Path, options: ExtractOptions | None = None, *,
                 max_offset_seconds: float = 5.0, search_seconds: float = 10.0) -> dict[str, Any]:
    """Align ``hdr`` and ``sdr`` and verify every frame pair; returns ``{"alignment": ..., "extraction": ...}``
    (the sections a build record carries; ``extraction`` is None when the pair is refused)."""
    mapping = plan_frame_mapping(video_fps(hdr), video_fps(sdr))
    base = options or ExtractOptions()
    options = ExtractOptions(**{**base.__dict__,
                                "max_offset_frames": math.ceil(max_offset_seconds * float(mapping.hdr_fps)),
                                "search_frames": math.ceil(search_seconds * float(mapping.sdr_fps))})
    extractor = PairExtractor(hdr, sdr, pair_id="align", split="none", mapping=mapping, options=options)
    alignment = extractor.align()
    record: dict[str, Any] = {"hdr": str(hdr), "sdr": str(sdr), "alignment": alignment.to_dict(), "extraction": None}
    if alignment.refusal is None:
        record["extraction"] = extractor.run().to_dict()
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
        f"frames    {len(extraction['frame_hdr_indices'])} HDR frames, {paired} paired, {verified} verified "
        f"({100 * verified / max(paired, 1):.1f}%); not verified: {unverified}",
        f"scores    match min {summary['min']:.3f}, median {summary['median']:.3f}, mean {summary['mean']:.3f}",
        f"drift     {len(extraction['offset_changes'])} offset change(s) followed"
        + "".join(f"; at HDR frame {frame}: offset {offset:+d}" for frame, offset in extraction["offset_changes"][:8]),
        f"shots     {len(extraction['cut_hdr_frames'])} cut(s) at HDR frames {extraction['cut_hdr_frames'][:20]}; "
        f"{len(extraction['transition_hdr_frames'])} frame(s) in fades or dissolves",
        f"triplets  {extraction['kept_centres']} centres kept; refused: "
        + (", ".join(f"{reason}: {count}" for reason, count in extraction["rejected"].items()) or "none"),
        f"cost      alignment {extraction['align_seconds']:.2f} s + re-decoding {extraction['redecode_seconds']:.2f} s"
        f" for {extraction['decode_seconds']:.2f} s of decoding",
    ]
    return lines


def _rect(rect: list[int]) -> str:
    x, y, width, height = rect
    return f"{width}x{height}+{x}+{y}"


def alignment_figure_png(alignment: dict[str, Any], extraction: dict[str, Any] | None, *, title: str = "") -> bytes:
    """PNG of two panels: mean match and detail scores against the candidate offset (the chosen one marked), and
    the per-frame scores over HDR frames (unverified frames, cuts, fades and re-synchronisations marked).

    Raises:
        FmstfError: matplotlib is not installed.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise FmstfError("plots need matplotlib: pip install 'fmstf-data[plot]'") from error
    figure = Figure(figsize=(10, 6.5), dpi=100)
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1)
    offsets = alignment.get("candidate_offsets") or []
    for key, label, style in (("candidate_detail_scores", "mean detail score", "-"),
                              ("candidate_scores", "mean match score", "--")):
        values = [math.nan if v is None else v for v in alignment.get(key) or []]
        if values:
            top.plot(offsets, values, style, label=label)
    if "offset_frames" in alignment:
        top.axvline(alignment["offset_frames"], color="red", linewidth=0.8,
                    label=f"offset {alignment['offset_frames']:+d}")
    top.set_xlabel("offset (HDR frame shown by SDR frame 0)")
    top.set_ylabel("score")
    top.set_title(f"{title} offset search" + (" (refused)" if alignment.get("refusal") else ""))
    top.legend(loc="lower right", fontsize=8)
    if extraction:
        frames = extraction["frame_hdr_indices"]
        bottom.plot(frames, extraction["frame_scores"], label="match score", linewidth=1)
        bottom.plot(frames, extraction["frame_detail_scores"], label="detail score", linewidth=1)
        bad = [(f, s) for f, s, status in zip(frames, extraction["frame_scores"], extraction["frame_status"])
               if status not in "vt"]
        if bad:
            bottom.plot([f for f, _ in bad], [s for _, s in bad], "rx", markersize=4, label="not verified")
        for position, frame in enumerate(extraction["transition_hdr_frames"]):
            bottom.axvspan(frame - 0.5, frame + 0.5, color="orange", alpha=0.25, linewidth=0,
                           label="fade / dissolve" if position == 0 else None)
        for position, frame in enumerate(extraction["cut_hdr_frames"]):
            bottom.axvline(frame - 0.5, color="black", linewidth=0.8, label="cut" if position == 0 else None)
        for position, (frame, _) in enumerate(extraction["offset_changes"]):
            bottom.axvline(frame, color="purple", linestyle=":", label="offset change" if position == 0 else None)
        bottom.legend(loc="lower right", fontsize=8)
    bottom.set_xlabel("HDR frame")
    bottom.set_ylabel("score of the frame pair")
    bottom.set_ylim(-0.1, 1.05)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def run_align_command(args: argparse.Namespace) -> int:
    options = ExtractOptions(stride_frames=args.stride_frames, min_match_score=args.min_match_score,
                             cut_score=args.cut_score, min_pair_score=args.min_pair_score)
    record = analyse_pair(args.hdr, args.sdr, options, max_offset_seconds=args.max_offset_seconds,
                          search_seconds=args.search_seconds)
    if args.plot:
        png = alignment_figure_png(record["alignment"], record["extraction"], title=Path(args.hdr).name)
        Path(args.plot).write_bytes(png)
    if args.json:
        print(json.dumps(record, indent=1, default=str))
    else:
        print("\n".join(summary_lines(record)))
        if args.plot:
            print(f"plot      {args.plot}")
    usable = record["extraction"] is not None and record["extraction"]["kept_centres"] > 0
    return 0 if usable else 1
