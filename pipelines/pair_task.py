"""The per-pair work around the chunks, as Ray tasks: align and plan (:func:`align_pair`), then publish
(:func:`finalize_pair`); the chunks in between run :func:`pipelines.chunk_task.extract_chunk`.

Every pair ends with a record (contract 6): ``status`` is ``ok`` or the stage that failed (``fetch``, ``probe``,
``align``, ``extract``), and ``reason`` says why in words a person can act on. A failure never escapes these
functions, so one bad pair cannot stop the build.

Crash safety: each chunk attempt stages its shards and rows under its own ``.staging/{pair_id}/{attempt}/`` (a
worker that outlived its node and a retry never share files). The finalize task publishes a pair only when every
chunk is done: the shards are moved into place, the per-pair sample index next, and the record
``pairs/{pair_id}.json`` last: a pair counts as done only when its record exists and matches the pair's
fingerprint. A failing pair removes only the staging of its own attempts, and takes down published outputs only
when they came from other options (a different fingerprint): what another attempt of the same build published
stays.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import traceback
from dataclasses import asdict, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fmstf_data.align.offset import plan_frame_mapping
from fmstf_data.align.verify import NO_SDR_FRAME
from fmstf_data.errors import AlignmentError, ExtractError, FmstfError, SourceMismatchError
from fmstf_data.extract.options import (
    FRAMES_SCHEMA,
    STATUS_CODES,
    STATUS_NAMES,
    ExtractionStats,
    ExtractOptions,
    plan_chunks,
)
from fmstf_data.extract.pair_aligner import PairAligner
from fmstf_data.manifest.schema import PairSpec
from fmstf_data.sources import FetchOptions, fetch_source
from fmstf_data.store.storage import Storage, open_storage
from fmstf_data.video.probe import probe_video
from fmstf_data.video.record import VideoProbe
from fmstf_data.video.seek import FrameTimeline, timeline_problem
from pipelines.chunk_task import PairPlan, attempt_identity, chunk_staged
from pipelines.cluster import estimate_task_memory_bytes
from pipelines.figures import alignment_figure_png
from pipelines.options import BuildOptions, PairOptions
from pipelines.records import (
    SAMPLE_INDEX_SCHEMA,
    frames_path,
    parquet_bytes,
    record_path,
    samples_path,
    summarize_record,
)

logger = logging.getLogger(__name__)


def fps_of(probe: VideoProbe) -> float:
    """The frame rate to plan with: measured, else declared."""
    fps = probe.fps_from_content or probe.average_fps_from_header_float
    if not fps:
        raise AlignmentError(f"{probe.path}: no frame rate (neither declared nor measurable)")
    return float(fps)


def sample_tags(probe: VideoProbe) -> dict[str, Any]:
    """Colour tags and HDR10 metadata of one side, as they travel in every sample's JSON."""
    return {
        "bit_depth": probe.bit_depth,
        "codec": probe.codec_name,
        "color_trc": probe.color_trc_name,
        "color_primaries": probe.color_primaries_name,
        "colorspace": probe.colorspace_name,
        "color_range": probe.color_range_name,
        "mastering_display": None if probe.mastering_display is None else probe.mastering_display.to_dict(),
        "content_light_level": None if probe.content_light_level is None else probe.content_light_level.to_dict(),
    }


def _previous_record(storage: Storage, pair_id: str) -> dict[str, Any] | None:
    """The record an earlier build of this pair left, if it is readable."""
    try:
        previous = json.loads(storage.read_bytes(record_path(pair_id)))
    except (FmstfError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return previous if isinstance(previous, dict) else None


def _published_shards(previous: dict[str, Any] | None, pair_id: str) -> list[str]:
    """The shards an earlier build of this pair published, as its record names them (nothing is listed: the
    pair's own record is the only place this looks, so the cost does not grow with the build)."""
    pattern = re.compile(rf"^shards/[^/]+/{re.escape(pair_id)}-[0-9]{{6,}}\.tar$")
    shards = previous.get("shards") if previous is not None else None
    return [name for name in shards if isinstance(name, str) and pattern.match(name)] if isinstance(shards, list) \
        else []


class _Stage:
    """Tracks which stage is running, for the failure status."""

    def __init__(self, name: str = "fetch", seconds: dict[str, float] | None = None) -> None:
        self.name = name
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = dict(seconds or {})

    def enter(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[self.name] = round(self.seconds.get(self.name, 0.0) + now - self.started, 3)
        self.name, self.started = name, now


def frame_timeline(pts_values: list[int], probe: VideoProbe, role: str, pair_id: str) -> FrameTimeline | None:
    """The side's frame timeline, or None (logged) when its timestamps cannot name frames."""
    problem = timeline_problem(pts_values, probe.frame_count_from_content)
    if problem is not None:
        logger.warning("%s: %s side cannot be seeked by timestamp (%s); the pair runs as one chunk", pair_id,
                       role.upper(), problem)
        return None
    return FrameTimeline.from_pts(pts_values)


def frame_plane_bytes(probe: dict[str, Any]) -> int:
    """Bytes of one decoded frame's three 4:2:0 planes (2 bytes a code above 8 bits), from a probe's record."""
    width, height = int(probe["width"]), int(probe["height"])
    chroma = ((width + 1) // 2) * ((height + 1) // 2)
    return (width * height + 2 * chroma) * (2 if int(probe["bit_depth"]) > 8 else 1)


#: the per-pair options that decide an alignment (the others decide what is kept and how it is stored)
ALIGNMENT_OPTIONS = ("max_offset_seconds", "search_seconds", "min_pair_score")


def alignment_key(pair: PairSpec, pair_options: PairOptions) -> str:
    """Pairs with the same key (the segments of one source pair) share one alignment task: the sources' identities
    and the options the alignment depends on."""
    return json.dumps([source_identity(pair.hdr), source_identity(pair.sdr),
                       [getattr(pair_options, name) for name in ALIGNMENT_OPTIONS]], default=str)


def planned_summary(plan: PairPlan) -> dict[str, Any]:
    """What the driver learns of a planned pair: its chunk count and the memory a chunk task needs."""
    frame_bytes = [frame_plane_bytes(plan.record[role]["probe"]) for role in ("hdr", "sdr")]
    return {"pair_id": plan.pair.id, "status": "planned", "chunks": len(plan.chunks),
            "task_memory_bytes": estimate_task_memory_bytes(*frame_bytes)}


def plan_segment(source: PairPlan, pair: PairSpec, pair_options: PairOptions, fingerprint: str,
                 record: dict[str, Any]) -> PairPlan:
    """The plan of ``pair`` (a segment, or the whole video) from an aligned plan of the same sources: its options,
    its segment of the HDR timeline and its chunks.

    Raises:
        AlignmentError: the segment starts after the video's end.
    """
    hdr_fps = float(source.mapping.hdr_fps)
    start_frame = round((pair.start_seconds or 0.0) * hdr_fps)
    end_frame = None if pair.end_seconds is None else round(pair.end_seconds * hdr_fps)
    frame_count = int(record["hdr"]["probe"]["frame_count_from_content"])
    if start_frame >= frame_count:
        raise AlignmentError(f"the segment starts at HDR frame {start_frame} but the HDR version has {frame_count} "
                             f"frames")
    stride_frames = pair_options.stride_frames_at(hdr_fps)
    options = replace(source.extract_options, stride_frames=stride_frames,
                      min_match_score=pair_options.min_match_score, cut_score=pair_options.cut_score,
                      start_frame=start_frame, end_frame=end_frame, window_frames=pair_options.window_frames)
    chunk_frames = max(1, round(pair_options.chunk_seconds * hdr_fps)) if source.timelines is not None \
        else frame_count + 1
    chunks = plan_chunks(start_frame, end_frame, frame_count, chunk_frames, stride_frames)
    last = frame_count if end_frame is None else min(end_frame, frame_count)
    logger.info("%s: %d chunk(s) of up to %d HDR frames", pair.id, len(chunks), chunk_frames)
    return replace(source, pair=pair, pair_options=pair_options, fingerprint=fingerprint, extract_options=options,
                   chunks=chunks, middle_frame=(start_frame + last) // 2, record=record)


def replan_pair(source: PairPlan, pair: PairSpec, build: BuildOptions, pair_options: PairOptions,
                fingerprint: str) -> tuple[dict[str, Any], PairPlan | None]:
    """Plan ``pair`` on the alignment of ``source``, another pair of the same sources (:func:`alignment_key`):
    nothing is fetched, hashed, probed or searched again; never raises for a bad pair (as :func:`align_pair`)."""
    storage = open_storage(build.out)
    record: dict[str, Any] = {"pair_id": pair.id, "split": pair.split, "fingerprint": fingerprint,
                              "status": "running", "reason": "", "samples": 0, "shards": [], "bytes": 0,
                              "attempt": attempt_identity(), "hdr": source.record["hdr"],
                              "sdr": source.record["sdr"], "alignment": source.record["alignment"],
                              "alignment_pass": {**source.record.get("alignment_pass", {}),
                                                 "shared_from": source.pair.id}}
    stage = _Stage("align")
    try:
        plan = plan_segment(source, pair, pair_options, fingerprint, record)
        stage.enter("extract")
        record["seconds"] = stage.seconds
        return planned_summary(plan), plan
    except FmstfError as error:
        _fail(record, stage, str(error), storage, [])
    return summarize_record(record), None


def align_pair(pair: PairSpec, build: BuildOptions, pair_options: PairOptions, fingerprint: str
               ) -> tuple[dict[str, Any], PairPlan | None]:
    """Fetch, probe and align one pair, and plan its chunks; never raises for a bad pair.

    Returns:
        (summary, plan): ``summary["status"]`` is ``"planned"`` with the plan (``summary["chunks"]`` chunks), or
        the failed stage, with the pair's failure record written and no plan.
    """
    storage = open_storage(build.out)
    record: dict[str, Any] = {"pair_id": pair.id, "split": pair.split, "fingerprint": fingerprint,
                              "status": "running", "reason": "", "samples": 0, "shards": [], "bytes": 0}
    stage = _Stage()
    record["attempt"] = attempt_identity()
    try:
        fetch_options = FetchOptions(**build.fetch)
        sides = {}
        for role, spec in (("hdr", pair.hdr), ("sdr", pair.sdr)):
            fetched = fetch_source(spec, build.cache_dir, options=fetch_options)
            sides[role] = fetched
            record[role] = {"source": spec.location, "kind": spec.kind, "path": str(fetched.path),
                            "sha256": fetched.sha256, "size_bytes": fetched.size_bytes}

        stage.enter("probe")
        probes, timelines = {}, {}
        for role, fetched in sides.items():
            pts_values: list[int] = []
            probe = probe_video(fetched.path, timestamps=pts_values)
            probes[role] = probe
            record[role]["probe"] = probe.to_dict()
            problem = probe.problem_as(role)
            if problem is not None:
                raise SourceMismatchError(f"{role.upper()} side {spec_name(pair, role)}: {problem}")
            timelines[role] = frame_timeline(pts_values, probe, role, pair.id)

        stage.enter("align")
        mapping = plan_frame_mapping(fps_of(probes["hdr"]), fps_of(probes["sdr"]))
        hdr_fps, sdr_fps = float(mapping.hdr_fps), float(mapping.sdr_fps)
        # the alignment's options; the segment, stride and per-frame thresholds are set by plan_segment
        options = ExtractOptions(
            min_pair_score=pair_options.min_pair_score, decoder_threads=build.cpus_per_task,
        ).for_rates(hdr_fps, sdr_fps, max_offset_seconds=pair_options.max_offset_seconds,
                    search_seconds=pair_options.search_seconds)
        sample_metadata = {"hdr": sample_tags(probes["hdr"]), "sdr": sample_tags(probes["sdr"])}
        fill_codes = (0, 128) if probes["sdr"].color_range_name == "pc" else (16, 128)
        aligner = PairAligner(sides["hdr"].path, sides["sdr"].path, pair_id=pair.id, split=pair.split,
                              mapping=mapping, options=options, sample_metadata=sample_metadata,
                              sdr_fill_codes=fill_codes)
        alignment = aligner.align()
        record["alignment"] = alignment.to_dict()
        record["alignment_pass"] = {"hdr_frames_decoded": aligner.stats.hdr_frames_decoded,
                                    "sdr_frames_decoded": aligner.stats.sdr_frames_decoded,
                                    "decode_seconds": round(aligner.stats.decode_seconds, 3),
                                    "align_seconds": round(aligner.stats.align_seconds, 3)}
        if alignment.refusal is not None:
            _alignment_plot(storage, build, pair.id, record)
            raise AlignmentError(alignment.refusal)
        seekable = timelines["hdr"] is not None and timelines["sdr"] is not None
        stage.enter("extract")
        record["seconds"] = stage.seconds
        source = PairPlan(pair=pair, pair_options=pair_options, fingerprint=fingerprint,
                          paths=(str(sides["hdr"].path), str(sides["sdr"].path)),
                          sizes_bytes=(sides["hdr"].size_bytes, sides["sdr"].size_bytes), mapping=mapping,
                          alignment=alignment, extract_options=options, sample_metadata=sample_metadata,
                          sdr_fill_codes=fill_codes,
                          timelines=(timelines["hdr"], timelines["sdr"]) if seekable else None, chunks=[],
                          middle_frame=0, record=record)
        plan = plan_segment(source, pair, pair_options, fingerprint, record)
        return planned_summary(plan), plan
    except FmstfError as error:
        _fail(record, stage, str(error), storage, [])
    except OSError as error:  # the environment (disk full, permission, a lost mount), not a bug: say so
        _fail(record, stage, f"storage or file error: {error}", storage, [])
    except Exception as error:  # noqa: BLE001 - a bug in one pair must not stop the build; it is reported
        logger.error("%s: internal error in stage %s\n%s", pair.id, stage.name, traceback.format_exc())
        _fail(record, stage, f"internal error ({type(error).__name__}: {error}); please report it with the "
                             f"build report", storage, [])
    return summarize_record(record), None


def merge_extraction(parts: list[dict[str, Any]], frames: pa.Table, hdr_step: int) -> dict[str, Any]:
    """One extraction summary (the keys of :meth:`~fmstf_data.extract.options.ExtractionStats.to_dict`) from the
    chunks' summaries (in chunk order) and the pair's per-frame table: counts and timings summed, reasons merged,
    cut and drift lists joined, score summary and verified count from the frames."""
    merged: dict[str, Any] = {}
    for name in ("hdr_frames_decoded", "sdr_frames_decoded", "hdr_frames_redecoded", "sdr_frames_redecoded",
                 "decided_frames", "paired_frames", "low_score_frames", "transition_frames", "kept_centres",
                 "damaged_frames"):
        merged[name] = sum(part.get(name, 0) for part in parts)
    for name in ("decode_seconds", "redecode_seconds", "align_seconds", "search_seconds"):
        merged[name] = round(sum(part.get(name, 0.0) for part in parts), 3)
    for name in ("unverified", "rejected"):
        counts: dict[str, int] = {}
        for part in parts:
            for reason, count in part.get(name, {}).items():
                counts[reason] = counts.get(reason, 0) + count
        merged[name] = dict(sorted(counts.items()))
    merged["cut_hdr_frames"] = [frame for part in parts for frame in part.get("cut_hdr_frames", [])]
    merged["offset_changes"] = [change for part in parts for change in part.get("offset_changes", [])]
    stats = ExtractionStats(hdr_step=hdr_step)
    columns = frames.to_pydict()
    stats.sdr_partners = [-1 if partner is None else partner for partner in columns["sdr_frame"]]
    stats.scores = columns["match_score"]
    merged["score_summary"] = stats.score_summary()
    merged["verified_frames"] = sum(1 for status in columns["status"] if status.startswith("verified"))
    decode = merged["decode_seconds"] - merged["redecode_seconds"]
    merged["alignment_cost_share"] = round((merged["align_seconds"] + merged["redecode_seconds"]) / decode, 4) \
        if decode > 0 else None
    merged["hdr_step"] = hdr_step
    return merged


def with_undecided_tail(frames: pa.Table, frame_count: int, hdr_step: int) -> pa.Table:
    """``frames`` with a row for each HDR tick after the last one decided, up to the video's ``frame_count``: the
    pass stops decoding once the SDR version has ended (no later frame can have a partner), and those frames are
    recorded as having none."""
    if frames.num_rows == 0:
        return frames
    last = int(frames.column("hdr_frame")[-1].as_py())
    tail = list(range(last + hdr_step, frame_count, hdr_step))
    if not tail:
        return frames
    rows = pa.Table.from_pydict({
        "hdr_frame": tail, "sdr_frame": [None] * len(tail), "offset_frames": [None] * len(tail),
        "match_score": [0.0] * len(tail), "detail_score": [0.0] * len(tail),
        "status": [STATUS_NAMES[STATUS_CODES[NO_SDR_FRAME]]] * len(tail), "shot_start": [False] * len(tail),
        "kept_centre": [False] * len(tail)}, schema=FRAMES_SCHEMA)
    return pa.concat_tables([frames, rows])


def finalize_pair(plan: PairPlan, chunks: list[dict[str, Any]], build: BuildOptions) -> dict[str, Any]:
    """Publish one pair from its chunks' staged outputs, or fail it; never raises for a bad pair. Returns the
    summary of the record it wrote (:func:`pipelines.records.summarize_record`)."""
    storage = open_storage(build.out)
    pair = plan.pair
    record = dict(plan.record)
    stage = _Stage("extract", record.get("seconds"))
    chunks = sorted(chunks, key=lambda chunk: chunk["index"])
    record["chunks"] = [{key: chunk.get(key) for key in ("index", "span", "status", "node", "host", "attempt",
                                                          "seconds", "samples", "hdr_frames_decoded",
                                                          "sdr_frames_decoded", "pipeline",
                                                          "worker_peak_rss_bytes")} for chunk in chunks]
    stagings = [chunk["staging"] for chunk in chunks if chunk.get("staging")]
    try:
        failed = [chunk for chunk in chunks if chunk["status"] != "ok"]
        if failed:
            first = failed[0]
            span = "" if first["span"][0] is None else f" (HDR frames from {first['span'][0]})"
            raise ExtractError(f"chunk {first['index']}{span} failed: {first['reason']}" +
                               (f" ({len(failed) - 1} more chunk(s) failed)" if len(failed) > 1 else ""))
        frames = pa.concat_tables([pq.read_table(pa.BufferReader(storage.read_bytes(
            chunk_staged(chunk["staging"], "frames.parquet")))) for chunk in chunks]).cast(FRAMES_SCHEMA)
        if chunks[-1]["span"][1] is None:  # to the end of the video: every HDR frame gets its row
            frames = with_undecided_tail(frames, int(record["hdr"]["probe"]["frame_count_from_content"]),
                                         plan.mapping.hdr_step)
        rows = pa.concat_tables([pq.read_table(pa.BufferReader(storage.read_bytes(
            chunk_staged(chunk["staging"], "samples.parquet")))) for chunk in chunks]).cast(SAMPLE_INDEX_SCHEMA)
        extraction = merge_extraction([chunk.get("extraction", {}) for chunk in chunks], frames,
                                      plan.mapping.hdr_step)
        record["extraction"] = extraction
        # shot numbers count the cuts before a centre over the whole video: only known once all chunks are in
        cuts = np.asarray(extraction["cut_hdr_frames"], dtype=np.int64)
        centres = rows.column("centre_frame").to_numpy().astype(np.int64)
        shots = pa.array(np.searchsorted(cuts, centres, side="right").astype(np.int32), pa.int32())
        rows = rows.set_column(rows.schema.get_field_index("shot"), "shot", shots)
        storage.write_bytes_atomic(frames_path(pair.id), parquet_bytes(frames))
        record["frames"] = frames_path(pair.id)
        _alignment_plot(storage, build, pair.id, record, frames)
        if rows.num_rows == 0:
            rejected = ", ".join(f"{reason}: {count}" for reason, count in extraction["rejected"].items())
            raise AlignmentError(f"no usable triplet in {extraction['paired_frames']} paired frames, "
                                 f"{extraction['verified_frames']} verified (candidate centres refused: "
                                 f"{rejected or 'none offered'})")

        stage.enter("write")
        shard_files = [shard for chunk in chunks for shard in chunk["shard_files"]]
        names = {shard["name"] for shard in shard_files}
        for stale in set(_published_shards(_previous_record(storage, pair.id), pair.id)) - names:
            storage.delete(stale)
        for chunk in chunks:
            for shard in chunk["shard_files"]:
                storage.move(chunk_staged(chunk["staging"], shard["name"]), shard["name"])
        storage.write_bytes_atomic(samples_path(pair.id), parquet_bytes(rows))
        previews = [chunk for chunk in chunks if chunk.get("preview_distance") is not None]
        if previews:
            best = min(previews, key=lambda chunk: chunk["preview_distance"])
            storage.move(chunk_staged(best["staging"], "preview.png"), f"report/previews/{pair.id}.png")
        record["shard_files"] = shard_files
        record.update(status="ok", samples=rows.num_rows, shards=[shard["name"] for shard in shard_files],
                      bytes=sum(shard["size_bytes"] for shard in shard_files))
        stage.enter("done")
        record["seconds"] = stage.seconds
        _drop_staging(storage, pair.id, stagings)
        storage.write_bytes_atomic(record_path(pair.id), json.dumps(record, indent=1, sort_keys=True).encode())
        logger.info("%s: ok, %d samples in %d shards from %d chunk(s)", pair.id, rows.num_rows, len(shard_files),
                    len(chunks))
    except FmstfError as error:
        _fail(record, stage, str(error), storage, stagings)
    except OSError as error:
        _fail(record, stage, f"storage or file error: {error}", storage, stagings)
    except Exception as error:  # noqa: BLE001 - a bug in one pair must not stop the build; it is reported
        logger.error("%s: internal error in stage %s\n%s", pair.id, stage.name, traceback.format_exc())
        _fail(record, stage, f"internal error ({type(error).__name__}: {error}); please report it with the "
                             f"build report", storage, stagings)
    return summarize_record(record)


def _alignment_plot(storage: Storage, build: BuildOptions, pair_id: str, record: dict[str, Any],
                    frames: pa.Table | None = None) -> None:
    """``report/alignment/{pair_id}.png``: score against offset and per-frame scores (with previews only; a
    missing matplotlib is logged, never fatal)."""
    if not build.previews:
        return
    try:
        png = alignment_figure_png(record.get("alignment", {}), record.get("extraction"), frames, title=pair_id)
    except FmstfError as error:
        logger.warning("%s: no alignment plot: %s", pair_id, error)
        return
    storage.write_bytes_atomic(f"report/alignment/{pair_id}.png", png)
    record.setdefault("alignment", {})["plot"] = f"report/alignment/{pair_id}.png"


def spec_name(pair: PairSpec, role: str) -> str:
    spec = pair.hdr if role == "hdr" else pair.sdr
    return str(spec.location)


def _drop_staging(storage: Storage, pair_id: str, stagings: list[str]) -> None:
    """Remove these attempts' staging, and the pair's staging folder when no other attempt has files there."""
    for staging in stagings:
        storage.delete(staging)
    parent = f".staging/{pair_id}"
    if not storage.list_files(parent):
        storage.delete(parent)


def _fail(record: dict[str, Any], stage: _Stage, reason: str, storage: Storage, stagings: list[str]) -> None:
    pair_id = record["pair_id"]
    record.update(status=stage.name if stage.name != "write" else "extract", reason=reason)
    stage.enter("failed")
    record["seconds"] = stage.seconds
    logger.warning("%s: failed at %s: %s", pair_id, record["status"], reason)
    _drop_staging(storage, pair_id, stagings)
    # what an earlier build of this pair published from other options no longer holds: take it down with its
    # record; what another attempt of this very build published (same fingerprint, ok) is left alone
    previous = _previous_record(storage, pair_id)
    same_options = previous is not None and previous.get("fingerprint") == record["fingerprint"]
    if same_options and previous.get("status") == "ok":
        logger.warning("%s: another attempt published this pair with the same options; kept", pair_id)
        return
    for name in (*_published_shards(previous, pair_id), samples_path(pair_id), record_path(pair_id)):
        storage.delete(name)


def source_identity(spec: Any) -> list[Any]:
    """What identifies one side's source for resume: kind, location, format request, and for a local file its size
    and modification time (so a file replaced in place is rebuilt without ``--force``)."""
    identity: list[Any] = [spec.kind, str(spec.location), None if spec.format is None else repr(spec.format)]
    if spec.kind == "local":
        try:
            status = os.stat(spec.location)
            identity += [status.st_size, status.st_mtime_ns]
        except OSError:
            identity.append("missing")
    return identity


def options_payload(pair: PairSpec, pair_options: PairOptions, build: BuildOptions) -> dict[str, Any]:
    """What a completed pair depends on (its fingerprint payload)."""
    return {
        "pair": {"id": pair.id, "split": pair.split, "hdr": source_identity(pair.hdr),
                 "sdr": source_identity(pair.sdr), "start_seconds": pair.start_seconds,
                 "end_seconds": pair.end_seconds},
        "options": asdict(pair_options),
        "max_shard_bytes": build.max_shard_bytes,
        # 2: stride windows, shot numbers in the index only, shards per chunk; 3: plane CRCs; 4: banded planes
        # (sample format version 3), byte offsets in the index, window_frames, locally damaged frames refused
        "sample_format": 4,
    }
