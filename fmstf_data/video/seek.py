"""Decoding from the middle of a video: frame indices from timestamps, seeking to the keyframe before a frame.

A chunk of a long video (``pipelines.chunk_task``) must decode its span, not the video from frame 0, and still call
every frame by the index a decode from the start gives it. :class:`FrameTimeline` holds the presentation
timestamps of every packet of the stream, sorted (measured once, by the probe's demux pass): frame ``i`` is the one
whose timestamp is the ``i``-th smallest, which is the decoder's output order for every stream whose frames all
decode. :class:`SeekingDecoder` seeks to the keyframe at or before frame ``start_index`` (FFmpeg's backward seek),
decodes from there, names every frame by its timestamp's position and yields the frames from ``start_index`` on; it
counts every frame it decoded (the skipped ones of the GOP before ``start_index`` included), so a chunk's decoding
cost is measured, not assumed.

A timeline exists only for streams whose every packet has a distinct timestamp (:func:`timeline_problem`); for the
others a build does not chunk and decodes from the start (:func:`fmstf_data.video.decode.iter_planes`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from fmstf_data.errors import InvalidValueError, ProbeError
from fmstf_data.video.decode import DecodedFrame, frame_planes, open_video_stream

logger = logging.getLogger(__name__)


def timeline_problem(pts_values: list[int], packet_count: int) -> str | None:
    """Why these demuxed timestamps cannot name frames (None when they can): every packet needs one, all distinct."""
    if len(pts_values) != packet_count:
        return f"{packet_count - len(pts_values)} of {packet_count} packets have no timestamp"
    if len(set(pts_values)) != len(pts_values):
        return f"{len(pts_values) - len(set(pts_values))} packets share a timestamp with another"
    return None


@dataclass(frozen=True)
class FrameTimeline:
    """Sorted presentation timestamps (the stream's time base units) of frames ``first_index`` onwards.

    Attributes:
        pts: int64 [frames], strictly increasing.
        first_index: the frame index of ``pts[0]`` (0 for a whole stream; more for a :meth:`window`).
    """

    pts: np.ndarray
    first_index: int = 0

    def __post_init__(self) -> None:
        if self.pts.ndim != 1 or self.pts.size == 0 or self.first_index < 0:
            raise InvalidValueError(f"a timeline needs a non-empty 1-D pts array and first_index >= 0, got shape "
                                    f"{self.pts.shape}, first_index {self.first_index}")
        if np.any(np.diff(self.pts) <= 0):
            raise InvalidValueError("timeline timestamps must be strictly increasing")

    @classmethod
    def from_pts(cls, pts_values: list[int]) -> FrameTimeline:
        return cls(np.asarray(sorted(pts_values), dtype=np.int64))

    @property
    def end_index(self) -> int:
        """One past the last frame index this timeline names."""
        return self.first_index + int(self.pts.size)

    def pts_of(self, index: int) -> int:
        """The timestamp of frame ``index`` (which this timeline must name)."""
        if not self.first_index <= index < self.end_index:
            raise InvalidValueError(f"frame {index} is outside this timeline [{self.first_index}, {self.end_index})")
        return int(self.pts[index - self.first_index])

    def index_of(self, pts: int) -> int | None:
        """The frame index of timestamp ``pts``; None when it is not one of this timeline's timestamps."""
        position = int(np.searchsorted(self.pts, pts))
        if position < self.pts.size and int(self.pts[position]) == pts:
            return self.first_index + position
        return None

    def window(self, start_index: int, end_index: int) -> FrameTimeline:
        """The part naming frames [start_index, end_index) (clipped to this timeline): what one chunk needs."""
        start, end = max(start_index, self.first_index), min(end_index, self.end_index)
        if start >= end:
            raise InvalidValueError(f"empty window [{start_index}, {end_index}) of [{self.first_index}, "
                                    f"{self.end_index})")
        return FrameTimeline(self.pts[start - self.first_index:end - self.first_index].copy(), start)


class SeekingDecoder:
    """The frames ``start_index`` onwards of the first video stream of ``path``, with their true indices.

    Args:
        path: a local video file.
        timeline: names the frames from ``start_index`` on (a :meth:`FrameTimeline.window` is enough).
        start_index: the first frame to yield.
        threads: FFmpeg threads (as :func:`fmstf_data.video.decode.iter_planes`).

    Attributes:
        frames_decoded: every frame the decoder returned so far, skipped ones included.

    Raises (while iterating):
        ProbeError: the file cannot be opened, or a decoded frame's timestamp is not the next one of the timeline
            (the stream is not what its demuxed timestamps say: corrupt, or frames that do not decode).
    """

    def __init__(self, path: str | Path, timeline: FrameTimeline, start_index: int, *,
                 threads: bool | int = True) -> None:
        if not timeline.first_index <= start_index < timeline.end_index:
            raise InvalidValueError(f"start frame {start_index} is outside the timeline [{timeline.first_index}, "
                                    f"{timeline.end_index})")
        self.path = path
        self.timeline = timeline
        self.start_index = start_index
        self.threads = threads
        self.frames_decoded = 0

    def __iter__(self) -> Iterator[DecodedFrame]:
        # FFmpeg's backward seek lands on a keyframe at or before the target in most streams; with open GOPs or
        # B-frames it can land just after it: then the seek is retried that much earlier, and last from the start
        for margin_seconds in (0.0, 1.0, 4.0, 16.0, None):
            overshot = yield from self._attempt(margin_seconds)
            if not overshot:
                return
            logger.debug("%s: seeking to frame %d with a margin of %s s landed after it; trying earlier", self.path,
                         self.start_index, margin_seconds)

    def _attempt(self, margin_seconds: float | None) -> Iterator[DecodedFrame]:
        """One decode from a seek ``margin_seconds`` before frame ``start_index`` (None: from the start); returns
        True (yielding nothing) when the first frame it reaches lies after ``start_index``."""
        first_pts = int(self.timeline.pts[0])
        container, stream = open_video_stream(self.path, threads=self.threads)
        with container:
            time_base = stream.time_base
            if self.start_index > 0 and margin_seconds is not None:
                margin = round(margin_seconds / time_base) if time_base else 0
                container.seek(self.timeline.pts_of(self.start_index) - margin, stream=stream, backward=True,
                               any_frame=False)
            expected = self.start_index
            try:
                for frame in container.decode(stream):
                    self.frames_decoded += 1
                    if frame.pts is None:
                        raise ProbeError(f"{self.path}: a decoded frame has no timestamp; cannot seek in this stream")
                    pts = int(frame.pts)
                    if pts < first_pts:
                        continue  # the GOP before the window
                    index = self.timeline.index_of(pts)
                    if index is None:
                        if pts > int(self.timeline.pts[-1]):
                            return False  # past the window
                        raise ProbeError(f"{self.path}: decoded a frame at timestamp {pts}, which no demuxed packet "
                                         f"has; the stream does not decode as demuxed")
                    if index < expected:
                        continue
                    if index != expected:
                        if expected == self.start_index and margin_seconds is not None:
                            return True
                        raise ProbeError(f"{self.path}: frames {expected}..{index - 1} did not decode after seeking "
                                         f"to frame {self.start_index} (a damaged stream, or frames that do not "
                                         f"decode)")
                    y, cb, cr, bit_depth = frame_planes(frame)
                    yield DecodedFrame(index=index, pts_seconds=float(pts * time_base) if time_base else None,
                                       y=y, cb=cb, cr=cr, bit_depth=bit_depth)
                    expected += 1
            except av.error.FFmpegError as error:
                raise ProbeError(f"decoding {self.path} from frame {self.start_index} failed at frame {expected}: "
                                 f"{error}") from error
        return False
