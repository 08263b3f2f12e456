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

Verdict rules (reference/color-and-hdr.md §4):

- **HDR10**: transfer PQ (16) + BT.2020 primaries (9) + BT.2020 non-constant-luminance matrix (9) + >= 10 bit.
- **HLG**: transfer ARIB STD-B67 (18).
- **SDR**: transfer BT.709 (1), SMPTE 170M (6), IEC 61966-2-1 (13), BT.2020 10/12-bit (14, 15). BT.2020 primaries
  with an SDR transfer is *wide-gamut SDR* (still SDR, not HDR).
- **unknown**: unspecified transfer, PQ without the rest of HDR10, Dolby Vision without an HDR10 base layer
  (profile 5, IPTPQc2 colour), anything else. ``verdict_reasons`` says why.

:meth:`VideoProbe.problem_as` turns the verdict into the answer the build needs: can this file be the HDR (or SDR)
side of a pair, and if not, what is it, in words a person can act on.
"""

from __future__ import annotations

import logging
import math
import struct
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import av.error
from av.sidedata.sidedata import Type as SideDataType

from fmstf_data.errors import ProbeError

logger = logging.getLogger(__name__)

Verdict = Literal["HDR10", "HLG", "SDR", "unknown"]
Role = Literal["hdr", "sdr"]

# H.273 code points used by the rules (FFmpeg enums AVColorTransferCharacteristic / AVColorPrimaries / AVColorSpace)
TRC_BT709 = 1
TRC_UNSPECIFIED = 2
TRC_SMPTE170M = 6
TRC_IEC61966_2_1 = 13
TRC_BT2020_10 = 14
TRC_BT2020_12 = 15
TRC_PQ = 16
TRC_HLG = 18
SDR_TRANSFERS = frozenset({TRC_BT709, TRC_SMPTE170M, TRC_IEC61966_2_1, TRC_BT2020_10, TRC_BT2020_12})
PRIMARIES_BT709 = 1
PRIMARIES_UNSPECIFIED = 2
PRIMARIES_BT2020 = 9
MATRIX_BT709 = 1
MATRIX_UNSPECIFIED = 2
MATRIX_BT2020_NCL = 9
RANGE_UNSPECIFIED = 0
RANGE_NARROW = 1  # "MPEG", limited / studio range
RANGE_FULL = 2  # "JPEG"

#: packets we try to decode before giving up on finding a first frame
_MAX_DECODE_ERRORS = 16

#: mp4/mkv codec tags that announce Dolby Vision
DOLBY_VISION_CODEC_TAGS = frozenset({"dvh1", "dvhe", "dav1", "dvav", "dva1"})

#: FFmpeg's short names of the code points (``av_color_*_name``, as ffprobe prints them), "unspecified" for 2.
#: PyAV's ``av.video.reformatter.Colorspace`` enum holds swscale constants (5 = "SMPTE170M" there, 6 in H.273),
#: so it is not used for names.
TRC_NAMES = {
    1: "bt709", 2: "unspecified", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "linear",
    9: "log100", 10: "log316", 11: "iec61966-2-4", 12: "bt1361e", 13: "iec61966-2-1", 14: "bt2020-10",
    15: "bt2020-12", 16: "smpte2084", 17: "smpte428", 18: "arib-std-b67",
}
PRIMARIES_NAMES = {
    1: "bt709", 2: "unspecified", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film",
    9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213",
}
MATRIX_NAMES = {
    0: "gbr", 1: "bt709", 2: "unspecified", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "ycgco",
    9: "bt2020nc", 10: "bt2020c", 11: "smpte2085", 12: "chroma-derived-nc", 13: "chroma-derived-c", 14: "ictcp",
    15: "ipt-c2", 16: "ycgco-re", 17: "ycgco-ro",
}
RANGE_NAMES = {0: "unspecified", 1: "tv", 2: "pc"}

#: human labels for the code points people meet in practice; others fall back to the short name
_TRC_LABELS = {
    TRC_BT709: "BT.709",
    TRC_SMPTE170M: "SMPTE 170M (BT.601)",
    TRC_IEC61966_2_1: "sRGB (IEC 61966-2-1)",
    TRC_BT2020_10: "BT.2020 10-bit (SDR)",
    TRC_BT2020_12: "BT.2020 12-bit (SDR)",
    TRC_PQ: "PQ (SMPTE ST 2084)",
    TRC_HLG: "HLG (ARIB STD-B67)",
}
_PRIMARIES_LABELS = {PRIMARIES_BT709: "BT.709", PRIMARIES_BT2020: "BT.2020"}
_MATRIX_LABELS = {MATRIX_BT709: "BT.709", MATRIX_BT2020_NCL: "BT.2020 NCL"}
_RANGE_LABELS = {RANGE_NARROW: "narrow (limited)", RANGE_FULL: "full"}


def _name(names: dict[int, str], value: int) -> str:
    return names.get(value, f"reserved({value})")


def trc_label(value: int) -> str:
    """Human name of a transfer characteristic code point, e.g. ``16 -> "PQ (SMPTE ST 2084)"``."""
    return _TRC_LABELS.get(value, _name(TRC_NAMES, value))


def primaries_label(value: int) -> str:
    """Human name of a colour primaries code point, e.g. ``9 -> "BT.2020"``."""
    return _PRIMARIES_LABELS.get(value, _name(PRIMARIES_NAMES, value))


def matrix_label(value: int) -> str:
    """Human name of a matrix coefficients code point, e.g. ``9 -> "BT.2020 NCL"``."""
    return _MATRIX_LABELS.get(value, _name(MATRIX_NAMES, value))


def range_label(value: int) -> str:
    """Human name of a colour range value (0 unspecified, 1 narrow, 2 full)."""
    return _RANGE_LABELS.get(value, _name(RANGE_NAMES, value))


@dataclass(frozen=True)
class MasteringDisplay:
    """SMPTE ST 2086 mastering display colour volume (HDR10 static metadata).

    Chromaticities are CIE 1931 (x, y); luminances in cd/m². ``None`` where the stream flags them as absent.
    """

    red_xy: tuple[float, float] | None
    """Red primary (x, y) of the mastering display."""
    green_xy: tuple[float, float] | None
    """Green primary (x, y)."""
    blue_xy: tuple[float, float] | None
    """Blue primary (x, y)."""
    white_point_xy: tuple[float, float] | None
    """White point (x, y), D65 = (0.3127, 0.3290)."""
    min_luminance_nits: float | None
    """Minimum display luminance, cd/m² (e.g. 0.0001)."""
    max_luminance_nits: float | None
    """Maximum display luminance, cd/m² (e.g. 1000)."""

    def __post_init__(self) -> None:
        for name in ("red_xy", "green_xy", "blue_xy", "white_point_xy"):
            xy = getattr(self, name)
            if xy is not None and not (len(xy) == 2 and all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in xy)):
                raise ValueError(f"{name} must be two chromaticities in [0, 1], got {xy!r}")
        for name in ("min_luminance_nits", "max_luminance_nits"):
            nits = getattr(self, name)
            if nits is not None and not (math.isfinite(nits) and nits >= 0.0):
                raise ValueError(f"{name} must be a finite luminance >= 0 cd/m², got {nits!r}")

    @classmethod
    def from_side_data(cls, payload: bytes) -> MasteringDisplay:
        """Parse FFmpeg's ``AVMasteringDisplayMetadata`` (22 little-endian int32: 10 rationals and 2 flags).

        Layout: display_primaries[3][2] (R, G, B; x then y, each num/den), white_point[2], min_luminance,
        max_luminance, has_primaries, has_luminance.
        """
        if len(payload) < 88:
            raise ValueError(f"mastering display side data has {len(payload)} bytes, expected at least 88")
        values = struct.unpack("<22i", payload[:88])
        rationals = [_ratio(values[2 * i], values[2 * i + 1]) for i in range(10)]
        has_primaries, has_luminance = values[20], values[21]
        points = [(rationals[2 * i], rationals[2 * i + 1]) for i in range(4)]
        if has_primaries:
            red, green, blue, white = points
        else:
            red = green = blue = white = None
        return cls(
            red_xy=red,
            green_xy=green,
            blue_xy=blue,
            white_point_xy=white,
            min_luminance_nits=rationals[8] if has_luminance else None,
            max_luminance_nits=rationals[9] if has_luminance else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return {
            "red_xy": _list_or_none(self.red_xy),
            "green_xy": _list_or_none(self.green_xy),
            "blue_xy": _list_or_none(self.blue_xy),
            "white_point_xy": _list_or_none(self.white_point_xy),
            "min_luminance_nits": self.min_luminance_nits,
            "max_luminance_nits": self.max_luminance_nits,
        }


@dataclass(frozen=True)
class ContentLightLevel:
    """CTA-861.3 content light level (HDR10 static metadata), cd/m². 0 means "not computed" by the mastering tool."""

    max_cll_nits: int
    """Maximum content light level: brightest pixel of the whole video."""
    max_fall_nits: int
    """Maximum frame-average light level."""

    def __post_init__(self) -> None:
        if self.max_cll_nits < 0 or self.max_fall_nits < 0:
            raise ValueError(f"MaxCLL/MaxFALL must be >= 0, got {self.max_cll_nits}/{self.max_fall_nits}")

    @classmethod
    def from_side_data(cls, payload: bytes) -> ContentLightLevel:
        """Parse FFmpeg's ``AVContentLightMetadata`` (two unsigned int32: MaxCLL, MaxFALL)."""
        if len(payload) < 8:
            raise ValueError(f"content light level side data has {len(payload)} bytes, expected 8")
        max_cll, max_fall = struct.unpack("<II", payload[:8])
        return cls(max_cll_nits=int(max_cll), max_fall_nits=int(max_fall))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"max_cll_nits": self.max_cll_nits, "max_fall_nits": self.max_fall_nits}


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def _list_or_none(pair: tuple[float, float] | None) -> list[float] | None:
    return None if pair is None else [float(pair[0]), float(pair[1])]


@dataclass(frozen=True)
class VideoProbe:
    """What one video file is. Declared values end in ``_from_header``, measured ones in ``_from_content``."""

    path: str
    """The probed file."""
    container_format: str
    """FFmpeg demuxer name, e.g. ``"mov,mp4,m4a,3gp,3g2,mj2"`` or ``"matroska,webm"``."""
    codec_name: str
    """Decoder name of the video stream, e.g. ``"hevc"``, ``"h264"``, ``"vp9"``, ``"av1"``."""
    codec_tag: str
    """Four-character codec tag from the container (``"hvc1"``, ``"dvh1"``, ...); empty when there is none."""
    profile: str | None
    """Codec profile as FFmpeg names it (``"Main 10"``, ``"High"``), None when unknown."""
    pix_fmt: str | None
    """Decoder pixel format, e.g. ``"yuv420p10le"``; None when FFmpeg cannot tell."""
    bit_depth: int
    """Bits per sample of the pixel format (8, 10, 12); 0 when unknown."""
    width: int
    """Coded picture width in pixels (> 0)."""
    height: int
    """Coded picture height in pixels (> 0)."""
    average_fps_from_header: Fraction | None
    """Average frame rate the stream declares (``avg_frame_rate``); None when it does not say."""
    frame_count_from_header: int | None
    """Frame count the container declares; None when it does not (mkv/webm never do; FFmpeg reports 0)."""
    duration_seconds_from_header: float | None
    """Stream duration, or else container duration, the file declares, in seconds; None when absent."""
    frame_count_from_content: int
    """Video packets found by demuxing the whole stream (one packet = one frame for these codecs)."""
    fps_from_content: float | None
    """1 / mean PTS step between consecutive frames in presentation order, over the steps within 50% of the
    median step (so gaps do not count), snapped to the declared or a standard rate when that explains the
    timestamps to their time-base precision; None with fewer than 2 frames."""
    duration_seconds_from_content: float | None
    """Last PTS - first PTS + one frame step, in seconds; None without timestamps."""
    start_seconds_from_content: float | None
    """Smallest presentation timestamp of the stream, in seconds (edit lists can make it non-zero)."""
    color_trc: int
    """Transfer characteristic code point (H.273): 1 BT.709, 16 PQ, 18 HLG, 2 unspecified."""
    color_primaries: int
    """Colour primaries code point: 1 BT.709, 9 BT.2020, 2 unspecified."""
    colorspace: int
    """Matrix coefficients code point: 1 BT.709, 9 BT.2020 non-constant luminance, 2 unspecified."""
    color_range: int
    """0 unspecified, 1 narrow (MPEG, limited), 2 full (JPEG)."""
    color_tags_from: str
    """Where the tags were read: ``"stream"`` (codec context), or ``"stream+first frame"`` when an unspecified
    stream tag was filled from the first decoded frame."""
    mastering_display: MasteringDisplay | None = None
    """SMPTE ST 2086 mastering display from the first frame's side data; None when absent."""
    content_light_level: ContentLightLevel | None = None
    """MaxCLL/MaxFALL from the first frame's side data; None when absent."""
    dolby_vision: bool = False
    """True when the file signals Dolby Vision (codec tag dvh1/dvhe/dav1/... or DOVI side data)."""
    notes: tuple[str, ...] = field(default=())
    """Things noticed while probing that are not colour verdict reasons (e.g. declared vs measured mismatch)."""

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"width and height must be > 0, got {self.width}x{self.height}")
        if self.bit_depth < 0:
            raise ValueError(f"bit_depth must be >= 0, got {self.bit_depth}")
        if self.frame_count_from_content < 0:
            raise ValueError(f"frame_count_from_content must be >= 0, got {self.frame_count_from_content}")
        if self.frame_count_from_header is not None and self.frame_count_from_header < 0:
            raise ValueError(f"frame_count_from_header must be None or >= 0, got {self.frame_count_from_header}")
        if self.average_fps_from_header is not None and self.average_fps_from_header <= 0:
            raise ValueError(f"average_fps_from_header must be None or > 0, got {self.average_fps_from_header}")
        fps = self.fps_from_content
        if fps is not None and not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps_from_content must be None or a finite rate > 0, got {self.fps_from_content}")
        for name in ("color_trc", "color_primaries", "colorspace", "color_range"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int code point, got {value!r}")

    # ---- derived values -------------------------------------------------------------------------------------

    @property
    def average_fps_from_header_float(self) -> float | None:
        """:attr:`average_fps_from_header` as a float."""
        return None if self.average_fps_from_header is None else float(self.average_fps_from_header)

    @property
    def color_trc_name(self) -> str:
        """FFmpeg short name of the transfer, e.g. ``"smpte2084"``, ``"arib-std-b67"``, ``"bt709"``."""
        return _name(TRC_NAMES, self.color_trc)

    @property
    def color_primaries_name(self) -> str:
        """FFmpeg short name of the primaries, e.g. ``"bt2020"``."""
        return _name(PRIMARIES_NAMES, self.color_primaries)

    @property
    def colorspace_name(self) -> str:
        """FFmpeg short name of the matrix, e.g. ``"bt2020nc"``."""
        return _name(MATRIX_NAMES, self.colorspace)

    @property
    def color_range_name(self) -> str:
        """FFmpeg short name of the range: ``"unspecified"``, ``"tv"`` (narrow) or ``"pc"`` (full)."""
        return _name(RANGE_NAMES, self.color_range)

    @property
    def chroma_subsampling(self) -> str | None:
        """``"4:2:0"``, ``"4:2:2"``, ``"4:4:4"`` read from the pixel format name; None when unknown."""
        if self.pix_fmt is None:
            return None
        for marker, subsampling in (("420", "4:2:0"), ("422", "4:2:2"), ("444", "4:4:4")):
            if marker in self.pix_fmt:
                return subsampling
        return None

    @property
    def verdict(self) -> Verdict:
        """``"HDR10"``, ``"HLG"``, ``"SDR"`` or ``"unknown"`` by the rules in the module docstring."""
        return _classify(self)[0]

    @property
    def verdict_reasons(self) -> tuple[str, ...]:
        """Why the verdict is what it is, one sentence per fact (also for HDR10/SDR, e.g. wide gamut)."""
        return _classify(self)[1]

    @property
    def looks_truncated(self) -> bool:
        """True when fewer packets could be demuxed than the container declares (an interrupted download)."""
        return self.frame_count_from_header is not None and self.frame_count_from_content < self.frame_count_from_header

    @property
    def is_wide_gamut_sdr(self) -> bool:
        """SDR transfer with BT.2020 primaries: SDR, but not BT.709 SDR."""
        return self.color_trc in SDR_TRANSFERS and self.color_primaries == PRIMARIES_BT2020

    def problem_as(self, role: Role) -> str | None:
        """Why this file cannot serve as the ``role`` side of a pair, or None when it can.

        ``"hdr"`` needs HDR10 (PQ, BT.2020, BT.2020 NCL matrix) in 10-bit 4:2:0. ``"sdr"`` needs BT.709 SDR
        (BT.709 primaries and matrix, an SDR transfer) in 8-bit 4:2:0, because the stored SDR truth is 8-bit
        BT.709 Y'CbCr planes. A file that :attr:`looks_truncated` serves in no role. The message starts with the
        side and says what the file is.
        """
        if role not in ("hdr", "sdr"):
            raise ValueError(f"role must be 'hdr' or 'sdr', got {role!r}")
        if self.looks_truncated:
            return (
                f"{role.upper()} side looks truncated: the container declares {self.frame_count_from_header} frames "
                f"but only {self.frame_count_from_content} could be read; fetch the file again"
            )
        if role == "hdr":
            return _problem_as_hdr(self)
        return _problem_as_sdr(self)

    # ---- output ---------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field plus verdict, reasons and tag names (Fractions as ``"num/den"``)."""
        fps = self.average_fps_from_header
        return {
            "path": self.path,
            "container_format": self.container_format,
            "codec_name": self.codec_name,
            "codec_tag": self.codec_tag,
            "profile": self.profile,
            "pix_fmt": self.pix_fmt,
            "bit_depth": self.bit_depth,
            "width": self.width,
            "height": self.height,
            "average_fps_from_header": None if fps is None else f"{fps.numerator}/{fps.denominator}",
            "average_fps_from_header_float": self.average_fps_from_header_float,
            "frame_count_from_header": self.frame_count_from_header,
            "duration_seconds_from_header": self.duration_seconds_from_header,
            "frame_count_from_content": self.frame_count_from_content,
            "fps_from_content": self.fps_from_content,
            "duration_seconds_from_content": self.duration_seconds_from_content,
            "start_seconds_from_content": self.start_seconds_from_content,
            "color_trc": self.color_trc,
            "color_trc_name": self.color_trc_name,
            "color_primaries": self.color_primaries,
            "color_primaries_name": self.color_primaries_name,
            "colorspace": self.colorspace,
            "colorspace_name": self.colorspace_name,
            "color_range": self.color_range,
            "color_range_name": self.color_range_name,
            "color_tags_from": self.color_tags_from,
            "mastering_display": None if self.mastering_display is None else self.mastering_display.to_dict(),
            "content_light_level": None if self.content_light_level is None else self.content_light_level.to_dict(),
            "dolby_vision": self.dolby_vision,
            "looks_truncated": self.looks_truncated,
            "notes": list(self.notes),
            "verdict": self.verdict,
            "verdict_reasons": list(self.verdict_reasons),
        }

    def describe(self) -> str:
        """Multi-line human summary (what the CLI's ``probe`` command prints)."""
        fps_header = "?" if self.average_fps_from_header is None else f"{float(self.average_fps_from_header):.3f}"
        fps_content = "?" if self.fps_from_content is None else f"{self.fps_from_content:.3f}"
        frames_header = "?" if self.frame_count_from_header is None else str(self.frame_count_from_header)
        duration_header = (
            "?" if self.duration_seconds_from_header is None else f"{self.duration_seconds_from_header:.3f}"
        )
        duration_content = (
            "?" if self.duration_seconds_from_content is None else f"{self.duration_seconds_from_content:.3f}"
        )
        lines = [
            f"{self.path}",
            f"  verdict:   {self.verdict}",
            f"  container: {self.container_format}; codec {self.codec_name}"
            + (f" ({self.codec_tag})" if self.codec_tag else "")
            + (f", profile {self.profile}" if self.profile else "")
            + f", {self.pix_fmt or '?'} ({self.bit_depth or '?'}-bit)",
            f"  size:      {self.width}x{self.height}",
            f"  frames:    {self.frame_count_from_content} demuxed (declared {frames_header})",
            f"  fps:       {fps_content} measured (declared {fps_header})",
            f"  duration:  {duration_content} s measured (declared {duration_header} s)",
            f"  transfer:  {trc_label(self.color_trc)} [{self.color_trc}]",
            f"  primaries: {primaries_label(self.color_primaries)} [{self.color_primaries}]",
            f"  matrix:    {matrix_label(self.colorspace)} [{self.colorspace}]",
            f"  range:     {range_label(self.color_range)} [{self.color_range}] (tags from {self.color_tags_from})",
        ]
        md = self.mastering_display
        if md is not None:
            if md.red_xy and md.green_xy and md.blue_xy and md.white_point_xy:
                lines.append(
                    "  mastering display: "
                    f"R({md.red_xy[0]:.4f}, {md.red_xy[1]:.4f}) G({md.green_xy[0]:.4f}, {md.green_xy[1]:.4f}) "
                    f"B({md.blue_xy[0]:.4f}, {md.blue_xy[1]:.4f}) "
                    f"WP({md.white_point_xy[0]:.4f}, {md.white_point_xy[1]:.4f})"
                )
            if md.min_luminance_nits is not None and md.max_luminance_nits is not None:
                lines.append(
                    f"  mastering luminance: {md.min_luminance_nits:g} .. {md.max_luminance_nits:g} cd/m²"
                )
        else:
            lines.append("  mastering display: none")
        cll = self.content_light_level
        lines.append(
            "  MaxCLL/MaxFALL: none"
            if cll is None
            else f"  MaxCLL/MaxFALL: {cll.max_cll_nits} / {cll.max_fall_nits} cd/m²"
        )
        if self.dolby_vision:
            lines.append("  Dolby Vision: signalled")
        if self.looks_truncated:
            lines.append("  TRUNCATED: fewer frames could be read than the container declares")
        lines.extend(f"  because:   {reason}" for reason in self.verdict_reasons)
        lines.extend(f"  note:      {note}" for note in self.notes)
        return "\n".join(lines)


# ---- classification -------------------------------------------------------------------------------------------


def _classify(probe: VideoProbe) -> tuple[Verdict, tuple[str, ...]]:
    """Verdict and reasons from the tags, bit depth and Dolby Vision flag (pure: no file access)."""
    trc, primaries, matrix = probe.color_trc, probe.color_primaries, probe.colorspace
    reasons: list[str] = []
    pq_hdr10_tags = trc == TRC_PQ and primaries == PRIMARIES_BT2020 and matrix == MATRIX_BT2020_NCL

    if probe.dolby_vision and not pq_hdr10_tags:
        reasons.append(
            "Dolby Vision without an HDR10 base layer (profile 5 style: IPTPQc2 colour, transfer "
            f"{trc_label(trc)} [{trc}]); it decodes to wrong colours without Dolby's reshaping, so it is rejected"
        )
        return "unknown", tuple(reasons)

    if trc == TRC_PQ:
        missing = []
        if primaries != PRIMARIES_BT2020:
            missing.append(f"primaries are {primaries_label(primaries)} [{primaries}], not BT.2020 [9]")
        if matrix != MATRIX_BT2020_NCL:
            missing.append(f"matrix is {matrix_label(matrix)} [{matrix}], not BT.2020 NCL [9]")
        if probe.bit_depth < 10:
            missing.append(f"it is {probe.bit_depth or 'unknown'}-bit, HDR10 needs >= 10 bit")
        if missing:
            reasons.append("PQ transfer [16] but not HDR10: " + "; ".join(missing))
            return "unknown", tuple(reasons)
        reasons.append(f"PQ transfer [16], BT.2020 primaries [9], BT.2020 NCL matrix [9], {probe.bit_depth}-bit")
        if probe.dolby_vision:
            reasons.append(
                "Dolby Vision signalled with an HDR10 base layer (profile 8.1 style); the HDR10 layer is used"
            )
        if probe.mastering_display is None:
            reasons.append("no mastering display metadata (allowed; many HDR10 files lack it)")
        if probe.content_light_level is None:
            reasons.append("no MaxCLL/MaxFALL metadata (allowed)")
        elif probe.content_light_level.max_cll_nits == 0:
            reasons.append("MaxCLL is 0, i.e. not computed by the encoder (common for VP9 HDR; allowed)")
        return "HDR10", tuple(reasons)

    if trc == TRC_HLG:
        reasons.append(
            f"HLG transfer (ARIB STD-B67) [18], primaries {primaries_label(primaries)} [{primaries}], "
            f"{probe.bit_depth or 'unknown'}-bit"
        )
        return "HLG", tuple(reasons)

    if trc in SDR_TRANSFERS:
        reasons.append(f"SDR transfer {trc_label(trc)} [{trc}]")
        if primaries == PRIMARIES_BT2020:
            reasons.append("BT.2020 primaries with an SDR transfer: wide-gamut SDR, not HDR")
        elif primaries == PRIMARIES_UNSPECIFIED:
            reasons.append("primaries unspecified [2]")
        if matrix == MATRIX_UNSPECIFIED:
            reasons.append("matrix unspecified [2]")
        return "SDR", tuple(reasons)

    if trc == TRC_UNSPECIFIED:
        reasons.append(
            "transfer characteristic is unspecified [2] in the stream and in the first frame: "
            "the file does not say whether it is SDR, HDR10 or HLG"
        )
    else:
        reasons.append(f"transfer {trc_label(trc)} [{trc}] is neither PQ, HLG nor a video SDR transfer")
    return "unknown", tuple(reasons)


def _problem_as_hdr(probe: VideoProbe) -> str | None:
    verdict, reasons = _classify(probe)
    what = "; ".join(reasons)
    if verdict == "HLG":
        return (
            f"HDR side is HLG (ARIB STD-B67 transfer, trc 18), not HDR10 (PQ): {what}. "
            "Use the video's HDR10/PQ version (e.g. a different YouTube format) or convert HLG to PQ first"
        )
    if verdict == "SDR":
        return (
            f"HDR side is SDR ({trc_label(probe.color_trc)} transfer, trc {probe.color_trc}), not HDR10: {what}. "
            "Check that the HDR and SDR sources are not swapped"
        )
    if verdict == "unknown":
        if probe.color_trc == TRC_PQ and probe.bit_depth and probe.bit_depth < 10:
            return f"HDR side is {probe.bit_depth}-bit ({probe.pix_fmt}) PQ video, HDR10 needs 10 bit: {what}"
        return f"HDR side is not HDR10: {what}"
    if probe.chroma_subsampling != "4:2:0" or probe.bit_depth != 10:
        return (
            f"HDR side is HDR10 in {probe.pix_fmt} ({probe.bit_depth}-bit {probe.chroma_subsampling or '?'}), "
            "but fmstf-data stores 10-bit 4:2:0 (yuv420p10le) planes; convert it to yuv420p10le first"
        )
    return None


def _problem_as_sdr(probe: VideoProbe) -> str | None:
    verdict, reasons = _classify(probe)
    what = "; ".join(reasons)
    if verdict in ("HDR10", "HLG"):
        return (
            f"SDR side is {verdict} ({trc_label(probe.color_trc)} transfer, trc {probe.color_trc}), an HDR file "
            "given as SDR. Use the video's SDR version, and check that the sources are not swapped"
        )
    if verdict == "unknown":
        return f"SDR side is not recognisable as SDR: {what}"
    if probe.color_primaries != PRIMARIES_BT709:
        if probe.color_primaries == PRIMARIES_BT2020:
            return (
                "SDR side is wide-gamut SDR (BT.2020 primaries [9] with an SDR transfer), not BT.709 SDR; "
                "fmstf-data's SDR truth is BT.709: use a BT.709 SDR version"
            )
        return (
            f"SDR side has primaries {primaries_label(probe.color_primaries)} [{probe.color_primaries}], "
            "not BT.709 [1]; use a BT.709-tagged SDR version (or re-tag it if you know it is BT.709)"
        )
    if probe.colorspace != MATRIX_BT709:
        return (
            f"SDR side has matrix {matrix_label(probe.colorspace)} [{probe.colorspace}], not BT.709 [1]; "
            "its Y'CbCr would be decoded with the wrong coefficients: use a BT.709-tagged SDR version"
        )
    if probe.bit_depth != 8 or probe.chroma_subsampling != "4:2:0":
        return (
            f"SDR side is {probe.bit_depth}-bit {probe.chroma_subsampling or '?'} ({probe.pix_fmt}); "
            "fmstf-data stores SDR as 8-bit 4:2:0 (yuv420p) planes: use an 8-bit 4:2:0 SDR version"
        )
    return None


# ---- probing ----------------------------------------------------------------------------------------------------


def probe_video(path: str | Path) -> VideoProbe:
    """Probe the first video stream of a local file (cover-art pictures are skipped).

    Demuxes every packet of the stream (fast: no decoding) to measure frame count and frame rate, and decodes
    only the first frame, for frame-level colour tags and HDR10 side data.

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
            probe = _probe_stream(path, container, stream)
        except av.error.FFmpegError as error:
            raise ProbeError(f"cannot probe {path}: reading the video stream failed ({_one_line(error)})") from error
    logger.debug("probed %s: %s (%s)", path, probe.verdict, "; ".join(probe.verdict_reasons))
    return probe


def _one_line(error: BaseException) -> str:
    """FFmpeg's message without the errno and the repeated file name, on one line."""
    if isinstance(error, av.error.FFmpegError) and error.strerror:
        return str(error.strerror)
    return " ".join(str(error).split())


def _probe_stream(path: Path, container: Any, stream: Any) -> VideoProbe:
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
