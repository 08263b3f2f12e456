"""One long pair on one node and on two: what chunk tasks buy, and what a chunk and a segment decode.

Makes a 1080p HDR10 / SDR pair (``--seconds`` of 24 fps, a keyframe every 2 s, a cut every 10 s, the SDR version 3
frames late: procedural pictures, a textured plane panning at changing speeds, so no two seconds look alike), then
times ``fmstf-data build`` of it, A/B interleaved, on a loopback Ray cluster of one node and of two nodes (``ray
start`` at 127.0.0.2 and 127.0.0.3, ``--cpus-per-node`` CPUs each), and prints the ratio and what the chunks of the
two-node build decoded and where they ran. A last build of a segment (the last fifth of the video) prints its
decoded-frame count.

    python bench/bench_chunks.py --seconds 40 --rounds 2

Results are recorded in docs/scaling.md.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from fmstf_data.synth.cases import HDR_X265_PARAMS, PlaneWriter

RAY = str(Path(sys.executable).with_name("ray"))
FPS = 24


def texture(seed: int, height: int, width: int) -> np.ndarray:
    """A smooth random texture in [0, 1] (sum of a few octaves of upsampled noise), float32 [height, width]."""
    rng = np.random.default_rng(seed)
    result = np.zeros((height, width), np.float32)
    for cells, weight in ((8, 1.0), (32, 0.5), (128, 0.25), (512, 0.12)):
        noise = rng.random((cells * height // width + 2, cells + 2), dtype=np.float32)
        rows = np.linspace(0, noise.shape[0] - 2, height)
        cols = np.linspace(0, noise.shape[1] - 2, width)
        result += weight * noise[np.floor(rows).astype(int)][:, np.floor(cols).astype(int)]
    result -= result.min()
    return result / result.max()


def make_pair(workdir: Path, seconds: int, size: tuple[int, int] = (1920, 1080)) -> tuple[Path, Path]:
    """``seconds`` at ``size``: HDR10 (HEVC Main 10) and an SDR version (H.264) that starts 3 frames late."""
    width, height = size
    hdr_path, sdr_path = workdir / f"long{height}.hdr.mp4", workdir / f"long{height}.sdr.mp4"
    if hdr_path.exists() and sdr_path.exists():
        return hdr_path, sdr_path
    hdr = PlaneWriter(hdr_path, codec="libx265", fps=Fraction(FPS), pix_fmt="yuv420p10le", tags=(16, 9, 9, 1),
                      options={"preset": "ultrafast", "crf": "20", "g": "48", "x265-params": HDR_X265_PARAMS})
    sdr = PlaneWriter(sdr_path, codec="libx264", fps=Fraction(FPS), pix_fmt="yuv420p", tags=(1, 1, 1, 1),
                      options={"preset": "ultrafast", "crf": "20", "g": "48"})
    frames = seconds * FPS
    scene = None
    for frame in range(frames):
        if frame % (10 * FPS) == 0:
            scene = texture(frame // (10 * FPS), height + 400, width + 1200)
            x = y = 0.0
        speed = 3.0 + 2.0 * np.sin(frame / 17.0)
        x, y = x + speed, y + 0.5 * speed * np.cos(frame / 23.0)
        picture = scene[int(abs(y)) % 400:int(abs(y)) % 400 + height, int(x) % 1200:int(x) % 1200 + width]
        luma = picture ** 2.2  # linear-ish light
        y10 = (64 + 876 * np.sqrt(luma)).astype(np.uint16)
        chroma = np.full((height // 2, width // 2), 512, np.uint16)
        hdr.write(y10, chroma + ((picture[::2, ::2] - 0.5) * 40).astype(np.int16).astype(np.uint16), chroma)
        if frame >= 3:
            y8 = (16 + 219 * np.clip(luma * 1.6, 0, 1) ** (1 / 2.4)).astype(np.uint8)
            c8 = np.full((height // 2, width // 2), 128, np.uint8)
            sdr.write(y8, (c8 + ((picture[::2, ::2] - 0.5) * 20).astype(np.int16)).astype(np.uint8), c8)
    hdr.close()
    sdr.close()
    return hdr_path, sdr_path


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class LoopbackCluster:
    """``ray start`` nodes at 127.0.0.2, 127.0.0.3, ... (the first is the head), token authentication on."""

    def __init__(self, nodes: int, cpus_per_node: int) -> None:
        self.temp_dir = tempfile.mkdtemp(prefix="rb", dir="/tmp")
        self.environment = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
                            "RAY_COLOR_PREFIX": "0"}
        self.environment.pop("RAY_ADDRESS", None)
        self.processes: list[subprocess.Popen] = []
        head_port = free_port("127.0.0.2")
        self.address = f"127.0.0.2:{head_port}"
        for number in range(nodes):
            host = f"127.0.0.{number + 2}"
            ports = [f"--{name}={free_port(host)}" for name in (
                "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port",
                "metrics-export-port", "node-manager-port", "object-manager-port")]
            where = ["--head", f"--port={head_port}", "--include-dashboard=false"] if number == 0 \
                else [f"--address={self.address}"]
            self.processes.append(subprocess.Popen(
                [RAY, "start", *where, f"--node-ip-address={host}", f"--num-cpus={cpus_per_node}",
                 f"--temp-dir={self.temp_dir}", "--block", *ports], env=self.environment, start_new_session=True,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            time.sleep(3)
        script = (f"import ray, time\nray.init(address={self.address!r}, logging_level='ERROR')\n"
                  f"while sum(n['Alive'] for n in ray.nodes()) < {nodes}:\n    time.sleep(0.5)\n")
        subprocess.run([sys.executable, "-c", script], env=self.environment, check=True, timeout=120)

    def close(self) -> None:
        for process in self.processes[::-1]:
            try:
                os.killpg(process.pid, 15)
                process.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def build(cluster: LoopbackCluster, manifest: Path, out: Path, cache: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipelines.cli", "build", "--manifest", str(manifest), "--out", str(out),
                    "--cache", str(cache), "--ray-address", cluster.address, "--no-progress", "--no-previews"],
                   env=cluster.environment, check=True, capture_output=True, timeout=3600)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cpus-per-node", type=int, default=1)
    parser.add_argument("--chunk-seconds", type=float, default=10.0)
    parser.add_argument("--workdir", default="/tmp/bench_chunks")
    parser.add_argument("--size", default="1920x1080", help="frame size, e.g. 3840x2160")
    parser.add_argument("--skip-nodes", action="store_true", help="only the one-node build and the segment")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    size = tuple(int(value) for value in args.size.split("x"))
    hdr, sdr = make_pair(workdir, args.seconds, size)
    print(f"pair: {args.seconds} s of {args.size} at {FPS} fps ({time.perf_counter() - started:.0f} s to make)")
    manifest = workdir / "long.yaml"
    manifest.write_text(f"version: 1\nname: long\ndefaults: {{chunk_seconds: {args.chunk_seconds}}}\npairs:\n"
                        f"  - id: long\n    split: train\n    hdr: {hdr}\n    sdr: {sdr}\n")
    times: dict[int, list[float]] = {1: [], 2: []}
    for round_number in range(args.rounds):
        for nodes in ((1,) if args.skip_nodes else (1, 2) if round_number % 2 == 0 else (2, 1)):
            cluster = LoopbackCluster(nodes, args.cpus_per_node)
            try:
                times[nodes].append(build(cluster, manifest, workdir / f"out{nodes}", workdir / "cache"))
            finally:
                cluster.close()
            print(f"round {round_number}: {nodes} node(s): {times[nodes][-1]:.1f} s", flush=True)
    nodes = 1 if args.skip_nodes else 2
    if not args.skip_nodes:
        one, two = np.median(times[1]), np.median(times[2])
        print(f"median wall time: 1 node {one:.1f} s, 2 nodes {two:.1f} s: 2 nodes take {two / one:.2f}x")
    record = json.loads((workdir / f"out{nodes}" / "pairs" / "long.json").read_text())
    frames = record["hdr"]["probe"]["frame_count_from_content"]
    for chunk in record["chunks"]:
        peak = chunk.get("worker_peak_rss_bytes") or 0
        print(f"  chunk {chunk['index']} {chunk['span']}: node {chunk['node'][:8]}, {chunk['seconds']:.1f} s, "
              f"{chunk['hdr_frames_decoded']} HDR frames decoded, {chunk['samples']} samples, worker peak RSS "
              f"{peak / 2**30:.2f} GiB")
    one_node = json.loads((workdir / "out1" / "pairs" / "long.json").read_text())  # the same file when skipped
    same = [shard["sha256"] for shard in one_node["shard_files"]] == [shard["sha256"] for shard in
                                                                       record["shard_files"]]
    print(f"  alignment task decoded {record['alignment_pass']['hdr_frames_decoded']} HDR frames (and "
          f"{record['alignment_pass'].get('hdr_frames_redecoded', 0)} twice); {record['samples']} samples; shards "
          f"byte-identical on 1 and 2 nodes: {same}")
    segment = workdir / "segment.yaml"
    segment.write_text(manifest.read_text() + f"    start_seconds: {args.seconds * 0.8}\n")
    cluster = LoopbackCluster(1, args.cpus_per_node)
    try:
        build(cluster, segment, workdir / "segment", workdir / "cache")
    finally:
        cluster.close()
    record = json.loads((workdir / "segment" / "pairs" / "long.json").read_text())
    decoded = sum(chunk["hdr_frames_decoded"] for chunk in record["chunks"])
    print(f"segment of the last 20%: its chunks decoded {decoded} of {frames} HDR frames ({decoded / frames:.0%}); "
          f"the alignment task {record['alignment_pass']['hdr_frames_decoded']}")


if __name__ == "__main__":
    main()
