"""H.273 colour code points (transfer, primaries, matrix, range) and their names and human labels.

The values are FFmpeg's enum integers (``AVColorTransferCharacteristic``, ``AVColorPrimaries``, ``AVColorSpace``,
``AVColorRange``), which are the ITU-T H.273 code points; the short names are FFmpeg's ``av_color_*_name`` (as
ffprobe prints them). :mod:`fmstf_data.video.record` classifies a probed file with them and
:mod:`fmstf_data.video.probe` reads them from a file.
"""

from __future__ import annotations

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


def code_point_name(names: dict[int, str], value: int) -> str:
    """FFmpeg short name of ``value`` from ``names`` (e.g. :data:`TRC_NAMES`), ``"reserved(N)"`` when unknown."""
    return names.get(value, f"reserved({value})")


def trc_label(value: int) -> str:
    """Human name of a transfer characteristic code point, e.g. ``16 -> "PQ (SMPTE ST 2084)"``."""
    return _TRC_LABELS.get(value, code_point_name(TRC_NAMES, value))


def primaries_label(value: int) -> str:
    """Human name of a colour primaries code point, e.g. ``9 -> "BT.2020"``."""
    return _PRIMARIES_LABELS.get(value, code_point_name(PRIMARIES_NAMES, value))


def matrix_label(value: int) -> str:
    """Human name of a matrix coefficients code point, e.g. ``9 -> "BT.2020 NCL"``."""
    return _MATRIX_LABELS.get(value, code_point_name(MATRIX_NAMES, value))


def range_label(value: int) -> str:
    """Human name of a colour range value (0 unspecified, 1 narrow, 2 full)."""
    return _RANGE_LABELS.get(value, code_point_name(RANGE_NAMES, value))
