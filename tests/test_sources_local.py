"""Local sources, fetch options, the cache and its completion markers, and failure messages (no network)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import time

import pytest
import yt_dlp
from yt_dlp.networking import Response
from yt_dlp.networking.exceptions import HTTPError
from yt_dlp.utils import DownloadError, ExtractorError

from fmstf_data.errors import FetchError
from fmstf_data.manifest.schema import FormatSpec, SourceSpec
from fmstf_data.sources import (
    CacheEntry,
    FetchedSource,
    FetchOptions,
    backoff_seconds,
    browser_spec,
    cache_entry,
    cached_source,
    fetch_source,
    format_key,
    parse_byte_rate,
)
from fmstf_data.sources.formats import RoleFormatSelector
from fmstf_data.sources.ytdlp import classify_failure, ytdlp_params


def local_spec(path, role="hdr") -> SourceSpec:
    return SourceSpec(kind="local", location=str(path), role=role, pair_id="city")


def youtube_spec(role="hdr", video_id="bpfu7biLT5c", **format_fields) -> SourceSpec:
    return SourceSpec(kind="youtube", location=video_id, role=role, format=FormatSpec(**format_fields),
                      pair_id="sunset")


# -- local files --------------------------------------------------------------------------------------------------

def test_local_file_is_hashed_in_place(tmp_path):
    data = os.urandom(3 * (1 << 20) + 17)  # several hash chunks
    path = tmp_path / "city.hdr.mp4"
    path.write_bytes(data)
    fetched = fetch_source(local_spec(path), tmp_path / "cache")
    assert fetched.path == path and fetched.size_bytes == len(data)
    assert fetched.sha256 == hashlib.sha256(data).hexdigest()
    assert fetched.info == {"kind": "local", "location": str(path), "dynamic_range": "HDR10"}
    assert not (tmp_path / "cache").exists()  # nothing copied


def test_local_problems_name_the_path(tmp_path):
    with pytest.raises(FetchError, match=rf"city.hdr: local file not found: {tmp_path}/gone.mp4"):
        fetch_source(local_spec(tmp_path / "gone.mp4"), tmp_path)
    (tmp_path / "folder").mkdir()
    with pytest.raises(FetchError, match="not a regular file"):
        fetch_source(local_spec(tmp_path / "folder"), tmp_path)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(FetchError, match="is empty"):
        fetch_source(local_spec(tmp_path / "empty.mp4"), tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_local_file(tmp_path):
    path = tmp_path / "secret.mp4"
    path.write_bytes(b"x")
    path.chmod(0)
    with pytest.raises(FetchError, match="not readable"):
        fetch_source(local_spec(path), tmp_path)


# -- options ------------------------------------------------------------------------------------------------------

def test_fetch_options_validate_and_come_from_json_like_mappings(tmp_path):
    options = FetchOptions.from_mapping({"cookies_file": "~/cookies.txt", "js_runtimes": ["node"], "retries": 0})
    assert options.cookies_file == type(options.cookies_file)(os.path.expanduser("~/cookies.txt"))
    assert options.js_runtimes == ("node",)
    with pytest.raises(FetchError, match=r"unknown fetch option\(s\) \['retry'\]"):
        FetchOptions.from_mapping({"retry": 3})
    for bad in ({"retries": -1}, {"fetch_attempts": 0}, {"rate_limit_bytes": "4M"}, {"socket_timeout_seconds": 0},
                {"js_runtimes": ("rhino",)}, {"remote_components": ("ejs:cdn",)},
                {"cookies_file": "a", "cookies_from_browser": "firefox"}, {"cookies_from_browser": "netscape"}):
        with pytest.raises(FetchError):
            FetchOptions(**bad)


def test_browser_spec_rate_and_backoff():
    assert browser_spec("firefox") == ("firefox", None, None, None)
    assert browser_spec("Chrome+gnomekeyring:Profile 1") == ("chrome", "Profile 1", "GNOMEKEYRING", None)
    assert browser_spec("firefox:default-release::Work") == ("firefox", "default-release", None, "Work")
    assert parse_byte_rate("4M") == 4 * 1024 ** 2 and parse_byte_rate("500K") == 500 * 1024
    assert parse_byte_rate("1.5MiB/s") == int(1.5 * 1024 ** 2) and parse_byte_rate(1000) == 1000
    with pytest.raises(FetchError, match="cannot read rate"):
        parse_byte_rate("fast")
    assert [backoff_seconds(n, base_seconds=2, max_seconds=20) for n in range(5)] == [2, 4, 8, 16, 20]


def test_ytdlp_params_carry_the_options(tmp_path):
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n")
    options = FetchOptions(cookies_file=cookies, retries=4, rate_limit_bytes=parse_byte_rate("2M"),
                           sleep_requests_seconds=1.5, sleep_before_download_seconds=3, socket_timeout_seconds=12,
                           js_runtimes=("deno", "node:/usr/bin/node"), remote_components=("ejs:github",),
                           retry_sleep_seconds=1, max_retry_sleep_seconds=5)
    spec = youtube_spec()
    entry = cache_entry(spec, tmp_path / "cache", options=options)
    selector = RoleFormatSelector(dynamic_range="HDR10", request=spec.format, default_height=2160)
    params = ytdlp_params(spec, entry, options, selector, log=None)
    assert params["format"] is selector and params["paths"]["home"] == str(entry.directory)
    assert (params["retries"], params["fragment_retries"], params["extractor_retries"]) == (4, 4, 3)
    assert [params["retry_sleep_functions"]["http"](n=n) for n in range(4)] == [1, 2, 4, 5]
    assert (params["ratelimit"], params["sleep_interval_requests"], params["sleep_interval"]) == (2 << 20, 1.5, 3)
    assert params["socket_timeout"] == 12 and params["continuedl"] and params["noplaylist"]
    assert params["js_runtimes"] == {"deno": {}, "node": {"path": "/usr/bin/node"}}
    assert params["remote_components"] == ["ejs:github"]
    assert isinstance(params["cookiefile"], io.StringIO)  # a private copy: the user's file is never written
    assert "download_archive" not in params  # it keys on the video ID alone
    assert "enable_file_urls" not in params
    browser = ytdlp_params(spec, entry, FetchOptions(cookies_from_browser="firefox:work"), selector, log=None)
    assert browser["cookiesfrombrowser"] == ("firefox", "work", None, None)
    with yt_dlp.YoutubeDL(params):  # yt-dlp accepts them
        pass


# -- cache --------------------------------------------------------------------------------------------------------

def test_format_keys_and_one_entry_per_dynamic_range(tmp_path):
    assert format_key(FormatSpec(), 2160) == "h2160" and format_key(None, 1080) == "h1080"
    assert format_key(FormatSpec(height=1440, vcodec="vp09"), 2160) == "h1440-vp09"
    assert format_key(FormatSpec(selector="bv*"), 2160).startswith("sel-")
    hdr, sdr = cache_entry(youtube_spec("hdr"), tmp_path), cache_entry(youtube_spec("sdr"), tmp_path)
    assert hdr.directory.relative_to(tmp_path).parts == ("youtube", "bpfu7biLT5c", "HDR10", "h2160")
    assert sdr.directory.relative_to(tmp_path).parts == ("youtube", "bpfu7biLT5c", "SDR", "h2160")
    assert cache_entry(youtube_spec("sdr", vcodec="avc1"), tmp_path).directory != sdr.directory


def complete(entry: CacheEntry, data: bytes) -> FetchedSource:
    entry.directory.mkdir(parents=True, exist_ok=True)
    path = entry.directory / "video.webm"
    path.write_bytes(data)
    fetched = FetchedSource(path, hashlib.sha256(data).hexdigest(), len(data), {"format_id": "337"})
    entry.write_marker(fetched)
    return fetched


def test_completion_marker_round_trip_and_invalidation(tmp_path):
    spec = youtube_spec("hdr")
    entry = cache_entry(spec, tmp_path)
    assert cached_source(spec, tmp_path) is None
    written = complete(entry, b"hdr bytes")
    marker = json.loads(entry.marker_path.read_text())
    assert marker["dynamic_range"] == "HDR10" and marker["file"] == "video.webm" and marker["marker_version"] == 1
    assert not list(entry.directory.glob(".*.tmp"))  # the temporary file was renamed away
    read = cached_source(spec, tmp_path)
    assert read.from_cache and (read.path, read.sha256, read.info) == (written.path, written.sha256, {"format_id": "337"})
    assert cached_source(youtube_spec("sdr"), tmp_path) is None  # the SDR version is not complete
    written.path.write_bytes(b"HDR bytes")  # same size, other content
    assert cached_source(spec, tmp_path) is not None
    assert cached_source(spec, tmp_path, options=FetchOptions(verify_cached_sha256=True)) is None
    written.path.write_bytes(b"short")
    assert cached_source(spec, tmp_path) is None  # size differs from the marker
    entry.marker_path.write_text("{not json")
    assert cached_source(spec, tmp_path) is None
    complete(entry, b"again")
    entry.invalidate()
    assert cached_source(spec, tmp_path) is None and (entry.directory / "video.webm").exists()


def test_entry_lock_serialises_fetches(tmp_path):
    entry = cache_entry(youtube_spec(), tmp_path)
    acquired = threading.Event()

    def other_fetch():
        with entry.locked():
            acquired.set()

    with entry.locked():
        thread = threading.Thread(target=other_fetch)
        thread.start()
        time.sleep(0.2)
        assert not acquired.is_set()
    thread.join(5)
    assert acquired.is_set()


# -- failure messages ---------------------------------------------------------------------------------------------

def wrapped(error: Exception) -> DownloadError:
    """As yt-dlp raises it from extract_info."""
    try:
        raise error
    except Exception as inner:
        import sys
        return DownloadError(f"ERROR: {inner}", sys.exc_info())


def http_error(status: int) -> HTTPError:
    return HTTPError(Response(io.BytesIO(b""), "https://www.youtube.com/watch?v=bpfu7biLT5c", {}, status=status))


def test_bot_check_and_refusals_are_explained_and_final():
    spec = youtube_spec()
    bot = classify_failure(wrapped(ExtractorError("[youtube] bpfu7biLT5c: Sign in to confirm you\u2019re not a bot. "
                                                  "Use --cookies-from-browser or --cookies for the authentication.",
                                                  expected=True)), spec)
    assert not bot.transient and "not a bot" in bot.message and "--cookies FILE" in bot.message
    assert "--sleep-requests" in bot.message
    forbidden = classify_failure(wrapped(ExtractorError("Unable to download", cause=http_error(403))), spec)
    assert not forbidden.transient and forbidden.message.startswith("YouTube refused the download (HTTP 403")
    assert "--cookies-from-browser" in forbidden.message
    gone = classify_failure(wrapped(ExtractorError("[youtube] x: Video unavailable. This video is private",
                                                   expected=True)), spec)
    assert not gone.transient and "replace or drop this pair" in gone.message


def test_transient_failures_are_retried():
    spec = youtube_spec()
    limited = classify_failure(wrapped(ExtractorError("Unable to download", cause=http_error(429))), spec)
    assert limited.transient and "--sleep-requests" in limited.message and "--limit-rate" in limited.message
    assert classify_failure(wrapped(ExtractorError("x", cause=http_error(502))), spec).transient
    assert classify_failure(wrapped(TimeoutError("timed out")), spec).transient
    assert classify_failure(DownloadError("ERROR: [download] Got error: 10 bytes read, 5 more expected"), spec).transient
    assert not classify_failure(wrapped(ExtractorError("x", cause=http_error(404))), spec).transient


def test_format_problem_wins_over_the_generic_message():
    selector = RoleFormatSelector(dynamic_range="HDR10", request=None, default_height=2160)
    selector.problem = "the video offers no HDR10 video-only stream; offered: SDR video at 1080"
    failure = classify_failure(DownloadError("ERROR: Requested format is not available"), youtube_spec(), selector)
    assert not failure.transient and "no suitable HDR10 format" in failure.message and "SDR video at 1080" in \
        failure.message and "hdr_format" in failure.message
