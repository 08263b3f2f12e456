"""The main job end to end: `fmstf-data build` on the demo manifest and on broken pairs, resume, determinism."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
import webdataset as wds

from fmstf_data.store.samples import decode_sample
from pipelines.build import run_build
from pipelines.cli import main
from pipelines.options import BuildOptions
from tests.conftest import DEMO_MANIFEST, ROOT, write_retagged_copy

DEMO = ROOT / "manifests" / "demo"


def build_demo(out: Path, manifest: Path = DEMO_MANIFEST, **changes) -> object:
    options = BuildOptions(manifest_path=str(manifest), out=str(out), cache_dir=str(out.parent / "cache"),
                           workers=2, **changes)
    return run_build(options)


@pytest.fixture(scope="module")
def demo_build(tmp_path_factory, ray_session):
    out = tmp_path_factory.mktemp("demo") / "out"
    result = build_demo(out)
    return out, result


def truth(name: str) -> dict:
    return json.loads((DEMO / f"{name}.truth.json").read_text())


def pyav_planes(path: Path) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Planes of every frame, decoded with plain PyAV (to_ndarray of the stacked 4:2:0 layout), in output order."""
    planes = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            stacked = frame.to_ndarray()  # yuv420p10le: [h * 3 / 2, w] uint16 for even sizes
            height, width = frame.height, frame.width
            chroma = stacked[height:].reshape(2, height // 2, width // 2)
            planes.append((stacked[:height], chroma[0], chroma[1]))
    return planes


def test_demo_build_succeeds_with_true_offsets_and_cuts(demo_build):
    out, result = demo_build
    assert result.exit_code == 0, result.report["summary"]
    pairs = pq.read_table(out / "index" / "pairs.parquet").to_pylist()
    assert [(p["pair_id"], p["split"], p["status"]) for p in pairs] == [
        ("city", "train", "ok"), ("forest", "train", "ok"), ("harbor", "test", "ok")]
    for pair in pairs:
        assert pair["offset_frames"] == truth(pair["pair_id"])["offset_frames"]
    assert pairs[2]["cut_hdr_frames"] == [24]
    assert "256x144 resampled to 320x180" in pairs[1]["geometry"]

    samples = pq.read_table(out / "index" / "samples.parquet").to_pylist()
    assert samples and {s["split"] for s in samples} == {"train", "test"}
    for sample in samples:
        offset = truth(sample["pair_id"])["offset_frames"]
        centre = sample["centre_frame"]
        assert sample["key"] == f"{sample['pair_id']}_{centre:06d}"
        assert sample["hdr_frames"] == [centre - 1, centre, centre + 1]
        assert sample["sdr_frames"] == [f - offset for f in sample["hdr_frames"]]
        cuts = truth(sample["pair_id"])["shot_starts"][1:]
        assert not any(centre - 1 < cut <= centre + 1 for cut in cuts), "a triplet spans a cut"
        assert sample["shard"].startswith(f"shards/{sample['split']}/{sample['pair_id']}-")
    centres = [s["centre_frame"] for s in samples if s["pair_id"] == "city"]
    assert len({c // 4 for c in centres}) == len(centres)  # the manifest's stride: one centre per 4-frame window

    summary = (out / "report" / "summary.txt").read_text()
    assert "ok      city: " in summary and "FAILED" not in summary
    assert (out / "report" / "previews" / "city.png").read_bytes()[:4] == b"\x89PNG"
    report = json.loads((out / "report" / "report.json").read_text())
    assert report["totals"]["train"]["pairs_ok"] == 2 and report["totals"]["test"]["pairs_ok"] == 1


def _lists(value: object):
    if isinstance(value, list):
        yield value
        for item in value:
            yield from _lists(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _lists(item)


def test_per_frame_diagnostics_go_to_frames_parquet_and_records_stay_summaries(demo_build):
    out, _ = demo_build
    report = json.loads((out / "report" / "report.json").read_text())
    samples = pq.read_table(out / "index" / "samples.parquet").to_pylist()
    for record in report["pairs"]:
        pair_id = record["pair_id"]
        known = truth(pair_id)
        frames = pq.read_table(out / "pairs" / f"{pair_id}.frames.parquet").to_pylist()
        assert record["frames"] == f"pairs/{pair_id}.frames.parquet"
        # one row per HDR frame, in order, from frame 0 to the last (forest's SDR ends 2 frames early: the frames
        # after it are not decoded, and have no partner)
        assert [row["hdr_frame"] for row in frames] == list(range(known["hdr_frame_count"]))
        assert known["hdr_frame_count"] >= record["extraction"]["decided_frames"] > known["hdr_frame_count"] // 2
        for row in frames[record["extraction"]["decided_frames"]:]:
            assert row["sdr_frame"] is None and row["status"] == "no SDR frame"
        verified = [row for row in frames if row["status"].startswith("verified")]
        assert len(verified) == record["extraction"]["verified_frames"] > 0
        for row in verified:  # the true offset (from the demo's generator), frame by frame
            assert row["offset_frames"] == known["offset_frames"], row
            assert row["sdr_frame"] == row["hdr_frame"] - known["offset_frames"]
        before_sdr = [row for row in frames if row["hdr_frame"] < known["offset_frames"]]
        assert len(before_sdr) == known["offset_frames"]  # the SDR version starts later: no partner
        assert all(row["sdr_frame"] is None and row["status"] == "no SDR frame" for row in before_sdr)
        assert [row["hdr_frame"] for row in frames if row["shot_start"]] == known["shot_starts"][1:]
        assert sorted(row["hdr_frame"] for row in frames if row["kept_centre"]) == sorted(
            s["centre_frame"] for s in samples if s["pair_id"] == pair_id)
        # the record (and so report.json) holds no list that grows with the frames
        longest = max((len(values) for values in _lists(record)), default=0)
        assert longest < len(frames) // 4, f"{pair_id}: a list of {longest} items in the summary"


def test_shards_read_with_plain_tools_and_hdr_planes_are_bit_exact(demo_build):
    out, _ = demo_build
    index = {s["key"]: s for s in pq.read_table(out / "index" / "samples.parquet").to_pylist()}
    shard_files = sorted((out / "shards").rglob("*.tar"))
    listed = subprocess.run(["tar", "tf", str(shard_files[0])], capture_output=True, text=True, check=True)
    assert listed.stdout.splitlines()[0].endswith(".json")
    seen = set()
    decoded = {pair: pyav_planes(DEMO / f"{pair}.hdr.mp4") for pair in ("city", "forest", "harbor")}
    for shard in shard_files:
        split = shard.parent.name
        for item in wds.WebDataset(str(shard), shardshuffle=False):
            sample = decode_sample({k: v for k, v in item.items() if not k.startswith("__")})
            row = index[sample.key]
            assert row["split"] == split == sample.metadata["split"]  # contract 4
            seen.add(sample.key)
            for position, frame_index in enumerate(row["hdr_frames"]):  # every stored HDR plane, bit for bit
                for stored, expected in zip(sample.hdr, decoded[row["pair_id"]][frame_index]):
                    assert np.array_equal(stored[position], expected), f"{sample.key} frame {frame_index}"
    assert seen == set(index)


def test_bad_pairs_fail_with_reasons_and_the_rest_completes(tmp_path, ray_session):
    sources = tmp_path / "sources"
    sources.mkdir()
    write_retagged_copy(DEMO / "city.hdr.mp4", sources / "hlg.hdr.mp4", transfer="arib-std-b67", color_trc=18)
    shutil.copy(DEMO / "city.sdr.mp4", sources / "city.sdr.mp4")
    manifest = tmp_path / "broken.yaml"
    manifest.write_text(f"""version: 1
name: broken
pairs:
  - id: good
    split: train
    hdr: {DEMO}/city.hdr.mp4
    sdr: {DEMO}/city.sdr.mp4
  - id: hlg
    split: train
    hdr: sources/hlg.hdr.mp4
    sdr: sources/city.sdr.mp4
  - id: mixed-up
    split: test
    hdr: {DEMO}/harbor.hdr.mp4
    sdr: {DEMO}/forest.sdr.mp4
""")
    result = build_demo(tmp_path / "out", manifest)
    status = {r["pair_id"]: r for r in result.records}
    assert status["good"]["status"] == "ok" and status["good"]["samples"] > 0
    assert status["hlg"]["status"] == "probe" and "HLG" in status["hlg"]["reason"]
    assert status["mixed-up"]["status"] == "align"
    assert "do not look like the same video" in status["mixed-up"]["reason"]
    assert "threshold" in status["mixed-up"]["reason"]
    assert result.exit_code == 1
    pairs = pq.read_table(tmp_path / "out" / "index" / "pairs.parquet").to_pylist()
    assert {p["pair_id"]: p["status"] for p in pairs} == {"good": "ok", "hlg": "probe", "mixed-up": "align"}
    assert not list((tmp_path / "out" / "shards").rglob("hlg-*.tar"))


def digests(out: Path) -> dict[str, str]:
    names = [*sorted((out / "shards").rglob("*.tar")), out / "index" / "samples.parquet",
             out / "index" / "pairs.parquet"]
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in names}


def test_rebuild_is_byte_identical_and_resume_skips_complete_pairs(demo_build, tmp_path, ray_session):
    out, _ = demo_build
    again = build_demo(tmp_path / "again")
    assert digests(tmp_path / "again") == digests(out)
    resumed = build_demo(tmp_path / "again")
    assert resumed.skipped == ["city", "forest", "harbor"]
    assert digests(tmp_path / "again") == digests(out)
    assert again.exit_code == resumed.exit_code == 0


def test_killed_build_leaves_no_partial_shard_and_rerun_finishes_identically(demo_build, tmp_path):
    out, _ = demo_build
    target = tmp_path / "killed"
    command = [sys.executable, "-m", "pipelines.cli", "build", "--manifest", str(DEMO_MANIFEST), "--out", str(target),
               "--cache", str(tmp_path / "cache"), "--workers", "1", "--no-progress"]
    log = tmp_path / "killed.log"
    with log.open("w") as stream:
        process = subprocess.Popen(command, cwd=ROOT, start_new_session=True, stdout=stream, stderr=stream)
    deadline = time.monotonic() + 120
    while not list((target / "pairs").glob("*.json")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    assert process.poll() is None, f"the build ended before it could be killed:\n{log.read_text()[-3000:]}"
    os.killpg(process.pid, signal.SIGKILL)  # the driver and its Ray workers, mid-build
    process.wait()
    for shard in (target / "shards").rglob("*.tar") if (target / "shards").exists() else []:
        with tarfile.open(shard) as archive:  # every visible shard is complete
            assert archive.getnames()
    # half-written files are only under .staging or hidden temporaries (.name.<hex>.partial) beside their target
    assert all(".staging" in str(p) or p.name.startswith(".") for p in target.rglob("*.partial"))
    complete = sorted(p.stem for p in (target / "pairs").glob("*.json"))
    rerun = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    report = json.loads((target / "report" / "report.json").read_text())
    assert set(complete) <= set(report["resumed_pairs"]) and len(report["resumed_pairs"]) >= 1
    assert digests(target) == digests(out)
    assert not list(target.rglob("*.partial"))  # the rerun cleaned what the kill left
    assert not (target / ".staging").exists() or not list((target / ".staging").rglob("*"))


def test_cli_joins_an_existing_ray_cluster(ray_session, tmp_path):
    address = ray_session.get_runtime_context().gcs_address
    command = [sys.executable, "-m", "pipelines.cli", "-v", "build", "--manifest", str(DEMO_MANIFEST), "--out",
               str(tmp_path / "out"), "--cache", str(tmp_path / "cache"), "--ray-address", address, "--only", "city",
               "--no-progress"]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"joining the Ray cluster at {address}" in run.stderr
    assert "Started a local Ray instance" not in run.stderr
    assert "ok      city" in run.stdout and "forest" not in run.stdout


def test_build_writes_to_s3_through_a_loopback_s3_server(tmp_path):
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        credentials = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
        s3 = boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
        s3.create_bucket(Bucket="datasets")
        uri = f"s3://datasets/demo?endpoint_override={host}:{port}&scheme=http&region=us-east-1"
        command = [sys.executable, "-m", "pipelines.cli", "build", "--manifest", str(DEMO_MANIFEST), "--out", uri,
                   "--cache", str(tmp_path / "cache"), "--only", "harbor", "--no-progress"]
        run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                             env={**os.environ, **credentials})
        assert run.returncode == 0, run.stderr[-2000:]
        assert "s3://datasets/demo/index/samples.parquet?endpoint_override=" in run.stdout
        keys = {item["Key"] for item in s3.list_objects_v2(Bucket="datasets")["Contents"]}
        assert {"demo/shards/test/harbor-000000.tar", "demo/index/samples.parquet", "demo/pairs/harbor.json"} <= keys
        shard = s3.get_object(Bucket="datasets", Key="demo/shards/test/harbor-000000.tar")["Body"].read()
        local = tmp_path / "harbor-000000.tar"
        local.write_bytes(shard)
        keys_in_shard = [decode_sample({k: v for k, v in item.items() if not k.startswith("__")}).key
                         for item in wds.WebDataset(str(local), shardshuffle=False)]
        assert keys_in_shard and all(key.startswith("harbor_") for key in keys_in_shard)

        # credentials in the URI instead of the environment: they work, and the secret is in no output
        secret = "s3cr3t-in-the-uri"
        secret_uri = f"s3://test:{secret}@datasets/inuri?endpoint_override={host}:{port}&scheme=http&region=us-east-1"
        environment = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
        run = subprocess.run([command[0], "-m", "pipelines.cli", "-v", *command[3:command.index("--out") + 1],
                              secret_uri, *command[command.index("--out") + 2:]], cwd=ROOT, capture_output=True, text=True, timeout=300, env=environment)
        assert run.returncode == 0, run.stderr[-2000:]
        assert secret not in run.stdout + run.stderr and "s3://datasets/inuri/index/samples.parquet?" in run.stdout
        assert "\x1b[" not in run.stderr  # task logs reach a pipe without ANSI escapes
        written = [item["Key"] for item in s3.list_objects_v2(Bucket="datasets", Prefix="inuri/")["Contents"]]
        assert "inuri/report/report.json" in written and "inuri/pairs/harbor.frames.parquet" in written
        for key in written:
            body = s3.get_object(Bucket="datasets", Key=key)["Body"].read()
            assert secret.encode() not in body, key
    finally:
        server.stop()


def test_cli_probe_and_errors(capsys, tmp_path):
    assert main(["probe", str(DEMO / "city.hdr.mp4")]) == 0
    text = capsys.readouterr().out
    assert "HDR10" in text and "0.005 .. 4000 cd/m²" in text  # verdict and mastering display luminance
    assert main(["probe", str(DEMO / "city.sdr.mp4"), "--json", "--as", "hdr"]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["verdict"] == "SDR" and payload["problem_as_role"]
    (tmp_path / "notes.txt").write_text("not a video")
    assert main(["probe", str(tmp_path / "notes.txt")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: x\npairs:\n  - id: a\n    split: trian\n    hdr: a.mp4\n    sdr: b.mp4\n")
    assert main(["build", "--manifest", str(bad), "--out", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err
    assert "bad.yaml:5" in error and "split" in error


def test_verify_passes_on_the_build_and_names_damage(demo_build, tmp_path, capsys):
    out, _ = demo_build
    assert main(["verify", str(out), "--deep"]) == 0
    samples = pq.read_table(out / "index" / "samples.parquet").num_rows
    assert f"{samples} sample(s) (deep): ok" in capsys.readouterr().out
    damaged = tmp_path / "damaged"
    shutil.copytree(out, damaged)
    shard = next((damaged / "shards" / "test").glob("*.tar"))
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 3])
    stray = damaged / "shards" / "train" / "stray-000000.tar"
    stray.write_bytes(b"")
    assert main(["verify", str(damaged)]) == 1
    text = capsys.readouterr().out
    assert "not a complete tar" in text and "in samples.parquet but in no shard" in text
    assert "stray-000000.tar: on disk but not listed" in text


def test_verify_deep_and_the_loader_catch_a_flipped_byte_inside_a_plane_payload(demo_build, tmp_path, capsys):
    """The byte flip that zstd decodes without complaint (the middle of a payload): the plane checksum in the
    sample's JSON catches it, in ``verify --deep`` and in the loader (damage policy ``raise``)."""
    from fmstf_data.errors import DamagedShardError
    from fmstf_data.loader import make_loader

    out, _ = demo_build
    damaged = tmp_path / "flipped"
    shutil.copytree(out, damaged)
    shard = damaged / "shards" / "test" / "harbor-000000.tar"
    with tarfile.open(shard) as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith(".hdr_y.npy.zst"))
    from fmstf_data.store.samples import decode_array

    data = bytearray(shard.read_bytes())
    payload = bytes(data[member.offset_data:member.offset_data + member.size])
    original = np.array(decode_array(payload))
    for position in range(member.size // 2, member.size):  # a flip zstd itself does not notice
        flipped = bytearray(payload)
        flipped[position] ^= 0x10
        try:
            if not np.array_equal(decode_array(bytes(flipped)), original):
                break
        except Exception:  # noqa: BLE001 - zstd noticed this one: try the next byte
            continue
    else:
        pytest.fail("no silent flip found")
    data[member.offset_data + position] ^= 0x10
    shard.write_bytes(bytes(data))
    assert main(["verify", str(damaged), "--deep"]) == 1
    assert "hdr_y.npy.zst is damaged" in capsys.readouterr().out
    assert main(["verify", str(damaged)]) == 1  # the stored bytes' CRC-32s, checked without decompressing
    assert "hdr_y.npy.zst is damaged" in capsys.readouterr().out
    loader = make_loader(str(damaged), "test", batch_size=1, crop_size=None, num_workers=0, mode="eval",
                         flips=False, rot90=False)
    with pytest.raises(DamagedShardError):
        for _ in loader:
            pass


def test_verify_and_the_loader_check_the_byte_offsets_in_the_index(demo_build, tmp_path, capsys):
    """The loader reads samples by the index's byte offsets, without tar headers: verify checks those offsets
    against the tars, and a stale offset makes the loader refuse the sample (its JSON checksum), not serve
    other bytes."""
    import pyarrow as pa

    from fmstf_data.errors import DamagedShardError
    from fmstf_data.loader import make_loader

    out, _ = demo_build
    assert main(["verify", str(out)]) == 0
    capsys.readouterr()
    stale = tmp_path / "stale"
    shutil.copytree(out, stale)
    table = pq.read_table(stale / "index" / "samples.parquet")
    test_rows = [i for i, split in enumerate(table.column("split").to_pylist()) if split == "test"]
    offsets = table.column("offset_bytes").to_pylist()
    offsets[test_rows[1]] += 512
    table = table.set_column(table.column_names.index("offset_bytes"), "offset_bytes", pa.array(offsets, pa.int64()))
    pq.write_table(table, stale / "index" / "samples.parquet")
    assert main(["verify", str(stale)]) == 1
    assert "the index says offset_bytes=" in capsys.readouterr().out
    loader = make_loader(str(stale), "test", batch_size=1, crop_size=32, num_workers=0, mode="eval")
    with pytest.raises(DamagedShardError, match="checksum in the index"):
        for _ in loader:
            pass


def test_a_source_replaced_in_place_is_rebuilt_on_resume(tmp_path, ray_session):
    sources = tmp_path / "sources"
    sources.mkdir()
    for name in ("city.hdr.mp4", "city.sdr.mp4"):
        shutil.copy(DEMO / name, sources / name)
    manifest = tmp_path / "one.yaml"
    manifest.write_text("version: 1\nname: one\npairs:\n  - id: city\n    split: train\n"
                        "    hdr: sources/city.hdr.mp4\n    sdr: sources/city.sdr.mp4\n")
    assert build_demo(tmp_path / "out", manifest).skipped == []
    assert build_demo(tmp_path / "out", manifest).skipped == ["city"]
    shutil.copy(DEMO / "harbor.sdr.mp4", sources / "city.sdr.mp4")  # another video under the same name
    rebuilt = build_demo(tmp_path / "out", manifest)
    assert rebuilt.skipped == [] and rebuilt.records[0]["status"] == "align"
    assert not list((tmp_path / "out" / "shards").rglob("city-*.tar"))  # the old shards are taken down
    assert pq.read_table(tmp_path / "out" / "index" / "samples.parquet").num_rows == 0
    assert main(["verify", str(tmp_path / "out")]) == 0


#: content digests of the demo build recorded from commit 59d2803 (before the subpackage layout, when the alignment
#: thumbnails still came from torch's area interpolation); the new layout's build was byte-identical to it, shards and
#: samples.parquet, in one environment. Plane members count exactly; JSON members and index rows count with floats
#: rounded to 3 decimals (scores are float32 reductions whose last digits may depend on numpy's SIMD path), source
#: paths left out (they are absolute). A change that alters any stored code value, frame index or key fails.
#: Re-recorded for sample format 3 (banded planes, byte offsets in the index): the decompressed planes and the
#: JSON members (less the new ``bands``/``window_frames`` and the old ``plane_crc32``) were checked equal to
#: format 2's build of the same commit, and the index rows equal except for the byte sizes and offsets.
DEMO_CONTENT_DIGESTS = {
    "shards/test/harbor-000000.tar": "0aea8e71f411a67d76e9855812a2c0bc6865eb9944cf470113701eeeaa1c1001",
    "shards/train/city-000000.tar": "d5cb90a05a3f89a5186cd13c75fa21e12771955b6c5cbf20302e76250ea9b263",
    "shards/train/forest-000000.tar": "2f7f853524ad95c6c07821bb9d3411e16403e59f3f38ac3b1ef114e2ef83e6f2",
    "index/samples.parquet": "19be98eaa04181a5c2601862b24a5bc2629f98e80f260eac07bb0dfdf7106c0b",
    "index/pairs.parquet": "2fdc45edbe95b3477a546bb7d07c0a8cc46600a2315149f768769c9f421de729",
}
#: :func:`sample_digest` of the demo build, whatever its chunking (chunk_seconds 60, 0.5 and 0.2 agree)
DEMO_SAMPLE_DIGEST = "09b56bcf78da2c000f4c91ee223b42878ce41033378f7d661a726eff0bb0e67b"


def _rounded(value: object) -> object:
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    return value


def member_digests(shard: Path) -> list[tuple[str, bytes]]:
    """(name, sha256) of each member of a shard, in tar order, over what it stores independent of the writers'
    versions: ``.zst`` members decompressed, JSON members with rounded floats."""
    import pyarrow as pa

    digests = []
    with tarfile.open(shard) as tar:
        for member in tar.getmembers():
            data = tar.extractfile(member).read()
            if member.name.endswith(".zst"):
                data = pa.CompressedInputStream(pa.BufferReader(data), "zstd").read()
            elif member.name.endswith(".json"):
                data = json.dumps(_rounded(json.loads(data)), sort_keys=True).encode()
            digests.append((member.name, hashlib.sha256(data).digest()))
    return digests


def sample_digest(out: Path) -> str:
    """One digest of a build's samples whatever its shard layout (chunking): every member's decompressed bytes by
    name, and the sample index's rows without their shard names and byte offsets."""
    members = {name: digest.hex() for shard in (out / "shards").rglob("*.tar")
               for name, digest in member_digests(shard)}
    rows = [_rounded({key: value for key, value in row.items() if key not in ("shard", "offset_bytes")})
            for row in pq.read_table(out / "index" / "samples.parquet").to_pylist()]
    return hashlib.sha256(json.dumps([sorted(members.items()), rows], sort_keys=True).encode()).hexdigest()


def content_digests(out: Path) -> dict[str, str]:
    """Digests of what a build stores, independent of the zstd and parquet writers' versions: each shard's member
    names with the sha256 of their decompressed bytes (JSON members with rounded floats), and each index table's
    rows as sorted JSON (rounded floats)."""
    result = {}
    for shard in sorted((out / "shards").rglob("*.tar")):
        digest = hashlib.sha256()
        for name, member_digest in member_digests(shard):
            digest.update(name.encode() + b"\0" + member_digest)
        result[str(shard.relative_to(out))] = digest.hexdigest()
    for name in ("samples", "pairs"):
        rows = [_rounded({key: value for key, value in row.items() if not key.endswith("_source")})
                for row in pq.read_table(out / "index" / f"{name}.parquet").to_pylist()]
        result[f"index/{name}.parquet"] = hashlib.sha256(
            json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()
    return result


def test_demo_build_content_equals_the_recorded_digests(demo_build):
    out, _ = demo_build
    got = content_digests(out)
    changed = sorted(name for name in DEMO_CONTENT_DIGESTS if got.get(name) != DEMO_CONTENT_DIGESTS[name])
    assert set(got) == set(DEMO_CONTENT_DIGESTS), sorted(set(got) ^ set(DEMO_CONTENT_DIGESTS))
    assert not changed, f"the demo build's content changed in {changed}"


def test_bad_environments_get_one_line_and_exit_2(tmp_path, capsys):
    """An --out that is a file, a dangling symlink or under a file, and a Ray address where nothing listens: our
    error, one line, before any work."""
    (tmp_path / "file").write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere" / "deeper")
    for out, words in ((tmp_path / "file", "non-directory entry exists"), (tmp_path / "dangling", "exists"),
                       (tmp_path / "file" / "sub", "Not a directory")):
        assert main(["build", "--manifest", str(DEMO_MANIFEST), "--out", str(out), "--no-progress"]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and "cannot use the output location" in error and words in error, error
    with socket.socket() as unused:
        unused.bind(("127.0.0.2", 0))
        port = unused.getsockname()[1]  # bound, never listening: connections are refused
        run = subprocess.run([sys.executable, "-m", "pipelines.cli", "build", "--manifest", str(DEMO_MANIFEST),
                              "--out", str(tmp_path / "o"), "--ray-address", f"127.0.0.2:{port}", "--no-progress"],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)  # its own process: no Ray yet
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "nothing answers there" in run.stderr, run.stderr


def test_a_reader_that_goes_away_and_a_full_disk_are_not_tracebacks(tmp_path, capsys, monkeypatch):
    script = ("import sys\nfrom pipelines.cli import main\n"
              f"sys.exit(main(['probe', {str(DEMO / 'city.hdr.mp4')!r}, '--json']))\n")
    process = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.close()  # like `| head -0`: the reader is gone before the first write
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 141 and b"Traceback" not in stderr and b"BrokenPipe" not in stderr, stderr

    import errno

    import pipelines.align_cli

    def full_disk(args):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "plot.png"))

    monkeypatch.setattr(pipelines.align_cli, "run_align_command", full_disk)
    assert main(["align", "a.mp4", "b.mp4"]) == 2
    error = capsys.readouterr().err
    assert error == f"fmstf-data align: error: No space left on device ({tmp_path / 'plot.png'})\n"


def test_resume_checks_shard_sizes_and_on_request_their_checksums(demo_build, tmp_path):
    out, _ = demo_build
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    for pair in ("city", "forest", "harbor"):  # the record's size and sha256, computed here independently
        record = json.loads((copy / "pairs" / f"{pair}.json").read_text())
        for shard in record["shard_files"]:
            data = (copy / shard["name"]).read_bytes()
            assert (shard["size_bytes"], shard["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    city = copy / "shards" / "train" / "city-000000.tar"
    with open(city, "r+b") as handle:
        handle.truncate(city.stat().st_size // 2)
    result = build_demo(copy)
    assert result.exit_code == 0 and sorted(result.skipped) == ["forest", "harbor"]  # city rebuilt
    forest = copy / "shards" / "train" / "forest-000000.tar"
    damaged = bytearray(forest.read_bytes())
    damaged[len(damaged) // 2] ^= 0x01  # same size: only the checksum can tell
    forest.write_bytes(bytes(damaged))
    assert sorted(build_demo(copy).skipped) == ["city", "forest", "harbor"]
    result = build_demo(copy, verify_resume=True)
    assert sorted(result.skipped) == ["city", "harbor"]
    assert content_digests(copy) == DEMO_CONTENT_DIGESTS


def test_an_out_holding_foreign_files_is_refused_and_partial_files_are_cleaned(demo_build, tmp_path, capsys):
    from fmstf_data.store.storage import open_storage
    from pipelines.build import foreign_entries

    home_like = tmp_path / "home"
    home_like.mkdir()
    (home_like / "thesis.tex").write_text("years of work")
    assert main(["build", "--manifest", str(DEMO_MANIFEST), "--out", str(home_like), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert "holds files this tool did not write (thesis.tex)" in error and "--force" in error
    assert sorted(p.name for p in home_like.iterdir()) == ["thesis.tex"]  # nothing written, nothing deleted
    out, _ = demo_build
    assert foreign_entries(open_storage(out)) == []  # a finished build is all ours

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    leftovers = [copy / "index" / f".samples.parquet.{'a' * 32}.partial",
                 copy / "pairs" / f".city.json.{'b' * 32}.partial"]
    for leftover in leftovers:
        leftover.write_bytes(b"half")
    result = build_demo(copy)  # every pair complete: nothing rebuilt, leftovers removed
    assert sorted(result.skipped) == ["city", "forest", "harbor"]
    assert not any(leftover.exists() for leftover in leftovers)


def test_an_in_place_rebuild_retires_the_index_before_rewriting_shards(demo_build, tmp_path):
    out, _ = demo_build
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    seen = []

    def on_record(record):  # a pair finished: its shards were rewritten; the old index must be gone by now
        seen.append((record["pair_id"], (copy / "index" / "samples.parquet").exists()))

    options = BuildOptions(manifest_path=str(DEMO_MANIFEST), out=str(copy), cache_dir=str(tmp_path / "cache"),
                           workers=2, force=True, previews=False)
    assert run_build(options, on_record=on_record).exit_code == 0
    assert sorted(seen) == [("city", False), ("forest", False), ("harbor", False)]
    assert content_digests(copy) == DEMO_CONTENT_DIGESTS  # and the index comes back, the same


def test_help_texts_read_as_plain_text(capsys):
    for argv in (["--help"], ["build", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        text = capsys.readouterr().out
        assert "``" not in text and ":func:" not in text, text  # no reStructuredText leaking into --help
    assert "required except with" in text and "--dry-run" in text  # build --help: when --out is needed
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "exit codes: 0 success" in " ".join(capsys.readouterr().out.split())
