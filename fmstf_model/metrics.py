"""Quality metrics of SDR -> HDR reconstruction (the paper's Table I), in torch, on PQ-encoded BT.2020 R'G'B'.

Inputs are HDR10 signals: ``[..., 3, H, W]`` tensors of PQ R'G'B' (BT.2020) in [0, 1], as the loader's ``hdr`` and
the model's output. Every function returns one value per image (the leading dimensions), computed in float64.

- :func:`psnr`: HDRTVNet's convention: mean squared error over the whole frame and all three channels of the PQ
  R'G'B' signal, peak 1 (their 16-bit PNG values / 65535); no border crop, no luma-only variant.
- :func:`ssim`: Wang et al. 2004 on each R'G'B' channel (PQ signal, dynamic range 1), 11x11 Gaussian window
  sigma 1.5, K1 = 0.01, K2 = 0.03, "valid" filtering (no padding), mean over the map and the channels.
- :func:`delta_e_itp`: ITU-R BT.2124: PQ EOTF to linear BT.2020 cd/m², ICtCp (BT.2100), ``720 sqrt(dI² + (0.5
  dCt)² + dCp²)`` per pixel, mean over the frame.
- :func:`mabd` / :func:`mabd_error`: temporal flicker (Jiang & Zheng, ICCV 2019, as KPN-MFI uses it): the mean
  absolute brightness difference between consecutive frames, ``MABD_t = mean|Y'_t - Y'_{t-1}|`` with brightness
  = BT.2020 luma Y' of the PQ signal; a video's score is the mean squared difference between the MABD vectors of
  the output and of the ground truth (0 = the output flickers exactly as the truth changes).
- Optional extras: :func:`srsim` (``piq.srsim`` on the PQ R'G'B' signal, when piq is installed) and
  :class:`LpipsMetric` (the ``lpips`` package with its backbone and linear weights from one local state_dict file;
  nothing downloads). HDR-VDP-3 is MATLAB-only and not computed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from fmstf_data.color import torch_ops
from fmstf_data.color.constants import luma_coefficients
from fmstf_data.errors import ModelError

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _check_pair(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    if pred.shape != target.shape or pred.dim() < 3 or pred.shape[-3] != 3:
        raise ModelError(f"metrics need two [..., 3, H, W] tensors of one shape, got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")
    return pred.double(), target.double()


def psnr(pred: Tensor, target: Tensor, *, peak: float = 1.0) -> Tensor:
    """PSNR in dB of ``[..., 3, H, W]`` images (whole frame, all channels, peak ``peak``); inf for equal images."""
    pred, target = _check_pair(pred, target)
    mse = (pred - target).square().mean(dim=(-3, -2, -1))
    return 10.0 * torch.log10(peak * peak / mse)


def _gaussian_window(size: int, sigma: float, device: torch.device) -> Tensor:
    taps = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2.0
    kernel = torch.exp(-(taps**2) / (2.0 * sigma * sigma))
    kernel = kernel / kernel.sum()
    return torch.outer(kernel, kernel)


def ssim(pred: Tensor, target: Tensor, *, data_range: float = 1.0) -> Tensor:
    """Mean SSIM of ``[..., 3, H, W]`` images (H, W >= 11), per image (see the module docstring)."""
    pred, target = _check_pair(pred, target)
    if min(pred.shape[-2:]) < SSIM_WINDOW:
        raise ModelError(f"SSIM needs frames of at least {SSIM_WINDOW}x{SSIM_WINDOW} px, got {tuple(pred.shape[-2:])}")
    lead = pred.shape[:-3]
    x = pred.reshape(-1, 1, *pred.shape[-2:])
    y = target.reshape(-1, 1, *target.shape[-2:])
    window = _gaussian_window(SSIM_WINDOW, SSIM_SIGMA, x.device)[None, None]
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2

    def blur(v: Tensor) -> Tensor:
        return F.conv2d(v, window)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    per_channel = ssim_map.mean(dim=(-3, -2, -1)).reshape(*lead, 3)
    return per_channel.mean(dim=-1)


def delta_e_itp(pred: Tensor, target: Tensor) -> Tensor:
    """Mean ΔE_ITP (BT.2124) per image between PQ BT.2020 R'G'B' images ``[..., 3, H, W]``."""
    pred, target = _check_pair(pred, target)
    a = torch_ops.ictcp_from_rgb2020_nits(torch_ops.pq_eotf(pred.movedim(-3, 0)))
    b = torch_ops.ictcp_from_rgb2020_nits(torch_ops.pq_eotf(target.movedim(-3, 0)))
    return torch_ops.delta_e_itp(a, b).mean(dim=(-2, -1))


def brightness(frames: Tensor) -> Tensor:
    """BT.2020 luma Y' of PQ R'G'B' ``[..., 3, H, W]`` -> ``[..., H, W]``."""
    k_r, k_g, k_b = luma_coefficients("bt2020nc")
    frames = frames.double()
    return k_r * frames[..., 0, :, :] + k_g * frames[..., 1, :, :] + k_b * frames[..., 2, :, :]


def mabd(frames: Tensor) -> Tensor:
    """MABD vector of a clip ``[..., T, 3, H, W]`` (T >= 2) -> ``[..., T - 1]``: ``mean|Y'_t - Y'_{t-1}|``."""
    if frames.dim() < 4 or frames.shape[-3] != 3 or frames.shape[-4] < 2:
        raise ModelError(f"MABD needs clips [..., T>=2, 3, H, W], got {tuple(frames.shape)}")
    luma = brightness(frames)
    return (luma[..., 1:, :, :] - luma[..., :-1, :, :]).abs().mean(dim=(-2, -1))


def mabd_error(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared difference of the MABD vectors of two clips ``[..., T, 3, H, W]`` -> ``[...]``."""
    if pred.shape != target.shape:
        raise ModelError(f"clips differ in shape: {tuple(pred.shape)} vs {tuple(target.shape)}")
    return (mabd(pred) - mabd(target)).square().mean(dim=-1)


# ---- optional extras ----------------------------------------------------------------------------------------


def srsim_available() -> bool:
    try:
        import piq  # noqa: F401
    except ImportError:
        return False
    return True


def srsim(pred: Tensor, target: Tensor) -> Tensor:
    """SR-SIM (Zhang & Li 2012) per image through ``piq.srsim`` (data range 1, chromatic off) on PQ R'G'B'.

    Raises:
        ModelError: piq is not installed.
    """
    try:
        import piq
    except ImportError as error:
        raise ModelError("SR-SIM needs the piq package (pip install piq; it needs torchvision)") from error
    pred, target = _check_pair(pred, target)
    lead = pred.shape[:-3]
    flat = [t.reshape(-1, *t.shape[-3:]).float().clamp(0.0, 1.0) for t in (pred, target)]
    return piq.srsim(flat[0], flat[1], data_range=1.0, reduction="none").double().reshape(lead)


class LpipsMetric:
    """LPIPS (Zhang et al. 2018) through the ``lpips`` package, weights from a local file (nothing downloads).

    Args:
        weights_path: a ``state_dict`` of a whole ``lpips.LPIPS`` module (backbone ``net.*`` and linear layers
            ``lin*``), loaded with ``weights_only=True``.
        net: the backbone the file was made for: ``"alex"``, ``"vgg"`` or ``"squeeze"``.
        device: where to run.

    Inputs are PQ R'G'B' in [0, 1], mapped to [-1, 1] as LPIPS expects.
    """

    def __init__(self, weights_path: str | Path, *, net: str = "alex", device: str | torch.device = "cpu"):
        try:
            import lpips
        except ImportError as error:
            raise ModelError("LPIPS needs the lpips package (pip install lpips; it needs torchvision)") from error
        path = Path(weights_path)
        if not path.is_file():
            raise ModelError(f"LPIPS weights file {path} does not exist")
        self.model = lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False)
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.model.load_state_dict(state)
        self.model = self.model.to(device).eval()

    @torch.no_grad()
    def __call__(self, pred: Tensor, target: Tensor) -> Tensor:
        pred, target = _check_pair(pred, target)
        lead = pred.shape[:-3]
        device = next(self.model.parameters()).device
        flat = [t.reshape(-1, *t.shape[-3:]).float().to(device) * 2.0 - 1.0 for t in (pred, target)]
        return self.model(flat[0], flat[1]).double().reshape(lead).cpu()


# ---- the Table I suite ----------------------------------------------------------------------------------------

#: metric name -> (column label, True when higher is better), in Table I's order (MABD added last)
METRIC_COLUMNS: Mapping[str, tuple[str, bool]] = {
    "psnr": ("PSNR ↑", True),
    "ssim": ("SSIM ↑", True),
    "srsim": ("SR-SIM ↑", True),
    "lpips": ("LPIPS ↓", False),
    "delta_e_itp": ("ΔE_ITP ↓", False),
    "hdr_vdp": ("HDR-VDP ↑", True),
    "mabd_mse": ("MABD-MSE ×10⁻⁴ ↓", False),
}
#: shown value = stored value * scale (the JSON keeps stored values)
DISPLAY_SCALE = {"mabd_mse": 1e4}


class FrameMetrics:
    """The per-frame metrics of one evaluation: PSNR, SSIM, ΔE_ITP always; SR-SIM and LPIPS when enabled.

    Args:
        use_srsim: compute SR-SIM (needs piq); None = when piq is installed.
        lpips: an :class:`LpipsMetric`, or None.
    """

    def __init__(self, *, use_srsim: bool | None = None, lpips: LpipsMetric | None = None):
        self.use_srsim = srsim_available() if use_srsim is None else use_srsim
        if self.use_srsim and not srsim_available():
            raise ModelError("SR-SIM requested but piq is not installed")
        self.lpips = lpips
        self.functions: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
            "psnr": psnr, "ssim": ssim, "delta_e_itp": delta_e_itp}
        if self.use_srsim:
            self.functions["srsim"] = srsim
        if lpips is not None:
            self.functions["lpips"] = lpips

    @property
    def names(self) -> list[str]:
        return [name for name in METRIC_COLUMNS if name in self.functions]

    def __call__(self, pred: Tensor, target: Tensor) -> dict[str, Tensor]:
        """``[..., 3, H, W]`` pairs -> {metric: ``[...]`` float64 on the CPU}."""
        return {name: self.functions[name](pred, target).cpu() for name in self.names}


def finite_mean(values: list[float]) -> float:
    """Mean of the finite values (PSNR of an exact frame is inf); nan when there are none."""
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan
