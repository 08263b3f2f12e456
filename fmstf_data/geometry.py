"""Bringing SDR frames onto the HDR frame's geometry.

When a platform serves the SDR version at another resolution, its planes are resampled to the HDR size before they
are stored, so that every stored sample has both sides on one pixel grid. The resampling works on the 4:2:0 code
planes directly (no colour conversion, so no matrix or range can go wrong): luma to (H, W), each chroma plane to
(ceil(H/2), ceil(W/2)).

Filter: bicubic (a = -0.75, PyTorch's ``interpolate(mode="bicubic", align_corners=False)``), with antialiasing when
shrinking, computed in float32 on code values, then rounded half to even and clipped to the code range. Luma and
chroma planes are resampled independently on their own pixel-centre grids; the resulting chroma siting error is below
a quarter of a chroma sample for scale factors between 1/2 and 2 (documented, not corrected).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fmstf_data.errors import AlignmentError

RESAMPLING_FILTER = "bicubic-antialias"


@dataclass(frozen=True)
class Geometry:
    """How SDR pixels map onto the HDR frame.

    Attributes:
        hdr_width, hdr_height: the HDR frame size (the target).
        sdr_width, sdr_height: the SDR frame size as decoded.
    """

    hdr_width: int
    hdr_height: int
    sdr_width: int
    sdr_height: int

    def __post_init__(self) -> None:
        for name in ("hdr_width", "hdr_height", "sdr_width", "sdr_height"):
            if getattr(self, name) <= 0:
                raise AlignmentError(f"{name} must be positive, got {getattr(self, name)}")

    @property
    def needs_resampling(self) -> bool:
        return (self.hdr_width, self.hdr_height) != (self.sdr_width, self.sdr_height)

    @property
    def scale(self) -> tuple[float, float]:
        """(x, y) scale factors from SDR to HDR pixels."""
        return self.hdr_width / self.sdr_width, self.hdr_height / self.sdr_height

    def describe(self) -> str:
        if not self.needs_resampling:
            return f"same geometry {self.hdr_width}x{self.hdr_height}"
        return (f"SDR {self.sdr_width}x{self.sdr_height} resampled to {self.hdr_width}x{self.hdr_height} "
                f"({RESAMPLING_FILTER})")


def plan_geometry(hdr_size: tuple[int, int], sdr_size: tuple[int, int], *, max_aspect_difference: float = 0.02
                  ) -> Geometry:
    """The geometry for (width, height) sizes; refuses aspect ratios that a plain scale cannot map.

    Raises:
        AlignmentError: the aspect ratios differ by more than ``max_aspect_difference`` (relative).
    """
    geometry = Geometry(hdr_width=hdr_size[0], hdr_height=hdr_size[1], sdr_width=sdr_size[0], sdr_height=sdr_size[1])
    scale_x, scale_y = geometry.scale
    if abs(scale_x / scale_y - 1.0) > max_aspect_difference:
        raise AlignmentError(
            f"SDR {sdr_size[0]}x{sdr_size[1]} and HDR {hdr_size[0]}x{hdr_size[1]} have different aspect ratios "
            f"(x scale {scale_x:.4f}, y scale {scale_y:.4f}); letterboxed or cropped versions are not mapped yet")
    return geometry


def resample_plane(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resample one integer code plane [h, w] to [height, width] with the module's filter; same dtype out."""
    if plane.shape == (height, width):
        return plane
    source = torch.from_numpy(plane.astype(np.float32))[None, None]
    shrinking = height < plane.shape[0] or width < plane.shape[1]
    resized = F.interpolate(source, size=(height, width), mode="bicubic", align_corners=False, antialias=shrinking)
    maximum = float(np.iinfo(plane.dtype).max)
    return torch.round(resized[0, 0]).clamp_(0.0, maximum).numpy().astype(plane.dtype)


def resample_planes(y: np.ndarray, cb: np.ndarray, cr: np.ndarray, height: int, width: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resample a 4:2:0 frame's planes to luma size (height, width)."""
    chroma_height, chroma_width = (height + 1) // 2, (width + 1) // 2
    return (resample_plane(y, height, width), resample_plane(cb, chroma_height, chroma_width),
            resample_plane(cr, chroma_height, chroma_width))
