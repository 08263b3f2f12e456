"""Streaming shards into PyTorch training, on one GPU or many, from local disks or object stores (contract 3).

Batches hold ``sdr`` (BT.709 R'G'B') and ``hdr`` (PQ-encoded BT.2020 R'G'B'), float32 [B, 3 frames, 3, h, w] in
[0, 1], plus keys and metadata. See docs/loader.md for the design; the modules:

- :mod:`~fmstf_data.loader.loader`: :func:`make_dataset`, :func:`make_loader`, :class:`TripletLoader` (resume).
- :mod:`~fmstf_data.loader.options`: :class:`LoaderOptions`, every knob with its meaning.
- :mod:`~fmstf_data.loader.plan`: the deterministic per-epoch, per-rank, per-worker plan.
- :mod:`~fmstf_data.loader.catalog`, :mod:`~fmstf_data.loader.tarindex`: which samples exist and where their bytes
  are; damaged shards.
- :mod:`~fmstf_data.loader.reader`: one ranged read + the sample codec per sample.
- :mod:`~fmstf_data.loader.augment`, :mod:`~fmstf_data.loader.convert`: crops, flips, turns; Y'CbCr -> R'G'B'
  with the colour core (also on the GPU: :func:`planes_to_rgb_batch`).
- :mod:`~fmstf_data.loader.state`: :class:`LoaderState`, the checkpointed position.
"""

from fmstf_data.color.params import ColorParams
from fmstf_data.loader.augment import CropParams
from fmstf_data.loader.catalog import DamagedSample, SampleCatalog
from fmstf_data.loader.convert import planes_to_rgb_batch
from fmstf_data.loader.dataset import TripletDataset
from fmstf_data.loader.distributed import resolve_rank
from fmstf_data.loader.loader import TripletLoader, load_catalog, make_dataset, make_loader
from fmstf_data.loader.options import LoaderOptions
from fmstf_data.loader.plan import RankPlan, rank_plan
from fmstf_data.loader.state import LoaderState

__all__ = [
    "ColorParams", "CropParams", "DamagedSample", "LoaderOptions", "LoaderState", "RankPlan", "SampleCatalog",
    "TripletDataset", "TripletLoader", "load_catalog", "make_dataset", "make_loader", "planes_to_rgb_batch",
    "rank_plan", "resolve_rank",
]
