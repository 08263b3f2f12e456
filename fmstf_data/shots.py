"""Shot-boundary detection on frame signatures (see :mod:`fmstf_data.align` for signatures).

A hard cut is declared between two consecutive frames when their match score (Spearman correlation of rank
thumbnails) drops below ``cut_score``, which a continuous shot, even with fast motion, stays well above, while two
different scenes fall near 0. Flat frames (black, a uniform fade) carry no signature: they never start a shot
themselves, and the next textured frame is compared with the last textured one, so a fade to black followed by a
different scene still counts as a cut (and the flat frames themselves are never used, see
:mod:`fmstf_data.extract`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DEFAULT_CUT_SCORE = 0.5


@dataclass
class ShotTracker:
    """Streaming shot numbering: call :meth:`update` with each frame's signature, in order.

    Attributes:
        cut_score: consecutive textured frames scoring below this are in different shots.
        shot: the current shot number (0 for the first shot).
        cut_frames: positions (count of frames seen before the cut frame) where new shots started.
    """

    cut_score: float = DEFAULT_CUT_SCORE
    shot: int = 0
    cut_frames: list[int] = field(default_factory=list)
    _previous: np.ndarray | None = field(default=None, repr=False)
    _seen: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if not -1.0 <= self.cut_score <= 1.0:
            raise ValueError(f"cut_score must be in [-1, 1], got {self.cut_score}")

    def update(self, signature: np.ndarray) -> int:
        """Register the next frame; returns its shot number."""
        flat = not signature.any()
        if not flat:
            if self._previous is not None and float(np.dot(self._previous, signature)) < self.cut_score:
                self.shot += 1
                self.cut_frames.append(self._seen)
            self._previous = signature
        self._seen += 1
        return self.shot
