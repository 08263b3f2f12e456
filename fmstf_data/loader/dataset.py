"""The iterable dataset: planned batches of triplets, decoded, cropped, converted, augmented.

:class:`TripletDataset` yields whole batches (a DataLoader over it uses ``batch_size=None``), because the plan
(:mod:`fmstf_data.loader.plan`) decides batches, not single samples: batch ``j`` of the epoch is made by worker
``(j - start) mod W`` and the DataLoader hands batches out in plan order whatever the number of workers.

A batch (B = batch size; crops of one triplet are consecutive rows):

=====================  ====================================================================================
``sdr``                float32 [B, 3 frames, 3, h, w]: BT.709 R'G'B' in [0, 1] (``output="rgb"``)
``hdr``                float32 [B, 3 frames, 3, h, w]: PQ-encoded BT.2020 R'G'B' in [0, 1] (``output="rgb"``)
``sdr_y/cb/cr``        uint8 code planes with a conversion margin (``output="planes"``): y [B, 3, h+4, w+4],
                       cb/cr [B, 3, h/2+2, w/2+2]; ``hdr_y/cb/cr`` likewise as int16
``sdr_color``,         per row, the conversion of that side: {bit_depth, matrix, full_range}
``hdr_color``
``sdr_global``,        float32 [B, 3, 3, gh, gw]: the whole frame downsampled (when ``global_size`` is set)
``hdr_global``
``key``, ``pair_id``   list[str]
``sample_index``       int64 [B]: catalog row
``centre_frame``       int64 [B]; ``hdr_frames``, ``sdr_frames`` int64 [B, 3]
``crop``               int64 [B, 4]: top, left, height, width in the stored frame (before flips / turns)
``flip_h``, ``flip_v`` bool [B]; ``rot90`` int64 [B]: quarter turns counter-clockwise
``valid``              bool [B]: False for eval padding and for eval samples that could not be read
``substituted``        bool [B]: the planned sample was damaged and another was served (``on_damage="skip"``)
``metadata``           list[dict]: each sample's JSON
``epoch``, ``batch_index``, ``rank``  ints
=====================  ====================================================================================
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from fmstf_data.color.params import ColorParams, color_params
from fmstf_data.errors import DamagedShardError, LoaderError, SampleFormatError
from fmstf_data.loader.augment import LUMA_MARGIN, CropParams, apply_geometry, crop_planes_with_margin, draw_crop
from fmstf_data.loader.catalog import SampleCatalog
from fmstf_data.loader.convert import convert_with_margin, global_frame
from fmstf_data.loader.options import LoaderOptions
from fmstf_data.loader.plan import RankPlan, rank_plan
from fmstf_data.loader.reader import READ_ERRORS, SampleReader
from fmstf_data.store.samples import Sample

logger = logging.getLogger(__name__)

#: planned samples tried in turn when one is damaged (on_damage="skip") before giving up
MAX_SUBSTITUTE_TRIES = 16


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """``torch.stack``; in a DataLoader worker straight into shared memory, which saves the copy the worker would
    make when it sends the batch to the training process (a 38 MB copy for 8 RGB crops of 256x256)."""
    out = torch.empty((len(tensors), *tensors[0].shape), dtype=tensors[0].dtype)
    if get_worker_info() is not None:
        out.share_memory_()
    return torch.stack(tensors, out=out)


def _planes_tensor(plane: np.ndarray) -> torch.Tensor:
    """Code planes as a torch tensor the colour core converts fast: uint8 stays, uint16 becomes int16 (<= 15 bits)."""
    if plane.dtype == np.uint16:
        plane = plane.view(np.int16) if plane.max(initial=0) < 1 << 15 else plane.astype(np.int32)
    return torch.from_numpy(np.ascontiguousarray(plane))


class TripletDataset(IterableDataset):
    """Batches of (t-1, t, t+1) triplets for one rank, following the deterministic plan.

    Build it with :func:`fmstf_data.loader.make_dataset`; iterate it through
    :class:`fmstf_data.loader.TripletLoader` (which also tracks the position for resuming), or directly.

    Args:
        catalog: the samples.
        options: what to yield.
        rank, world_size: this process's place in distributed training.
    """

    def __init__(self, catalog: SampleCatalog, options: LoaderOptions, *, rank: int = 0, world_size: int = 1) -> None:
        super().__init__()
        if not 0 <= rank < world_size:
            raise LoaderError(f"rank {rank} is outside 0..{world_size - 1}")
        self.catalog = catalog
        self.options = options
        self.rank = rank
        self.world_size = world_size
        self.reader = SampleReader(catalog)
        self.epoch = 0
        self.start_batch = 0
        self._check_sizes()
        plan = self.plan(0)
        if options.mode == "train" and plan.num_batches == 0:
            raise LoaderError(
                f"{len(catalog)} samples over {world_size} rank(s) give no full batch of {options.batch_size} "
                f"({options.samples_per_batch} triplets x {options.crops_per_sample} crops): lower batch_size, "
                "or pass drop_last=False / remainder='wrap'")

    def _check_sizes(self) -> None:
        crop = self.options.crop_size
        known = (self.catalog.heights > 0) & (self.catalog.widths > 0)
        if crop is not None:
            small = known & ((self.catalog.heights < crop[0]) | (self.catalog.widths < crop[1]))
            if small.any():
                first = int(np.flatnonzero(small)[0])
                raise LoaderError(
                    f"{int(small.sum())} samples are smaller than crop_size {crop[0]}x{crop[1]}, e.g. "
                    f"{self.catalog.keys[first]} ({self.catalog.heights[first]}x{self.catalog.widths[first]})")
        elif self.options.batch_size > 1 and known.any():
            sizes = set(zip(self.catalog.heights[known].tolist(), self.catalog.widths[known].tolist()))
            if len(sizes) > 1:
                raise LoaderError(f"whole frames of different sizes {sorted(sizes)} cannot share a batch: set "
                                  "crop_size, or batch_size=1")

    # ---- plan --------------------------------------------------------------------------------------------

    def plan(self, epoch: int) -> RankPlan:
        """This rank's samples and batches in ``epoch``."""
        o = self.options
        return rank_plan(len(self.catalog), mode=o.mode, seed=o.seed, epoch=epoch, rank=self.rank,
                         world_size=self.world_size, samples_per_batch=o.samples_per_batch, remainder=o.remainder,
                         drop_last=o.drop_last)

    def batches_per_epoch(self, epoch: int | None = None) -> int:
        """Batches this rank serves in an epoch (the same on every rank and, for a given catalog, every epoch)."""
        return self.plan(self.epoch if epoch is None else epoch).num_batches

    def set_position(self, epoch: int, start_batch: int = 0) -> None:
        """Where the next iteration starts: ``epoch``, skipping its first ``start_batch`` batches (no reading)."""
        num_batches = self.batches_per_epoch(epoch)
        if epoch < 0 or not 0 <= start_batch <= num_batches:
            raise LoaderError(f"position (epoch {epoch}, batch {start_batch}) is outside the epoch's "
                              f"{num_batches} batches")
        self.epoch, self.start_batch = epoch, start_batch

    def _decode_threads(self) -> int:
        """``options.decode_threads``, or when None: up to one per plane member in the training process, 1 in a
        DataLoader worker."""
        if self.options.decode_threads is not None:
            return self.options.decode_threads
        return 1 if get_worker_info() is not None else max(1, min(6, os.cpu_count() or 1))

    def __iter__(self):
        info = get_worker_info()
        worker, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        self.reader.decode_threads = self._decode_threads()
        plan = self.plan(self.epoch)
        for batch_index in plan.worker_batches(worker, num_workers, self.start_batch):
            yield self.make_batch(plan, batch_index)

    # ---- one batch ---------------------------------------------------------------------------------------

    def _read(self, plan: RankPlan, slot: int) -> tuple[Sample, int, bool, list[CropParams]]:
        """The sample planned at ``slot`` of the rank plan, or (``on_damage="skip"``) the next readable one, with
        its crops.

        When the frame size is known from the index and the crops do not need the whole frame, the crops are drawn
        first and only the row bands they touch are read and decoded.

        Returns (sample, catalog row served, substituted, crops in stored-frame coordinates).
        """
        tries = min(MAX_SUBSTITUTE_TRIES, len(plan.sample_ids))
        for attempt in range(tries):
            row = int(plan.sample_ids[(slot + attempt) % len(plan.sample_ids)])
            height, width = int(self.catalog.heights[row]), int(self.catalog.widths[row])
            crops = self._crops(plan, slot, height, width) if height > 0 and width > 0 else None
            try:
                sample = self.reader.read(row, rows=self._rows_needed(crops, height))
                if crops is None:
                    crops = self._crops(plan, slot, sample.height, sample.width)
                elif sample.width != width or sample.first_row + sample.height > height:
                    raise SampleFormatError(f"sample {self.catalog.keys[row]} is {sample.width} wide and holds rows "
                                            f"up to {sample.first_row + sample.height}; the index says "
                                            f"{height}x{width}")
                return sample, row, attempt > 0, crops
            except READ_ERRORS as error:
                shard = self.catalog.shards[int(self.catalog.shard_index[row])].name
                if self.options.on_damage == "raise":
                    raise DamagedShardError(
                        f"sample {self.catalog.keys[row]} in {shard}: {error}. Rebuild the shard, or pass "
                        "on_damage='skip'") from error
                logger.warning("damaged sample %s in %s (%s); serving a replacement", self.catalog.keys[row],
                               shard, error)
        raise DamagedShardError(f"{tries} planned samples in a row are damaged (from slot {slot} of rank "
                                f"{self.rank}, epoch {plan.epoch}); the build looks broken: check its shards")

    def _rows_needed(self, crops: list[CropParams] | None, height: int) -> tuple[int, int] | None:
        """The luma rows the crops (with their conversion margin) need, or None for whole frames."""
        if crops is None or self.options.global_size is not None:
            return None
        start = min(crop.top for crop in crops) - LUMA_MARGIN
        stop = max(crop.top + crop.height for crop in crops) + LUMA_MARGIN
        return None if start <= 0 and stop >= height else (max(0, start), min(height, stop))

    def _crops(self, plan: RankPlan, slot: int, height: int, width: int) -> list[CropParams]:
        o = self.options
        if not o.augments:
            return [draw_crop(None, height, width, o.crop_size, flips=False, rot90=False)]
        crops = []
        for crop_number in range(o.crops_per_sample):
            rng = np.random.default_rng([o.seed, plan.epoch, int(plan.positions[slot]), crop_number])
            crops.append(draw_crop(rng, height, width, o.crop_size, flips=o.flips, rot90=o.rot90))
        return crops

    def _side_outputs(self, planes: tuple[np.ndarray, ...], params: ColorParams, crop: CropParams,
                      context: torch.Tensor | None, first_row: int = 0) -> dict[str, torch.Tensor]:
        held = replace(crop, top=crop.top - first_row)  # the planes hold rows from first_row (a partial read)
        y, cb, cr = (_planes_tensor(p) for p in crop_planes_with_margin(*planes, held))
        if self.options.output == "planes":
            out = {"y": y, "cb": cb, "cr": cr}
        else:
            out = {"rgb": apply_geometry(convert_with_margin(y, cb, cr, params), crop.flip_h, crop.flip_v,
                                         crop.rot90)}
        if context is not None:
            out["global"] = apply_geometry(context, crop.flip_h, crop.flip_v, crop.rot90)
        return out

    def make_batch(self, plan: RankPlan, batch_index: int) -> dict[str, Any]:
        """Batch ``batch_index`` of this rank's ``plan`` (see the module docstring for its fields)."""
        o = self.options
        rows: list[dict[str, Any]] = []
        slots = plan.batch_slice(batch_index)
        for slot in range(slots.start, slots.stop):
            sample, row, substituted, crops = self._read(plan, slot)
            params = {side: color_params(sample.metadata.get(side), side) for side in ("sdr", "hdr")}
            contexts = {side: None for side in ("sdr", "hdr")}
            if o.global_size is not None:
                contexts = {side: global_frame(*(_planes_tensor(p) for p in getattr(sample, side)), params[side],
                                               o.global_size) for side in ("sdr", "hdr")}
            for crop in crops:
                outputs = {side: self._side_outputs(getattr(sample, side), params[side], crop, contexts[side],
                                                    sample.first_row) for side in ("sdr", "hdr")}
                rows.append({"sample": sample, "row": row, "crop": crop, "params": params, "outputs": outputs,
                             "valid": bool(plan.valid[slot]) and not (substituted and o.mode == "eval"),
                             "substituted": substituted})
        return self._collate(rows, plan, batch_index)

    def _collate(self, rows: list[dict[str, Any]], plan: RankPlan, batch_index: int) -> dict[str, Any]:
        o = self.options
        batch: dict[str, Any] = {}
        names = ["rgb"] if o.output == "rgb" else ["y", "cb", "cr"]
        if o.global_size is not None:
            names.append("global")
        for side in ("sdr", "hdr"):
            for name in names:
                field = side if name == "rgb" else f"{side}_{name}"
                tensors = [r["outputs"][side][name] for r in rows]
                shapes = {tuple(t.shape) for t in tensors}
                if len(shapes) > 1:
                    raise LoaderError(f"samples of one batch have different sizes {sorted(shapes)}: set crop_size, "
                                      "or batch_size=1 for whole frames of mixed sizes")
                batch[field] = _stack(tensors)
            batch[f"{side}_color"] = [r["params"][side].to_dict() for r in rows]
        meta = [r["sample"].metadata for r in rows]
        batch["key"] = [r["sample"].key for r in rows]
        batch["pair_id"] = [self.catalog.pair_ids[r["row"]] for r in rows]
        batch["sample_index"] = torch.tensor([r["row"] for r in rows], dtype=torch.int64)
        batch["centre_frame"] = torch.tensor([int(m.get("centre_frame", self.catalog.centre_frames[r["row"]]))
                                             for m, r in zip(meta, rows)], dtype=torch.int64)
        for name in ("hdr_frames", "sdr_frames"):
            batch[name] = torch.tensor([list(m.get(name) or (-1,) * r["sample"].window_frames)
                                        for m, r in zip(meta, rows)], dtype=torch.int64)
        batch["crop"] = torch.tensor([[r["crop"].top, r["crop"].left, r["crop"].height, r["crop"].width]
                                      for r in rows], dtype=torch.int64)
        batch["flip_h"] = torch.tensor([r["crop"].flip_h for r in rows], dtype=torch.bool)
        batch["flip_v"] = torch.tensor([r["crop"].flip_v for r in rows], dtype=torch.bool)
        batch["rot90"] = torch.tensor([r["crop"].rot90 for r in rows], dtype=torch.int64)
        batch["valid"] = torch.tensor([r["valid"] for r in rows], dtype=torch.bool)
        batch["substituted"] = torch.tensor([r["substituted"] for r in rows], dtype=torch.bool)
        batch["metadata"] = meta
        batch["epoch"], batch["batch_index"], batch["rank"] = plan.epoch, batch_index, self.rank
        return batch
