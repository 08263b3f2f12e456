"""ICtCp (ITU-R BT.2100, PQ variant) and ΔE_ITP (ITU-R BT.2124), numpy.

``LMS = M1 · RGB_2020`` with RGB in **absolute linear cd/m²** (feeding [0, 1] light gives wrong
values), ``L'M'S' = PQ⁻¹(LMS)``, ``ICtCp = M2 · L'M'S'``; ``ΔE_ITP = 720 √(ΔI² + (0.5 ΔCt)² + ΔCp²)`` (the T axis
of ITP is ``0.5 Ct``). One ΔE_ITP is about one just-noticeable difference.
Torch versions: :mod:`fmstf_data.color.torch_ops`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from fmstf_data.color._common import apply_matrix, as_float, check_channels
from fmstf_data.color.constants import ICTCP_LMS_P_TO_ICTCP, ICTCP_RGB2020_TO_LMS
from fmstf_data.color.transfer import pq_eotf, pq_inverse_eotf

#: scale of ΔE_ITP (BT.2124)
DELTA_E_ITP_SCALE = 720.0


def ictcp_from_rgb2020_nits(rgb: ArrayLike) -> np.ndarray:
    """Linear BT.2020 RGB [3, ...] in cd/m² -> ICtCp [3, ...] (I in [0, 1], Ct and Cp around 0).

    ``ICtCp(1000, 0, 0) = (0.6080024481, -0.1649483158, 0.4430925005)``.
    """
    lms = apply_matrix(ICTCP_RGB2020_TO_LMS, rgb)
    return apply_matrix(ICTCP_LMS_P_TO_ICTCP, pq_inverse_eotf(lms))


def rgb2020_nits_from_ictcp(ictcp: ArrayLike) -> np.ndarray:
    """Inverse of :func:`ictcp_from_rgb2020_nits`: ICtCp [3, ...] -> linear BT.2020 RGB [3, ...] in cd/m²."""
    lms_p = apply_matrix(np.linalg.inv(ICTCP_LMS_P_TO_ICTCP), ictcp)
    return apply_matrix(np.linalg.inv(ICTCP_RGB2020_TO_LMS), pq_eotf(lms_p))


def delta_e_itp(ictcp_a: ArrayLike, ictcp_b: ArrayLike) -> np.ndarray:
    """ΔE_ITP (BT.2124) between two ICtCp arrays [3, ...] (channel axis first) -> [...]."""
    a, b = as_float(ictcp_a), as_float(ictcp_b)
    check_channels(a, what="ictcp_a")
    check_channels(b, what="ictcp_b")
    d_i, d_ct, d_cp = a[0] - b[0], a[1] - b[1], a[2] - b[2]
    return DELTA_E_ITP_SCALE * np.sqrt(d_i * d_i + (0.5 * d_ct) ** 2 + d_cp * d_cp)


def delta_e_itp_rgb2020_nits(rgb_a: ArrayLike, rgb_b: ArrayLike) -> np.ndarray:
    """ΔE_ITP between two linear BT.2020 RGB arrays [3, ...] in cd/m² -> [...]."""
    return delta_e_itp(ictcp_from_rgb2020_nits(rgb_a), ictcp_from_rgb2020_nits(rgb_b))
