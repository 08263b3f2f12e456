"""The build on Ray: the private instance on loopback, what tasks declare, the output checked from the workers,
failing attempts that leave other attempts' work alone, and no secret in what a build shows."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys

import pytest

from fmstf_data.manifest.load import load_manifest
from fmstf_data.store.storage import StorageError, open_storage, redact_uri
from pipelines.build import plan_pairs, run_build
from pipelines.chunk_task import extract_chunk
from pipelines.cli import parse_size
from pipelines.cluster import PRIVATE_NODE_ADDRESS, _probe_out, check_out_reachable, task_resources
from pipelines.options import BuildOptions, OptionsError
from pipelines.pair_task import align_pair, finalize_pair
from tests.conftest import DEMO_MANIFEST, ROOT


def options(tmp_path, **changes) -> BuildOptions:
    return BuildOptions(manifest_path=str(DEMO_MANIFEST), out=str(tmp_path / "out"), cache_dir=str(tmp_path / "c"),
                        **changes)


def test_the_private_instance_binds_a_loopback_address_ray_leaves_alone(tmp_path):
    script = (
        "import ray\n"
        "from pipelines.cluster import start_ray\n"
        "from pipelines.options import BuildOptions\n"
        f"assert start_ray(BuildOptions(manifest_path='m', out={str(tmp_path)!r}, cache_dir='c', workers=1))\n"
        "print([node['NodeManagerAddress'] for node in ray.nodes()], ray.cluster_resources()['CPU'])\n"
        "ray.shutdown()\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == f"['{PRIVATE_NODE_ADDRESS}'] 1.0"
    assert PRIVATE_NODE_ADDRESS.startswith("127.") and PRIVATE_NODE_ADDRESS != "127.0.0.1"


def test_tasks_declare_what_they_use_and_workers_follow_the_cluster(ray_session, tmp_path, monkeypatch):
    cpus = int(ray_session.cluster_resources()["CPU"])
    assert task_resources(options(tmp_path), joined=False).workers == cpus
    two = task_resources(options(tmp_path, cpus_per_task=2), joined=False)
    assert (two.workers, two.num_cpus, two.remote_options(1)) == (cpus // 2, 2, {"num_cpus": 2, "max_retries": 1})
    assert task_resources(options(tmp_path, workers=5), joined=False).workers == 5
    with_memory = task_resources(options(tmp_path, memory_per_task_bytes=1 << 28), joined=False)
    assert with_memory.remote_options(0)["memory"] == 1 << 28
    with pytest.raises(OptionsError, match="--cpus-per-task"):  # Ray would wait forever for such a node
        task_resources(options(tmp_path, cpus_per_task=cpus + 1), joined=False)
    with pytest.raises(OptionsError, match="GiB"):
        task_resources(options(tmp_path, memory_per_task_bytes=1 << 50), joined=False)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t")
    monkeypatch.setenv("UNRELATED_VARIABLE", "x")
    joined = task_resources(options(tmp_path), joined=True)
    assert joined.runtime_env["env_vars"]["AWS_SECRET_ACCESS_KEY"] == "s3cr3t"
    assert "UNRELATED_VARIABLE" not in joined.runtime_env["env_vars"]
    assert task_resources(options(tmp_path), joined=False).runtime_env is None  # a private instance inherits it


def test_the_output_is_checked_from_the_workers(ray_session, tmp_path):
    build = options(tmp_path)
    (tmp_path / "out").mkdir()
    check_out_reachable(build, task_resources(build, joined=False))
    assert list((tmp_path / "out").iterdir()) == []  # the probe leaves nothing behind
    storage = open_storage(tmp_path / "out")
    assert "does not exist" in _probe_out(str(tmp_path / "out"), ".fmstf-reach-x", "token")  # a node-local path
    storage.write_bytes_atomic(".fmstf-reach-x", b"other")
    assert "holds something else" in _probe_out(str(tmp_path / "out"), ".fmstf-reach-x", "token")
    blocked = tmp_path / "file"
    blocked.write_text("a file, not a folder")
    with pytest.raises(StorageError, match="cannot"):
        check_out_reachable(dataclasses.replace(build, out=str(blocked / "out")), task_resources(build, joined=False))


def test_a_failing_attempt_leaves_what_the_same_options_published(ray_session, tmp_path):
    build = options(tmp_path, only_pairs=("harbor",), previews=False, workers=1)
    assert run_build(build).exit_code == 0
    out = tmp_path / "out"
    published = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file() and "report" not in p.parts)
    record = json.loads((out / "pairs" / "harbor.json").read_text())
    assert record["attempt"]["host"] and record["attempt"]["node"] and len(record["attempt"]["id"]) == 16
    planned = plan_pairs(load_manifest(DEMO_MANIFEST), build)[0]
    broken = dataclasses.replace(planned.spec, hdr=dataclasses.replace(planned.spec.hdr,
                                                                       location=str(tmp_path / "gone.mp4")))
    # a zombie attempt of the same build (same fingerprint) fails after the retry published: nothing is lost
    summary, plan = align_pair(broken, build, planned.options, planned.fingerprint)
    assert summary["status"] == "fetch" and plan is None
    assert sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file() and "report" not in p.parts) == published
    # a rebuild with other options that fails takes the old outputs down: they no longer hold
    summary, _ = align_pair(broken, build, planned.options, "another-fingerprint")
    assert summary["status"] == "fetch"
    assert not (out / "pairs" / "harbor.json").exists() and not list((out / "shards").rglob("*.tar"))
    assert not [path for path in (out / ".staging").rglob("*") if path.is_file()]


def test_two_attempts_of_one_chunk_stage_apart_and_write_the_same_bytes(ray_session, tmp_path):
    build = options(tmp_path, only_pairs=("city",), previews=False, workers=1)
    planned = plan_pairs(load_manifest(DEMO_MANIFEST), build)[0]
    out = tmp_path / "out"
    summary, plan = align_pair(planned.spec, build, planned.options, planned.fingerprint)
    assert summary["status"] == "planned" and len(plan.chunks) == 1
    zombie, retry = extract_chunk(plan, 0, build), extract_chunk(plan, 0, build)
    assert zombie["status"] == retry["status"] == "ok" and zombie["staging"] != retry["staging"]
    assert zombie["shard_files"] == retry["shard_files"]  # names, sizes and sha256: the options decide, not the run
    assert not list((out / "shards").rglob("*.tar"))  # nothing is visible before the pair is finalized
    record = finalize_pair(plan, [retry], build)
    assert record["status"] == "ok" and record["samples"] == retry["samples"]
    assert (out / zombie["staging"]).is_dir() and not (out / retry["staging"]).exists()  # each removes its own
    shard = out / retry["shard_files"][0]["name"]
    assert hashlib.sha256(shard.read_bytes()).hexdigest() == retry["shard_files"][0]["sha256"]
    # a chunk that failed fails its pair, and the failure leaves what the same options published
    failed = finalize_pair(plan, [{**zombie, "status": "failed", "reason": "the worker was lost"}], build)
    assert failed["status"] == "extract" and "chunk 0" in failed["reason"] and "worker was lost" in failed["reason"]
    assert shard.exists() and json.loads((out / "pairs" / "city.json").read_text())["status"] == "ok"


def test_redact_uri_drops_secrets_and_keeps_the_rest():
    uri = "s3://AKIA:hunter2@bucket/prefix?endpoint_override=127.0.0.1:9000&secret_key=abc&session_token=t&region=x"
    shown = redact_uri(uri)
    assert "hunter2" not in shown and "abc" not in shown and "AKIA" not in shown and "=t&" not in shown
    assert shown == ("s3://bucket/prefix?endpoint_override=127.0.0.1:9000&secret_key=***&session_token=***"
                     "&region=x")
    assert redact_uri("/data/build") == "/data/build"


def test_sizes_on_the_command_line():
    assert parse_size("2G") == 2 << 30 and parse_size("1500M") == 1500 << 20 and parse_size("2GiB") == 2 << 30
    assert parse_size("4096") == 4096
    for bad in ("two", "-1G", "0"):
        with pytest.raises(Exception, match="size"):
            parse_size(bad)
