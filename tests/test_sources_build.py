"""A build whose network fails midway, rerun, ends with the same shards as one that never failed (issue 6).

The demo's synthetic HDR10/SDR pairs are served over loopback HTTP and named by URL in a manifest; the real build
(``pipelines.build.run_build``, Ray) fetches them with yt-dlp.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from pipelines.build import run_build
from pipelines.options import BuildOptions
from tests.conftest import ROOT
from tests.test_sources_http import Behaviour, LoopbackServer

DEMO = ROOT / "manifests" / "demo"
NAMES = ("city.hdr.mp4", "city.sdr.mp4", "harbor.hdr.mp4", "harbor.sdr.mp4")


def shard_digests(out: Path) -> dict[str, str]:
    return {str(path.relative_to(out)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted((out / "shards").rglob("*.tar"))}


def build(manifest: Path, out: Path, cache: Path, **fetch) -> object:
    options = BuildOptions(manifest_path=str(manifest), out=str(out), cache_dir=str(cache), workers=2,
                           previews=False, fetch={"retry_sleep_seconds": 0.01, **fetch})
    return run_build(options)


def test_build_interrupted_by_the_network_resumes_to_identical_shards(tmp_path, ray_session):
    files = {name: (DEMO / name).read_bytes() for name in NAMES}
    with LoopbackServer(files) as server:
        manifest = tmp_path / "web.yaml"
        manifest.write_text(f"""\
version: 1
name: web
defaults: {{stride_frames: 4}}
pairs:
  - {{id: city, split: train, hdr: "{server.url('city.hdr.mp4')}", sdr: "{server.url('city.sdr.mp4')}"}}
  - {{id: harbor, split: test, hdr: "{server.url('harbor.hdr.mp4')}", sdr: "{server.url('harbor.sdr.mp4')}"}}
""")
        cache = tmp_path / "cache"
        clean = build(manifest, tmp_path / "clean", cache)
        assert not clean.failed
        expected = shard_digests(tmp_path / "clean")
        assert any(name.startswith("shards/train/") for name in expected) and \
            any(name.startswith("shards/test/") for name in expected)

        shutil.rmtree(cache)  # the same cache path, empty: everything is downloaded again
        size = len(files["harbor.hdr.mp4"])
        server.behaviour["harbor.hdr.mp4"] = Behaviour(drop_after_bytes=size // 2)  # the network fails midway
        first = build(manifest, tmp_path / "out", cache, retries=0, fetch_attempts=1)
        statuses = {record["pair_id"]: record["status"] for record in first.records}
        assert statuses == {"city": "ok", "harbor": "fetch"}
        reason = next(r["reason"] for r in first.records if r["pair_id"] == "harbor")
        assert "partial download" in reason and "rerun" in reason

        second = build(manifest, tmp_path / "out", cache)  # rerun: harbor resumes its partial HDR download
        ranges = [r["range"] for r in server.requests_for("harbor.hdr.mp4") if r["range"]]
    assert not second.failed
    assert ranges and not ranges[-1].startswith("bytes=0-")
    assert shard_digests(tmp_path / "out") == expected
