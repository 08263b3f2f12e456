"""Helpers for the loader tests: small build directories made of real shards (ShardWriter + encode_sample) and a
samples index, with known content."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fmstf_data.store.samples import Sample, encode_sample, sample_key
from fmstf_data.store.shards import ShardWriter
from fmstf_data.store.storage import open_storage

HDR_TAGS = {"bit_depth": 10, "colorspace": "bt2020nc", "color_range": "tv", "color_trc": "smpte2084",
            "color_primaries": "bt2020"}
SDR_TAGS = {"bit_depth": 8, "colorspace": "bt709", "color_range": "tv", "color_trc": "bt709",
            "color_primaries": "bt709"}


def smooth_planes(rng: np.random.Generator, height: int, width: int, low: int, high: int, dtype,
                  frames: int = 3) -> np.ndarray:
    """Random but smooth code planes [frames, height, width] in [low, high] (a coarse random grid, upsampled)."""
    coarse = rng.uniform(low, high, (frames, height // 8 + 2, width // 8 + 2))
    rows = np.linspace(0, coarse.shape[1] - 1.001, height)
    cols = np.linspace(0, coarse.shape[2] - 1.001, width)
    r0, c0 = rows.astype(int), cols.astype(int)
    fr, fc = (rows - r0)[:, None], (cols - c0)[None, :]
    top = coarse[:, r0][:, :, c0] * (1 - fc) + coarse[:, r0][:, :, c0 + 1] * fc
    bottom = coarse[:, r0 + 1][:, :, c0] * (1 - fc) + coarse[:, r0 + 1][:, :, c0 + 1] * fc
    planes = top * (1 - fr) + bottom * fr
    return np.clip(np.round(planes), low, high).astype(dtype)


def make_triplet(pair_id: str, split: str, centre: int, height: int, width: int, seed: int = 0,
                 grain: float = 0.0) -> Sample:
    """One synthetic triplet with legal narrow-range codes (HDR 10-bit, SDR 8-bit), chroma of natural saturation
    (mostly inside the gamut, as in real video), and realistic tags."""
    rng = np.random.default_rng([seed, centre, sum(pair_id.encode())])
    ch, cw = (height + 1) // 2, (width + 1) // 2

    def planes(low_y, high_y, low_c, high_c, dtype):
        y = smooth_planes(rng, height, width, low_y, high_y, dtype)
        if grain:
            noise = rng.normal(0.0, grain, y.shape)
            y = np.clip(np.round(y.astype(np.float64) + noise), low_y, high_y).astype(dtype)
        return (y, smooth_planes(rng, ch, cw, low_c, high_c, dtype), smooth_planes(rng, ch, cw, low_c, high_c, dtype))

    metadata = {"pair_id": pair_id, "split": split, "shot": 0, "centre_frame": centre,
                "hdr_frames": [centre - 1, centre, centre + 1], "sdr_frames": [centre - 1, centre, centre + 1],
                "width": width, "height": height, "hdr": dict(HDR_TAGS), "sdr": dict(SDR_TAGS)}
    return Sample(key=sample_key(pair_id, centre), hdr=planes(64, 940, 400, 624, np.uint16),
                  sdr=planes(16, 235, 100, 156, np.uint8), metadata=metadata)


@dataclass
class FakeBuild:
    """A build directory written by :func:`write_build`: where it is, and what each split holds."""

    root: Path
    keys: dict[str, list[str]]          # split -> keys in index order
    shards: dict[str, list[str]]        # split -> shard paths relative to root
    samples: dict[str, Sample]          # key -> the sample written


def write_build(root: Path, pairs: dict[str, tuple[str, int]], *, height: int = 36, width: int = 52,
                max_shard_bytes: int | dict[str, int] = 1 << 30, sizes: dict[str, tuple[int, int]] | None = None,
                grain: float = 0.0, location: str | None = None, with_offsets: bool = True,
                band_rows: int | None = None) -> FakeBuild:
    """A build directory like ``fmstf-data build`` writes: ``shards/{split}/{pair}-{n:06d}.tar`` and
    ``index/samples.parquet``.

    Args:
        pairs: pair id -> (split, number of samples); centres are 1, 3, 5, ...
        max_shard_bytes: to cut pairs into several shards (a dict: per pair, others in one shard).
        sizes: pair id -> (height, width) for pairs of another size.
        location: write there (a URI) instead of ``root``.
        with_offsets: write the samples' byte offsets into the index (False: an index like format-2 builds', which
            the loader locates by scanning the shards' tar headers).
        band_rows: luma rows per band of the stored planes (None: the codec's default).
    """
    storage = open_storage(location or str(root))
    rows, keys, shards, samples = [], {}, {}, {}
    for pair_id, (split, count) in sorted(pairs.items()):
        h, w = (sizes or {}).get(pair_id, (height, width))
        writer = ShardWriter(storage, f"shards/{split}/{pair_id}", f".staging/{pair_id}",
                             max_shard_bytes=max_shard_bytes.get(pair_id, 1 << 30)
                             if isinstance(max_shard_bytes, dict) else max_shard_bytes)
        for centre in range(1, 2 * count, 2):
            sample = make_triplet(pair_id, split, centre, h, w, grain=grain)
            members = encode_sample(sample) if band_rows is None else encode_sample(sample, band_rows=band_rows)
            stored = writer.write(sample.key, members)
            samples[sample.key] = sample
            rows.append({"key": sample.key, "pair_id": pair_id, "split": split, "shard": stored.shard,
                         **(stored.index_columns() if with_offsets else {}),
                         "hdr_frames": sample.metadata["hdr_frames"], "sdr_frames": sample.metadata["sdr_frames"],
                         "shot": 0, "centre_frame": centre, "width": w, "height": h,
                         "sample_bytes": sum(len(data) for data in members.values())})
        for info in writer.publish():
            shards.setdefault(split, []).append(info.name)
        storage.delete(f".staging/{pair_id}")
    rows.sort(key=lambda row: (row["split"], row["pair_id"], row["centre_frame"]))
    for row in rows:
        keys.setdefault(row["split"], []).append(row["key"])
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), sink)
    storage.write_bytes_atomic("index/samples.parquet", sink.getvalue())
    return FakeBuild(root=root, keys=keys, shards=shards, samples=samples)
