"""Temporal alignment of an SDR version to its HDR original, from content.

The two versions of a video differ by an unknown tone curve and gamut mapping, by resolution, framing, codec and
bitrate, and by frames trimmed at either end. Timestamps and file names cannot be trusted, so frames are compared by
*signatures* that survive any monotonic tone curve:

1. the luma plane's picture area (see :mod:`fmstf_data.align.geometry`) is area-averaged onto a small thumbnail grid that
   is the same for both versions (about 96 x 54 for 16:9, :func:`thumbnail_size`), in 8-bit code units;
2. the thumbnail is replaced by the ranks of its pixels (ties get their average rank): a rank transform is unchanged
   by any increasing tone curve, so the two versions' rank images agree up to noise;
3. the **rank signature** is the zero-mean, unit-norm rank image, and the **detail signature** the zero-mean,
   unit-norm Laplacian of the rank image (its edges and texture).

Two scores compare frames, both correlations in [-1, 1]:

- :func:`match_score` (rank signatures) is Spearman's rank correlation of the thumbnails: "the same picture". It is
  near 1 for the two versions of one frame whatever the tone curve, and near 0 for unrelated pictures, but it
  changes slowly over time (neighbouring frames of a shot score almost as high).
- :func:`detail_score` (detail signatures) changes fast with motion: "the same instant". Its peak over candidate
  partners is sharp, so it picks the offset and verifies each frame's partner against its neighbours.

Flat frames (black, a uniform fade) have no ranks to compare: both signatures are zero and every score is 0.

The offset search (:mod:`fmstf_data.align.offset`) and the per-frame verification
(:mod:`fmstf_data.align.verify`) are built on these scores.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from fmstf_data.errors import AlignmentError, InvalidValueError
from fmstf_data.video.decode import DecodedFrame

logger = logging.getLogger(__name__)

#: thumbnail pixels of a signature (96 x 54 for 16:9): small enough to be cheap, fine enough to see motion
SIGNATURE_PIXELS = 96 * 54
#: a thumbnail whose luma codes vary less than this (standard deviation, in 8-bit code units) counts as flat
FLAT_STD_CODES_8BIT = 1.0
#: the area average first decimates planes by an integer stride that keeps at least this many samples per
#: thumbnail pixel along each axis (a cheap pre-reduction for large frames)
MIN_SAMPLES_PER_THUMBNAIL_PIXEL = 4


def thumbnail_size(width: int, height: int) -> tuple[int, int]:
    """Signature thumbnail (width, height) for a picture of the given aspect: about :data:`SIGNATURE_PIXELS`
    pixels, each side at least 8. Both versions of a pair use the HDR picture's thumbnail size."""
    if width <= 0 or height <= 0:
        raise AlignmentError(f"picture size must be positive, got {width}x{height}")
    aspect = width / height
    thumb_width = max(8, round(math.sqrt(SIGNATURE_PIXELS * aspect)))
    thumb_height = max(8, round(thumb_width / aspect))
    return thumb_width, thumb_height


def area_average(plane: np.ndarray, out_height: int, out_width: int) -> np.ndarray:
    """Area-average (box-filter) a 2-D plane onto an ``out_height`` x ``out_width`` grid, float32.

    Output pixel (i, j) is the mean of input rows ``[floor(i*H/h), ceil((i+1)*H/h))`` and columns likewise (windows
    overlap by a pixel where the ratio is not an integer), summed in float32 row by row in the input's order and
    divided by the window height, then its width. This is exactly PyTorch's adaptive average pooling
    (``F.interpolate(mode="area")``), bit for bit, without importing torch on the data path.
    """
    in_height, in_width = plane.shape
    if out_height <= 0 or out_width <= 0 or in_height <= 0 or in_width <= 0:
        raise AlignmentError(f"cannot area-average a {in_width}x{in_height} plane to {out_width}x{out_height}")
    values = np.ascontiguousarray(plane, dtype=np.float32)
    rows, cols = np.arange(out_height), np.arange(out_width)
    row_start = rows * in_height // out_height
    row_count = -(-(rows + 1) * in_height // out_height) - row_start
    col_start = cols * in_width // out_width
    col_count = -(-(cols + 1) * in_width // out_width) - col_start
    total = np.zeros((out_height, out_width), dtype=np.float32)
    zero = np.float32(0.0)
    for dy in range(int(row_count.max())):
        row_values = values[np.minimum(row_start + dy, in_height - 1)]
        row_used = dy < row_count
        for dx in range(int(col_count.max())):
            used = row_used[:, None] & (dx < col_count)[None, :]
            total += np.where(used, row_values[:, np.minimum(col_start + dx, in_width - 1)], zero)
    return total / row_count.astype(np.float32)[:, None] / col_count.astype(np.float32)[None, :]


def luma_thumbnail(y: np.ndarray, bit_depth: int, size: tuple[int, int],
                   rect: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Area-average a luma code plane [H, W] (or its ``rect`` = (x, y, width, height)) to ``size`` = (width, height).

    Returns float32 [height, width] in 8-bit code units. Large planes are first decimated by an integer stride
    that keeps :data:`MIN_SAMPLES_PER_THUMBNAIL_PIXEL` samples per thumbnail pixel along each axis.
    """
    if rect is not None:
        left, top, width, height = rect
        y = y[top:top + height, left:left + width]
    thumb_width, thumb_height = size
    stride = max(1, min(y.shape[0] // (MIN_SAMPLES_PER_THUMBNAIL_PIXEL * thumb_height),
                        y.shape[1] // (MIN_SAMPLES_PER_THUMBNAIL_PIXEL * thumb_width)))
    if stride > 1:
        y = y[::stride, ::stride]
    thumbnail = area_average(y, thumb_height, thumb_width)
    if bit_depth != 8:  # scaled here, on the small array (numpy: no thread pool to wake for a tiny job)
        thumbnail = thumbnail * np.float32(1.0 / (1 << (bit_depth - 8)))
    return thumbnail


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 of a 1-D array as float64, ties sharing their average rank."""
    order = np.argsort(values)
    sorted_values = values[order]
    boundaries = np.flatnonzero(sorted_values[1:] != sorted_values[:-1]) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [values.size]))
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat((starts + ends - 1) / 2.0, ends - starts)
    return ranks


def _unit(vector: np.ndarray) -> np.ndarray:
    vector = vector - vector.mean()
    norm = float(np.linalg.norm(vector))
    if norm < 1e-9:
        return np.zeros(vector.size, dtype=np.float32)
    return (vector / norm).astype(np.float32)


def rank_signature(thumbnail: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-norm rank transform of a thumbnail (float32 vector); all zeros when the frame is flat."""
    values = thumbnail.astype(np.float64, copy=False).ravel()
    if values.std() < FLAT_STD_CODES_8BIT:
        return np.zeros(values.size, dtype=np.float32)
    return _unit(average_ranks(values))


@dataclass(frozen=True)
class FrameSignature:
    """What alignment knows about one frame.

    Attributes:
        rank: zero-mean, unit-norm rank image, float32 [h * w] (zeros when flat).
        detail: zero-mean, unit-norm Laplacian of the rank image, float32 [(h - 2) * (w - 2)] (zeros when flat).
        level: mean luma of the thumbnail, 8-bit code units (fade detection).
        thumbnail: the thumbnail itself, float32 [h, w], 8-bit code units (dissolve detection).
        chroma: the Cb and Cr planes' thumbnails at half the size, float32 [2, h // 2, w // 2], 8-bit code units
            (128 = neutral), or None when not computed (local damage check, :func:`fmstf_data.align.verify.
            damage_residual`).
    """

    rank: np.ndarray = field(repr=False)
    detail: np.ndarray = field(repr=False)
    level: float
    thumbnail: np.ndarray = field(repr=False)
    chroma: np.ndarray | None = field(default=None, repr=False)

    @property
    def flat(self) -> bool:
        """True when the frame has no texture to compare (black, uniform)."""
        return not self.rank.any()


def signature_from_thumbnail(thumbnail: np.ndarray, chroma: np.ndarray | None = None) -> FrameSignature:
    """The :class:`FrameSignature` of a thumbnail [h, w] (h, w >= 3) in 8-bit code units (and its chroma
    thumbnails [2, h // 2, w // 2], kept as they are)."""
    height, width = thumbnail.shape
    level = float(thumbnail.mean())
    values = thumbnail.astype(np.float64).ravel()
    if values.std() < FLAT_STD_CODES_8BIT:
        zeros = np.zeros(values.size, dtype=np.float32)
        return FrameSignature(zeros, np.zeros((height - 2) * (width - 2), np.float32), level, thumbnail, chroma)
    ranks = average_ranks(values)
    image = ranks.reshape(height, width)
    laplacian = (4 * image[1:-1, 1:-1] - image[:-2, 1:-1] - image[2:, 1:-1] - image[1:-1, :-2] - image[1:-1, 2:])
    return FrameSignature(_unit(ranks), _unit(laplacian.ravel()), level, thumbnail, chroma)


def chroma_thumbnails(frame: DecodedFrame, size: tuple[int, int],
                      rect: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """The Cb and Cr planes of a frame's picture area ``rect`` (luma coordinates) area-averaged onto half the
    luma thumbnail ``size`` = (width, height): float32 [2, height // 2, width // 2], 8-bit code units."""
    half = (max(1, size[0] // 2), max(1, size[1] // 2))
    chroma_rect = None
    if rect is not None:
        left, top, width, height = rect
        chroma_rect = (left // 2, top // 2, max(1, width // 2), max(1, height // 2))
    return np.stack([luma_thumbnail(plane, frame.bit_depth, half, chroma_rect) for plane in (frame.cb, frame.cr)])


def frame_signature(frame: DecodedFrame, size: tuple[int, int],
                    rect: tuple[int, int, int, int] | None = None) -> FrameSignature:
    """Signature of a decoded frame's picture area ``rect`` = (x, y, width, height) on a ``size`` thumbnail, with
    its chroma thumbnails (:func:`chroma_thumbnails`)."""
    return signature_from_thumbnail(luma_thumbnail(frame.y, frame.bit_depth, size, rect),
                                    chroma_thumbnails(frame, size, rect))


def match_score(a: FrameSignature, b: FrameSignature) -> float:
    """Spearman rank correlation of two frames' thumbnails, in [-1, 1] (0 if either is flat)."""
    return float(np.dot(a.rank, b.rank))


def detail_score(a: FrameSignature, b: FrameSignature) -> float:
    """Correlation of two frames' rank-image Laplacians, in [-1, 1] (0 if either is flat): sharp in time."""
    return float(np.dot(a.detail, b.detail))


@dataclass(frozen=True)
class SignatureMatrix:
    """Signatures of consecutive frames stacked: ``rank`` [n, D], ``detail`` [n, E] (float32)."""

    rank: np.ndarray
    detail: np.ndarray

    def __post_init__(self) -> None:
        if self.rank.ndim != 2 or self.detail.ndim != 2 or len(self.rank) != len(self.detail):
            raise InvalidValueError(f"rank {self.rank.shape} and detail {self.detail.shape} must be [n, D] and [n, E]")

    def __len__(self) -> int:
        return len(self.rank)

    @classmethod
    def stack(cls, signatures: Sequence[FrameSignature]) -> SignatureMatrix:
        if not signatures:
            return cls(np.zeros((0, 1), np.float32), np.zeros((0, 1), np.float32))
        return cls(np.stack([s.rank for s in signatures]), np.stack([s.detail for s in signatures]))
