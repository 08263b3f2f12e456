"""``fmstf-data build``: Ray over the pairs of a manifest, resume, index, report.

Data flow (docs/architecture.md): resolve the manifest -> skip pairs already complete -> run every other pair as a
Ray task (:func:`pipelines.pair_task.process_pair`: fetch, probe, align, extract, write) with at most ``workers``
in flight -> collect one record per pair -> write the index (``index/samples.parquet``, ``index/pairs.parquet``)
and the report.

Ray: by default a private local instance sized to ``workers`` is started and stopped; ``--ray-address`` or
``RAY_ADDRESS`` joins an existing cluster instead (every node needs fmstf-data installed, and ``out`` must be
a location every node can write: a shared disk or an object store).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fmstf_data.errors import ManifestError
from fmstf_data.manifest.load import load_manifest
from fmstf_data.manifest.schema import Manifest, PairSpec
from fmstf_data.store.storage import Storage, open_storage
from pipelines.options import BuildOptions, OptionsError, PairOptions, fingerprint
from pipelines.pair_task import (
    SAMPLE_INDEX_SCHEMA,
    options_payload,
    parquet_bytes,
    process_pair,
    record_path,
    samples_path,
)
from pipelines.report import write_report

logger = logging.getLogger(__name__)

PAIR_INDEX_SCHEMA = pa.schema([
    ("pair_id", pa.string()),
    ("split", pa.string()),
    ("status", pa.string()),
    ("reason", pa.string()),
    ("samples", pa.int64()),
    ("shards", pa.list_(pa.string())),
    ("bytes", pa.int64()),
    ("hdr_source", pa.string()),
    ("sdr_source", pa.string()),
    ("hdr_sha256", pa.string()),
    ("sdr_sha256", pa.string()),
    ("hdr_verdict", pa.string()),
    ("sdr_verdict", pa.string()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("fps", pa.float64()),
    ("offset_frames", pa.int32()),
    ("offset_score", pa.float64()),
    ("offset_confidence", pa.float64()),
    ("geometry", pa.string()),
    ("scale_x", pa.float64()),
    ("scale_y", pa.float64()),
    ("frame_score_min", pa.float64()),
    ("frame_score_median", pa.float64()),
    ("low_score_frames", pa.int64()),
    ("cut_hdr_frames", pa.list_(pa.int32())),
    ("offset_detail_score", pa.float64()),
    ("hdr_step", pa.int32()),
    ("hdr_picture", pa.list_(pa.int32())),
    ("sdr_picture", pa.list_(pa.int32())),
    ("hdr_rect", pa.list_(pa.int32())),
    ("sdr_rect", pa.list_(pa.int32())),
    ("resampling_filter", pa.string()),
    ("paired_frames", pa.int64()),
    ("verified_frames", pa.int64()),
    ("transition_frames", pa.int64()),
    ("resync_hdr_frames", pa.list_(pa.int32())),
    ("resync_offsets", pa.list_(pa.int32())),
])


@dataclass(frozen=True)
class PlannedPair:
    """A manifest pair with its effective options and fingerprint."""

    spec: PairSpec
    options: PairOptions
    fingerprint: str


@dataclass
class BuildResult:
    """What a build did. ``records`` has one entry per planned pair, in manifest order."""

    manifest: Manifest
    records: list[dict[str, Any]]
    skipped: list[str]
    seconds: float
    report: dict[str, Any]

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [record for record in self.records if record["status"] != "ok"]

    @property
    def exit_code(self) -> int:
        """0 when every pair is ok, 1 when some failed."""
        return 1 if self.failed else 0


def plan_pairs(manifest: Manifest, build: BuildOptions) -> list[PlannedPair]:
    """Effective per-pair options (build defaults < manifest defaults < pair options) and fingerprints."""
    selected = [pair for pair in manifest.pairs if not build.only_pairs or pair.id in build.only_pairs]
    unknown = sorted(set(build.only_pairs) - {pair.id for pair in manifest.pairs})
    if unknown:
        raise OptionsError(f"--only names pairs not in the manifest: {unknown}")
    planned = []
    for pair in selected:
        try:
            options = build.pair_options.with_overrides(manifest.defaults).with_overrides(pair.options)
        except OptionsError as error:
            raise ManifestError(str(error), path=str(manifest.path), line=pair.line, field=f"pair {pair.id} options")
        planned.append(PlannedPair(pair, options, fingerprint(options_payload(pair, options, build))))
    return planned


def completed_record(storage: Storage, planned: PlannedPair) -> dict[str, Any] | None:
    """The pair's record when it is complete for this fingerprint and all its files are in place."""
    if not storage.exists(record_path(planned.spec.id)):
        return None
    try:
        record = json.loads(storage.read_bytes(record_path(planned.spec.id)))
    except (json.JSONDecodeError, UnicodeDecodeError):
        logger.warning("%s: unreadable record, rebuilding the pair", planned.spec.id)
        return None
    if record.get("status") != "ok" or record.get("fingerprint") != planned.fingerprint:
        return None
    if not storage.exists(samples_path(planned.spec.id)) or not all(storage.exists(s) for s in record["shards"]):
        logger.warning("%s: record present but files missing, rebuilding the pair", planned.spec.id)
        return None
    return record


def _start_ray(build: BuildOptions) -> bool:
    """Connect to Ray; returns True when this call started it (and so must shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    address = build.ray_address or os.environ.get("RAY_ADDRESS")
    if address:
        logger.info("joining the Ray cluster at %s", address)
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True)
    else:
        ray.init(num_cpus=build.workers, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=True, configure_logging=True)
    return True


def _run_with_ray(todo: list[PlannedPair], build: BuildOptions,
                  on_record: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:
    """Process ``todo`` as Ray tasks, at most ``build.workers`` in flight; records in completion order."""
    import ray

    started = _start_ray(build)
    try:
        remote = ray.remote(num_cpus=1, max_retries=1)(process_pair)
        pending: dict[Any, PlannedPair] = {}
        queue = list(todo)
        records = []
        while queue or pending:
            while queue and len(pending) < build.workers:
                planned = queue.pop(0)
                pending[remote.remote(planned.spec, build, planned.options, planned.fingerprint)] = planned
            done, _ = ray.wait(list(pending), num_returns=1)
            for reference in done:
                planned = pending.pop(reference)
                try:
                    record = ray.get(reference)
                except ray.exceptions.RayError as error:  # the worker died (OOM, crash): the pair fails, not the build
                    record = {"pair_id": planned.spec.id, "split": planned.spec.split, "status": "extract",
                              "reason": f"the Ray worker processing this pair died: {error}".splitlines()[0],
                              "samples": 0, "shards": [], "bytes": 0}
                records.append(record)
                on_record(record)
        return records
    finally:
        if started:
            ray.shutdown()


def _pair_row(record: dict[str, Any]) -> dict[str, Any]:
    alignment = record.get("alignment", {})
    extraction = record.get("extraction", {})
    hdr, sdr = record.get("hdr", {}), record.get("sdr", {})
    hdr_probe = hdr.get("probe", {})
    summary = extraction.get("score_summary", {})
    details = alignment.get("geometry_details", {})
    return {
        "pair_id": record["pair_id"], "split": record["split"], "status": record["status"],
        "reason": record.get("reason", ""), "samples": record.get("samples", 0), "shards": record.get("shards", []),
        "bytes": record.get("bytes", 0), "hdr_source": hdr.get("source"), "sdr_source": sdr.get("source"),
        "hdr_sha256": hdr.get("sha256"), "sdr_sha256": sdr.get("sha256"),
        "hdr_verdict": hdr_probe.get("verdict"), "sdr_verdict": sdr.get("probe", {}).get("verdict"),
        "width": hdr_probe.get("width"), "height": hdr_probe.get("height"),
        "fps": hdr_probe.get("fps_from_content"),
        "offset_frames": alignment.get("offset_frames"), "offset_score": alignment.get("score"),
        "offset_confidence": alignment.get("confidence"), "geometry": alignment.get("geometry"),
        "scale_x": alignment.get("scale_x"), "scale_y": alignment.get("scale_y"),
        "frame_score_min": summary.get("min"), "frame_score_median": summary.get("median"),
        "low_score_frames": extraction.get("low_score_frames"), "cut_hdr_frames": extraction.get("cut_hdr_frames"),
        "offset_detail_score": alignment.get("detail_score"), "hdr_step": alignment.get("hdr_step"),
        "hdr_picture": details.get("hdr_picture"), "sdr_picture": details.get("sdr_picture"),
        "hdr_rect": details.get("hdr_rect"), "sdr_rect": details.get("sdr_rect"),
        "resampling_filter": details.get("resampling_filter"), "paired_frames": extraction.get("paired_frames"),
        "verified_frames": extraction.get("verified_frames"),
        "transition_frames": None if "transition_hdr_frames" not in extraction
        else len(extraction["transition_hdr_frames"]),
        "resync_hdr_frames": None if "offset_changes" not in extraction
        else [frame for frame, _ in extraction["offset_changes"]],
        "resync_offsets": None if "offset_changes" not in extraction
        else [offset for _, offset in extraction["offset_changes"]],
    }


def write_index(storage: Storage, records: list[dict[str, Any]]) -> pa.Table:
    """``index/samples.parquet`` (ok pairs, sorted by split, pair, centre) and ``index/pairs.parquet``."""
    tables = [
        pq.read_table(pa.BufferReader(storage.read_bytes(samples_path(record["pair_id"]))))
        for record in sorted(records, key=lambda r: r["pair_id"]) if record["status"] == "ok"
    ]
    samples = pa.concat_tables(tables).cast(SAMPLE_INDEX_SCHEMA) if tables else SAMPLE_INDEX_SCHEMA.empty_table()
    samples = samples.sort_by([("split", "ascending"), ("pair_id", "ascending"), ("centre_frame", "ascending")])
    pairs = pa.Table.from_pylist(sorted((_pair_row(r) for r in records), key=lambda row: row["pair_id"]),
                                 schema=PAIR_INDEX_SCHEMA)
    storage.write_bytes_atomic("index/samples.parquet", parquet_bytes(samples))
    storage.write_bytes_atomic("index/pairs.parquet", parquet_bytes(pairs))
    return samples


def run_build(build: BuildOptions, *, on_record: Callable[[dict[str, Any]], None] | None = None) -> BuildResult:
    """Build (or resume building) ``build.out`` from ``build.manifest_path``.

    Args:
        build: the options.
        on_record: called with each pair's record as it completes (progress display).

    Raises:
        ManifestError: the manifest is invalid (nothing is built).
        OptionsError: an option is invalid.
    """
    started = time.perf_counter()
    manifest = load_manifest(build.manifest_path)
    planned = plan_pairs(manifest, build)
    storage = open_storage(build.out)
    storage.makedirs("")
    storage.delete(".staging")  # leftovers of a killed build: never visible, now gone

    records: dict[str, dict[str, Any]] = {}
    todo = []
    skipped = []
    for pair in planned:
        record = None if build.force else completed_record(storage, pair)
        if record is not None:
            records[pair.spec.id] = record
            skipped.append(pair.spec.id)
        else:
            todo.append(pair)
    if skipped:
        logger.info("resuming: %d pair(s) already complete: %s", len(skipped), ", ".join(skipped))
    callback = on_record or (lambda record: None)
    for record in skipped:
        callback(records[record])
    if todo:
        for record in _run_with_ray(todo, build, callback):
            records[record["pair_id"]] = record
    ordered = [records[pair.spec.id] for pair in planned]
    samples = write_index(storage, ordered)
    seconds = time.perf_counter() - started
    report = write_report(storage, manifest, build, ordered, samples, skipped=skipped, seconds=seconds)
    return BuildResult(manifest=manifest, records=ordered, skipped=skipped, seconds=seconds, report=report)


