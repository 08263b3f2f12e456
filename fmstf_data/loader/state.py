"""The loader's resumable state: where training is in the plan, as plain JSON-ready values for a checkpoint."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from fmstf_data.errors import LoaderError

STATE_VERSION = 1


@dataclass(frozen=True)
class LoaderState:
    """Where a loader is: the next batch it serves is batch ``position`` of ``epoch``.

    Attributes:
        epoch: the epoch in progress (0-based).
        position: batches of that epoch already handed to the training loop.
        seed: the plan's seed.
        plan_fingerprint: hash of what the plan depends on (sample keys, world size, batch shape, mode, options);
            a resume with a different plan is refused, since "the same batches" would not be true.
        version: layout of this record.
    """

    epoch: int
    position: int
    seed: int
    plan_fingerprint: str
    version: int = STATE_VERSION

    def __post_init__(self) -> None:
        if self.epoch < 0 or self.position < 0:
            raise LoaderError(f"loader state needs epoch >= 0 and position >= 0, got {self.epoch}, {self.position}")

    def to_dict(self) -> dict[str, Any]:
        """Plain ints and strings: safe in ``torch.save`` checkpoints loaded with ``weights_only=True``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoaderState:
        if data.get("version") != STATE_VERSION:
            raise LoaderError(f"loader state version {data.get('version')!r} is not {STATE_VERSION}")
        try:
            return cls(epoch=int(data["epoch"]), position=int(data["position"]), seed=int(data["seed"]),
                       plan_fingerprint=str(data["plan_fingerprint"]))
        except KeyError as error:
            raise LoaderError(f"loader state lacks {error}; got keys {sorted(data)}") from error


def plan_fingerprint(keys: list[str], *, world_size: int, options: dict[str, Any]) -> str:
    """A short hash of everything the batch plan depends on (not the rank: the state is the same on all ranks)."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"world_size": world_size, "options": options}, sort_keys=True).encode())
    for key in keys:
        digest.update(key.encode())
        digest.update(b"\n")
    return digest.hexdigest()[:16]
