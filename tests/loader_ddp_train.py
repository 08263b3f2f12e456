"""Run by tests/test_loader_ddp.py under torchrun: DDP (gloo, CPU) training of a tiny network from shards.

Each rank writes ``OUT/rank{r}.json`` with what it saw:
- ``straight``: two uninterrupted epochs: per step (epoch, batch index, keys, batch checksum, loss), final weights;
- ``resumed``: the same training stopped after ``--stop-after`` steps, checkpointed (model, optimiser, loader state)
  and continued by fresh objects: the steps after the resume and the final weights;
- ``eval``: the test split in eval mode: keys and valid flags in the order served.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from fmstf_data.loader import make_loader

LOADER = dict(batch_size=4, crop_size=16, crops_per_sample=2, num_workers=2, seed=7)


def checksum(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.contiguous().numpy().tobytes()).hexdigest()[:16]


def fresh_model() -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(9, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))
    model = DistributedDataParallel(net)
    return model, torch.optim.SGD(model.parameters(), lr=0.05)


def step(model, optimiser, batch) -> float:
    sdr = batch["sdr"].flatten(1, 2)  # [B, 9, h, w]: three frames' R'G'B'
    target = batch["hdr"][:, 1]       # the centre frame
    loss = nn.functional.mse_loss(model(sdr), target)
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    return float(loss)


def record(batch, loss: float) -> dict:
    return {"epoch": batch["epoch"], "batch": batch["batch_index"], "keys": batch["key"],
            "sdr": checksum(batch["sdr"]), "hdr": checksum(batch["hdr"]), "loss": loss}


def weights(model) -> str:
    return checksum(torch.cat([p.detach().flatten() for p in model.parameters()]))


def train(build: str, epochs: int, stop_after: int | None = None, state: bytes | None = None):
    model, optimiser = fresh_model()
    loader = make_loader(build, "train", **LOADER)
    if state is not None:
        checkpoint = torch.load(io.BytesIO(state), weights_only=True)
        model.load_state_dict(checkpoint["model"])
        optimiser.load_state_dict(checkpoint["optimiser"])
        loader.load_state_dict(checkpoint["loader"])
    steps, counts = [], []
    for _ in range(loader.epoch, epochs):
        count = 0
        for batch in loader:
            steps.append(record(batch, step(model, optimiser, batch)))
            count += 1
            if stop_after is not None and len(steps) == stop_after:
                buffer = io.BytesIO()
                torch.save({"model": model.state_dict(), "optimiser": optimiser.state_dict(),
                            "loader": loader.state_dict()}, buffer)
                return steps, buffer.getvalue(), counts
        counts.append(count)
    return steps, weights(model), counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--stop-after", type=int, default=3)
    args = parser.parse_args()
    dist.init_process_group("gloo")
    rank = dist.get_rank()

    straight, final_weights, counts = train(args.build, args.epochs)
    before, checkpoint, _ = train(args.build, args.epochs, stop_after=args.stop_after)
    after, resumed_weights, _ = train(args.build, args.epochs, state=checkpoint)

    evaluation = make_loader(args.build, "test", mode="eval", batch_size=2, crop_size=None, num_workers=2)
    net = fresh_model()[0].module
    seen, total = [], torch.zeros(2)
    with torch.no_grad():
        for batch in evaluation:
            error = (net(batch["sdr"].flatten(1, 2)) - batch["hdr"][:, 1]).pow(2).mean(dim=(1, 2, 3))
            valid = batch["valid"].float()
            partial = torch.stack([(error * valid).sum(), valid.sum()])
            dist.all_reduce(partial)  # one collective per batch: unequal batch counts across ranks would hang here
            total += partial
            seen += [[key, bool(v)] for key, v in zip(batch["key"], batch["valid"])]

    result = {"rank": rank, "world_size": dist.get_world_size(), "batches_per_epoch": counts,
              "straight": straight, "weights": final_weights, "before_resume": before, "after_resume": after,
              "resumed_weights": resumed_weights, "eval": seen, "eval_batches": len(evaluation),
              "eval_samples_counted": float(total[1])}
    Path(args.out, f"rank{rank}.json").write_text(json.dumps(result))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
