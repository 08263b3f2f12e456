"""Fetching over loopback HTTP with the real yt-dlp: real bytes through yt-dlp's generic extractor and downloader.

A ``http.server`` on 127.0.0.1 (port 0) serves videos generated here with PyAV. It honours Range requests and can
fail the first N requests (503), cut every response that starts at byte 0 after some bytes (so a download can only
finish by resuming), or answer 403.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import logging
import re
import socket
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import av
import numpy as np
import pytest

from fmstf_data.errors import FetchError
from fmstf_data.manifest.load import load_manifest
from fmstf_data.manifest.schema import FormatSpec, SourceSpec
from fmstf_data.sources import CacheEntry, FetchedSource, FetchOptions, cached_source, fetch_source, sha256_file

CONTENT_TYPES = {"mp4": "video/mp4", "webm": "video/webm", "mpd": "application/dash+xml"}
FAST = dict(retry_sleep_seconds=0.01, max_retry_sleep_seconds=0.05, socket_timeout_seconds=5.0)


@dataclass
class Behaviour:
    fail_first: int = 0  # answer 503 to this many requests first
    drop_after_bytes: int | None = None  # cut responses that start at byte 0 after this many bytes
    forbidden: bool = False  # answer 403


class LoopbackServer:
    """Serves ``files`` (name -> bytes) on 127.0.0.1 with scripted failures; records every request."""

    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        self.behaviour: dict[str, Behaviour] = {}
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def requests_for(self, name: str) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["name"] == name]

    def _handler(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

            def _status(self, code: int) -> None:
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _serve(self, body: bool) -> None:
                name = self.path.split("?")[0].lstrip("/")
                with server.lock:
                    behaviour = server.behaviour.setdefault(name, Behaviour())
                    failing = behaviour.fail_first > 0
                    behaviour.fail_first -= failing
                    status = 404 if name not in server.files else 403 if behaviour.forbidden else \
                        503 if failing else 200
                    server.requests.append({"method": self.command, "name": name, "status": status,
                                            "range": self.headers.get("Range"), "cookie": self.headers.get("Cookie")})
                if status != 200:
                    return self._status(status)
                data = server.files[name]
                start, end = 0, len(data) - 1
                match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
                if match:
                    start, end = int(match[1]), min(end, int(match[2])) if match[2] else end
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPES.get(name.rsplit(".", 1)[-1], "application/octet-stream"))
                self.send_header("Content-Length", str(end - start + 1))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if not body:
                    return
                chunk = data[start:end + 1]
                try:
                    if start == 0 and behaviour.drop_after_bytes is not None and behaviour.drop_after_bytes < len(chunk):
                        self.wfile.write(chunk[:behaviour.drop_after_bytes])
                        self.wfile.flush()
                        self.connection.shutdown(socket.SHUT_RDWR)  # the connection drops mid-file
                        return
                    self.wfile.write(chunk)
                except OSError:  # the client went away (yt-dlp's extractor reads only the headers)
                    pass

        return Handler


def write_video(path: Path, *, codec: str, pix_fmt: str, width: int = 128, height: int = 96, frames: int = 24) -> bytes:
    """A small real video (noise, so that it does not compress to nothing); returns its bytes."""
    rng = np.random.default_rng(len(path.name))
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for _ in range(frames):
            image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format=pix_fmt)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path.read_bytes()


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("media")
    return {
        "city.hdr.mp4": write_video(folder / "city.hdr.mp4", codec="libx265", pix_fmt="yuv420p10le"),
        "city.sdr.mp4": write_video(folder / "city.sdr.mp4", codec="libx264", pix_fmt="yuv420p"),
        "city.sdr.webm": write_video(folder / "city.sdr.webm", codec="libvpx-vp9", pix_fmt="yuv420p"),
        "small.hdr.mp4": write_video(folder / "small.hdr.mp4", codec="libx265", pix_fmt="yuv420p10le", width=64,
                                     height=48, frames=10),
    }


def url_spec(url: str, role: str = "hdr") -> SourceSpec:
    return SourceSpec(kind="url", location=url, role=role, pair_id="city")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_url_fetch_moves_real_bytes_and_keeps_info_json(tmp_path, media):
    with LoopbackServer(media) as server:
        hdr = fetch_source(url_spec(server.url("city.hdr.mp4"), "hdr"), tmp_path, options=FetchOptions(**FAST))
        sdr = fetch_source(url_spec(server.url("city.sdr.webm"), "sdr"), tmp_path, options=FetchOptions(**FAST))
        requests_after_first = len(server.requests)
        again = fetch_source(url_spec(server.url("city.hdr.mp4"), "hdr"), tmp_path, options=FetchOptions(**FAST))
        assert len(server.requests) == requests_after_first  # served from the cache: no request at all
    assert (hdr.sha256, hdr.size_bytes) == (sha(media["city.hdr.mp4"]), len(media["city.hdr.mp4"]))
    assert sdr.sha256 == sha(media["city.sdr.webm"]) and sdr.path.read_bytes() == media["city.sdr.webm"]
    assert not hdr.from_cache and again.from_cache and again.path == hdr.path and again.sha256 == hdr.sha256
    assert hdr.path.parent.parts[-2:] == ("HDR10", "h2160") and sdr.path.parent.parts[-2] == "SDR"
    info = json.loads(Path(hdr.info["info_json"]).read_text())
    assert info["format_id"] == hdr.info["format_id"] == "mp4" and info["extractor"] == "generic"
    assert (hdr.path.parent / "complete.json").is_file()
    with av.open(str(hdr.path)) as container:  # the real video arrived
        frames = list(container.decode(video=0))
    assert len(frames) == 24 and frames[0].format.name == "yuv420p10le"


def test_server_failing_then_succeeding_is_retried_with_backoff(tmp_path, media, caplog):
    with LoopbackServer(media) as server:
        server.behaviour["city.sdr.mp4"] = Behaviour(fail_first=2)
        with caplog.at_level(logging.WARNING, logger="fmstf_data.sources"):
            fetched = fetch_source(url_spec(server.url("city.sdr.mp4"), "sdr"), tmp_path,
                                   options=FetchOptions(fetch_attempts=3, **FAST))
        statuses = [r["status"] for r in server.requests_for("city.sdr.mp4")]
    assert statuses[:2] == [503, 503] and statuses[2:] and set(statuses[2:]) == {200}
    assert fetched.sha256 == sha(media["city.sdr.mp4"])
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) == 2 and "HTTP 503" in retries[0] and "attempt 1/3" in retries[0]


def test_failure_beyond_the_attempts_says_rerun_and_the_rerun_succeeds(tmp_path, media):
    with LoopbackServer(media) as server:
        server.behaviour["city.sdr.mp4"] = Behaviour(fail_first=5)
        spec = url_spec(server.url("city.sdr.mp4"), "sdr")
        with pytest.raises(FetchError, match=r"HTTP 503.*after 2 attempts.*rerun the same command"):
            fetch_source(spec, tmp_path, options=FetchOptions(fetch_attempts=2, **FAST))
        assert cached_source(spec, tmp_path) is None
        server.behaviour["city.sdr.mp4"].fail_first = 0
        assert fetch_source(spec, tmp_path, options=FetchOptions(**FAST)).sha256 == sha(media["city.sdr.mp4"])


def test_dropped_connection_resumes_with_a_range_request(tmp_path, media):
    data = media["city.hdr.mp4"]
    with LoopbackServer(media) as server:
        server.behaviour["city.hdr.mp4"] = Behaviour(drop_after_bytes=len(data) // 3)
        fetched = fetch_source(url_spec(server.url("city.hdr.mp4")), tmp_path, options=FetchOptions(**FAST))
        ranges = [r["range"] for r in server.requests_for("city.hdr.mp4") if r["range"]]
    assert fetched.path.read_bytes() == data
    # every response from byte 0 was cut, so the file can only be complete through a resumed request
    assert ranges and 0 < int(re.match(r"bytes=(\d+)-", ranges[-1])[1]) < len(data)


def test_interrupted_run_resumes_on_rerun_and_ends_identical(tmp_path, media):
    data = media["city.hdr.mp4"]
    with LoopbackServer(media) as server:
        spec = url_spec(server.url("city.hdr.mp4"))
        server.behaviour["city.hdr.mp4"] = Behaviour(drop_after_bytes=len(data) // 2)
        with pytest.raises(FetchError, match=r"network error.*partial download \(\d+ bytes\) is kept.*rerun"):
            fetch_source(spec, tmp_path / "cache", options=FetchOptions(retries=0, fetch_attempts=1, **FAST))
        entry = CacheEntry.for_source(spec, tmp_path / "cache", 2160)
        [partial] = entry.partial_files()
        partial_bytes = partial.stat().st_size
        assert 0 < partial_bytes < len(data) and not entry.marker_path.exists()
        resumed = fetch_source(spec, tmp_path / "cache", options=FetchOptions(**FAST))  # the rerun
        last_range = server.requests_for("city.hdr.mp4")[-1]["range"]
        server.behaviour["city.hdr.mp4"].drop_after_bytes = None
        clean = fetch_source(spec, tmp_path / "never-failed", options=FetchOptions(**FAST))
    assert last_range == f"bytes={partial_bytes}-"  # continued where the first run stopped
    assert resumed.sha256 == clean.sha256 == sha(data) and not entry.partial_files()


def test_crash_before_the_marker_reuses_the_downloaded_file(tmp_path, media):
    with LoopbackServer(media) as server:
        spec = url_spec(server.url("city.sdr.mp4"), "sdr")
        first = fetch_source(spec, tmp_path, options=FetchOptions(**FAST))
        (first.path.parent / "complete.json").unlink()  # as if the process died right after the download
        before = len(server.requests_for("city.sdr.mp4"))
        again = fetch_source(spec, tmp_path, options=FetchOptions(**FAST))
        new_requests = server.requests_for("city.sdr.mp4")[before:]
    assert not again.from_cache and (again.path, again.sha256) == (first.path, first.sha256)
    assert len(new_requests) == 1  # yt-dlp's extraction only: the finished file was not downloaded again
    assert (again.path.parent / "complete.json").is_file()


def test_403_gives_the_cookie_advice_and_is_not_retried(tmp_path, media):
    with LoopbackServer(media) as server:
        server.behaviour["city.hdr.mp4"] = Behaviour(forbidden=True)
        with pytest.raises(FetchError) as caught:
            fetch_source(url_spec(server.url("city.hdr.mp4")), tmp_path, options=FetchOptions(fetch_attempts=3, **FAST))
        assert len(server.requests_for("city.hdr.mp4")) == 1
    message = str(caught.value)
    assert "city.hdr" in message and "HTTP 403" in message and "refused" in message
    assert "--cookies FILE" in message and "--cookies-from-browser" in message


def test_404_names_the_source(tmp_path, media):
    with LoopbackServer(media) as server:
        with pytest.raises(FetchError, match=r"does not exist \(HTTP 404\).*missing\.mp4"):
            fetch_source(url_spec(server.url("missing.mp4")), tmp_path, options=FetchOptions(**FAST))
        assert len(server.requests_for("missing.mp4")) == 1


def test_cookies_file_is_sent_and_left_untouched(tmp_path, media):
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tSID\tsecret42\n")
    before = cookies.read_bytes()
    with LoopbackServer(media) as server:
        fetch_source(url_spec(server.url("city.sdr.mp4"), "sdr"), tmp_path / "cache",
                     options=FetchOptions(cookies_file=str(cookies), **FAST))
        sent = {r["cookie"] for r in server.requests_for("city.sdr.mp4")}
    assert sent == {"SID=secret42"}
    assert cookies.read_bytes() == before
    with pytest.raises(FetchError, match="cookies file not found"):
        fetch_source(url_spec("http://127.0.0.1:9/x.mp4"), tmp_path / "cache",
                     options=FetchOptions(cookies_file=str(tmp_path / "nope.txt")))


def test_file_url_goes_through_ytdlp_into_the_cache(tmp_path, media):
    source = tmp_path / "clip.mp4"
    source.write_bytes(media["small.hdr.mp4"])
    fetched = fetch_source(url_spec(source.as_uri()), tmp_path / "cache", options=FetchOptions(**FAST))
    assert fetched.path != source and fetched.path.read_bytes() == source.read_bytes()
    assert fetched.info["extractor"] == "generic" and "dynamic_range" not in fetched.info  # unknown for a file


MPD = """<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT1S" minBufferTime="PT1S"
     profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">
 <Period>
  <AdaptationSet mimeType="video/webm" contentType="video">
   <Representation id="hdr-96" codecs="vp09.02.10.10.01.09.16.09.00" width="128" height="96" bandwidth="90000">
    <BaseURL>city.hdr.mp4</BaseURL></Representation>
   <Representation id="hdr-48" codecs="vp09.02.10.10.01.09.16.09.00" width="64" height="48" bandwidth="30000">
    <BaseURL>small.hdr.mp4</BaseURL></Representation>
   <Representation id="sdr-96" codecs="vp09.00.10.08" width="128" height="96" bandwidth="50000">
    <BaseURL>city.sdr.webm</BaseURL></Representation>
  </AdaptationSet>
  <AdaptationSet mimeType="video/mp4" contentType="video">
   <Representation id="sdr-96-avc" codecs="avc1.64000c" width="128" height="96" bandwidth="40000">
    <BaseURL>city.sdr.mp4</BaseURL></Representation>
  </AdaptationSet>
  <AdaptationSet mimeType="audio/mp4" contentType="audio">
   <Representation id="audio" codecs="mp4a.40.2" bandwidth="128000"><BaseURL>city.sdr.mp4</BaseURL></Representation>
  </AdaptationSet>
 </Period>
</MPD>
"""


def test_dash_manifest_url_selects_hdr10_and_sdr_streams_by_fields(tmp_path, media):
    with LoopbackServer({**media, "city.mpd": MPD.encode()}) as server:
        spec = url_spec(server.url("city.mpd"))
        hdr = fetch_source(spec, tmp_path, options=FetchOptions(**FAST))
        sdr = fetch_source(replace(spec, role="sdr"), tmp_path, options=FetchOptions(**FAST))
        sdr_avc = fetch_source(replace(spec, role="sdr", format=FormatSpec(vcodec="avc1")), tmp_path,
                               options=FetchOptions(**FAST))
    assert (hdr.info["format_id"], hdr.info["dynamic_range"], hdr.info["selected_height"]) == ("hdr-96", "HDR10", 96)
    assert hdr.sha256 == sha(media["city.hdr.mp4"])
    assert (sdr.info["format_id"], sdr.info["dynamic_range"]) == ("sdr-96", "SDR")
    assert sdr.sha256 == sha(media["city.sdr.webm"])
    assert sdr_avc.info["format_id"] == "sdr-96-avc" and sdr_avc.sha256 == sha(media["city.sdr.mp4"])


def seed_cache(spec: SourceSpec, cache_dir: Path, data: bytes, format_id: str) -> FetchedSource:
    """Put a completed entry in the cache, as an earlier run would have left it."""
    entry = CacheEntry.for_source(spec, cache_dir, 2160)
    entry.directory.mkdir(parents=True)
    path = entry.directory / "video.webm"
    path.write_bytes(data)
    digest, size = sha256_file(path)
    fetched = FetchedSource(path=path, sha256=digest, size_bytes=size,
                            info={"format_id": format_id, "kind": "youtube", "location": spec.location})
    entry.write_marker(fetched)
    return fetched


def test_manifest_mixing_local_url_and_youtube_sides(tmp_path, media):
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "city.hdr.mp4").write_bytes(media["city.hdr.mp4"])
    (tmp_path / "local" / "city.sdr.mp4").write_bytes(media["city.sdr.mp4"])
    (tmp_path / "local" / "own-grade.sdr.webm").write_bytes(media["city.sdr.webm"])
    cache = tmp_path / "cache"
    with LoopbackServer(media) as server:
        (tmp_path / "mixed.yaml").write_text(f"""\
version: 1
name: mixed
defaults: {{format: {{height: 1080}}}}
pairs:
  - {{id: local, split: train, hdr: local/city.hdr.mp4, sdr: local/city.sdr.mp4}}
  - id: web
    split: train
    hdr: {server.url("city.hdr.mp4")}
    sdr: {server.url("city.sdr.webm")}
  - {{id: yt, split: test, youtube: bpfu7biLT5c}}
  - {{id: half, split: val, hdr: youtube:KtYYMigpQVM, sdr: local/own-grade.sdr.webm}}
""")
        manifest = load_manifest(tmp_path / "mixed.yaml")
        kinds = [(pair.hdr.kind, pair.sdr.kind) for pair in manifest.pairs]
        assert kinds == [("local", "local"), ("url", "url"), ("youtube", "youtube"), ("youtube", "local")]
        # the YouTube sides were completed by an earlier run: no network needed now
        seeded = {(s.location, s.role): seed_cache(s, cache, s.role.encode() * 100, s.role)
                  for s in (manifest.pair("yt").hdr, manifest.pair("yt").sdr, manifest.pair("half").hdr)}
        results = {(pair.id, spec.role): fetch_source(spec, cache, options=FetchOptions(format_height=1080, **FAST))
                   for pair in manifest.pairs for spec in pair.sources}
        assert len(server.requests) >= 2
    assert results[("local", "hdr")].path == tmp_path / "local" / "city.hdr.mp4"  # used in place
    assert results[("web", "sdr")].sha256 == sha(media["city.sdr.webm"])
    assert results[("yt", "hdr")].sha256 == seeded[("bpfu7biLT5c", "hdr")].sha256
    assert results[("yt", "hdr")].from_cache and results[("yt", "sdr")].info["format_id"] == "sdr"
    assert results[("yt", "hdr")].path != results[("yt", "sdr")].path  # one ID, two cache entries
    assert results[("half", "sdr")].sha256 == sha(media["city.sdr.webm"])
