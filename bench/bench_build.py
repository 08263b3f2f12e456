"""Build benchmark: triplets per second of the whole build, against its ceiling and against the field's practice.

On one generated 1080p pair (10-bit HEVC HDR10, 8-bit H.264 SDR trimmed by a few frames), measured side by side in
one run (this machine is noisy, so only the ratios are meant to be compared between runs):

- **ceiling**: decoding the same two videos with PyAV and nothing else (``for frame in container.decode(...)``);
- **fmstf-data build**: the whole ``run_build`` on a one-pair manifest (fetch, probe, offset search, lockstep decode,
  verification, selection, sample encoding, shard writing, index, report), with Ray already started (its start-up,
  paid once per build whatever its size, is printed separately);
- **16-bit PNG practice**: decoding both videos with PyAV, converting the same triplets' frames to RGB48 with
  swscale (what ``ffmpeg -pix_fmt rgb48le`` does) and writing one 16-bit PNG per frame (6 per triplet), given the
  offset for free.

Bytes per triplet are reported for the shards and for the PNGs.

    python bench/bench_build.py                     # 1920x1080, 48 frames, stride 4
    python bench/bench_build.py --frames 96 --stride 2
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import pyarrow.parquet as pq

from fmstf_data.synth.pairs import write_pair
from fmstf_data.synth.scene import ClipSpec
from pipelines.build import run_build
from pipelines.options import BuildOptions, PairOptions


def make_pair(workdir: Path, width: int, height: int, frames: int) -> tuple[Path, Path]:
    name = f"bench{height}p{frames}g"
    hdr, sdr = workdir / f"{name}.hdr.mp4", workdir / f"{name}.sdr.mp4"
    marker = workdir / f"{name}.done"
    if not marker.exists():
        # film grain brings the bitrate (and so the decode cost) near real 1080p HDR video
        clip = ClipSpec(width=width, height=height, fps=Fraction(24), frame_count=frames, seed=7,
                        shot_lengths=(frames // 2, frames - frames // 2), grain_fraction=0.08)
        write_pair(workdir, name, clip, trim_start_frames=3, trim_end_frames=2, hdr_crf=12,
                   sdr_crf=18, preset="ultrafast", write_truth_json=False)
        marker.write_text("ok")
    return hdr, sdr


def decode_only(paths: list[Path]) -> float:
    started = time.perf_counter()
    for path in paths:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for _ in container.decode(stream):
                pass
    return time.perf_counter() - started


def encode_png16(frame: av.VideoFrame) -> bytes:
    rgb = frame.reformat(format="rgb48be")  # swscale, as the field's ffmpeg one-liners do
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = rgb.width, rgb.height, "rgb48be"
    return b"".join(bytes(packet) for packet in [*codec.encode(rgb), *codec.encode(None)])


def png_practice(hdr: Path, sdr: Path, samples: list[dict], out: Path) -> tuple[float, int]:
    """Decode both videos, write the triplets' frames as 16-bit PNGs; (seconds, bytes)."""
    wanted = {"hdr": {}, "sdr": {}}
    for sample in samples:
        for side in ("hdr", "sdr"):
            for position, index in enumerate(sample[f"{side}_frames"]):
                wanted[side].setdefault(index, []).append(f"{sample['key']}_{position + 1}")
    out.mkdir(parents=True, exist_ok=True)
    total = 0
    started = time.perf_counter()
    for side, path in (("hdr", hdr), ("sdr", sdr)):
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for index, frame in enumerate(container.decode(stream)):
                if index in wanted[side]:
                    data = encode_png16(frame)
                    for name in wanted[side][index]:
                        (out / f"{name}.{side}.png").write_bytes(data)
                        total += len(data)
    return time.perf_counter() - started, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--stride", type=int, default=4)
    parser.add_argument("--skip-png", action="store_true", help="skip the 16-bit PNG practice (slow)")
    parser.add_argument("--zstd-level", type=int, default=None, help="zstd level of the build (default: its own)")
    parser.add_argument("--cpus-per-task", type=int, default=2, help="CPUs of the one task (and of Ray)")
    parser.add_argument("--workdir", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    args.workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    hdr, sdr = make_pair(args.workdir, args.width, args.height, args.frames)
    seconds = args.frames / 24
    print(f"pair ready ({time.perf_counter() - started:.1f} s): {hdr.name} {hdr.stat().st_size / 1e6:.1f} MB "
          f"({hdr.stat().st_size * 8e-6 / seconds:.1f} Mbit/s), {sdr.name} {sdr.stat().st_size / 1e6:.1f} MB "
          f"({sdr.stat().st_size * 8e-6 / seconds:.1f} Mbit/s)")

    import ray

    started = time.perf_counter()
    ray.init(num_cpus=args.cpus_per_task, include_dashboard=False, log_to_driver=False)
    ray_seconds = time.perf_counter() - started

    manifest = args.workdir / "bench.yaml"
    manifest.write_text(f"version: 1\nname: bench\npairs:\n  - id: bench\n    split: train\n"
                        f"    hdr: {hdr.name}\n    sdr: {sdr.name}\n")
    scratch = Path(tempfile.mkdtemp(prefix="fmstf-bench-"))
    try:
        decode_seconds = decode_only([hdr, sdr])
        out = scratch / "build"
        options = BuildOptions(manifest_path=str(manifest), out=str(out), cache_dir=str(scratch / "cache"),
                               workers=1, cpus_per_task=args.cpus_per_task,
                               pair_options=PairOptions(stride_frames=args.stride, **(
                                   {} if args.zstd_level is None else {"zstd_level": args.zstd_level})),
                               previews=False)
        started = time.perf_counter()
        result = run_build(options)
        build_seconds = time.perf_counter() - started
        if result.exit_code != 0:
            raise SystemExit(f"build failed: {result.report['summary']}")
        samples = pq.read_table(out / "index" / "samples.parquet").to_pylist()
        full_record = json.loads((out / "pairs" / "bench.json").read_text())
        stage_seconds = dict(full_record.get("seconds", {}))  # alignment task and finalize task stages
        stage_seconds["chunks"] = sum(chunk["seconds"] for chunk in full_record.get("chunks", []))
        pipeline = [chunk.get("pipeline") for chunk in full_record.get("chunks", [])]
        shard_bytes = sum(path.stat().st_size for path in (out / "shards").rglob("*.tar"))
        png_seconds, png_bytes = (float("nan"), 0) if args.skip_png else \
            png_practice(hdr, sdr, samples, scratch / "png")
        decode_again = decode_only([hdr, sdr])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        ray.shutdown()

    triplets = len(samples)
    ceiling = triplets / ((decode_seconds + decode_again) / 2)
    ours = triplets / build_seconds
    png = triplets / png_seconds
    record = {
        "video": f"{args.width}x{args.height}, {args.frames} frames, stride {args.stride}", "triplets": triplets,
        "ceiling_triplets_per_s": round(ceiling, 2), "build_triplets_per_s": round(ours, 2),
        "png_triplets_per_s": round(png, 2), "build_over_ceiling": round(ours / ceiling, 3),
        "build_over_png": round(ours / png, 3), "shard_bytes_per_triplet": shard_bytes // triplets,
        "png_bytes_per_triplet": png_bytes // triplets, "png_bytes_over_shard_bytes": round(png_bytes / shard_bytes, 3),
        "zstd_level": args.zstd_level,
        "ray_start_seconds": round(ray_seconds, 2), "pair_task_seconds": round(sum(stage_seconds.values()), 3),
        "pair_task_over_ceiling": round(((decode_seconds + decode_again) / 2) / sum(stage_seconds.values()), 3),
    }
    print(f"\n{triplets} triplets from {record['video']}")
    print(f"  decode only (ceiling)   {ceiling:8.2f} triplets/s   ({decode_seconds:.2f} s, again {decode_again:.2f} s)")
    print(f"  fmstf-data build        {ours:8.2f} triplets/s   ({build_seconds:.2f} s)  = {ours / ceiling:.2f} x ceiling")
    print(f"  16-bit PNG practice     {png:8.2f} triplets/s   ({png_seconds:.2f} s)  -> build = {ours / png:.2f} x PNG")
    print(f"  bytes per triplet: shards {shard_bytes / triplets / 1e6:.2f} MB, 16-bit PNG {png_bytes / triplets / 1e6:.2f} MB "
          f"(PNG / shards = {png_bytes / shard_bytes:.2f})")
    pair_seconds = sum(stage_seconds.values())
    print(f"  of the build: the pair's own task {pair_seconds:.2f} s ({', '.join(f'{k} {v:.2f}' for k, v in stage_seconds.items())}); "
          f"the rest ({build_seconds - pair_seconds:.2f} s) is per-build: a fresh Ray worker importing torch/PyAV, "
          f"index, report")
    print(f"  Ray start-up (once per build, not counted above): {ray_seconds:.1f} s; in-task pipeline waits: {pipeline}")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
