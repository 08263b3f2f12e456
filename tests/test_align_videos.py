"""Alignment on small generated video pairs with known truth (PyAV encodes in tmp_path): offsets through unknown tone
curves, scales, letterbox/pillarbox, crops, codecs, dropped and duplicated frames, frame rates, cuts and fades,
unrelated pairs, the single decode, the ``fmstf-data align`` command and the build's index."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fmstf_data.align.offset import plan_frame_mapping, video_fps
from fmstf_data.extract.lockstep import PairExtractor
from fmstf_data.synth.cases import Case, SdrSpec, make_case_files, render_master
from fmstf_data.synth.scene import ClipSpec
from fmstf_data.synth.truth import extract_options, run_case
from pipelines.cli import main

FRAMES = 96


@pytest.fixture(scope="module")
def masters():
    """Small HDR masters (160x90 pictures): two shots of a moving scene, another video, 50 fps, a letterboxed
    'scope' picture, and a shot that fades to black before a cut."""
    clip = ClipSpec(width=160, height=90, fps=Fraction(24), frame_count=FRAMES, seed=3, shot_lengths=(48, 48))
    return {
        "main": render_master(clip),
        "other": render_master(ClipSpec(width=160, height=90, fps=Fraction(24), frame_count=FRAMES, seed=8)),
        "fast": render_master(ClipSpec(width=160, height=90, fps=Fraction(50), frame_count=120, seed=5)),
        "scope": render_master(ClipSpec(width=160, height=68, fps=Fraction(24), frame_count=72, seed=6),
                               frame_size=(160, 90)),
        "fade": render_master(ClipSpec(width=160, height=90, fps=Fraction(24), frame_count=80, seed=4,
                                       shot_lengths=(40, 40), fade_out_frames=14)),
    }


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("align")


def frames_from(first: int, count: int = 70) -> tuple[int, ...]:
    return tuple(range(first, first + count))


@pytest.mark.parametrize("case", [
    Case("p3-bt2390-h264", "main", SdrSpec(shows=frames_from(3))),
    Case("m5-hable-hevc-smaller-noisy", "main", SdrSpec(shows=frames_from(0), tone_curve="hable", codec="hevc",
                                                        picture_size=(128, 72), noise_codes=4), hdr_start=5),
    Case("p11-reinhard-vp9-larger", "main", SdrSpec(shows=frames_from(11), tone_curve="reinhard", codec="vp9",
                                                     kbps=150, picture_size=(240, 135), gamut_mapping="clip")),
    Case("p0-platform-bt2446a-av1", "main", SdrSpec(shows=frames_from(0), tone_curve="platform", codec="av1")),
    Case("p20-bt2446c", "main", SdrSpec(shows=frames_from(20), tone_curve="bt2446c")),
], ids=lambda case: case.name)
def test_offset_is_exact_through_tone_curves_scales_and_codecs(case, masters, workdir):
    result = run_case(case, masters, workdir)
    assert result.refused is None and result.offset_frames == case.truth_offset
    assert result.triplets > 10 and result.wrong_triplets == 0 and result.cut_triplets == 0
    assert result.verified_share > 0.9


def test_unrelated_pair_is_refused_with_its_score_and_the_threshold(masters, workdir):
    case = Case("unrelated", "main", SdrSpec(shows=frames_from(0), tone_curve="hable"), sdr_master="other",
                expect="unrelated")
    result = run_case(case, masters, workdir)
    assert result.refused is not None and result.triplets == 0
    assert "do not look like the same video" in result.refused and "threshold" in result.refused
    assert "best mean match score" in result.refused


def test_dropped_and_duplicated_frames_are_followed_and_pairs_stay_true(masters, workdir):
    shows = [k for k in frames_from(2, 80) if k not in (20, 61)]  # two SDR drops
    shows.insert(shows.index(40), 39)  # and a duplicate
    case = Case("drops", "main", SdrSpec(shows=tuple(shows), tone_curve="bt2446a"))
    result = run_case(case, masters, workdir)
    assert result.exact and result.triplets > 10
    assert result.wrong_triplets == 0  # every sdr_frames entry shows its hdr_frames partner
    assert result.offset_changes == 3


def test_frame_rates_map_by_integer_ratio_or_are_refused(masters, workdir):
    half = Case("50-to-25", "fast", SdrSpec(shows=tuple(range(7, 110, 2)), fps=Fraction(25)))
    result = run_case(half, masters, workdir)
    assert result.exact and result.triplets > 5 and result.wrong_triplets == 0
    hdr, sdr = make_case_files(half, masters, workdir)
    mapping = plan_frame_mapping(video_fps(hdr), video_fps(sdr))
    extractor = PairExtractor(hdr, sdr, pair_id="half", split="train", mapping=mapping,
                              options=extract_options(mapping.hdr_fps, mapping.sdr_fps))
    sample = next(extractor.samples())
    assert mapping.hdr_step == 2
    centre = sample.metadata["centre_frame"]
    assert sample.metadata["hdr_frames"] == [centre - 2, centre, centre + 2]
    assert sample.metadata["sdr_frames"] == [(f - 7) // 2 for f in sample.metadata["hdr_frames"]]

    ntsc = Case("24-vs-23.976", "main", SdrSpec(shows=frames_from(2), fps=Fraction(24000, 1001)))
    assert run_case(ntsc, masters, workdir).exact
    faster = Case("24-vs-30", "main", SdrSpec(shows=frames_from(2), fps=Fraction(30)), expect="refused")
    refused = run_case(faster, masters, workdir).refused
    assert refused is not None and "higher frame rate" in refused


def test_letterbox_pillarbox_and_hdr_bars_map_onto_the_hdr_grid(masters, workdir):
    letterboxed = Case("letterboxed", "main", SdrSpec(shows=frames_from(4), frame_size=(160, 120)),
                       expect_sdr_rect=(0, 14, 160, 90))
    pillarboxed = Case("pillarboxed", "main", SdrSpec(shows=frames_from(1), picture_size=(128, 72),
                                                      frame_size=(192, 72), tone_curve="hable"),
                       expect_sdr_rect=(32, 0, 128, 72))
    for case in (letterboxed, pillarboxed):
        result = run_case(case, masters, workdir)
        assert result.exact and result.geometry_ok and result.triplets > 10 and result.wrong_triplets == 0
    scope = Case("hdr-bars", "scope", SdrSpec(shows=frames_from(2, 60), picture_size=(192, 82)),
                 expect_hdr_rect=(0, 10, 160, 68))
    result = run_case(scope, masters, workdir)
    assert result.exact and result.geometry_ok
    hdr, sdr = make_case_files(scope, masters, workdir)
    mapping = plan_frame_mapping(video_fps(hdr), video_fps(sdr))
    extractor = PairExtractor(hdr, sdr, pair_id="scope", split="train", mapping=mapping,
                              options=extract_options(mapping.hdr_fps, mapping.sdr_fps))
    sample = next(extractor.samples())
    assert [plane.shape for plane in sample.sdr] == [plane.shape for plane in sample.hdr]
    assert (sample.sdr[0][:, :10] == 16).all() and (sample.sdr[0][:, 78:] == 16).all()  # SDR black in HDR's bars
    assert sample.sdr[0][:, 20:70].std() > 5  # and the picture inside
    assert sample.metadata["hdr_rect"] == [0, 10, 160, 68] and sample.metadata["sdr_rect"] == [0, 0, 192, 82]


def test_a_zoomed_sdr_version_is_registered(masters, workdir):
    case = Case("zoomed", "main", SdrSpec(shows=frames_from(3), crop=(8, 4, 144, 81), picture_size=(160, 90)),
                expect_hdr_rect=(8, 4, 144, 81))
    result = run_case(case, masters, workdir)
    assert result.exact and result.geometry_ok and result.wrong_triplets == 0 and result.triplets > 5


def test_no_triplet_spans_a_cut_or_touches_a_fade(masters, workdir):
    case = Case("fade-cut", "fade", SdrSpec(shows=frames_from(1, 79), tone_curve="bt2446c"))
    result = run_case(case, masters, workdir)
    assert result.exact and result.triplets > 5
    assert result.cut_triplets == 0 and result.transition_triplets == 0 and result.wrong_triplets == 0
    hdr, sdr = make_case_files(case, masters, workdir)
    mapping = plan_frame_mapping(video_fps(hdr), video_fps(sdr))
    stats = PairExtractor(hdr, sdr, pair_id="fade", split="train", mapping=mapping,
                          options=extract_options(mapping.hdr_fps, mapping.sdr_fps)).run()
    assert stats.cut_hdr_frames == [40]
    assert set(masters["fade"].transition_frames) <= set(stats.transition_hdr_frames) | {79}


def test_each_video_is_decoded_once_unless_the_search_outgrows_the_buffer(masters, workdir):
    case = Case("once", "main", SdrSpec(shows=frames_from(6)))
    hdr, sdr = make_case_files(case, masters, workdir)
    mapping = plan_frame_mapping(video_fps(hdr), video_fps(sdr))
    runs = []
    for buffer_bytes in (256 << 20, 0):
        options = extract_options(mapping.hdr_fps, mapping.sdr_fps)
        extractor = PairExtractor(hdr, sdr, pair_id="once", split="train", mapping=mapping,
                                  options=type(options)(**{**options.__dict__, "buffer_bytes": buffer_bytes}))
        samples = [(s.key, s.metadata["sdr_frames"], s.sdr[0].tobytes()) for s in extractor.samples()]
        runs.append((samples, extractor.stats))
    (kept, once), (again, twice) = runs
    assert kept == again and kept
    assert once.hdr_frames_redecoded == once.sdr_frames_redecoded == 0  # the search prefix was replayed
    assert once.sdr_frames_decoded == 70 and once.hdr_frames_decoded < FRAMES  # stops once the SDR version ends
    assert twice.hdr_frames_redecoded > 0 and twice.sdr_frames_redecoded > 0
    assert twice.hdr_frames_decoded == once.hdr_frames_decoded + twice.hdr_frames_redecoded


def test_cli_align_prints_the_summary_and_plots(masters, workdir, tmp_path, capsys):
    hdr, sdr = make_case_files(Case("p3-bt2390-h264", "main", SdrSpec(shows=frames_from(3))), masters, workdir)
    plot = tmp_path / "align.png"
    assert main(["align", str(hdr), str(sdr), "--plot", str(plot)]) == 0
    text = capsys.readouterr().out
    assert "offset    +3 HDR frames" in text and "confidence" in text and "geometry  same geometry 160x90" in text
    assert "verified" in text and "cut(s) at HDR frames [48]" in text
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    other = make_case_files(Case("unrelated", "main", SdrSpec(shows=frames_from(0), tone_curve="hable"),
                                 sdr_master="other"), masters, workdir)[1]
    assert main(["align", str(hdr), str(other), "--json"]) == 1
    assert '"refusal": "the two sides do not look like the same video' in capsys.readouterr().out


def test_build_index_carries_alignment_and_true_frames(masters, workdir, tmp_path, ray_session):
    from pipelines.build import run_build
    from pipelines.options import BuildOptions

    shows = tuple(k for k in frames_from(5, 80) if k != 30)
    cases = [Case("drop", "main", SdrSpec(shows=shows)),
             Case("boxed", "main", SdrSpec(shows=frames_from(2), frame_size=(160, 120), tone_curve="hable"))]
    files = {case.name: make_case_files(case, masters, workdir) for case in cases}
    manifest = tmp_path / "m.yaml"
    manifest.write_text("version: 1\nname: t\npairs:\n" + "".join(
        f"  - id: {name}\n    split: train\n    hdr: {hdr}\n    sdr: {sdr}\n" for name, (hdr, sdr) in files.items()))
    result = run_build(BuildOptions(manifest_path=str(manifest), out=str(tmp_path / "out"),
                                    cache_dir=str(tmp_path / "cache"), workers=2))
    assert result.exit_code == 0, result.report["summary"]
    pairs = {row["pair_id"]: row for row in pq.read_table(tmp_path / "out" / "index" / "pairs.parquet").to_pylist()}
    assert pairs["drop"]["offset_frames"] == 5 and pairs["drop"]["resync_hdr_frames"] == [31]
    assert pairs["boxed"]["sdr_rect"] == [0, 14, 160, 90] and "resampled" in pairs["boxed"]["geometry"]
    assert pairs["boxed"]["offset_score"] > 0.8 and pairs["boxed"]["verified_frames"] > 60
    samples = pq.read_table(tmp_path / "out" / "index" / "samples.parquet").to_pylist()
    truth = {case.name: case.sdr.shows for case in cases}
    for sample in samples:
        assert [truth[sample["pair_id"]][j] for j in sample["sdr_frames"]] == sample["hdr_frames"]
    assert (tmp_path / "out" / "report" / "alignment" / "drop.png").read_bytes()[:4] == b"\x89PNG"
    record = json.loads((tmp_path / "out" / "pairs" / "drop.json").read_text())  # the full record keeps the curves
    curve = dict(zip(record["alignment"]["candidate_offsets"], record["alignment"]["candidate_detail_scores"]))
    assert min(curve) == -max(curve) and len(curve) == 2 * max(curve) + 1  # every offset of the window
    best = max((score, offset) for offset, score in curve.items() if score is not None)[1]
    assert best == record["alignment"]["offset_frames"] == truth["drop"][0]
    assert result.records[0]["alignment"]["candidates"] == len(record["alignment"]["candidate_offsets"])
