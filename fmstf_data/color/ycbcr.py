"""Y'CbCr code values <-> float Y'CbCr <-> R'G'B' (numpy), and 4:2:0 chroma resampling.

Standards: ITU-R BT.2020 / BT.2100 (non-constant luminance) and ITU-R BT.709 matrices; code value ranges of
BT.2100 Table 9 / BT.709 §4, generalised to any bit depth n in 8..16:

- narrow ("limited", "tv") range: ``Y' = (D - 16·2^(n-8)) / (219·2^(n-8))``,
  ``C = (D - 128·2^(n-8)) / (224·2^(n-8))`` (10 bit: ``(D - 64) / 876`` and ``(D - 512) / 896``); nominal codes
  16..235 / 16..240 scaled by ``2^(n-8)``.
- full ("pc") range: ``Y' = D / (2^n - 1)``, ``C = (D - 2^(n-1)) / (2^n - 1)``; codes 0 .. 2^n - 1.

Float Y' is nominally in [0, 1], Cb and Cr around 0 (nominally [-0.5, 0.5]). R'G'B' is gamma- or PQ-encoded: these
conversions are matrix-only and do not touch transfer functions.

Chroma siting and filters (4:2:0, H.264/HEVC default ``chroma_sample_loc_type = 0``, "left", also MPEG-2's):
chroma sample (i, j) sits horizontally on luma column 2j and vertically half-way between luma rows 2i and 2i+1.

- :func:`upsample_chroma_420`: separable linear interpolation at those positions, with edge replication: luma column
  2j takes chroma column j, column 2j+1 the mean of j and j+1; luma row 2i takes ``0.75 c[i] + 0.25 c[i-1]``, row 2i+1
  ``0.75 c[i] + 0.25 c[i+1]`` (indices clamped at the edges).
- :func:`downsample_chroma_420`: the matching average, horizontal [1, 2, 1]/4 centred on even columns times
  vertical [1, 1]/2 over row pairs, with edge replication (odd sizes repeat the last row/column).

Luma sizes may be odd: chroma planes are ``ceil(h/2) x ceil(w/2)``. Planes may carry any leading batch dimensions
(``[..., h, w]``). The torch versions, with the same names, are in :mod:`fmstf_data.color.torch_ops`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from fmstf_data.color._common import as_float, check_channels
from fmstf_data.color.constants import luma_coefficients, ycbcr_scales
from fmstf_data.errors import ColorError

MIN_BIT_DEPTH = 8
MAX_BIT_DEPTH = 16


@dataclass(frozen=True)
class CodeRange:
    """How float Y'CbCr maps to integer codes at one bit depth and range: ``D = offset + scale * value``."""

    bit_depth: int
    full_range: bool
    y_offset: float
    y_scale: float
    c_offset: float
    c_scale: float
    y_min: int
    y_max: int
    c_min: int
    c_max: int

    def __post_init__(self) -> None:
        check_bit_depth(self.bit_depth)

    @property
    def code_dtype(self) -> np.dtype:
        """uint8 for 8-bit codes, uint16 above."""
        return np.dtype(np.uint8) if self.bit_depth == 8 else np.dtype(np.uint16)


def check_bit_depth(bit_depth: int) -> int:
    """Return ``bit_depth`` if it is an int in 8..16, else raise ColorError."""
    if isinstance(bit_depth, bool) or not isinstance(bit_depth, (int, np.integer)):
        raise ColorError(f"bit_depth must be an integer in {MIN_BIT_DEPTH}..{MAX_BIT_DEPTH}, got {bit_depth!r}")
    if not MIN_BIT_DEPTH <= bit_depth <= MAX_BIT_DEPTH:
        raise ColorError(f"unsupported bit depth {bit_depth}: use {MIN_BIT_DEPTH}..{MAX_BIT_DEPTH} (8 SDR, 10 HDR10)")
    return int(bit_depth)


def code_range(bit_depth: int, full_range: bool) -> CodeRange:
    """The :class:`CodeRange` of ``bit_depth`` bits, narrow (``full_range=False``) or full range."""
    n = check_bit_depth(bit_depth)
    if full_range:
        top = 2**n - 1
        return CodeRange(n, True, 0.0, float(top), float(2 ** (n - 1)), float(top), 0, top, 0, top)
    s = 2 ** (n - 8)
    return CodeRange(n, False, 16.0 * s, 219.0 * s, 128.0 * s, 224.0 * s, 16 * s, 235 * s, 16 * s, 240 * s)


def codes_to_ycbcr(
    y: ArrayLike, cb: ArrayLike, cr: ArrayLike, *, bit_depth: int, full_range: bool, dtype: DTypeLike = np.float64
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer codes -> float (Y' nominally [0, 1], Cb, Cr around 0), in ``dtype``. Shapes are kept."""
    rng = code_range(bit_depth, full_range)
    dtype = np.dtype(dtype)
    out_y = (np.asarray(y).astype(dtype) - dtype.type(rng.y_offset)) / dtype.type(rng.y_scale)
    out_cb = (np.asarray(cb).astype(dtype) - dtype.type(rng.c_offset)) / dtype.type(rng.c_scale)
    out_cr = (np.asarray(cr).astype(dtype) - dtype.type(rng.c_offset)) / dtype.type(rng.c_scale)
    return out_y, out_cb, out_cr


def _to_codes(value: np.ndarray, offset: float, scale: float, low: int, high: int, dtype: np.dtype) -> np.ndarray:
    codes = np.floor(np.asarray(value, dtype=np.float64) * scale + (offset + 0.5))  # round half up, in float64
    return np.clip(codes, low, high).astype(dtype)


def ycbcr_to_codes(
    y: ArrayLike, cb: ArrayLike, cr: ArrayLike, *, bit_depth: int, full_range: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float Y'CbCr -> integer codes: ``round(offset + scale * value)`` (half up), clipped to the nominal range
    (narrow: 16..235 / 16..240 times ``2^(n-8)``; full: 0..2^n-1). uint8 for 8 bits, uint16 above."""
    rng = code_range(bit_depth, full_range)
    return (
        _to_codes(np.asarray(y), rng.y_offset, rng.y_scale, rng.y_min, rng.y_max, rng.code_dtype),
        _to_codes(np.asarray(cb), rng.c_offset, rng.c_scale, rng.c_min, rng.c_max, rng.code_dtype),
        _to_codes(np.asarray(cr), rng.c_offset, rng.c_scale, rng.c_min, rng.c_max, rng.code_dtype),
    )


def inverse_matrix_coefficients(matrix: str) -> tuple[float, float, float, float]:
    """(cr_to_r, cb_to_g, cr_to_g, cb_to_b): ``R' = Y' + a Cr``, ``G' = Y' - b Cb - c Cr``, ``B' = Y' + d Cb``.

    BT.2020: (1.4746, 0.16455, 0.57135, 1.8814) to the 5 digits of the standard; computed exactly from Kr, Kb.
    """
    k_r, k_g, k_b = luma_coefficients(matrix)
    cb_scale, cr_scale = ycbcr_scales(matrix)
    return cr_scale, k_b * cb_scale / k_g, k_r * cr_scale / k_g, cb_scale


def _ycbcr_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray, matrix: str, axis: int) -> np.ndarray:
    cr_to_r, cb_to_g, cr_to_g, cb_to_b = inverse_matrix_coefficients(matrix)
    r = y + cr_to_r * cr
    g = y - cb_to_g * cb - cr_to_g * cr  # Y' enters with weight exactly 1: grey stays exactly grey
    b = y + cb_to_b * cb
    return np.stack([r, g, b], axis=axis)


def _rgb_to_ycbcr(rgb: np.ndarray, matrix: str, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    k_r, k_g, k_b = luma_coefficients(matrix)
    cb_scale, cr_scale = ycbcr_scales(matrix)
    check_channels(rgb, axis)
    r, g, b = np.moveaxis(rgb, axis, 0)
    y = k_r * r + k_g * g + k_b * b
    return y, (b - y) / cb_scale, (r - y) / cr_scale


def ycbcr_to_rgb(y: ArrayLike, cb: ArrayLike, cr: ArrayLike, matrix: str) -> np.ndarray:
    """Float Y'CbCr (same shapes [...]) -> R'G'B' [3, ...] (channel axis first), no clipping."""
    y, cb, cr = as_float(y), as_float(cb), as_float(cr)
    if not (y.shape == cb.shape == cr.shape):
        raise ColorError(f"Y', Cb, Cr shapes differ: {y.shape}, {cb.shape}, {cr.shape} (upsample chroma first)")
    return _ycbcr_to_rgb(y, cb, cr, matrix, axis=0)


def rgb_to_ycbcr(rgb: ArrayLike, matrix: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """R'G'B' [3, ...] (channel axis first) -> float (Y', Cb, Cr), each [...]; no clipping."""
    return _rgb_to_ycbcr(as_float(rgb), matrix, axis=0)


def chroma_shape(height: int, width: int) -> tuple[int, int]:
    """4:2:0 chroma plane size for a luma plane of ``height x width``: (ceil(h/2), ceil(w/2))."""
    return (height + 1) // 2, (width + 1) // 2


def _check_chroma(plane_shape: tuple[int, ...], height: int, width: int) -> None:
    if len(plane_shape) < 2 or tuple(plane_shape[-2:]) != chroma_shape(height, width):
        raise ColorError(
            f"chroma plane of shape {tuple(plane_shape)} does not fit luma {height}x{width} in 4:2:0: "
            f"expected [..., {chroma_shape(height, width)[0]}, {chroma_shape(height, width)[1]}]"
        )


def upsample_chroma_420(plane: ArrayLike, out_height: int, out_width: int) -> np.ndarray:
    """4:2:0 chroma [..., ceil(h/2), ceil(w/2)] -> [..., out_height, out_width] (float), "left" siting, linear
    interpolation with edge replication (see the module docstring).

    Rows: luma row 2i = ``0.25 c[i-1] + 0.75 c[i]`` (``c[0]`` for i = 0), row 2i+1 = ``0.75 c[i] + 0.25 c[i+1]``
    (``c[last]`` for the last); columns: luma column 2j = ``c[j]``, 2j+1 = ``0.5 c[j] + 0.5 c[j+1]`` (``c[last]``).
    """
    plane = as_float(plane)
    _check_chroma(plane.shape, out_height, out_width)
    even = np.concatenate([plane[..., :1, :], 0.25 * plane[..., :-1, :] + 0.75 * plane[..., 1:, :]], axis=-2)
    odd = np.concatenate([0.75 * plane[..., :-1, :] + 0.25 * plane[..., 1:, :], plane[..., -1:, :]], axis=-2)
    rows = np.stack([even, odd], axis=-2).reshape(*plane.shape[:-2], 2 * plane.shape[-2], plane.shape[-1])
    rows = rows[..., :out_height, :]
    odd = np.concatenate([0.5 * rows[..., :-1] + 0.5 * rows[..., 1:], rows[..., -1:]], axis=-1)
    columns = np.stack([rows, odd], axis=-1).reshape(*rows.shape[:-1], 2 * rows.shape[-1])
    return columns[..., :out_width]


def downsample_chroma_420(plane: ArrayLike) -> np.ndarray:
    """Full-resolution chroma [..., h, w] (float) -> 4:2:0 [..., ceil(h/2), ceil(w/2)]: horizontal [1, 2, 1]/4 on even
    columns times vertical [1, 1]/2 over row pairs, edges replicated (odd sizes repeat the last row/column)."""
    plane = as_float(plane)
    if plane.ndim < 2:
        raise ColorError(f"chroma plane must be [..., h, w], got shape {plane.shape}")
    height, width = plane.shape[-2:]
    bottom = plane[..., 1::2, :]
    if height % 2:
        bottom = np.concatenate([bottom, plane[..., -1:, :]], axis=-2)
    rows = (plane[..., 0::2, :] + bottom) / 2
    centre, right = rows[..., 0::2], rows[..., 1::2]
    if width % 2:
        right = np.concatenate([right, rows[..., -1:]], axis=-1)
    left = np.concatenate([rows[..., :1], rows[..., 1::2][..., : centre.shape[-1] - 1]], axis=-1)
    return (left + 2 * centre + right) / 4


def _check_codes(plane: np.ndarray, bit_depth: int, name: str) -> None:
    if np.issubdtype(plane.dtype, np.integer) and plane.size:
        low, high = int(plane.min()), int(plane.max())
        if low < 0 or high > 2**bit_depth - 1:
            raise ColorError(
                f"{name} codes span {low}..{high}, outside 0..{2**bit_depth - 1} of {bit_depth}-bit video: "
                "wrong bit_depth?"
            )


def planes_to_rgb(
    y: ArrayLike,
    cb: ArrayLike,
    cr: ArrayLike,
    *,
    bit_depth: int,
    matrix: str,
    full_range: bool,
    out_dtype: DTypeLike = np.float32,
) -> np.ndarray:
    """4:2:0 code planes -> R'G'B' [..., 3, h, w] in [0, 1] (clipped), the converter the loader and model use.

    ``y``: integer codes [..., h, w] (uint8 / uint16, or floats holding codes); ``cb``, ``cr``:
    [..., ceil(h/2), ceil(w/2)]. Computed in float32 (float64 when ``out_dtype`` is float64). Exact at the nominal
    codes: Y = 940, Cb = Cr = 512 (10-bit narrow) gives exactly 1.0 in all three channels.
    """
    luma_coefficients(matrix)
    check_bit_depth(bit_depth)
    y, cb, cr = np.asarray(y), np.asarray(cb), np.asarray(cr)
    if y.ndim < 2:
        raise ColorError(f"luma plane must be [..., h, w], got shape {y.shape}")
    height, width = y.shape[-2:]
    for name, plane in (("cb", cb), ("cr", cr)):
        _check_chroma(plane.shape, height, width)
        if plane.shape[:-2] != y.shape[:-2]:
            raise ColorError(f"{name} batch shape {plane.shape[:-2]} differs from luma's {y.shape[:-2]}")
    for name, plane in (("y", y), ("cb", cb), ("cr", cr)):
        _check_codes(plane, bit_depth, name)
    compute = np.dtype(np.float64) if np.dtype(out_dtype) == np.float64 else np.dtype(np.float32)
    fy, fcb, fcr = codes_to_ycbcr(y, cb, cr, bit_depth=bit_depth, full_range=full_range, dtype=compute)
    fcb = upsample_chroma_420(fcb, height, width)
    fcr = upsample_chroma_420(fcr, height, width)
    rgb = _ycbcr_to_rgb(fy, fcb, fcr, matrix, axis=-3)
    np.clip(rgb, 0.0, 1.0, out=rgb)
    return rgb.astype(out_dtype, copy=False)


def rgb_to_planes(
    rgb: ArrayLike, *, bit_depth: int, matrix: str, full_range: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """R'G'B' [..., 3, h, w] (clipped to [0, 1] first) -> 4:2:0 integer code planes (y [..., h, w], cb and cr
    [..., ceil(h/2), ceil(w/2)]), uint8 for 8 bits, uint16 above. For making synthetic video."""
    rgb = np.clip(as_float(rgb), 0.0, 1.0)
    if rgb.ndim < 3:
        raise ColorError(f"rgb must be [..., 3, h, w], got shape {rgb.shape}")
    fy, fcb, fcr = _rgb_to_ycbcr(rgb, matrix, axis=-3)
    fcb, fcr = downsample_chroma_420(fcb), downsample_chroma_420(fcr)
    return ycbcr_to_codes(fy, fcb, fcr, bit_depth=bit_depth, full_range=full_range)


def rgb_to_codes444(
    rgb: ArrayLike, *, bit_depth: int, matrix: str, full_range: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-pixel R'G'B' [3, ...] (channel axis first) -> integer codes (y, cb, cr), each [...]; no subsampling.

    BT.2020 red (1, 0, 0) gives (294, 387, 960) at 10-bit narrow range, (269, 369, 1023) at full range.
    """
    fy, fcb, fcr = rgb_to_ycbcr(rgb, matrix)
    return ycbcr_to_codes(fy, fcb, fcr, bit_depth=bit_depth, full_range=full_range)


def codes444_to_rgb(
    y: ArrayLike, cb: ArrayLike, cr: ArrayLike, *, bit_depth: int, matrix: str, full_range: bool, clip: bool = True
) -> np.ndarray:
    """Per-pixel integer codes (same shapes [...]) -> float64 R'G'B' [3, ...], clipped to [0, 1] when ``clip``."""
    rgb = ycbcr_to_rgb(*codes_to_ycbcr(y, cb, cr, bit_depth=bit_depth, full_range=full_range), matrix)
    return np.clip(rgb, 0.0, 1.0) if clip else rgb
