"""Damaged shards: truncated, corrupt, missing. Policy "raise" raises with the shard and sample named; "skip" leaves
out or replaces, counts and logs; neither ever hangs, and ranks keep equal batch counts."""

from __future__ import annotations

import logging
import shutil
import tarfile

import pytest

from fmstf_data.errors import DamagedShardError
from fmstf_data.loader import make_dataset, make_loader
from tests.loader_fixtures import write_build

pytestmark = pytest.mark.timeout(120)

PAIRS = {"alpha": ("train", 6), "beta": ("train", 5)}
OPTIONS = dict(batch_size=2, crop_size=16, rot90=False)


@pytest.fixture(scope="module", params=["offsets", "scan"])
def pristine(tmp_path_factory, request):
    """A build whose index gives every sample's byte offsets (the loader reads no tar header), and one without
    them (an index as format-2 builds wrote it: the loader scans the tar headers)."""
    return write_build(tmp_path_factory.mktemp("damage") / "out", PAIRS, with_offsets=request.param == "offsets")


@pytest.fixture
def build(pristine, tmp_path):
    root = tmp_path / "out"
    shutil.copytree(pristine.root, root)
    return root, pristine


def scanned(root) -> bool:
    import pyarrow.parquet as pq

    return "offset_bytes" not in pq.read_schema(root / "index" / "samples.parquet").names


def member(path, key: str, suffix: str) -> tarfile.TarInfo:
    with tarfile.open(path) as tar:
        return tar.getmember(f"{key}.{suffix}")


def test_truncated_shard_raises_naming_it(build):
    root, pristine = build
    shard = root / "shards" / "train" / "alpha-000000.tar"
    data = shard.read_bytes()
    shard.write_bytes(data[:len(data) // 2])
    with pytest.raises(DamagedShardError, match=r"alpha-000000\.tar.*truncated"):
        make_dataset(root, "train", **OPTIONS)


def test_truncated_shard_skip_keeps_what_is_whole_and_counts_stay_equal(build, caplog):
    root, pristine = build
    shard = root / "shards" / "train" / "alpha-000000.tar"
    cut = member(shard, "alpha_000007", "sdr_y.npy.zst").offset_data + 10  # inside the 4th sample
    shard.write_bytes(shard.read_bytes()[:cut])
    with caplog.at_level(logging.WARNING):
        datasets = [make_dataset(root, "train", on_damage="skip", rank=r, world_size=2, **OPTIONS) for r in (0, 1)]
    catalog = datasets[0].catalog
    assert catalog.keys == [k for k in pristine.keys["train"] if k not in
                            ("alpha_000007", "alpha_000009", "alpha_000011")]
    lost = {"alpha_000007", "alpha_000009", "alpha_000011"}
    assert {d.key for d in catalog.damaged} == (lost | {None} if scanned(root) else lost)
    assert "leaving out" in caplog.text
    counts = [len(list(make_loader(d, num_workers=1))) for d in datasets]
    assert counts[0] == counts[1] == 8 // 2 // 2


def test_corrupt_member_raises_through_workers(build):
    root, _ = build
    shard = root / "shards" / "train" / "beta-000000.tar"
    info = member(shard, "beta_000003", "hdr_y.npy.zst")
    data = bytearray(shard.read_bytes())
    data[info.offset_data + 20:info.offset_data + 60] = bytes(40)  # zeros inside the zstd frame; headers intact
    shard.write_bytes(bytes(data))
    loader = make_loader(root, "train", num_workers=2, rank=0, world_size=1, timeout_seconds=60, **OPTIONS)
    with pytest.raises(DamagedShardError, match=r"beta_000003 in .*beta-000000\.tar"):
        list(loader)


def test_corrupt_member_skip_serves_a_replacement(build):
    root, pristine = build
    shard = root / "shards" / "train" / "beta-000000.tar"
    info = member(shard, "beta_000003", "hdr_y.npy.zst")
    data = bytearray(shard.read_bytes())
    data[info.offset_data + 20:info.offset_data + 60] = bytes(40)
    shard.write_bytes(bytes(data))
    loader = make_loader(root, "train", num_workers=2, rank=0, world_size=1, on_damage="skip", **OPTIONS)
    batches = list(loader)
    assert len(batches) == len(loader) == 11 // 2
    substituted = [key for b in batches for key, s in zip(b["key"], b["substituted"]) if s]
    served = [key for b in batches for key in b["key"]]
    assert "beta_000003" not in served and len(substituted) == 1 and loader.substituted_count == 1


def test_corrupt_member_in_eval_is_marked_invalid(build):
    root, pristine = build
    shard = root / "shards" / "train" / "alpha-000000.tar"
    info = member(shard, "alpha_000001", "sdr_cb.npy.zst")
    data = bytearray(shard.read_bytes())
    data[info.offset_data + 8:info.offset_data + 30] = bytes(22)
    shard.write_bytes(bytes(data))
    loader = make_loader(root, "train", mode="eval", batch_size=4, crop_size=None, num_workers=0,
                         on_damage="skip")
    rows = [(key, bool(v), bool(s)) for b in loader for key, v, s in zip(b["key"], b["valid"], b["substituted"])]
    assert len(rows) == 11 and [r[0] for r in rows if r[1]] == [k for k in pristine.keys["train"]
                                                                 if k != "alpha_000001"]
    assert [r for r in rows if not r[1]][0][2]


def test_corrupt_header_is_found_by_the_scan(build):
    """Only a scanned catalog reads tar headers (with offsets in the index a damaged header is not read; the
    members' checksums guard the data, and ``fmstf-data verify`` parses every header)."""
    root, pristine = build
    shard = root / "shards" / "train" / "beta-000000.tar"
    info = member(shard, "beta_000005", "json")
    data = bytearray(shard.read_bytes())
    data[info.offset + 100:info.offset + 110] = b"garbage!!!"
    shard.write_bytes(bytes(data))
    if not scanned(root):  # the damaged header is never read, the sample's data is intact and served
        dataset = make_dataset(root, "train", rank=0, world_size=1, **OPTIONS)
        sample = dataset.reader.read(dataset.catalog.keys.index("beta_000005"), rows=(0, 4))
        assert (sample.hdr[0] == pristine.samples["beta_000005"].hdr[0][:, :sample.height]).all()
        return
    with pytest.raises(DamagedShardError, match="invalid tar header"):
        make_dataset(root, "train", **OPTIONS)
    dataset = make_dataset(root, "train", on_damage="skip", rank=0, world_size=1, **OPTIONS)
    assert "beta_000005" not in dataset.catalog.keys and "beta_000003" in dataset.catalog.keys


def test_missing_shard(build):
    root, _ = build
    (root / "shards" / "train" / "beta-000000.tar").unlink()
    with pytest.raises(DamagedShardError, match="does not exist"):
        make_dataset(root, "train", **OPTIONS)
    dataset = make_dataset(root, "train", on_damage="skip", rank=0, world_size=1, **OPTIONS)
    assert all(not key.startswith("beta") for key in dataset.catalog.keys) and len(dataset.catalog) == 6


def pax_tar(name: str) -> bytearray:
    """A one-member PAX tar whose long name travels in a PAX ``path`` record."""
    import io

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    return bytearray(buffer.getvalue())


@pytest.mark.parametrize("damage", ["length not a number", "length past the header", "path not utf-8"])
def test_a_corrupt_pax_record_is_damage_not_a_crash(damage):
    from fmstf_data.loader.tarindex import iter_members

    name = "k" * 120 + ".json"  # longer than 100 characters: tarfile writes a PAX path record
    data = pax_tar(name)
    members = list(iter_members(lambda offset, length: bytes(data[offset:offset + length]), len(data)))
    assert [member.name for member in members] == [name]
    record = data.index(b" path=")  # the record "NNN path=...\n" in the PAX header's data block
    start = data.rindex(b"\n", 0, record) + 1 if b"\n" in data[512:record] else 512
    if damage == "length not a number":
        data[start:record] = b"x" * (record - start)
    elif damage == "length past the header":
        data[start:record] = b"9" * (record - start)
    else:
        data[record + 6] = 0xFF
    with pytest.raises(DamagedShardError, match="damaged PAX header at byte 0"):
        list(iter_members(lambda offset, length: bytes(data[offset:offset + length]), len(data)))
