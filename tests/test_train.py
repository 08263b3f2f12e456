"""Training: config validation, atomic checkpoints, exact resume, 2-process DDP (torchrun, gloo) from real shards."""

from __future__ import annotations

import json
import math
import os
import random
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from fmstf_data.errors import ModelError
from fmstf_model.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    load_model,
    prune_checkpoints,
    restore_rng_state,
    save_checkpoint,
)
from fmstf_model.train import train_worker
from fmstf_model.train_config import OptimConfig, TrainConfig, apply_overrides, load_config
from tests.loader_fixtures import write_build

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    """Real shards (ShardWriter + the sample codec) and an index: 2 train pairs of 4 triplets, 128x160 frames."""
    root = tmp_path_factory.mktemp("build")
    write_build(root, {"alpha": ("train", 4), "beta": ("train", 4), "gamma": ("test", 2)}, height=128, width=160)
    return root


def tiny_config(source: Path, out_dir: Path, **train) -> dict:
    return {
        "data": {"source": str(source), "crop_size": 128, "batch_size": 2, "num_workers": 1, "rot90": True},
        "model": {"preset": "tiny"},
        "loss": {"perceptual_weight": 0.0},
        "optim": {"decay_epochs": 10},
        "train": {"out_dir": str(out_dir), "epochs": 10, "log_every_steps": 1, "checkpoint_every_steps": 100,
                  "tensorboard": "off", **train},
    }


# ---- config ---------------------------------------------------------------------------------------------------


def test_repository_configs_validate():
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        config = load_config(path)
        assert config.optim.betas == (0.9, 0.999) and config.optim.lr == 2e-4 and config.optim.final_lr == 1e-5
    paper = load_config(ROOT / "configs" / "fmstf-paper.yaml")
    assert paper.data.batch_size == 7 and paper.model.preset == "default"


def test_config_rejects_unknown_keys_and_small_crops(tmp_path):
    good = tiny_config(tmp_path, tmp_path / "run")
    assert TrainConfig.from_dict(good).data.crop_size == 128
    with pytest.raises(ModelError, match=r"train.max_stepz"):
        TrainConfig.from_dict(apply_overrides(good, ["train.max_stepz=3"]))
    with pytest.raises(ModelError, match=r"2\*\*\(s\+5\) = 128"):
        TrainConfig.from_dict(apply_overrides(good, ["data.crop_size=64"]))
    with pytest.raises(ModelError, match="channels"):
        TrainConfig.from_dict(apply_overrides(good, ["model.overrides.channels=18"]))
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(good))
    assert load_config(path, ["train.max_steps=7", "optim.betas=[0.8, 0.99]"]).train.max_steps == 7
    assert TrainConfig.from_dict(TrainConfig.from_dict(good).to_dict()) == TrainConfig.from_dict(good)


def test_learning_rate_schedule_follows_the_paper():
    cosine = OptimConfig(decay_epochs=10)
    assert cosine.lr_factor(0, 5) == 1.0
    assert cosine.lr_factor(25, 5) == pytest.approx((1 + 1e-5 / 2e-4) / 2)
    assert cosine.lr_factor(50, 5) * cosine.lr == pytest.approx(1e-5)
    assert cosine.lr_factor(500, 5) * cosine.lr == pytest.approx(1e-5)
    step = OptimConfig(schedule="step", decay_epochs=10)
    assert step.lr_factor(49, 5) == 1.0 and step.lr_factor(50, 5) * step.lr == pytest.approx(1e-5)


# ---- checkpoints ---------------------------------------------------------------------------------------------


def test_checkpoint_is_atomic_and_loads_without_pickle(tmp_path):
    path = tmp_path / "c" / "x.pt"
    save_checkpoint(path, {"model": {"w": torch.ones(2)}, "loader": {"epoch": 1, "position": 2}, "rng": []})
    assert [p.name for p in path.parent.iterdir()] == ["x.pt"]  # no temporary left behind
    content = load_checkpoint(path)
    assert content["format"] == "fmstf-checkpoint" and content["loader"] == {"epoch": 1, "position": 2}

    # an arbitrary Python object (here a Fraction) must not be unpickled
    torch.save({"format": "fmstf-checkpoint", "version": 1, "x": Fraction(1, 3)}, tmp_path / "evil.pt")
    with pytest.raises(ModelError, match="cannot read"):
        load_checkpoint(tmp_path / "evil.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ModelError, match="not an fmstf checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    for step in (1, 2, 3):
        save_checkpoint(tmp_path / "c" / f"step-{step:08d}.pt", {})
    prune_checkpoints(tmp_path / "c", keep=1)
    assert sorted(p.name for p in (tmp_path / "c").glob("step-*.pt")) == ["step-00000003.pt"]


def test_rng_state_round_trip():
    torch.manual_seed(3), np.random.seed(4), random.seed(5)
    np.random.normal()  # a cached gaussian in numpy's state
    state = capture_rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    restore_rng_state(state)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1]) and random.random() == expected[2]


# ---- training ------------------------------------------------------------------------------------------------


def test_resumed_run_reproduces_the_uninterrupted_loss_trajectory(build, tmp_path):
    torch.set_num_threads(1)
    whole = train_worker(TrainConfig.from_dict(tiny_config(build, tmp_path / "whole", max_steps=5)))
    assert whole.steps == 5 and all(math.isfinite(v) for v in whole.losses)

    first = train_worker(TrainConfig.from_dict(tiny_config(build, tmp_path / "split", max_steps=3)))
    assert first.losses == whole.losses[:3]
    with pytest.raises(ModelError, match="--resume auto"):  # a fresh run never overwrites a run
        train_worker(TrainConfig.from_dict(tiny_config(build, tmp_path / "split", max_steps=5)))
    second = train_worker(TrainConfig.from_dict(tiny_config(build, tmp_path / "split", max_steps=5)), resume="auto")
    assert second.start_step == 3 and second.steps == 5
    assert second.losses == whole.losses[3:], (second.losses, whole.losses)  # bit for bit, step for step

    content = load_checkpoint(tmp_path / "split" / "checkpoints" / "latest.pt")
    assert content["step"] == 5 and content["world_size"] == 1 and len(content["rng"]) == 1
    assert content["loader"]["epoch"] * 4 + content["loader"]["position"] == 5  # 8 triplets, batches of 2
    final = load_checkpoint(tmp_path / "whole" / "checkpoints" / "latest.pt")["model"]
    assert all(torch.equal(final[k], v) for k, v in content["model"].items())
    rows = [json.loads(line) for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5] and all(r["crops_per_second"] > 0 for r in rows)
    assert not load_model(tmp_path / "whole" / "checkpoints" / "latest.pt").training


def test_two_process_ddp_training_with_torchrun(build, tmp_path):
    config = tiny_config(build, tmp_path / "ddp", max_steps=2)
    config["data"]["num_workers"] = 0
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node", "2",
               "-m", "fmstf_model.train", str(path)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    content = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "latest.pt")
    assert content["world_size"] == 2 and content["step"] == 2 and len(content["rng"]) == 2
    assert not torch.equal(content["rng"][0]["torch_cpu"], content["rng"][1]["torch_cpu"])  # a stream per rank
    # 8 triplets over 2 ranks in batches of 2: 2 steps per epoch, so the run stopped at the end of epoch 0
    assert (content["loader"]["epoch"], content["loader"]["position"]) == (0, 2)
    rows = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(math.isfinite(r["loss"]) for r in rows)
    assert re.search(r"training [\d,]+ parameters on 2 process\(es\)", done.stderr), done.stderr[-2000:]


@pytest.mark.slow
def test_ray_train_runs_the_same_worker(build, tmp_path):
    pytest.importorskip("ray.train", reason="Ray Train needs ray[train]")
    from fmstf_model.train import run_with_ray

    config = TrainConfig.from_dict({**tiny_config(build, tmp_path / "ray", max_steps=2),
                                    "data": {"source": str(build), "crop_size": 128, "batch_size": 2,
                                             "num_workers": 0}})
    summary = run_with_ray(config, address="local", num_workers=2, use_gpu=False)
    assert summary["steps"] == 2 and summary["last_scalars"]["step"] == 2
    content = load_checkpoint(tmp_path / "ray" / "checkpoints" / "latest.pt")
    assert content["world_size"] == 2 and len(content["rng"]) == 2
