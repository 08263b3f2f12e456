"""Training FMSTFnet from a build's shards: one process, ``torchrun`` DDP, or a Ray Train cluster, one code path.

Launch::

    fmstf-train configs/tiny-demo.yaml                                   # one process (GPU when present)
    torchrun --nproc_per_node 4 -m fmstf_model.train configs/fmstf-paper.yaml   # DDP, one process per GPU
    fmstf-train configs/fmstf-paper.yaml --ray-address auto --ray-workers 8 --ray-gpu   # Ray Train TorchTrainer
    fmstf-train CONFIG --resume auto                                     # continue from OUT/checkpoints/latest.pt

Every launcher ends in :func:`train_worker` in each process: it joins the process group the launcher prepared
(torchrun's environment, or the group Ray Train initialised), builds the model, loss, Adam, the LR schedule and the
streaming loader for its rank, and runs the steps. DDP uses NCCL on GPUs and gloo on CPUs; AMP (bf16, or fp16 with
a GradScaler) on GPUs. Rank 0 logs progress (loss, lr, crops/s) and writes scalars to ``OUT/metrics.jsonl`` (and
TensorBoard event files when tensorboardX is installed).

Exact resume: a checkpoint holds the model, Adam, the schedule, the GradScaler, the loader's position and every
rank's RNG states (:mod:`fmstf_model.checkpoint`). The loader's batches depend only on (seed, epoch, position), and
the one thing in the loop that would otherwise consume the global torch RNG differently in a resumed run, the
DataLoader drawing its base seed when an iterator starts, runs inside ``torch.random.fork_rng``. So a resumed run
gives the same losses, step for step, as an uninterrupted one (tested on CPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import logging
import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import yaml
from torch.nn.parallel import DistributedDataParallel

from fmstf_data.errors import FmstfError, ModelError
from fmstf_data.loader import TripletLoader, make_loader
from fmstf_model.checkpoint import (
    gather_rng_states,
    load_checkpoint,
    numbered_checkpoint,
    prune_checkpoints,
    restore_rng_state,
    save_checkpoint,
)
from fmstf_model.fmstfnet import FMSTFnet
from fmstf_model.losses import FMSTFLoss
from fmstf_model.train_config import TrainConfig, load_config

logger = logging.getLogger(__name__)

PROCESS_GROUP_TIMEOUT = datetime.timedelta(minutes=30)
LATEST = "latest.pt"


@dataclass
class TrainResult:
    """What one process's :func:`train_worker` did."""

    rank: int
    world_size: int
    start_step: int
    """Optimiser steps already done when this call started (0, or the resumed checkpoint's step)."""
    steps: int
    """Optimiser steps done when it returned."""
    losses: list[float] = field(default_factory=list)
    """This rank's total loss of each step run in this call, in order."""
    checkpoint: str | None = None
    """The last checkpoint written."""


@dataclass(frozen=True)
class Runtime:
    """Where this process runs: its rank, the world size, its device and its mixed precision."""

    rank: int
    world_size: int
    device: torch.device
    amp_dtype: torch.dtype | None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


# ---- setup ------------------------------------------------------------------------------------------------------


def resolve_device(setting: str, device: torch.device | str | None = None) -> torch.device:
    """The device of this process: ``device`` when given (Ray passes its own), else from ``setting`` and
    ``LOCAL_RANK`` (torchrun)."""
    if device is not None:
        return torch.device(device)
    if setting == "cpu" or (setting == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ModelError("train.device is 'cuda' but no CUDA device is available; use device: auto or cpu")
    index = int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count()
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def resolve_amp(setting: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for ``train.amp`` on ``device`` (None: full precision)."""
    if setting == "off" or (setting == "auto" and device.type != "cuda"):
        return None
    if setting == "fp16" and device.type != "cuda":
        raise ModelError("train.amp fp16 needs a CUDA device; use bf16 or off on CPU")
    if setting == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if setting == "bf16" else torch.float16


def setup_distributed(config: TrainConfig, device: torch.device) -> tuple[int, int]:
    """(rank, world size): the initialised process group (Ray Train), else torchrun's environment (``WORLD_SIZE``
    > 1 starts a group with NCCL on CUDA, gloo on CPU), else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return 0, 1
    backend = config.train.backend if config.train.backend != "auto" else ("nccl" if device.type == "cuda" else "gloo")
    dist.init_process_group(backend, timeout=PROCESS_GROUP_TIMEOUT)
    return dist.get_rank(), dist.get_world_size()


def resolve_paths(config: TrainConfig) -> TrainConfig:
    """The config with local relative paths made absolute (Ray workers may start in another directory)."""
    def absolute(path: str | None) -> str | None:
        return path if path is None or "://" in path else str(Path(path).resolve())

    return dataclasses.replace(
        config,
        data=dataclasses.replace(config.data, source=absolute(config.data.source)),
        loss=dataclasses.replace(config.loss, vgg_weights_path=absolute(config.loss.vgg_weights_path)),
        train=dataclasses.replace(config.train, out_dir=absolute(config.train.out_dir)),
    )


def build_loader(config: TrainConfig, runtime: Runtime) -> TripletLoader:
    d = config.data
    return make_loader(d.source, d.split, rank=runtime.rank, world_size=runtime.world_size, num_workers=d.num_workers,
                       pin_memory=runtime.device.type == "cuda", mode="train", batch_size=d.batch_size,
                       crop_size=d.crop_size, crops_per_sample=d.crops_per_sample, flips=d.flips, rot90=d.rot90,
                       seed=d.seed)


def total_steps(config: TrainConfig, steps_per_epoch: int) -> int:
    steps = math.ceil(config.train.epochs * steps_per_epoch)
    return min(steps, config.train.max_steps) if config.train.max_steps is not None else steps


# ---- scalars --------------------------------------------------------------------------------------------------


class ScalarLog:
    """Rank 0's scalars: one JSON object per line in ``metrics.jsonl``, and TensorBoard events when available."""

    def __init__(self, out_dir: Path, tensorboard: str, enabled: bool):
        self.enabled = enabled
        self.path = out_dir / "metrics.jsonl"
        self.writer = None
        if not enabled or tensorboard == "off":
            return
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            if tensorboard == "on":
                raise ModelError("train.tensorboard is 'on' but tensorboardX is not installed "
                                 "(pip install tensorboardX), or set it to auto/off") from None
            logger.info("tensorboardX not installed: scalars go to %s only", self.path)
            return
        self.writer = SummaryWriter(str(out_dir / "tensorboard"))

    def write(self, step: int, scalars: dict[str, float]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as file:
            file.write(json.dumps({"step": step, **scalars}, sort_keys=True) + "\n")
        if self.writer is not None:
            for name, value in scalars.items():
                self.writer.add_scalar(f"train/{name}", value, step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _mean_across_ranks(values: list[float], runtime: Runtime) -> list[float]:
    tensor = torch.tensor(values, dtype=torch.float64)
    if runtime.world_size > 1:
        on = runtime.device if dist.get_backend() == "nccl" else torch.device("cpu")
        tensor = tensor.to(on)
        dist.all_reduce(tensor)
        tensor = tensor.cpu() / runtime.world_size
    return tensor.tolist()


# ---- the loop ---------------------------------------------------------------------------------------------------


def _batches(loader: TripletLoader) -> Iterator[dict[str, Any]]:
    """Batches without end, epoch after epoch. Each ``next`` runs with the global torch RNG forked, so the
    DataLoader's base-seed draw at an iterator start does not shift the model's random stream."""
    while True:
        iterator = iter(loader)
        while True:
            with torch.random.fork_rng(devices=[]):
                batch = next(iterator, None)
            if batch is None:
                break
            yield batch


def _checkpoint_payload(config: TrainConfig, model: FMSTFnet, optimizer, scheduler, scaler, loader: TripletLoader,
                        step: int, rng: list[dict[str, torch.Tensor]], runtime: Runtime) -> dict[str, Any]:
    return {
        "model": model.state_dict(),
        "model_config": model.config.to_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "loader": loader.state_dict(),
        "rng": rng,
        "step": step,
        "epoch": loader.epoch,
        "world_size": runtime.world_size,
        "train_config": config.to_dict(),
    }


def _write_checkpoint(config: TrainConfig, model, optimizer, scheduler, scaler, loader, step: int,
                      runtime: Runtime) -> str:
    """Collective: every rank contributes its RNG state; rank 0 writes ``step-N.pt`` and ``latest.pt``."""
    rng = gather_rng_states(runtime.device)
    directory = Path(config.train.out_dir) / "checkpoints"
    path = numbered_checkpoint(directory, step)
    if runtime.is_main:
        payload = _checkpoint_payload(config, model, optimizer, scheduler, scaler, loader, step, rng, runtime)
        save_checkpoint(path, payload)
        save_checkpoint(directory / LATEST, payload)
        prune_checkpoints(directory, config.train.keep_checkpoints)
        logger.info("checkpoint %s (step %d)", path, step)
    if runtime.world_size > 1:
        dist.barrier()
    return str(path)


def find_resume_checkpoint(config: TrainConfig, resume: str | None) -> Path | None:
    """The checkpoint to resume from: ``resume`` as a path, ``"auto"`` for ``OUT/checkpoints/latest.pt`` when it
    exists, None for a fresh run (refused when ``OUT`` already has checkpoints, so nothing is overwritten)."""
    latest = Path(config.train.out_dir) / "checkpoints" / LATEST
    if resume is None:
        if latest.exists():
            raise ModelError(f"{config.train.out_dir} already holds checkpoints; pass --resume auto to continue the "
                             "run, or set train.out_dir to a new directory")
        return None
    if resume == "auto":
        return latest if latest.exists() else None
    return Path(resume)


def _restore(content: dict[str, Any], config: TrainConfig, model: FMSTFnet, optimizer, scheduler, scaler,
             loader: TripletLoader, runtime: Runtime) -> int:
    if content["model_config"] != model.config.to_dict():
        raise ModelError(f"the checkpoint's model config {content['model_config']} differs from this run's "
                         f"{model.config.to_dict()}")
    model.load_state_dict(content["model"])
    optimizer.load_state_dict(content["optimizer"])
    scheduler.load_state_dict(content["scheduler"])
    scaler.load_state_dict(content["scaler"])
    loader.load_state_dict(content["loader"])
    rng = content["rng"]
    if len(rng) == runtime.world_size:
        restore_rng_state(rng[runtime.rank], runtime.device)
    else:
        logger.warning("checkpoint was written by %d processes, this run has %d: RNG streams restart from the seed, "
                       "so the run continues but not bit for bit", len(rng), runtime.world_size)
    if content["train_config"] != config.to_dict():
        logger.info("resuming with a changed config (was %s)", content["train_config"])
    return int(content["step"])


def train_worker(config: TrainConfig, *, resume: str | None = None,
                 device: torch.device | str | None = None) -> TrainResult:
    """Train in this process (one rank of a DDP job, or alone). See the module docstring.

    Args:
        config: the run (paths should be absolute under Ray; :func:`resolve_paths`).
        resume: None (fresh run), ``"auto"`` (``OUT/checkpoints/latest.pt`` when present) or a checkpoint path.
        device: this process's device (Ray Train gives it); default from ``config.train.device`` and LOCAL_RANK.
    """
    device = resolve_device(config.train.device, device)
    rank, world_size = setup_distributed(config, device)
    runtime = Runtime(rank=rank, world_size=world_size, device=device, amp_dtype=resolve_amp(config.train.amp, device))
    out_dir = Path(config.train.out_dir)
    checkpoint_path = find_resume_checkpoint(config, resume)
    if runtime.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))

    torch.manual_seed(config.train.seed)  # identical initial weights on every rank
    model = FMSTFnet(config.model.build()).to(device)
    loss_fn = FMSTFLoss(model.config.pyramid_levels, reconstruction_weight=config.loss.reconstruction_weight,
                        perceptual_weight=config.loss.perceptual_weight,
                        vgg_weights_path=config.loss.vgg_weights_path).to(device)
    o = config.optim
    optimizer = torch.optim.Adam(model.parameters(), lr=o.lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay)
    loader = build_loader(config, runtime)
    steps_per_epoch = len(loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: o.lr_factor(step, steps_per_epoch))
    scaler = torch.amp.GradScaler(device.type, enabled=runtime.amp_dtype == torch.float16)
    torch.manual_seed(config.train.seed * 1000 + 1 + rank)  # each rank its own stream (hash rotations)

    step = 0
    if checkpoint_path is not None:
        step = _restore(load_checkpoint(checkpoint_path), config, model, optimizer, scheduler, scaler, loader,
                        runtime)
        if runtime.is_main:
            logger.info("resumed from %s at step %d (epoch %d, batch %d)", checkpoint_path, step, loader.epoch,
                        loader.position)
    last_step = total_steps(config, steps_per_epoch)
    trained = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                      find_unused_parameters=False) if world_size > 1 else model
    trained.train()
    if runtime.is_main:
        logger.info("training %s parameters on %d process(es) (%s, amp %s): %d steps of %d crops per process, "
                    "%d steps per epoch", f"{sum(p.numel() for p in model.parameters()):,}", world_size, device,
                    runtime.amp_dtype, last_step, config.data.batch_size, steps_per_epoch)
    result = TrainResult(rank=rank, world_size=world_size, start_step=step, steps=step)
    scalars = ScalarLog(out_dir, config.train.tensorboard, enabled=runtime.is_main)
    window: list[list[float]] = []
    window_start = time.perf_counter()
    batches = _batches(loader)
    try:
        while step < last_step:
            batch = next(batches)
            sdr = batch["sdr"].to(device, non_blocking=True)
            target = batch["hdr"][:, 1].to(device, non_blocking=True)  # the centre frame of each triplet
            autocast = (torch.autocast(device.type, dtype=runtime.amp_dtype) if runtime.amp_dtype is not None
                        else nullcontext())
            with autocast:
                output = trained(sdr)
            terms = loss_fn(output.pyramid, target)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(terms.total).backward()
            if o.grad_clip_norm is not None:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip_norm)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            loss = float(terms.total.detach())
            if not math.isfinite(loss):
                raise ModelError(f"loss became {loss} at step {step}; lower optim.lr or check the data")
            result.losses.append(loss)
            window.append([loss, float(terms.reconstruction.detach()), float(terms.perceptual.detach())])
            if step % config.train.log_every_steps == 0 or step == last_step:
                means = _mean_across_ranks([sum(col) / len(window) for col in zip(*window)], runtime)
                seconds = time.perf_counter() - window_start
                crops_per_second = len(window) * config.data.batch_size * world_size / max(seconds, 1e-9)
                row = {"epoch": loader.epoch, "loss": means[0], "loss_reconstruction": means[1],
                       "loss_perceptual": means[2], "lr": scheduler.get_last_lr()[0],
                       "crops_per_second": crops_per_second, "seconds_per_step": seconds / len(window)}
                scalars.write(step, row)
                if runtime.is_main:
                    logger.info("step %d/%d epoch %d loss %.5f (L_r %.5f, L_p %.5f) lr %.3g | %.1f crops/s, "
                                "%.3f s/step", step, last_step, loader.epoch, means[0], means[1], means[2],
                                row["lr"], crops_per_second, row["seconds_per_step"])
                window, window_start = [], time.perf_counter()
            if step % config.train.checkpoint_every_steps == 0 or step == last_step:
                result.checkpoint = _write_checkpoint(config, model, optimizer, scheduler, scaler, loader, step,
                                                      runtime)
    finally:
        batches.close()
        scalars.close()
    result.steps = step
    return result


# ---- Ray Train ------------------------------------------------------------------------------------------------


def _ray_train_loop(loop_config: dict[str, Any]) -> None:
    """Runs in each Ray Train worker: the process group is up; the same :func:`train_worker` as torchrun."""
    import ray.train
    import ray.train.torch

    config = TrainConfig.from_dict(loop_config["config"])
    result = train_worker(config, resume=loop_config["resume"], device=ray.train.torch.get_device())
    ray.train.report({"steps": result.steps, "last_loss": result.losses[-1] if result.losses else float("nan"),
                      "checkpoint": result.checkpoint or ""})


def run_with_ray(config: TrainConfig, *, address: str | None, num_workers: int, use_gpu: bool,
                 resume: str | None = None) -> dict[str, Any]:
    """Train on a Ray cluster with Ray Train's ``TorchTrainer`` (``num_workers`` processes, one GPU each when
    ``use_gpu``); returns the steps done, the latest checkpoint and the last scalars row. ``address`` None or
    "local" starts a local Ray.

    ``train.out_dir`` and ``data.source`` must be reachable from every worker (a shared file system or an object
    store for the data); the fmstf packages must be installed on the workers.
    """
    try:
        import ray
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchConfig, TorchTrainer
    except ImportError as error:
        raise ModelError(f"Ray Train is not installed ({error}); pip install 'ray[train]'") from error
    config = resolve_paths(config)
    if not ray.is_initialized():
        ray.init(address=None if address in (None, "local") else address, include_dashboard=False)
    backend = config.train.backend if config.train.backend != "auto" else ("nccl" if use_gpu else "gloo")
    trainer = TorchTrainer(
        _ray_train_loop,
        train_loop_config={"config": config.to_dict(), "resume": resume},
        torch_config=TorchConfig(backend=backend, timeout_s=int(PROCESS_GROUP_TIMEOUT.total_seconds())),
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu),
        run_config=RunConfig(name=Path(config.train.out_dir).name,
                             storage_path=str(Path(config.train.out_dir) / "ray")),
    )
    trainer.fit()
    latest = Path(config.train.out_dir) / "checkpoints" / LATEST
    rows = (Path(config.train.out_dir) / "metrics.jsonl").read_text().splitlines()
    return {"steps": int(load_checkpoint(latest)["step"]), "checkpoint": str(latest),
            "last_scalars": json.loads(rows[-1]) if rows else {}}


# ---- command line -----------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fmstf-train", description="Train FMSTFnet from a build's shards.")
    parser.add_argument("config", help="YAML training config (see configs/)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.max_steps=100 (repeatable)")
    parser.add_argument("--resume", metavar="auto|PATH",
                        help="continue from a checkpoint; 'auto' = OUT/checkpoints/latest.pt when it exists")
    parser.add_argument("--ray-address", metavar="ADDRESS",
                        help="train with Ray Train on this cluster ('auto', 'ray://host:10001', or 'local')")
    parser.add_argument("--ray-workers", type=int, default=1, help="Ray Train worker processes (default 1)")
    parser.add_argument("--ray-gpu", action="store_true", help="one GPU per Ray Train worker")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    rank = os.environ.get("RANK", "0")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format=f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config, args.overrides)
        if args.ray_address is not None:
            metrics = run_with_ray(config, address=args.ray_address, num_workers=args.ray_workers,
                                   use_gpu=args.ray_gpu, resume=args.resume)
            logger.info("Ray Train finished: %s", metrics)
        else:
            result = train_worker(config, resume=args.resume)
            if result.rank == 0:
                logger.info("done: %d steps, last checkpoint %s", result.steps, result.checkpoint)
    except FmstfError as error:
        logger.error("%s", error)
        return 2
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
