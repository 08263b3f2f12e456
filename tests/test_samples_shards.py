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
    encode_metadata,
    encode_sample,
    sample_key,
)
from fmstf_data.store.shards import ShardWriter, member_data_offsets
from fmstf_data.store.storage import open_storage


def make_sample(pair_id: str, centre: int, height: int = 36, width: int = 50, seed: int = 0, frames: int = 3
                ) -> Sample:
    rng = np.random.default_rng(seed + centre)
    chroma = (frames, (height + 1) // 2, (width + 1) // 2)
    hdr = (rng.integers(64, 941, (frames, height, width)).astype(np.uint16),
           rng.integers(64, 961, chroma).astype(np.uint16), rng.integers(64, 961, chroma).astype(np.uint16))
    sdr = (rng.integers(16, 236, (frames, height, width)).astype(np.uint8),
           rng.integers(16, 241, chroma).astype(np.uint8), rng.integers(16, 241, chroma).astype(np.uint8))
    half = frames // 2
    return Sample(key=sample_key(pair_id, centre), hdr=hdr, sdr=sdr,
                  metadata={"pair_id": pair_id, "hdr_frames": list(range(centre - half, centre + half + 1))})


def encode_format_2(sample: Sample) -> dict[str, bytes]:
    """A sample as format 2 wrote it (one zstd frame per member, ``plane_crc32`` of the decoded planes), made here
    from the format's description with zlib, not with the codec's own checksum code."""
    planes = [*sample.hdr, *sample.sdr]
    metadata = {**sample.metadata, "key": sample.key, "format_version": 2,
                "plane_crc32": {suffix: zlib.crc32(np.ascontiguousarray(plane).tobytes())
                                for suffix, plane in zip(ARRAY_SUFFIXES, planes)}}
    return {"json": encode_metadata(metadata), **{suffix: encode_array(plane)
                                                  for suffix, plane in zip(ARRAY_SUFFIXES, planes)}}


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


@pytest.mark.parametrize("version", [None, 0, 4, 99, "1", 2.0, True])
def test_an_unknown_sample_format_version_is_refused(version):
    members = encode_sample(make_sample("city", 5))
    metadata = json.loads(members["json"])
    assert metadata["format_version"] == 3
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
    with pytest.raises(SampleFormatError, match="hdr_cb.npy.zst is damaged"):
        decode_sample({**members, "hdr_cb.npy.zst": other["hdr_cb.npy.zst"]}, rows=(0, 2))
    loud = Sample(key=sample.key, hdr=(np.full_like(sample.hdr[0], 1024), *sample.hdr[1:]), sdr=sample.sdr)
    with pytest.raises(SampleFormatError, match="above 1023"):
        decode_sample(encode_sample(loud))
    with pytest.raises(SampleFormatError, match="above 1023"):
        decode_sample(encode_format_2(loud))


def test_format_2_and_1_samples_are_still_read_and_checked():
    sample = make_sample("city", 5)
    members = encode_format_2(sample)
    decoded = decode_sample(members)
    assert all(np.array_equal(a, b) for a, b in zip(decoded.hdr, sample.hdr))
    other = encode_format_2(make_sample("city", 5, seed=9))
    with pytest.raises(SampleFormatError, match="sdr_y.npy.zst is damaged"):
        decode_sample({**members, "sdr_y.npy.zst": other["sdr_y.npy.zst"]})
    metadata = json.loads(members["json"])
    metadata["format_version"] = 1
    del metadata["plane_crc32"]
    decoded = decode_sample({**members, "json": json.dumps(metadata).encode()})
    assert all(np.array_equal(a, b) for a, b in zip(decoded.sdr, sample.sdr))
    metadata["format_version"] = 2  # a version 2 sample must carry them
    with pytest.raises(SampleFormatError, match="checksums"):
        decode_sample({**members, "json": json.dumps(metadata).encode()})


def test_a_banded_member_is_one_standard_zstd_stream_of_the_plain_npy_file():
    sample = make_sample("city", 5, height=75, width=33, frames=5)
    members = encode_sample(sample, band_rows=8)
    for suffix, plane in zip(ARRAY_SUFFIXES, [*sample.hdr, *sample.sdr]):
        raw = pa.CompressedInputStream(pa.BufferReader(members[suffix]), "zstd").read()  # streamed: every frame
        expected = io.BytesIO()
        np.save(expected, plane, allow_pickle=False)
        assert bytes(raw) == expected.getvalue()
        assert members[suffix].count(bytes.fromhex("28b52ffd")) >= 1 + 5 * 10  # header + 5 frames x 10 bands
        assert np.array_equal(decode_array(members[suffix]), plane)


@pytest.mark.parametrize("frames,height,band_rows", [(3, 36, 32), (5, 75, 8), (3, 1, 2), (7, 64, 16)])
def test_partial_rows_decode_exactly_the_bands_asked(frames, height, band_rows):
    sample = make_sample("city", 9, height=height, width=21, frames=frames)
    members = encode_sample(sample, band_rows=band_rows)
    assert decode_sample(members).window_frames == frames
    generator = np.random.default_rng(height)
    ranges = [(0, height), (0, 1), (height - 1, height)] + [
        tuple(sorted(generator.integers(0, height + 1, 2))) for _ in range(12)]
    for start, stop in ranges:
        if stop <= start:
            continue
        part = decode_sample(members, rows=(int(start), int(stop)))
        first = start // band_rows * band_rows  # the band holding the first row asked
        last = min(height, -(-stop // band_rows) * band_rows)
        assert (part.first_row, part.height) == (first, last - first)
        for plane, (original, restored) in enumerate(zip([*sample.hdr, *sample.sdr], [*part.hdr, *part.sdr])):
            top, bottom = (first, last) if plane in (0, 3) else (first // 2, -(-last // 2))  # 4:2:0 chroma: half
            assert np.array_equal(restored, original[:, top:bottom])


def test_windows_must_have_an_odd_number_of_frames():
    with pytest.raises(SampleFormatError, match="odd"):
        make_sample("city", 5, frames=4)
    with pytest.raises(SampleFormatError, match="odd"):
        make_sample("city", 5, frames=1)


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


def test_the_writer_says_where_each_member_lies(tmp_path):
    """StoredSample's offsets, checked against the tar headers as Python's tarfile reads them, for short keys and
    for member names over 100 bytes (a GNU long-name record before the header)."""
    storage = open_storage(tmp_path)
    writer = ShardWriter(storage, "shards/train/city", ".staging/city")
    samples = [make_sample("city", 1), make_sample("c" * 96, 2), make_sample("city", 3)]
    stored = [writer.write(sample.key, encode_sample(sample)) for sample in samples]
    writer.publish()
    data = (tmp_path / "shards/train/city-000000.tar").read_bytes()
    with tarfile.open(tmp_path / "shards/train/city-000000.tar") as archive:
        members = {member.name: member for member in archive.getmembers()}
    for sample, where in zip(samples, stored):
        names = [name for name in members if name.startswith(sample.key + ".")]
        assert where.offset_bytes == min(members[name].offset for name in names)
        assert where.offset_bytes + where.size_bytes == max(
            members[n].offset_data + -(-members[n].size // 512) * 512 for n in names)
        for name in names:
            suffix = name.split(".", 1)[1]
            assert where.data_offsets[suffix] == members[name].offset_data
            assert where.data_sizes[suffix] == members[name].size
        json_bytes = data[where.data_offsets["json"]:where.data_offsets["json"] + where.data_sizes["json"]]
        assert where.index_columns()["json_crc32"] == zlib.crc32(json_bytes)
        assert member_data_offsets(sample.key, list(where.data_sizes.items()), where.offset_bytes) == where.data_offsets


def test_unpublished_shards_are_not_visible(tmp_path):
    storage, writer = write_shards(tmp_path, [make_sample("city", c) for c in range(1, 4)])
    writer.close()
    assert not (tmp_path / "shards").exists()
    assert list((tmp_path / ".staging" / "city").rglob("*.tar"))
    writer.abort()
    assert not (tmp_path / ".staging" / "city").exists() and not (tmp_path / "shards").exists()
