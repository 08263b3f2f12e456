"""The loader over s3://, against a real S3 protocol server (moto's server mode) on loopback started by the test."""

from __future__ import annotations

import os
import tarfile

import pyarrow.fs as pafs
import pytest
import torch

from fmstf_data.errors import DamagedShardError
from fmstf_data.loader import make_loader
from tests.loader_fixtures import write_build

moto_server = pytest.importorskip("moto.server")

BUCKET = "fmstf-loader-test"
PAIRS = {"alpha": ("train", 5), "beta": ("train", 2), "zeta": ("test", 3)}
OPTIONS = dict(batch_size=2, crop_size=16, seed=3)

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on 127.0.0.1, a bucket holding a copy of a local build; yields (local root, s3 URI, fs)."""
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    filesystem = pafs.S3FileSystem(endpoint_override=f"{host}:{port}", scheme="http", access_key="test",
                                   secret_key="test", region="us-east-1", allow_bucket_creation=True)
    filesystem.create_dir(BUCKET)
    build = write_build(tmp_path_factory.mktemp("s3") / "out", PAIRS, max_shard_bytes={"alpha": 60_000})
    pafs.copy_files(str(build.root), f"{BUCKET}/out", source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=filesystem)
    query = f"endpoint_override={host}:{port}&scheme=http&region=us-east-1"
    yield build, f"s3://test:test@{BUCKET}/out?{query}", query, filesystem
    server.stop()


def same_batches(a, b) -> bool:
    return all(x["key"] == y["key"] and torch.equal(x["sdr"], y["sdr"]) and torch.equal(x["hdr"], y["hdr"])
               for x, y in zip(a, b, strict=True))


def test_s3_build_serves_the_local_batches(s3):
    build, uri, _, _ = s3
    remote = list(make_loader(uri, "train", num_workers=0, rank=0, world_size=1, **OPTIONS))
    local = list(make_loader(build.root, "train", num_workers=0, rank=0, world_size=1, **OPTIONS))
    assert len(remote) == 3 and same_batches(remote, local)
    evaluation = make_loader(uri, "test", mode="eval", batch_size=2, crop_size=None, num_workers=0)
    assert [key for b in evaluation for key in b["key"]] == build.keys["test"]


def test_s3_with_worker_processes(s3):
    build, uri, _, _ = s3
    loader = make_loader(uri, "train", num_workers=2, rank=1, world_size=2, **OPTIONS)
    assert loader.multiprocessing_context == "spawn"  # object-store clients are not fork-safe
    local = make_loader(build.root, "train", num_workers=0, rank=1, world_size=2, **OPTIONS)
    assert same_batches(list(loader), list(local))


def test_s3_shard_urls(s3):
    build, _, query, _ = s3
    urls = [f"s3://test:test@{BUCKET}/out/{name}?{query}" for name in build.shards["train"]]
    loader = make_loader(urls, num_workers=0, rank=0, world_size=1, **OPTIONS)
    assert loader.dataset.catalog.keys == build.keys["train"]  # shards in the order given, tar order inside
    served = [key for b in loader for key in b["key"]]
    assert len(served) == len(set(served)) == 6 and set(served) <= set(build.keys["train"])


def test_s3_truncated_object_raises(s3):
    build, _, query, filesystem = s3
    name = build.shards["train"][0]
    data = (build.root / name).read_bytes()
    with filesystem.open_output_stream(f"{BUCKET}/cut/{name}") as stream:
        stream.write(data[:len(data) - tarfile.RECORDSIZE - 2000])  # past the end-of-archive padding
    with pytest.raises(DamagedShardError, match="truncated") as caught:
        make_loader([f"s3://test:test@{BUCKET}/cut/{name}?{query}"], num_workers=0, **{**OPTIONS, "batch_size": 1})
    assert f"s3://{BUCKET}/cut/{name}" in str(caught.value) and "test:test" not in str(caught.value)


def test_start_up_requests_do_not_grow_with_the_samples(s3, tmp_path):
    """Making a loader over s3:// costs a fixed number of requests per shard when the index gives byte offsets:
    the same for 12 and 120 samples in the same shards. An index without offsets (format-2 builds) is scanned,
    which costs requests per member: the count grows, so the check can fail."""
    from tests.s3_proxy import CountingProxy

    _, _, query, filesystem = s3
    host, port = query.split("endpoint_override=")[1].split("&")[0].split(":")
    counts = {}
    for name, count, offsets in (("small", 12, True), ("large", 120, True), ("scanned", 12, False)):
        build = write_build(tmp_path / name, {"alpha": ("train", count), "beta": ("train", count // 2)},
                            height=8, width=8, with_offsets=offsets)
        pafs.copy_files(str(build.root), f"{BUCKET}/{name}", source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=filesystem)
        with CountingProxy(host, int(port)) as proxy:
            proxy_query = f"endpoint_override={proxy.address}&scheme=http&region=us-east-1"
            dataset_uri = f"s3://test:test@{BUCKET}/{name}?{proxy_query}"
            from fmstf_data.loader import make_dataset
            dataset = make_dataset(dataset_uri, "train", batch_size=2, crop_size=4, rot90=False, rank=0,
                                   world_size=1)
            assert len(dataset.catalog) == count + count // 2
            counts[name] = proxy.total()
    assert counts["small"] == counts["large"] <= 2 + 6 + 2 * 2  # index (exists, footer, row groups), 2 shards
    assert counts["scanned"] > counts["small"] + 12 * 7  # a header read per member
