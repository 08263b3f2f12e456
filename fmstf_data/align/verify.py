"""Per-frame verification: does each SDR frame show its HDR partner, and where did the offset drift to?

:class:`FrameMatcher` checks every frame pair against its neighbours on both timelines (a dropped or duplicated
SDR frame shifts the offset, and the matcher follows it), with the thresholds of :class:`VerifyOptions`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fmstf_data.align.signatures import FrameSignature, detail_score, match_score
from fmstf_data.errors import InvalidValueError, UnknownKeyError

logger = logging.getLogger(__name__)


# ---- per-frame verification ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyOptions:
    """Per-frame verification and re-synchronisation (:class:`FrameMatcher`).

    Attributes:
        window_frames: partners compared on each side of the expected one (drops and duplicates up to this many
            frames at once are followed).
        resync_margin: a neighbouring SDR frame must beat the expected partner by this much in detail score (and
            one version must show the drop or duplicate itself, see ``jump_factor``) before the offset moves.
        min_match_score: frame pairs whose match score (Spearman) is below this are not verified.
        min_detail_score: frame pairs whose detail score is below this are not verified (too weak to tell one
            instant from the next).
        jump_factor, repeat_factor, min_step: a step between consecutive frames of one version (1 - their match
            score) is a *jump* (frames dropped) when at least ``jump_factor`` times the median of the two steps on
            either side, a *repeat* (a frame shown twice) when at most ``repeat_factor`` times it; pictures whose
            typical step is below ``min_step`` are still and tell nothing.
    """

    window_frames: int = 2
    resync_margin: float = 0.01
    min_match_score: float = 0.8
    min_detail_score: float = 0.2
    jump_factor: float = 1.6
    repeat_factor: float = 0.3
    min_step: float = 0.002

    def __post_init__(self) -> None:
        if self.window_frames < 1:
            raise InvalidValueError(f"window_frames must be >= 1, got {self.window_frames}")
        if self.resync_margin < 0 or not 0 < self.repeat_factor < 1 < self.jump_factor:
            raise InvalidValueError(f"need resync_margin >= 0 and 0 < repeat_factor < 1 < jump_factor, got "
                             f"{self.resync_margin}, {self.repeat_factor}, {self.jump_factor}")
        if not -1.0 <= self.min_match_score <= 1.0:
            raise InvalidValueError(f"min_match_score must be in [-1, 1], got {self.min_match_score}")


#: reasons a frame pair fails verification
FLAT_FRAME = "flat frame"
LOW_MATCH = "low match score"
WEAK_DETAIL = "weak detail score"
SDR_NEIGHBOUR_BETTER = "a neighbouring SDR frame matches better"
HDR_NEIGHBOUR_BETTER = "a neighbouring HDR frame matches better"
NO_SDR_FRAME = "no SDR frame"


@dataclass(frozen=True)
class FrameMatch:
    """The decision for one HDR tick (an HDR frame on the paired grid).

    Attributes:
        tick: the HDR tick; sdr_index: its SDR partner (None when the SDR version has no frame there).
        match_score, detail_score: the pair's scores (0 without a partner).
        problem: why the pair failed verification, None when verified.
        resynced: this tick moved the offset (a dropped or duplicated frame was followed).
    """

    tick: int
    sdr_index: int | None
    match_score: float
    detail_score: float
    problem: str | None
    resynced: bool = False

    @property
    def verified(self) -> bool:
        return self.problem is None


SignatureLookup = Callable[[int], "FrameSignature | None"]


class FrameMatcher:
    """Streaming per-frame verification with local re-synchronisation.

    Tick ``t`` (HDR frames on the paired grid) is expected to show SDR frame ``t - shift``. :meth:`decide` compares
    that partner with the SDR frames ``window_frames`` either side by detail score (row check) and the partner with
    the HDR ticks either side (column check). The pair is verified when it is not flat, its match score reaches
    ``min_match_score``, its detail score ``min_detail_score``, and no neighbour on either side matches better
    (mutual best). In a still picture the neighbours match as well and noise decides: such frames may go
    unverified, never paired wrongly.
    When a neighbouring SDR frame beats the expected partner by ``resync_margin``, is the mutual best, the next
    tick agrees, and one version's own frames show the skip or repeat this assumes (:meth:`_drift_evidence`, which
    compares frames within each version and so cannot be fooled by a slightly wrong spatial geometry), the shift
    moves there: a dropped frame on the SDR side shifts all later pairs by one, a duplicated one back by one.

    Args:
        shift: initial ``tick - sdr_index``.
        hdr, sdr: lookups of signatures by tick / SDR index, returning None outside the known range; the caller
            makes sure that the ticks and SDR frames :meth:`needs` names are known (or do not exist).
    """

    def __init__(self, shift: int, options: VerifyOptions, hdr: SignatureLookup, sdr: SignatureLookup) -> None:
        self.shift = shift
        self.options = options
        self._hdr = hdr
        self._sdr = sdr
        self._detail: dict[tuple[int, int], float] = {}


    def _within(self, lookup: SignatureLookup, a: int, b: int) -> float | None:
        """Match score between two frames of one version (None when either is unknown)."""
        first, second = (lookup(a) if a >= 0 else None), (lookup(b) if b >= 0 else None)
        return None if first is None or second is None else match_score(first, second)

    def _step(self, lookup: SignatureLookup, index: int) -> float | None:
        """How far frame ``index`` moved from frame ``index - 1`` of one version: 1 - their match score."""
        similarity = self._within(lookup, index - 1, index)
        return None if similarity is None else 1.0 - similarity

    def _anomaly(self, lookup: SignatureLookup, index: int, kind: str) -> bool:
        """True when the step into frame ``index`` of one version stands out from the steps around it: a *jump*
        (at least ``jump_factor`` times their median: frames were dropped) or a *repeat* (at most
        ``repeat_factor`` times it: a frame was shown again)."""
        own = self._step(lookup, index)
        around = [self._step(lookup, k) for k in (index - 2, index - 1, index + 1, index + 2)]
        around = [step for step in around if step is not None]
        if own is None or len(around) < 2:
            return False
        typical = float(np.median(around))
        if typical < self.options.min_step:
            return False  # a still picture: nothing to tell
        if kind == "jump":
            return own >= self.options.jump_factor * typical
        return own <= self.options.repeat_factor * typical

    def _drift_evidence(self, tick: int, best: int, move: int) -> bool:
        """True when one version's own frames show the drop or duplicate that moving the partner of ``tick`` to
        ``best`` (``move`` frames from the expected one) assumes. Moving back (``move < 0``) means the SDR version
        skipped frames (a jump into SDR frame ``best``) or the HDR version repeated one (a repeat into tick
        ``tick``); moving on means the SDR version repeated a frame (into ``best - 1``) or the HDR version skipped
        one (a jump into ``tick``). Each test compares frames within one version (match score: nearly noise-free,
        smooth in time), so a slightly wrong spatial geometry between the versions cannot fake it."""
        if move < 0:
            return self._anomaly(self._sdr, best, "jump") or self._anomaly(self._hdr, tick, "repeat")
        return self._anomaly(self._sdr, best - 1, "repeat") or self._anomaly(self._hdr, tick, "jump")

    def needs(self, tick: int) -> tuple[int, int]:
        """(last tick, last SDR index) that :meth:`decide` of ``tick`` may read."""
        window = self.options.window_frames
        return tick + window + 1, tick - self.shift + 2 * window + 2

    def _score(self, tick: int, sdr_index: int) -> float | None:
        key = (tick, sdr_index)
        if key not in self._detail:
            hdr, sdr = self._hdr(tick), self._sdr(sdr_index) if sdr_index >= 0 else None
            self._detail[key] = None if hdr is None or sdr is None else detail_score(hdr, sdr)
        return self._detail[key]

    def _row(self, tick: int, centre: int) -> dict[int, float]:
        window = self.options.window_frames
        row = {}
        for index in range(centre - window, centre + window + 1):
            score = self._score(tick, index)
            if score is not None:
                row[index] = score
        return row

    def _row_best(self, tick: int, sdr_index: int) -> bool:
        """True when no SDR neighbour of ``sdr_index`` matches ``tick`` better."""
        row = self._row(tick, sdr_index)
        return sdr_index in row and row[sdr_index] >= max(row.values())

    def _column_best(self, tick: int, sdr_index: int) -> bool:
        """True when no HDR neighbour of ``tick`` matches ``sdr_index`` better."""
        window = self.options.window_frames
        own = self._score(tick, sdr_index)
        if own is None:
            return False
        others = [self._score(t, sdr_index) for t in range(tick - window, tick + window + 1) if t != tick and t >= 0]
        others = [score for score in others if score is not None]
        return not others or own >= max(others)

    def decide(self, tick: int) -> FrameMatch:
        """Pair ``tick`` (ticks must be decided in increasing order)."""
        hdr = self._hdr(tick)
        if hdr is None:
            raise UnknownKeyError(f"tick {tick} is not known")
        expected = tick - self.shift
        if expected < 0 or self._sdr(expected) is None:
            return FrameMatch(tick, None, 0.0, 0.0, NO_SDR_FRAME)
        row = self._row(tick, expected)
        best = max(row, key=lambda index: (row[index], index == expected))
        resynced = False
        chosen = expected
        if best != expected and row[best] - row[expected] >= self.options.resync_margin \
                and self._column_best(tick, best) and self._row_best(tick + 1, best + 1) \
                and self._drift_evidence(tick, best, best - expected):
            chosen, resynced = best, True
            self.shift = tick - best
        sdr = self._sdr(chosen)
        match, detail = match_score(hdr, sdr), self._score(tick, chosen)
        if hdr.flat or sdr.flat:
            problem = FLAT_FRAME
        elif match < self.options.min_match_score:
            problem = LOW_MATCH
        elif detail < self.options.min_detail_score:
            problem = WEAK_DETAIL
        elif not self._row_best(tick, chosen):
            problem = SDR_NEIGHBOUR_BETTER
        elif not self._column_best(tick, chosen):
            problem = HDR_NEIGHBOUR_BETTER
        else:
            problem = None
        for key in [key for key in self._detail if key[0] < tick - 2 * self.options.window_frames - 2]:
            del self._detail[key]
        return FrameMatch(tick, chosen, match, float(detail), problem, resynced)


def anchor_shift(hdr: SignatureLookup, sdr: SignatureLookup, ticks: range, shifts: range, *,
                 min_detail_score: float, min_confidence: float) -> int | None:
    """Re-find the pairing where a chunk starts (``pipelines.chunk_task``): the shift (``tick - sdr_index``) among
    ``shifts`` whose textured frame pairs over ``ticks`` have the highest mean detail score, when that mean reaches
    ``min_detail_score`` and beats every other shift's by ``min_confidence``; None when no shift stands out (a still
    or flat stretch: the caller keeps the pair's offset). A chunk starts a lead-in before its span, so the
    :class:`FrameMatcher` that starts from this shift has followed any drop or duplicate near the boundary, as the
    pass from the start did, by the first frame the chunk owns.

    Args:
        hdr, sdr: signatures by tick / SDR index (None where unknown).
        ticks: the ticks compared (the start of the lead-in).
        shifts: the candidate shifts (the pair's offset, plus and minus the drift a chunk may meet).
    """
    means: list[float] = []
    for shift in shifts:
        scores = []
        for tick in ticks:
            first, second = hdr(tick), sdr(tick - shift) if tick - shift >= 0 else None
            if first is not None and second is not None and not first.flat and not second.flat:
                scores.append(detail_score(first, second))
        means.append(float(np.mean(scores)) if len(scores) * 2 >= len(ticks) else float("nan"))
    values = np.asarray(means)
    if not np.isfinite(values).any():
        return None
    best = int(np.nanargmax(values))
    others = np.delete(values, best)
    runner_up = float(np.nanmax(others)) if np.isfinite(others).any() else -1.0
    if values[best] < min_detail_score or values[best] - runner_up < min_confidence:
        return None
    return shifts[best]
