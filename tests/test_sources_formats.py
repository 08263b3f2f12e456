"""Format selection through yt-dlp's own selector, on YouTube-like format lists built by hand.

The lists mimic what yt-dlp's YouTube extractor returns for an HDR upload: VP9 profile 2 and 10-bit AV1 HDR10
video-only streams, VP9 profile 0 / 8-bit AV1 / H.264 SDR video-only streams, audio-only streams and one muxed
360p stream. Codec fields come from yt-dlp's ``parse_codecs`` on YouTube's codec strings, as in the extractor.
"""

from __future__ import annotations

import pytest
from yt_dlp.utils import parse_codecs

from fmstf_data.errors import FetchError
from fmstf_data.manifest.schema import FormatSpec
from fmstf_data.sources import codec_transfer, select_format

HDR_VP9 = "vp09.02.51.10.01.09.16.09.00"  # profile 2, 10 bit, BT.2020 (9), PQ (16)
HLG_VP9 = "vp09.02.51.10.01.09.18.09.00"  # the same with HLG (18)
HDR_AV1 = "av01.0.13M.10.0.110.09.16.09.0"
HLG_AV1 = "av01.0.13M.10.0.110.09.18.09.0"
SDR_VP9 = "vp09.00.51.08"
SDR_AV1 = "av01.0.13M.08"
SDR_AVC = "avc1.640033"


def video(format_id: str, codecs: str, height: int, fps: int = 60) -> dict:
    ext = "webm" if codecs.startswith("vp09") else "mp4"
    label = "HDR" if parse_codecs(codecs).get("dynamic_range") == "HDR10" else ""
    return {"format_id": format_id, "url": f"https://rr1.example.googlevideo.com/videoplayback?itag={format_id}",
            "ext": ext, "protocol": "https", "width": height * 16 // 9, "height": height, "fps": fps,
            "format_note": f"{height}p{fps} {label}".strip(), "tbr": height * 10.0, **parse_codecs(codecs)}


def audio(format_id: str, codecs: str) -> dict:
    return {"format_id": format_id, "url": f"https://rr1.example.googlevideo.com/videoplayback?itag={format_id}",
            "ext": "webm" if codecs == "opus" else "m4a", "protocol": "https", "abr": 130.0, "asr": 48000,
            "format_note": "medium", **parse_codecs(codecs)}


def info_dict(formats: list[dict]) -> dict:
    return {"id": "bpfu7biLT5c", "title": "An HDR10 upload", "extractor": "youtube", "extractor_key": "Youtube",
            "webpage_url": "https://www.youtube.com/watch?v=bpfu7biLT5c", "duration": 180, "formats": formats}


def hdr_upload(hdr_heights=(2160, 1440, 1080, 720), sdr_heights=(2160, 1440, 1080, 720), hdr_codecs=(HDR_VP9, HDR_AV1)
               ) -> dict:
    itags = {2160: (337, 701, 315, 401), 1440: (336, 700, 308, 400), 1080: (335, 699, 303, 399),
             720: (334, 698, 302, 398)}
    formats = [audio("140", "mp4a.40.2"), audio("251", "opus"),
               {**video("18", "avc1.42001E", 360, 30), **parse_codecs("avc1.42001E, mp4a.40.2")}]
    for height in hdr_heights:
        vp9_hdr, av1_hdr = itags[height][:2]
        formats += [video(str(vp9_hdr), hdr_codecs[0], height), video(str(av1_hdr), hdr_codecs[1], height)]
    for height in sdr_heights:
        vp9_sdr, av1_sdr = itags[height][2:]
        formats += [video(str(vp9_sdr), SDR_VP9, height), video(str(av1_sdr), SDR_AV1, height)]
    if 1080 in sdr_heights:
        formats.append(video("299", SDR_AVC, 1080))
    if 720 in sdr_heights:
        formats.append(video("298", "avc1.4d4020", 720))
    return info_dict(formats)


def pick(info: dict, dynamic_range: str, request: FormatSpec | None = None, default_height: int = 2160) -> dict:
    return select_format(info, dynamic_range=dynamic_range, request=request, default_height=default_height)


def test_default_picks_hdr10_and_sdr_video_only_at_2160():
    info = hdr_upload()
    hdr, sdr = pick(info, "HDR10"), pick(info, "SDR")
    # yt-dlp's own ranking at equal height and fps prefers AV1 over VP9 (its default vcodec order).
    assert (hdr["format_id"], sdr["format_id"]) == ("701", "401")
    assert hdr["dynamic_range"] == "HDR10" and sdr["dynamic_range"] == "SDR"
    assert hdr["height"] == sdr["height"] == 2160
    assert hdr["acodec"] == sdr["acodec"] == "none"  # video only: no audio stream, no merge


def test_vcodec_request_selects_vp9_on_both_sides():
    info = hdr_upload()
    request = FormatSpec(vcodec="vp09")
    assert pick(info, "HDR10", request)["format_id"] == "337"
    assert pick(info, "SDR", request)["format_id"] == "315"


def test_both_sides_fall_back_to_the_tallest_common_height():
    # HDR only up to 1440 while SDR goes to 2160: both versions must share 1440.
    info = hdr_upload(hdr_heights=(1440, 1080, 720))
    hdr, sdr = pick(info, "HDR10", FormatSpec(vcodec="vp09")), pick(info, "SDR", FormatSpec(vcodec="vp09"))
    assert (hdr["format_id"], sdr["format_id"]) == ("336", "308")
    assert hdr["height"] == sdr["height"] == 1440
    # and the other way round: SDR capped at 1080
    info = hdr_upload(sdr_heights=(1080, 720))
    assert pick(info, "HDR10", FormatSpec(vcodec="vp09"))["format_id"] == "335"
    assert pick(info, "SDR", FormatSpec(vcodec="vp09"))["format_id"] == "303"


def test_lower_height_and_h264_sdr():
    info = hdr_upload()
    assert pick(info, "SDR", FormatSpec(height=1080, vcodec="avc1"))["format_id"] == "299"
    assert pick(info, "HDR10", FormatSpec(height=1080))["format_id"] == "699"
    assert pick(info, "HDR10", default_height=720, request=FormatSpec(vcodec="vp09"))["format_id"] == "334"


def test_raw_selector_is_used_as_given():
    info = hdr_upload()
    chosen = pick(info, "HDR10", FormatSpec(selector="bv[dynamic_range=HDR10][height=1080][vcodec^=vp09]"))
    assert chosen["format_id"] == "335"
    with pytest.raises(FetchError, match="matched nothing"):
        pick(info, "HDR10", FormatSpec(selector="bv[dynamic_range=HDR10][height=4320]"))


def test_vcodec_missing_at_the_chosen_height_is_explained():
    info = hdr_upload()
    with pytest.raises(FetchError, match=r"no SDR stream at height 2160 with vcodec avc1.*offered codecs"):
        pick(info, "SDR", FormatSpec(vcodec="avc1"))


def test_sdr_only_video_cannot_serve_as_hdr():
    info = hdr_upload(hdr_heights=())
    with pytest.raises(FetchError, match=r"offers no HDR10 video-only stream.*SDR video at 2160"):
        pick(info, "HDR10")
    assert pick(info, "SDR", FormatSpec(vcodec="vp09"))["format_id"] == "315"  # SDR alone: its own tallest height


def test_hlg_is_labelled_hdr10_by_ytdlp_and_skipped_when_the_codec_string_says_so():
    assert parse_codecs(HLG_VP9)["dynamic_range"] == "HDR10"  # the yt-dlp fact this guards against
    assert (codec_transfer(HDR_VP9), codec_transfer(HLG_VP9), codec_transfer(HLG_AV1)) == (16, 18, 18)
    assert codec_transfer("vp9.2") is None and codec_transfer(SDR_AVC) is None
    info = hdr_upload(hdr_codecs=(HLG_VP9, HLG_AV1))
    with pytest.raises(FetchError, match="declares PQ"):
        pick(info, "HDR10")
    # short codec strings declare nothing: the stream is selected, and the build's probe decides after download
    info = hdr_upload(hdr_codecs=("vp9.2", HLG_AV1))
    assert pick(info, "HDR10")["format_id"] == "337"


def test_no_common_height_below_the_request():
    info = hdr_upload(hdr_heights=(2160, 1440), sdr_heights=(2160, 1440))
    with pytest.raises(FetchError, match=r"no common HDR10/SDR height <= 1080"):
        pick(info, "HDR10", FormatSpec(height=1080))
