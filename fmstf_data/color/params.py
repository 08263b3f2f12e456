"""How a sample side's code planes convert to R'G'B': bit depth, matrix and range, from the sample's tags.

A sample's JSON carries ``hdr`` / ``sdr`` dicts with ``bit_depth``, ``colorspace`` and ``color_range`` (FFmpeg's
names); :func:`color_params` maps them onto the colour core's arguments, with the defaults of the data we build
where a tag is unstated: HDR 10-bit BT.2020 NCL narrow range, SDR 8-bit BT.709 narrow range. Shared by the loader
(torch) and the build's previews (numpy), so both read tags the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fmstf_data.errors import LoaderError

_MATRICES = {"bt2020nc": "bt2020nc", "bt2020_ncl": "bt2020nc", "bt709": "bt709"}
_UNSTATED = {None, "", "unknown", "unspecified", "reserved", "reserved(0)", "reserved(2)"}
_RANGES = {"tv": False, "mpeg": False, "limited": False, "narrow": False, "pc": True, "jpeg": True, "full": True}
DEFAULTS = {"hdr": ("bt2020nc", 10), "sdr": ("bt709", 8)}
SIDES = ("sdr", "hdr")


@dataclass(frozen=True)
class ColorParams:
    """How one side's code planes convert: bit depth, matrix (``bt2020nc`` / ``bt709``) and range."""

    bit_depth: int
    matrix: str
    full_range: bool

    def __post_init__(self) -> None:
        if self.matrix not in ("bt2020nc", "bt709"):
            raise LoaderError(f"unsupported matrix {self.matrix!r}")
        if not 8 <= self.bit_depth <= 15:
            raise LoaderError(f"bit depth {self.bit_depth} is outside 8..15")

    def to_dict(self) -> dict[str, Any]:
        return {"bit_depth": self.bit_depth, "matrix": self.matrix, "full_range": self.full_range}


def color_params(tags: Mapping[str, Any] | None, side: str) -> ColorParams:
    """The conversion of ``side`` ("hdr" / "sdr") from its tags in a sample's JSON, defaults where unstated.

    Raises:
        LoaderError: a stated matrix or range the colour core does not convert (e.g. BT.601 ``smpte170m``).
    """
    matrix, bit_depth = DEFAULTS[side]
    tags = tags or {}
    full_range = False
    stated_matrix = tags.get("colorspace")
    if stated_matrix not in _UNSTATED:
        if stated_matrix not in _MATRICES:
            raise LoaderError(f"{side} planes are tagged with matrix {stated_matrix!r}; the loader converts "
                              f"{sorted(set(_MATRICES.values()))} only")
        matrix = _MATRICES[stated_matrix]
    stated_range = tags.get("color_range")
    if stated_range not in _UNSTATED:
        if stated_range not in _RANGES:
            raise LoaderError(f"{side} planes are tagged with range {stated_range!r}; expected one of "
                              f"{sorted(_RANGES)}")
        full_range = _RANGES[stated_range]
    if isinstance(tags.get("bit_depth"), int):
        bit_depth = tags["bit_depth"]
    return ColorParams(bit_depth=bit_depth, matrix=matrix, full_range=full_range)
