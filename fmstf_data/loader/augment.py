"""Crops and geometric augmentation, identical across the six frames of a sample (three HDR, three SDR).

A crop is drawn once per training example and applied to every plane of both sides: luma at an even offset
``(top, left)`` of an even size ``(height, width)``, chroma (4:2:0) at ``(top / 2, left / 2)`` of half the size,
so the crop never splits a chroma sample. The planes are cropped *before* colour conversion, with a margin of one
chroma sample (two luma pixels) on each side, so the converted crop equals the same region cut from the converted
whole frame (the chroma upsampler looks one chroma sample beyond the crop); margins that fall outside the frame
repeat the edge, as the whole-frame upsampler does.

Flips and 90° rotations are applied after conversion, on R'G'B', where they are exact permutations of pixels
(applied to Y'CbCr planes they would move chroma sites). Order: horizontal flip, vertical flip, then ``rot90``
quarter turns counter-clockwise (``torch.rot90`` on the last two axes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fmstf_data.errors import LoaderError

#: margin kept around a crop before conversion, in chroma samples (two luma pixels)
CHROMA_MARGIN = 1
LUMA_MARGIN = 2 * CHROMA_MARGIN


@dataclass(frozen=True)
class CropParams:
    """One training example's region and geometric augmentation.

    Attributes:
        top, left: even offsets of the crop in the stored frame (luma pixels).
        height, width: even crop size (luma pixels); the whole frame when no crop is asked.
        flip_h: mirror left-right. flip_v: mirror top-bottom. rot90: quarter turns counter-clockwise, 0..3.
    """

    top: int
    left: int
    height: int
    width: int
    flip_h: bool = False
    flip_v: bool = False
    rot90: int = 0

    def __post_init__(self) -> None:
        if self.top < 0 or self.left < 0 or self.height < 1 or self.width < 1:
            raise LoaderError(f"invalid crop {self}")
        if self.rot90 not in (0, 1, 2, 3):
            raise LoaderError(f"rot90 must be 0..3 quarter turns, got {self.rot90}")


def draw_crop(rng: np.random.Generator | None, frame_height: int, frame_width: int,
              crop: tuple[int, int] | None, *, flips: bool, rot90: bool) -> CropParams:
    """A crop of ``crop`` = (height, width) in a ``frame_height x frame_width`` frame.

    With ``rng`` (training): a uniformly random even offset, and random flips / quarter turns when enabled.
    Without (evaluation): the centred crop (offsets rounded down to even), no flips or turns.
    ``crop=None`` keeps the whole frame (any size, odd included).
    """
    if crop is None:
        params = dict(top=0, left=0, height=frame_height, width=frame_width)
    else:
        height, width = crop
        if height > frame_height or width > frame_width:
            raise LoaderError(f"crop {height}x{width} does not fit a {frame_height}x{frame_width} frame; use a "
                              "smaller crop_size")
        slots_v, slots_h = (frame_height - height) // 2, (frame_width - width) // 2
        if rng is None:
            top, left = 2 * (slots_v // 2), 2 * (slots_h // 2)
        else:
            top, left = 2 * int(rng.integers(0, slots_v + 1)), 2 * int(rng.integers(0, slots_h + 1))
        params = dict(top=top, left=left, height=height, width=width)
    if rng is None:
        return CropParams(**params)
    flip_h = bool(rng.integers(0, 2)) if flips else False
    flip_v = bool(rng.integers(0, 2)) if flips else False
    turns = int(rng.integers(0, 4)) if rot90 else 0
    return CropParams(**params, flip_h=flip_h, flip_v=flip_v, rot90=turns)


def _clipped(start: int, stop: int, size: int) -> np.ndarray | slice:
    if start >= 0 and stop <= size:
        return slice(start, stop)
    return np.clip(np.arange(start, stop), 0, size - 1)


def crop_plane(plane: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """``plane[..., top:top+height, left:left+width]``, rows/columns outside the plane repeating its edge."""
    rows = _clipped(top, top + height, plane.shape[-2])
    cols = _clipped(left, left + width, plane.shape[-1])
    out = plane[..., rows, :] if isinstance(rows, slice) else np.take(plane, rows, axis=-2)
    out = out[..., cols] if isinstance(cols, slice) else np.take(out, cols, axis=-1)
    return np.ascontiguousarray(out)


def crop_planes_with_margin(y: np.ndarray, cb: np.ndarray, cr: np.ndarray,
                            crop: CropParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The crop's planes with a margin of :data:`LUMA_MARGIN` luma / :data:`CHROMA_MARGIN` chroma on every side.

    Shapes: y [..., h + 4, w + 4], cb and cr [..., ceil((h + 4) / 2), ceil((w + 4) / 2)] (4:2:0 of the padded
    luma; h / 2 + 2 for the even crops of training).
    """
    if crop.top % 2 or crop.left % 2:
        raise LoaderError(f"4:2:0 crops need even offsets, got top={crop.top}, left={crop.left}")
    y_out = crop_plane(y, crop.top - LUMA_MARGIN, crop.left - LUMA_MARGIN,
                       crop.height + 2 * LUMA_MARGIN, crop.width + 2 * LUMA_MARGIN)
    c_top, c_left = crop.top // 2 - CHROMA_MARGIN, crop.left // 2 - CHROMA_MARGIN
    c_height = (crop.height + 2 * LUMA_MARGIN + 1) // 2  # 4:2:0 of the padded luma (odd whole frames too)
    c_width = (crop.width + 2 * LUMA_MARGIN + 1) // 2
    return (y_out, crop_plane(cb, c_top, c_left, c_height, c_width),
            crop_plane(cr, c_top, c_left, c_height, c_width))


def apply_geometry(x: torch.Tensor, flip_h: bool, flip_v: bool, rot90: int) -> torch.Tensor:
    """Flips then quarter turns on the last two axes of ``x`` ([..., h, w])."""
    dims = [d for d, on in ((-1, flip_h), (-2, flip_v)) if on]
    if dims:
        x = torch.flip(x, dims)
    if rot90:
        x = torch.rot90(x, rot90, dims=(-2, -1))
    return x
