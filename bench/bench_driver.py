"""Driver benchmark: what the build's driver process costs at 1,000 and 10,000 pairs (peak memory, report size).

The pairs are simulated, the driver is not: a manifest of N pairs (each five minutes of 24 fps video at the default
stride of 8 frames: 900 samples, 100 cuts, the record of a real demo pair with its 241-point offset-search curves and
full probes) is written with every pair already complete, and a fresh process runs the real ``run_build`` on it:
manifest loading and planning, the resume checks, the streamed ``index/samples.parquet`` (N x 900 rows), the pair
index and the report. No pair is decoded and Ray is not started (a resumed pair needs neither), so the figures are
the driver's own bookkeeping, which is what grows with the size of a build; a build that processes the pairs holds
the same per-pair summaries, returned by its tasks.

    python bench/bench_driver.py                    # 1,000 and 10,000 pairs
    python bench/bench_driver.py --pairs 2000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fmstf_data.manifest.load import load_manifest  # noqa: E402
from fmstf_data.store.storage import open_storage  # noqa: E402
from pipelines.build import plan_pairs, run_build  # noqa: E402
from pipelines.options import BuildOptions  # noqa: E402
from pipelines.records import SAMPLE_INDEX_SCHEMA, parquet_bytes, record_path, samples_path  # noqa: E402

SAMPLES_PER_PAIR = 5 * 60 * 24 // 8  # five minutes at 24 fps, stride 8
CUTS_PER_PAIR = 100


def template_record(workdir: Path) -> dict:
    """The record of a real pair: the demo's city pair, built once."""
    out = workdir / "demo"
    result = run_build(BuildOptions(manifest_path=str(ROOT / "manifests" / "demo.yaml"), out=str(out),
                                    cache_dir=str(workdir / "cache"), workers=2, only_pairs=("city",),
                                    previews=False))
    if result.exit_code:
        raise SystemExit(f"demo build failed: {result.report['summary']}")
    return json.loads((out / record_path("city")).read_text())


def write_simulated_build(workdir: Path, pairs: int, template: dict) -> Path:
    """A manifest of ``pairs`` pairs and an output location in which every one is complete."""
    sources = workdir / "sources"
    sources.mkdir(exist_ok=True)
    manifest = workdir / f"simulated-{pairs}.yaml"
    lines = ["version: 1", f"name: simulated-{pairs}", "pairs:"]
    for number in range(pairs):
        split = "test" if number % 5 == 4 else "train"
        for side in ("hdr", "sdr"):  # a video belongs to one split: every pair has its own two files
            (sources / f"{number:06d}.{side}.mp4").write_bytes(f"{number} {side}".encode().ljust(1024, b"\0"))
        lines += [f"  - id: pair{number:06d}", f"    split: {split}", f"    hdr: sources/{number:06d}.hdr.mp4",
                  f"    sdr: sources/{number:06d}.sdr.mp4"]
    manifest.write_text("\n".join(lines) + "\n")
    out = workdir / f"out-{pairs}"
    storage = open_storage(out)
    build = BuildOptions(manifest_path=str(manifest), out=str(out), cache_dir=str(workdir / "cache"), workers=2)
    centres = list(range(8, 8 * SAMPLES_PER_PAIR + 1, 8))
    for planned in plan_pairs(load_manifest(manifest), build):
        pair_id, split = planned.spec.id, planned.spec.split
        shard = f"shards/{split}/{pair_id}-000000.tar"
        rows = {"key": [f"{pair_id}_{c:06d}" for c in centres], "pair_id": [pair_id] * len(centres),
                "split": [split] * len(centres), "shard": [shard] * len(centres),
                "hdr_frames": [[c - 1, c, c + 1] for c in centres], "sdr_frames": [[c - 3, c - 2, c - 1] for c in centres],
                "shot": [c * CUTS_PER_PAIR // (8 * SAMPLES_PER_PAIR) for c in centres], "centre_frame": centres,
                "centre_pts_seconds": [c / 24 for c in centres], "match_score_min": [0.93] * len(centres),
                "width": [3840] * len(centres), "height": [2160] * len(centres),
                "sample_bytes": [24_000_000] * len(centres)}
        storage.write_bytes_atomic(samples_path(pair_id),
                                   parquet_bytes(pa.Table.from_pydict(rows, schema=SAMPLE_INDEX_SCHEMA)))
        storage.write_bytes_atomic(shard, b"")
        record = json.loads(json.dumps(template))
        record.update(pair_id=pair_id, split=split, fingerprint=planned.fingerprint, shards=[shard],
                      samples=len(centres), bytes=24_000_000 * len(centres),
                      shard_files=[{"name": shard, "size_bytes": 0, "sha256": hashlib.sha256(b"").hexdigest()}])
        record["extraction"]["cut_hdr_frames"] = [c * 72 for c in range(1, CUTS_PER_PAIR)]
        storage.write_bytes_atomic(record_path(pair_id), json.dumps(record, indent=1, sort_keys=True).encode())
    return manifest


def measure(manifest: Path) -> None:
    """Run in a fresh process: the resumed build, then its peak memory and output sizes as one JSON line."""
    out = manifest.parent / f"out-{manifest.stem.split('-')[1]}"
    started = time.perf_counter()
    result = run_build(BuildOptions(manifest_path=str(manifest), out=str(out), cache_dir=str(manifest.parent / "cache"),
                                    workers=2, previews=False))
    seconds = time.perf_counter() - started
    print(json.dumps({
        "pairs": len(result.records), "resumed": len(result.skipped), "exit_code": result.exit_code,
        "seconds": round(seconds, 1), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "report_json_mb": round((out / "report" / "report.json").stat().st_size / 1e6, 2),
        "samples_parquet_mb": round((out / "index" / "samples.parquet").stat().st_size / 1e6, 2),
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(Path(args.measure))
        return
    workdir = Path(tempfile.mkdtemp(prefix="bench-driver-"))
    try:
        template = template_record(workdir)
        print(f"{'pairs':>7} {'samples':>10} {'driver s':>9} {'peak RSS MB':>12} {'report.json MB':>15} "
              f"{'samples.parquet MB':>19}")
        for pairs in args.pairs:
            manifest = write_simulated_build(workdir, pairs, template)
            done = subprocess.run([sys.executable, __file__, "--measure", str(manifest)], capture_output=True,
                                  text=True, check=True)
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            assert figures["resumed"] == pairs and figures["exit_code"] == 0, figures
            print(f"{pairs:>7} {pairs * SAMPLES_PER_PAIR:>10} {figures['seconds']:>9.1f} "
                  f"{figures['peak_rss_mb']:>12.1f} {figures['report_json_mb']:>15.2f} "
                  f"{figures['samples_parquet_mb']:>19.2f}")
            shutil.rmtree(manifest.parent / f"out-{pairs}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
