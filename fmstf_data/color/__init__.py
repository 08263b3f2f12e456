"""The colour core of fmstf-data (numpy; torch versions with the same names in :mod:`fmstf_data.color.torch_ops`).

- :mod:`~fmstf_data.color.constants`: PQ constants, luma weights, BT.709 <-> BT.2020 and ICtCp matrices.
- :mod:`~fmstf_data.color.transfer`: PQ (SMPTE ST 2084), BT.1886, BT.709 OETF.
- :mod:`~fmstf_data.color.ycbcr`: code values <-> Y'CbCr <-> R'G'B', 4:2:0 chroma, ``planes_to_rgb``.
- :mod:`~fmstf_data.color.gamut`: primaries conversion and BT.2020 -> BT.709 gamut mapping.
- :mod:`~fmstf_data.color.tonemap`: BT.2390 EETF, BT.2446 Methods A and C, ``hdr_to_sdr_rgb``.
- :mod:`~fmstf_data.color.ictcp`: ICtCp and ΔE_ITP (BT.2124).

Unknown matrices, gamuts, bit depths or shapes raise :class:`fmstf_data.errors.ColorError`.
"""

from fmstf_data.color.constants import (
    BT709_TO_BT2020,
    BT2020_TO_BT709,
    GAMUTS,
    ICTCP_LMS_P_TO_ICTCP,
    ICTCP_RGB2020_TO_LMS,
    LUMA_COEFFICIENTS,
    PQ,
    PQConstants,
    luma_coefficients,
    primaries_matrix,
    ycbcr_scales,
)
from fmstf_data.color.gamut import (
    GAMUT_MAPPING_METHODS,
    convert_primaries,
    desaturate_to_gamut,
    gamut_map_bt2020_to_bt709,
)
from fmstf_data.color.ictcp import (
    delta_e_itp,
    delta_e_itp_rgb2020_nits,
    ictcp_from_rgb2020_nits,
    rgb2020_nits_from_ictcp,
)
from fmstf_data.color.tonemap import (
    HDR_TO_SDR_METHODS,
    SDR_TO_HDR_METHODS,
    bt2390_eetf,
    bt2446a_expand_luma,
    bt2446a_hdr_to_sdr,
    bt2446a_sdr_to_hdr,
    bt2446a_tone_curve,
    bt2446c_hdr_to_sdr,
    bt2446c_inverse_tone_curve,
    bt2446c_sdr_to_hdr,
    bt2446c_tone_curve,
    hable,
    hdr_to_sdr_rgb,
    reinhard,
    sdr_to_hdr_rgb,
)
from fmstf_data.color.transfer import (
    bt709_inverse_oetf,
    bt709_oetf,
    bt1886_eotf,
    bt1886_inverse_eotf,
    pq_eotf,
    pq_inverse_eotf,
)
from fmstf_data.color.ycbcr import (
    CodeRange,
    check_bit_depth,
    chroma_shape,
    code_range,
    codes444_to_rgb,
    codes_to_ycbcr,
    downsample_chroma_420,
    planes_to_rgb,
    rgb_to_codes444,
    rgb_to_planes,
    rgb_to_ycbcr,
    upsample_chroma_420,
    ycbcr_to_codes,
    ycbcr_to_rgb,
)

__all__ = [
    "BT709_TO_BT2020", "BT2020_TO_BT709", "GAMUTS", "ICTCP_LMS_P_TO_ICTCP", "ICTCP_RGB2020_TO_LMS",
    "LUMA_COEFFICIENTS", "PQ", "PQConstants", "luma_coefficients", "primaries_matrix", "ycbcr_scales",
    "GAMUT_MAPPING_METHODS", "convert_primaries", "desaturate_to_gamut", "gamut_map_bt2020_to_bt709",
    "delta_e_itp", "delta_e_itp_rgb2020_nits", "ictcp_from_rgb2020_nits", "rgb2020_nits_from_ictcp",
    "HDR_TO_SDR_METHODS", "SDR_TO_HDR_METHODS", "bt2390_eetf", "bt2446a_expand_luma", "bt2446a_hdr_to_sdr",
    "bt2446a_sdr_to_hdr", "bt2446a_tone_curve", "bt2446c_hdr_to_sdr", "bt2446c_inverse_tone_curve",
    "bt2446c_sdr_to_hdr", "bt2446c_tone_curve", "hable", "hdr_to_sdr_rgb", "reinhard", "sdr_to_hdr_rgb",
    "bt709_inverse_oetf", "bt709_oetf", "bt1886_eotf", "bt1886_inverse_eotf", "pq_eotf", "pq_inverse_eotf",
    "CodeRange", "check_bit_depth", "chroma_shape", "code_range", "codes444_to_rgb", "codes_to_ycbcr",
    "downsample_chroma_420", "planes_to_rgb", "rgb_to_codes444", "rgb_to_planes", "rgb_to_ycbcr",
    "upsample_chroma_420", "ycbcr_to_codes", "ycbcr_to_rgb",
]
