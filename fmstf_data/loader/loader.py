"""Building a dataset and a resumable loader from a build directory or a list of shards.

Typical DDP use (one process per GPU, ``torch.distributed`` initialised first)::

    loader = make_loader("s3://bucket/build", "train", batch_size=8, crop_size=256, num_workers=6)
    if "loader" in checkpoint:
        loader.load_state_dict(checkpoint["loader"])
    for epoch in range(loader.epoch, epochs):
        for batch in loader:             # equal batch counts on every rank; resumes mid-epoch
            step(batch["sdr"].cuda(), batch["hdr"].cuda())
            ...
            save({"model": ..., "loader": loader.state_dict()})
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow.fs as pafs
from torch.utils.data import DataLoader

from fmstf_data.errors import LoaderError
from fmstf_data.loader.catalog import SampleCatalog, catalog_from_build, catalog_from_shards
from fmstf_data.loader.dataset import TripletDataset
from fmstf_data.loader.distributed import resolve_rank
from fmstf_data.loader.options import LoaderOptions
from fmstf_data.loader.state import LoaderState, plan_fingerprint

logger = logging.getLogger(__name__)

#: options that change which batches are served (a resume with other values is refused)
PLAN_OPTIONS = ("mode", "batch_size", "crop_size", "crops_per_sample", "flips", "rot90", "seed", "remainder",
                "drop_last")


def _is_local(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> bool:
    items = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    return all("://" not in os.fspath(item) or os.fspath(item).startswith("file://") for item in items)


def load_catalog(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], split: str | None = "train", *,
                 on_damage: str = "raise", scan_threads: int | None = None) -> SampleCatalog:
    """The samples of ``source``: a build directory (its ``index/samples.parquet``, rows of ``split``; all splits
    when None) or shard files (a ``.tar`` path or URI, or a list of them; ``split`` is then ignored)."""
    threads = scan_threads if scan_threads is not None else (4 if _is_local(source) else 16)
    if isinstance(source, (str, os.PathLike)) and not os.fspath(source).endswith(".tar"):
        return catalog_from_build(source, split, on_damage=on_damage, scan_threads=threads)
    urls = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    return catalog_from_shards(urls, on_damage=on_damage, scan_threads=threads)


def make_dataset(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], split: str | None = "train", *,
                 rank: int | None = None, world_size: int | None = None, scan_threads: int | None = None,
                 **options: Any) -> TripletDataset:
    """A :class:`TripletDataset` of ``split`` of a build directory, or of shard files.

    Args:
        source: a build directory (local path or ``s3://`` / ``gs://`` / ``hdfs://`` URI, query parameters such as
            ``?endpoint_override=...`` passed to ``pyarrow.fs``), or a ``.tar`` shard or list of shards.
        split: which split of a build ("train", "test", ...).
        rank, world_size: default from ``torch.distributed`` or ``RANK`` / ``WORLD_SIZE``.
        scan_threads: threads locating samples in shards (default 4 local, 16 remote).
        **options: :class:`fmstf_data.loader.LoaderOptions` fields (mode, batch_size, crop_size, ...).
    """
    opts = LoaderOptions(**options)
    rank, world_size = resolve_rank(rank, world_size)
    catalog = load_catalog(source, split, on_damage=opts.on_damage, scan_threads=scan_threads)
    if catalog.damaged:
        logger.warning("%d damaged samples or shards left out of %s", len(catalog.damaged), catalog.source)
    return TripletDataset(catalog, opts, rank=rank, world_size=world_size)


class TripletLoader:
    """A DataLoader over a :class:`TripletDataset` that knows where it is, for exact mid-epoch resume.

    Iterating serves the rest of the current epoch from the current position; when the epoch is finished the loader
    moves to the next epoch by itself (no ``set_epoch`` needed; it exists for explicit control). ``state_dict()``
    counts the batches handed to the caller; ``load_state_dict()`` makes the next iteration continue from there.

    Args:
        dataset: the batches to serve.
        num_workers: DataLoader worker processes (0: in this process). The batch order does not depend on it.
        pin_memory: page-locked batches for faster host-to-GPU copies.
        prefetch_factor: batches each worker prepares ahead.
        timeout_seconds: fail instead of waiting longer than this for one batch (0: wait forever).
        multiprocessing_context: "fork", "spawn" or "forkserver"; default "fork" for local files and "spawn" for
            object stores (their clients are not safe to use across fork).
    """

    def __init__(self, dataset: TripletDataset, *, num_workers: int = 2, pin_memory: bool = False,
                 prefetch_factor: int = 2, timeout_seconds: float = 0,
                 multiprocessing_context: str | None = None) -> None:
        if num_workers < 0:
            raise LoaderError(f"num_workers must be >= 0, got {num_workers}")
        self.dataset = dataset
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.prefetch_factor = prefetch_factor
        self.timeout_seconds = timeout_seconds
        if multiprocessing_context is None and num_workers > 0:
            local = all(isinstance(shard.filesystem, pafs.LocalFileSystem) for shard in dataset.catalog.shards)
            multiprocessing_context = "fork" if local else "spawn"
        self.multiprocessing_context = multiprocessing_context
        self._epoch = 0
        self._position = 0
        self.substituted_count = 0
        plan_options = {name: getattr(dataset.options, name) for name in PLAN_OPTIONS}
        self._fingerprint = plan_fingerprint(dataset.catalog.keys, world_size=dataset.world_size,
                                             options=plan_options)

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def position(self) -> int:
        """Batches of the current epoch already served."""
        return self._position

    def __len__(self) -> int:
        """Batches per epoch on this rank (equal on every rank)."""
        return self.dataset.batches_per_epoch(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` from its first batch at the next iteration."""
        if epoch < 0:
            raise LoaderError(f"epoch must be >= 0, got {epoch}")
        self._epoch, self._position = epoch, 0

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready state: save it with the model; every rank has the same state."""
        return LoaderState(epoch=self._epoch, position=self._position, seed=self.dataset.options.seed,
                           plan_fingerprint=self._fingerprint).to_dict()

    def load_state_dict(self, state: dict[str, Any], *, strict: bool = True) -> None:
        """Continue from ``state`` at the next iteration.

        Raises:
            LoaderError: the state was saved with another plan (other samples, world size, seed, batch shape,
                crop or augmentation options) and ``strict``; with ``strict=False`` the epoch and position are
                taken as they are (clipped to the epoch) and a warning is logged.
        """
        loaded = LoaderState.from_dict(state)
        if loaded.plan_fingerprint != self._fingerprint or loaded.seed != self.dataset.options.seed:
            message = ("the loader state was saved with another plan (samples, world size, seed, batch shape or "
                       "augmentation options differ)")
            if strict:
                raise LoaderError(message + "; pass strict=False to continue approximately")
            logger.warning("%s; continuing at epoch %d, batch %d", message, loaded.epoch, loaded.position)
        position = min(loaded.position, self.dataset.batches_per_epoch(loaded.epoch))
        self._epoch, self._position = loaded.epoch, position

    def _dataloader(self) -> DataLoader:
        kwargs: dict[str, Any] = {}
        if self.num_workers > 0:
            kwargs.update(prefetch_factor=self.prefetch_factor, multiprocessing_context=self.multiprocessing_context,
                          persistent_workers=False, timeout=self.timeout_seconds)
        return DataLoader(self.dataset, batch_size=None, shuffle=False, num_workers=self.num_workers,
                          pin_memory=self.pin_memory, in_order=True, **kwargs)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        epoch, start = self._epoch, self._position
        total = self.dataset.batches_per_epoch(epoch)
        if start >= total:  # a state saved right at the end of an epoch
            epoch, start = epoch + 1, 0
            self._epoch, self._position = epoch, 0
        self.dataset.set_position(epoch, start)
        for batch in self._dataloader():
            if batch["batch_index"] != self._position or batch["epoch"] != epoch:
                raise LoaderError(f"internal error: expected batch {self._position} of epoch {epoch}, got batch "
                                  f"{batch['batch_index']} of epoch {batch['epoch']}")
            self._position += 1
            self.substituted_count += int(batch["substituted"].sum())
            yield batch
        if self._position != total:
            raise LoaderError(f"internal error: epoch {epoch} ended after {self._position} of {total} batches")
        self._epoch, self._position = epoch + 1, 0


def make_loader(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | TripletDataset,
                split: str | None = "train", *, num_workers: int = 2, pin_memory: bool = False,
                prefetch_factor: int = 2, timeout_seconds: float = 0, multiprocessing_context: str | None = None,
                **dataset_options: Any) -> TripletLoader:
    """A :class:`TripletLoader` over ``source`` (see :func:`make_dataset` for the source and its options), or over
    a :class:`TripletDataset` already made."""
    if isinstance(source, TripletDataset):
        if dataset_options:
            raise LoaderError(f"options {sorted(dataset_options)} given with a ready dataset; set them in "
                              "make_dataset")
        dataset = source
    else:
        dataset = make_dataset(source, split, **dataset_options)
    return TripletLoader(dataset, num_workers=num_workers, pin_memory=pin_memory, prefetch_factor=prefetch_factor,
                         timeout_seconds=timeout_seconds, multiprocessing_context=multiprocessing_context)
