"""Checkpoints: written atomically, read without arbitrary pickle, holding everything an exact resume needs.

A checkpoint is one ``torch.save`` file of a dict of tensors and plain values (str, int, float, bool, None, lists,
dicts), so ``torch.load(path, weights_only=True)`` reads it and no code object is ever unpickled:

==================  ==============================================================================================
``format``          ``"fmstf-checkpoint"``; ``version`` 1
``model``           the FMSTFnet ``state_dict``; ``model_config`` its :class:`FMSTFConfig` as a dict
``optimizer``       Adam ``state_dict``; ``scheduler`` the LambdaLR ``state_dict``; ``scaler`` the GradScaler's
``loader``          :meth:`fmstf_data.loader.TripletLoader.state_dict` (plain ints and strings)
``rng``             one dict per process (rank order) of RNG states as tensors: torch CPU, CUDA (when used),
                    numpy and Python ``random``
``step``, ``epoch``  optimiser steps done; the loader's epoch
``world_size``      processes that trained; ``train_config`` the whole :class:`TrainConfig` as a dict
==================  ==============================================================================================

Atomic write: the file is written to a temporary name in the same directory, flushed and fsynced, then renamed over
the target with ``os.replace`` (and the directory fsynced), so a crash leaves either the old or the new file.
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from fmstf_data.errors import ModelError
from fmstf_model.fmstfnet import FMSTFConfig, FMSTFnet

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "fmstf-checkpoint"
CHECKPOINT_VERSION = 1
_NUMBERED = re.compile(r"^step-(\d{8,})\.pt$")


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus ``format``/``version``) to ``path`` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **payload}
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(content, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``.

    Raises:
        ModelError: missing or unreadable file, or not an fmstf checkpoint of a known version.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint {path} does not exist")
    try:
        content = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        raise ModelError(f"cannot read checkpoint {path}: {error}") from error
    found = content.get("format") if isinstance(content, dict) else type(content).__name__
    if found != CHECKPOINT_FORMAT:
        raise ModelError(f"{path} is not an fmstf checkpoint (format {found!r}, expected {CHECKPOINT_FORMAT!r})")
    if content.get("version") != CHECKPOINT_VERSION:
        raise ModelError(f"{path} has checkpoint version {content.get('version')!r}; this code reads "
                         f"{CHECKPOINT_VERSION}")
    return content


def load_model(path: str | Path, device: str | torch.device = "cpu") -> FMSTFnet:
    """The FMSTFnet of a checkpoint, in eval mode on ``device``."""
    content = load_checkpoint(path)
    model = FMSTFnet(FMSTFConfig.from_dict(content["model_config"]))
    model.load_state_dict(content["model"])
    return model.to(device).eval()


def numbered_checkpoint(directory: str | Path, step: int) -> Path:
    return Path(directory) / f"step-{step:08d}.pt"


def prune_checkpoints(directory: str | Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest ``step-*.pt`` files of ``directory``; returns the deleted paths."""
    numbered = sorted((int(m.group(1)), p) for p in Path(directory).glob("step-*.pt")
                      if (m := _NUMBERED.match(p.name)))
    doomed = [p for _, p in numbered[: max(0, len(numbered) - keep)]]
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed


# ---- RNG states as tensors ---------------------------------------------------------------------------------------


def capture_rng_state(device: torch.device | None = None) -> dict[str, torch.Tensor]:
    """This process's RNG states as CPU tensors: torch CPU (and CUDA of ``device``), numpy, Python ``random``."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    if name != "MT19937":
        raise ModelError(f"unexpected numpy RNG {name!r}")
    version, python_state, python_gauss = random.getstate()
    state = {
        "torch_cpu": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "numpy_meta": torch.tensor([position, has_gauss], dtype=torch.int64),
        "numpy_gauss": torch.tensor([cached_gaussian], dtype=torch.float64),
        "python_state": torch.tensor([version, *python_state], dtype=torch.int64),
        "python_gauss": torch.tensor([math.nan if python_gauss is None else python_gauss], dtype=torch.float64),
    }
    if device is not None and device.type == "cuda":
        state["torch_cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng_state(state: dict[str, torch.Tensor], device: torch.device | None = None) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch_cpu"].to(torch.uint8).cpu())
    if "torch_cuda" in state and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["torch_cuda"].to(torch.uint8).cpu(), device)
    position, has_gauss = (int(v) for v in state["numpy_meta"].tolist())
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), position, has_gauss,
                         float(state["numpy_gauss"][0])))
    values = state["python_state"].tolist()
    gauss = float(state["python_gauss"][0])
    random.setstate((int(values[0]), tuple(int(v) for v in values[1:]), None if math.isnan(gauss) else gauss))


def gather_rng_states(device: torch.device) -> list[dict[str, torch.Tensor]]:
    """Every process's :func:`capture_rng_state`, in rank order (a collective: every rank must call it).

    Uses fixed-size tensor all-gathers (on ``device`` for NCCL), not object pickling.
    """
    mine = capture_rng_state(device)
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [mine]
    world = dist.get_world_size()
    on_device = device if dist.get_backend() == "nccl" else torch.device("cpu")
    gathered: list[dict[str, torch.Tensor]] = [{} for _ in range(world)]
    for key in sorted(mine):
        tensor = mine[key].to(on_device)
        parts = [torch.empty_like(tensor) for _ in range(world)]
        dist.all_gather(parts, tensor)
        for rank, part in enumerate(parts):
            gathered[rank][key] = part.cpu()
    return gathered
