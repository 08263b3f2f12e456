"""What a loader yields and how: one typed, checked record of options."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from fmstf_data.errors import LoaderError
from fmstf_data.loader.catalog import DAMAGE_POLICIES
from fmstf_data.loader.plan import MODES, REMAINDERS

OUTPUTS = ("rgb", "planes")


def _pair(value: int | tuple[int, int] | list[int] | None, name: str) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, int):
        value = (value, value)
    if len(value) != 2 or not all(isinstance(v, int) and v > 0 for v in value):
        raise LoaderError(f"{name} must be a positive int or (height, width), got {value!r}")
    return int(value[0]), int(value[1])


@dataclass(frozen=True)
class LoaderOptions:
    """Options of :func:`fmstf_data.loader.make_dataset`.

    Attributes:
        mode: ``"train"`` (seeded shuffle, random crops and flips, equal batches per rank) or ``"eval"`` (each
            sample exactly once across ranks in catalog order, centred crop or whole frames, no augmentation,
            padding rows marked ``valid = False``).
        batch_size: training examples (crops) per batch, per rank.
        crop_size: crop (height, width) in luma pixels, even (an int means square); None serves whole frames
            (every frame in a batch must then have the same size: use batch_size 1 for mixed sizes).
        crops_per_sample: crops cut from each decoded triplet, all in the same batch (amortises decoding large
            frames); must divide ``batch_size``; 1 in eval mode.
        flips: random horizontal and vertical flips (train mode).
        rot90: random quarter turns (train mode; needs square crops).
        global_size: also yield the whole frame area-downsampled to (height, width) as ``sdr_global`` /
            ``hdr_global`` [B, 3, 3, height, width], with the crop's flips and turns (square when ``rot90``).
        output: ``"rgb"`` (``sdr``/``hdr`` float32 R'G'B', converted in the workers) or ``"planes"`` (cropped
            code planes; convert in the training step with :func:`fmstf_data.loader.planes_to_rgb_batch`).
        seed: seeds the shuffle and the augmentation (the same seed gives the same batches).
        remainder: train mode, samples left when N is not a multiple of the world size: ``"drop"`` them this epoch
            or ``"wrap"`` (serve a few samples twice so none waits).
        drop_last: train mode, drop a last partial batch (eval never drops).
        on_damage: ``"raise"`` on a missing, truncated or corrupt shard or sample, or ``"skip"``: leave it out
            (found while scanning) or serve a replacement flagged ``substituted`` (found while reading), with a
            warning in the log.
        decode_threads: threads that decompress a sample's six plane members at once (zstd releases the GIL).
            None: one per member up to the CPUs in the training process (``num_workers=0``), 1 in DataLoader
            workers (which are the parallelism there). The batches do not depend on it.
    """

    mode: Literal["train", "eval"] = "train"
    batch_size: int = 8
    crop_size: int | tuple[int, int] | None = 256
    crops_per_sample: int = 1
    flips: bool = True
    rot90: bool = True
    global_size: int | tuple[int, int] | None = None
    output: Literal["rgb", "planes"] = "rgb"
    seed: int = 0
    remainder: Literal["drop", "wrap"] = "drop"
    drop_last: bool = True
    on_damage: Literal["raise", "skip"] = "raise"
    decode_threads: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "crop_size", _pair(self.crop_size, "crop_size"))
        object.__setattr__(self, "global_size", _pair(self.global_size, "global_size"))
        if self.mode not in MODES:
            raise LoaderError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.output not in OUTPUTS:
            raise LoaderError(f"output must be one of {OUTPUTS}, got {self.output!r}")
        if self.remainder not in REMAINDERS:
            raise LoaderError(f"remainder must be one of {REMAINDERS}, got {self.remainder!r}")
        if self.on_damage not in DAMAGE_POLICIES:
            raise LoaderError(f"on_damage must be one of {DAMAGE_POLICIES}, got {self.on_damage!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise LoaderError(f"batch_size must be an int >= 1, got {self.batch_size!r}")
        if self.decode_threads is not None and (not isinstance(self.decode_threads, int) or self.decode_threads < 1):
            raise LoaderError(f"decode_threads must be an int >= 1 or None, got {self.decode_threads!r}")
        if not isinstance(self.crops_per_sample, int) or self.crops_per_sample < 1:
            raise LoaderError(f"crops_per_sample must be an int >= 1, got {self.crops_per_sample!r}")
        if self.batch_size % self.crops_per_sample:
            raise LoaderError(f"crops_per_sample {self.crops_per_sample} must divide batch_size {self.batch_size}")
        if self.mode == "eval" and self.crops_per_sample != 1:
            raise LoaderError("eval mode serves each sample once: crops_per_sample must be 1")
        if self.crop_size is not None and any(v % 2 for v in self.crop_size):
            raise LoaderError(f"crop_size must be even for 4:2:0 planes, got {self.crop_size}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise LoaderError(f"seed must be an int >= 0, got {self.seed!r}")
        if self.augments and self.rot90:
            if self.crop_size is None or self.crop_size[0] != self.crop_size[1]:
                raise LoaderError(f"rot90 needs square crops (crop_size {self.crop_size}); pass rot90=False")
            if self.global_size is not None and self.global_size[0] != self.global_size[1]:
                raise LoaderError(f"rot90 needs a square global_size, got {self.global_size}")

    @property
    def augments(self) -> bool:
        """True in train mode: crops are random, flips and turns applied when enabled."""
        return self.mode == "train"

    @property
    def samples_per_batch(self) -> int:
        return self.batch_size // self.crops_per_sample

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
