"""What a pair leaves behind: its files' names, its record, its summary for the driver, and the index schemas.

Per pair, under the build's location (contract 6):

- ``pairs/{pair_id}.json``: the full record (probe of both sides, alignment with its offset-search curves,
  extraction counts, timings, shards); written last, it marks the pair complete.
- ``pairs/{pair_id}.samples.parquet``: the pair's rows of ``index/samples.parquet`` (:data:`SAMPLE_INDEX_SCHEMA`).
- ``pairs/{pair_id}.frames.parquet``: one row per HDR frame (:data:`fmstf_data.extract.FRAMES_SCHEMA`).

The driver never holds full records: tasks return :func:`summarize_record`'s summary, whose size does not grow
with the video's length or the search window, and ``report/report.json`` lists those summaries.
"""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

#: probe fields a summary keeps (the whole probe stays in the pair's record file)
PROBE_SUMMARY_FIELDS = ("verdict", "verdict_reasons", "codec_name", "pix_fmt", "bit_depth", "width", "height",
                        "fps_from_content", "frame_count_from_content", "duration_seconds_from_content",
                        "color_trc_name", "color_primaries_name", "colorspace_name", "color_range_name",
                        "looks_truncated", "notes")

SAMPLE_INDEX_SCHEMA = pa.schema([
    ("key", pa.string()),
    ("pair_id", pa.string()),
    ("split", pa.string()),
    ("shard", pa.string()),
    ("hdr_frames", pa.list_(pa.int32())),
    ("sdr_frames", pa.list_(pa.int32())),
    ("shot", pa.int32()),
    ("centre_frame", pa.int32()),
    ("centre_pts_seconds", pa.float64()),
    ("match_score_min", pa.float64()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("sample_bytes", pa.int64()),
    # where the sample lies in its shard (ShardWriter's StoredSample.index_columns): the loader reads it without
    # scanning tar headers
    ("offset_bytes", pa.int64()),
    ("size_bytes", pa.int64()),
    ("json_bytes", pa.int64()),
    ("json_crc32", pa.int64()),
])


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


def record_path(pair_id: str) -> str:
    return f"pairs/{pair_id}.json"


def samples_path(pair_id: str) -> str:
    return f"pairs/{pair_id}.samples.parquet"


def frames_path(pair_id: str) -> str:
    return f"pairs/{pair_id}.frames.parquet"


def parquet_bytes(table: pa.Table) -> bytes:
    """Deterministic parquet bytes of ``table`` (zstd, no pandas metadata)."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", use_dictionary=True, write_statistics=True)
    return sink.getvalue()


def summarize_record(record: dict[str, Any]) -> dict[str, Any]:
    """The driver's copy of a pair's record: the same keys, without the offset-search curves (``alignment``'s
    ``candidate_*`` lists, replaced by their length), without the per-shard sizes and checksums, the per-chunk list
    replaced by ``chunk_count`` and ``chunk_nodes``, and with each side's probe cut to
    :data:`PROBE_SUMMARY_FIELDS`. Everything :func:`pair_row` and the report's summary read is kept."""
    summary = {key: value for key, value in record.items() if key not in ("shard_files", "chunks")}
    if isinstance(record.get("chunks"), list):  # one entry per chunk: the count and the nodes that ran them
        summary["chunk_count"] = len(record["chunks"])
        summary["chunk_nodes"] = len({chunk.get("node") for chunk in record["chunks"]})
    alignment = record.get("alignment")
    if isinstance(alignment, dict):
        summary["alignment"] = {key: value for key, value in alignment.items() if not key.startswith("candidate_")}
        if "candidate_offsets" in alignment:
            summary["alignment"]["candidates"] = len(alignment["candidate_offsets"] or [])
    for role in ("hdr", "sdr"):
        side = record.get(role)
        if isinstance(side, dict) and isinstance(side.get("probe"), dict):
            summary[role] = {**side, "probe": {key: side["probe"][key] for key in PROBE_SUMMARY_FIELDS
                                               if key in side["probe"]}}
    return summary


def pair_row(record: dict[str, Any]) -> dict[str, Any]:
    """The ``index/pairs.parquet`` row of a pair's record (or of its summary)."""
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
        "transition_frames": extraction.get("transition_frames"),
        "resync_hdr_frames": None if "offset_changes" not in extraction
        else [frame for frame, _ in extraction["offset_changes"]],
        "resync_offsets": None if "offset_changes" not in extraction
        else [offset for _, offset in extraction["offset_changes"]],
    }
