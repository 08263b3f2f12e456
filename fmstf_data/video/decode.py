"""Decoding videos to the decoder's exact Y'CbCr planes (no swscale, no colour conversion).

Frame indices are positions in the decoder's output sequence (0 = the first frame the decoder returns), which is
the order every other part of fmstf-data (alignment, selection, the index's ``hdr_frames``/``sdr_frames``) uses.
Planes are copied out of PyAV's buffers row by row (line sizes include padding), so the arrays are exactly the
decoded code values: uint16 for 10-bit 4:2:0 (``yuv420p10le``), uint8 for 8-bit 4:2:0 (``yuv420p``/``yuvj420p``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from fmstf_data.errors import InvalidValueError, ProbeError, SourceMismatchError

logger = logging.getLogger(__name__)

#: pixel formats we decode to planes: name -> (numpy dtype, bit depth, full range)
SUPPORTED_PIXEL_FORMATS: dict[str, tuple[np.dtype, int, bool]] = {
    "yuv420p": (np.dtype(np.uint8), 8, False),
    "yuvj420p": (np.dtype(np.uint8), 8, True),
    "yuv420p10le": (np.dtype("<u2"), 10, False),
}


@dataclass(frozen=True)
class DecodedFrame:
    """One decoded frame as its three 4:2:0 planes.

    Attributes:
        index: position in the decoder's output sequence, from 0.
        pts_seconds: presentation time in seconds (None when the stream has no timestamps).
        y: luma plane [height, width].
        cb, cr: chroma planes [ceil(height/2), ceil(width/2)].
        bit_depth: 8 or 10.
    """

    index: int
    pts_seconds: float | None
    y: np.ndarray
    cb: np.ndarray
    cr: np.ndarray
    bit_depth: int

    def __post_init__(self) -> None:
        if self.index < 0:
            raise InvalidValueError(f"frame index must be >= 0, got {self.index}")
        height, width = self.y.shape
        chroma_shape = ((height + 1) // 2, (width + 1) // 2)
        if self.cb.shape != chroma_shape or self.cr.shape != chroma_shape:
            raise InvalidValueError(f"chroma planes {self.cb.shape}/{self.cr.shape} do not match luma {self.y.shape} in 4:2:0")

    @property
    def height(self) -> int:
        return int(self.y.shape[0])

    @property
    def width(self) -> int:
        return int(self.y.shape[1])


def plane_array(plane: av.video.plane.VideoPlane, dtype: np.dtype) -> np.ndarray:
    """Copy one PyAV plane into a contiguous [height, width] array, dropping the line padding."""
    itemsize = dtype.itemsize
    rows = np.frombuffer(plane, dtype=dtype).reshape(plane.height, plane.line_size // itemsize)
    return np.ascontiguousarray(rows[:, : plane.width])


def frame_planes(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(y, cb, cr, bit_depth) of a decoded 4:2:0 frame, exactly as decoded."""
    format_name = frame.format.name
    if format_name not in SUPPORTED_PIXEL_FORMATS:
        raise SourceMismatchError(
            f"pixel format {format_name} is not supported: fmstf-data reads 4:2:0 video "
            f"({', '.join(SUPPORTED_PIXEL_FORMATS)}); convert 4:2:2/4:4:4 or 12-bit sources first"
        )
    dtype, bit_depth, _full_range = SUPPORTED_PIXEL_FORMATS[format_name]
    y, cb, cr = (plane_array(plane, dtype) for plane in frame.planes[:3])
    if dtype.byteorder == "<":  # make the arrays native uint16 for downstream code
        y, cb, cr = (plane.astype(np.uint16) for plane in (y, cb, cr))
    return y, cb, cr, bit_depth


def open_video_stream(path: str | Path, *, threads: bool | int = True) -> tuple[Any, Any]:
    """(container, its first video stream) of a local file, with FFmpeg's threads set as :func:`iter_planes`
    describes; the caller closes the container (``with container:``).

    Raises:
        ProbeError: the file cannot be opened or has no video stream.
    """
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as error:
        raise ProbeError(f"cannot open {path}: {error}") from error
    if not container.streams.video:
        container.close()
        raise ProbeError(f"{path} has no video stream")
    stream = container.streams.video[0]
    if threads:
        stream.thread_type = "AUTO"
        if threads is not True:
            stream.thread_count = int(threads)
    return container, stream


def iter_planes(path: str | Path, *, threads: bool | int = True) -> Iterator[DecodedFrame]:
    """Decode every frame of the first video stream of ``path``, in decoder output order.

    Args:
        path: a local video file.
        threads: FFmpeg's frame/slice threads: True lets FFmpeg choose how many (one per CPU), a number uses that
            many, False or 0 decodes on the calling thread (the output is identical either way).

    Yields:
        :class:`DecodedFrame` with the exact planes.

    Raises:
        ProbeError: the file cannot be opened or has no video stream.
        SourceMismatchError: the pixel format is not 4:2:0 8/10-bit.
    """
    container, stream = open_video_stream(path, threads=threads)
    with container:
        time_base = stream.time_base
        index = 0
        try:
            for frame in container.decode(stream):
                y, cb, cr, bit_depth = frame_planes(frame)
                pts_seconds = float(frame.pts * time_base) if frame.pts is not None and time_base else None
                yield DecodedFrame(index=index, pts_seconds=pts_seconds, y=y, cb=cb, cr=cr, bit_depth=bit_depth)
                index += 1
        except av.error.FFmpegError as error:
            raise ProbeError(f"decoding {path} failed after {index} frames: {error}") from error
