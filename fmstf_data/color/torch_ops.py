"""Torch versions of the colour core, with the numpy names and semantics (see the numpy modules for the standards).

Every function takes tensors (or anything ``torch.as_tensor`` accepts) of any shape on any device and uses only
standard differentiable torch ops, so it runs on the GPU and inside autograd. Float32/float64 tensors keep their
dtype; other inputs become float64 (as in numpy). In float64 the results agree with numpy to ~1e-12.
Differences from numpy: :func:`ycbcr_to_codes` and :func:`rgb_to_planes` return uint8 (8 bit) or **int32**
(9..16 bit) tensors, as torch's uint16 lacks most ops; :func:`planes_to_rgb` does not check that codes fit the bit
depth (that would force a device sync).
"""

from __future__ import annotations

import numpy as np
import torch

from fmstf_data.color.constants import (
    ICTCP_LMS_P_TO_ICTCP,
    ICTCP_RGB2020_TO_LMS,
    LUMINANCE_BT709,
    PQ,
    luma_coefficients,
    primaries_matrix,
    ycbcr_scales,
)
from fmstf_data.color.gamut import GAMUT_MAPPING_METHODS
from fmstf_data.color.ictcp import DELTA_E_ITP_SCALE
from fmstf_data.color.tonemap import HDR_TO_SDR_METHODS, _check_nits, _rho
from fmstf_data.color.transfer import (
    BT709_ALPHA,
    BT709_BETA,
    BT709_EXPONENT,
    BT709_LINEAR_SLOPE,
    BT1886_GAMMA,
    bt1886_parameters,
)
from fmstf_data.color.transfer import pq_inverse_eotf as _np_pq_inverse_eotf
from fmstf_data.color.ycbcr import (
    _check_chroma,
    check_bit_depth,
    code_range,
    inverse_matrix_coefficients,
)
from fmstf_data.errors import ColorError

Tensor = torch.Tensor


def as_float(x) -> Tensor:
    """``x`` as a floating tensor: float32/float64 keep their dtype, anything else becomes float64."""
    t = torch.as_tensor(x)
    return t if t.dtype in (torch.float32, torch.float64) else t.to(torch.float64)


def _matrix(m: np.ndarray, like: Tensor) -> Tensor:
    return torch.tensor(np.array(m), dtype=like.dtype, device=like.device)


def _check_channels(x: Tensor, dim: int = 0, what: str = "rgb") -> None:
    if x.dim() == 0 or x.shape[dim] != 3:
        raise ColorError(f"{what} must have 3 channels on axis {dim}, got shape {tuple(x.shape)}")


def _pow(x: Tensor, exponent: float) -> Tensor:
    """``x ** exponent`` for x > 0 and 0 elsewhere, with finite gradients at 0 (for exponents below 1, a plain
    ``clamp(0) ** exponent`` has an infinite derivative at 0 that turns into NaN gradients)."""
    positive = x > 0
    return torch.where(positive, torch.where(positive, x, torch.ones_like(x)) ** exponent, torch.zeros_like(x))


def apply_matrix(m: np.ndarray, x) -> Tensor:
    """``m @ x`` over the channel axis 0 ([3, ...] -> [3, ...])."""
    x = as_float(x)
    _check_channels(x)
    return torch.einsum("ij,j...->i...", _matrix(m, x), x)


# ---- transfer functions ----------------------------------------------------------------------------------------


def pq_eotf(e) -> Tensor:
    """SMPTE ST 2084 EOTF: PQ E' (clipped to [0, 1]) -> cd/m²."""
    p = _pow(as_float(e).clamp(0.0, 1.0), 1.0 / PQ.m_2)
    return PQ.peak_nits * _pow((p - PQ.c_1) / (PQ.c_2 - PQ.c_3 * p), 1.0 / PQ.m_1)


def pq_inverse_eotf(nits) -> Tensor:
    """SMPTE ST 2084 inverse EOTF: cd/m² (clipped to [0, 10000]) -> PQ E'."""
    y_m1 = _pow((as_float(nits) / PQ.peak_nits).clamp(0.0, 1.0), PQ.m_1)
    return ((PQ.c_1 + PQ.c_2 * y_m1) / (1.0 + PQ.c_3 * y_m1)) ** PQ.m_2


def bt1886_eotf(v, white_nits: float = 100.0, black_nits: float = 0.0) -> Tensor:
    """ITU-R BT.1886 EOTF: V -> cd/m²."""
    a, b = bt1886_parameters(white_nits, black_nits)
    return a * _pow(as_float(v) + b, BT1886_GAMMA)


def bt1886_inverse_eotf(nits, white_nits: float = 100.0, black_nits: float = 0.0) -> Tensor:
    """Inverse BT.1886 EOTF: cd/m² -> V."""
    a, b = bt1886_parameters(white_nits, black_nits)
    return _pow(as_float(nits) / a, 1.0 / BT1886_GAMMA) - b


def bt709_oetf(l) -> Tensor:  # noqa: E741
    """ITU-R BT.709 OETF: relative scene light -> V."""
    l = as_float(l)  # noqa: E741
    power = BT709_ALPHA * l.clamp_min(BT709_BETA) ** BT709_EXPONENT - (BT709_ALPHA - 1.0)
    return torch.where(l >= BT709_BETA, power, BT709_LINEAR_SLOPE * l)


def bt709_inverse_oetf(v) -> Tensor:
    """Inverse BT.709 OETF: V -> relative scene light."""
    v = as_float(v)
    threshold = BT709_LINEAR_SLOPE * BT709_BETA
    power = ((v.clamp_min(threshold) + (BT709_ALPHA - 1.0)) / BT709_ALPHA) ** (1.0 / BT709_EXPONENT)
    return torch.where(v >= threshold, power, v / BT709_LINEAR_SLOPE)


# ---- Y'CbCr ----------------------------------------------------------------------------------------------------


def codes_to_ycbcr(y, cb, cr, *, bit_depth: int, full_range: bool, dtype: torch.dtype = torch.float64):
    """Integer codes -> float (Y', Cb, Cr) in ``dtype``."""
    rng = code_range(bit_depth, full_range)
    return (
        (torch.as_tensor(y).to(dtype) - rng.y_offset) / rng.y_scale,
        (torch.as_tensor(cb).to(dtype) - rng.c_offset) / rng.c_scale,
        (torch.as_tensor(cr).to(dtype) - rng.c_offset) / rng.c_scale,
    )


def ycbcr_to_codes(y, cb, cr, *, bit_depth: int, full_range: bool):
    """Float Y'CbCr -> codes rounded half up and clipped to the nominal range (uint8, or int32 above 8 bits)."""
    rng = code_range(bit_depth, full_range)
    dtype = torch.uint8 if rng.bit_depth == 8 else torch.int32

    def to_codes(value, offset: float, scale: float, low: int, high: int) -> Tensor:
        return torch.floor(as_float(value) * scale + (offset + 0.5)).clamp(low, high).to(dtype)

    return (
        to_codes(y, rng.y_offset, rng.y_scale, rng.y_min, rng.y_max),
        to_codes(cb, rng.c_offset, rng.c_scale, rng.c_min, rng.c_max),
        to_codes(cr, rng.c_offset, rng.c_scale, rng.c_min, rng.c_max),
    )


def _ycbcr_to_rgb(y: Tensor, cb: Tensor, cr: Tensor, matrix: str, dim: int) -> Tensor:
    cr_to_r, cb_to_g, cr_to_g, cb_to_b = inverse_matrix_coefficients(matrix)
    return torch.stack([y + cr_to_r * cr, y - cb_to_g * cb - cr_to_g * cr, y + cb_to_b * cb], dim=dim)


def _rgb_to_ycbcr(rgb: Tensor, matrix: str, dim: int):
    k_r, k_g, k_b = luma_coefficients(matrix)
    cb_scale, cr_scale = ycbcr_scales(matrix)
    _check_channels(rgb, dim)
    r, g, b = rgb.unbind(dim)
    y = k_r * r + k_g * g + k_b * b
    return y, (b - y) / cb_scale, (r - y) / cr_scale


def ycbcr_to_rgb(y, cb, cr, matrix: str) -> Tensor:
    """Float Y'CbCr [...] -> R'G'B' [3, ...], no clipping."""
    y, cb, cr = as_float(y), as_float(cb), as_float(cr)
    if not (y.shape == cb.shape == cr.shape):
        raise ColorError(f"Y', Cb, Cr shapes differ: {tuple(y.shape)}, {tuple(cb.shape)}, {tuple(cr.shape)}")
    return _ycbcr_to_rgb(y, cb, cr, matrix, dim=0)


def rgb_to_ycbcr(rgb, matrix: str):
    """R'G'B' [3, ...] -> float (Y', Cb, Cr), each [...]."""
    return _rgb_to_ycbcr(as_float(rgb), matrix, dim=0)


def upsample_chroma_420(plane, out_height: int, out_width: int) -> Tensor:
    """4:2:0 chroma [..., ceil(h/2), ceil(w/2)] -> [..., out_height, out_width]; "left" siting, linear, edges
    replicated (the filter of :func:`fmstf_data.color.ycbcr.upsample_chroma_420`)."""
    plane = as_float(plane)
    _check_chroma(plane.shape, out_height, out_width)
    even = torch.cat([plane[..., :1, :], 0.25 * plane[..., :-1, :] + 0.75 * plane[..., 1:, :]], dim=-2)
    odd = torch.cat([0.75 * plane[..., :-1, :] + 0.25 * plane[..., 1:, :], plane[..., -1:, :]], dim=-2)
    rows = torch.stack([even, odd], dim=-2).reshape(*plane.shape[:-2], 2 * plane.shape[-2], plane.shape[-1])
    rows = rows[..., :out_height, :]
    odd = torch.cat([0.5 * rows[..., :-1] + 0.5 * rows[..., 1:], rows[..., -1:]], dim=-1)
    return torch.stack([rows, odd], dim=-1).reshape(*rows.shape[:-1], 2 * rows.shape[-1])[..., :out_width]


def downsample_chroma_420(plane) -> Tensor:
    """Chroma [..., h, w] -> [..., ceil(h/2), ceil(w/2)]: [1, 2, 1]/4 horizontal x [1, 1]/2 vertical, edges
    replicated."""
    plane = as_float(plane)
    if plane.dim() < 2:
        raise ColorError(f"chroma plane must be [..., h, w], got shape {tuple(plane.shape)}")
    height, width = plane.shape[-2:]
    bottom = plane[..., 1::2, :]
    if height % 2:
        bottom = torch.cat([bottom, plane[..., -1:, :]], dim=-2)
    rows = (plane[..., 0::2, :] + bottom) / 2
    centre, right = rows[..., 0::2], rows[..., 1::2]
    if width % 2:
        right = torch.cat([right, rows[..., -1:]], dim=-1)
    left = torch.cat([rows[..., :1], rows[..., 1::2][..., : centre.shape[-1] - 1]], dim=-1)
    return (left + 2 * centre + right) / 4


def planes_to_rgb(y, cb, cr, *, bit_depth: int, matrix: str, full_range: bool, out_dtype=torch.float32) -> Tensor:
    """4:2:0 code planes (y [..., h, w], cb/cr [..., ceil(h/2), ceil(w/2)], any integer dtype incl. uint16) ->
    R'G'B' [..., 3, h, w] in [0, 1], on the planes' device. Computed in float32 (float64 if ``out_dtype`` is)."""
    luma_coefficients(matrix)
    check_bit_depth(bit_depth)
    y, cb, cr = torch.as_tensor(y), torch.as_tensor(cb), torch.as_tensor(cr)
    if y.dim() < 2:
        raise ColorError(f"luma plane must be [..., h, w], got shape {tuple(y.shape)}")
    height, width = y.shape[-2:]
    for name, plane in (("cb", cb), ("cr", cr)):
        _check_chroma(plane.shape, height, width)
        if plane.shape[:-2] != y.shape[:-2]:
            raise ColorError(f"{name} batch shape {tuple(plane.shape[:-2])} differs from luma's {tuple(y.shape[:-2])}")
    compute = torch.float64 if out_dtype == torch.float64 else torch.float32
    fy, fcb, fcr = codes_to_ycbcr(y, cb, cr, bit_depth=bit_depth, full_range=full_range, dtype=compute)
    fcb, fcr = upsample_chroma_420(fcb, height, width), upsample_chroma_420(fcr, height, width)
    return _ycbcr_to_rgb(fy, fcb, fcr, matrix, dim=-3).clamp_(0.0, 1.0).to(out_dtype)


def rgb_to_planes(rgb, *, bit_depth: int, matrix: str, full_range: bool):
    """R'G'B' [..., 3, h, w] (clipped to [0, 1]) -> 4:2:0 code planes (uint8 or int32 tensors)."""
    rgb = as_float(rgb).clamp(0.0, 1.0)
    if rgb.dim() < 3:
        raise ColorError(f"rgb must be [..., 3, h, w], got shape {tuple(rgb.shape)}")
    fy, fcb, fcr = _rgb_to_ycbcr(rgb, matrix, dim=-3)
    return ycbcr_to_codes(
        fy, downsample_chroma_420(fcb), downsample_chroma_420(fcr), bit_depth=bit_depth, full_range=full_range
    )


def rgb_to_codes444(rgb, *, bit_depth: int, matrix: str, full_range: bool):
    """Per-pixel R'G'B' [3, ...] -> codes (y, cb, cr), each [...], no subsampling."""
    return ycbcr_to_codes(*rgb_to_ycbcr(rgb, matrix), bit_depth=bit_depth, full_range=full_range)


def codes444_to_rgb(y, cb, cr, *, bit_depth: int, matrix: str, full_range: bool, clip: bool = True) -> Tensor:
    """Per-pixel codes [...] -> float64 R'G'B' [3, ...], clipped to [0, 1] when ``clip``."""
    rgb = ycbcr_to_rgb(*codes_to_ycbcr(y, cb, cr, bit_depth=bit_depth, full_range=full_range), matrix)
    return rgb.clamp(0.0, 1.0) if clip else rgb


# ---- gamut, ICtCp ----------------------------------------------------------------------------------------------


def convert_primaries(rgb_linear, src: str, dst: str) -> Tensor:
    """Linear RGB [3, ...] from gamut ``src`` to ``dst`` ("bt709" / "bt2020"), no clipping."""
    return apply_matrix(primaries_matrix(src, dst), rgb_linear)


def desaturate_to_gamut(rgb_linear, luminance_weights: tuple[float, float, float]) -> Tensor:
    """Towards the grey of equal luminance until no component is negative (see the numpy version)."""
    rgb = as_float(rgb_linear)
    _check_channels(rgb)
    k_r, k_g, k_b = luminance_weights
    y = k_r * rgb[0] + k_g * rgb[1] + k_b * rgb[2]
    denominator = torch.where(rgb < 0, y - rgb, torch.ones_like(rgb))
    t = torch.where(rgb < 0, -rgb / denominator, torch.zeros_like(rgb)).amax(dim=0).clamp(0.0, 1.0)
    t = torch.where(y > 0, t, torch.ones_like(t))
    return ((1.0 - t) * rgb + t * y.clamp_min(0.0)).clamp_min(0.0)


def gamut_map_bt2020_to_bt709(rgb_linear_2020, *, method: str = "desaturate") -> Tensor:
    """Linear BT.2020 [3, ...] -> linear BT.709 [3, ...] without negatives ("clip" or "desaturate")."""
    if method not in GAMUT_MAPPING_METHODS:
        raise ColorError(f"unknown gamut mapping {method!r}: use one of {list(GAMUT_MAPPING_METHODS)}")
    rgb_709 = convert_primaries(rgb_linear_2020, "bt2020", "bt709")
    return rgb_709.clamp_min(0.0) if method == "clip" else desaturate_to_gamut(rgb_709, LUMINANCE_BT709)


def ictcp_from_rgb2020_nits(rgb) -> Tensor:
    """Linear BT.2020 RGB [3, ...] in cd/m² -> ICtCp [3, ...] (BT.2100)."""
    return apply_matrix(ICTCP_LMS_P_TO_ICTCP, pq_inverse_eotf(apply_matrix(ICTCP_RGB2020_TO_LMS, rgb)))


def delta_e_itp(ictcp_a, ictcp_b) -> Tensor:
    """ΔE_ITP (BT.2124) between ICtCp [3, ...] tensors -> [...]."""
    a, b = as_float(ictcp_a), as_float(ictcp_b)
    _check_channels(a, what="ictcp_a")
    _check_channels(b, what="ictcp_b")
    d = a - b
    return DELTA_E_ITP_SCALE * _pow(d[0] ** 2 + (0.5 * d[1]) ** 2 + d[2] ** 2, 0.5)  # gradient 0 at equality


def delta_e_itp_rgb2020_nits(rgb_a, rgb_b) -> Tensor:
    """ΔE_ITP between linear BT.2020 RGB [3, ...] in cd/m² -> [...]."""
    return delta_e_itp(ictcp_from_rgb2020_nits(rgb_a), ictcp_from_rgb2020_nits(rgb_b))


# ---- tone mapping (the cheap ones) -----------------------------------------------------------------------------


def bt2390_eetf(
    e_pq, *, source_min_nits: float = 0.0, source_max_nits: float = 1000.0, target_min_nits: float = 0.0,
    target_max_nits: float = 100.0,
) -> Tensor:
    """BT.2390 EETF, PQ -> PQ (see :func:`fmstf_data.color.tonemap.bt2390_eetf`)."""
    _check_nits("source_min_nits", source_min_nits, "source_max_nits", source_max_nits)
    _check_nits("target_min_nits", target_min_nits, "target_max_nits", target_max_nits)
    e = as_float(e_pq)
    pq = lambda nits: float(_np_pq_inverse_eotf(nits))  # noqa: E731  (python floats, computed once)
    black, white = pq(source_min_nits), pq(source_max_nits)
    span = white - black
    min_lum, max_lum = (pq(target_min_nits) - black) / span, (pq(target_max_nits) - black) / span
    e1 = ((e - black) / span).clamp(0.0, 1.0)
    knee = 1.5 * max_lum - 0.5
    if knee < 1.0:
        t = ((e1 - knee) / (1.0 - knee)).clamp(0.0, 1.0)
        t2, t3 = t * t, t * t * t
        spline = (2 * t3 - 3 * t2 + 1) * knee + (t3 - 2 * t2 + t) * (1.0 - knee) + (-2 * t3 + 3 * t2) * max_lum
        e1 = torch.where(e1 < knee, e1, spline)
    return (e1 + min_lum * (1.0 - e1) ** 4) * span + black


def bt2446a_tone_curve(y_prime_hdr, *, source_max_nits: float = 1000.0, target_max_nits: float = 100.0) -> Tensor:
    """BT.2446 Method A luma curve, HDR Y' -> SDR Y' (see the numpy version)."""
    _check_nits("target_max_nits", target_max_nits, "source_max_nits", source_max_nits)
    y = as_float(y_prime_hdr).clamp_min(0.0)
    rho_hdr, rho_sdr = _rho(source_max_nits), _rho(target_max_nits)
    y_p = torch.log1p((rho_hdr - 1.0) * y) / float(np.log(rho_hdr))
    y_c = torch.where(
        y_p <= 0.7399, 1.077 * y_p, torch.where(y_p <= 0.9909, (-1.151 * y_p + 2.7811) * y_p - 0.6302, 0.5 * y_p + 0.5)
    )
    return (rho_sdr**y_c - 1.0) / (rho_sdr - 1.0)


def bt2446a_hdr_to_sdr(rgb_linear_2020, *, source_max_nits: float = 1000.0, target_max_nits: float = 100.0) -> Tensor:
    """BT.2446 Method A HDR -> SDR: relative linear BT.2020 [3, ...] -> SDR BT.2020 R'G'B' (gamma) in [0, 1]."""
    rgb = as_float(rgb_linear_2020).clamp(0.0, 1.0)
    _check_channels(rgb)
    y, cb, cr = _rgb_to_ycbcr(_pow(rgb, 1.0 / BT1886_GAMMA), "bt2020nc", dim=0)
    y_sdr = bt2446a_tone_curve(y, source_max_nits=source_max_nits, target_max_nits=target_max_nits)
    scale = torch.where(y > 0, y_sdr / (1.1 * torch.where(y > 0, y, torch.ones_like(y))), torch.zeros_like(y))
    cb, cr = cb * scale, cr * scale
    y_tmo = y_sdr - (0.1 * cr).clamp_min(0.0)
    return _ycbcr_to_rgb(y_tmo, cb, cr, "bt2020nc", dim=0).clamp(0.0, 1.0)


def hdr_to_sdr_rgb(
    rgb_pq_2020, *, method: str = "bt2390", source_max_nits: float = 1000.0, gamut_mapping: str = "desaturate"
) -> Tensor:
    """HDR10 PQ BT.2020 R'G'B' [3, ...] -> BT.709 BT.1886 R'G'B' [3, ...] in [0, 1] ("bt2390" or "bt2446a"; see
    :func:`fmstf_data.color.tonemap.hdr_to_sdr_rgb`)."""
    rgb_pq = as_float(rgb_pq_2020)
    _check_channels(rgb_pq)
    nits = pq_eotf(rgb_pq).clamp_max(source_max_nits)
    if method == "bt2390":
        peak = nits.amax(dim=0)
        mapped = pq_eotf(bt2390_eetf(pq_inverse_eotf(peak), source_max_nits=source_max_nits))
        safe_peak = torch.where(peak > 0, peak, torch.ones_like(peak))
        ratio = torch.where(peak > 0, mapped / safe_peak, torch.zeros_like(peak))
        relative = nits * ratio / 100.0
    elif method == "bt2446a":
        relative = bt2446a_hdr_to_sdr(nits / source_max_nits, source_max_nits=source_max_nits) ** BT1886_GAMMA
    else:
        supported = [m for m in HDR_TO_SDR_METHODS if m != "bt2446c"]
        raise ColorError(f"unknown or numpy-only HDR -> SDR method {method!r}: torch supports {supported}")
    rgb_709 = gamut_map_bt2020_to_bt709(relative, method=gamut_mapping).clamp(0.0, 1.0)
    return bt1886_inverse_eotf(rgb_709 * 100.0, white_nits=100.0)
