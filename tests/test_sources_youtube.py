"""Live YouTube fetch (deselected by default; run with ``pytest -m network tests/test_sources_youtube.py``).

Fetches the HDR10 and the SDR version of one of HDRTVNet's test videos at 144p (a few MB) through the real YouTube
extractor. Needs the internet, and for full YouTube support a JavaScript runtime and yt-dlp-ejs (docs/youtube.md).
"""

from __future__ import annotations

import json

import pytest

from fmstf_data.manifest.schema import FormatSpec, SourceSpec
from fmstf_data.sources import FetchOptions, fetch_source


@pytest.mark.network
def test_one_video_id_gives_hdr10_and_sdr_at_the_same_height(tmp_path):
    options = FetchOptions(format_height=144, sleep_requests_seconds=1.0)
    fetched = {}
    for role in ("hdr", "sdr"):
        spec = SourceSpec(kind="youtube", location="bpfu7biLT5c", role=role, format=FormatSpec(), pair_id="live")
        fetched[role] = fetch_source(spec, tmp_path, options=options)
    hdr, sdr = fetched["hdr"], fetched["sdr"]
    assert hdr.info["dynamic_range"] == "HDR10" and sdr.info["dynamic_range"] == "SDR"
    assert hdr.info["height"] == sdr.info["height"] == hdr.info["selected_height"] <= 144
    assert hdr.info["acodec"] == sdr.info["acodec"] == "none"
    assert hdr.path.parent != sdr.path.parent and hdr.sha256 != sdr.sha256
    with open(hdr.info["info_json"], encoding="utf-8") as handle:
        info = json.load(handle)
    assert info["id"] == "bpfu7biLT5c" and info["format_id"] == hdr.info["format_id"]
    again = fetch_source(SourceSpec(kind="youtube", location="bpfu7biLT5c", role="hdr", format=FormatSpec()),
                         tmp_path, options=options)
    assert again.from_cache and again.sha256 == hdr.sha256
