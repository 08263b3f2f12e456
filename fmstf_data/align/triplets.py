"""Which triplet centres to keep: deterministic, streaming, inside one shot, at a stride.

A centre (an HDR frame) may be kept when its triplet passes :func:`triplet_problem`: the three HDR frames
(consecutive, or every ``hdr_step``-th when the HDR version has a multiple of the SDR frame rate) lie inside the
segment, all three have a verified SDR partner, the three partners are consecutive SDR frames (so no dropped or
duplicated frame hides inside), all lie in one shot and none is part of a fade or dissolve. Among those, the first
of every *stride window* is kept: HDR frames ``[k * stride_frames, (k + 1) * stride_frames)`` for ``k = 0, 1, ...``
counted from frame 0 of the video. Whether a centre is kept depends on its own window only, never on what was kept
before it, so a video cut into chunks at multiples of ``stride_frames`` (``pipelines.chunk_task``) keeps exactly the
centres a pass from the start keeps, and the choice never depends on scheduling. Kept centres are on average
``stride_frames`` apart (one per window where any is usable), at least one frame apart at a window's edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from fmstf_data.errors import InvalidValueError

#: reasons a candidate centre is refused, in the order they are checked
OUTSIDE_SEGMENT = "outside segment"
NO_PARTNER = "no SDR partner"
SPANS_CUT = "spans a shot cut"
IN_TRANSITION = "in a fade or dissolve"
NOT_CONSECUTIVE = "dropped or duplicated frame"


def triplet_problem(hdr_frames: Sequence[int], sdr_frames: Sequence[int | None], shots: Sequence[int],
                    frame_problems: Sequence[str | None], transitions: Sequence[str | None], *, start_frame: int = 0,
                    end_frame: int | None = None) -> str | None:
    """Why the triplet of these three frame pairs cannot be used, or None when it can.

    Args:
        hdr_frames: the three HDR frame indices, increasing.
        sdr_frames: their SDR partners (None where there is none).
        shots: the HDR frames' shot numbers.
        frame_problems: per frame, why its pairing failed verification (None when verified).
        transitions: per frame, the transition flag (``"fade"``, ``"unstable"``) or None.
        start_frame, end_frame: the usable segment of HDR frames, [start, end).
    """
    if hdr_frames[0] < start_frame or (end_frame is not None and hdr_frames[-1] >= end_frame):
        return OUTSIDE_SEGMENT
    if any(index is None for index in sdr_frames):
        return NO_PARTNER
    if len(set(shots)) > 1:
        return SPANS_CUT
    if any(flag is not None for flag in transitions):
        return IN_TRANSITION
    for problem in frame_problems:
        if problem is not None:
            return problem
    if any(b - a != 1 for a, b in zip(sdr_frames, sdr_frames[1:])):
        return NOT_CONSECUTIVE
    return None


@dataclass
class TripletSelector:
    """Streaming stride selection over candidate centres offered in increasing order (see the module docstring).

    Attributes:
        stride_frames: the stride window, in HDR frames: the first usable centre of each window is kept (1 keeps
            every usable centre).
        kept: centres kept so far.
        rejected_reasons: count of refused candidates by reason.
    """

    stride_frames: int
    kept: list[int] = field(default_factory=list)
    rejected_reasons: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.stride_frames < 1:
            raise InvalidValueError(f"stride_frames must be >= 1, got {self.stride_frames}")

    def offer(self, centre: int, problem: str | None) -> bool:
        """Offer centre ``centre``; ``problem`` is None when its triplet is usable, else why not. True if kept."""
        if self.kept and centre <= self.kept[-1]:
            raise InvalidValueError(f"centres must be offered in increasing order: {centre} after {self.kept[-1]}")
        if problem is not None:
            self.rejected_reasons[problem] = self.rejected_reasons.get(problem, 0) + 1
            return False
        if self.kept and centre // self.stride_frames == self.kept[-1] // self.stride_frames:
            return False  # this stride window already has its centre
        self.kept.append(centre)
        return True
