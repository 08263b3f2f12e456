"""Which triplet centres to keep: deterministic, streaming, inside one shot, at a stride.

A centre frame c (an HDR frame index) may be kept when frames c-1, c and c+1 all have an SDR partner, all passed
per-frame verification, and all lie in one shot. Among those, the first is kept and then every next one at least
``stride_frames`` after the last kept one, so the choice depends only on the content, never on scheduling.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TripletSelector:
    """Streaming stride selection over candidate centres offered in increasing order.

    Attributes:
        stride_frames: minimum distance between kept centres (1 keeps every valid centre).
        kept: centres kept so far.
    """

    stride_frames: int
    kept: list[int] = field(default_factory=list)
    rejected_reasons: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.stride_frames < 1:
            raise ValueError(f"stride_frames must be >= 1, got {self.stride_frames}")

    def offer(self, centre: int, problem: str | None) -> bool:
        """Offer centre ``centre``; ``problem`` is None when its triplet is usable, else why not. True if kept."""
        if problem is not None:
            self.rejected_reasons[problem] = self.rejected_reasons.get(problem, 0) + 1
            return False
        if self.kept and centre - self.kept[-1] < self.stride_frames:
            return False
        if self.kept and centre <= self.kept[-1]:
            raise ValueError(f"centres must be offered in increasing order: {centre} after {self.kept[-1]}")
        self.kept.append(centre)
        return True
