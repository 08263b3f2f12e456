"""Alignment accuracy benchmark: generated HDR10/SDR pairs with known truth, and what alignment costs.

Six HDR masters are rendered in memory with :mod:`fmstf_data.synth.pairs` (256x144 pictures: a 20 s three-shot clip, an
unrelated clip, a 2.39:1 picture letterboxed in its frame, a 50 fps clip, a shot fading to black before a cut, and
a dissolve). Each case writes an HDR10 file (x265) from a range of master frames and an SDR version made the way a
platform might, with a known list of which master frame every SDR frame shows:

- offsets from -110 to +110 frames (both ends trimmed), the SDR version starting before or after the HDR one;
- tone curves BT.2390, BT.2446 A and C, Hable and Reinhard applied per channel, and a "platform" contrast curve on
  the PQ signal; gamut mapping by desaturation or clipping;
- scales 0.5x to 1.5x, letterbox, pillarbox, the HDR version's own bars cropped away, both letterboxed, an SDR
  version zoomed (cropped then scaled back up) or shifted, an HDR version cropped; a stretched 4:3 version that
  must be refused;
- H.264, HEVC, VP9 and AV1 at constant quality or low bit rates; Gaussian noise of 0, 3 and 8 code values;
- dropped and duplicated SDR frames; 50 fps HDR with 25 fps SDR; 24 vs 24000/1001 fps; a 30 fps SDR version
  of a 24 fps HDR one (must be refused); a fade to black followed by a cut; a dissolve;
- unrelated pairs (the SDR version of another clip), which must be refused.

Every case runs exactly as the build runs a pair (:class:`fmstf_data.extract.lockstep.PairExtractor` with the build's
defaults: a 5 s offset window, 10 s of search, stride 4) and every kept triplet is checked against the truth:
wrongly paired (an SDR frame that does not show its HDR partner), across a cut, or touching a fade or dissolve
frame (one at most 90 % as bright as its shot, or mixing two shots with at least 10 % of the light each).

The cost part decodes a 1080p pair with film grain (8 s, HEVC and H.264 at crf 18, made once and cached) and
compares the time alignment takes (picture areas, signatures, offset search, registration, per-frame
verification, shots; plus any re-decoding) with the time a plain decode of both files takes. It runs with one
thread per BLAS/OpenMP pool, as a one-CPU Ray worker does.

    python bench/bench_align.py            # full grid (about 5 min on 2 cores) and the cost
    python bench/bench_align.py --quick    # 12 s masters, one case per tone curve
    python bench/bench_align.py --only drop --no-cost
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # measure as a one-CPU Ray worker runs (Ray sets OMP_NUM_THREADS=1): no thread pools
    for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")

import argparse
import json
import logging
import math
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from fmstf_data.align.offset import plan_frame_mapping, video_fps
from fmstf_data.color import (
    pq_inverse_eotf,
    rgb_to_planes,
)
from fmstf_data.extract.lockstep import PairExtractor
from fmstf_data.synth.cases import (
    HDR_X265_PARAMS,
    TONE_CURVES,
    Case,
    Master,
    PlaneWriter,
    SdrSpec,
    make_case_files,
    render_master,
    tone_map,
)
from fmstf_data.synth.scene import ClipSpec, iter_clip_nits
from fmstf_data.synth.truth import GEOMETRY_TOLERANCE_PX, CaseResult, extract_options, run_case
from fmstf_data.video.decode import iter_planes

logger = logging.getLogger(__name__)
os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1: errors only

def masters_spec(quick: bool) -> dict[str, tuple[ClipSpec, dict[str, Any]]]:
    """The rendered masters of the grid: (clip, render_master keywords)."""
    seconds = 12 if quick else 20
    frames = 24 * seconds
    shots = (frames * 3 // 8, frames * 3 // 8, frames - 2 * (frames * 3 // 8))
    return {
        "main": (ClipSpec(width=256, height=144, fps=Fraction(24), frame_count=frames, seed=11, shot_lengths=shots),
                 {}),
        "other": (ClipSpec(width=256, height=144, fps=Fraction(24), frame_count=frames, seed=99,
                           shot_lengths=(frames // 2, frames - frames // 2)), {}),
        "scope": (ClipSpec(width=256, height=108, fps=Fraction(24), frame_count=24 * 10, seed=12,
                           shot_lengths=(24 * 6, 24 * 4)), {"frame_size": (256, 144)}),
        "fast": (ClipSpec(width=256, height=144, fps=Fraction(50), frame_count=50 * 8, seed=13,
                          shot_lengths=(50 * 5, 50 * 3)), {}),
        "fade": (ClipSpec(width=256, height=144, fps=Fraction(24), frame_count=24 * 8, seed=14,
                          shot_lengths=(24 * 4, 24 * 4), fade_out_frames=16), {}),
        "dissolve": (ClipSpec(width=256, height=144, fps=Fraction(24), frame_count=24 * 7, seed=15), 
                     {"dissolve_frames": 16}),
    }


def grid_cases(masters: dict[str, Master], quick: bool) -> list[Case]:
    """The benchmark grid (see the module docstring)."""
    main_frames = len(masters["main"].frames)
    length = main_frames - 130  # SDR frames of the offset cases: room for the largest offset
    offsets = [0, 3, -7, 12, -1, 60, 1, -40, 110, 5, -110, 24]
    scales = [None, (160, 90), (320, 180), (192, 108), (384, 216), (128, 72)]
    codecs = [("h264", None), ("hevc", None), ("vp9", 200), ("av1", 120), ("h264", 150), ("vp9", None)]
    noises = [0.0, 3.0, 8.0]
    cases = []
    count = 0
    for curve_index, curve in enumerate(TONE_CURVES):
        for repeat in range(1 if quick else 4):
            position = 4 * curve_index + repeat
            offset = offsets[position % len(offsets)]
            codec, kbps = codecs[count % len(codecs)]
            scale = scales[(count + curve_index) % len(scales)]
            noise = noises[count % len(noises)]
            gamut = "clip" if repeat % 2 else "desaturate"
            start = max(0, -offset)
            shows = tuple(range(max(0, offset), max(0, offset) + length))
            cases.append(Case(
                name=f"{curve}-{'p' if offset >= 0 else 'm'}{abs(offset)}-{codec}{kbps or ''}-"
                     f"{'x'.join(map(str, scale)) if scale else 'same'}-n{noise:g}-{gamut}",
                master="main", hdr_start=start, sdr=SdrSpec(shows=shows, tone_curve=curve, gamut_mapping=gamut,
                                                            picture_size=scale, codec=codec, kbps=kbps,
                                                            noise_codes=noise, seed=count)))
            count += 1
    # framing: letterbox, pillarbox, HDR bars cropped away, both letterboxed, an unmappable stretch
    shows = tuple(range(4, 4 + length))
    cases += [
        Case("letterboxed-sdr", "main", SdrSpec(shows=shows, frame_size=(256, 192), tone_curve="bt2446a"),
             expect_hdr_rect=(0, 0, 256, 144), expect_sdr_rect=(0, 24, 256, 144)),
        Case("pillarboxed-sdr-small", "main", SdrSpec(shows=shows, picture_size=(192, 108), frame_size=(256, 108),
                                                      tone_curve="hable", codec="hevc"),
             expect_hdr_rect=(0, 0, 256, 144), expect_sdr_rect=(32, 0, 192, 108)),
        Case("hdr-bars-cropped", "scope", SdrSpec(shows=tuple(range(6, 230)), tone_curve="reinhard"),
             expect_hdr_rect=(0, 18, 256, 108), expect_sdr_rect=(0, 0, 256, 108)),
        Case("hdr-bars-sdr-scaled", "scope", SdrSpec(shows=tuple(range(0, 200)), picture_size=(192, 81),
                                                     tone_curve="bt2390", codec="vp9", kbps=150),
             expect_hdr_rect=(0, 18, 256, 108), expect_sdr_rect=(0, 0, 192, 81)),
        Case("both-letterboxed", "scope", SdrSpec(shows=tuple(range(9, 220)), picture_size=(320, 135),
                                                  frame_size=(320, 180), tone_curve="platform", noise_codes=3),
             expect_hdr_rect=(0, 0, 256, 144), expect_sdr_rect=(0, 0, 320, 180)),
        Case("stretched-4x3", "main", SdrSpec(shows=shows, picture_size=(192, 144)), expect="refused",
             note="aspect mismatch"),
        Case("sdr-zoomed-5pct", "main", SdrSpec(shows=shows, crop=(13, 7, 230, 130), picture_size=(256, 144),
                                                tone_curve="bt2446a"), expect_hdr_rect=(13, 7, 230, 130)),
        Case("sdr-zoomed-10pct-small", "main", SdrSpec(shows=shows, crop=(26, 14, 204, 115), picture_size=(192, 108),
                                                       codec="hevc"), expect_hdr_rect=(26, 14, 204, 115)),
        Case("sdr-shifted", "main", SdrSpec(shows=shows, crop=(6, 0, 250, 141), picture_size=(256, 144),
                                            tone_curve="hable"), expect_hdr_rect=(6, 0, 250, 141)),
        Case("hdr-cropped", "main", SdrSpec(shows=shows, tone_curve="reinhard", noise_codes=3),
             hdr_crop=(14, 8, 228, 128), expect_sdr_rect=(14, 8, 228, 128)),
    ]
    # dropped and duplicated frames, frame rates
    at = [round(length * fraction) for fraction in (0.2, 0.45, 0.7, 0.85)]
    drop = tuple(k for k in range(2, 2 + length) if k not in (at[0], at[1], at[2]))
    dup = tuple(sorted(list(range(0, length)) + [at[1], at[3]]))
    mixed = tuple(k for k in sorted(list(range(8, 8 + length)) + [at[0], at[3]]) if k not in (at[2], at[2] + 1))
    cases += [
        Case("sdr-drops", "main", SdrSpec(shows=drop, tone_curve="bt2446c")),
        Case("sdr-duplicates", "main", SdrSpec(shows=dup, tone_curve="hable", noise_codes=3)),
        Case("sdr-drops-and-duplicates", "main", SdrSpec(shows=mixed, picture_size=(192, 108), codec="hevc")),
        Case("50fps-hdr-25fps-sdr", "fast", SdrSpec(shows=tuple(range(7, 380, 2)), fps=Fraction(25),
                                                     tone_curve="bt2446a")),
        Case("50fps-hdr-25fps-sdr-early", "fast", SdrSpec(shows=tuple(range(0, 360, 2)), fps=Fraction(25)),
             hdr_start=10),
        Case("24fps-hdr-23.976-sdr", "main", SdrSpec(shows=tuple(range(2, 2 + length)), fps=Fraction(24000, 1001),
                                                      tone_curve="reinhard")),
        Case("23.976-hdr-24fps-sdr", "main", SdrSpec(shows=tuple(range(0, length)), fps=Fraction(24)),
             hdr_fps=Fraction(24000, 1001), hdr_start=3),
        Case("30fps-sdr-of-24fps-hdr", "main", SdrSpec(shows=shows, fps=Fraction(30)), expect="refused",
             note="frame-rate ratio 0.8"),
        Case("fade-to-black-and-cut", "fade", SdrSpec(shows=tuple(range(2, 190)), tone_curve="bt2446c")),
        Case("dissolve", "dissolve", SdrSpec(shows=tuple(range(0, 180)), tone_curve="hable")),
    ]
    # unrelated pairs: the SDR version of another video
    for index, (curve, scale) in enumerate([("bt2390", None), ("hable", (160, 90)), ("platform", None),
                                            ("reinhard", (320, 180))]):
        cases.append(Case(f"unrelated-{curve}", "main", SdrSpec(shows=tuple(range(index * 20, index * 20 + 200)),
                                                                 tone_curve=curve, picture_size=scale),
                          sdr_master="other", expect="unrelated"))
    cases.append(Case("unrelated-fade-vs-main", "fade", SdrSpec(shows=tuple(range(0, 180))), sdr_master="main",
                      expect="unrelated"))
    cases.append(Case("unrelated-scope-vs-dissolve", "scope", SdrSpec(shows=tuple(range(0, 160)),
                                                                       picture_size=(256, 108), frame_size=(256, 144)),
                      sdr_master="dissolve", expect="unrelated"))
    return cases


# ---- cost ---------------------------------------------------------------------------------------------------------


def write_cost_clip(workdir: Path, *, width: int = 1920, height: int = 1080, frames: int = 192,
                    grain: float = 0.012) -> tuple[Path, Path]:
    """A 1080p pair with film grain (so that it codes at a realistic bit rate): the scene is rendered at a third of
    the size, upscaled, grained (the same grain on both versions, as it is part of the picture), then encoded as
    HDR10 HEVC and as BT.2390-mapped SDR H.264 (both at crf 18, preset "faster"), the SDR version 3 frames late."""
    import torch
    import torch.nn.functional as functional

    hdr_path, sdr_path = workdir / f"cost{height}.hdr.mp4", workdir / f"cost{height}.sdr.mp4"
    if hdr_path.exists() and sdr_path.exists():
        return hdr_path, sdr_path
    clip = ClipSpec(width=width // 3, height=height // 3, fps=Fraction(24), frame_count=frames, seed=21,
                    shot_lengths=(frames // 2, frames - frames // 2))
    rng = np.random.default_rng(5)

    def upscale(rgb: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32))[None]
        return functional.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False)[0].numpy()

    def both():
        for nits in iter_clip_nits(clip):
            noise = rng.normal(0.0, grain, (1, height, width)).astype(np.float32)
            pq = np.clip(upscale(pq_inverse_eotf(nits)) + noise, 0, 1)
            sdr = np.clip(upscale(tone_map(pq_inverse_eotf(nits).astype(np.float64), "bt2390")) + noise, 0, 1)
            yield (rgb_to_planes(pq, bit_depth=10, matrix="bt2020nc", full_range=False),
                   rgb_to_planes(sdr, bit_depth=8, matrix="bt709", full_range=False))

    options = {"preset": "faster", "crf": "18"}
    hdr_writer = PlaneWriter(hdr_path, codec="libx265", fps=clip.fps, pix_fmt="yuv420p10le",
                         options={**options, "x265-params": HDR_X265_PARAMS}, tags=(16, 9, 9, 1))
    sdr_writer = PlaneWriter(sdr_path, codec="libx264", fps=clip.fps, pix_fmt="yuv420p", options=options,
                         tags=(1, 1, 1, 1))
    try:
        for index, (hdr, sdr) in enumerate(both()):
            hdr_writer.write(*hdr)
            if index >= 3:
                sdr_writer.write(*sdr)
    finally:
        hdr_writer.close()
        sdr_writer.close()
    return hdr_path, sdr_path


def decode_seconds(paths: list[Path]) -> float:
    """Time to decode every frame of ``paths`` to planes (what any build must do at least once)."""
    started = time.perf_counter()
    for path in paths:
        for _ in iter_planes(path):
            pass
    return time.perf_counter() - started


def measure_cost(hdr: Path, sdr: Path, repeats: int = 2) -> dict[str, Any]:
    """Alignment cost on one pair: the best of ``repeats`` runs of a plain decode of both files and of the
    alignment pass (``PairExtractor.run``: search, signatures, verification, shots; no samples)."""
    plain = min(decode_seconds([hdr, sdr]) for _ in range(repeats))
    best = None
    for _ in range(repeats):
        mapping = plan_frame_mapping(video_fps(hdr), video_fps(sdr))
        extractor = PairExtractor(hdr, sdr, pair_id="cost", split="train", mapping=mapping,
                                  options=extract_options(mapping.hdr_fps, mapping.sdr_fps))
        stats = extractor.run()
        if best is None or stats.align_seconds < best.align_seconds:
            best = stats
    frames = best.hdr_frames_decoded + best.sdr_frames_decoded - best.hdr_frames_redecoded - \
        best.sdr_frames_redecoded
    cost = best.align_seconds + best.redecode_seconds
    return {
        "pair": f"{hdr.name} + {sdr.name}", "frames": frames, "offset_frames": extractor.alignment.offset_frames,
        "kept_centres": len(best.kept_centres), "decode_seconds": round(plain, 3),
        "decode_ms_per_frame": round(1000 * plain / frames, 3),
        "align_seconds": round(best.align_seconds, 3), "search_seconds": round(best.search_seconds, 3),
        "redecode_seconds": round(best.redecode_seconds, 3),
        "align_ms_per_frame": round(1000 * (best.align_seconds - best.search_seconds) / frames, 3),
        "share_of_decode": round(cost / plain, 4),
        "share_of_decode_in_pass": round(cost / max(best.decode_seconds - best.redecode_seconds, 1e-9), 4),
    }


# ---- main ---------------------------------------------------------------------------------------------------------


def render_masters(quick: bool) -> dict[str, Master]:
    return {name: render_master(clip, **keywords) for name, (clip, keywords) in masters_spec(quick).items()}


def summarise(results: list[CaseResult]) -> dict[str, Any]:
    """The benchmark's headline numbers."""
    aligned = [r for r in results if r.expect == "aligned"]
    unrelated = [r for r in results if r.expect == "unrelated"]
    refused = [r for r in results if r.expect == "refused"]
    return {
        "cases": len(results),
        "aligned_cases": len(aligned),
        "exact_offset_share": round(sum(r.exact for r in aligned) / max(len(aligned), 1), 4),
        "triplets_kept": sum(r.triplets for r in results),
        "wrongly_paired_triplets": sum(r.wrong_triplets for r in results),
        "cut_spanning_triplets": sum(r.cut_triplets for r in results),
        "transition_triplets": sum(r.transition_triplets for r in results),
        "aligned_cases_without_triplets": sum(r.triplets == 0 for r in aligned),
        "unrelated_cases": len(unrelated),
        "unrelated_accepted": sum(r.refused is None for r in unrelated),
        "unmappable_cases": len(refused),
        "unmappable_accepted": sum(r.refused is None for r in refused),
        "offset_changes_followed": sum(r.offset_changes for r in results),
        "geometry_cases": sum(r.geometry_error_px is not None for r in results),
        "geometry_wrong": sum(r.geometry_ok is False for r in results),
        "geometry_max_error_px": round(max((r.geometry_error_px for r in results
                                            if r.geometry_error_px is not None), default=0.0), 3),
        "cases_failed": [r.name for r in results if not r.ok],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="12 s masters and a quarter of the tone-curve cases")
    parser.add_argument("--no-cost", action="store_true", help="skip the 1080p cost measurement")
    parser.add_argument("--only", default="", help="run only the cases whose name contains this")
    parser.add_argument("--workdir", type=Path, default=Path(__file__).parent / "results" / "align")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    workdir = args.workdir / ("quick" if args.quick else "full")
    workdir.mkdir(parents=True, exist_ok=True)
    bench_started = started = time.perf_counter()
    masters = render_masters(args.quick)
    print(f"masters rendered in {time.perf_counter() - started:.1f} s")
    cases = [case for case in grid_cases(masters, args.quick) if args.only in case.name]
    results = []
    header = (f"{'case':44} {'expect':9} {'offset':>7} {'truth':>6} {'conf':>5} {'trip':>4} {'wrong':>5} "
              f"{'cut':>3} {'fade':>4} {'verif':>6} {'resync':>6} {'minD':>5} {'time':>6}  result")
    print(header)
    for case in cases:
        result = run_case(case, masters, workdir)
        results.append(result)
        offset = "-" if result.offset_frames is None else f"{result.offset_frames:+d}"
        verified = "-" if math.isnan(result.verified_share) else f"{100 * result.verified_share:.0f}%"
        outcome = "ok" if result.ok else "FAIL"
        if result.refused:
            outcome += f" (refused: {result.refused[:70]})"
        print(f"{case.name:44} {case.expect:9} {offset:>7} {case.truth_offset:+6d} {result.confidence:5.2f} "
              f"{result.triplets:4d} {result.wrong_triplets:5d} {result.cut_triplets:3d} "
              f"{result.transition_triplets:4d} {verified:>6} {result.offset_changes:6d} "
              f"{result.min_verified_detail:5.2f} {result.seconds:5.1f}s  {outcome}", flush=True)
    summary = summarise(results)
    print("\nsummary: " + json.dumps(summary))
    print(f"  exact offsets: {100 * summary['exact_offset_share']:.1f}% of {summary['aligned_cases']} aligned cases; "
          f"wrongly paired triplets kept: {summary['wrongly_paired_triplets']}; across a cut: "
          f"{summary['cut_spanning_triplets']}; in a fade or dissolve: {summary['transition_triplets']}; "
          f"unrelated pairs accepted: {summary['unrelated_accepted']} of {summary['unrelated_cases']}; "
          f"unmappable pairs accepted: {summary['unmappable_accepted']} of {summary['unmappable_cases']}; "
          f"geometry within {GEOMETRY_TOLERANCE_PX} px: {summary['geometry_cases'] - summary['geometry_wrong']} of "
          f"{summary['geometry_cases']} (largest error {summary['geometry_max_error_px']} px)")
    costs = []
    if not args.no_cost:
        grid_case = next(case for case in cases if case.expect == "aligned") if cases else None
        if grid_case is not None:
            costs.append(measure_cost(*make_case_files(grid_case, masters, workdir)))
        started = time.perf_counter()
        cost_pair = write_cost_clip(args.workdir)
        print(f"\n1080p cost clip ready in {time.perf_counter() - started:.1f} s")
        costs.append(measure_cost(*cost_pair))
        for cost in costs:
            print(f"cost {cost['pair']}: {cost['frames']} frames decoded in {cost['decode_seconds']:.2f} s "
                  f"({cost['decode_ms_per_frame']:.2f} ms/frame); alignment {cost['align_seconds']:.2f} s "
                  f"(search {cost['search_seconds']:.2f} s, {cost['align_ms_per_frame']:.2f} ms/frame) + "
                  f"re-decoding {cost['redecode_seconds']:.2f} s = {100 * cost['share_of_decode']:.1f}% of decoding")
    print(f"\nbench done in {time.perf_counter() - bench_started:.1f} s")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "cases": [r.__dict__ for r in results],
                                         "cost": costs}, indent=1, default=str))


if __name__ == "__main__":
    main()
