"""The work for one pair, run as a Ray task: fetch -> probe -> align -> extract + write -> record.

Every pair ends with a record (contract 6): ``status`` is ``ok`` or the stage that failed (``fetch``, ``probe``,
``align``, ``extract``), and ``reason`` says why in words a person can act on. A failure never escapes this
function, so one bad pair cannot stop the build.

Crash safety: shards are staged under ``.staging/{pair_id}/{attempt}/`` (each attempt its own: a worker that
outlived its node and a retry never share files) and moved into place only when the pair is complete; the per-pair
sample index is moved into place next, and the record ``pairs/{pair_id}.json`` is written last: a pair counts as
done only when its record exists and matches the pair's fingerprint. A failing attempt removes only its own staging,
and takes down published outputs only when they came from other options (a different fingerprint): what another
attempt of the same build published stays.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
import socket
import time
import traceback
import uuid
from dataclasses import asdict
from typing import Any

import pyarrow as pa

from fmstf_data.align.offset import plan_frame_mapping
from fmstf_data.errors import AlignmentError, FmstfError, SourceMismatchError
from fmstf_data.extract.lockstep import PairExtractor
from fmstf_data.extract.options import ExtractOptions
from fmstf_data.manifest.schema import PairSpec
from fmstf_data.sources import FetchOptions, fetch_source
from fmstf_data.store.samples import encode_sample
from fmstf_data.store.shards import ShardWriter
from fmstf_data.store.storage import Storage, open_storage
from fmstf_data.video.probe import probe_video
from fmstf_data.video.record import VideoProbe
from pipelines.figures import alignment_figure_png, preview_png
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
    pattern = re.compile(rf"^shards/[^/]+/{re.escape(pair_id)}-[0-9]{{6}}\.tar$")
    shards = previous.get("shards") if previous is not None else None
    return [name for name in shards if isinstance(name, str) and pattern.match(name)] if isinstance(shards, list) \
        else []


class _Stage:
    """Tracks which stage is running, for the failure status."""

    def __init__(self) -> None:
        self.name = "fetch"
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def enter(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[self.name] = round(now - self.started, 3)
        self.name, self.started = name, now


def process_pair(pair: PairSpec, build: BuildOptions, pair_options: PairOptions, fingerprint: str) -> dict[str, Any]:
    """Run one pair end to end; never raises for a bad pair. Writes its record (``pairs/{pair_id}.json`` when it
    succeeds) and returns the record's summary (:func:`pipelines.records.summarize_record`, JSON-ready)."""
    storage = open_storage(build.out)
    record: dict[str, Any] = {"pair_id": pair.id, "split": pair.split, "fingerprint": fingerprint,
                              "status": "running", "reason": "", "samples": 0, "shards": [], "bytes": 0}
    stage = _Stage()
    writer: ShardWriter | None = None
    attempt = attempt_identity()
    record["attempt"] = attempt
    staging = staging_dir(pair.id, attempt["id"])
    try:
        fetch_options = FetchOptions(**build.fetch)
        sides = {}
        for role, spec in (("hdr", pair.hdr), ("sdr", pair.sdr)):
            fetched = fetch_source(spec, build.cache_dir, options=fetch_options)
            sides[role] = fetched
            record[role] = {"source": spec.location, "kind": spec.kind, "path": str(fetched.path),
                            "sha256": fetched.sha256, "size_bytes": fetched.size_bytes}

        stage.enter("probe")
        probes = {}
        for role, fetched in sides.items():
            probe = probe_video(fetched.path)
            probes[role] = probe
            record[role]["probe"] = probe.to_dict()
            problem = probe.problem_as(role)
            if problem is not None:
                raise SourceMismatchError(f"{role.upper()} side {spec_name(pair, role)}: {problem}")

        stage.enter("align")
        mapping = plan_frame_mapping(fps_of(probes["hdr"]), fps_of(probes["sdr"]))
        hdr_fps, sdr_fps = float(mapping.hdr_fps), float(mapping.sdr_fps)
        start_frame = round((pair.start_seconds or 0.0) * hdr_fps)
        end_frame = None if pair.end_seconds is None else round(pair.end_seconds * hdr_fps)
        extractor = PairExtractor(
            sides["hdr"].path, sides["sdr"].path, pair_id=pair.id, split=pair.split, mapping=mapping,
            options=ExtractOptions(
                stride_frames=pair_options.stride_frames, min_match_score=pair_options.min_match_score,
                cut_score=pair_options.cut_score, start_frame=start_frame, end_frame=end_frame,
                min_pair_score=pair_options.min_pair_score, decoder_threads=build.cpus_per_task,
            ).for_rates(hdr_fps, sdr_fps, max_offset_seconds=pair_options.max_offset_seconds,
                        search_seconds=pair_options.search_seconds),
            sample_metadata={"hdr": sample_tags(probes["hdr"]), "sdr": sample_tags(probes["sdr"])},
            sdr_fill_codes=(0, 128) if probes["sdr"].color_range_name == "pc" else (16, 128))
        alignment = extractor.align()
        record["alignment"] = alignment.to_dict()
        if alignment.refusal is not None:
            _alignment_plot(storage, build, pair.id, record)
            raise AlignmentError(alignment.refusal)

        stage.enter("extract")
        writer = ShardWriter(storage, f"shards/{pair.split}/{pair.id}", staging,
                             max_shard_bytes=build.max_shard_bytes)
        rows: list[dict[str, Any]] = []
        middle_frame = probes["hdr"].frame_count_from_content // 2
        preview_sample, preview_distance = None, None
        for sample in extractor.samples():
            members = encode_sample(sample, zstd_level=pair_options.zstd_level, threads=build.cpus_per_task)
            shard = writer.write(sample.key, members)
            meta = sample.metadata
            rows.append({
                "key": sample.key, "pair_id": pair.id, "split": pair.split, "shard": shard,
                "hdr_frames": meta["hdr_frames"], "sdr_frames": meta["sdr_frames"], "shot": meta["shot"],
                "centre_frame": meta["centre_frame"], "centre_pts_seconds": meta["hdr_pts_seconds"][1],
                "match_score_min": min(meta["match_scores"]), "width": sample.width, "height": sample.height,
                "sample_bytes": sum(len(data) for data in members.values()),
            })
            distance = abs(meta["centre_frame"] - middle_frame)
            if build.previews and (preview_distance is None or distance < preview_distance):
                preview_sample, preview_distance = sample, distance
        stats = extractor.stats
        record["extraction"] = stats.to_dict()
        frames = stats.frames_table()
        storage.write_bytes_atomic(frames_path(pair.id), parquet_bytes(frames))
        record["frames"] = frames_path(pair.id)
        _alignment_plot(storage, build, pair.id, record, frames)
        if not rows:
            rejected = ", ".join(f"{reason}: {count}" for reason, count in sorted(stats.rejected.items()))
            raise AlignmentError(f"no usable triplet in {stats.paired_frames} paired frames, "
                                 f"{stats.verified_frames} verified (candidate centres refused: "
                                 f"{rejected or 'none offered'})")

        stage.enter("write")
        shards = writer.close()
        previous = _published_shards(_previous_record(storage, pair.id), pair.id)
        for stale in set(previous) - {shard.name for shard in shards}:
            storage.delete(stale)
        writer.publish()
        storage.write_bytes_atomic(samples_path(pair.id),
                                   parquet_bytes(pa.Table.from_pylist(rows, schema=SAMPLE_INDEX_SCHEMA)))
        if preview_sample is not None:
            storage.write_bytes_atomic(f"report/previews/{pair.id}.png", preview_png(preview_sample))
        record["shard_files"] = [{"name": shard.name, "size_bytes": shard.size_bytes, "sha256": shard.sha256}
                                 for shard in shards]
        record.update(status="ok", samples=len(rows), shards=[shard.name for shard in shards],
                      bytes=sum(shard.size_bytes for shard in shards))
        stage.enter("done")
        record["seconds"] = stage.seconds
        _drop_staging(storage, staging)
        storage.write_bytes_atomic(record_path(pair.id), json.dumps(record, indent=1, sort_keys=True).encode())
        logger.info("%s: ok, %d samples in %d shards", pair.id, len(rows), len(shards))
    except FmstfError as error:
        _fail(record, stage, str(error), writer, storage, staging)
    except OSError as error:  # the environment (disk full, permission, a lost mount), not a bug: say so
        _fail(record, stage, f"storage or file error: {error}", writer, storage, staging)
    except Exception as error:  # noqa: BLE001 - a bug in one pair must not stop the build; it is reported
        logger.error("%s: internal error in stage %s\n%s", pair.id, stage.name, traceback.format_exc())
        _fail(record, stage, f"internal error ({type(error).__name__}: {error}); please report it with the "
                             f"build report", writer, storage, staging)
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


def _drop_staging(storage: Storage, staging: str) -> None:
    """Remove this attempt's staging, and the pair's staging folder when no other attempt has files there."""
    storage.delete(staging)
    parent = posixpath.dirname(staging)
    if not storage.list_files(parent):
        storage.delete(parent)


def _fail(record: dict[str, Any], stage: _Stage, reason: str, writer: ShardWriter | None, storage: Storage,
          staging: str) -> None:
    pair_id = record["pair_id"]
    record.update(status=stage.name if stage.name != "write" else "extract", reason=reason)
    stage.enter("failed")
    record["seconds"] = stage.seconds
    logger.warning("%s: failed at %s: %s", pair_id, record["status"], reason)
    if writer is not None:
        writer.abort()
    _drop_staging(storage, staging)
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
        "sample_format": 1,
    }
