"""``fmstf-data build``: Ray over the pairs of a manifest, resume, index, report.

Data flow (docs/architecture.md): resolve the manifest -> skip pairs already complete -> run every other pair as
Ray tasks with at most ``workers`` in flight: an alignment task (:func:`pipelines.pair_task.align_pair`: fetch,
probe, align, plan the chunks), chunk tasks over spans of the HDR timeline (:func:`pipelines.chunk_task.
extract_chunk`: seek, verify, select, write shards), a finalize task (:func:`pipelines.pair_task.finalize_pair`:
publish, record) -> collect one record per pair -> write the index (``index/samples.parquet``,
``index/pairs.parquet``) and the report.

Ray (:mod:`pipelines.cluster`): by default a private local instance on a loopback address is started and stopped;
``--ray-address`` or ``RAY_ADDRESS`` joins an existing cluster instead (every node needs fmstf-data installed, and
``out`` must be a location every node can write: a shared disk or an object store; this is checked from every node
before any pair runs). The driver holds one summary per pair, never per-frame or per-sample lists; the sample index
is streamed pair by pair (docs/scaling.md).
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fmstf_data.errors import ManifestError
from fmstf_data.manifest.load import load_manifest
from fmstf_data.manifest.schema import Manifest, PairSpec
from fmstf_data.store.storage import Storage, StorageError, open_storage
from pipelines.chunk_task import extract_chunk
from pipelines.cluster import (
    check_out_reachable,
    cluster_address,
    largest_node_memory_bytes,
    start_ray,
    task_resources,
)
from pipelines.lock import LOCK_NAME, BuildLock
from pipelines.options import BuildOptions, OptionsError, PairOptions, fingerprint
from pipelines.pair_task import align_pair, alignment_key, finalize_pair, options_payload, replan_pair
from pipelines.records import (
    PAIR_INDEX_SCHEMA,
    SAMPLE_INDEX_SCHEMA,
    pair_row,
    parquet_bytes,
    record_path,
    samples_path,
    summarize_record,
)
from pipelines.report import write_report

logger = logging.getLogger(__name__)

#: concurrent resume checks (existence checks and record reads: I/O-bound, most useful on object stores)
RESUME_CHECK_THREADS = 16

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


def completed_record(storage: Storage, planned: PlannedPair, *, verify_checksums: bool = False
                     ) -> dict[str, Any] | None:
    """The summary of the pair's record when it is complete for this fingerprint and all its files are in place,
    each shard of the size its record gives (and, with ``verify_checksums``, of the same sha256)."""
    if not storage.exists(record_path(planned.spec.id)):
        return None
    try:
        record = json.loads(storage.read_bytes(record_path(planned.spec.id)))
    except (json.JSONDecodeError, UnicodeDecodeError):
        logger.warning("%s: unreadable record, rebuilding the pair", planned.spec.id)
        return None
    if record.get("status") != "ok" or record.get("fingerprint") != planned.fingerprint:
        return None
    if not storage.exists(samples_path(planned.spec.id)):
        logger.warning("%s: record present but its sample rows missing, rebuilding the pair", planned.spec.id)
        return None
    # records written before shard sizes were recorded name their shards only: those are checked for existence
    shard_files = record.get("shard_files") or [{"name": name} for name in record["shards"]]
    problem = shard_problem(storage, shard_files, verify_checksums=verify_checksums)
    if problem:
        logger.warning("%s: %s; rebuilding the pair", planned.spec.id, problem)
        return None
    return summarize_record(record)


def shard_problem(storage: Storage, shard_files: list[dict[str, Any]], *, verify_checksums: bool) -> str | None:
    """Why a completed pair's shards are not what its record says, or None: each must exist (one metadata request
    per shard) with the recorded size, and with ``verify_checksums`` the recorded sha256 of every byte."""
    for shard in shard_files:
        try:
            size = storage.size_bytes(shard["name"])
        except StorageError:
            return f"{shard['name']} is missing"
        if "size_bytes" in shard and size != shard["size_bytes"]:
            return f"{shard['name']} has {size} bytes, its record says {shard['size_bytes']} (truncated or replaced?)"
        if verify_checksums and "sha256" in shard and storage.sha256(shard["name"]) != shard["sha256"]:
            return f"{shard['name']} does not match the checksum in its record (damaged)"
    return None


@dataclass
class _PairRun:
    """The driver's state of one pair in flight: its plan (a Ray object reference, never fetched to the driver),
    the chunks still to submit and the chunk summaries in."""

    planned: PlannedPair
    plan: Any = None
    chunk_count: int = 0
    memory_bytes: int | None = None
    next_chunk: int = 0
    chunks: list[dict[str, Any]] = field(default_factory=list)


def _died(error: Exception, what: str) -> str:
    return f"the Ray worker running {what} died: {error}".splitlines()[0]


def _lost_pair(spec: PairSpec, status: str, what: str, error: Exception) -> dict[str, Any]:
    """The summary of a pair whose alignment or finalize task was lost with its worker."""
    return {"pair_id": spec.id, "split": spec.split, "status": status, "reason": _died(error, what), "samples": 0,
            "shards": [], "bytes": 0}


def _run_with_ray(todo: list[PlannedPair], build: BuildOptions, on_record: Callable[[dict[str, Any]], None],
                  timings: dict[str, float]) -> list[dict[str, Any]]:
    """Process ``todo`` as Ray tasks (:mod:`pipelines.cluster` sizes them), at most as many in flight as the
    cluster can run: per pair an alignment task (:func:`pipelines.pair_task.align_pair`), its chunk tasks
    (:func:`pipelines.chunk_task.extract_chunk`, spread over the cluster) and a finalize task
    (:func:`pipelines.pair_task.finalize_pair`). Finishing pairs goes first, then chunks of aligned pairs, then
    new pairs, so that few pairs are open at a time. Records (summaries) in completion order; ``timings`` gets
    ``ray_start_seconds``.

    Raises:
        OptionsError: no node can run a task as declared.
        StorageError: a worker cannot reach or write ``build.out``.
    """
    import ray

    ray_started = time.perf_counter()
    started = start_ray(build)
    timings["ray_start_seconds"] = time.perf_counter() - ray_started
    try:
        joined = not started or cluster_address(build) is not None
        resources = task_resources(build, joined=joined)
        check_out_reachable(build, resources)
        logger.info("%d task(s) at a time, %d CPU(s) each", resources.workers, resources.num_cpus)
        options = resources.remote_options(build.max_retries)
        align_remote = ray.remote(align_pair).options(**options, num_returns=2)
        replan_remote = ray.remote(replan_pair).options(**{**options, "num_cpus": 0}, num_returns=2)
        chunk_function = ray.remote(extract_chunk)
        chunk_remote = chunk_function.options(**options)
        finalize_remote = ray.remote(finalize_pair).options(**{**options, "num_cpus": 1})
        largest_memory = largest_node_memory_bytes()
        pending: dict[Any, tuple[str, _PairRun, int]] = {}
        queue = list(todo)
        aligned: list[_PairRun] = []  # pairs with chunks still to submit, in order
        records = []
        # the segments of one source pair share one alignment: the first aligns, the others wait for its plan
        keys = {planned.spec.id: alignment_key(planned.spec, planned.options) for planned in todo}
        unplanned = Counter(keys.values())  # pairs per key not yet submitted
        aligning: set[str] = set()
        waiting: dict[str, list[PlannedPair]] = {}
        sources: dict[str, Any] = {}  # key -> the plan of an aligned pair, while pairs of that key remain

        def submit() -> None:
            while len(pending) < resources.workers:
                if aligned:
                    run = aligned[0]
                    index = run.next_chunk
                    run.next_chunk += 1
                    if run.next_chunk == run.chunk_count:
                        aligned.pop(0)
                    remote = chunk_remote if run.memory_bytes is None else \
                        chunk_function.options(**options, memory=run.memory_bytes)
                    pending[remote.remote(run.plan, index, build)] = ("chunk", run, index)
                elif queue:
                    planned = queue.pop(0)
                    key = keys[planned.spec.id]
                    if key in aligning:
                        waiting.setdefault(key, []).append(planned)
                        continue
                    unplanned[key] -= 1
                    if key in sources:
                        summary, plan = replan_remote.remote(sources[key], planned.spec, build, planned.options,
                                                             planned.fingerprint)
                    else:
                        aligning.add(key)
                        summary, plan = align_remote.remote(planned.spec, build, planned.options,
                                                            planned.fingerprint)
                    if not unplanned[key]:
                        sources.pop(key, None)
                    pending[summary] = ("align", _PairRun(planned, plan), -1)
                else:
                    return

        def finish(record: dict[str, Any]) -> None:
            records.append(record)
            on_record(record)

        while queue or pending or aligned:
            submit()
            done, _ = ray.wait(list(pending), num_returns=1)
            for reference in done:
                kind, run, index = pending.pop(reference)
                spec = run.planned.spec
                if kind == "align":
                    try:
                        summary = ray.get(reference)
                    except ray.exceptions.RayError as error:
                        summary = _lost_pair(spec, "align", "this pair's alignment", error)
                    key = keys[spec.id]
                    if key in aligning:
                        aligning.discard(key)
                        if summary["status"] == "planned" and unplanned[key]:
                            sources[key] = run.plan
                        queue[:0] = waiting.pop(key, [])  # replanned, or aligned by themselves after a failure
                    if summary["status"] != "planned":
                        finish(summary)
                        continue
                    run.chunk_count = summary["chunks"]
                    if resources.memory_bytes is None:  # no --memory-per-task: declare the estimate from the frames
                        run.memory_bytes = min(summary["task_memory_bytes"], int(0.8 * largest_memory))
                    aligned.append(run)
                elif kind == "chunk":
                    try:
                        run.chunks.append(ray.get(reference))
                    except ray.exceptions.RayError as error:
                        run.chunks.append({"index": index, "span": [None, None], "status": "failed",
                                           "reason": _died(error, f"chunk {index}"), "shard_files": [],
                                           "samples": 0})
                    if len(run.chunks) == run.chunk_count:
                        pending[finalize_remote.remote(run.plan, run.chunks, build)] = ("finalize", run, -1)
                else:
                    try:
                        record = ray.get(reference)
                    except ray.exceptions.RayError as error:
                        record = _lost_pair(spec, "extract", "this pair's finalize step", error)
                    finish(record)
        return records
    finally:
        if started:
            ray.shutdown()


def write_index(storage: Storage, records: list[dict[str, Any]]) -> int:
    """``index/samples.parquet`` (ok pairs, sorted by split, pair, centre) and ``index/pairs.parquet``; returns the
    number of samples.

    The sample index is streamed: one pair's table at a time is read and appended as row groups, so the driver
    never holds more than one pair's rows whatever the size of the build.
    """
    ok = sorted((record for record in records if record["status"] == "ok"),
                key=lambda record: (record["split"], record["pair_id"]))
    temporary = f"index/.samples.parquet.{uuid.uuid4().hex}.partial"
    count = 0
    with storage.open_output(temporary) as stream, \
            pq.ParquetWriter(stream, SAMPLE_INDEX_SCHEMA, compression="zstd", use_dictionary=True) as writer:
        for record in ok:
            table = pq.read_table(pa.BufferReader(storage.read_bytes(samples_path(record["pair_id"]))))
            table = table.cast(SAMPLE_INDEX_SCHEMA).sort_by([("centre_frame", "ascending")])
            writer.write_table(table)
            count += table.num_rows
    storage.move(temporary, "index/samples.parquet")
    pairs = pa.Table.from_pylist(sorted((pair_row(r) for r in records), key=lambda row: row["pair_id"]),
                                 schema=PAIR_INDEX_SCHEMA)
    storage.write_bytes_atomic("index/pairs.parquet", parquet_bytes(pairs))
    return count


def completed_records(storage: Storage, planned: list[PlannedPair], threads: int = RESUME_CHECK_THREADS, *,
                      verify_checksums: bool = False) -> list[dict[str, Any] | None]:
    """:func:`completed_record` of every planned pair, checked concurrently (each check is a few small reads and
    existence checks of the pair's own files: on an object store, round trips that overlap)."""
    def check(pair: PlannedPair) -> dict[str, Any] | None:
        return completed_record(storage, pair, verify_checksums=verify_checksums)

    if len(planned) <= 1:
        return [check(pair) for pair in planned]
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="resume-check") as pool:
        return list(pool.map(check, planned))


#: the top-level entries a build writes in its output location
OWN_ENTRIES = ("index", "pairs", "report", "shards", ".staging", LOCK_NAME)
#: names of the temporary files :meth:`fmstf_data.store.storage.Storage.write_bytes_atomic` writes
PARTIAL_NAME = re.compile(r"^\..+\.[0-9a-f]{32}\.partial$")


def foreign_entries(storage: Storage) -> list[str]:
    """Top-level entries of the output location this tool did not write (a wrong --out, e.g. a home folder)."""
    return [name for name in storage.list_top() if name not in OWN_ENTRIES and not name.startswith(".fmstf-reach-")]


def index_names_any(storage: Storage, pair_ids: set[str]) -> bool:
    """Whether the current index lists any of ``pair_ids`` as ok: one read of ``index/pairs.parquet``, not a request
    per pair. No index: False; an unreadable pair index: True (retired rather than trusted)."""
    if not pair_ids or not storage.exists("index/samples.parquet"):
        return False
    try:
        pairs = pq.read_table(pa.BufferReader(storage.read_bytes("index/pairs.parquet")), columns=["pair_id", "status"])
    except (StorageError, pa.ArrowException):
        return True
    return any(row["status"] == "ok" and row["pair_id"] in pair_ids for row in pairs.to_pylist())


def with_absolute_paths(build: BuildOptions) -> BuildOptions:
    """``out`` and ``cache_dir`` made absolute on the driver when they are local paths: a worker's working directory
    is not the driver's."""
    out = build.out if "://" in build.out else os.path.abspath(build.out)
    cache_dir = build.cache_dir if "://" in build.cache_dir else os.path.abspath(build.cache_dir)
    return replace(build, out=out, cache_dir=cache_dir)


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
    build = with_absolute_paths(build)
    manifest = load_manifest(build.manifest_path)
    planned = plan_pairs(manifest, build)
    storage = open_storage(build.out)
    lock = BuildLock(storage)
    try:
        storage.makedirs("")
        foreign = foreign_entries(storage)
        if foreign and not build.force:
            raise StorageError(f"{storage.display()} holds files this tool did not write ({', '.join(foreign[:5])}"
                               f"{', ...' if len(foreign) > 5 else ''}); choose an empty or earlier build folder, or "
                               f"pass --force to build there anyway")
        lock.acquire()
    except OSError as error:
        raise StorageError(f"cannot use the output location {storage.display()}: {error}") from error
    try:
        return _build_locked(build, manifest, planned, storage, on_record, started)
    finally:
        lock.release()


def _build_locked(build: BuildOptions, manifest: Manifest, planned: list[PlannedPair], storage: Storage,
                  on_record: Callable[[dict[str, Any]], None] | None, started: float) -> BuildResult:
    """The build proper, under the output location's lease (:mod:`pipelines.lock`)."""
    try:
        storage.delete(".staging")  # leftovers of a killed build (only builds holding the lease write there)
        for folder in ("index", "pairs", "report"):  # half-written files of a killed build: ours by their names
            for name in storage.list_files(folder, ".partial"):
                if PARTIAL_NAME.match(posixpath.basename(name)):
                    storage.delete(name)
    except OSError as error:
        raise StorageError(f"cannot use the output location {storage.display()}: {error}") from error

    records: dict[str, dict[str, Any]] = {}
    todo = []
    skipped = []
    complete = [None] * len(planned) if build.force else completed_records(
        storage, planned, verify_checksums=build.verify_resume)
    for pair, record in zip(planned, complete):
        if record is not None:
            records[pair.spec.id] = record
            skipped.append(pair.spec.id)
        else:
            todo.append(pair)
    if skipped:
        logger.info("resuming: %d pair(s) already complete: %s", len(skipped), ", ".join(skipped))
    if index_names_any(storage, {pair.spec.id for pair in todo}):
        # pairs rebuilt in place rewrite shards the current index names: retire the index first, so that no
        # moment (a kill included) leaves an index that disagrees with its shards; it is written again at the end
        for name in ("index/samples.parquet", "index/pairs.parquet"):
            storage.delete(name)
    callback = on_record or (lambda record: None)
    for record in skipped:
        callback(records[record])
    timings: dict[str, float] = {}
    if todo:
        for record in _run_with_ray(todo, build, callback, timings):
            records[record["pair_id"]] = record
    ordered = [records[pair.spec.id] for pair in planned]
    write_index(storage, ordered)
    seconds = time.perf_counter() - started
    report = write_report(storage, manifest, build, ordered, skipped=skipped, seconds=seconds,
                          ray_start_seconds=timings.get("ray_start_seconds"))
    return BuildResult(manifest=manifest, records=ordered, skipped=skipped, seconds=seconds, report=report)


