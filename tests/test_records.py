"""The driver's side of a build: summaries instead of full records, a sample index streamed pair by pair."""

from __future__ import annotations

import random

import pyarrow as pa
import pyarrow.parquet as pq

from fmstf_data.store.storage import open_storage
from pipelines.build import write_index
from pipelines.records import (
    PAIR_INDEX_SCHEMA,
    SAMPLE_INDEX_SCHEMA,
    pair_row,
    parquet_bytes,
    samples_path,
    summarize_record,
)


def sample_rows(pair_id: str, split: str, centres: list[int]) -> list[dict]:
    return [{"key": f"{pair_id}_{c:06d}", "pair_id": pair_id, "split": split, "shard": f"shards/{split}/{pair_id}-0.tar",
             "hdr_frames": [c - 1, c, c + 1], "sdr_frames": [c - 1, c, c + 1], "shot": 0, "centre_frame": c,
             "centre_pts_seconds": c / 24, "match_score_min": 0.9, "width": 64, "height": 36, "sample_bytes": 100,
             "offset_bytes": 1024 * c, "size_bytes": 900, "json_bytes": 300, "json_crc32": c}
            for c in centres]


def test_write_index_streams_pair_by_pair_in_split_pair_centre_order(tmp_path):
    storage = open_storage(tmp_path / "out")
    generator = random.Random(7)
    records, expected = [], []
    for number in range(40):
        pair_id, split = f"p{generator.randrange(10**6):06d}", generator.choice(["train", "test", "val"])
        status = "ok" if number % 5 else "extract"
        centres = generator.sample(range(1, 5000), generator.randrange(1, 30))
        rows = sample_rows(pair_id, split, centres)
        storage.write_bytes_atomic(samples_path(pair_id),
                                   parquet_bytes(pa.Table.from_pylist(rows, schema=SAMPLE_INDEX_SCHEMA)))
        records.append({"pair_id": pair_id, "split": split, "status": status})
        if status == "ok":
            expected += rows
    expected.sort(key=lambda row: (row["split"], row["pair_id"], row["centre_frame"]))

    count = write_index(storage, records)

    samples = pq.ParquetFile(tmp_path / "out" / "index" / "samples.parquet")
    assert count == len(expected) == samples.metadata.num_rows
    assert samples.read().to_pylist() == expected  # failed pairs left out, order by split, pair, centre
    assert samples.metadata.num_row_groups == sum(record["status"] == "ok" for record in records)  # streamed
    pairs = pq.read_table(tmp_path / "out" / "index" / "pairs.parquet")
    assert pairs.column("pair_id").to_pylist() == sorted(record["pair_id"] for record in records)
    assert not list((tmp_path / "out" / "index").glob("*.partial"))


def test_write_index_with_no_pair_ok_writes_empty_tables(tmp_path):
    storage = open_storage(tmp_path / "out")
    assert write_index(storage, [{"pair_id": "a", "split": "train", "status": "fetch"}]) == 0
    table = pq.read_table(tmp_path / "out" / "index" / "samples.parquet")
    assert table.num_rows == 0 and table.schema.equals(SAMPLE_INDEX_SCHEMA)


def full_record(search_offsets: int) -> dict:
    probe = {"verdict": "HDR10", "width": 3840, "height": 2160, "fps_from_content": 24.0, "codec_name": "hevc",
             "streams": [{"index": i, "side_data": "x" * 200} for i in range(8)],
             "mastering_display": {"red_xy": [0.708, 0.292]}}
    return {
        "pair_id": "a", "split": "train", "status": "ok", "reason": "", "samples": 3, "shards": ["s.tar"], "bytes": 9,
        "hdr": {"source": "a.mp4", "sha256": "0" * 64, "probe": probe},
        "sdr": {"source": "b.mp4", "sha256": "1" * 64, "probe": {**probe, "verdict": "SDR"}},
        "alignment": {"offset_frames": 3, "score": 0.9, "geometry": "same", "geometry_details": {"hdr_rect": None},
                      "candidate_offsets": list(range(-search_offsets, search_offsets + 1)),
                      "candidate_scores": [0.5] * (2 * search_offsets + 1),
                      "candidate_detail_scores": [0.4] * (2 * search_offsets + 1)},
        "extraction": {"paired_frames": 10, "score_summary": {"min": 0.8, "median": 0.9}, "cut_hdr_frames": [4]},
    }


def test_summaries_do_not_grow_with_the_search_window_and_keep_the_index_row():
    small, large = full_record(10), full_record(1000)
    assert abs(len(str(summarize_record(small))) - len(str(summarize_record(large)))) <= 2  # "candidates": 21 vs 2001
    summary = summarize_record(large)
    assert summary["alignment"]["candidates"] == 2001
    assert not any(key.startswith("candidate_") for key in summary["alignment"])
    assert "streams" not in summary["hdr"]["probe"] and summary["hdr"]["probe"]["verdict"] == "HDR10"
    assert pair_row(summary) == pair_row(large)  # the index row reads nothing the summary drops
    assert set(pair_row(summary)) == set(PAIR_INDEX_SCHEMA.names)
    assert large["alignment"]["candidate_offsets"][0] == -1000  # the full record itself is left alone
