"""The build on a real two-node Ray cluster on loopback (``ray start`` at 127.0.0.2 and 127.0.0.3, one CPU each,
token authentication on), started and stopped by the test: the chunks of one pair run on both nodes and the samples
are the same as a local build's; ``s3://`` works with credentials only in the driver's environment, and no secret is
written; losing the second node mid-build still ends with the same samples."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import DEMO_MANIFEST, ROOT
from tests.test_build import DEMO_SAMPLE_DIGEST, sample_digest

RAY = str(Path(sys.executable).with_name("ray"))


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def node_command(address: str, head: str | None, temp_dir: str) -> list[str]:
    ports = [f"--{name}={free_port(address)}" for name in ("dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                                                           "runtime-env-agent-port", "metrics-export-port",
                                                           "node-manager-port", "object-manager-port")]
    where = ["--head", f"--port={free_port(address)}", "--include-dashboard=false"] if head is None \
        else [f"--address={head}"]
    return [RAY, "start", *where, f"--node-ip-address={address}", "--num-cpus=1", f"--temp-dir={temp_dir}",
            "--block", *ports]


def wait_for_port(host: str, port: int, timeout_seconds: float) -> None:
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def alive_nodes(address: str, environment: dict[str, str], *, expected: int, timeout_seconds: float) -> list[str]:
    """The live nodes' addresses once ``expected`` are alive, or when ``timeout_seconds`` have passed."""
    script = ("import ray, time\n"
              f"ray.init(address={address!r}, logging_level='ERROR')\n"
              f"deadline = time.monotonic() + {timeout_seconds}\n"
              "while True:\n"
              "    alive = sorted(n['NodeManagerAddress'] for n in ray.nodes() if n['Alive'])\n"
              f"    if len(alive) >= {expected} or time.monotonic() > deadline:\n"
              "        break\n"
              "    time.sleep(0.5)\n"
              "print(' '.join(alive))\n")
    done = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True,
                          timeout=timeout_seconds + 60)
    lines = done.stdout.strip().splitlines()
    return lines[-1].split() if lines else []


@pytest.fixture(scope="module")
def cluster():
    """(address, environment for drivers, the node processes): a head at 127.0.0.2 and a worker node at 127.0.0.3;
    the nodes get no storage credentials of their own. The last test of this module kills the second node."""
    temp_dir = tempfile.mkdtemp(prefix="rc", dir="/tmp")  # short: Ray's socket paths have a length limit
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith(("AWS_", "RAY_ADDRESS"))}
    environment.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16), RAY_COLOR_PREFIX="0")
    head_command = node_command("127.0.0.2", None, temp_dir)
    address = f"127.0.0.2:{head_command[3].split('=')[1]}"
    nodes = []
    try:
        nodes.append(subprocess.Popen(head_command, env=environment, start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for_port("127.0.0.2", int(address.rsplit(":", 1)[1]), timeout_seconds=90)
        problems = []
        for attempt in range(3):  # a loaded machine can be slow to bring a node up: try again on fresh ports
            log = Path(temp_dir) / f"node-127.0.0.3-{attempt}.log"
            with log.open("w") as stream:
                nodes.append(subprocess.Popen(node_command("127.0.0.3", address, temp_dir), env=environment,
                                              start_new_session=True, stdout=stream, stderr=stream))
            alive = alive_nodes(address, environment, expected=2, timeout_seconds=60)
            if alive == ["127.0.0.2", "127.0.0.3"]:
                break
            problems.append(f"attempt {attempt}: nodes alive {alive}; the node's log: {log.read_text()[-1500:]}")
            kill_session(nodes.pop().pid)
        else:
            pytest.fail("the second node did not join: " + " | ".join(problems))
        yield address, environment, nodes
    finally:
        for node in reversed(nodes):
            try:
                os.killpg(node.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for node in nodes:
            try:
                node.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
        shutil.rmtree(temp_dir, ignore_errors=True)


def build_command(out: str, tmp_path: Path, address: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", "build", "--manifest", str(DEMO_MANIFEST), "--out", out,
            "--cache", str(tmp_path / "cache"), "--ray-address", address, "--no-progress"]


def test_chunks_of_one_pair_run_on_both_nodes_with_the_samples_of_a_local_build(cluster, tmp_path):
    address, environment, _ = cluster
    out = tmp_path / "out"
    run = subprocess.run(build_command("out", tmp_path, address) + ["--chunk-seconds", "0.5"], cwd=tmp_path,
                         env=environment, capture_output=True, text=True, timeout=300)  # a relative --out
    assert run.returncode == 0, run.stderr[-3000:]
    records = [json.loads((out / "pairs" / f"{pair}.json").read_text()) for pair in ("city", "forest", "harbor")]
    assert all(len(record["chunks"]) == 4 for record in records)
    # two tasks at once, one per node: the chunks of one pair are spread over both
    assert any(len({chunk["node"] for chunk in record["chunks"]}) == 2 for record in records), \
        [[chunk["node"][:8] for chunk in record["chunks"]] for record in records]
    assert sample_digest(out) == DEMO_SAMPLE_DIGEST  # the same samples, planes and index as a local build
    assert "\x1b[" not in run.stderr


def test_s3_on_the_cluster_with_credentials_only_in_the_drivers_environment(cluster, tmp_path):
    import boto3
    from moto.server import ThreadedMotoServer

    address, environment, _ = cluster
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        secret = "driver-only-" + secrets.token_hex(8)
        s3 = boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key=secret)
        s3.create_bucket(Bucket="datasets")
        uri = f"s3://datasets/cluster?endpoint_override={host}:{port}&scheme=http&region=us-east-1"
        driver = {**environment, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": secret}
        run = subprocess.run([*build_command(uri, tmp_path, address), "--only", "harbor"], cwd=ROOT, env=driver,
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
        written = [item["Key"] for item in s3.list_objects_v2(Bucket="datasets", Prefix="cluster/")["Contents"]]
        assert "cluster/shards/test/harbor-000000.tar" in written and "cluster/report/report.json" in written
        for key in written:
            assert secret.encode() not in s3.get_object(Bucket="datasets", Key=key)["Body"].read(), key
        assert secret not in run.stdout + run.stderr
        # without credentials the workers cannot write: refused before any pair, exit 2, one line naming the cause
        run = subprocess.run([*build_command(uri.replace("cluster", "nocreds"), tmp_path, address), "--only",
                              "harbor"], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300)
        assert run.returncode == 2, run.stderr[-3000:]
        assert "output location" in run.stderr and "Traceback" not in run.stderr
    finally:
        server.stop()


def kill_session(session_id: int) -> int:
    """SIGKILL every process of a session (a node started with ``start_new_session``): the machine is lost."""
    killed = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session_id:  # fields after the name: state, ppid, pgrp, session, ...
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    return killed


def test_losing_the_second_node_mid_build_ends_with_the_same_samples(cluster, tmp_path):
    """Its raylet and workers killed while chunks run on both nodes (with ``--max-retries 0`` this build fails: the
    kill does hit running work): the lost tasks are retried on the head, the plans the node held are rebuilt by
    Ray, and the build ends with the samples of a local build. (Runs last: the module's cluster has one node
    afterwards.)"""
    address, environment, nodes = cluster
    out = tmp_path / "out"
    build = subprocess.Popen(build_command(str(out), tmp_path, address) + ["--chunk-seconds", "0.2"], cwd=ROOT,
                             env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while build.poll() is None and time.monotonic() < deadline and not list(out.glob(".staging/*/*")):
        time.sleep(0.05)  # until the first chunk writes: chunks are running on both nodes
    assert build.poll() is None, "the build ended before the node could be killed"
    kill_session(nodes[1].pid)  # the raylet and its workers (they have process groups of their own)
    _, stderr = build.communicate(timeout=400)
    assert build.returncode == 0, stderr[-3000:]
    records = [json.loads((out / "pairs" / f"{pair}.json").read_text()) for pair in ("city", "forest", "harbor")]
    assert all(len(record["chunks"]) == 6 for record in records)
    assert sample_digest(out) == DEMO_SAMPLE_DIGEST
