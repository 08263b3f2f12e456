"""One chunk of one pair, run as a Ray task: decode a span of the HDR timeline, verify, select, write its shards.

A pair's work is split (docs/scaling.md): :func:`pipelines.pair_task.align_pair` fetches, probes and aligns the
pair on the start of both versions and plans its chunks (:func:`fmstf_data.extract.options.plan_chunks`:
``chunk_seconds`` of the HDR timeline each, cut at multiples of the stride). Every chunk then runs here, on any
node: it seeks both versions to the keyframe before its lead-in (:mod:`fmstf_data.video.seek`), re-finds the
pairing there, and keeps the triplets centred in its span (:meth:`fmstf_data.extract.lockstep.PairExtractor.samples`
with a :class:`~fmstf_data.extract.options.ChunkSpan`). Its shards are numbered from ``index * SHARDS_PER_CHUNK``,
so their names and bytes depend on the options only, never on which worker ran what, when, or how often.

Everything a chunk writes stays in its attempt's own staging folder (``.staging/{pair_id}/{attempt}/``): the
shards, its sample rows and per-frame rows (parquet) and its preview candidate. It returns a small summary;
:func:`pipelines.pair_task.finalize_pair` publishes the pair when every chunk is done. A failing chunk removes
only its own staging.
"""

from __future__ import annotations

import logging
import os
import queue
import resource
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pyarrow as pa

from fmstf_data.align.offset import FrameMapping
from fmstf_data.errors import FmstfError
from fmstf_data.extract.lockstep import PairExtractor
from fmstf_data.extract.options import ChunkSpan, ExtractOptions
from fmstf_data.extract.pair_aligner import Alignment
from fmstf_data.manifest.schema import PairSpec
from fmstf_data.sources import FetchOptions, fetch_source
from fmstf_data.store.samples import Sample, encode_sample
from fmstf_data.store.shards import ShardWriter
from fmstf_data.store.storage import open_storage
from fmstf_data.video.seek import FrameTimeline
from pipelines.figures import preview_png
from pipelines.options import BuildOptions, PairOptions
from pipelines.records import SAMPLE_INDEX_SCHEMA, parquet_bytes

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: shard numbers reserved per chunk: chunk k writes shards k * SHARDS_PER_CHUNK, k * SHARDS_PER_CHUNK + 1, ...
SHARDS_PER_CHUNK = 1000


@dataclass
class PairPlan:
    """What the alignment task found and planned for one pair; the chunk tasks and the finalize task read it.

    Attributes:
        pair, pair_options, fingerprint: the pair as planned by the driver.
        paths, sizes_bytes: (HDR, SDR) local files where the alignment task fetched them, and their sizes.
        mapping, alignment, extract_options: the frame mapping, alignment and pass options every chunk uses.
        sample_metadata, sdr_fill_codes: copied into every sample / used outside the mapped picture.
        timelines: (HDR, SDR) frame timelines (None: the streams cannot be seeked by timestamp; one chunk).
        chunks: the chunk spans.
        middle_frame: the HDR frame the preview sample is chosen nearest to.
        record: the pair's record so far (sources, probes, alignment, the alignment task's attempt and seconds).
    """

    pair: PairSpec
    pair_options: PairOptions
    fingerprint: str
    paths: tuple[str, str]
    sizes_bytes: tuple[int, int]
    mapping: FrameMapping
    alignment: Alignment
    extract_options: ExtractOptions
    sample_metadata: dict[str, Any]
    sdr_fill_codes: tuple[int, int]
    timelines: tuple[FrameTimeline, FrameTimeline] | None
    chunks: list[ChunkSpan]
    middle_frame: int
    record: dict[str, Any] = field(default_factory=dict)


def staging_dir(pair_id: str, attempt: str) -> str:
    return f".staging/{pair_id}/{attempt}"


def attempt_identity() -> dict[str, Any]:
    """Who runs this attempt: a fresh id, the host, the process and (under Ray) the node and task."""
    identity: dict[str, Any] = {"id": uuid.uuid4().hex[:16], "host": socket.gethostname(), "pid": os.getpid()}
    try:
        import ray

        if ray.is_initialized():
            context = ray.get_runtime_context()
            identity.update(node=context.get_node_id(), task=context.get_task_id())
    except Exception as error:  # noqa: BLE001 - identity is diagnostic: never fail a pair over it
        identity["node"] = f"unknown ({type(error).__name__})"
    return identity


#: samples decoded ahead of the one being compressed and written: bounds a task's memory at this many samples
#: (a 2160p sample is about 75 MB of HDR planes and 37 MB of SDR planes on the HDR grid)
PIPELINE_DEPTH = 2


def run_pipelined(items: Iterator[T], consume: Callable[[T], None], *, depth: int) -> dict[str, float]:
    """Consume ``items`` on a second thread while the calling thread produces the next ones, through a queue of at
    most ``depth`` items: decoding (the producer: FFmpeg and numpy release the GIL) overlaps compressing and
    writing (the consumer: zstd releases it), so a task takes about as long as its slower half, not their sum.
    Items are consumed in order. An exception on either side stops both and is raised here.

    Returns:
        seconds the producer waited for room (``producer_wait_seconds``: the consumer is the slower half) and
        the consumer waited for items (``consumer_wait_seconds``: the producer is).
    """
    channel: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    failure: list[BaseException] = []
    waits = {"producer_wait_seconds": 0.0, "consumer_wait_seconds": 0.0}

    def consumer() -> None:
        while True:
            started = time.perf_counter()
            item = channel.get()
            waits["consumer_wait_seconds"] += time.perf_counter() - started
            if item is done:
                return
            if not failure:
                try:
                    consume(item)
                except BaseException as error:  # noqa: BLE001 - handed to the producer's thread, raised there
                    failure.append(error)

    thread = threading.Thread(target=consumer, name="sample-writer", daemon=True)
    thread.start()
    try:
        for item in items:
            if failure:
                break
            started = time.perf_counter()
            channel.put(item)
            waits["producer_wait_seconds"] += time.perf_counter() - started
    finally:
        channel.put(done)
        thread.join()
    if failure:
        raise failure[0]
    return {name: round(value, 3) for name, value in waits.items()}


def chunk_staged(staging: str, name: str) -> str:
    """Where a chunk attempt stages ``name`` (a shard's final name, or ``samples.parquet`` ...)."""
    return f"{staging}/{name}"


def local_sources(plan: PairPlan, build: BuildOptions) -> tuple[str, str]:
    """The pair's two files on this node: where the alignment task left them when this node sees the same file
    (shared cache or local sources, checked by size: no re-hashing), else fetched again into this node's cache."""
    paths = []
    for role, path, size, spec in (("hdr", plan.paths[0], plan.sizes_bytes[0], plan.pair.hdr),
                                   ("sdr", plan.paths[1], plan.sizes_bytes[1], plan.pair.sdr)):
        try:
            if os.path.getsize(path) == size:
                paths.append(path)
                continue
        except OSError:
            pass
        logger.info("%s: %s file %s is not on this node; fetching it", plan.pair.id, role.upper(), path)
        paths.append(str(fetch_source(spec, build.cache_dir, options=FetchOptions(**build.fetch)).path))
    return paths[0], paths[1]


def extract_chunk(plan: PairPlan, chunk_index: int, build: BuildOptions) -> dict[str, Any]:
    """Run chunk ``chunk_index`` of ``plan``; never raises for a bad chunk. Returns its summary: ``status``
    (``ok``/``failed``), ``reason``, the span, who ran it (``node``, ``host``, ``attempt``), ``seconds``,
    ``samples``, ``hdr_frames_decoded``, ``sdr_frames_decoded``, the staged ``shard_files``, the ``staging``
    folder, ``extraction`` (the chunk's :meth:`~fmstf_data.extract.options.ExtractionStats.to_dict`) and
    ``preview_distance`` (distance of its preview candidate to the pair's middle frame; None without one)."""
    started = time.perf_counter()
    chunk = plan.chunks[chunk_index]
    pair = plan.pair
    attempt = attempt_identity()
    staging = staging_dir(pair.id, attempt["id"])
    summary: dict[str, Any] = {"index": chunk.index, "span": [chunk.start_frame, chunk.end_frame],
                               "status": "running", "reason": "", "node": attempt.get("node"),
                               "host": attempt["host"], "attempt": attempt["id"], "staging": staging, "samples": 0,
                               "hdr_frames_decoded": 0, "sdr_frames_decoded": 0, "shard_files": [],
                               "preview_distance": None}
    storage = open_storage(build.out)
    writer: ShardWriter | None = None
    extractor: PairExtractor | None = None
    try:
        hdr_path, sdr_path = local_sources(plan, build)
        extractor = PairExtractor(hdr_path, sdr_path, pair_id=pair.id, split=pair.split, mapping=plan.mapping,
                                  options=plan.extract_options, sample_metadata=plan.sample_metadata,
                                  sdr_fill_codes=plan.sdr_fill_codes, alignment=plan.alignment,
                                  timelines=plan.timelines)
        writer = ShardWriter(storage, f"shards/{pair.split}/{pair.id}", staging, max_shard_bytes=build.max_shard_bytes,
                             first_number=chunk.index * SHARDS_PER_CHUNK, max_shards=SHARDS_PER_CHUNK)
        rows: list[dict[str, Any]] = []
        preview: dict[str, Any] = {"sample": None, "distance": None}

        def store(sample: Sample) -> None:  # runs on the writer thread, in sample order
            members = encode_sample(sample, zstd_level=plan.pair_options.zstd_level, threads=build.cpus_per_task)
            stored = writer.write(sample.key, members)
            meta = sample.metadata
            rows.append({
                "key": sample.key, "pair_id": pair.id, "split": pair.split, "shard": stored.shard,
                **stored.index_columns(),
                "hdr_frames": meta["hdr_frames"], "sdr_frames": meta["sdr_frames"], "shot": None,
                "centre_frame": meta["centre_frame"], "centre_pts_seconds": meta["hdr_pts_seconds"][len(meta["hdr_pts_seconds"]) // 2],
                "match_score_min": min(meta["match_scores"]), "width": sample.width, "height": sample.height,
                "sample_bytes": sum(len(data) for data in members.values()),
            })
            distance = abs(meta["centre_frame"] - plan.middle_frame)
            if build.previews and (preview["distance"] is None or distance < preview["distance"]):
                preview.update(sample=sample, distance=distance)

        stored = run_pipelined(extractor.samples(chunk), store, depth=PIPELINE_DEPTH)
        preview_sample, preview_distance = preview["sample"], preview["distance"]
        summary["pipeline"] = stored
        shards = writer.close()
        storage.write_bytes_atomic(chunk_staged(staging, "samples.parquet"),
                                   parquet_bytes(pa.Table.from_pylist(rows, schema=SAMPLE_INDEX_SCHEMA)))
        storage.write_bytes_atomic(chunk_staged(staging, "frames.parquet"),
                                   parquet_bytes(extractor.stats.frames_table()))
        if preview_sample is not None:
            storage.write_bytes_atomic(chunk_staged(staging, "preview.png"), preview_png(preview_sample))
        summary.update(status="ok", samples=len(rows), preview_distance=preview_distance,
                       shard_files=[{"name": shard.name, "size_bytes": shard.size_bytes, "sha256": shard.sha256}
                                    for shard in shards])
        logger.info("%s chunk %d [%s, %s): %d samples, %d HDR frames decoded", pair.id, chunk.index,
                    chunk.start_frame, chunk.end_frame, len(rows), extractor.stats.hdr_frames_decoded)
    except FmstfError as error:
        summary.update(status="failed", reason=str(error))
    except OSError as error:
        summary.update(status="failed", reason=f"storage or file error: {error}")
    except Exception as error:  # noqa: BLE001 - a bug in one chunk must not stop the build; it is reported
        logger.error("%s chunk %d: internal error\n%s", pair.id, chunk.index, traceback.format_exc())
        summary.update(status="failed", reason=f"internal error ({type(error).__name__}: {error}); please report it "
                                               f"with the build report")
    if extractor is not None:
        stats = extractor.stats
        summary.update(hdr_frames_decoded=stats.hdr_frames_decoded, sdr_frames_decoded=stats.sdr_frames_decoded,
                       extraction=stats.to_dict())
    if summary["status"] != "ok":
        logger.warning("%s chunk %d failed: %s", pair.id, chunk.index, summary["reason"])
        if writer is not None:
            writer.abort()
        storage.delete(staging)
    summary["seconds"] = round(time.perf_counter() - started, 3)
    # the worker process's peak resident memory so far (Ray reuses workers: an upper bound for this chunk)
    summary["worker_peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return summary

