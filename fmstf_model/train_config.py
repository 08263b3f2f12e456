"""Training configuration: a YAML file validated into typed dataclasses (one per section), with explicit overrides.

A config has five sections; every key is optional except ``data.source`` and has the paper's value as default
where the paper gives one (FMSTFnet §III: Adam beta 0.9 / 0.999, batch 7, lr 2e-4 decaying to 1e-5 over 100
epochs)::

    data:  {source: build/demo, split: train, crop_size: 256, batch_size: 7, crops_per_sample: 1, flips: true,
            rot90: true, num_workers: 2, seed: 0}
    model: {preset: default, overrides: {}}            # preset "default" (4K) or "tiny"; overrides: FMSTFConfig fields
    loss:  {reconstruction_weight: 1.0, perceptual_weight: 0.01, vgg_weights_path: null}
    optim: {lr: 2.0e-4, final_lr: 1.0e-5, betas: [0.9, 0.999], eps: 1.0e-8, weight_decay: 0.0,
            schedule: cosine, decay_epochs: 100, grad_clip_norm: null}
    train: {out_dir: runs/NAME, epochs: 100, max_steps: null, seed: 0, amp: auto, device: auto, backend: auto,
            log_every_steps: 10, checkpoint_every_steps: 500, keep_checkpoints: 3, tensorboard: auto}

Relative paths (``data.source``, ``train.out_dir``, ``loss.vgg_weights_path``) are taken relative to the current
directory. Unknown keys are errors (a typo must not silently fall back to a default). Overrides use dotted keys with
YAML values, e.g. ``apply_overrides(raw, ["train.max_steps=50", "data.source=/tmp/build"])``.
Only ``yaml.safe_load`` is used.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fmstf_data.errors import ModelError
from fmstf_model.fmstfnet import FMSTFConfig

SCHEDULES = ("cosine", "step", "constant")
AMP_MODES = ("auto", "off", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
BACKENDS = ("auto", "nccl", "gloo")
MODEL_PRESETS = ("default", "tiny")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ModelError(message)


def _positive_int(name: str, value: Any, minimum: int = 1) -> None:
    _check(isinstance(value, int) and not isinstance(value, bool) and value >= minimum,
           f"{name} must be an integer >= {minimum}, got {value!r}")


def _number(name: str, value: Any, minimum: float = 0.0, strict: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > minimum if strict else value >= minimum)
    _check(ok, f"{name} must be a finite number {'>' if strict else '>='} {minimum}, got {value!r}")


@dataclass(frozen=True)
class DataConfig:
    """Where the training triplets come from and how they are cut (see :class:`fmstf_data.loader.LoaderOptions`)."""

    source: str
    """A build directory written by ``fmstf-data build`` (local path or s3:// / gs:// / hdfs:// URI)."""
    split: str = "train"
    """Which split of the build to train on."""
    crop_size: int = 256
    """Square training crop in pixels (even; >= 2**(s+5) for pyramid level count s, spec §7)."""
    batch_size: int = 7
    """Crops per optimiser step **per process** (the paper's 7 on one GPU)."""
    crops_per_sample: int = 1
    """Crops cut from each decoded triplet (must divide batch_size)."""
    flips: bool = True
    rot90: bool = True
    num_workers: int = 2
    """DataLoader worker processes per training process (0 = load in the training process)."""
    seed: int = 0
    """Seed of the loader's shuffle and augmentation plan."""

    def __post_init__(self) -> None:
        _check(isinstance(self.source, str) and self.source != "",
               f"data.source must name a build, got {self.source!r}")
        _check(isinstance(self.split, str) and self.split != "", f"data.split must be a split name, got {self.split!r}")
        _positive_int("data.crop_size", self.crop_size, 2)
        _check(self.crop_size % 2 == 0, f"data.crop_size must be even (4:2:0 chroma), got {self.crop_size}")
        _positive_int("data.batch_size", self.batch_size)
        _positive_int("data.crops_per_sample", self.crops_per_sample)
        _check(self.batch_size % self.crops_per_sample == 0,
               f"data.crops_per_sample ({self.crops_per_sample}) must divide data.batch_size ({self.batch_size})")
        _positive_int("data.num_workers", self.num_workers, 0)
        _positive_int("data.seed", self.seed, 0)
        for name in ("flips", "rot90"):
            _check(isinstance(getattr(self, name), bool), f"data.{name} must be true or false")


@dataclass(frozen=True)
class ModelSection:
    """Which FMSTFnet: a preset of :class:`FMSTFConfig` and field overrides."""

    preset: str = "default"
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(self.preset in MODEL_PRESETS, f"model.preset must be one of {MODEL_PRESETS}, got {self.preset!r}")
        _check(isinstance(self.overrides, Mapping), f"model.overrides must be a mapping, got {self.overrides!r}")
        self.build()  # validates the overrides now, with FMSTFConfig's messages

    def build(self) -> FMSTFConfig:
        base = FMSTFConfig.tiny() if self.preset == "tiny" else FMSTFConfig.default()
        return FMSTFConfig.from_dict({**base.to_dict(), **dict(self.overrides)})


@dataclass(frozen=True)
class LossConfig:
    """Eq. (4) weights; the perceptual term needs a local VGG19 weights file (else it is off)."""

    reconstruction_weight: float = 1.0
    perceptual_weight: float = 0.01
    vgg_weights_path: str | None = None

    def __post_init__(self) -> None:
        _number("loss.reconstruction_weight", self.reconstruction_weight)
        _number("loss.perceptual_weight", self.perceptual_weight)
        if self.vgg_weights_path is not None:
            _check(Path(self.vgg_weights_path).is_file(),
                   f"loss.vgg_weights_path {self.vgg_weights_path!r} is not a file; give a local torchvision VGG19 "
                   "state_dict, or null to train without the perceptual term")


@dataclass(frozen=True)
class OptimConfig:
    """Adam and the learning-rate schedule, stepped once per optimiser step.

    ``cosine``: from ``lr`` to ``final_lr`` along a half cosine over ``decay_epochs`` epochs, then ``final_lr``
    (the spec's default reading of "decays to 1e-5 after 100 epochs"); ``step``: ``lr`` until ``decay_epochs``,
    then ``final_lr``; ``constant``: ``lr`` throughout.
    """

    lr: float = 2.0e-4
    final_lr: float = 1.0e-5
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1.0e-8
    weight_decay: float = 0.0
    schedule: str = "cosine"
    decay_epochs: float = 100.0
    grad_clip_norm: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        _number("optim.lr", self.lr, strict=True)
        _number("optim.final_lr", self.final_lr)
        _check(self.final_lr <= self.lr, f"optim.final_lr ({self.final_lr}) must not exceed optim.lr ({self.lr})")
        _check(len(self.betas) == 2 and all(isinstance(b, (int, float)) and 0.0 <= b < 1.0 for b in self.betas),
               f"optim.betas must be two numbers in [0, 1), got {list(self.betas)}")
        _number("optim.eps", self.eps, strict=True)
        _number("optim.weight_decay", self.weight_decay)
        _check(self.schedule in SCHEDULES, f"optim.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        _number("optim.decay_epochs", self.decay_epochs, strict=True)
        if self.grad_clip_norm is not None:
            _number("optim.grad_clip_norm", self.grad_clip_norm, strict=True)

    def lr_factor(self, step: int, steps_per_epoch: int) -> float:
        """Multiplier of ``lr`` after ``step`` optimiser steps (LambdaLR convention)."""
        if self.schedule == "constant":
            return 1.0
        floor = self.final_lr / self.lr
        progress = step / max(1.0, self.decay_epochs * steps_per_epoch)
        if progress >= 1.0:
            return floor
        if self.schedule == "step":
            return 1.0
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class RunConfig:
    """How long, where, and on what a run trains."""

    out_dir: str = "runs/fmstf"
    """Checkpoints (``checkpoints/step-NNNNNNNN.pt``, ``latest.pt``), ``metrics.jsonl``, ``config.yaml``, TB events."""
    epochs: float = 100.0
    """Length of the run in epochs (one epoch = one pass over the split's triplets, all processes together)."""
    max_steps: int | None = None
    """Stop after this many optimiser steps if that comes first (e.g. a short demo)."""
    seed: int = 0
    """Seeds the weight initialisation (same on every process) and each process's random stream."""
    amp: str = "auto"
    """Mixed precision: ``auto`` (bf16 on a GPU that has it, else fp16; off on CPU), ``off``, ``bf16``, ``fp16``."""
    device: str = "auto"
    """``auto`` (CUDA when present), ``cpu`` or ``cuda``."""
    backend: str = "auto"
    """torch.distributed backend when several processes run: ``auto`` (NCCL on CUDA, gloo on CPU)."""
    log_every_steps: int = 10
    checkpoint_every_steps: int = 500
    keep_checkpoints: int = 3
    """Numbered checkpoints kept besides ``latest.pt`` (older ones are deleted)."""
    tensorboard: str = "auto"
    """Also write TensorBoard event files: ``auto`` (when tensorboardX is installed), ``on``, ``off``."""

    def __post_init__(self) -> None:
        _check(isinstance(self.out_dir, str) and self.out_dir != "",
               f"train.out_dir must be a path, got {self.out_dir!r}")
        _number("train.epochs", self.epochs, strict=True)
        if self.max_steps is not None:
            _positive_int("train.max_steps", self.max_steps)
        _positive_int("train.seed", self.seed, 0)
        _check(self.amp in AMP_MODES, f"train.amp must be one of {AMP_MODES}, got {self.amp!r}")
        _check(self.device in DEVICES, f"train.device must be one of {DEVICES}, got {self.device!r}")
        _check(self.backend in BACKENDS, f"train.backend must be one of {BACKENDS}, got {self.backend!r}")
        _positive_int("train.log_every_steps", self.log_every_steps)
        _positive_int("train.checkpoint_every_steps", self.checkpoint_every_steps)
        _positive_int("train.keep_checkpoints", self.keep_checkpoints, 0)
        _check(self.tensorboard in ("auto", "on", "off"),
               f"train.tensorboard must be auto, on or off, got {self.tensorboard!r}")


@dataclass(frozen=True)
class TrainConfig:
    """A whole training configuration (see the module docstring for the YAML layout)."""

    data: DataConfig
    model: ModelSection = field(default_factory=ModelSection)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        levels = self.model.build().pyramid_levels
        minimum = 2 ** (levels + 5)
        _check(self.data.crop_size >= minimum,
               f"data.crop_size {self.data.crop_size} is too small for pyramid_levels={levels}: the global encoder "
               f"needs >= 2**(s+5) = {minimum} px (spec §7)")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TrainConfig:
        """Validate a parsed YAML mapping; unknown sections or keys raise :class:`ModelError` naming them."""
        _check(isinstance(raw, Mapping), f"a training config must be a mapping of sections, got {type(raw).__name__}")
        sections = {"data": DataConfig, "model": ModelSection, "loss": LossConfig, "optim": OptimConfig,
                    "train": RunConfig}
        unknown = sorted(set(raw) - set(sections))
        _check(not unknown, f"unknown config sections {unknown}; known: {sorted(sections)}")
        _check("data" in raw, "the config needs a data section with data.source (a build directory)")
        built = {}
        for name, section in sections.items():
            values = raw.get(name) or {}
            _check(isinstance(values, Mapping), f"config section {name} must be a mapping, got {values!r}")
            known = {f.name for f in dataclasses.fields(section)}
            extra = sorted(set(values) - known)
            _check(not extra, f"unknown keys {[f'{name}.{k}' for k in extra]}; known in {name}: {sorted(known)}")
            try:
                built[name] = section(**values)
            except TypeError as error:  # a missing required key
                raise ModelError(f"config section {name}: {error}") from error
        return cls(**built)

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON-ready values (tuples as lists); ``from_dict(to_dict())`` gives the same config."""
        out = dataclasses.asdict(self)
        out["optim"]["betas"] = list(self.optim.betas)
        out["model"]["overrides"] = dict(self.model.overrides)
        return out


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML training config (``yaml.safe_load``), apply ``key.sub=value`` overrides, validate."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as error:
        raise ModelError(f"cannot read training config {path}: {error}") from error
    except yaml.YAMLError as error:
        raise ModelError(f"{path} is not valid YAML: {error}") from error
    try:
        return TrainConfig.from_dict(apply_overrides(raw, overrides))
    except ModelError as error:
        raise ModelError(f"{path}: {error}") from error


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of ``raw`` with each ``"section.key=value"`` set (value parsed as YAML: numbers, null, lists...)."""
    out = copy.deepcopy(dict(raw))
    for item in overrides:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        _check(sep == "=" and len(parts) >= 2 and all(parts),
               f"override {item!r} must look like section.key=value, e.g. train.max_steps=100")
        value = yaml.safe_load(text)
        node = out.setdefault(parts[0], {})
        for part in parts[1:-1]:
            node = node.setdefault(part, {})
            _check(isinstance(node, dict), f"override {item!r}: {part} is not a mapping")
        node[parts[-1]] = value
    return out
