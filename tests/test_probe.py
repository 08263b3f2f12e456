"""Tests of fmstf_data.video.probe on small videos encoded here with PyAV (libx265 / libx264)."""

from __future__ import annotations

import dataclasses
import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from fmstf_data.errors import ProbeError
from fmstf_data.video.probe import count_frames, probe_video
from fmstf_data.video.record import ContentLightLevel, MasteringDisplay, VideoProbe

WIDTH, HEIGHT, FRAMES = 64, 48, 12

# x265 master-display: G, B, R, white point in units of 0.00002, luminance in units of 0.0001 cd/m²
MASTER_DISPLAY = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(40000000,50)"
HDR10_PARAMS = (
    f"colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc:master-display={MASTER_DISPLAY}:max-cll=1200,350"
)


def _frames(pix_fmt: str, count: int) -> list[av.VideoFrame]:
    """Moving gradient frames built directly as planes (no RGB conversion)."""
    ten_bit = pix_fmt.endswith("10le")
    dtype = np.uint16 if ten_bit else np.uint8
    top = 940 if ten_bit else 235
    bottom = 64 if ten_bit else 16
    frames = []
    x = np.arange(WIDTH)[None, :]
    y = np.arange(HEIGHT)[:, None]
    for index in range(count):
        luma = bottom + (top - bottom) * (0.5 + 0.5 * np.sin((x + 3 * index) / 7.0 + y / 11.0))
        chroma = np.full((HEIGHT // 2, WIDTH), (512 if ten_bit else 128) + index, dtype=np.float64)
        array = np.concatenate([luma, chroma]).round().astype(dtype)
        frame = av.VideoFrame.from_ndarray(array, format=pix_fmt)
        frame.pts = index
        frames.append(frame)
    return frames


def _encode(
    path: Path,
    *,
    codec: str = "libx265",
    pix_fmt: str = "yuv420p10le",
    tags: tuple[int, int, int, int] | None = (16, 9, 9, 1),
    params: str = HDR10_PARAMS,
    count: int = FRAMES,
    container_options: dict[str, str] | None = None,
) -> Path:
    """Encode a small clip; ``tags`` = (trc, primaries, matrix, range) on the codec context, or None for untagged."""
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=24)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, pix_fmt
        options = {"preset": "ultrafast", "crf": "28"}
        if codec == "libx265":
            options["x265-params"] = "log-level=error" + (f":{params}" if params else "")
        stream.options = options
        if tags is not None:
            context = stream.codec_context
            context.color_trc, context.color_primaries, context.colorspace, context.color_range = tags
        for frame in _frames(pix_fmt, count):
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.parametrize("suffix", ["mp4", "mkv"])
def test_hdr10_with_metadata_round_trip(tmp_path: Path, suffix: str) -> None:
    probe = probe_video(_encode(tmp_path / f"hdr10.{suffix}"))
    assert probe.verdict == "HDR10", probe.verdict_reasons
    assert (probe.codec_name, probe.profile, probe.pix_fmt, probe.bit_depth) == ("hevc", "Main 10", "yuv420p10le", 10)
    assert (probe.width, probe.height) == (WIDTH, HEIGHT)
    assert (probe.color_trc, probe.color_primaries, probe.colorspace, probe.color_range) == (16, 9, 9, 1)
    names = (probe.color_trc_name, probe.color_primaries_name, probe.colorspace_name)
    assert names == ("smpte2084", "bt2020", "bt2020nc")
    display = probe.mastering_display
    assert display is not None
    assert display.green_xy == pytest.approx((0.265, 0.69))
    assert display.blue_xy == pytest.approx((0.15, 0.06))
    assert display.red_xy == pytest.approx((0.68, 0.32))
    assert display.white_point_xy == pytest.approx((0.3127, 0.329))
    assert display.max_luminance_nits == pytest.approx(4000.0)
    assert display.min_luminance_nits == pytest.approx(0.005)
    assert probe.content_light_level == ContentLightLevel(max_cll_nits=1200, max_fall_nits=350)
    assert probe.problem_as("hdr") is None
    problem = probe.problem_as("sdr")
    assert problem is not None and problem.startswith("SDR side is HDR10")
    # declared vs measured timing
    assert probe.frame_count_from_content == FRAMES
    assert probe.average_fps_from_header == Fraction(24)
    assert probe.average_fps_from_header_float == 24.0
    assert probe.fps_from_content == pytest.approx(24.0)
    assert probe.duration_seconds_from_content == pytest.approx(FRAMES / 24, abs=0.002)  # mkv: 1 ms time base
    if suffix == "mp4":
        assert probe.frame_count_from_header == FRAMES
    else:
        assert probe.frame_count_from_header is None  # Matroska does not declare a frame count
    assert count_frames(probe.path) == FRAMES
    # JSON-ready and human text
    record = json.loads(json.dumps(probe.to_dict()))
    assert record["verdict"] == "HDR10"
    assert record["average_fps_from_header"] == "24/1"
    assert record["content_light_level"] == {"max_cll_nits": 1200, "max_fall_nits": 350}
    assert record["mastering_display"]["max_luminance_nits"] == pytest.approx(4000.0)
    text = probe.describe()
    assert "HDR10" in text and "1200 / 350" in text and "PQ (SMPTE ST 2084) [16]" in text
    assert len(text.splitlines()) > 8


def test_hlg_is_not_hdr10(tmp_path: Path) -> None:
    path = _encode(tmp_path / "hlg.mp4", tags=(18, 9, 9, 1),
                   params="colorprim=bt2020:transfer=arib-std-b67:colormatrix=bt2020nc")
    probe = probe_video(path)
    assert probe.verdict == "HLG"
    assert probe.mastering_display is None
    problem = probe.problem_as("hdr")
    assert problem is not None
    assert problem.startswith("HDR side is HLG (ARIB STD-B67 transfer, trc 18), not HDR10 (PQ)")
    assert "HDR file given as SDR" in probe.problem_as("sdr")


def test_sdr_bt709_8bit(tmp_path: Path) -> None:
    path = _encode(tmp_path / "sdr.mp4", codec="libx264", pix_fmt="yuv420p", tags=(1, 1, 1, 1))
    probe = probe_video(path)
    assert probe.verdict == "SDR"
    assert (probe.codec_name, probe.bit_depth, probe.pix_fmt) == ("h264", 8, "yuv420p")
    assert probe.problem_as("sdr") is None
    problem = probe.problem_as("hdr")
    assert problem is not None and problem.startswith("HDR side is SDR (BT.709 transfer, trc 1)")
    assert probe.mastering_display is None and probe.content_light_level is None


def test_untagged_is_unknown(tmp_path: Path) -> None:
    probe = probe_video(_encode(tmp_path / "untagged.mkv", codec="libx264", pix_fmt="yuv420p", tags=None))
    assert (probe.color_trc, probe.color_primaries, probe.colorspace) == (2, 2, 2)
    assert probe.verdict == "unknown"
    assert any("unspecified" in reason for reason in probe.verdict_reasons)
    for role in ("hdr", "sdr"):
        problem = probe.problem_as(role)
        assert problem is not None and "unspecified" in problem


def test_wide_gamut_sdr(tmp_path: Path) -> None:
    path = _encode(tmp_path / "wcg.mp4", tags=(14, 9, 9, 1),
                   params="colorprim=bt2020:transfer=bt2020-10:colormatrix=bt2020nc")
    probe = probe_video(path)
    assert probe.verdict == "SDR"
    assert probe.is_wide_gamut_sdr
    assert any("wide-gamut SDR" in reason for reason in probe.verdict_reasons)
    assert "wide-gamut SDR" in probe.problem_as("sdr")
    assert probe.problem_as("hdr").startswith("HDR side is SDR")


def test_8bit_pq_is_refused_as_hdr(tmp_path: Path) -> None:
    probe = probe_video(_encode(tmp_path / "pq8.mp4", pix_fmt="yuv420p"))
    assert probe.bit_depth == 8
    assert probe.verdict == "unknown"
    assert probe.problem_as("hdr").startswith("HDR side is 8-bit (yuv420p) PQ video")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProbeError, match="no such file"):
        probe_video(tmp_path / "nope.mp4")


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 20)
    with pytest.raises(ProbeError) as info:
        probe_video(path)
    assert "not a readable video" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ProbeError, match="cannot count frames"):
        count_frames(path)


def test_audio_only_file(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(ProbeError, match="no video stream"):
        probe_video(path)


def test_truncated_file_without_index(tmp_path: Path) -> None:
    """mp4 writes its index (moov) at the end: a cut file cannot be opened at all."""
    path = _encode(tmp_path / "full.mp4", count=48)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ProbeError) as info:
        probe_video(cut)
    assert "\n" not in str(info.value)


def test_truncated_file_with_index_first(tmp_path: Path) -> None:
    """With +faststart the index survives the cut: the probe opens it and says it is truncated."""
    path = _encode(tmp_path / "full.mp4", count=48, container_options={"movflags": "+faststart"})
    full = probe_video(path)
    assert not full.looks_truncated
    with av.open(str(path)) as container:
        ends = sorted(packet.pos + packet.size for packet in container.demux(video=0) if packet.size)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: ends[20]])  # the first 21 frames survive
    probe = probe_video(cut)
    assert probe.frame_count_from_header == 48
    assert 0 < probe.frame_count_from_content < 48
    assert probe.looks_truncated
    for role in ("hdr", "sdr"):
        assert "looks truncated" in probe.problem_as(role)
    assert any("declares 48 frames" in note for note in probe.notes)


def _record(**changes: object) -> VideoProbe:
    """A plain HDR10 probe record, changed by ``changes`` (classification is pure: no file needed)."""
    base = VideoProbe(
        path="x.mp4", container_format="mov,mp4,m4a,3gp,3g2,mj2", codec_name="hevc", codec_tag="hvc1",
        profile="Main 10", pix_fmt="yuv420p10le", bit_depth=10, width=64, height=48,
        average_fps_from_header=Fraction(24), frame_count_from_header=10, duration_seconds_from_header=0.4,
        frame_count_from_content=10, fps_from_content=24.0, duration_seconds_from_content=0.4,
        start_seconds_from_content=0.0, color_trc=16, color_primaries=9, colorspace=9, color_range=1,
        color_tags_from="stream",
    )
    return dataclasses.replace(base, **changes)


def test_dolby_vision_profile5_is_rejected() -> None:
    probe = _record(codec_tag="dvh1", dolby_vision=True, color_trc=2, color_primaries=2, colorspace=2)
    assert probe.verdict == "unknown"
    assert "Dolby Vision" in probe.verdict_reasons[0] and "profile 5" in probe.verdict_reasons[0]
    assert "Dolby Vision" in probe.problem_as("hdr")
    with_base_layer = _record(codec_tag="dvh1", dolby_vision=True)
    assert with_base_layer.verdict == "HDR10"
    assert with_base_layer.problem_as("hdr") is None


def test_hdr10_tags_partly_wrong() -> None:
    probe = _record(color_primaries=1)
    assert probe.verdict == "unknown"
    assert "primaries are BT.709 [1], not BT.2020 [9]" in probe.problem_as("hdr")
    assert _record(pix_fmt="yuv422p10le").problem_as("hdr").startswith("HDR side is HDR10 in yuv422p10le")


def test_sdr_role_rules() -> None:
    sdr = _record(codec_name="h264", profile="High", pix_fmt="yuv420p", bit_depth=8, color_trc=1,
                  color_primaries=1, colorspace=1)
    assert sdr.problem_as("sdr") is None
    assert "10-bit" in _record(color_trc=1, color_primaries=1, colorspace=1).problem_as("sdr")
    assert "matrix" in dataclasses.replace(sdr, colorspace=6).problem_as("sdr")
    with pytest.raises(ValueError, match="role"):
        sdr.problem_as("both")  # type: ignore[arg-type]


def test_record_checks() -> None:
    with pytest.raises(ValueError, match="width and height"):
        _record(width=0)
    with pytest.raises(ValueError, match="average_fps_from_header"):
        _record(average_fps_from_header=Fraction(0))
    with pytest.raises(ValueError, match="color_trc"):
        _record(color_trc=-1)
    with pytest.raises(ValueError, match="chromaticities"):
        MasteringDisplay(red_xy=(1.5, 0.3), green_xy=None, blue_xy=None, white_point_xy=None,
                         min_luminance_nits=None, max_luminance_nits=None)
    with pytest.raises(ValueError, match="88"):
        MasteringDisplay.from_side_data(b"\x00" * 10)
