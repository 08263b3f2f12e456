"""Constants of the colour core: PQ, Y'CbCr luma weights, gamut and ICtCp matrices.

Sources (the golden values they must reproduce are in ``tests/test_color.py``):

- SMPTE ST 2084 / ITU-R BT.2100 (PQ): m1, m2, c1, c2, c3 as exact rationals.
- ITU-R BT.2020 (non-constant luminance) and ITU-R BT.709 luma weights Kr, Kg, Kb; the Y'CbCr scale factors
  ``2 (1 - Kb)`` and ``2 (1 - Kr)`` (1.8814 / 1.4746 for BT.2020, 1.8556 / 1.5748 for BT.709).
- ITU-R BT.2087: BT.709 -> BT.2020 primaries in linear light (the 3x3 of the reference, ten digits);
  the inverse is computed exactly from it.
- ITU-R BT.2100 / BT.2124: ICtCp matrices (integers / 4096).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fmstf_data.errors import ColorError


@dataclass(frozen=True)
class PQConstants:
    """SMPTE ST 2084 constants (the names of colour-science's ``CONSTANTS_ST2084``)."""

    m_1: float = 2610 / 4096 * (1 / 4)  # 0.1593017578125
    m_2: float = 2523 / 4096 * 128  # 78.84375
    c_1: float = 3424 / 4096  # 0.8359375
    c_2: float = 2413 / 4096 * 32  # 18.8515625
    c_3: float = 2392 / 4096 * 32  # 18.6875
    peak_nits: float = 10000.0  # absolute luminance of E = 1

    def __post_init__(self) -> None:
        if abs(self.c_1 + self.c_2 - self.c_3 - 1.0) > 1e-12:  # E' = 1 must decode to peak_nits
            raise ColorError(f"PQ constants violate c1 + c2 = c3 + 1: {self}")


PQ = PQConstants()

#: Y'CbCr matrices we support: name -> (Kr, Kg, Kb) luma weights on gamma-encoded R'G'B'.
LUMA_COEFFICIENTS: dict[str, tuple[float, float, float]] = {
    "bt2020nc": (0.2627, 0.6780, 0.0593),  # ITU-R BT.2020 non-constant luminance (also BT.2100)
    "bt709": (0.2126, 0.7152, 0.0722),  # ITU-R BT.709
}

#: Gamuts (RGB primaries, both with D65 white) that ``convert_primaries`` knows.
GAMUTS: tuple[str, ...] = ("bt709", "bt2020")

#: BT.709 -> BT.2020 primaries, linear light, ITU-R BT.2087 (as in colour-science's ``matrix_RGB_to_RGB``).
BT709_TO_BT2020: np.ndarray = np.array(
    [
        [0.6274038959, 0.3292830384, 0.0433130657],
        [0.0690972894, 0.9195403951, 0.0113623156],
        [0.0163914389, 0.0880133079, 0.8955952532],
    ],
    dtype=np.float64,
)
#: BT.2020 -> BT.709 primaries, linear light: the exact inverse of :data:`BT709_TO_BT2020`
#: (the reference's rounded [[1.6604910, -0.5876411, -0.0728499], ...] agrees to 1e-7).
BT2020_TO_BT709: np.ndarray = np.linalg.inv(BT709_TO_BT2020)

#: Relative luminance Y of linear BT.2020 / BT.709 RGB (the middle row of RGB -> XYZ; the same weights as the luma).
LUMINANCE_BT2020: tuple[float, float, float] = LUMA_COEFFICIENTS["bt2020nc"]
LUMINANCE_BT709: tuple[float, float, float] = LUMA_COEFFICIENTS["bt709"]

#: ICtCp (ITU-R BT.2100): linear BT.2020 RGB -> LMS.
ICTCP_RGB2020_TO_LMS: np.ndarray = np.array([[1688, 2146, 262], [683, 2951, 462], [99, 309, 3688]], np.float64) / 4096
#: ICtCp: PQ-encoded L'M'S' -> ICtCp.
ICTCP_LMS_P_TO_ICTCP: np.ndarray = (
    np.array([[2048, 2048, 0], [6610, -13613, 7003], [17933, -17390, -543]], np.float64) / 4096
)

for _matrix in (BT709_TO_BT2020, BT2020_TO_BT709, ICTCP_RGB2020_TO_LMS, ICTCP_LMS_P_TO_ICTCP):
    _matrix.setflags(write=False)


def luma_coefficients(matrix: str) -> tuple[float, float, float]:
    """(Kr, Kg, Kb) of a Y'CbCr matrix name ("bt2020nc" or "bt709"); raises ColorError for any other name."""
    try:
        return LUMA_COEFFICIENTS[matrix]
    except (KeyError, TypeError):
        raise ColorError(
            f"unknown Y'CbCr matrix {matrix!r}: use one of {sorted(LUMA_COEFFICIENTS)} "
            "(BT.2020 constant-luminance and BT.601 are not supported)"
        ) from None


def ycbcr_scales(matrix: str) -> tuple[float, float]:
    """(cb_scale, cr_scale) = (2 (1 - Kb), 2 (1 - Kr)): Cb = (B' - Y') / cb_scale, Cr = (R' - Y') / cr_scale."""
    k_r, _, k_b = luma_coefficients(matrix)
    return 2.0 * (1.0 - k_b), 2.0 * (1.0 - k_r)


def check_gamut(gamut: str) -> str:
    """Return ``gamut`` if it is one of :data:`GAMUTS`, else raise ColorError."""
    if gamut not in GAMUTS:
        raise ColorError(f"unknown gamut {gamut!r}: use one of {list(GAMUTS)}")
    return gamut


def primaries_matrix(src: str, dst: str) -> np.ndarray:
    """3x3 linear-light matrix from gamut ``src`` to ``dst`` ("bt709" or "bt2020"); identity when equal."""
    check_gamut(src)
    check_gamut(dst)
    if src == dst:
        return np.eye(3)
    return BT709_TO_BT2020 if src == "bt709" else BT2020_TO_BT709
