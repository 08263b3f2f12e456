"""Two-process DDP (gloo, CPU) training from shards under torchrun: equal batch counts per rank with uneven shards
and fewer shards than workers, exactly-once evaluation, the same order on two runs, identical batches and weights
after a mid-epoch resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.loader_fixtures import write_build

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "loader_ddp_train.py"
# 13 train samples in uneven shards (alpha cut in several, beta a single sample); 5 test samples in one shard
PAIRS = {"alpha": ("train", 7), "beta": ("train", 1), "gamma": ("train", 5), "zeta": ("test", 5)}


def run_ddp(build: Path, out: Path, hash_seed: str) -> list[dict]:
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": hash_seed, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(SCRIPT),
               "--build", str(build), "--out", str(out), "--epochs", "2", "--stop-after", "4"]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(2)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("ddp")
    build = write_build(base / "build", PAIRS, height=36, width=52, max_shard_bytes={"alpha": 60_000})
    assert len(build.shards["train"]) >= 5 and len(build.shards["test"]) == 1  # uneven; 1 shard < 4 workers
    return build, run_ddp(build.root, base / "run1", "1"), run_ddp(build.root, base / "run2", "2")


@pytest.mark.timeout(600)
def test_ddp_training_equal_batches_disjoint_ranks(runs):
    build, first, _ = runs
    assert [r["batches_per_epoch"] for r in first] == [[3, 3], [3, 3]]  # 13 // 2 = 6 triplets, 2 per batch
    for epoch in (0, 1):
        keys = [[key for step in r["straight"] if step["epoch"] == epoch for key in step["keys"][::2]]
                for r in first]
        assert not set(keys[0]) & set(keys[1])  # a triplet goes to one rank per epoch
        assert set(keys[0]) | set(keys[1]) <= set(build.keys["train"]) and len(keys[0]) == len(keys[1]) == 6


@pytest.mark.timeout(600)
def test_ddp_evaluation_reads_each_test_sample_once_in_order(runs):
    build, first, _ = runs
    assert first[0]["eval_batches"] == first[1]["eval_batches"] == 2
    valid_keys = [key for r in first for key, valid in r["eval"] if valid]
    assert valid_keys == build.keys["test"]
    assert all(r["eval_samples_counted"] == 5 for r in first)  # all-reduced count of valid rows


@pytest.mark.timeout(600)
def test_ddp_two_runs_give_the_same_order_and_weights(runs):
    _, first, second = runs
    for a, b in zip(first, second):
        assert [(s["keys"], s["sdr"], s["hdr"]) for s in a["straight"]] == \
            [(s["keys"], s["sdr"], s["hdr"]) for s in b["straight"]]
        assert a["weights"] == b["weights"]


@pytest.mark.timeout(600)
def test_ddp_resume_mid_epoch_gives_identical_batches(runs):
    _, first, _ = runs
    for r in first:
        resumed = r["before_resume"] + r["after_resume"]
        assert r["after_resume"][0]["epoch"] == 1 and r["after_resume"][0]["batch"] == 1  # resumed mid-epoch
        assert [(s["epoch"], s["batch"], s["keys"], s["sdr"], s["hdr"]) for s in resumed] == \
            [(s["epoch"], s["batch"], s["keys"], s["sdr"], s["hdr"]) for s in r["straight"]]
        assert [s["loss"] for s in resumed] == [s["loss"] for s in r["straight"]]
        assert r["resumed_weights"] == r["weights"]
