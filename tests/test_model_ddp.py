"""One DistributedDataParallel step of FMSTFnet on two CPU processes (gloo), spec §9.5.

The recurrence runs STFM twice inside one forward and every module runs even with a zero state, so DDP with
``find_unused_parameters=False`` must see every parameter ready exactly once, and both ranks must end with the same
averaged gradients.
"""

from __future__ import annotations

import datetime
import socket
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from fmstf_model import FMSTFConfig, FMSTFLoss, FMSTFnet

WORLD_SIZE = 2
TIMEOUT_SECONDS = 120


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ddp_step(rank: int, port: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD_SIZE,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        torch.manual_seed(0)  # same initial weights on both ranks (DDP broadcasts rank 0's anyway)
        model = torch.nn.parallel.DistributedDataParallel(FMSTFnet(FMSTFConfig.tiny()), find_unused_parameters=False)
        loss_fn = FMSTFLoss(FMSTFConfig.tiny().pyramid_levels, perceptual_weight=0)
        generator = torch.Generator().manual_seed(100 + rank)  # different data per rank
        clip = torch.rand(2, 3, 3, 128, 128, generator=generator)
        target = torch.rand(2, 3, 128, 128, generator=generator)
        output = model(clip)
        loss_fn(output.pyramid, target).total.backward()

        missing = [name for name, p in model.module.named_parameters() if p.grad is None]
        assert not missing, f"rank {rank}: parameters without gradient: {missing}"
        grads = torch.cat([p.grad.flatten() for p in model.module.parameters()])
        assert torch.isfinite(grads).all() and grads.abs().sum() > 0
        gathered = [torch.empty_like(grads) for _ in range(WORLD_SIZE)]
        dist.all_gather(gathered, grads)
        assert torch.allclose(gathered[0], gathered[1]), f"rank {rank}: gradients differ across ranks"
    finally:
        dist.destroy_process_group()


def test_one_ddp_step_gives_every_parameter_an_averaged_gradient():
    context = mp.spawn(_ddp_step, args=(_free_port(),), nprocs=WORLD_SIZE, join=False)
    deadline = time.monotonic() + TIMEOUT_SECONDS
    try:
        while not context.join(timeout=1):  # raises ProcessRaisedException when a rank fails
            if time.monotonic() > deadline:
                pytest.fail(f"DDP step did not finish in {TIMEOUT_SECONDS} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
