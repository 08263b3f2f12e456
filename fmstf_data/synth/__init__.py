"""Synthetic HDR10/SDR pairs with known truth, for the demo, the tests and the benchmarks.

- :mod:`~fmstf_data.synth.scene`: procedural scenes in light (cd/m²), deterministic from a seed.
- :mod:`~fmstf_data.synth.pairs`: HDR10 encoding (x265 with ST 2086 / CTA-861.3 metadata) and SDR versions made
  the way a platform would (tone mapping, gamut mapping, trims, resizes).
"""

from fmstf_data.synth.pairs import (
    DEFAULT_MASTERING_DISPLAY,
    HDR_SUFFIXES,
    SDR_CODECS,
    HdrClip,
    PairTruth,
    SdrVersion,
    nits_to_hdr10_planes,
    planes_to_video_frame,
    resize_rgb,
    write_hdr_clip,
    write_pair,
    write_sdr_version,
)
from fmstf_data.synth.scene import ClipSpec, SceneSpec, iter_clip_nits

__all__ = [
    "DEFAULT_MASTERING_DISPLAY", "HDR_SUFFIXES", "SDR_CODECS", "ClipSpec", "HdrClip", "PairTruth", "SceneSpec",
    "SdrVersion", "iter_clip_nits", "nits_to_hdr10_planes", "planes_to_video_frame", "resize_rgb",
    "write_hdr_clip", "write_pair", "write_sdr_version",
]
