"""One build at a time per output location: a live lease refuses a second build, a stale one is taken over."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from fmstf_data.store.storage import open_storage
from pipelines.lock import LOCK_NAME, BuildLock, BuildLockedError
from tests.conftest import DEMO_MANIFEST, ROOT


def write_lease(out, **lease) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / LOCK_NAME).write_text(json.dumps({"token": "other", "started": "then", **lease}))


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_live_lease_refuses_and_names_its_holder(tmp_path):
    storage = open_storage(tmp_path / "out")
    storage.makedirs("")
    with BuildLock(storage) as first:
        lease = json.loads((tmp_path / "out" / LOCK_NAME).read_text())
        assert (lease["token"], lease["pid"]) == (first.token, first.pid)
        with pytest.raises(BuildLockedError, match=rf"being built by process {first.pid} on host {first.host}"):
            BuildLock(storage).acquire()
    assert not (tmp_path / "out" / LOCK_NAME).exists()  # released
    BuildLock(storage).acquire()  # and free again


def test_stale_leases_are_taken_over_and_live_ones_elsewhere_are_not(tmp_path):
    import socket

    storage = open_storage(tmp_path / "out")
    write_lease(tmp_path / "out", host=socket.gethostname(), pid=dead_pid(), expires_unix=time.time() + 600)
    with BuildLock(storage):  # a build killed on this host: its process is gone
        pass
    write_lease(tmp_path / "out", host="elsewhere", pid=1, expires_unix=time.time() - 1)
    with BuildLock(storage):  # expired
        pass
    write_lease(tmp_path / "out", host="elsewhere", pid=1, expires_unix=time.time() + 600)
    with pytest.raises(BuildLockedError, match="process 1 on host elsewhere"):
        BuildLock(storage).acquire()


def test_the_lease_is_renewed_while_the_build_runs(tmp_path):
    storage = open_storage(tmp_path / "out")
    storage.makedirs("")
    lock = BuildLock(storage, lease_seconds=30, renew_seconds=0.2)
    with lock:
        first = json.loads((tmp_path / "out" / LOCK_NAME).read_text())["expires_unix"]
        time.sleep(1.0)
        later = json.loads((tmp_path / "out" / LOCK_NAME).read_text())["expires_unix"]
    assert later > first + 0.5


def test_two_builds_into_one_out_one_refused_the_other_complete(tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "pipelines.cli", "build", "--manifest", str(DEMO_MANIFEST), "--out", str(out),
               "--cache", str(tmp_path / "cache"), "--no-progress", "--no-previews"]
    first = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(200):  # until the first build holds the lease
        if (out / LOCK_NAME).exists():
            break
        time.sleep(0.05)
    second = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr[-2000:]
    assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr[-2000:]
    assert f"being built by process {first.pid}" in second.stderr
    pairs = pq.read_table(out / "index" / "pairs.parquet").column("status").to_pylist()
    assert pairs == ["ok", "ok", "ok"]
    assert all((out / shard).exists() for shard in pq.read_table(out / "index" / "samples.parquet")
               .column("shard").to_pylist())
    assert not (out / LOCK_NAME).exists()


def test_sigterm_stops_the_build_its_ray_processes_and_its_lease(tmp_path):
    import os
    import signal
    import tempfile

    ray_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # ours alone: its processes are found by this path
    out = tmp_path / "out"
    command = [sys.executable, "-m", "pipelines.cli", "build", "--manifest", str(DEMO_MANIFEST), "--out", str(out),
               "--cache", str(tmp_path / "cache"), "--no-progress"]
    build = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "RAY_TMPDIR": ray_dir})
    try:
        for _ in range(600):  # until pair tasks run: their staging appears
            if (out / ".staging").exists() or build.poll() is not None:
                break
            time.sleep(0.05)
        build.send_signal(signal.SIGTERM)
        _, stderr = build.communicate(timeout=120)
        assert build.returncode == 143, stderr[-2000:]
        assert "interrupted; rerun the same command to resume" in stderr and "Traceback" not in stderr
        assert not (out / LOCK_NAME).exists()
        left = []
        for _ in range(20):
            left = subprocess.run(["pgrep", "-f", ray_dir], capture_output=True, text=True).stdout.split()
            if not left:
                break
            time.sleep(0.5)
        assert not left, "Ray processes outlived the build"
    finally:
        subprocess.run(["pkill", "-9", "-f", ray_dir], capture_output=True)
    rerun = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                           env={**os.environ, "RAY_TMPDIR": ray_dir})
    assert rerun.returncode == 0, rerun.stderr[-2000:]
