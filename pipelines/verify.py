"""``fmstf-data verify OUT``: check a finished build against its own index, without trusting either.

Checks, each reported as a problem line (the build is sound when there are none):

- every pair in ``pairs.parquet`` with status ``ok`` has its shards, and every shard on disk belongs to an ok pair;
- every shard is a complete tar whose members group into whole samples (the seven members of the sample format);
- every sample decodes (zstd, ``.npy`` without pickle, shapes and dtypes of the format), its key follows contract 1,
  and its JSON agrees with its index row (pair, split, frames, shard, and the byte offsets the loader reads by);
- the index lists exactly the samples the shards hold, once each;
- splits are by video (contract 4): no pair appears in two splits, no sample sits under another split's directory.

``--deep`` decodes every plane and checks every band's checksum (sample format 3) or every plane's (format 2), so
a damaged byte anywhere in a payload is found. Without it only the JSON members are decoded, and (format 3) every
stored byte is still checked against its band's CRC-32 without decompressing (fast).
"""

from __future__ import annotations

import io
import logging
import tarfile
import zlib
from collections import defaultdict
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from fmstf_data.errors import FmstfError
from fmstf_data.store.bands import check_stored
from fmstf_data.store.samples import (
    KEY_PATTERN,
    MEMBER_SUFFIXES,
    band_tables,
    decode_metadata,
    decode_sample,
)
from fmstf_data.store.storage import Storage, open_storage

logger = logging.getLogger(__name__)


@dataclass
class VerifyResult:
    """What verification found.

    Attributes:
        shards: shards read; samples: samples found in them; problems: one line per problem found.
    """

    shards: int = 0
    samples: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _read_table(storage: Storage, relative: str) -> pa.Table:
    try:
        return pq.read_table(pa.BufferReader(storage.read_bytes(relative)))
    except (OSError, pa.ArrowException) as error:
        raise FmstfError(f"{storage.display(relative)} is missing or unreadable ({error}); is this a build "
                         f"directory?") from error


def _shard_samples(data: bytes, shard: str, problems: list[str], spans: dict[str, tuple[int, int]] | None = None
                   ) -> dict[str, dict[str, bytes]]:
    """Members grouped by key, in order; a damaged tar is reported, not raised. ``spans`` receives each key's
    ``[start, end)`` bytes (first header to the end of the last member's padded data)."""
    samples: dict[str, dict[str, bytes]] = {}
    spans = {} if spans is None else spans
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
            for member in archive:
                key, _, suffix = member.name.partition(".")
                extracted = archive.extractfile(member)
                samples.setdefault(key, {})[suffix] = extracted.read() if extracted is not None else b""
                end = member.offset_data + -(-member.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
                start = spans[key][0] if key in spans else member.offset
                spans[key] = (start, end)
    except (tarfile.TarError, EOFError, OSError) as error:
        problems.append(f"{shard}: not a complete tar ({error})")
    return samples


def check_stored_members(members: dict[str, bytes], metadata: dict, key: str) -> None:
    """Every stored byte of a format-3 sample's plane members against the CRC-32s of its band tables, without
    decompressing (raises SampleFormatError)."""
    from fmstf_data.errors import SampleFormatError

    for suffix, table in band_tables(metadata, key).items():
        data = members[suffix]
        if len(data) != table.member_bytes:
            raise SampleFormatError(f"{suffix} is damaged ({len(data)} bytes stored, its band table says "
                                    f"{table.member_bytes})")
        check_stored(data, table, 0, len(table.sizes), suffix)


def verify_build(location: str, *, deep: bool = False) -> VerifyResult:
    """Verify the build at ``location`` (a directory or a pyarrow.fs URI)."""
    storage = open_storage(location)
    result = VerifyResult()
    pairs = _read_table(storage, "index/pairs.parquet").to_pylist()
    index = _read_table(storage, "index/samples.parquet").to_pylist()
    problems = result.problems

    split_of_pair: dict[str, str] = {}
    expected_shards: set[str] = set()
    for pair in pairs:
        if pair["pair_id"] in split_of_pair:
            problems.append(f"pair {pair['pair_id']} is listed twice in pairs.parquet")
        split_of_pair[pair["pair_id"]] = pair["split"]
        if pair["status"] == "ok":
            expected_shards.update(pair["shards"] or [])
    on_disk = set(storage.list_files("shards", ".tar"))
    for missing in sorted(expected_shards - on_disk):
        problems.append(f"{missing}: listed for an ok pair but missing")
    for stray in sorted(on_disk - expected_shards):
        problems.append(f"{stray}: on disk but not listed for any ok pair")

    rows_by_key: dict[str, dict] = {}
    for row in index:
        if row["key"] in rows_by_key:
            problems.append(f"sample {row['key']} is listed twice in samples.parquet")
        rows_by_key[row["key"]] = row
        if split_of_pair.get(row["pair_id"]) != row["split"]:
            problems.append(f"sample {row['key']}: split {row['split']} but its pair is in "
                            f"{split_of_pair.get(row['pair_id'])}")

    seen: dict[str, str] = {}
    splits_of_pair_on_disk: dict[str, set[str]] = defaultdict(set)
    for shard in sorted(on_disk & expected_shards):
        result.shards += 1
        shard_split = shard.split("/")[1]
        spans: dict[str, tuple[int, int]] = {}
        for key, members in _shard_samples(storage.read_bytes(shard), shard, problems, spans).items():
            result.samples += 1
            where = f"{shard}: {key}"
            if key in seen:
                problems.append(f"{where}: also in {seen[key]}")
            seen[key] = shard
            if not KEY_PATTERN.match(key):
                problems.append(f"{where}: key does not follow {{pair_id}}_{{centre_frame:06d}}")
            missing = [suffix for suffix in MEMBER_SUFFIXES if suffix not in members]
            if missing:
                problems.append(f"{where}: missing members {missing}")
                continue
            try:
                metadata = decode_sample(members).metadata if deep else decode_metadata(members["json"])
                if not deep and metadata["format_version"] >= 3:
                    check_stored_members(members, metadata, key)
            except FmstfError as error:
                problems.append(f"{where}: does not decode ({error})")
                continue
            row = rows_by_key.get(key)
            if row is None:
                problems.append(f"{where}: not in samples.parquet")
                continue
            splits_of_pair_on_disk[metadata.get("pair_id", "?")].add(shard_split)
            checks = {"pair_id": row["pair_id"], "split": row["split"], "hdr_frames": row["hdr_frames"],
                      "sdr_frames": row["sdr_frames"], "centre_frame": row["centre_frame"]}
            for name, expected in checks.items():
                if metadata.get(name) != expected:
                    problems.append(f"{where}: JSON {name}={metadata.get(name)!r} but the index says {expected!r}")
            if row["shard"] != shard:
                problems.append(f"{where}: the index places it in {row['shard']}")
            elif row.get("offset_bytes") is not None:
                start, end = spans[key]
                found = {"offset_bytes": start, "size_bytes": end - start, "json_bytes": len(members["json"]),
                         "json_crc32": zlib.crc32(members["json"])}
                for name, value in found.items():
                    if row.get(name) != value:
                        problems.append(f"{where}: the index says {name}={row.get(name)!r}, the shard {value!r}")
            if shard_split != row["split"]:
                problems.append(f"{where}: a {row['split']} sample under shards/{shard_split}/")
    for key in sorted(set(rows_by_key) - set(seen)):
        problems.append(f"sample {key}: in samples.parquet but in no shard")
    for pair_id, splits in sorted(splits_of_pair_on_disk.items()):
        if len(splits) > 1:
            problems.append(f"pair {pair_id} has samples in several splits: {sorted(splits)} (contract 4)")
    return result
