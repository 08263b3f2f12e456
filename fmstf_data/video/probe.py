"""What a video file is: declared vs measured timing, colour tags, HDR10 metadata, and a verdict.

:func:`probe_video` opens a file with PyAV and returns a :class:`VideoProbe`. Values the container or codec
*declare* (``*_from_header``) are kept apart from values *measured* by demuxing every packet of the video stream
(``*_from_content``: packet count, PTS deltas; nothing is decoded except the first frame, so probing is fast).

Colour tags (transfer ``color_trc``, ``color_primaries``, matrix ``colorspace``, ``color_range``) are the FFmpeg enum
integers (ITU-T H.273 code points; short names as ffprobe prints them). They come from the codec context; a tag the
stream leaves unspecified is taken from the first decoded frame when the frame has it. HDR10 static metadata
(SMPTE ST 2086 mastering display, CTA-861.3 MaxCLL/MaxFALL) comes from the first decoded frame's side data: PyAV 18
exposes no stream-level (codecpar) side data, but FFmpeg's decoders copy the stream's global side data (mkv
``MasteringMetadata``, mp4 ``mdcv``/``clli``) onto every decoded frame (``ff_decode_frame_props`` in
libavcodec/decode.c, FFmpeg 7+), so the first frame sees both the SEI and the container values.

The record, its verdict rules and :meth:`VideoProbe.problem_as` live in :mod:`fmstf_data.video.record`, the H.273
code points and their labels in :mod:`fmstf_data.video.tags`; both are re-exported here, so
``from fmstf_data.video.probe import VideoProbe, MasteringDisplay, TRC_PQ`` keeps working.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
from av.sidedata.sidedata import Type as SideDataType

from fmstf_data.errors import ProbeError
from fmstf_data.video.record import ContentLightLevel, MasteringDisplay, VideoProbe
from fmstf_data.video.tags import (
    MATRIX_UNSPECIFIED,
    PRIMARIES_UNSPECIFIED,
    RANGE_UNSPECIFIED,
    TRC_UNSPECIFIED,
)

logger = logging.getLogger(__name__)

#: packets we try to decode before giving up on finding a first frame
_MAX_DECODE_ERRORS = 16

#: mp4/mkv codec tags that announce Dolby Vision
DOLBY_VISION_CODEC_TAGS = frozenset({"dvh1", "dvhe", "dav1", "dvav", "dva1"})


# ---- probing ----------------------------------------------------------------------------------------------------


def probe_video(path: str | Path, *, timestamps: list[int] | None = None) -> VideoProbe:
    """Probe the first video stream of a local file (cover-art pictures are skipped).

    Demuxes every packet of the stream (fast: no decoding) to measure frame count and frame rate, and decodes
    only the first frame, for frame-level colour tags and HDR10 side data. With ``timestamps``, the demuxed
    presentation timestamps (time base units, demux order; packets without a PTS are left out) are appended to it,
    for a :class:`fmstf_data.video.seek.FrameTimeline` at no second pass over the file.

    Raises:
        ProbeError: missing or unreadable file, no video stream, no video packets (one-line message).
    """
    path = Path(path)
    if not path.exists():
        raise ProbeError(f"cannot probe {path}: no such file")
    if not path.is_file():
        raise ProbeError(f"cannot probe {path}: not a regular file")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise ProbeError(f"cannot probe {path}: not a readable video ({_one_line(error)})") from error
    with container:
        streams = [
            stream for stream in container.streams.video if not stream.disposition & av.stream.Disposition.attached_pic
        ]
        if not streams:
            raise ProbeError(f"cannot probe {path}: no video stream (format {container.format.name})")
        stream = streams[0]
        try:
            probe = _probe_stream(path, container, stream, timestamps)
        except av.error.FFmpegError as error:
            raise ProbeError(f"cannot probe {path}: reading the video stream failed ({_one_line(error)})") from error
    logger.debug("probed %s: %s (%s)", path, probe.verdict, "; ".join(probe.verdict_reasons))
    return probe


def _one_line(error: BaseException) -> str:
    """FFmpeg's message without the errno and the repeated file name, on one line."""
    if isinstance(error, av.error.FFmpegError) and error.strerror:
        return str(error.strerror)
    return " ".join(str(error).split())


def _probe_stream(path: Path, container: Any, stream: Any, timestamps: list[int] | None = None) -> VideoProbe:
    codec_context = stream.codec_context
    time_base = stream.time_base
    notes: list[str] = []

    # Demux every packet: count them and collect PTS; decode only until the first frame comes out.
    pts_values: list[int] = []
    packet_count = 0
    first_frame = None
    decode_errors: list[str] = []
    for packet in container.demux(stream):
        if packet.size == 0 and packet.pts is None and packet.dts is None:
            continue  # the demuxer's end-of-stream flush packet
        packet_count += 1
        timestamp = packet.pts if packet.pts is not None else packet.dts
        if timestamp is not None:
            pts_values.append(int(timestamp))
        if timestamps is not None and packet.pts is not None:
            timestamps.append(int(packet.pts))
        if first_frame is None and len(decode_errors) < _MAX_DECODE_ERRORS:
            try:
                frames = codec_context.decode(packet)
            except av.error.FFmpegError as error:
                decode_errors.append(_one_line(error))
                frames = []
            if frames:
                first_frame = frames[0]
    if packet_count == 0:
        raise ProbeError(f"cannot probe {path}: the video stream has no readable packets (empty or truncated file)")
    if first_frame is None:
        try:
            frames = codec_context.decode(None)  # flush: the decoder may hold frames back (B-frames, threads)
            first_frame = frames[0] if frames else None
        except av.error.FFmpegError as error:
            decode_errors.append(_one_line(error))
    if first_frame is None:
        detail = f": {decode_errors[0]}" if decode_errors else ""
        raise ProbeError(
            f"cannot probe {path}: none of its {packet_count} video packets decodes to a frame "
            f"(corrupt or truncated file?){detail}"
        )
    if decode_errors:
        notes.append(f"{len(decode_errors)} packet(s) failed to decode before the first frame: {decode_errors[0]}")

    # Colour tags: codec context first, unspecified ones filled from the first frame.
    tags = {
        "color_trc": int(codec_context.color_trc),
        "color_primaries": int(codec_context.color_primaries),
        "colorspace": int(codec_context.colorspace),
        "color_range": int(codec_context.color_range),
    }
    unspecified = {"color_trc": TRC_UNSPECIFIED, "color_primaries": PRIMARIES_UNSPECIFIED,
                   "colorspace": MATRIX_UNSPECIFIED, "color_range": RANGE_UNSPECIFIED}
    tags_from = "stream"
    for name, unspecified_value in unspecified.items():
        frame_value = int(getattr(first_frame, name))
        if tags[name] == unspecified_value and frame_value != unspecified_value:
            tags[name] = frame_value
            tags_from = "stream+first frame"

    # HDR10 static metadata and Dolby Vision from the first frame's side data.
    mastering_display = None
    content_light_level = None
    codec_tag = _codec_tag(codec_context)
    dolby_vision = codec_tag in DOLBY_VISION_CODEC_TAGS
    for side_data in first_frame.side_data:
        kind = side_data.type
        try:
            if kind == SideDataType.MASTERING_DISPLAY_METADATA:
                mastering_display = MasteringDisplay.from_side_data(bytes(side_data))
            elif kind == SideDataType.CONTENT_LIGHT_LEVEL:
                content_light_level = ContentLightLevel.from_side_data(bytes(side_data))
            elif kind in (SideDataType.DOVI_METADATA, SideDataType.DOVI_RPU_BUFFER):
                dolby_vision = True
        except ValueError as error:
            notes.append(f"ignored malformed {kind.name} side data: {error}")

    # Pixel format, bit depth and size of the first decoded frame (what the planes will be).
    video_format = first_frame.format
    pix_fmt = video_format.name
    bit_depth = max((component.bits for component in video_format.components), default=0)
    width, height = first_frame.width, first_frame.height

    # Declared timing.
    average_fps = stream.average_rate
    average_fps_from_header = Fraction(average_fps) if average_fps else None
    frame_count_from_header = int(stream.frames) if stream.frames else None
    if stream.duration is not None and time_base:
        duration_seconds_from_header: float | None = float(stream.duration * time_base)
    elif container.duration is not None:
        duration_seconds_from_header = container.duration / av.time_base
    else:
        duration_seconds_from_header = None

    # Measured timing from PTS: median step of the sorted presentation times.
    fps_from_content = duration_from_content = start_from_content = None
    if pts_values and time_base:
        ordered = sorted(pts_values)
        start_from_content = float(ordered[0] * time_base)
        steps = sorted(b - a for a, b in zip(ordered, ordered[1:]) if b > a)
        if steps:
            # mean of the steps near the median: robust to gaps (dropped frames) and to the jitter of coarse
            # time bases (mkv's 1 ms: 24 fps steps are 41 or 42 ms)
            median_step = steps[len(steps) // 2]
            typical = [step for step in steps if 0.5 * median_step <= step <= 1.5 * median_step]
            rate = _snap_rate(
                Fraction(len(typical)) / (sum(typical) * time_base),
                span_seconds=sum(typical) * time_base,
                steps=len(typical),
                tolerance_seconds=time_base * (1 + len(steps) - len(typical)),
                declared=average_fps_from_header,
            )
            fps_from_content = float(rate)
            mean_step_seconds = float(1 / rate)
            duration_from_content = float((ordered[-1] - ordered[0]) * time_base) + mean_step_seconds
        if len(set(ordered)) != len(ordered):
            notes.append(f"{len(ordered) - len(set(ordered))} packets share a timestamp with another packet")

    if frame_count_from_header is not None and frame_count_from_header != packet_count:
        notes.append(f"the container declares {frame_count_from_header} frames but {packet_count} were demuxed")

    profile = codec_context.profile or stream.profile or None
    return VideoProbe(
        path=str(path),
        container_format=container.format.name,
        codec_name=codec_context.name,
        codec_tag=codec_tag,
        profile=profile,
        pix_fmt=pix_fmt,
        bit_depth=bit_depth,
        width=int(width),
        height=int(height),
        average_fps_from_header=average_fps_from_header,
        frame_count_from_header=frame_count_from_header,
        duration_seconds_from_header=duration_seconds_from_header,
        frame_count_from_content=packet_count,
        fps_from_content=fps_from_content,
        duration_seconds_from_content=duration_from_content,
        start_seconds_from_content=start_from_content,
        color_tags_from=tags_from,
        mastering_display=mastering_display,
        content_light_level=content_light_level,
        dolby_vision=dolby_vision,
        notes=tuple(notes),
        **tags,
    )


#: frame rates a measured rate snaps to when timestamps cannot tell them apart (besides the declared one)
STANDARD_FRAME_RATES = tuple(
    Fraction(rate) for rate in ("24000/1001", "24", "25", "30000/1001", "30", "48", "50", "60000/1001", "60",
                                "100", "120000/1001", "120")
)


def _snap_rate(
    measured: Fraction, *, span_seconds: Fraction, steps: int, tolerance_seconds: Fraction, declared: Fraction | None
) -> Fraction:
    """The declared or a standard frame rate when it explains the measured span within the time-base rounding.

    Coarse time bases round timestamps (Matroska: 1 ms, so 24 fps steps are 41 or 42 ms and 12 frames measure
    24.017 fps); a rate whose ``steps / rate`` lies within ``tolerance_seconds`` of the span is what the
    timestamps say, to their precision. Otherwise the measured rate is returned unchanged.
    """
    candidates = ([declared] if declared else []) + list(STANDARD_FRAME_RATES)
    for candidate in candidates:
        if abs(steps / candidate - span_seconds) <= tolerance_seconds:
            return candidate
    return measured


def _codec_tag(codec_context: Any) -> str:
    """The container's four-character code as text, '' when absent or not printable."""
    try:
        tag = codec_context.codec_tag
    except (AttributeError, ValueError):
        return ""
    if isinstance(tag, bytes):
        tag = tag.decode("latin-1")
    tag = str(tag or "")
    return tag if tag.isprintable() and tag.strip("\x00") else ""


def count_frames(path: str | Path) -> int:
    """Number of video packets (= frames) of the first video stream, by demuxing only (no decoding).

    Raises:
        ProbeError: missing or unreadable file, or no video stream.
    """
    path = Path(path)
    if not path.is_file():
        raise ProbeError(f"cannot count frames of {path}: no such file")
    try:
        with av.open(str(path)) as container:
            streams = [
                stream for stream in container.streams.video
                if not stream.disposition & av.stream.Disposition.attached_pic
            ]
            if not streams:
                raise ProbeError(f"cannot count frames of {path}: no video stream")
            return sum(
                1 for packet in container.demux(streams[0])
                if not (packet.size == 0 and packet.pts is None and packet.dts is None)
            )
    except (av.error.FFmpegError, OSError) as error:
        raise ProbeError(f"cannot count frames of {path}: {_one_line(error)}") from error
