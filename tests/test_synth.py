"""Tests of fmstf_data.synth.pairs: synthetic HDR10 clips (real libx265) and their SDR versions (real libx264)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from fmstf_data.color import convert_primaries
from fmstf_data.errors import SourceMismatchError
from fmstf_data.synth.pairs import (
    nits_to_hdr10_planes,
    planes_to_video_frame,
    write_hdr_clip,
    write_pair,
    write_sdr_version,
)
from fmstf_data.synth.scene import ClipSpec, SceneSpec, iter_clip_nits
from fmstf_data.video.decode import frame_planes, iter_planes
from fmstf_data.video.probe import probe_video

FAST = {"preset": "ultrafast"}


def _spec(**changes: object) -> ClipSpec:
    values: dict[str, object] = dict(width=96, height=64, fps=Fraction(24), frame_count=12, seed=7)
    values.update(changes)
    return ClipSpec(**values)  # type: ignore[arg-type]


def _luma_frames(path: Path) -> np.ndarray:
    return np.stack([frame.y.astype(np.float64) for frame in iter_planes(path)])


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_hdr_clip_probes_as_hdr10_with_metadata(tmp_path: Path, suffix: str) -> None:
    clip = write_hdr_clip(tmp_path / f"clip{suffix}", _spec(), crf=22, **FAST)
    probe = probe_video(clip.path)
    assert probe.verdict == "HDR10", probe.verdict_reasons
    assert probe.problem_as("hdr") is None
    assert (probe.width, probe.height, probe.frame_count_from_content) == (96, 64, 12)
    assert probe.average_fps_from_header == Fraction(24)
    display = probe.mastering_display
    assert display is not None
    assert display.max_luminance_nits == pytest.approx(4000.0)
    assert display.min_luminance_nits == pytest.approx(0.005)
    assert display.red_xy == pytest.approx((0.708, 0.292))
    assert display.white_point_xy == pytest.approx((0.3127, 0.329))
    assert probe.content_light_level == clip.content_light_level
    # highlights above 1000 cd/m², capped by the scene at 4000; the frame average far below
    assert 1000 < clip.content_light_level.max_cll_nits <= 4000
    assert 0 < clip.content_light_level.max_fall_nits < 400


def test_lossless_clip_decodes_to_the_planes_we_made(tmp_path: Path) -> None:
    spec = _spec(frame_count=6, calibration_patch_nits=1000.0)
    clip = write_hdr_clip(tmp_path / "lossless.mkv", spec, lossless=True, **FAST)
    made = [nits_to_hdr10_planes(nits) for nits in iter_clip_nits(spec)]
    decoded = list(iter_planes(clip.path))
    assert len(decoded) == len(made) == 6
    for frame, (y, cb, cr) in zip(decoded, made):
        assert frame.bit_depth == 10
        np.testing.assert_array_equal(frame.y, y)
        np.testing.assert_array_equal(frame.cb, cb)
        np.testing.assert_array_equal(frame.cr, cr)
        # 1000 cd/m² grey: PQ 0.7518 -> 10-bit narrow luma 723, neutral chroma (reference §1 golden value)
        assert np.all(frame.y[:16, :16] == 723)
        assert np.all(frame.cb[:8, :8] == 512) and np.all(frame.cr[:8, :8] == 512)


def test_lossy_clip_keeps_a_known_pixel_within_codec_tolerance(tmp_path: Path) -> None:
    spec = _spec(frame_count=4, calibration_patch_nits=1000.0)
    clip = write_hdr_clip(tmp_path / "lossy.mp4", spec, crf=18, **FAST)
    for frame in iter_planes(clip.path):
        centre = frame.y[4:12, 4:12].astype(int)
        assert np.abs(centre - 723).max() <= 3


def test_content_is_deterministic_moving_bright_and_wide_gamut() -> None:
    spec = _spec(frame_count=6)
    first = np.stack(list(iter_clip_nits(spec)))
    again = np.stack(list(iter_clip_nits(spec)))
    np.testing.assert_array_equal(first, again)
    other_seed = np.stack(list(iter_clip_nits(_spec(frame_count=6, seed=8))))
    assert np.abs(first - other_seed).mean() > 5.0
    assert first.shape == (6, 3, 64, 96) and first.dtype == np.float32
    # motion: consecutive frames differ
    assert all(np.abs(first[i + 1] - first[i]).mean() > 0.1 for i in range(5))
    # highlights above 1000 cd/m² in every frame, nothing above the 4000 cd/m² ceiling, a dark background
    peaks = first.max(axis=(1, 2, 3))
    assert np.all(peaks > 1000) and np.all(peaks <= 4000)
    assert first.min() < 1.0
    # wide gamut: some pixels have no BT.709 representation (negative components after BT.2087's inverse)
    linear_709 = convert_primaries(first[0], "bt2020", "bt709")
    assert (linear_709.min(axis=0) < -0.05 * linear_709.max(axis=0)).mean() > 0.01


def test_fade_out_ends_black() -> None:
    frames = list(iter_clip_nits(_spec(frame_count=6, fade_out_frames=3)))
    means = [float(frame.mean()) for frame in frames]
    assert means[-1] == 0.0
    assert means[3] > means[4] > means[5]


def test_shot_cuts_differ_strongly(tmp_path: Path) -> None:
    spec = _spec(frame_count=18, shot_lengths=(6, 7, 5))
    assert spec.shot_starts == (0, 6, 13)
    clip = write_hdr_clip(tmp_path / "cuts.mp4", spec, crf=22, **FAST)
    luma = _luma_frames(Path(clip.path))
    steps = np.abs(np.diff(luma, axis=0)).mean(axis=(1, 2))  # steps[i]: frame i -> i + 1
    cut_steps = [steps[start - 1] for start in spec.shot_starts[1:]]
    other_steps = [steps[i] for i in range(len(steps)) if i + 1 not in spec.shot_starts]
    assert min(cut_steps) > 3 * max(other_steps), (cut_steps, other_steps)


def test_sdr_version_is_sdr_trimmed_and_aligned(tmp_path: Path) -> None:
    hdr = write_hdr_clip(tmp_path / "a.hdr.mp4", _spec(), crf=22, **FAST)
    sdr = write_sdr_version(hdr.path, tmp_path / "a.sdr.mp4", trim_start_frames=3, trim_end_frames=2, **FAST)
    probe = probe_video(sdr.path)
    assert probe.verdict == "SDR" and probe.problem_as("sdr") is None
    assert (probe.color_trc, probe.color_primaries, probe.colorspace, probe.color_range) == (1, 1, 1, 1)
    assert (probe.pix_fmt, probe.bit_depth, probe.codec_name) == ("yuv420p", 8, "h264")
    assert probe.frame_count_from_content == sdr.frame_count == 12 - 3 - 2
    assert (probe.width, probe.height) == (96, 64)
    assert sdr.source_max_nits == pytest.approx(4000.0)  # from the mastering display
    # SDR frame k shows HDR frame k + 3: its luma correlates best with that HDR frame
    hdr_luma = _luma_frames(Path(hdr.path))
    sdr_luma = _luma_frames(Path(sdr.path))
    for k in (0, 4):
        scores = [np.corrcoef(sdr_luma[k].ravel(), frame.ravel())[0, 1] for frame in hdr_luma]
        assert int(np.argmax(scores)) == k + 3
        assert scores[k + 3] > 0.9


@pytest.mark.parametrize("tone_curve", ["bt2390", "bt2446a"])
def test_sdr_version_at_another_size(tmp_path: Path, tone_curve: str) -> None:
    hdr = write_hdr_clip(tmp_path / "b.hdr.mkv", _spec(frame_count=6), crf=22, **FAST)
    sdr = write_sdr_version(hdr.path, tmp_path / "b.sdr.mkv", size=(64, 40), tone_curve=tone_curve, **FAST)
    probe = probe_video(sdr.path)
    assert (probe.width, probe.height, probe.frame_count_from_content) == (64, 40, 6)
    assert probe.verdict == "SDR"
    luma = _luma_frames(Path(sdr.path))
    assert 8 <= luma.min() and luma.max() <= 243  # narrow range, give or take codec overshoot
    assert luma.std() > 5  # a real picture, not a flat field


def test_sdr_version_refuses_a_non_hdr10_source(tmp_path: Path) -> None:
    hdr = write_hdr_clip(tmp_path / "c.hdr.mp4", _spec(frame_count=4), crf=22, **FAST)
    sdr = write_sdr_version(hdr.path, tmp_path / "c.sdr.mp4", **FAST)
    with pytest.raises(SourceMismatchError, match="HDR side is SDR"):
        write_sdr_version(sdr.path, tmp_path / "d.sdr.mp4", **FAST)
    with pytest.raises(SourceMismatchError, match="leaves none"):
        write_sdr_version(hdr.path, tmp_path / "e.sdr.mp4", trim_start_frames=2, trim_end_frames=2, **FAST)


def test_write_pair_truth(tmp_path: Path) -> None:
    spec = _spec(frame_count=10, shot_lengths=(4, 6))
    hdr_path, sdr_path, truth = write_pair(
        tmp_path, "demo_pair", spec, trim_start_frames=2, trim_end_frames=1, sdr_size=(48, 32), **FAST
    )
    assert (hdr_path.name, sdr_path.name) == ("demo_pair.hdr.mp4", "demo_pair.sdr.mp4")
    assert truth.offset_frames == 2 and truth.sdr_frame_count == 7 and truth.hdr_frame_count == 10
    assert truth.sdr_size == (48, 32) and truth.hdr_size == (96, 64)
    assert truth.shot_starts == (0, 4) and truth.cut_frames == (4,)
    record = json.loads((tmp_path / "demo_pair.truth.json").read_text())
    assert record == truth.to_dict()
    assert record["fps"] == "24/1" and record["hdr_file"] == "demo_pair.hdr.mp4"
    assert probe_video(sdr_path).frame_count_from_content == 7


def test_planes_to_video_frame_handles_line_padding() -> None:
    rng = np.random.default_rng(0)
    for pix_fmt, dtype, top in (("yuv420p10le", np.uint16, 1023), ("yuv420p", np.uint8, 255)):
        y = rng.integers(0, top + 1, (10, 70), dtype=dtype)
        cb = rng.integers(0, top + 1, (5, 35), dtype=dtype)
        cr = rng.integers(0, top + 1, (5, 35), dtype=dtype)
        frame = planes_to_video_frame(y, cb, cr, pix_fmt)
        assert frame.planes[0].line_size > 70 * np.dtype(dtype).itemsize  # padded lines
        back_y, back_cb, back_cr, _bits = frame_planes(frame)
        np.testing.assert_array_equal(back_y, y)
        np.testing.assert_array_equal(back_cb, cb)
        np.testing.assert_array_equal(back_cr, cr)
    with pytest.raises(ValueError, match="pix_fmt"):
        planes_to_video_frame(y, cb, cr, "rgb24")


def test_spec_checks() -> None:
    with pytest.raises(ValueError, match="even"):
        _spec(width=95)
    with pytest.raises(ValueError, match="sum to"):
        _spec(shot_lengths=(5, 5))
    with pytest.raises(ValueError, match="Fraction"):
        _spec(fps=24)
    with pytest.raises(ValueError, match="fade_out_frames"):
        _spec(fade_out_frames=13)
    with pytest.raises(ValueError, match="highlight"):
        SceneSpec(seed=0, highlight_min_nits=5000, highlight_max_nits=4000)
