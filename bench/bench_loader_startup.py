"""Loader start-up on an object store: requests and seconds to make a dataset over a 10,000-sample build.

A build of ``--samples`` small samples (16x16 frames: the cost measured is per request, not per byte) in
``--pairs`` pairs, one shard each, is copied to a moto S3 server on loopback; a counting proxy
(``tests/s3_proxy.py``) sits between the loader and the server. Measured, side by side in one run:

- **offsets**: the index gives every sample's byte offsets (sample format 3): the catalog reads the split's index
  rows and one size per shard;
- **scan**: the same build with an index without offsets (as format-2 builds wrote it): the catalog walks every
  shard's tar headers, one ranged GET per member.

    python bench/bench_loader_startup.py                    # 10,000 samples in 100 shards
    python bench/bench_loader_startup.py --samples 1000     # a smaller one, to see what grows

Results are recorded in docs/loader.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.fs as pafs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' fixtures: real shards and a proxy

from fmstf_data.loader import make_dataset  # noqa: E402
from tests.loader_fixtures import write_build  # noqa: E402
from tests.s3_proxy import CountingProxy  # noqa: E402

BUCKET = "fmstf-startup-bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--pairs", type=int, default=100)
    args = parser.parse_args()
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's access log

    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    filesystem = pafs.S3FileSystem(endpoint_override=f"{host}:{port}", scheme="http", access_key="test",
                                   secret_key="test", region="us-east-1", allow_bucket_creation=True)
    filesystem.create_dir(BUCKET)
    per_pair = args.samples // args.pairs
    pairs = {f"p{i:04d}": ("train", per_pair) for i in range(args.pairs)}
    print(f"{args.pairs * per_pair} samples in {args.pairs} shards")
    with tempfile.TemporaryDirectory() as workdir:
        for name, offsets in (("offsets", True), ("scan", False)):
            started = time.perf_counter()
            build = write_build(Path(workdir) / name, pairs, height=16, width=16, with_offsets=offsets)
            pafs.copy_files(str(build.root), f"{BUCKET}/{name}", source_filesystem=pafs.LocalFileSystem(),
                            destination_filesystem=filesystem)
            print(f"  {name}: build written and uploaded in {time.perf_counter() - started:.0f} s", flush=True)
        for name in ("offsets", "scan"):
            with CountingProxy(host, port) as proxy:
                uri = (f"s3://test:test@{BUCKET}/{name}?endpoint_override={proxy.address}&scheme=http"
                       f"&region=us-east-1")
                started = time.perf_counter()
                dataset = make_dataset(uri, "train", batch_size=8, crop_size=8, rot90=False, rank=0, world_size=1)
                seconds = time.perf_counter() - started
                print(f"  {name}: {len(dataset.catalog)} samples catalogued in {seconds:.2f} s with "
                      f"{proxy.total()} requests ({dict(proxy.counts)})", flush=True)
    server.stop()


if __name__ == "__main__":
    main()
