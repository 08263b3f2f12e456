"""Tests of the colour core (numpy): every golden value of reference/color-and-hdr.md, round trips, 4:2:0
resampling, errors, and cross-checks against colour-science on random values."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import fmstf_data.color as C
from fmstf_data.errors import ColorError

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # colour warns that scipy/matplotlib are missing
    import colour

RNG_SEED = 20240607
REF_2020 = "bt2020nc"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(RNG_SEED)


# ---- §1 PQ ------------------------------------------------------------------------------------------------------


def test_pq_constants_are_the_st2084_rationals():
    assert C.PQ.m_1 == 2610 / 16384 == 0.1593017578125
    assert C.PQ.m_2 == 78.84375
    assert C.PQ.c_1 == 0.8359375
    assert C.PQ.c_2 == 18.8515625
    assert C.PQ.c_3 == 18.6875


PQ_GOLDEN = [  # cd/m², PQ E', 10-bit narrow code
    (0.0, 7.310e-7, 64),
    (100.0, 0.5080784215, 509),
    (203.0, 0.5806888810, 573),
    (1000.0, 0.7518270962, 723),
    (10000.0, 1.0, 940),
]


@pytest.mark.parametrize(("nits", "e", "code"), PQ_GOLDEN)
def test_pq_golden_values(nits, e, code):
    assert C.pq_inverse_eotf(nits) == pytest.approx(e, abs=1e-10)
    assert C.pq_eotf(C.pq_inverse_eotf(nits)) == pytest.approx(nits, rel=1e-9, abs=1e-9)
    y_code, _, _ = C.ycbcr_to_codes(C.pq_inverse_eotf(nits), 0.0, 0.0, bit_depth=10, full_range=False)
    assert int(y_code) == code == round(876 * e + 64)


def test_pq_black_is_c1_power_m2_not_zero():
    assert C.pq_inverse_eotf(0.0) == pytest.approx(C.PQ.c_1**C.PQ.m_2, rel=1e-12)
    assert C.pq_inverse_eotf(0.0) == pytest.approx(7.310e-7, rel=1e-3)
    assert C.pq_eotf(0.0) == 0.0 and C.pq_eotf(1.0) == pytest.approx(10000.0, rel=1e-12)


def test_pq_matches_colour_on_random_values(rng):
    e = rng.random((4, 5, 6))
    np.testing.assert_allclose(C.pq_eotf(e), colour.models.eotf_ST2084(e), rtol=1e-10, atol=1e-9)
    nits = rng.random(1000) * 10000.0
    np.testing.assert_allclose(C.pq_inverse_eotf(nits), colour.models.eotf_inverse_ST2084(nits), rtol=1e-12)


def test_pq_clips_out_of_range_inputs_and_keeps_float32():
    assert C.pq_eotf(np.array([-0.5, 1.5])).tolist() == [0.0, pytest.approx(10000.0)]
    assert C.pq_inverse_eotf(np.array([-5.0, 20000.0])).tolist() == [pytest.approx(7.3095590e-7), 1.0]
    assert C.pq_eotf(np.zeros(3, np.float32)).dtype == np.float32
    assert C.pq_eotf(np.zeros(3, np.uint16)).dtype == np.float64


# ---- §1 code ranges and Y'CbCr ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bit_depth", "full_range", "y_limits", "c_limits"),
    [(10, False, (64, 940), (64, 960)), (8, False, (16, 235), (16, 240)), (10, True, (0, 1023), (0, 1023)),
     (8, True, (0, 255), (0, 255)), (12, False, (256, 3760), (256, 3840))],
)
def test_code_ranges_and_clipping(bit_depth, full_range, y_limits, c_limits):
    y, cb, cr = C.ycbcr_to_codes(
        np.array([-1.0, 0.0, 1.0, 2.0]), np.array([-1.0, -0.5, 0.5, 1.0]), np.array([-1.0, 0.0, 0.0, 1.0]),
        bit_depth=bit_depth, full_range=full_range,
    )
    assert y.dtype == (np.uint8 if bit_depth == 8 else np.uint16)
    assert y.tolist() == [y_limits[0], y_limits[0], y_limits[1], y_limits[1]]
    assert cb.tolist()[0] == c_limits[0] and cb.tolist()[3] == c_limits[1]
    assert cr.tolist()[1] == 2 ** (bit_depth - 1)  # zero chroma sits at the mid code in both ranges


def test_codes_to_ycbcr_formulas():
    y, cb, cr = C.codes_to_ycbcr(np.array([64, 940, 502]), np.array([64, 512, 960]), np.array([512, 512, 512]),
                                 bit_depth=10, full_range=False)
    np.testing.assert_array_equal(y, [0.0, 1.0, (502 - 64) / 876])
    np.testing.assert_array_equal(cb, [-0.5, 0.0, 0.5])
    y, cb, _ = C.codes_to_ycbcr(1023, 0, 512, bit_depth=10, full_range=True)
    assert y == 1.0 and cb == pytest.approx(-512 / 1023)
    y, cb, _ = C.codes_to_ycbcr(235, 240, 128, bit_depth=8, full_range=False)
    assert y == 1.0 and cb == 0.5


def test_luma_weights_and_inverse_coefficients():
    assert C.LUMA_COEFFICIENTS["bt2020nc"] == (0.2627, 0.6780, 0.0593)
    assert C.LUMA_COEFFICIENTS["bt709"] == (0.2126, 0.7152, 0.0722)
    assert C.ycbcr_scales("bt2020nc") == pytest.approx((1.8814, 1.4746), abs=1e-12)
    assert C.ycbcr_scales("bt709") == pytest.approx((1.8556, 1.5748), abs=1e-12)
    from fmstf_data.color.ycbcr import inverse_matrix_coefficients

    assert inverse_matrix_coefficients("bt2020nc") == pytest.approx((1.4746, 0.16455, 0.57135, 1.8814), abs=5e-6)
    assert inverse_matrix_coefficients("bt709") == pytest.approx((1.5748, 0.18732, 0.46812, 1.8556), abs=5e-6)


@pytest.mark.parametrize(("full_range", "expected"), [(False, (294, 387, 960)), (True, (269, 369, 1023))])
def test_bt2020_red_codes(full_range, expected):
    codes = C.rgb_to_codes444(np.array([1.0, 0.0, 0.0]), bit_depth=10, matrix=REF_2020, full_range=full_range)
    assert tuple(int(c) for c in codes) == expected
    reference = colour.RGB_to_YCbCr(np.array([1.0, 0.0, 0.0]), K=colour.WEIGHTS_YCBCR["ITU-R BT.2020"],
                                    out_bits=10, out_legal=not full_range, out_int=True)
    assert tuple(int(c) for c in reference) == expected


@pytest.mark.parametrize(("matrix", "colour_name"), [("bt2020nc", "ITU-R BT.2020"), ("bt709", "ITU-R BT.709")])
@pytest.mark.parametrize(("bit_depth", "full_range"), [(10, False), (8, False), (10, True)])
def test_codes444_match_colour_on_random_rgb(rng, matrix, colour_name, bit_depth, full_range):
    rgb = rng.random((3, 2000))
    ours = np.stack(C.rgb_to_codes444(rgb, bit_depth=bit_depth, matrix=matrix, full_range=full_range))
    theirs = colour.RGB_to_YCbCr(rgb.T, K=colour.WEIGHTS_YCBCR[colour_name], out_bits=bit_depth,
                                 out_legal=not full_range, out_int=True).T
    np.testing.assert_array_equal(ours, theirs)
    ours_rgb = C.codes444_to_rgb(*ours, bit_depth=bit_depth, matrix=matrix, full_range=full_range, clip=False)
    theirs_rgb = colour.YCbCr_to_RGB(theirs.T, K=colour.WEIGHTS_YCBCR[colour_name], in_bits=bit_depth,
                                     in_legal=not full_range, in_int=True).T
    np.testing.assert_allclose(ours_rgb, theirs_rgb, atol=1e-12)


@pytest.mark.parametrize("matrix", ["bt2020nc", "bt709"])
@pytest.mark.parametrize(("bit_depth", "full_range"), [(10, False), (8, False), (10, True), (8, True)])
def test_codes_rgb_codes_round_trip_is_exact(rng, matrix, bit_depth, full_range):
    rng_ = C.code_range(bit_depth, full_range)
    n = 20000
    codes = (rng.integers(rng_.y_min, rng_.y_max + 1, n), rng.integers(rng_.c_min, rng_.c_max + 1, n),
             rng.integers(rng_.c_min, rng_.c_max + 1, n))
    kwargs = dict(bit_depth=bit_depth, matrix=matrix, full_range=full_range)
    back = C.rgb_to_codes444(C.codes444_to_rgb(*codes, clip=False, **kwargs), **kwargs)
    for a, b in zip(codes, back):
        np.testing.assert_array_equal(a, b)
    # in gamut (R'G'B' inside [0, 1]): exact through the clipping converter as well
    rgb = C.codes444_to_rgb(*codes, clip=False, **kwargs)
    inside = np.all((rgb >= 0) & (rgb <= 1), axis=0)
    assert inside.sum() > 100
    back = C.rgb_to_codes444(C.codes444_to_rgb(*codes, clip=True, **kwargs), **kwargs)
    for a, b in zip(codes, back):
        np.testing.assert_array_equal(a[inside], b[inside])


def test_ycbcr_rgb_matrix_round_trip_nd(rng):
    rgb = rng.random((3, 2, 3, 4))
    for matrix in ("bt2020nc", "bt709"):
        y, cb, cr = C.rgb_to_ycbcr(rgb, matrix)
        assert y.shape == (2, 3, 4)
        np.testing.assert_allclose(C.ycbcr_to_rgb(y, cb, cr, matrix), rgb, atol=1e-14)
    y, cb, cr = C.rgb_to_ycbcr(np.array([1.0, 0.0, 0.0]), REF_2020)
    assert (y, cb, cr) == pytest.approx((0.2627, -0.2627 / 1.8814, 0.7373 / 1.4746))


# ---- canary (§5) and planes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("out_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(4, 6), (5, 7), (2, 3, 5, 7)])
def test_canary_white_is_exactly_one(shape, out_dtype):
    y = np.full(shape, 940, np.uint16)
    chroma = np.full(shape[:-2] + C.chroma_shape(*shape[-2:]), 512, np.uint16)
    rgb = C.planes_to_rgb(y, chroma, chroma, bit_depth=10, matrix=REF_2020, full_range=False, out_dtype=out_dtype)
    assert rgb.shape == shape[:-2] + (3,) + shape[-2:] and rgb.dtype == out_dtype
    assert np.all(rgb == 1.0)
    black = C.planes_to_rgb(np.full(shape, 64, np.uint16), chroma, chroma, bit_depth=10, matrix=REF_2020,
                            full_range=False)
    assert np.all(black == 0.0)


def test_sdr_white_8bit_and_full_range_white_are_exactly_one():
    chroma = np.full((2, 2), 128, np.uint8)
    for full_range, white in ((False, 235), (True, 255)):
        rgb = C.planes_to_rgb(np.full((3, 3), white, np.uint8), chroma, chroma, bit_depth=8, matrix="bt709",
                              full_range=full_range)
        assert np.all(rgb == 1.0)


def test_planes_to_rgb_grey_luma_round_trip_is_exact(rng):
    y = rng.integers(64, 941, (2, 9, 11)).astype(np.uint16)
    chroma = np.full((2, 5, 6), 512, np.uint16)
    rgb = C.planes_to_rgb(y, chroma, chroma, bit_depth=10, matrix=REF_2020, full_range=False)
    y2, cb2, cr2 = C.rgb_to_planes(rgb, bit_depth=10, matrix=REF_2020, full_range=False)
    assert y2.dtype == np.uint16 and cb2.shape == (2, 5, 6)
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(cb2, chroma)
    np.testing.assert_array_equal(cr2, chroma)


def test_planes_to_rgb_batched_equals_per_frame(rng):
    y = rng.integers(0, 256, (2, 3, 7, 9), dtype=np.uint8)
    cb = rng.integers(0, 256, (2, 3, 4, 5), dtype=np.uint8)
    cr = rng.integers(0, 256, (2, 3, 4, 5), dtype=np.uint8)
    kwargs = dict(bit_depth=8, matrix="bt709", full_range=False)
    batched = C.planes_to_rgb(y, cb, cr, **kwargs)
    assert batched.shape == (2, 3, 3, 7, 9) and batched.dtype == np.float32
    assert batched.min() >= 0.0 and batched.max() <= 1.0
    np.testing.assert_array_equal(batched[1, 2], C.planes_to_rgb(y[1, 2], cb[1, 2], cr[1, 2], **kwargs))
    # per pixel, the result is the 4:4:4 conversion of the upsampled chroma
    cb_up = C.upsample_chroma_420(C.codes_to_ycbcr(0, cb[0, 0], 0, bit_depth=8, full_range=False)[1], 7, 9)
    cr_up = C.upsample_chroma_420(C.codes_to_ycbcr(0, 0, cr[0, 0], bit_depth=8, full_range=False)[2], 7, 9)
    y_f = C.codes_to_ycbcr(y[0, 0], 0, 0, bit_depth=8, full_range=False)[0]
    expected = np.clip(C.ycbcr_to_rgb(y_f, cb_up, cr_up, "bt709"), 0, 1)
    np.testing.assert_allclose(batched[0, 0], expected, atol=1e-6)


def test_rgb_to_planes_flat_colour_and_8bit_dtype():
    rgb = np.zeros((3, 5, 7))
    rgb[0] = 1.0  # pure red everywhere
    y, cb, cr = C.rgb_to_planes(rgb, bit_depth=10, matrix=REF_2020, full_range=False)
    assert y.shape == (5, 7) and cb.shape == (3, 4)
    assert set(y.ravel().tolist()) == {294} and set(cb.ravel().tolist()) == {387} and set(cr.ravel().tolist()) == {960}
    y8, cb8, _ = C.rgb_to_planes(rgb, bit_depth=8, matrix="bt709", full_range=False)
    assert y8.dtype == np.uint8 and cb8.dtype == np.uint8


# ---- 4:2:0 chroma ------------------------------------------------------------------------------------------------


def test_upsample_siting_left_horizontal_between_rows_vertical():
    row = np.array([[0.0, 2.0, 4.0]])  # 1 x 3 chroma for 2 x 6 luma (chroma row between luma rows 0 and 1)
    np.testing.assert_array_equal(C.upsample_chroma_420(row, 2, 6), [[0, 1, 2, 3, 4, 4]] * 2)
    np.testing.assert_array_equal(C.upsample_chroma_420(row, 1, 5), [[0, 1, 2, 3, 4]])  # odd width
    column = np.array([[0.0], [4.0]])  # 2 x 1 chroma for 4 x 1 luma
    np.testing.assert_array_equal(C.upsample_chroma_420(column, 4, 1), [[0], [1], [3], [4]])
    np.testing.assert_array_equal(C.upsample_chroma_420(column, 3, 2), [[0, 0], [1, 1], [3, 3]])  # odd height


def test_downsample_filter_and_odd_sizes():
    plane = np.arange(35, dtype=np.float64).reshape(5, 7)
    down = C.downsample_chroma_420(plane)
    assert down.shape == (3, 4)
    # row pair (0, 1): [1,2,1]/4 on columns (-1->0, 0, 1) etc.; last row 4 is paired with itself
    pair = (plane[0] + plane[1]) / 2
    assert down[0, 0] == (pair[0] + 2 * pair[0] + pair[1]) / 4
    assert down[0, 3] == (pair[5] + 2 * pair[6] + pair[6]) / 4
    assert down[2, 1] == (plane[4, 1] + 2 * plane[4, 2] + plane[4, 3]) / 4
    assert C.downsample_chroma_420(np.ones((2, 3, 1, 1))).shape == (2, 3, 1, 1)


def test_upsample_then_downsample_keeps_linear_ramps_inside(rng):
    i, j = np.meshgrid(np.arange(6), np.arange(8), indexing="ij")
    chroma = 0.01 * i - 0.02 * j + 0.1
    again = C.downsample_chroma_420(C.upsample_chroma_420(chroma, 12, 16))
    np.testing.assert_allclose(again[1:-1, 1:-1], chroma[1:-1, 1:-1], atol=1e-15)
    flat = np.full((2, 3, 4), 0.25)
    np.testing.assert_array_equal(C.downsample_chroma_420(C.upsample_chroma_420(flat, 5, 7)), flat)


def _reference_upsample(plane: np.ndarray, out_height: int, out_width: int) -> np.ndarray:
    """Independent definition: linear interpolation at chroma positions (y - 0.5) / 2 and x / 2, clamped."""

    def taps(out_size, in_size, offset):
        position = np.clip((np.arange(out_size) - offset) / 2.0, 0, in_size - 1)
        i0 = np.floor(position).astype(int)
        return i0, np.minimum(i0 + 1, in_size - 1), position - i0

    r0, r1, rw = taps(out_height, plane.shape[-2], 0.5)
    c0, c1, cw = taps(out_width, plane.shape[-1], 0.0)
    rows = plane[..., r0, :] * (1 - rw)[:, None] + plane[..., r1, :] * rw[:, None]
    return rows[..., c0] * (1 - cw) + rows[..., c1] * cw


def _reference_downsample(plane: np.ndarray) -> np.ndarray:
    height, width = plane.shape[-2:]
    top = np.arange((height + 1) // 2) * 2
    rows = (plane[..., top, :] + plane[..., np.minimum(top + 1, height - 1), :]) / 2
    centre = np.arange((width + 1) // 2) * 2
    left, right = rows[..., np.maximum(centre - 1, 0)], rows[..., np.minimum(centre + 1, width - 1)]
    return (left + 2 * rows[..., centre] + right) / 4


@pytest.mark.parametrize("luma_size", [(1, 1), (1, 2), (2, 1), (2, 2), (3, 5), (4, 6), (7, 9), (16, 10)])
def test_chroma_resampling_equals_the_reference_definitions(rng, luma_size):
    height, width = luma_size
    chroma = rng.random((2,) + C.chroma_shape(height, width))
    np.testing.assert_array_equal(C.upsample_chroma_420(chroma, height, width),
                                  _reference_upsample(chroma, height, width))
    full = rng.random((2, height, width))
    np.testing.assert_array_equal(C.downsample_chroma_420(full), _reference_downsample(full))


def test_chroma_helpers_reject_wrong_shapes():
    with pytest.raises(ColorError, match="does not fit luma"):
        C.upsample_chroma_420(np.zeros((3, 3)), 4, 6)
    with pytest.raises(ColorError):
        C.downsample_chroma_420(np.zeros(4))


# ---- errors -------------------------------------------------------------------------------------------------------


def test_errors_for_bad_arguments():
    y, c = np.zeros((4, 4), np.uint16), np.full((2, 2), 512, np.uint16)
    with pytest.raises(ColorError, match="bt601"):
        C.planes_to_rgb(y, c, c, bit_depth=10, matrix="bt601", full_range=False)
    for bad in (7, 17, 10.0, True, "10"):
        with pytest.raises(ColorError, match="bit"):
            C.planes_to_rgb(y, c, c, bit_depth=bad, matrix=REF_2020, full_range=False)
    with pytest.raises(ColorError, match="1023"):
        C.planes_to_rgb(np.full((4, 4), 4000, np.uint16), c, c, bit_depth=10, matrix=REF_2020, full_range=False)
    with pytest.raises(ColorError, match="does not fit"):
        C.planes_to_rgb(y, np.zeros((2, 3), np.uint16), c, bit_depth=10, matrix=REF_2020, full_range=False)
    with pytest.raises(ColorError, match="batch"):
        C.planes_to_rgb(np.zeros((2, 4, 4), np.uint16), np.zeros((3, 2, 2), np.uint16),
                        np.zeros((3, 2, 2), np.uint16), bit_depth=10, matrix=REF_2020, full_range=False)
    with pytest.raises(ColorError, match="3 channels"):
        C.rgb_to_ycbcr(np.zeros((4, 2)), REF_2020)
    with pytest.raises(ColorError, match="gamut"):
        C.convert_primaries(np.zeros(3), "p3", "bt709")
    with pytest.raises(ColorError):
        C.gamut_map_bt2020_to_bt709(np.zeros(3), method="magic")
    with pytest.raises(ColorError):
        C.hdr_to_sdr_rgb(np.zeros((3, 2, 2)), method="magic")
    with pytest.raises(ColorError):
        C.bt1886_eotf(0.5, white_nits=100.0, black_nits=200.0)
    with pytest.raises(ColorError):
        C.bt2390_eetf(0.5, source_max_nits=0.0)


# ---- gamut (BT.2087) ----------------------------------------------------------------------------------------------


def test_gamut_matrices_match_reference_and_colour():
    np.testing.assert_array_equal(C.BT709_TO_BT2020[0], [0.6274038959, 0.3292830384, 0.0433130657])
    reference_inverse = [[1.6604910, -0.5876411, -0.0728499], [-0.1245505, 1.1328999, -0.0083494],
                         [-0.0181508, -0.1005789, 1.1187297]]
    np.testing.assert_allclose(C.BT2020_TO_BT709, reference_inverse, atol=1e-6)
    theirs = colour.matrix_RGB_to_RGB(colour.RGB_COLOURSPACES["ITU-R BT.709"], colour.RGB_COLOURSPACES["ITU-R BT.2020"])
    np.testing.assert_allclose(C.BT709_TO_BT2020, theirs, atol=1e-9)
    np.testing.assert_allclose(C.BT709_TO_BT2020.sum(axis=1), 1.0, atol=1e-9)  # D65 white stays white


def test_convert_primaries_round_trip_and_identity(rng):
    rgb = rng.random((3, 4, 5))
    there = C.convert_primaries(rgb, "bt709", "bt2020")
    np.testing.assert_allclose(C.convert_primaries(there, "bt2020", "bt709"), rgb, atol=1e-12)
    np.testing.assert_array_equal(C.convert_primaries(rgb, "bt2020", "bt2020"), rgb)
    assert np.all(there >= 0)  # BT.709 lies inside BT.2020


def test_gamut_mapping_keeps_in_gamut_and_fixes_out_of_gamut(rng):
    inside_709 = C.convert_primaries(rng.random((3, 100)), "bt709", "bt2020")
    for method in ("clip", "desaturate"):
        np.testing.assert_allclose(C.gamut_map_bt2020_to_bt709(inside_709, method=method),
                                   C.convert_primaries(inside_709, "bt2020", "bt709"), atol=1e-12)
    green_2020 = np.array([0.0, 1.0, 0.0])
    naive = C.convert_primaries(green_2020, "bt2020", "bt709")
    assert naive.min() < 0
    mapped = C.gamut_map_bt2020_to_bt709(green_2020, method="desaturate")
    assert mapped.min() == pytest.approx(0.0, abs=1e-12)
    weights = np.array(C.LUMA_COEFFICIENTS["bt709"])
    assert weights @ mapped == pytest.approx(weights @ naive, rel=1e-12)  # luminance kept
    np.testing.assert_array_equal(C.gamut_map_bt2020_to_bt709(green_2020, method="clip"), np.maximum(naive, 0))


# ---- SDR curves ---------------------------------------------------------------------------------------------------


def test_bt1886_and_bt709_curves(rng):
    v = rng.random(500)
    np.testing.assert_allclose(C.bt1886_eotf(v), 100.0 * v**2.4, rtol=1e-14)
    np.testing.assert_allclose(C.bt1886_eotf(v, white_nits=120.0, black_nits=0.1),
                               colour.models.eotf_BT1886(v, L_B=0.1, L_W=120.0), rtol=1e-12)
    np.testing.assert_allclose(C.bt1886_inverse_eotf(C.bt1886_eotf(v, 300.0, 0.5), 300.0, 0.5), v, atol=1e-12)
    light = rng.random(500)
    np.testing.assert_allclose(C.bt709_oetf(light), colour.models.oetf_BT709(light), rtol=1e-12)
    assert C.bt709_oetf(0.01) == pytest.approx(0.045) and C.bt709_oetf(1.0) == pytest.approx(1.0)
    assert C.bt709_oetf(0.5) == pytest.approx(1.099 * 0.5**0.45 - 0.099)
    np.testing.assert_allclose(C.bt709_inverse_oetf(C.bt709_oetf(light)), light, atol=1e-12)


# ---- ICtCp / ΔE_ITP (BT.2124) -------------------------------------------------------------------------------------


def test_delta_e_itp_golden_values():
    a = np.array([0.4885468072, -0.04739350675, 0.07475401302])
    b = np.array([0.4899203231, -0.04567508203, 0.07361341775])
    assert C.delta_e_itp(a, b) == pytest.approx(1.426572247, abs=1e-7)
    assert C.delta_e_itp_rgb2020_nits([100.0, 100, 100], [110.0, 100, 100]) == pytest.approx(7.98210335931, rel=1e-10)
    assert C.delta_e_itp_rgb2020_nits([1000.0, 0, 0], [900.0, 50, 0]) == pytest.approx(49.6433879232, rel=1e-10)
    assert C.delta_e_itp_rgb2020_nits([0.0, 0, 0], [1.0, 1, 1]) == pytest.approx(107.960400824, rel=1e-10)
    np.testing.assert_allclose(C.ictcp_from_rgb2020_nits([1000.0, 0, 0]), [0.6080024481, -0.1649483158, 0.4430925005],
                               atol=1e-10)


def test_ictcp_and_delta_e_match_colour_on_random_values(rng):
    rgb_a, rgb_b = rng.random((3, 200)) * 1000, rng.random((3, 200)) * 1000
    ours = C.ictcp_from_rgb2020_nits(rgb_a)
    np.testing.assert_allclose(ours, colour.RGB_to_ICtCp(rgb_a.T, method="ITU-R BT.2100-2 PQ").T, atol=1e-12)
    theirs = colour.difference.delta_E_ITP(colour.RGB_to_ICtCp(rgb_a.T), colour.RGB_to_ICtCp(rgb_b.T))
    np.testing.assert_allclose(C.delta_e_itp_rgb2020_nits(rgb_a, rgb_b), theirs, rtol=1e-10)
    np.testing.assert_allclose(C.rgb2020_nits_from_ictcp(ours), rgb_a, rtol=1e-8, atol=1e-8)
    assert C.delta_e_itp_rgb2020_nits(rgb_a.reshape(3, 10, 20), rgb_b.reshape(3, 10, 20)).shape == (10, 20)


# ---- tone mapping (§3) --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("nits", "mapped"), [(100.0, 69.4544), (203.0, 88.2436), (400.0, 97.5984), (1000.0, 100.0)])
def test_bt2390_eetf_golden_values(nits, mapped):
    e = C.bt2390_eetf(C.pq_inverse_eotf(nits), source_min_nits=0.0, source_max_nits=1000.0, target_min_nits=0.0,
                      target_max_nits=100.0)
    assert C.pq_eotf(e) == pytest.approx(mapped, abs=5e-5)


def test_bt2390_eetf_properties(rng):
    e = np.sort(rng.random(1000)) * C.pq_inverse_eotf(1000.0)
    mapped = C.bt2390_eetf(e, source_max_nits=1000.0, target_max_nits=100.0)
    assert np.all(np.diff(mapped) >= 0)
    assert C.pq_eotf(mapped).max() <= 100.0 + 1e-9
    np.testing.assert_allclose(C.bt2390_eetf(e, source_max_nits=1000.0, target_max_nits=4000.0), e, atol=1e-15)
    lifted = C.bt2390_eetf(C.pq_inverse_eotf(0.0), source_max_nits=1000.0, target_min_nits=0.1)
    assert C.pq_eotf(lifted) == pytest.approx(0.1, rel=1e-6)  # black lifted to the target black


def test_bt2446a_hdr_to_sdr_golden_values():
    from fmstf_data.color.tonemap import _rho

    assert _rho(1000.0) == pytest.approx(13.2598, abs=5e-5) and _rho(100.0) == pytest.approx(5.6970, abs=5e-5)
    y_prime = (np.array([100.0, 203.0, 1000.0]) / 1000.0) ** (1 / 2.4)
    np.testing.assert_allclose(C.bt2446a_tone_curve(y_prime), [0.53875, 0.68686, 1.0], atol=5e-6)
    grey = np.repeat((np.array([100.0, 203.0, 1000.0]) / 1000.0)[None], 3, axis=0)
    np.testing.assert_allclose(C.bt2446a_hdr_to_sdr(grey), np.repeat([[0.53875, 0.68686, 1.0]], 3, 0), atol=5e-6)
    # knee segments meet (continuity to the precision of the published coefficients)
    knee = lambda x: C.bt2446a_tone_curve(((np.power(13.2598, x) - 1) / 12.2598))  # noqa: E731
    assert knee(0.7399 + 1e-9) == pytest.approx(knee(0.7399), abs=2e-4)
    assert knee(0.9909 + 1e-9) == pytest.approx(knee(0.9909), abs=2e-4)


@pytest.mark.parametrize(("y_sdr", "nits"), [(0.1, 1.1010), (0.5, 76.2809), (0.75, 278.9767), (1.0, 999.52)])
def test_bt2446a_sdr_to_hdr_golden_values(y_sdr, nits):
    grey = np.full((3, 1), y_sdr)
    assert C.bt2446a_sdr_to_hdr(grey)[:, 0] * 1000 == pytest.approx([nits] * 3, abs=5e-3 if y_sdr == 1.0 else 5e-5)


def test_bt2446a_uses_1_2528_not_the_1_2328_typo():
    assert C.bt2446a_expand_luma(1.0) == pytest.approx(999.81, abs=0.01)
    typo = 255.0 ** (2.8305e-6 * 255**2 - 7.4622e-4 * 255 + 1.2328)  # about 895: what the typo would give
    assert abs(C.bt2446a_expand_luma(1.0) - typo) > 100


def test_bt2446a_colour_round_trip_is_close_for_moderate_colours(rng):
    rgb = 0.05 + 0.3 * rng.random((3, 500))  # linear BT.2020 relative to 1000 cd/m²
    sdr = C.bt2446a_hdr_to_sdr(rgb)
    assert sdr.shape == rgb.shape and sdr.min() >= 0 and sdr.max() <= 1
    back = C.bt2446a_sdr_to_hdr(sdr)
    assert np.median(np.abs(back - rgb) / rgb) < 0.15  # the two directions are fits, not exact inverses


def test_bt2446c_golden_values_and_inverse(rng):
    assert C.bt2446c_tone_curve(np.array([203.0, 1000.0])) == pytest.approx([90.6523, 118.3773], abs=5e-5)
    from fmstf_data.color import tonemap

    k1, k3, y_ip = tonemap.BT2446C_K1, tonemap.BT2446C_K3, tonemap.BT2446C_Y_IP
    assert (k1, k3, y_ip) == (0.83802, 0.74204, 69.849)
    assert tonemap.BT2446C_K2 == pytest.approx(k1 * y_ip * (1 - k3), abs=1e-4)  # 15.09968, derived from Y_ip
    assert tonemap.BT2446C_K4 == pytest.approx(k1 * y_ip - tonemap.BT2446C_K2 * np.log(1 - k3), abs=5e-4)
    y = np.concatenate([rng.random(100) * 69, 70 + rng.random(100) * 9930])
    np.testing.assert_allclose(C.bt2446c_inverse_tone_curve(C.bt2446c_tone_curve(y)), y, rtol=1e-10)
    rgb = rng.random((3, 50)) * 1000
    sdr = C.bt2446c_hdr_to_sdr(rgb)
    ratio = sdr / rgb
    np.testing.assert_allclose(ratio[0], ratio[1], rtol=1e-10)  # chromaticity kept: one factor per pixel
    np.testing.assert_allclose(C.bt2446c_sdr_to_hdr(sdr), rgb, rtol=1e-8)
    np.testing.assert_allclose(C.bt2446c_sdr_to_hdr(C.bt2446c_hdr_to_sdr(rgb, alpha=0.05), alpha=0.05), rgb, rtol=1e-8)


def test_simple_curves():
    x = np.linspace(0, 20, 200)
    for curve, white in ((C.reinhard, 4.0), (C.hable, 11.2)):
        y = curve(x, white=white)
        assert y[0] == 0.0 and np.all(np.diff(y) >= 0) and y.max() == 1.0
        assert curve(np.array(white), white=white) == pytest.approx(1.0)


@pytest.mark.parametrize("method", ["bt2390", "bt2446a", "bt2446c"])
def test_hdr_to_sdr_rgb(rng, method):
    rgb_pq = rng.random((3, 6, 5)).astype(np.float32) * np.float32(C.pq_inverse_eotf(1000.0))
    sdr = C.hdr_to_sdr_rgb(rgb_pq, method=method)
    assert sdr.shape == (3, 6, 5) and sdr.dtype == np.float32
    assert sdr.min() >= 0.0 and sdr.max() <= 1.0
    greys_nits = np.array([0.0, 1.0, 10.0, 100.0, 203.0, 1000.0])
    greys = C.hdr_to_sdr_rgb(np.repeat(C.pq_inverse_eotf(greys_nits)[None], 3, axis=0), method=method)
    np.testing.assert_allclose(greys[0], greys[1], atol=1e-9)  # grey stays grey
    assert np.all(np.diff(greys[0]) > 0)  # monotone
    assert greys[0, 0] == pytest.approx(0.0, abs=1e-6)
    if method != "bt2446c":
        assert greys[0, -1] == pytest.approx(1.0, abs=1e-6)  # the HDR peak becomes SDR white


def test_hdr_to_sdr_rgb_tracks_the_golden_curves():
    grey = np.repeat(C.pq_inverse_eotf(np.array([203.0]))[None], 3, axis=0)
    assert C.hdr_to_sdr_rgb(grey, method="bt2390")[0, 0] == pytest.approx((88.2436 / 100) ** (1 / 2.4), abs=1e-6)
    assert C.hdr_to_sdr_rgb(grey, method="bt2446a")[0, 0] == pytest.approx(0.68686, abs=1e-5)
    assert C.hdr_to_sdr_rgb(grey, method="bt2446c")[0, 0] == pytest.approx(0.906523 ** (1 / 2.4), abs=1e-6)
    saturated = np.array([0.0, C.pq_inverse_eotf(500.0), 0.0])  # BT.2020 green, outside BT.709
    sdr = C.hdr_to_sdr_rgb(saturated)
    assert np.all(np.isfinite(sdr)) and sdr[1] > sdr[0] and sdr[1] > sdr[2]


def test_sdr_to_hdr_rgb():
    grey = np.full((3, 2), 0.5)
    hdr = C.sdr_to_hdr_rgb(grey, method="bt2446a")
    assert C.pq_eotf(hdr) == pytest.approx(np.full((3, 2), 76.2809), abs=1e-3)
    hdr_c = C.sdr_to_hdr_rgb(grey, method="bt2446c")
    assert C.pq_eotf(hdr_c)[0, 0] == pytest.approx(C.bt2446c_inverse_tone_curve(100 * 0.5**2.4), rel=1e-9)
