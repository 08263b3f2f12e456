"""Tone mapping (numpy): BT.2390 EETF, BT.2446 Methods A and C both ways, simple curves, HDR10 -> SDR.

Standards: Report ITU-R BT.2390 §5.4 (EETF), Report ITU-R BT.2446-1 §4 (Method A), §6 (Method C). Domains:

- :func:`bt2390_eetf`: PQ signal -> PQ signal (absolute, via ST 2084).
- Method A HDR->SDR (:func:`bt2446a_hdr_to_sdr`): BT.2020 linear RGB [3, ...] relative to the HDR peak
  (cd/m² / ``source_max_nits``, 1 = 1000 cd/m² by default) -> BT.2020 R'G'B' SDR, gamma 1/2.4, in [0, 1].
- Method A SDR->HDR (:func:`bt2446a_sdr_to_hdr`): BT.2020 R'G'B' SDR, gamma 2.4, in [0, 1] -> BT.2020 linear RGB
  relative to 1000 cd/m² (the Report fits its curve for a 1000 cd/m² peak; multiply by 1000 for cd/m²).
  The offset of the upper exponent branch is 1.2528 (some public code has 1.2328, a typo that peaks at 895).
- Method C (:func:`bt2446c_hdr_to_sdr`, :func:`bt2446c_sdr_to_hdr`): BT.2020 linear RGB in cd/m² both ways; the curve
  acts on the luminance Y of xyY and keeps x, y (so it scales RGB by ``Y_out / Y_in``); SDR output may exceed
  100 cd/m² (1000 -> 118.38). The optional crosstalk matrix of §6.1.2 has parameter ``alpha`` (0 = none).
- :func:`hdr_to_sdr_rgb`: HDR10 R'G'B' (PQ, BT.2020) [3, ...] -> SDR R'G'B' (BT.709, BT.1886 with 100 cd/m² white)
  in [0, 1], the complete conversion used to make SDR versions of synthetic HDR10.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from fmstf_data.color._common import apply_matrix, as_float, check_channels
from fmstf_data.color.constants import LUMINANCE_BT2020
from fmstf_data.color.gamut import convert_primaries, gamut_map_bt2020_to_bt709
from fmstf_data.color.transfer import BT1886_GAMMA, bt1886_inverse_eotf, pq_eotf, pq_inverse_eotf
from fmstf_data.color.ycbcr import _rgb_to_ycbcr, _ycbcr_to_rgb
from fmstf_data.errors import ColorError

HDR_TO_SDR_METHODS: tuple[str, ...] = ("bt2390", "bt2446a", "bt2446c")
SDR_TO_HDR_METHODS: tuple[str, ...] = ("bt2446a", "bt2446c")

#: BT.2446 Method C constants (§6.1.4) as published. k2 and k4 follow (to 3e-4) from continuity of value and slope
#: at Y_ip: ``k2 = k1 Y_ip (1 - k3)``, ``k4 = k1 Y_ip - k2 ln(1 - k3)``; the published rounded values are used
#: so that the Report's regression values (203 -> 90.6523, 1000 -> 118.3773 cd/m²) come out to 4 decimals.
BT2446C_K1 = 0.83802
BT2446C_K2 = 15.09968
BT2446C_K3 = 0.74204
BT2446C_K4 = 78.99439
BT2446C_Y_IP = 69.849


def _check_nits(name_low: str, low: float, name_high: str, high: float) -> None:
    if not (0.0 <= low < high):
        raise ColorError(f"need 0 <= {name_low} < {name_high}, got {name_low}={low}, {name_high}={high}")


def bt2390_eetf(
    e_pq: ArrayLike,
    *,
    source_min_nits: float = 0.0,
    source_max_nits: float = 1000.0,
    target_min_nits: float = 0.0,
    target_max_nits: float = 100.0,
) -> np.ndarray:
    """BT.2390 EETF on a PQ signal: normalise by the source black/white, Hermite spline above
    ``KS = 1.5 maxLum - 0.5``, black lift ``E3 = E2 + minLum (1 - E2)^4``, back to PQ.

    Input above the source white is clipped to it. With ``target_max_nits >= source_max_nits`` the spline is
    skipped. For 1000 -> 100 cd/m² (black 0): 100 -> 69.45, 203 -> 88.24, 1000 -> 100.0 cd/m².
    """
    _check_nits("source_min_nits", source_min_nits, "source_max_nits", source_max_nits)
    _check_nits("target_min_nits", target_min_nits, "target_max_nits", target_max_nits)
    e = as_float(e_pq)
    black, white = float(pq_inverse_eotf(source_min_nits)), float(pq_inverse_eotf(source_max_nits))
    span = white - black
    min_lum = (float(pq_inverse_eotf(target_min_nits)) - black) / span
    max_lum = (float(pq_inverse_eotf(target_max_nits)) - black) / span
    e1 = np.clip((e - black) / span, 0.0, 1.0)
    knee = 1.5 * max_lum - 0.5
    if knee < 1.0:
        t = np.clip((e1 - knee) / (1.0 - knee), 0.0, 1.0)
        t2, t3 = t * t, t * t * t
        spline = (2 * t3 - 3 * t2 + 1) * knee + (t3 - 2 * t2 + t) * (1.0 - knee) + (-2 * t3 + 3 * t2) * max_lum
        e2 = np.where(e1 < knee, e1, spline)
    else:
        e2 = e1
    e3 = e2 + min_lum * (1.0 - e2) ** 4
    return (e3 * span + black).astype(e.dtype, copy=False)


def _rho(nits: float) -> float:
    return 1.0 + 32.0 * (nits / 10000.0) ** (1.0 / BT1886_GAMMA)


def bt2446a_tone_curve(
    y_prime_hdr: ArrayLike, *, source_max_nits: float = 1000.0, target_max_nits: float = 100.0
) -> np.ndarray:
    """BT.2446 Method A luma curve: HDR Y' (gamma 1/2.4 of light relative to ``source_max_nits``) -> SDR Y'.

    ``Y'p = log(1 + (ρ_HDR - 1) Y') / log ρ_HDR`` with ``ρ(L) = 1 + 32 (L/10000)^(1/2.4)``, knee
    ``1.077 x`` / ``-1.151 x² + 2.7811 x - 0.6302`` / ``0.5 x + 0.5`` (breaks 0.7399, 0.9909),
    ``Y'_SDR = (ρ_SDR^Y'c - 1) / (ρ_SDR - 1)``. Grey at 100 / 203 / 1000 cd/m² -> 0.53875 / 0.68686 / 1.0.
    """
    _check_nits("target_max_nits", target_max_nits, "source_max_nits", source_max_nits)
    y = np.maximum(as_float(y_prime_hdr), 0.0)
    rho_hdr, rho_sdr = _rho(source_max_nits), _rho(target_max_nits)
    y_p = np.log1p((rho_hdr - 1.0) * y) / np.log(rho_hdr)
    y_c = np.where(
        y_p <= 0.7399, 1.077 * y_p, np.where(y_p <= 0.9909, (-1.151 * y_p + 2.7811) * y_p - 0.6302, 0.5 * y_p + 0.5)
    )
    return (rho_sdr**y_c - 1.0) / (rho_sdr - 1.0)


def bt2446a_hdr_to_sdr(
    rgb_linear_2020: ArrayLike, *, source_max_nits: float = 1000.0, target_max_nits: float = 100.0
) -> np.ndarray:
    """BT.2446 Method A HDR -> SDR: linear BT.2020 RGB [3, ...] relative to ``source_max_nits`` (clipped to [0, 1])
    -> SDR BT.2020 R'G'B' (gamma 1/2.4) [3, ...] in [0, 1]: luma curve, chroma scaled by ``Y'_SDR / (1.1 Y')``,
    ``Y'_TMO = Y'_SDR - max(0.1 Cr_TMO, 0)``."""
    rgb = np.clip(as_float(rgb_linear_2020), 0.0, 1.0)
    check_channels(rgb)
    y, cb, cr = _rgb_to_ycbcr(rgb ** (1.0 / BT1886_GAMMA), "bt2020nc", axis=0)
    y_sdr = bt2446a_tone_curve(y, source_max_nits=source_max_nits, target_max_nits=target_max_nits)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(y > 0, y_sdr / (1.1 * y), 0.0)
    cb, cr = cb * scale, cr * scale
    y_tmo = y_sdr - np.maximum(0.1 * cr, 0.0)
    return np.clip(_ycbcr_to_rgb(y_tmo, cb, cr, "bt2020nc", axis=0), 0.0, 1.0)


def bt2446a_expand_luma(y_prime_sdr: ArrayLike) -> np.ndarray:
    """BT.2446 Method A inverse luma curve: SDR Y' in [0, 1] -> Y'_HDR in [0, 1000] (gamma domain).

    ``Y'' = 255 Y'``; ``E = 1.8712e-5 Y''² - 2.7334e-3 Y'' + 1.3141`` for ``Y'' <= 70``, else
    ``2.8305e-6 Y''² - 7.4622e-4 Y'' + 1.2528``; ``Y'_HDR = Y''^E``.
    """
    y2 = 255.0 * np.clip(as_float(y_prime_sdr), 0.0, 1.0)
    exponent = np.where(
        y2 <= 70.0, 1.8712e-5 * y2 * y2 - 2.7334e-3 * y2 + 1.3141, 2.8305e-6 * y2 * y2 - 7.4622e-4 * y2 + 1.2528
    )
    return y2**exponent


def bt2446a_sdr_to_hdr(rgb_sdr_2020: ArrayLike) -> np.ndarray:
    """BT.2446 Method A SDR -> HDR: SDR BT.2020 R'G'B' [3, ...] (gamma 2.4, clipped to [0, 1]) -> linear BT.2020
    RGB [3, ...] relative to 1000 cd/m², in [0, 1]. Chroma is scaled by ``Sc = 1.075 Y'_HDR / Y'`` (1 at Y' = 0),
    the result divided by 1000, clipped and raised to 2.4. Grey Y' 0.1 / 0.5 / 0.75 / 1.0 -> 1.1010 / 76.2809 /
    278.9767 / 999.52 cd/m²."""
    rgb = np.clip(as_float(rgb_sdr_2020), 0.0, 1.0)
    check_channels(rgb)
    y, cb, cr = _rgb_to_ycbcr(rgb, "bt2020nc", axis=0)
    y_hdr = bt2446a_expand_luma(y)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(y > 0, 1.075 * y_hdr / y, 1.0)
    rgb_hdr = _ycbcr_to_rgb(y_hdr, cb * scale, cr * scale, "bt2020nc", axis=0) / 1000.0
    return np.clip(rgb_hdr, 0.0, 1.0) ** BT1886_GAMMA


def bt2446c_tone_curve(y_nits: ArrayLike) -> np.ndarray:
    """BT.2446 Method C luminance curve (cd/m² -> cd/m²): ``k1 Y`` below ``Y_ip = 69.849``, else
    ``k2 ln(Y / Y_ip - k3) + k4``. 203 -> 90.6523, 1000 -> 118.3773."""
    y = np.maximum(as_float(y_nits), 0.0)
    log_part = BT2446C_K2 * np.log(np.maximum(y / BT2446C_Y_IP, 1.0) - BT2446C_K3) + BT2446C_K4
    return np.where(y < BT2446C_Y_IP, BT2446C_K1 * y, log_part)


def bt2446c_inverse_tone_curve(y_sdr_nits: ArrayLike) -> np.ndarray:
    """Inverse of :func:`bt2446c_tone_curve`: ``Y / k1`` below ``k1 Y_ip``, else ``Y_ip (exp((Y - k4) / k2) + k3)``."""
    y = np.maximum(as_float(y_sdr_nits), 0.0)
    knee = BT2446C_K1 * BT2446C_Y_IP
    return np.where(y < knee, y / BT2446C_K1, BT2446C_Y_IP * (np.exp((y - BT2446C_K4) / BT2446C_K2) + BT2446C_K3))


def _crosstalk(alpha: float) -> np.ndarray:
    if not 0.0 <= alpha < 1.0 / 3.0:
        raise ColorError(f"crosstalk alpha must be in [0, 1/3), got {alpha}")
    return np.full((3, 3), alpha) + np.eye(3) * (1.0 - 3.0 * alpha)


def _scale_luminance(rgb_nits: np.ndarray, curve, alpha: float) -> np.ndarray:
    rgb = apply_matrix(_crosstalk(alpha), np.maximum(as_float(rgb_nits), 0.0))
    k_r, k_g, k_b = LUMINANCE_BT2020
    y = k_r * rgb[0] + k_g * rgb[1] + k_b * rgb[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(y > 0, curve(y) / y, 0.0)
    return np.maximum(apply_matrix(np.linalg.inv(_crosstalk(alpha)), rgb * ratio), 0.0)


def bt2446c_hdr_to_sdr(rgb_nits_2020: ArrayLike, *, alpha: float = 0.0) -> np.ndarray:
    """BT.2446 Method C HDR -> SDR: linear BT.2020 RGB [3, ...] in cd/m² -> SDR linear BT.2020 RGB in cd/m²
    (the curve on Y, x and y kept; optional crosstalk ``alpha`` in [0, 1/3) applied before and inverted after)."""
    return _scale_luminance(rgb_nits_2020, bt2446c_tone_curve, alpha)


def bt2446c_sdr_to_hdr(rgb_nits_2020: ArrayLike, *, alpha: float = 0.0) -> np.ndarray:
    """BT.2446 Method C SDR -> HDR: the inverse of :func:`bt2446c_hdr_to_sdr` (cd/m² in, cd/m² out)."""
    return _scale_luminance(rgb_nits_2020, bt2446c_inverse_tone_curve, alpha)


def reinhard(x: ArrayLike, *, white: float = 4.0) -> np.ndarray:
    """Extended Reinhard curve on relative linear light: ``x (1 + x / white²) / (1 + x)``, maps [0, white] onto
    [0, 1] monotonically (clipped to [0, 1])."""
    x = np.maximum(as_float(x), 0.0)
    return np.clip(x * (1.0 + x / (white * white)) / (1.0 + x), 0.0, 1.0)


def hable(x: ArrayLike, *, white: float = 11.2) -> np.ndarray:
    """Hable ("Uncharted 2") filmic curve on relative linear light, normalised so ``white`` maps to 1
    (A..F = 0.15, 0.50, 0.10, 0.20, 0.02, 0.30), clipped to [0, 1]."""

    def curve(v):
        a, b, c, d, e, f = 0.15, 0.50, 0.10, 0.20, 0.02, 0.30
        return (v * (a * v + c * b) + d * e) / (v * (a * v + b) + d * f) - e / f

    x = np.maximum(as_float(x), 0.0)
    return np.clip(curve(x) / curve(white), 0.0, 1.0)


def _encode_sdr(rgb_relative_2020: np.ndarray, gamut_mapping: str) -> np.ndarray:
    """Relative linear BT.2020 (1 = 100 cd/m² SDR white) -> BT.709 BT.1886 R'G'B' in [0, 1]."""
    rgb_709 = np.clip(gamut_map_bt2020_to_bt709(rgb_relative_2020, method=gamut_mapping), 0.0, 1.0)
    return bt1886_inverse_eotf(rgb_709 * 100.0, white_nits=100.0)


def hdr_to_sdr_rgb(
    rgb_pq_2020: ArrayLike,
    *,
    method: str = "bt2390",
    source_max_nits: float = 1000.0,
    gamut_mapping: str = "desaturate",
) -> np.ndarray:
    """HDR10 -> SDR: PQ BT.2020 R'G'B' [3, ...] in [0, 1] -> BT.709 R'G'B' [3, ...] in [0, 1] for a BT.1886 display
    with 100 cd/m² white (``V = (L / 100)^(1/2.4)``), same dtype as the input when float.

    Tone mapping (SDR white = 100 cd/m²), then BT.2020 -> BT.709 :func:`gamut_map_bt2020_to_bt709`, clipping, BT.1886:

    - ``"bt2390"``: the EETF (source 0..``source_max_nits`` -> 0..100 cd/m²) on max(R, G, B) in PQ, all three
      channels scaled by the same factor (keeps hue and saturation, no channel clips).
    - ``"bt2446a"``: Method A on light relative to ``source_max_nits`` (gives BT.2020 gamma SDR, linearised here).
    - ``"bt2446c"``: Method C on cd/m² (highlights above 100 cd/m² clip).
    """
    rgb_pq = as_float(rgb_pq_2020)
    check_channels(rgb_pq)
    nits = np.minimum(pq_eotf(rgb_pq), source_max_nits)
    if method == "bt2390":
        peak = np.max(nits, axis=0)
        peak_mapped = pq_eotf(bt2390_eetf(pq_inverse_eotf(peak), source_max_nits=source_max_nits))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(peak > 0, peak_mapped / peak, 0.0)
        relative = nits * ratio / 100.0
    elif method == "bt2446a":
        sdr_gamma = bt2446a_hdr_to_sdr(nits / source_max_nits, source_max_nits=source_max_nits)
        relative = sdr_gamma**BT1886_GAMMA
    elif method == "bt2446c":
        relative = bt2446c_hdr_to_sdr(nits) / 100.0
    else:
        raise ColorError(f"unknown HDR -> SDR method {method!r}: use one of {list(HDR_TO_SDR_METHODS)}")
    return _encode_sdr(relative, gamut_mapping).astype(rgb_pq.dtype, copy=False)


def sdr_to_hdr_rgb(rgb_sdr_709: ArrayLike, *, method: str = "bt2446a") -> np.ndarray:
    """SDR -> HDR10 baseline: BT.709 R'G'B' [3, ...] (BT.1886, 100 cd/m² white) -> PQ BT.2020 R'G'B' [3, ...].

    ``"bt2446a"``: the SDR is moved into BT.2020 (linear 2.4, BT.2087 matrix, 1/2.4), expanded by Method A to a
    1000 cd/m² peak. ``"bt2446c"``: Method C's inverse curve on the BT.2020 luminance in cd/m².
    """
    rgb = np.clip(as_float(rgb_sdr_709), 0.0, 1.0)
    check_channels(rgb)
    linear_2020 = np.maximum(convert_primaries(rgb**BT1886_GAMMA, "bt709", "bt2020"), 0.0)
    if method == "bt2446a":
        nits = bt2446a_sdr_to_hdr(linear_2020 ** (1.0 / BT1886_GAMMA)) * 1000.0
    elif method == "bt2446c":
        nits = bt2446c_sdr_to_hdr(linear_2020 * 100.0)
    else:
        raise ColorError(f"unknown SDR -> HDR method {method!r}: use one of {list(SDR_TO_HDR_METHODS)}")
    return pq_inverse_eotf(nits).astype(rgb.dtype, copy=False)

