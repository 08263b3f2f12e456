"""The build report: ``report/report.json`` (everything, per pair) and ``report/summary.txt`` (a short human text).

The report is for people and dashboards; it carries timings, so unlike the shards and the index it differs between
two otherwise identical builds.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
from dataclasses import asdict
from typing import Any

from fmstf_data.manifest.schema import Manifest
from fmstf_data.store.storage import Storage, redact_uri
from pipelines.options import BuildOptions


def _versions() -> dict[str, str]:
    """Versions of what the build ran with (read from the installed distributions: nothing is imported)."""
    import av

    versions = {"python": platform.python_version(), "ffmpeg": str(av.library_versions.get("libavcodec"))}
    for distribution in ("fmstf-data", "av", "numpy", "pyarrow", "ray", "torch", "webdataset", "yt-dlp"):
        try:
            versions[distribution.replace("-", "_")] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            versions[distribution.replace("-", "_")] = "not installed"
    return versions


def split_totals(records: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per split: pairs ok / failed, samples, shards, bytes."""
    totals: dict[str, dict[str, int]] = {}
    for record in records:
        split = totals.setdefault(record["split"], {"pairs_ok": 0, "pairs_failed": 0, "samples": 0, "shards": 0,
                                                    "bytes": 0})
        if record["status"] == "ok":
            split["pairs_ok"] += 1
            split["samples"] += record.get("samples", 0)
            split["shards"] += len(record.get("shards", []))
            split["bytes"] += record.get("bytes", 0)
        else:
            split["pairs_failed"] += 1
    return dict(sorted(totals.items()))


def summary_text(manifest: Manifest, records: list[dict[str, Any]], totals: dict[str, dict[str, int]], *,
                 storage: Storage, skipped: list[str], seconds: float, ray_start_seconds: float | None = None) -> str:
    """A few lines a person reads at the end of a build."""
    ray = "" if ray_start_seconds is None else f", of which {ray_start_seconds:.1f} s starting Ray"
    lines = [f"fmstf-data build of '{manifest.name}' -> {storage.display()} ({seconds:.1f} s{ray})"]
    for split, total in totals.items():
        lines.append(f"  {split:<5} {total['pairs_ok']} pair(s) ok, {total['pairs_failed']} failed, "
                     f"{total['samples']} samples in {total['shards']} shard(s), {total['bytes'] / 1e6:.1f} MB")
    for record in records:
        if record["status"] == "ok":
            alignment = record.get("alignment", {})
            resumed = " (already complete)" if record["pair_id"] in skipped else ""
            lines.append(f"  ok      {record['pair_id']}: {record['samples']} samples, offset "
                         f"{alignment.get('offset_frames', 0):+d} frames (score {alignment.get('score', 0):.3f}), "
                         f"{alignment.get('geometry', '')}{resumed}")
        else:
            lines.append(f"  FAILED  {record['pair_id']} at {record['status']}: {record.get('reason', '')}")
    failed = [record["pair_id"] for record in records if record["status"] != "ok"]
    if failed:
        lines.append(f"{len(failed)} pair(s) failed: {', '.join(failed)}. Fix or remove them and rerun: completed "
                     f"pairs are kept.")
    lines.append(f"index: {storage.display('index/samples.parquet')}, {storage.display('index/pairs.parquet')}; "
                 f"report: {storage.display('report/report.json')}")
    return "\n".join(lines)


def write_report(storage: Storage, manifest: Manifest, build: BuildOptions, records: list[dict[str, Any]],
                 *, skipped: list[str], seconds: float, ray_start_seconds: float | None = None) -> dict[str, Any]:
    """Write ``report/report.json`` and ``report/summary.txt``; returns the report. ``ray_start_seconds``: how long
    starting or joining Ray took (None: no pair ran), reported apart from the work."""
    totals = split_totals(records)
    summary = summary_text(manifest, records, totals, storage=storage, skipped=skipped, seconds=seconds,
                           ray_start_seconds=ray_start_seconds)
    options = asdict(build)
    options["out"] = redact_uri(build.out)  # secrets in a URI never reach the report
    if options["fetch"].get("proxy"):
        options["fetch"]["proxy"] = redact_uri(options["fetch"]["proxy"])
    report = {
        "manifest": {"name": manifest.name, "path": str(manifest.path), "pairs": len(manifest.pairs)},
        "options": options,
        "versions": _versions(),
        "seconds": round(seconds, 3),
        "ray_start_seconds": None if ray_start_seconds is None else round(ray_start_seconds, 3),
        "totals": totals,
        "resumed_pairs": skipped,
        "pairs": records,
        "summary": summary,
    }
    text = json.dumps(report, sort_keys=True, separators=(",", ":"), default=str)  # compact: it grows with the pairs
    storage.write_bytes_atomic("report/report.json", text.encode())
    storage.write_bytes_atomic("report/summary.txt", (summary + "\n").encode())
    return report
