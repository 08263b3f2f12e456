"""Shared fixtures: a Ray instance for the session, and helpers that make small test videos with PyAV."""

from __future__ import annotations

import os
from pathlib import Path

import av
import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO_MANIFEST = ROOT / "manifests" / "demo.yaml"


@pytest.fixture(scope="session")
def ray_session():
    """One private local Ray instance for every test that builds (run_build reuses an initialised Ray)."""
    import ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if not ray.is_initialized():
        from pipelines.cluster import PRIVATE_NODE_ADDRESS

        # loopback only: Ray rewrites 127.0.0.1 to the host's network address, 127.0.0.2 it leaves alone
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address=PRIVATE_NODE_ADDRESS)
    yield ray
    ray.shutdown()


def write_retagged_copy(source: Path, target: Path, *, transfer: str, color_trc: int) -> Path:
    """Re-encode ``source``'s exact 10-bit planes as HEVC tagged with another transfer (e.g. HLG: arib-std-b67, 18)."""
    from fmstf_data.synth.pairs import planes_to_video_frame
    from fmstf_data.video.decode import iter_planes

    with av.open(str(target), "w") as container:
        stream = container.add_stream("libx265", rate=24)
        frames = list(iter_planes(source))
        stream.width, stream.height, stream.pix_fmt = frames[0].width, frames[0].height, "yuv420p10le"
        stream.options = {"preset": "ultrafast", "crf": "24",
                          "x265-params": f"log-level=error:colorprim=bt2020:transfer={transfer}:colormatrix=bt2020nc"}
        context = stream.codec_context
        context.color_trc, context.color_primaries, context.colorspace, context.color_range = color_trc, 9, 9, 1
        for frame in frames:
            video_frame = planes_to_video_frame(frame.y, frame.cb, frame.cr, "yuv420p10le")
            video_frame.pts = frame.index
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return target
