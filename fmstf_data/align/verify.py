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
        max_damage_codes, min_damage_codes, damage_ratio, damage_history_ticks: a frame pair whose
            :func:`damage_score` (the worst block's disagreement between the SDR luma and its prediction from the
            HDR frame, 8-bit code units) exceeds its threshold is refused as locally damaged (a corrupt stream
            that decoded without an error). The threshold is ``damage_ratio`` times the median score of the
            verified pairs among the previous ``damage_history_ticks`` ticks (what this pair's clean frames
            score: tone curve, codecs and resampling leave a misfit of their own), kept within
            [``min_damage_codes``, ``max_damage_codes``]; with fewer than 4 such pairs it is ``max_damage_codes``.
            The history stays shorter than a chunk's lead-in, so chunks decide as one pass does.
            ``max_damage_codes`` None switches the check off.
        damage_block: the damage check's blocks, in pixels of the half-size thumbnail grid (about 48 x 27).
    """

    window_frames: int = 2
    resync_margin: float = 0.01
    min_match_score: float = 0.8
    min_detail_score: float = 0.2
    jump_factor: float = 1.6
    repeat_factor: float = 0.3
    min_step: float = 0.002
    max_damage_codes: float | None = 26.0
    min_damage_codes: float = 10.0
    damage_ratio: float = 3.0
    damage_history_ticks: int = 16
    damage_block: int = 3

    def __post_init__(self) -> None:
        if self.window_frames < 1:
            raise InvalidValueError(f"window_frames must be >= 1, got {self.window_frames}")
        if self.resync_margin < 0 or not 0 < self.repeat_factor < 1 < self.jump_factor:
            raise InvalidValueError(f"need resync_margin >= 0 and 0 < repeat_factor < 1 < jump_factor, got "
                             f"{self.resync_margin}, {self.repeat_factor}, {self.jump_factor}")
        if not -1.0 <= self.min_match_score <= 1.0:
            raise InvalidValueError(f"min_match_score must be in [-1, 1], got {self.min_match_score}")
        if (self.max_damage_codes is not None and not 0 < self.min_damage_codes <= self.max_damage_codes) \
                or self.damage_ratio <= 1 or self.damage_block < 1 or not 4 <= self.damage_history_ticks <= 20:
            raise InvalidValueError(f"need 0 < min_damage_codes <= max_damage_codes (or None), damage_ratio > 1, "
                                    f"damage_block >= 1 and damage_history_ticks in 4..20, got "
                                    f"{self.min_damage_codes}, {self.max_damage_codes}, {self.damage_ratio}, "
                                    f"{self.damage_block}, {self.damage_history_ticks}")


#: reasons a frame pair fails verification
FLAT_FRAME = "flat frame"
LOW_MATCH = "low match score"
WEAK_DETAIL = "weak detail score"
SDR_NEIGHBOUR_BETTER = "a neighbouring SDR frame matches better"
HDR_NEIGHBOUR_BETTER = "a neighbouring HDR frame matches better"
NO_SDR_FRAME = "no SDR frame"
LOCAL_DAMAGE = "local damage: the versions disagree in part of the picture"


# ---- local damage ----------------------------------------------------------------------------------------------


def _half_luma(signature: FrameSignature) -> np.ndarray:
    """The luma thumbnail [h, w] averaged over 2 x 2 pixels onto the chroma thumbnails' grid [h // 2, w // 2]."""
    height, width = signature.thumbnail.shape
    even = signature.thumbnail[:height // 2 * 2, :width // 2 * 2].astype(np.float64)
    return even.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))


def _hdr_rgb(signature: FrameSignature) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Approximate R'G'B' in [0, 1] of the half-size thumbnail grid's pixels (flattened), from its Y'CbCr
    thumbnails read as narrow-range BT.2020 NCL (the matrix only shapes the fit's features, so a slightly
    different one costs nothing)."""
    luma = (_half_luma(signature).ravel() - 16.0) / 219.0
    cb, cr = (signature.chroma[0].ravel() - 128.0) / 224.0, (signature.chroma[1].ravel() - 128.0) / 224.0
    red, blue = luma + 1.4746 * cr, luma + 1.8814 * cb
    green = (luma - 0.2627 * red - 0.0593 * blue) / 0.6780
    return red, green, blue


def damage_residual(hdr: FrameSignature, sdr: FrameSignature, iterations: int = 3) -> np.ndarray | None:
    """The SDR frame's luma minus its prediction from the HDR frame, on the half-size thumbnail grid.

    The two versions of a frame differ by a tone curve and a gamut mapping that act on each pixel alike, so the
    SDR luma is one smooth function of the HDR pixel's colour over the whole picture. The prediction is a sum of
    features of the HDR pixel, fitted to the frame pair: the HDR luma mapped onto the SDR luma's values by rank
    (any increasing tone curve, exactly) and its square, the HDR R'G'B' with their squares and products, and
    max(R', G', B') to the third power (tone curves on the brightest channel, gamut mapping's pull on saturated
    colours). The least squares down-weight outliers (Huber weights, ``iterations`` rounds), so that a damaged
    region cannot pull the fit towards itself. A region where one stream decoded garbage (a corrupt HEVC or
    H.264 payload, concealed or not) breaks the function there and stands out in the residual.

    Returns:
        float64 [h // 2, w // 2] in 8-bit SDR luma code units, or None when a signature has no chroma
        thumbnails or the grids differ.
    """
    if hdr.chroma is None or sdr.chroma is None:
        return None
    hdr_luma, sdr_luma = _half_luma(hdr), _half_luma(sdr)
    if hdr_luma.shape != sdr_luma.shape or hdr.chroma.shape[1:] != hdr_luma.shape:
        return None
    target = sdr_luma.ravel()
    mapped = np.empty_like(target)
    mapped[np.argsort(hdr_luma.ravel(), kind="stable")] = np.sort(target)
    luma = mapped / 255.0
    red, green, blue = _hdr_rgb(hdr)
    peak = np.maximum(np.maximum(red, green), blue)
    features = np.stack([np.ones_like(luma), luma, luma * luma, red, green, blue, red * red, green * green,
                         blue * blue, red * green, red * blue, green * blue, peak, peak * peak, peak ** 3], axis=1)
    weights = np.ones_like(target)
    residual = target - mapped
    for _ in range(iterations):
        coefficients, *_ = np.linalg.lstsq(features * weights[:, None], target * weights, rcond=None)
        residual = target - features @ coefficients
        scale = 1.4826 * float(np.median(np.abs(residual))) + 0.5
        weights = 1.0 / np.maximum(1.0, np.abs(residual) / (2.0 * scale))
    return residual.reshape(sdr_luma.shape)


def damage_score(hdr: FrameSignature, sdr: FrameSignature, block: int = 3) -> float:
    """How far the worst ``block`` x ``block`` block of :func:`damage_residual` is off on average (the absolute
    value of its mean residual, 8-bit SDR luma code units: an edge's misfit averages out, a damaged region does
    not); 0.0 when it cannot be computed (no chroma thumbnails, a flat frame)."""
    residual = damage_residual(hdr, sdr)
    if residual is None or hdr.flat or sdr.flat:
        return 0.0
    rows, columns = residual.shape[0] // block, residual.shape[1] // block
    if rows == 0 or columns == 0:
        return 0.0
    blocks = residual[:rows * block, :columns * block].reshape(rows, block, columns, block).mean(axis=(1, 3))
    return float(np.abs(blocks).max())


@dataclass(frozen=True)
class FrameMatch:
    """The decision for one HDR tick (an HDR frame on the paired grid).

    Attributes:
        tick: the HDR tick; sdr_index: its SDR partner (None when the SDR version has no frame there).
        match_score, detail_score: the pair's scores (0 without a partner).
        problem: why the pair failed verification, None when verified.
        damage_score: :func:`damage_score` of the pair (0 when not computed: no partner, failed before, or the
            check is off).
        resynced: this tick moved the offset (a dropped or duplicated frame was followed).
    """

    tick: int
    sdr_index: int | None
    match_score: float
    detail_score: float
    problem: str | None
    resynced: bool = False
    damage_score: float = 0.0

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
        self._damage_history: dict[int, float] = {}  # tick -> damage score of the verified pairs just before

    def _damaged_near(self, tick: int, threshold: float) -> bool:
        """True when a pair within two ticks of ``tick`` (at the current shift) scores above ``threshold``: damage
        spreads from a hit frame to the frames predicted from it, before and after it in display order (B
        frames), fading with the distance, so a frame next to a damaged one is refused on half the evidence."""
        for near in (tick - 2, tick - 1, tick + 1, tick + 2):
            hdr = self._hdr(near) if near >= 0 else None
            sdr = self._sdr(near - self.shift) if near - self.shift >= 0 else None
            if hdr is not None and sdr is not None and damage_score(hdr, sdr, self.options.damage_block) > threshold:
                return True
        return False

    def _damage_threshold(self, tick: int) -> float:
        """The damage score above which ``tick``'s pair is refused (:class:`VerifyOptions`)."""
        options = self.options
        for old in [t for t in self._damage_history if t < tick - options.damage_history_ticks]:
            del self._damage_history[old]
        if options.max_damage_codes is None or len(self._damage_history) < 4:
            return float("inf") if options.max_damage_codes is None else options.max_damage_codes
        typical = float(np.median(list(self._damage_history.values())))
        return min(options.max_damage_codes, max(options.min_damage_codes, options.damage_ratio * typical))

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
        damage = 0.0
        if problem is None and self.options.max_damage_codes is not None:
            damage = damage_score(hdr, sdr, self.options.damage_block)
            threshold = self._damage_threshold(tick)
            if damage > threshold or (damage > threshold / 2 and self._damaged_near(tick, threshold)):
                problem = LOCAL_DAMAGE
            else:
                self._damage_history[tick] = damage
        for key in [key for key in self._detail if key[0] < tick - 2 * self.options.window_frames - 2]:
            del self._detail[key]
        return FrameMatch(tick, chosen, match, float(detail), problem, resynced, damage)


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
