"""The sample codec (contract 2) and deterministic, atomic shard writing."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import zlib

import numpy as np
import pyarrow as pa
import pytest
import webdataset as wds

from fmstf_data.errors import SampleFormatError
from fmstf_data.store.samples import (
    ARRAY_SUFFIXES,
    Sample,
    decode_array,
    decode_metadata,
    decode_sample,
    encode_array,
    encode_sample,
    sample_key,
)
from fmstf_data.store.shards import ShardWriter
from fmstf_data.store.storage import open_storage


def make_sample(pair_id: str, centre: int, height: int = 36, width: int = 50, seed: int = 0) -> Sample:
    rng = np.random.default_rng(seed + centre)
    chroma = (3, (height + 1) // 2, (width + 1) // 2)
    hdr = (rng.integers(64, 941, (3, height, width)).astype(np.uint16),
           rng.integers(64, 961, chroma).astype(np.uint16), rng.integers(64, 961, chroma).astype(np.uint16))
    sdr = (rng.integers(16, 236, (3, height, width)).astype(np.uint8),
           rng.integers(16, 241, chroma).astype(np.uint8), rng.integers(16, 241, chroma).astype(np.uint8))
    return Sample(key=sample_key(pair_id, centre), hdr=hdr, sdr=sdr,
                  metadata={"pair_id": pair_id, "hdr_frames": [centre - 1, centre, centre + 1]})


def test_key_follows_contract_1():
    assert sample_key("city", 12) == "city_000012"
    assert "." not in sample_key("a-b_c", 1234567)
    with pytest.raises(SampleFormatError):
        sample_key("City.x", 1)


def test_array_member_is_standard_zstd_npy():
    array = np.arange(60, dtype=np.uint16).reshape(3, 4, 5)
    data = encode_array(array)
    assert data[:4] == bytes.fromhex("28b52ffd")  # the zstd frame magic number
    raw = pa.CompressedInputStream(pa.BufferReader(data), "zstd").read()
    assert raw[:6] == b"\x93NUMPY"
    loaded = np.load(io.BytesIO(raw), allow_pickle=False)
    assert loaded.dtype == np.uint16 and np.array_equal(loaded, array)


def test_sample_round_trip_is_exact_odd_sizes():
    sample = make_sample("city", 5, height=37, width=51)
    decoded = decode_sample(encode_sample(sample))
    assert decoded.key == "city_000005"
    for side in ("hdr", "sdr"):
        for original, restored in zip(getattr(sample, side), getattr(decoded, side)):
            assert restored.dtype == original.dtype and np.array_equal(restored, original)
    assert decoded.metadata["hdr_frames"] == [4, 5, 6]


def test_sample_checks_shapes_and_dtypes():
    sample = make_sample("city", 5)
    with pytest.raises(SampleFormatError, match="uint16"):
        Sample(key=sample.key, hdr=tuple(p.astype(np.uint8) for p in sample.hdr), sdr=sample.sdr)
    with pytest.raises(SampleFormatError, match="HDR geometry"):
        Sample(key=sample.key, hdr=sample.hdr, sdr=make_sample("city", 5, height=40).sdr)


def test_corrupt_member_raises_our_error():
    members = encode_sample(make_sample("city", 5))
    members["hdr_y.npy.zst"] = members["hdr_y.npy.zst"][:40]
    with pytest.raises(SampleFormatError):
        decode_sample(members)
    with pytest.raises(SampleFormatError):
        decode_array(b"not zstd at all")


@pytest.mark.parametrize("version", [None, 0, 3, 99, "1", 2.0, True])
def test_an_unknown_sample_format_version_is_refused(version):
    members = encode_sample(make_sample("city", 5))
    metadata = json.loads(members["json"])
    assert metadata["format_version"] == 2
    if version is None:
        del metadata["format_version"]
    else:
        metadata["format_version"] = version
    members["json"] = json.dumps(metadata).encode()
    with pytest.raises(SampleFormatError, match="format_version"):
        decode_sample(members)
    with pytest.raises(SampleFormatError, match="format_version"):
        decode_metadata(members["json"])


def test_every_damaged_payload_byte_is_caught(rng=None):
    """One-byte flips across every array member, headers and zstd payloads alike: none decodes into planes that
    are served (a flip inside a payload can decompress without error: the plane checksums catch it)."""
    import random

    members = encode_sample(make_sample("city", 5, height=36, width=50, seed=3))
    generator = random.Random(5)
    for suffix in ARRAY_SUFFIXES:
        data = members[suffix]
        for position in sorted({*generator.sample(range(len(data)), min(24, len(data))), 0, len(data) - 1}):
            damaged = bytearray(data)
            damaged[position] ^= 1 << generator.randrange(8)
            with pytest.raises(SampleFormatError):
                decode_sample({**members, suffix: bytes(damaged)})


def test_planes_that_do_not_match_their_checksum_or_exceed_10_bits_are_refused():
    sample = make_sample("city", 5)
    members = encode_sample(sample)
    other = encode_sample(make_sample("city", 5, seed=9))
    with pytest.raises(SampleFormatError, match="hdr_cb.npy.zst is damaged"):
        decode_sample({**members, "hdr_cb.npy.zst": other["hdr_cb.npy.zst"]})  # a whole, valid, wrong member
    loud = np.full_like(sample.hdr[0], 1024)
    metadata = json.loads(members["json"])
    metadata["plane_crc32"]["hdr_y.npy.zst"] = zlib.crc32(memoryview(loud).cast("B"))
    with pytest.raises(SampleFormatError, match="above 1023"):
        decode_sample({**members, "hdr_y.npy.zst": encode_array(loud), "json": json.dumps(metadata).encode()})


def test_version_1_samples_without_checksums_are_still_read():
    sample = make_sample("city", 5)
    members = encode_sample(sample)
    metadata = json.loads(members["json"])
    metadata["format_version"] = 1
    del metadata["plane_crc32"]
    decoded = decode_sample({**members, "json": json.dumps(metadata).encode()})
    assert all(np.array_equal(a, b) for a, b in zip(decoded.hdr, sample.hdr))
    metadata["format_version"] = 2  # a version 2 sample must carry them
    with pytest.raises(SampleFormatError, match="checksums"):
        decode_sample({**members, "json": json.dumps(metadata).encode()})


def test_pickled_object_arrays_are_refused():
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    data = pa.Codec("zstd").compress(buffer.getvalue(), asbytes=True)
    with pytest.raises(SampleFormatError):
        decode_array(data)


def write_shards(directory, samples, max_shard_bytes=200_000):
    storage = open_storage(directory)
    writer = ShardWriter(storage, "shards/train/city", ".staging/city", max_shard_bytes=max_shard_bytes)
    for sample in samples:
        writer.write(sample.key, encode_sample(sample))
    return storage, writer


def test_shards_are_deterministic_sized_and_readable(tmp_path):
    samples = [make_sample("city", centre, height=72, width=128) for centre in range(1, 12)]
    digests = []
    for run in ("a", "b"):
        storage, writer = write_shards(tmp_path / run, samples)
        shards = writer.publish()
        assert len(shards) > 1 and sum(s.sample_count for s in shards) == len(samples)
        for shard in shards[:-1]:
            assert shard.size_bytes <= 200_000 + tarfile.RECORDSIZE
        digests.append([hashlib.sha256((tmp_path / run / s.name).read_bytes()).hexdigest() for s in shards])
    assert digests[0] == digests[1]

    first = tmp_path / "a" / "shards/train/city-000000.tar"
    listing = subprocess.run(["tar", "tvf", str(first)], capture_output=True, text=True, check=True).stdout.splitlines()
    assert listing[0].split()[-1] == "city_000001.json"
    assert all("1970-01-01" in line and "0/0" in line for line in listing)

    read = []
    urls = sorted(str(p) for p in (tmp_path / "a" / "shards/train").glob("*.tar"))
    for item in wds.WebDataset(urls, shardshuffle=False):
        assert set(ARRAY_SUFFIXES) <= set(item)
        read.append(decode_sample({k: v for k, v in item.items() if not k.startswith("__")}))
    assert [s.key for s in read] == [s.key for s in samples]
    assert all(np.array_equal(a.hdr[0], b.hdr[0]) for a, b in zip(read, samples))


def test_unpublished_shards_are_not_visible(tmp_path):
    storage, writer = write_shards(tmp_path, [make_sample("city", c) for c in range(1, 4)])
    writer.close()
    assert not (tmp_path / "shards").exists()
    assert list((tmp_path / ".staging" / "city").rglob("*.tar"))
    writer.abort()
    assert not (tmp_path / ".staging" / "city").exists() and not (tmp_path / "shards").exists()
