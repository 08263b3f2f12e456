"""What a probed video file is, as a record: :class:`VideoProbe`, its HDR10 metadata, verdict and problems.

:class:`VideoProbe` holds the values :func:`fmstf_data.video.probe.probe_video` reads: declared (``*_from_header``) and
measured (``*_from_content``) timing, H.273 colour tags (:mod:`fmstf_data.video.tags`) and HDR10 static metadata
(:class:`MasteringDisplay`, SMPTE ST 2086; :class:`ContentLightLevel`, CTA-861.3). Everything here is pure: no file
access.

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

import math
import struct
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

from fmstf_data.errors import InvalidValueError
from fmstf_data.video.tags import (
    MATRIX_BT709,
    MATRIX_BT2020_NCL,
    MATRIX_NAMES,
    MATRIX_UNSPECIFIED,
    PRIMARIES_BT709,
    PRIMARIES_BT2020,
    PRIMARIES_NAMES,
    PRIMARIES_UNSPECIFIED,
    RANGE_NAMES,
    SDR_TRANSFERS,
    TRC_HLG,
    TRC_NAMES,
    TRC_PQ,
    TRC_UNSPECIFIED,
    code_point_name,
    matrix_label,
    primaries_label,
    range_label,
    trc_label,
)

Verdict = Literal["HDR10", "HLG", "SDR", "unknown"]
Role = Literal["hdr", "sdr"]


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
                raise InvalidValueError(f"{name} must be two chromaticities in [0, 1], got {xy!r}")
        for name in ("min_luminance_nits", "max_luminance_nits"):
            nits = getattr(self, name)
            if nits is not None and not (math.isfinite(nits) and nits >= 0.0):
                raise InvalidValueError(f"{name} must be a finite luminance >= 0 cd/m², got {nits!r}")

    @classmethod
    def from_side_data(cls, payload: bytes) -> MasteringDisplay:
        """Parse FFmpeg's ``AVMasteringDisplayMetadata`` (22 little-endian int32: 10 rationals and 2 flags).

        Layout: display_primaries[3][2] (R, G, B; x then y, each num/den), white_point[2], min_luminance,
        max_luminance, has_primaries, has_luminance.
        """
        if len(payload) < 88:
            raise InvalidValueError(f"mastering display side data has {len(payload)} bytes, expected at least 88")
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
            raise InvalidValueError(f"MaxCLL/MaxFALL must be >= 0, got {self.max_cll_nits}/{self.max_fall_nits}")

    @classmethod
    def from_side_data(cls, payload: bytes) -> ContentLightLevel:
        """Parse FFmpeg's ``AVContentLightMetadata`` (two unsigned int32: MaxCLL, MaxFALL)."""
        if len(payload) < 8:
            raise InvalidValueError(f"content light level side data has {len(payload)} bytes, expected 8")
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
            raise InvalidValueError(f"width and height must be > 0, got {self.width}x{self.height}")
        if self.bit_depth < 0:
            raise InvalidValueError(f"bit_depth must be >= 0, got {self.bit_depth}")
        if self.frame_count_from_content < 0:
            raise InvalidValueError(f"frame_count_from_content must be >= 0, got {self.frame_count_from_content}")
        if self.frame_count_from_header is not None and self.frame_count_from_header < 0:
            raise InvalidValueError(f"frame_count_from_header must be None or >= 0, got {self.frame_count_from_header}")
        if self.average_fps_from_header is not None and self.average_fps_from_header <= 0:
            raise InvalidValueError(f"average_fps_from_header must be None or > 0, got {self.average_fps_from_header}")
        fps = self.fps_from_content
        if fps is not None and not (math.isfinite(fps) and fps > 0):
            raise InvalidValueError(f"fps_from_content must be None or a finite rate > 0, got {self.fps_from_content}")
        for name in ("color_trc", "color_primaries", "colorspace", "color_range"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise InvalidValueError(f"{name} must be a non-negative int code point, got {value!r}")

    # ---- derived values -------------------------------------------------------------------------------------

    @property
    def average_fps_from_header_float(self) -> float | None:
        """:attr:`average_fps_from_header` as a float."""
        return None if self.average_fps_from_header is None else float(self.average_fps_from_header)

    @property
    def color_trc_name(self) -> str:
        """FFmpeg short name of the transfer, e.g. ``"smpte2084"``, ``"arib-std-b67"``, ``"bt709"``."""
        return code_point_name(TRC_NAMES, self.color_trc)

    @property
    def color_primaries_name(self) -> str:
        """FFmpeg short name of the primaries, e.g. ``"bt2020"``."""
        return code_point_name(PRIMARIES_NAMES, self.color_primaries)

    @property
    def colorspace_name(self) -> str:
        """FFmpeg short name of the matrix, e.g. ``"bt2020nc"``."""
        return code_point_name(MATRIX_NAMES, self.colorspace)

    @property
    def color_range_name(self) -> str:
        """FFmpeg short name of the range: ``"unspecified"``, ``"tv"`` (narrow) or ``"pc"`` (full)."""
        return code_point_name(RANGE_NAMES, self.color_range)

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
            raise InvalidValueError(f"role must be 'hdr' or 'sdr', got {role!r}")
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
