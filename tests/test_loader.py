"""The streaming loader: what it yields (contract 3), crops and augmentation, the plan, resume, sources."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pyarrow as pa
import pytest
import torch

from fmstf_data.color import planes_to_rgb
from fmstf_data.color.params import ColorParams, color_params
from fmstf_data.errors import LoaderError, SampleFormatError
from fmstf_data.loader import (
    LoaderOptions,
    TripletLoader,
    load_catalog,
    make_dataset,
    make_loader,
    planes_to_rgb_batch,
    rank_plan,
)
from fmstf_data.loader.augment import CropParams, apply_geometry, crop_planes_with_margin, draw_crop
from fmstf_data.loader.convert import convert_with_margin
from fmstf_data.loader.tarindex import parse_members, scan_shard
from fmstf_data.store.samples import Sample, decode_array, encode_array, encode_sample, sample_key
from fmstf_data.store.shards import ShardWriter
from fmstf_data.store.storage import open_storage
from tests.loader_fixtures import make_triplet, write_build

PAIRS = {"alpha": ("train", 7), "beta": ("train", 1), "gamma": ("train", 4), "zeta": ("test", 5)}


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """Uneven shards: alpha cut into several shards, beta one sample, gamma a few; a test split."""
    return write_build(tmp_path_factory.mktemp("loader") / "out", PAIRS, height=36, width=52, max_shard_bytes=80_000)


def keys_of(loader) -> list[list[str]]:
    return [batch["key"] for batch in loader]


def reference_rgb(sample: Sample, side: str, crop: list[int], flip_h: bool, flip_v: bool, turns: int) -> torch.Tensor:
    """The colour core (numpy) on the whole frame, then the crop and the geometry: what the loader must match."""
    bit_depth, matrix = (10, "bt2020nc") if side == "hdr" else (8, "bt709")
    whole = planes_to_rgb(*getattr(sample, side), bit_depth=bit_depth, matrix=matrix, full_range=False)
    top, left, height, width = crop
    return apply_geometry(torch.from_numpy(whole[..., top:top + height, left:left + width]), flip_h, flip_v, turns)


# ---- tar table of contents ---------------------------------------------------------------------------------------


def test_scan_finds_every_member_like_tarfile(build):
    path = build.root / build.shards["train"][0]
    data = path.read_bytes()
    contents = scan_shard(lambda offset, length: data[offset:offset + length], len(data))
    assert contents.problem is None
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    keys = sorted({m.name.split(".", 1)[0] for m in members})
    assert [span.key for span in contents.samples] == keys
    for span in contents.samples:
        parsed = parse_members(data[span.start:span.end], span.key)
        for member in (m for m in members if m.name.startswith(span.key + ".")):
            suffix = member.name.split(".", 1)[1]
            assert bytes(parsed[suffix]) == data[member.offset_data:member.offset_data + member.size]


@pytest.mark.parametrize("tar_format", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_scan_reads_long_names(tar_format):
    key = "a" * 120 + "_000001"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tar_format) as tar:
        for suffix, payload in (("json", b"{}"), ("hdr_y.npy.zst", b"x" * 700)):
            info = tarfile.TarInfo(f"{key}.{suffix}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    data = buffer.getvalue()
    contents = scan_shard(lambda offset, length: data[offset:offset + length], len(data))
    assert contents.problem is None and [s.key for s in contents.samples] == [key]
    span = contents.samples[0]
    members = parse_members(data[span.start:span.end], key)
    assert bytes(members["hdr_y.npy.zst"]) == b"x" * 700 and bytes(members["json"]) == b"{}"


# ---- the plan ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_samples", [1, 5, 12, 13, 31])
@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
@pytest.mark.parametrize("samples_per_batch", [1, 2, 3])
def test_plan_equal_batches_and_coverage(num_samples, world_size, samples_per_batch):
    for remainder in ("drop", "wrap"):
        for drop_last in (True, False):
            plans = [rank_plan(num_samples, mode="train", seed=3, epoch=1, rank=r, world_size=world_size,
                               samples_per_batch=samples_per_batch, remainder=remainder, drop_last=drop_last)
                     for r in range(world_size)]
            assert len({p.num_batches for p in plans}) == 1
            served = np.concatenate([p.sample_ids for p in plans])
            if remainder == "drop":
                assert len(served) == len(set(served.tolist())) == num_samples - num_samples % world_size
            else:
                assert set(served.tolist()) == set(range(num_samples))
    plans = [rank_plan(num_samples, mode="eval", seed=3, epoch=0, rank=r, world_size=world_size,
                       samples_per_batch=samples_per_batch) for r in range(world_size)]
    assert len({p.num_batches for p in plans}) == 1
    valid = np.concatenate([p.sample_ids[p.valid] for p in plans])
    assert valid.tolist() == list(range(num_samples))  # each once, in catalog order


def test_plan_is_seeded():
    def order(seed, epoch):
        return rank_plan(50, mode="train", seed=seed, epoch=epoch, rank=0, world_size=1,
                         samples_per_batch=5).sample_ids.tolist()

    assert order(1, 0) == order(1, 0)
    assert order(1, 0) != order(1, 1) and order(1, 0) != order(2, 0)
    assert sorted(order(1, 0)) == list(range(50))


# ---- what a batch holds ----------------------------------------------------------------------------------------


def test_batch_contract_and_crops_match_whole_frame_conversion(build):
    loader = make_loader(build.root, "train", batch_size=4, crop_size=16, crops_per_sample=2, num_workers=0,
                         rank=0, world_size=1, seed=5)
    batches = list(loader)
    assert len(batches) == len(loader) == 12 // 2  # 12 samples, 2 triplets (x 2 crops) per batch
    seen_turns = set()
    for batch in batches:
        for side in ("sdr", "hdr"):
            assert batch[side].dtype == torch.float32 and batch[side].shape == (4, 3, 3, 16, 16)
            assert 0.0 <= float(batch[side].min()) and float(batch[side].max()) <= 1.0
        assert batch["key"][0] == batch["key"][1] and batch["key"][2] == batch["key"][3]
        assert batch["valid"].all() and not batch["substituted"].any()
        for i, key in enumerate(batch["key"]):
            crop = batch["crop"][i].tolist()
            assert crop[0] % 2 == 0 and crop[1] % 2 == 0 and crop[2:] == [16, 16]
            flip_h, flip_v, turns = bool(batch["flip_h"][i]), bool(batch["flip_v"][i]), int(batch["rot90"][i])
            seen_turns.add(turns)
            for side in ("sdr", "hdr"):
                expected = reference_rgb(build.samples[key], side, crop, flip_h, flip_v, turns)
                torch.testing.assert_close(batch[side][i], expected, atol=2e-6, rtol=0)
            assert batch["metadata"][i]["key"] == key
            assert batch["centre_frame"][i] == int(key.rsplit("_", 1)[1])
            assert batch["hdr_frames"][i].tolist() == build.samples[key].metadata["hdr_frames"]
    assert len(seen_turns) > 1


class CountingReads:
    """A shard file handle that counts the bytes read through it."""

    def __init__(self, handle, counter: list[int]) -> None:
        self.handle, self.counter = handle, counter

    def read_at(self, length: int, offset: int):
        self.counter[0] += length
        return self.handle.read_at(length, offset)

    def close(self) -> None:
        self.handle.close()


@pytest.fixture(scope="module")
def tall_builds(tmp_path_factory):
    """The same tall samples (8-row bands) in a build whose index gives offsets and one whose index does not."""
    root = tmp_path_factory.mktemp("tall")
    pairs = {"tall": ("train", 6), "other": ("test", 2)}
    return (write_build(root / "offsets", pairs, height=150, width=40, band_rows=8),
            write_build(root / "scan", pairs, height=150, width=40, band_rows=8, with_offsets=False))


def test_a_crop_reads_and_decodes_only_its_bands_and_equals_the_whole_frame(tall_builds):
    ranged, scanned = tall_builds
    options = dict(batch_size=2, crop_size=16, num_workers=0, rank=0, world_size=1, seed=3)
    loaders = [make_loader(b.root, "train", **options) for b in tall_builds]
    counters = [[0], [0]]
    for loader, counter in zip(loaders, counters):
        reader = loader.dataset.reader
        opened = reader._file
        reader._file = lambda shard, opened=opened, counter=counter: CountingReads(opened(shard), counter)
    assert loaders[0].dataset.reader.ranged(0) and not loaders[1].dataset.reader.ranged(0)
    tops = set()
    for epoch in range(4):
        for loader in loaders:
            loader.set_epoch(epoch)
        for batch, twin in zip(*loaders):
            for name in ("sdr", "hdr", "crop", "rot90", "flip_h"):
                assert torch.equal(batch[name], twin[name])  # offsets or tar scan: the same batches
            for i, key in enumerate(batch["key"]):
                crop = batch["crop"][i].tolist()
                tops.add(crop[0])
                for side in ("sdr", "hdr"):
                    expected = reference_rgb(ranged.samples[key], side, crop, bool(batch["flip_h"][i]),
                                             bool(batch["flip_v"][i]), int(batch["rot90"][i]))
                    torch.testing.assert_close(batch[side][i], expected, atol=2e-6, rtol=0)
    assert min(tops) <= 6 and max(tops) >= 128  # crops at both frame edges were served
    sample_bytes = sum(len(data) for data in encode_sample(ranged.samples["tall_000001"], band_rows=8).values())
    served = 4 * 6
    assert counters[1][0] >= served * sample_bytes  # whole spans
    assert counters[0][0] < 0.35 * served * sample_bytes  # 16 + 4 rows of 150: about 3-4 bands of 19


def test_crop_at_frame_edges_matches_whole_frame():
    sample = make_triplet("edge", "train", 1, 38, 50)
    for top, left in ((0, 0), (22, 34), (0, 34), (22, 0)):
        crop = CropParams(top, left, 16, 16)
        for side, (bit_depth, matrix) in (("hdr", (10, "bt2020nc")), ("sdr", (8, "bt709"))):
            planes = [torch.from_numpy(p.astype(np.int32)) for p in crop_planes_with_margin(*getattr(sample, side),
                                                                                              crop)]
            got = convert_with_margin(*planes, ColorParams(bit_depth, matrix, False))
            expected = reference_rgb(sample, side, [top, left, 16, 16], False, False, 0)
            torch.testing.assert_close(got, expected, atol=2e-6, rtol=0)


def test_odd_whole_frames_in_eval_match_whole_frame_conversion(tmp_path):
    odd = write_build(tmp_path / "odd", {"odd": ("test", 2)}, height=37, width=51)
    batches = list(make_loader(odd.root, "test", mode="eval", batch_size=2, crop_size=None, num_workers=0))
    assert len(batches) == 1 and batches[0]["sdr"].shape == (2, 3, 3, 37, 51)
    for i, key in enumerate(batches[0]["key"]):
        for side in ("sdr", "hdr"):
            expected = reference_rgb(odd.samples[key], side, [0, 0, 37, 51], False, False, 0)
            torch.testing.assert_close(batches[0][side][i], expected, atol=2e-6, rtol=0)


def test_planes_output_converts_to_the_same_batch(build):
    common = dict(batch_size=4, crop_size=16, crops_per_sample=2, num_workers=0, rank=0, world_size=1, seed=9)
    planes = list(make_loader(build.root, "train", output="planes", **common))
    rgb = list(make_loader(build.root, "train", **common))
    for p, r in zip(planes, rgb, strict=True):
        assert p["sdr_y"].dtype == torch.uint8 and p["hdr_y"].dtype == torch.int16
        assert p["sdr_y"].shape == (4, 3, 20, 20) and p["hdr_cb"].shape == (4, 3, 10, 10)
        converted = planes_to_rgb_batch(p, device="cpu")
        assert torch.equal(converted["sdr"], r["sdr"]) and torch.equal(converted["hdr"], r["hdr"])


def test_global_frame_is_the_downsampled_whole_frame(build):
    batch = next(iter(make_loader(build.root, "train", batch_size=2, crop_size=16, global_size=12,
                                  num_workers=0, rank=0, world_size=1, flips=False, rot90=False)))
    assert batch["sdr_global"].shape == (2, 3, 3, 12, 12)
    key = batch["key"][0]
    for side in ("sdr", "hdr"):
        whole = reference_rgb(build.samples[key], side, [0, 0, 36, 52], False, False, 0)
        expected = torch.nn.functional.interpolate(whole, size=(12, 12), mode="area")
        assert float((batch[f"{side}_global"][0] - expected).abs().mean()) < 0.01


def test_global_frame_follows_the_crop_geometry(build):
    batch = next(iter(make_loader(build.root, "train", batch_size=8, crop_size=16, global_size=12, num_workers=0,
                                  rank=0, world_size=1, seed=2)))
    plain = next(iter(make_loader(build.root, "train", batch_size=8, crop_size=16, global_size=12, num_workers=0,
                                  rank=0, world_size=1, seed=2, flips=False, rot90=False)))
    assert batch["key"] == plain["key"]
    for i in range(8):
        expected = apply_geometry(plain["sdr_global"][i], bool(batch["flip_h"][i]), bool(batch["flip_v"][i]),
                                  int(batch["rot90"][i]))
        assert torch.equal(batch["sdr_global"][i], expected)


def test_colour_canary_narrow_white_is_exactly_one(tmp_path):
    storage = open_storage(tmp_path / "canary")
    y, c = np.full((3, 8, 8), 940, np.uint16), np.full((3, 4, 4), 512, np.uint16)
    sy, sc = np.full((3, 8, 8), 235, np.uint8), np.full((3, 4, 4), 128, np.uint8)
    sample = Sample(sample_key("white", 1), hdr=(y, c, c), sdr=(sy, sc, sc), metadata={})
    writer = ShardWriter(storage, "shards/white", ".staging/white")
    writer.write(sample.key, encode_sample(sample))
    writer.publish()
    batch = next(iter(make_loader(str(tmp_path / "canary" / "shards" / "white-000000.tar"), mode="eval",
                                  batch_size=1, crop_size=None, num_workers=0)))
    assert torch.all(batch["hdr"] == 1.0) and torch.all(batch["sdr"] == 1.0)
    assert batch["hdr_color"][0] == {"bit_depth": 10, "matrix": "bt2020nc", "full_range": False}


def test_colour_params_from_tags():
    assert color_params({"colorspace": "bt709", "color_range": "pc", "bit_depth": 8}, "sdr") == \
        ColorParams(8, "bt709", True)
    assert color_params({"colorspace": "unknown", "color_range": "unspecified"}, "hdr") == \
        ColorParams(10, "bt2020nc", False)
    with pytest.raises(LoaderError, match="smpte170m"):
        color_params({"colorspace": "smpte170m"}, "sdr")


def test_draw_crop_offsets_are_even_and_in_frame():
    rng = np.random.default_rng(0)
    for _ in range(200):
        crop = draw_crop(rng, 37, 51, (16, 20), flips=True, rot90=True)
        assert crop.top % 2 == 0 and crop.left % 2 == 0
        assert crop.top + 16 <= 37 and crop.left + 20 <= 51
    assert draw_crop(None, 37, 51, (16, 20), flips=True, rot90=True) == CropParams(10, 14, 16, 20)


# ---- order, workers, resume ------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_same_batches_whatever_the_number_of_workers(build):
    runs = {}
    for workers in (0, 1, 3):
        loader = make_loader(build.root, "train", batch_size=2, crop_size=16, num_workers=workers, rank=0,
                             world_size=1, seed=11)
        runs[workers] = [(b["key"], b["sdr"], b["hdr"]) for b in loader]
    assert len(runs[0]) == 6
    for workers in (1, 3):
        assert [r[0] for r in runs[workers]] == [r[0] for r in runs[0]]
        assert all(torch.equal(a[1], b[1]) and torch.equal(a[2], b[2]) for a, b in zip(runs[workers], runs[0]))


def test_epochs_advance_by_themselves_and_reshuffle(build):
    loader = make_loader(build.root, "train", batch_size=2, crop_size=16, num_workers=0, rank=0, world_size=1)
    first, second = keys_of(loader), keys_of(loader)
    assert loader.epoch == 2 and loader.position == 0
    assert sorted(sum(first, [])) == sorted(sum(second, [])) and first != second
    loader.set_epoch(0)
    assert keys_of(loader) == first


def test_resume_mid_epoch_gives_the_same_batches(build):
    options = dict(batch_size=2, crop_size=16, num_workers=0, rank=0, world_size=1, seed=4)
    straight = make_loader(build.root, "train", **options)
    reference = [(b["epoch"], b["batch_index"], b["key"], b["hdr"]) for _ in range(2) for b in straight]

    interrupted = make_loader(build.root, "train", **options)
    served = []
    for batch in interrupted:
        served.append((batch["epoch"], batch["batch_index"], batch["key"], batch["hdr"]))
        if len(served) == 4:
            break
    state = interrupted.state_dict()
    assert state["epoch"] == 0 and state["position"] == 4

    resumed = make_loader(build.root, "train", **{**options, "num_workers": 2})
    resumed.load_state_dict(state)
    assert resumed.position == 4
    for _ in range(2):
        served += [(b["epoch"], b["batch_index"], b["key"], b["hdr"]) for b in resumed]
    served = served[:len(reference)]
    assert [s[:3] for s in served] == [r[:3] for r in reference]
    assert all(torch.equal(s[3], r[3]) for s, r in zip(served, reference))


def test_resume_refuses_another_plan(build):
    loader = make_loader(build.root, "train", batch_size=2, crop_size=16, num_workers=0, rank=0, world_size=1)
    state = loader.state_dict()
    other = make_loader(build.root, "train", batch_size=2, crop_size=16, num_workers=0, rank=0, world_size=2)
    with pytest.raises(LoaderError, match="another plan"):
        other.load_state_dict(state)
    other.load_state_dict({**state, "position": 99}, strict=False)
    assert other.position == len(other)


# ---- evaluation ----------------------------------------------------------------------------------------------------


def test_eval_reads_each_sample_once_across_ranks_in_order(build):
    per_rank = []
    for rank in range(3):
        loader = make_loader(build.root, "test", mode="eval", batch_size=1, crop_size=None, num_workers=2,
                             rank=rank, world_size=3)
        per_rank.append([(key, bool(valid)) for b in loader for key, valid in zip(b["key"], b["valid"])])
    assert len({len(r) for r in per_rank}) == 1  # same number of batches on every rank
    assert [key for rows in per_rank for key, valid in rows if valid] == build.keys["test"]
    assert sum(not valid for rows in per_rank for _, valid in rows) == 1  # 5 samples over 3 ranks: 1 pad


def test_eval_centre_crop_without_augmentation(build):
    batch = next(iter(make_loader(build.root, "test", mode="eval", batch_size=2, crop_size=16, num_workers=0)))
    assert batch["crop"][0].tolist() == [10, 18, 16, 16]
    assert not batch["flip_h"].any() and not batch["flip_v"].any() and not batch["rot90"].any()


# ---- sources and options -------------------------------------------------------------------------------------------


def test_shard_list_source_without_index(build):
    shards = [str(build.root / name) for name in build.shards["train"]]
    catalog = load_catalog(shards)
    assert sorted(catalog.keys) == sorted(build.keys["train"])
    assert (catalog.heights == -1).all()
    loader = make_loader(shards, batch_size=2, crop_size=16, num_workers=0, rank=0, world_size=1)
    assert sorted(sum(keys_of(loader), [])) == sorted(build.keys["train"])


def test_unknown_split_and_bad_options_are_refused(build):
    with pytest.raises(LoaderError, match="splits there"):
        make_dataset(build.root, "valid")
    with pytest.raises(LoaderError, match="index"):
        make_dataset(build.root / "shards")
    with pytest.raises(LoaderError, match="smaller than crop_size"):
        make_dataset(build.root, "train", crop_size=64, rank=0, world_size=1)
    with pytest.raises(LoaderError, match="no full batch"):
        make_dataset(build.root, "train", batch_size=64, crop_size=16, rank=0, world_size=1)
    for bad in (dict(crop_size=15), dict(batch_size=4, crops_per_sample=3), dict(crop_size=(16, 32)),
                dict(mode="eval", crops_per_sample=2, batch_size=2), dict(global_size=(8, 16)),
                dict(on_damage="ignore"), dict(remainder="pad")):
        with pytest.raises(LoaderError):
            LoaderOptions(**bad)
    LoaderOptions(crop_size=(16, 32), rot90=False, global_size=(8, 16))


def test_loader_state_is_plain_data(build):
    loader = make_loader(build.root, "train", batch_size=2, crop_size=16, num_workers=0, rank=0, world_size=1)
    buffer = io.BytesIO()
    torch.save({"loader": loader.state_dict()}, buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=True)["loader"] == loader.state_dict()
    assert isinstance(loader, TripletLoader)


# ---- the faster array reader -------------------------------------------------------------------------------------


@pytest.mark.parametrize("array", [np.zeros((3, 4, 5), np.uint16), np.arange(3 * 37 * 51, dtype=np.uint16)
                                   .reshape(3, 37, 51), np.zeros((0, 3), np.uint8), np.arange(70000, dtype=np.uint8),
                                   np.asfortranarray(np.arange(35.0).reshape(5, 7))])
def test_codec_reader_equals_numpy_load(array):
    data = encode_array(array)
    reference = np.load(io.BytesIO(pa.CompressedInputStream(pa.BufferReader(data), "zstd").read()),
                        allow_pickle=False)
    for decoded in (decode_array(memoryview(data)), decode_array(data)):
        assert decoded.dtype == reference.dtype and decoded.shape == reference.shape
        assert np.array_equal(decoded, reference)


def test_codec_reader_refuses_damage_and_pickles():
    data = bytearray(encode_array(np.arange(5000, dtype=np.uint16)))
    with pytest.raises(SampleFormatError):
        decode_array(bytes(data[:len(data) // 2]))
    with pytest.raises(SampleFormatError, match="magic"):
        decode_array(b"not zstd at all")
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(SampleFormatError, match="header"):
        decode_array(pa.Codec("zstd").compress(buffer.getvalue(), asbytes=True))
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((3, 4), np.uint16))
    hostile = buffer.getvalue().replace(b"'shape': (3, 4)", b"'shape': (((((0)", 1)
    with pytest.raises(SampleFormatError, match="header"):  # never evaluated
        decode_array(pa.Codec("zstd").compress(hostile, asbytes=True))


# ---- GPU and the real build ----------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_planes_convert_on_the_gpu_like_the_cpu(build):
    common = dict(batch_size=4, crop_size=16, crops_per_sample=2, num_workers=0, rank=0, world_size=1, seed=9)
    planes = next(iter(make_loader(build.root, "train", output="planes", pin_memory=True, **common)))
    rgb = next(iter(make_loader(build.root, "train", **common)))
    converted = planes_to_rgb_batch(planes, device="cuda")
    assert converted["hdr"].device.type == "cuda"
    torch.testing.assert_close(converted["hdr"].cpu(), rgb["hdr"], atol=1e-6, rtol=0)
    torch.testing.assert_close(converted["sdr"].cpu(), rgb["sdr"], atol=1e-6, rtol=0)


@pytest.mark.slow
def test_demo_build_through_the_loader(tmp_path, ray_session):
    from fmstf_data.store.samples import decode_sample
    from pipelines.build import run_build
    from pipelines.options import BuildOptions
    from tests.conftest import DEMO_MANIFEST

    out = tmp_path / "out"
    assert run_build(BuildOptions(manifest_path=str(DEMO_MANIFEST), out=str(out), cache_dir=str(tmp_path / "cache"),
                                  workers=2)).exit_code == 0
    train = make_loader(out, "train", batch_size=4, crop_size=128, num_workers=2, rank=0, world_size=1)
    batches = list(train)
    assert len(batches) == len(train) > 0
    with tarfile.open(out / "shards" / "test" / "harbor-000000.tar") as tar:
        members = {m.name.split(".", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers()
                   if m.name.startswith("harbor_000004.")}
    stored = decode_sample(members)
    evaluation = make_loader(out, "test", mode="eval", batch_size=1, crop_size=None, num_workers=0)
    first = next(iter(evaluation))
    assert first["key"] == ["harbor_000004"] and first["hdr_color"][0]["matrix"] == "bt2020nc"
    expected = planes_to_rgb(*stored.hdr, bit_depth=10, matrix="bt2020nc", full_range=False)
    torch.testing.assert_close(first["hdr"][0], torch.from_numpy(expected), atol=2e-6, rtol=0)


def test_decode_threads_do_not_change_the_batches(tall_builds):
    ranged, _ = tall_builds
    runs = []
    for threads in (1, 3):
        loader = make_loader(ranged.root, "train", batch_size=2, crop_size=16, num_workers=0, rank=0, world_size=1,
                             seed=4, decode_threads=threads)
        runs.append(list(loader))
        assert loader.dataset.reader.decode_threads == threads
    for one, many in zip(*runs, strict=True):
        assert one["key"] == many["key"] and torch.equal(one["sdr"], many["sdr"]) and torch.equal(one["hdr"], many["hdr"])
