"""The dry-run plan (``pipelines.plan.format_plan``): offline, pairs per split, the state of every source."""

from __future__ import annotations

import hashlib
import socket
import textwrap
from pathlib import Path

import pytest

from fmstf_data.manifest.load import load_manifest
from fmstf_data.sources import CacheEntry, FetchedSource
from pipelines.plan import format_plan

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a network connection fails the test."""
    def refuse(self, address):
        raise AssertionError(f"network use during a dry run: {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


def test_fmstf20_plan_is_16_train_4_test_offline(tmp_path, offline):
    text = format_plan(load_manifest(MANIFESTS / "fmstf20.yaml"), tmp_path / "cache")
    lines = text.splitlines()
    assert "20 pairs: 16 train, 4 test" in lines[0]
    assert "train (16 pairs)" in lines and "test (4 pairs)" in lines
    assert sum("would fetch" in line for line in lines) == 40
    assert sum(line.strip().startswith("hdr  youtube:") and "[HDR10 video only, height<=2160]" in line
               for line in lines) == 20
    assert any(line.startswith("excluded: youtube:T3-_RW99h3U: 16 train + 4 test") for line in lines)
    assert "  yt-goe7s_usvxc  segment 166 s - end" in lines
    assert lines[-1].startswith("would download: 40 streams of 20 videos from YouTube")
    assert not (tmp_path / "cache").exists()  # nothing written


def test_plan_reports_local_cached_partial_and_to_fetch(tmp_path, offline):
    (tmp_path / "city.hdr.mp4").write_bytes(b"h" * 2000)
    (tmp_path / "city.sdr.mp4").write_bytes(b"s" * 1000)
    (tmp_path / "m.yaml").write_text(textwrap.dedent("""
        version: 1
        name: states
        pairs:
          - {id: city, split: train, hdr: city.hdr.mp4, sdr: city.sdr.mp4}
          - {id: sunset, split: test, youtube: bpfu7biLT5c, sdr_format: {vcodec: vp09}}
          - {id: web, split: val, hdr: "https://example.org/a.hdr.mp4", sdr: "https://example.org/a.sdr.mp4"}
        """))
    manifest = load_manifest(tmp_path / "m.yaml")
    cache = tmp_path / "cache"
    sunset = manifest.pair("sunset")
    done = CacheEntry.for_source(sunset.hdr, cache, 2160)
    done.directory.mkdir(parents=True)
    (done.directory / "video.webm").write_bytes(b"x" * 1_500_000)
    done.write_marker(FetchedSource(done.directory / "video.webm", hashlib.sha256(b"x" * 1_500_000).hexdigest(),
                                    1_500_000, {"format_id": "337", "vcodec": "vp09.02.51.10.01.09.16.09.00",
                                                "height": 2160}))
    partial = CacheEntry.for_source(sunset.sdr, cache, 2160)
    partial.directory.mkdir(parents=True)
    (partial.directory / "video.webm.part").write_bytes(b"y" * 4000)
    (tmp_path / "city.sdr.mp4").unlink()  # deleted after the manifest was read

    lines = format_plan(manifest, cache).splitlines()
    assert "20 pairs" not in lines[0] and "3 pairs: 1 train, 1 val, 1 test" in lines[0]
    line = {tuple(l.split()[:2]): l for l in lines if l.startswith("    ")}
    assert line[("hdr", str(tmp_path / "city.hdr.mp4"))].endswith("local file, 2.00 kB, used in place")
    assert "local file not found" in line[("sdr", str(tmp_path / "city.sdr.mp4"))]
    assert line[("hdr", "youtube:bpfu7biLT5c")].endswith(
        "cached, 1.50 MB (format 337, vp09.02.51.10.01.09.16.09.00, 2160p)")
    assert "[SDR vp09 video only, height<=2160]" in line[("sdr", "youtube:bpfu7biLT5c")]
    assert line[("sdr", "youtube:bpfu7biLT5c")].endswith("partly downloaded (4.00 kB), would resume")
    assert line[("hdr", "https://example.org/a.hdr.mp4")].endswith("would fetch")
    assert lines[-2] == "sources: 6 (1 local, 1 cached, 1 partly downloaded, 2 to fetch, 1 MISSING)"
    assert lines[-1].startswith("would download: 1 stream of 1 video from YouTube, 2 streams of 2 videos from URLs")


def test_cli_dry_run_prints_the_plan(tmp_path, offline, capsys, monkeypatch):
    from pipelines.cli import main

    monkeypatch.setenv("FMSTF_CACHE", str(tmp_path / "cache"))
    assert main(["build", "--manifest", str(MANIFESTS / "fmstf20.yaml"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "20 pairs: 16 train, 4 test" in out and "train (16 pairs)" in out and "test (4 pairs)" in out
