"""This process's rank and the world size: given, from ``torch.distributed``, or from the launcher's environment."""

from __future__ import annotations

import os

import torch.distributed as dist

from fmstf_data.errors import LoaderError


def resolve_rank(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """(rank, world_size): the arguments when both are given, else the initialised process group, else the
    ``RANK`` / ``WORLD_SIZE`` environment variables (torchrun sets them), else (0, 1)."""
    if (rank is None) != (world_size is None):
        raise LoaderError(f"give both rank and world_size or neither, got rank={rank}, world_size={world_size}")
    if rank is None:
        if dist.is_available() and dist.is_initialized():
            rank, world_size = dist.get_rank(), dist.get_world_size()
        elif "RANK" in os.environ and "WORLD_SIZE" in os.environ:
            try:
                rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
            except ValueError as error:
                raise LoaderError(f"RANK={os.environ['RANK']!r} / WORLD_SIZE={os.environ['WORLD_SIZE']!r} are "
                                  "not integers") from error
        else:
            rank, world_size = 0, 1
    if world_size < 1 or not 0 <= rank < world_size:
        raise LoaderError(f"rank {rank} is not in 0..world_size-1 (world_size {world_size})")
    return rank, world_size
