"""The deterministic sample plan: which samples each rank serves in each epoch, in which batches, on which worker.

Everything here is a pure function of (number of samples, seed, epoch, rank, world size, batch shape, mode), so
every rank computes its own share without talking to the others, two runs with the same seed serve the same
batches, and a resumed run continues with exactly the batches an uninterrupted one would have served.

Train mode (``mode="train"``):
    1. The epoch's order is a seeded permutation of all N samples: ``default_rng([seed, epoch]).permutation(N)``.
    2. Rank ``r`` of ``R`` takes the contiguous slice ``[r n, (r + 1) n)`` of it, with ``n = N // R`` under
       ``remainder="drop"`` (the last ``N mod R`` samples of the permutation wait for a later epoch) or
       ``n = ceil(N / R)`` under ``remainder="wrap"`` (the permutation is extended cyclically, so a few samples are
       served twice). Every rank gets the same ``n``, hence the same number of batches: no DDP hang.
    3. The slice is cut into batches of ``samples_per_batch`` samples; a last partial batch is dropped when
       ``drop_last`` (the default in training).
Eval mode (``mode="eval"``):
    The order is the catalog order. Rank ``r`` takes positions ``[r n, (r + 1) n)`` with ``n = ceil(N / R)``;
    positions past N are padding: they repeat a sample from the start with ``valid = False``. Every real sample is
    served exactly once across the ranks, every rank serves the same number of batches, and a metric that ignores
    ``valid == False`` rows sees each sample once. The last batch may be partial (never dropped).
Workers:
    Batch ``j`` of an epoch resumed at batch ``p`` is made by DataLoader worker ``(j - p) mod W``. PyTorch's
    DataLoader asks its workers in turn (worker 0, 1, ..., W-1, 0, ...) and returns their batches in that order,
    so the batches come out as ``p, p + 1, ...`` whatever W is: the order does not depend on ``num_workers``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fmstf_data.errors import LoaderError

MODES = ("train", "eval")
REMAINDERS = ("drop", "wrap")


def epoch_order(num_samples: int, *, mode: str, seed: int, epoch: int) -> np.ndarray:
    """The epoch's global order of sample indices (int64 [N]): a seeded permutation in train mode, 0..N-1 in eval."""
    if mode == "eval":
        return np.arange(num_samples, dtype=np.int64)
    return np.random.default_rng([seed, epoch]).permutation(num_samples).astype(np.int64)


@dataclass(frozen=True)
class RankPlan:
    """One rank's share of one epoch.

    Attributes:
        sample_ids: int64 [n]: catalog rows in serving order.
        valid: bool [n]: False for eval padding.
        positions: int64 [n]: each entry's position in the epoch's global order (its rank-independent identity,
            used to seed its augmentation).
        samples_per_batch: samples per batch (the batch size divided by crops per sample).
        num_batches: batches this rank serves this epoch (equal on every rank).
    """

    epoch: int
    sample_ids: np.ndarray
    valid: np.ndarray
    positions: np.ndarray
    samples_per_batch: int
    num_batches: int

    def __post_init__(self) -> None:
        if not (len(self.sample_ids) == len(self.valid) == len(self.positions)):
            raise LoaderError("plan columns differ in length")
        if (self.num_batches - 1) * self.samples_per_batch >= max(len(self.sample_ids), 1):
            raise LoaderError(f"{self.num_batches} batches of {self.samples_per_batch} do not fit "
                              f"{len(self.sample_ids)} samples")

    def batch_slice(self, batch_index: int) -> slice:
        if not 0 <= batch_index < self.num_batches:
            raise LoaderError(f"batch {batch_index} is outside this epoch's {self.num_batches} batches")
        start = batch_index * self.samples_per_batch
        return slice(start, min(start + self.samples_per_batch, len(self.sample_ids)))

    def worker_batches(self, worker: int, num_workers: int, start_batch: int = 0) -> range:
        """The batches worker ``worker`` of ``num_workers`` makes when the epoch starts at ``start_batch``."""
        if not 0 <= start_batch <= self.num_batches:
            raise LoaderError(f"start batch {start_batch} is outside 0..{self.num_batches}")
        return range(start_batch + worker, self.num_batches, num_workers)


def rank_plan(num_samples: int, *, mode: str, seed: int, epoch: int, rank: int, world_size: int,
              samples_per_batch: int, remainder: str = "drop", drop_last: bool = True) -> RankPlan:
    """The samples and batches of rank ``rank`` of ``world_size`` in ``epoch`` (see the module docstring)."""
    if mode not in MODES:
        raise LoaderError(f"mode must be one of {MODES}, got {mode!r}")
    if remainder not in REMAINDERS:
        raise LoaderError(f"remainder must be one of {REMAINDERS}, got {remainder!r}")
    if num_samples <= 0:
        raise LoaderError(f"nothing to serve: {num_samples} samples")
    if not 0 <= rank < world_size:
        raise LoaderError(f"rank {rank} is outside 0..{world_size - 1}")
    if samples_per_batch < 1:
        raise LoaderError(f"samples_per_batch must be >= 1, got {samples_per_batch}")
    if epoch < 0:
        raise LoaderError(f"epoch must be >= 0, got {epoch}")
    order = epoch_order(num_samples, mode=mode, seed=seed, epoch=epoch)
    if mode == "train" and remainder == "drop":
        per_rank = num_samples // world_size
    else:
        per_rank = math.ceil(num_samples / world_size)
    positions = rank * per_rank + np.arange(per_rank, dtype=np.int64)
    sample_ids = order[positions % num_samples]
    valid = positions < num_samples if mode == "eval" else np.ones(per_rank, dtype=bool)
    if mode == "train" and drop_last:
        num_batches = per_rank // samples_per_batch
    else:
        num_batches = math.ceil(per_rank / samples_per_batch)
    return RankPlan(epoch=epoch, sample_ids=sample_ids, valid=valid, positions=positions,
                    samples_per_batch=samples_per_batch, num_batches=num_batches)
