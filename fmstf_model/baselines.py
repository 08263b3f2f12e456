"""Non-learned SDR -> HDR10 baselines in torch: ITU-R BT.2446-1 Method A inverse (§4.2) and Method C inverse (§6.2).

Both take BT.709 R'G'B' SDR (BT.1886 display, 100 cd/m² white) in [0, 1] and return PQ-encoded BT.2020 R'G'B' in
[0, 1], on any device, channel axis ``dim`` (default -3, i.e. ``[..., 3, H, W]``):

- ``"bt2446a"``: the SDR is linearised (2.4), moved to BT.2020 primaries (BT.2087 matrix), re-encoded (1/2.4); then
  Method A: ``Y'' = 255 Y'`` (BT.2020 luma), ``Y'_HDR = Y''^E`` with ``E = 1.8712e-5 Y''² - 2.7334e-3 Y'' + 1.3141``
  for ``Y'' <= 70``, else ``2.8305e-6 Y''² - 7.4622e-4 Y'' + 1.2528``; chroma scaled by ``Sc = 1.075 Y'_HDR / Y'``
  (1 where Y' = 0); back to R'G'B', /1000, clipped to [0, 1], ^2.4 -> light relative to a 1000 cd/m² peak.
  Grey Y' 0.1 / 0.5 / 0.75 / 1.0 -> 1.1010 / 76.2809 / 278.9767 / 999.52 cd/m².
- ``"bt2446c"``: SDR linear light in cd/m² (BT.1886, 100 cd/m² white, BT.2020 primaries); the inverse Method C curve
  on the luminance Y (``Y / k1`` below ``k1 Y_ip``, else ``Y_ip (exp((Y - k4) / k2) + k3)``), x and y kept (RGB scaled
  by ``Y_out / Y_in``); optional crosstalk ``alpha``. SDR white (100 cd/m²) -> 332.6 cd/m²; 90.6523 -> 203.

The constants and the numpy reference live in :mod:`fmstf_data.color.tonemap`; this module is the torch version
(the tests check that the two agree to 1e-9 in float64), so evaluation and conversion run on the GPU.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fmstf_data.color import torch_ops
from fmstf_data.color.constants import LUMINANCE_BT2020
from fmstf_data.color.tonemap import BT2446C_K1, BT2446C_K2, BT2446C_K3, BT2446C_K4, BT2446C_Y_IP
from fmstf_data.errors import ColorError

BASELINES: tuple[str, ...] = ("bt2446a", "bt2446c")
"""Method names, as used by ``fmstf-convert --method`` and the evaluation tables."""
BASELINE_LABELS = {"bt2446a": "BT.2446 Method A (inverse)", "bt2446c": "BT.2446 Method C (inverse)"}
SDR_GAMMA = 2.4


def bt2446a_expand_luma(y_prime_sdr: Tensor) -> Tensor:
    """Method A's inverse luma curve: SDR Y' in [0, 1] -> Y'_HDR in [0, 1000] (gamma domain)."""
    y2 = 255.0 * torch_ops.as_float(y_prime_sdr).clamp(0.0, 1.0)
    low = (1.8712e-5 * y2 - 2.7334e-3) * y2 + 1.3141
    high = (2.8305e-6 * y2 - 7.4622e-4) * y2 + 1.2528
    return y2 ** torch.where(y2 <= 70.0, low, high)


def bt2446a_sdr_to_hdr(rgb_sdr_2020: Tensor) -> Tensor:
    """Method A SDR -> HDR: BT.2020 R'G'B' SDR [3, ...] (gamma 2.4) -> linear BT.2020 RGB relative to 1000 cd/m²."""
    rgb = torch_ops.as_float(rgb_sdr_2020).clamp(0.0, 1.0)
    y, cb, cr = torch_ops.rgb_to_ycbcr(rgb, "bt2020nc")
    y_hdr = bt2446a_expand_luma(y)
    safe = torch.where(y > 0, y, torch.ones_like(y))
    scale = torch.where(y > 0, 1.075 * y_hdr / safe, torch.ones_like(y))
    rgb_hdr = torch_ops.ycbcr_to_rgb(y_hdr, cb * scale, cr * scale, "bt2020nc") / 1000.0
    return rgb_hdr.clamp(0.0, 1.0) ** SDR_GAMMA


def bt2446c_inverse_tone_curve(y_sdr_nits: Tensor) -> Tensor:
    """Method C's inverse curve on luminance in cd/m²."""
    y = torch_ops.as_float(y_sdr_nits).clamp_min(0.0)
    knee = BT2446C_K1 * BT2446C_Y_IP
    return torch.where(y < knee, y / BT2446C_K1,
                       BT2446C_Y_IP * (torch.exp((y - BT2446C_K4) / BT2446C_K2) + BT2446C_K3))


def _crosstalk(alpha: float) -> Tensor:
    if not 0.0 <= alpha < 1.0 / 3.0:
        raise ColorError(f"crosstalk alpha must be in [0, 1/3), got {alpha}")
    return torch.full((3, 3), alpha, dtype=torch.float64) + torch.eye(3, dtype=torch.float64) * (1.0 - 3.0 * alpha)


def bt2446c_sdr_to_hdr(rgb_nits_2020: Tensor, *, alpha: float = 0.0) -> Tensor:
    """Method C SDR -> HDR: linear BT.2020 RGB [3, ...] in cd/m² -> linear BT.2020 RGB in cd/m²."""
    rgb = torch_ops.as_float(rgb_nits_2020).clamp_min(0.0)
    matrix = _crosstalk(alpha)
    rgb = torch_ops.apply_matrix(matrix.numpy(), rgb)
    k_r, k_g, k_b = LUMINANCE_BT2020
    y = k_r * rgb[0] + k_g * rgb[1] + k_b * rgb[2]
    safe = torch.where(y > 0, y, torch.ones_like(y))
    ratio = torch.where(y > 0, bt2446c_inverse_tone_curve(y) / safe, torch.zeros_like(y))
    return torch_ops.apply_matrix(torch.linalg.inv(matrix).numpy(), rgb * ratio).clamp_min(0.0)


def sdr_to_hdr(rgb_sdr_709: Tensor, method: str = "bt2446a", *, dim: int = -3) -> Tensor:
    """SDR BT.709 R'G'B' in [0, 1] -> PQ BT.2020 R'G'B' in [0, 1] with a BT.2446 inverse method (channel axis
    ``dim``; same dtype as a float input)."""
    if method not in BASELINES:
        raise ColorError(f"unknown SDR -> HDR baseline {method!r}: use one of {list(BASELINES)}")
    rgb = torch_ops.as_float(rgb_sdr_709)
    if rgb.shape[dim] != 3:
        raise ColorError(f"expected 3 channels on axis {dim}, got shape {tuple(rgb.shape)}")
    rgb = rgb.movedim(dim, 0).clamp(0.0, 1.0)
    linear_2020 = torch_ops.convert_primaries(rgb**SDR_GAMMA, "bt709", "bt2020").clamp_min(0.0)
    if method == "bt2446a":
        nits = bt2446a_sdr_to_hdr(linear_2020 ** (1.0 / SDR_GAMMA)) * 1000.0
    else:
        nits = bt2446c_sdr_to_hdr(linear_2020 * 100.0)
    return torch_ops.pq_inverse_eotf(nits).clamp(0.0, 1.0).movedim(0, dim).to(rgb.dtype)
