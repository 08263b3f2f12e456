"""SDR -> HDR10 conversion: streaming and tiled inference, the HDR10 writer's metadata, fmstf-convert end to end."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from fmstf_data.color import planes_to_rgb, pq_inverse_eotf, rgb_to_planes, sdr_to_hdr_rgb
from fmstf_data.errors import SourceMismatchError
from fmstf_data.synth.pairs import planes_to_video_frame
from fmstf_data.video.decode import iter_planes
from fmstf_data.video.probe import probe_video
from fmstf_model import FMSTFConfig, FMSTFnet
from fmstf_model.checkpoint import save_checkpoint
from fmstf_model.convert import convert_video, main
from fmstf_model.hdr10_writer import HDR10Writer
from fmstf_model.inference import BaselineConverter, ModelConverter

BAND_CODES = (40, 126, 180, 235)  # 8-bit narrow-range luma of four grey bands


def write_sdr_clip(path: Path, frames: int = 8, width: int = 64, height: int = 48) -> Path:
    """Four vertical grey bands (BT.709 tags, 8-bit 4:2:0, H.264), brightening by 2 codes per frame."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "4"}
        context = stream.codec_context
        context.color_trc, context.color_primaries, context.colorspace, context.color_range = 1, 1, 1, 1
        for index in range(frames):
            y = np.zeros((height, width), np.uint8)
            for band, code in enumerate(BAND_CODES):
                y[:, band * width // 4:(band + 1) * width // 4] = min(235, code + 2 * index)
            chroma = np.full((height // 2, width // 2), 128, np.uint8)
            frame = planes_to_video_frame(y, chroma, chroma, "yuv420p")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def expected_codes(path: Path) -> list[tuple[np.ndarray, ...]]:
    """BT.2446 Method A by the numpy reference (float64) on each decoded SDR frame, as 10-bit HDR10 code planes."""
    out = []
    for frame in iter_planes(path):
        sdr = planes_to_rgb(frame.y, frame.cb, frame.cr, bit_depth=8, matrix="bt709", full_range=False)
        hdr = sdr_to_hdr_rgb(sdr.astype(np.float64), method="bt2446a")
        out.append(rgb_to_planes(hdr, bit_depth=10, matrix="bt2020nc", full_range=False))
    return out


def test_convert_with_bt2446a_matches_the_formula_and_probes_as_hdr10(tmp_path, capsys):
    source = write_sdr_clip(tmp_path / "in.mp4")
    output = tmp_path / "out.mp4"
    assert main([str(source), str(output), "--method", "bt2446a", "--lossless", "--preset", "ultrafast",
                 "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    probe = probe_video(output)
    assert probe.verdict == "HDR10" and probe.codec_name == "hevc" and probe.profile == "Main 10"
    assert probe.frame_count_from_content == 8 == result["frames"] and probe.color_range == 1
    assert probe.content_light_level.max_cll_nits == result["max_cll_nits"]
    assert probe.content_light_level.max_fall_nits == result["max_fall_nits"]
    display = probe.mastering_display
    assert display.red_xy == pytest.approx((0.708, 0.292), abs=1e-4)
    assert display.white_point_xy == pytest.approx((0.3127, 0.329), abs=1e-4)
    assert display.max_luminance_nits == result["max_cll_nits"] == 1000  # SDR white -> 999.52 cd/m²

    expected = expected_codes(source)
    decoded = list(iter_planes(output))
    assert len(decoded) == len(expected) == 8
    for frame, planes in zip(decoded, expected):  # the formula, code for code (float32 vs float64: <= 1 code)
        for got, want in zip((frame.y, frame.cb, frame.cr), planes):
            difference = np.abs(got.astype(np.int32) - want.astype(np.int32))
            assert difference.max() <= 1 and (difference > 0).mean() < 0.01
    assert not np.array_equal(decoded[0].y, decoded[-1].y)  # the frames differ

    lossy = tmp_path / "lossy.mkv"
    assert main([str(source), str(lossy), "--method", "bt2446a", "--crf", "12", "--preset", "ultrafast"]) == 0
    for frame, planes in zip(iter_planes(lossy), expected):  # within HEVC's error
        assert np.abs(frame.y.astype(np.int32) - planes[0].astype(np.int32)).mean() < 1.5


def test_hdr10_writer_measures_maxcll_and_maxfall(tmp_path):
    writer = HDR10Writer(tmp_path / "w.mkv", width=32, height=16, fps=25, preset="ultrafast", lossless=True)
    half = torch.zeros(3, 16, 32)
    half[:, :, :16] = float(pq_inverse_eotf(1000.0))  # half the frame at 1000 cd/m², half black
    writer.write(half)
    writer.write(torch.full((3, 16, 32), float(pq_inverse_eotf(100.0))))
    result = writer.close()
    assert (result.content_light_level.max_cll_nits, result.content_light_level.max_fall_nits) == (1000, 500)
    assert not list(tmp_path.glob(".*"))  # the lossless intermediate and the partial file are gone
    probe = probe_video(tmp_path / "w.mkv")
    assert probe.verdict == "HDR10" and probe.content_light_level.to_dict() == {"max_cll_nits": 1000,
                                                                                "max_fall_nits": 500}
    assert probe.mastering_display.max_luminance_nits == 1000
    frames = list(iter_planes(tmp_path / "w.mkv"))
    assert [int(f.y[8, 4]) for f in frames] == [round(876 * float(pq_inverse_eotf(1000.0)) + 64), 509]


def test_tiled_streaming_equals_whole_frames_and_the_forward_pass():
    torch.manual_seed(0)
    model = FMSTFnet(FMSTFConfig.tiny()).eval()
    frames = [torch.rand(1, 3, 37, 53) for _ in range(3)]  # odd sizes: level sizes 37, 19, 10
    whole = list(ModelConverter(model).stream(frames))
    tiled = list(ModelConverter(model, tile_size=16).stream(frames))
    assert len(whole) == len(tiled) == 3
    assert max(float((a - b).abs().max()) for a, b in zip(whole, tiled)) < 1e-5
    no_halo = list(ModelConverter(model, tile_size=16, halo=0).stream(frames[:1]))
    assert float((no_halo[0] - whole[0]).abs().max()) > 1e-3  # the halo matters
    centre = model.predict(torch.stack(frames, dim=1))  # the streamed centre frame is the forward output
    assert torch.allclose(tiled[1], centre, atol=1e-5)
    baseline = list(BaselineConverter("bt2446c").stream(frames[:2]))
    assert len(baseline) == 2 and baseline[0].shape == frames[0].shape and baseline[0].dtype == torch.float32


def test_convert_with_a_checkpoint_tiled_and_refuse_hdr_input(tmp_path):
    torch.manual_seed(0)
    model = FMSTFnet(FMSTFConfig.tiny())
    checkpoint = save_checkpoint(tmp_path / "c.pt", {"model": model.state_dict(),
                                                     "model_config": model.config.to_dict(), "step": 1})
    source = write_sdr_clip(tmp_path / "in.mp4", frames=5)
    assert main([str(source), str(tmp_path / "out.mkv"), "--checkpoint", str(checkpoint), "--tile-size", "24",
                 "--preset", "ultrafast", "--device", "cpu"]) == 0
    probe = probe_video(tmp_path / "out.mkv")
    assert probe.verdict == "HDR10" and probe.frame_count_from_content == 5
    assert probe.content_light_level is not None and probe.mastering_display is not None
    with pytest.raises(SourceMismatchError, match="cannot be converted as SDR"):
        convert_video(tmp_path / "out.mkv", tmp_path / "again.mp4", BaselineConverter("bt2446a"))
    assert not (tmp_path / "again.mp4").exists()
    assert main([str(tmp_path / "out.mkv"), str(tmp_path / "again.mp4"), "--method", "bt2446a"]) == 2
