"""Transfer functions (numpy): PQ (SMPTE ST 2084), BT.1886 EOTF, BT.709 OETF.

Every function works elementwise on arrays of any shape; float32/float64 inputs keep their dtype, other inputs
become float64. Luminance is absolute in cd/m² ("nits") for PQ and BT.1886, relative (1 = reference white) for the
BT.709 OETF. The torch versions, with the same names, are in :mod:`fmstf_data.color.torch_ops`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from fmstf_data.color._common import as_float
from fmstf_data.color.constants import PQ
from fmstf_data.errors import ColorError

#: BT.1886 display gamma.
BT1886_GAMMA = 2.4

#: BT.709 OETF constants (ITU-R BT.709-6 §1.2, the rounded values of the standard's text).
BT709_ALPHA = 1.099
BT709_BETA = 0.018
BT709_LINEAR_SLOPE = 4.5
BT709_EXPONENT = 0.45


def pq_eotf(e: ArrayLike) -> np.ndarray:
    """SMPTE ST 2084 EOTF: PQ signal E' in [0, 1] -> absolute luminance in cd/m² (0 .. 10000).

    ``L = 10000 (max(E'^(1/m2) - c1, 0) / (c2 - c3 E'^(1/m2)))^(1/m1)``. E' is clipped to [0, 1] first
    (outside it the formula has no meaning: negative powers, a pole just above 1).
    """
    e = np.clip(as_float(e), 0.0, 1.0)
    p = e ** (1.0 / PQ.m_2)
    return PQ.peak_nits * (np.maximum(p - PQ.c_1, 0.0) / (PQ.c_2 - PQ.c_3 * p)) ** (1.0 / PQ.m_1)


def pq_inverse_eotf(nits: ArrayLike) -> np.ndarray:
    """SMPTE ST 2084 inverse EOTF: absolute luminance in cd/m² -> PQ signal E' in [0, 1].

    ``E' = ((c1 + c2 Y^m1) / (1 + c3 Y^m1))^m2`` with ``Y = L / 10000`` clipped to [0, 1]. Note that 0 cd/m² gives
    ``c1^m2 = 7.31e-7``, not 0 (10-bit narrow code 64 all the same).
    """
    y = np.clip(as_float(nits) / PQ.peak_nits, 0.0, 1.0)
    y_m1 = y**PQ.m_1
    return ((PQ.c_1 + PQ.c_2 * y_m1) / (1.0 + PQ.c_3 * y_m1)) ** PQ.m_2


def bt1886_parameters(white_nits: float, black_nits: float) -> tuple[float, float]:
    """(a, b) of ITU-R BT.1886 Annex 1: ``a = (Lw^(1/γ) - Lb^(1/γ))^γ``,
    ``b = Lb^(1/γ) / (Lw^(1/γ) - Lb^(1/γ))``."""
    if not (0.0 <= black_nits < white_nits):
        raise ColorError(f"BT.1886 needs 0 <= black_nits < white_nits, got black {black_nits}, white {white_nits}")
    w = white_nits ** (1.0 / BT1886_GAMMA)
    b = black_nits ** (1.0 / BT1886_GAMMA)
    return (w - b) ** BT1886_GAMMA, b / (w - b)


def bt1886_eotf(v: ArrayLike, white_nits: float = 100.0, black_nits: float = 0.0) -> np.ndarray:
    """ITU-R BT.1886 EOTF: video signal V (nominally [0, 1]) -> screen luminance in cd/m².

    ``L = a max(V + b, 0)^2.4``; with ``black_nits = 0`` simply ``L = white_nits V^2.4``. V above 1 extrapolates.
    """
    a, b = bt1886_parameters(white_nits, black_nits)
    return a * np.maximum(as_float(v) + b, 0.0) ** BT1886_GAMMA


def bt1886_inverse_eotf(nits: ArrayLike, white_nits: float = 100.0, black_nits: float = 0.0) -> np.ndarray:
    """Inverse of :func:`bt1886_eotf`: luminance in cd/m² (negative clipped to 0) -> video signal V."""
    a, b = bt1886_parameters(white_nits, black_nits)
    return (np.maximum(as_float(nits), 0.0) / a) ** (1.0 / BT1886_GAMMA) - b


def bt709_oetf(l: ArrayLike) -> np.ndarray:  # noqa: E741 (the standard's name)
    """ITU-R BT.709 OETF: scene linear light L (1 = reference white) -> V.

    ``V = 1.099 L^0.45 - 0.099`` for ``L >= 0.018``, else ``4.5 L`` (also for negative L).
    """
    l = as_float(l)  # noqa: E741
    power = BT709_ALPHA * np.maximum(l, BT709_BETA) ** BT709_EXPONENT - (BT709_ALPHA - 1.0)
    return np.where(l >= BT709_BETA, power, BT709_LINEAR_SLOPE * l)


def bt709_inverse_oetf(v: ArrayLike) -> np.ndarray:
    """Inverse of :func:`bt709_oetf`: V -> scene linear light L (``V < 4.5 * 0.018 = 0.081`` is the linear part)."""
    v = as_float(v)
    threshold = BT709_LINEAR_SLOPE * BT709_BETA
    power = ((np.maximum(v, threshold) + (BT709_ALPHA - 1.0)) / BT709_ALPHA) ** (1.0 / BT709_EXPONENT)
    return np.where(v >= threshold, power, v / BT709_LINEAR_SLOPE)
