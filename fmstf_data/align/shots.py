"""Shot boundaries and gradual transitions, on frame signatures (see :mod:`fmstf_data.align`).

**Hard cuts** (:class:`ShotTracker`): a cut is declared between two consecutive frames when their match score
(Spearman correlation of rank thumbnails) drops below ``cut_score``, which a continuous shot, even with fast
motion, stays well above (0.85 or more in practice), while two different scenes fall near 0. Flat frames (black, a
uniform fade) carry no signature: they never start a shot themselves, and the next textured frame is compared with
the last textured one, so a fade to black followed by a different scene still counts as a cut (and the flat frames
themselves are never used, see :mod:`fmstf_data.extract.lockstep`).

**Fades and dissolves** (:class:`TransitionDetector`) never drop the score below ``cut_score``: each frame looks
much like the next. They are flagged instead, so that no triplet is taken from them:

- *level runs*: the mean luma (in 8-bit code units above black) changes in one direction at every step of a run,
  by at least a quarter of ``min_level_change`` (relative) each time and by at least ``min_level_change`` at
  ``run_frames`` of them: a fade to or from black, or a dissolve between scenes of different brightness, with its
  gentle start and end. Normal motion changes the mean by well under 1 % a frame and not steadily;
- *unstable frames*: a frame whose match score with both its neighbours is below ``stable_score`` (but not a cut on
  both sides of a single frame): the middle of a fast dissolve, a flash.

A dissolve between two scenes of the same brightness and slow motion may pass unflagged; its frames are still true
pairs (both versions show the same blend), only not a clean shot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fmstf_data.align.signatures import FrameSignature
from fmstf_data.errors import InvalidValueError, UnknownKeyError

DEFAULT_CUT_SCORE = 0.5
#: relative change of the mean luma per frame that counts as a fading step
DEFAULT_MIN_LEVEL_CHANGE = 0.008
#: consecutive fading steps in one direction that make a fade
DEFAULT_RUN_FRAMES = 3
#: a frame scoring below this with both neighbours is unstable (transition, flash)
DEFAULT_STABLE_SCORE = 0.8
#: luma black in 8-bit code units (narrow range); levels are measured above it
_BLACK_8BIT = 16.0


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
            raise InvalidValueError(f"cut_score must be in [-1, 1], got {self.cut_score}")

    def update(self, signature: FrameSignature | np.ndarray) -> int:
        """Register the next frame (its :class:`FrameSignature` or rank vector); returns its shot number."""
        rank = signature.rank if isinstance(signature, FrameSignature) else signature
        if rank.any():
            if self._previous is not None and float(np.dot(self._previous, rank)) < self.cut_score:
                self.shot += 1
                self.cut_frames.append(self._seen)
            self._previous = rank
        self._seen += 1
        return self.shot


@dataclass
class TransitionDetector:
    """Flags frames of fades and dissolves; feed signatures in order with :meth:`add`, then ask :meth:`flag`
    about frame ``t`` once frames up to ``t + lookahead`` have been added (or the video ended).

    Attributes:
        min_level_change, run_frames, stable_score: see the module docstring.
        first_frame: the number of the first frame added (a chunk of a video starts counting where it starts).
    """

    min_level_change: float = DEFAULT_MIN_LEVEL_CHANGE
    run_frames: int = DEFAULT_RUN_FRAMES
    stable_score: float = DEFAULT_STABLE_SCORE
    cut_score: float = DEFAULT_CUT_SCORE
    first_frame: int = 0
    _levels: dict[int, float] = field(default_factory=dict, repr=False)
    _ranks: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    _count: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if self.run_frames < 1 or self.min_level_change <= 0:
            raise InvalidValueError(f"need run_frames >= 1 and min_level_change > 0, got {self.run_frames}, "
                             f"{self.min_level_change}")
        self._count = self.first_frame

    @property
    def lookahead(self) -> int:
        """Frames after ``t`` that :meth:`flag` reads."""
        return 2 * self.run_frames

    def add(self, signature: FrameSignature) -> None:
        """Register the next frame."""
        self._levels[self._count] = signature.level
        self._ranks[self._count] = signature.rank
        self._count += 1
        for old in [k for k in self._levels if k < self._count - 7 * self.run_frames - 2]:
            del self._levels[old], self._ranks[old]

    def _change(self, k: int) -> float:
        """Relative change of the mean luma from frame k - 1 to frame k (0 when unknown)."""
        if k - 1 not in self._levels or k not in self._levels:
            return 0.0
        before, after = self._levels[k - 1], self._levels[k]
        return (after - before) / max(before - _BLACK_8BIT, 4.0)

    def _in_fade(self, k: int) -> bool:
        """True when step k belongs to a run of steps in one direction, each changing the level by at least a
        quarter of ``min_level_change``, that holds ``run_frames`` steps of at least ``min_level_change``: the
        strong middle of a fade and its gentle ends."""
        direction = np.sign(self._change(k))
        weak = self.min_level_change / 4

        def same(step: int) -> bool:
            change = self._change(step)
            return np.sign(change) == direction and abs(change) >= weak

        if direction == 0 or not same(k):
            return False
        steps = [k]
        for step in range(k - 1, k - 4 * self.run_frames, -1):
            if not same(step):
                break
            steps.append(step)
        for step in range(k + 1, k + 2 * self.run_frames + 1):
            if not same(step):
                break
            steps.append(step)
        return sum(abs(self._change(step)) >= self.min_level_change for step in steps) >= self.run_frames

    def flag(self, t: int) -> str | None:
        """"fade" or "unstable" when frame ``t`` is part of a transition, else None."""
        if t not in self._levels:
            raise UnknownKeyError(f"frame {t} is not (or no longer) known")
        if self._in_fade(t) or self._in_fade(t + 1):
            return "fade"
        rank = self._ranks[t]
        if rank.any() and t - 1 in self._ranks and t + 1 in self._ranks:
            before, after = float(np.dot(rank, self._ranks[t - 1])), float(np.dot(rank, self._ranks[t + 1]))
            if before < self.stable_score and after < self.stable_score and \
                    not (before < self.cut_score and after < self.cut_score):
                return "unstable"
        return None
