"""Gamut conversion (numpy) between BT.709 and BT.2020 primaries, and BT.2020 -> BT.709 gamut mapping.

Standards: ITU-R BT.2087 (the BT.709 <-> BT.2020 matrices, linear light, both D65); the mappings follow ITU-R
BT.2407 in spirit (its simplest method is the hard clip after the matrix). Inputs are linear light with the channel
axis first ([3, ...]); any scale (relative or cd/m²) works because the matrices are linear.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from fmstf_data.color._common import apply_matrix, as_float, check_channels
from fmstf_data.color.constants import LUMINANCE_BT709, primaries_matrix
from fmstf_data.errors import ColorError

#: gamut-mapping methods of :func:`gamut_map_bt2020_to_bt709`
GAMUT_MAPPING_METHODS: tuple[str, ...] = ("clip", "desaturate")


def convert_primaries(rgb_linear: ArrayLike, src: str, dst: str) -> np.ndarray:
    """Linear RGB [3, ...] in gamut ``src`` -> linear RGB [3, ...] in gamut ``dst`` ("bt709" or "bt2020").

    No clipping: BT.2020 colours outside BT.709 come out with negative components.
    """
    return apply_matrix(primaries_matrix(src, dst), as_float(rgb_linear))


def desaturate_to_gamut(rgb_linear: ArrayLike, luminance_weights: tuple[float, float, float]) -> np.ndarray:
    """Move each pixel of linear RGB [3, ...] towards the grey of its own luminance just far enough that no
    component is negative: ``out = (1 - t) rgb + t Y`` with the smallest t in [0, 1]. Luminance (and, for a
    constant-hue line through white, the hue) is preserved; pixels already without negatives are untouched.
    Pixels with luminance <= 0 become black."""
    rgb = as_float(rgb_linear)
    check_channels(rgb)
    k_r, k_g, k_b = luminance_weights
    y = k_r * rgb[0] + k_g * rgb[1] + k_b * rgb[2]
    # t_c = -c / (Y - c) for each negative component c (Y - c > 0 there when Y > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(rgb < 0, -rgb / (y - rgb), 0.0)
    t = np.clip(np.max(t, axis=0), 0.0, 1.0)
    t = np.where(y > 0, t, 1.0)
    out = (1.0 - t) * rgb + t * np.maximum(y, 0.0)
    return np.maximum(out, 0.0).astype(rgb.dtype, copy=False)


def gamut_map_bt2020_to_bt709(rgb_linear_2020: ArrayLike, *, method: str = "desaturate") -> np.ndarray:
    """Linear BT.2020 RGB [3, ...] -> linear BT.709 RGB [3, ...] with no negative component.

    ``method="clip"``: BT.2087 matrix, then negatives set to 0 (BT.2407 §"clipping"; shifts hue and luminance of
    saturated colours). ``method="desaturate"``: BT.2087 matrix, then :func:`desaturate_to_gamut`, which keeps the
    BT.709 luminance. Values above 1 (relative) are left alone: the caller tone-maps or clips them.
    """
    if method not in GAMUT_MAPPING_METHODS:
        raise ColorError(f"unknown gamut mapping {method!r}: use one of {list(GAMUT_MAPPING_METHODS)}")
    rgb_709 = convert_primaries(rgb_linear_2020, "bt2020", "bt709")
    if method == "clip":
        return np.maximum(rgb_709, 0.0)
    return desaturate_to_gamut(rgb_709, LUMINANCE_BT709)
