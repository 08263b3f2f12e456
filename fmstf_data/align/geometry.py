"""Spatial geometry between the two versions: picture areas (black bars), scale, and resampling onto the HDR grid.

A platform may serve the SDR version at another resolution, letterboxed (bars above and below) or pillarboxed
(bars left and right), or with the HDR version's own bars cropped away. Every stored sample must have both sides on
one pixel grid, the HDR frame's, so:

1. :class:`PictureAreaDetector` finds each version's *picture area*: the rows and columns between the outermost
   ones where any of the first frames rises above black (bars are black in every frame);
2. :func:`plan_geometry` maps the SDR picture onto the HDR picture (a scale and a translation per axis). When both
   pictures sit at the same relative place in their frames (no bars, or the same bars), the whole SDR frame maps
   onto the whole HDR frame. It refuses pictures whose aspect ratios differ by more than a tolerance (a crop or a
   stretch that a scale cannot undo), pictures smaller than a quarter of their frame, and upscaling beyond a limit;
3. :meth:`Geometry.map_sdr_planes` resamples the SDR 4:2:0 code planes onto the HDR frame: HDR samples outside the
   mapped picture get SDR black.

A version cropped or zoomed before scaling shows no bars to find; :func:`register_rects` finds the regions that
correspond by comparing frame signatures (:mod:`fmstf_data.align`) of frame pairs over candidate crops.

Resampling filter (``RESAMPLING_FILTER``): separable Keys cubic convolution with a = -0.5 (Catmull-Rom), widened by
the scale factor when shrinking (antialiasing, as PIL and PyTorch's ``antialias=True`` do), weights normalised to
sum to 1 (a constant plane stays exactly constant), source samples limited to the SDR picture (edge samples
repeated, so bars never bleed into the picture), computed in float32 on code values, rounded half to even and
clipped to the code range. Luma and chroma are resampled on their own sample grids with the 4:2:0 siting of
H.264/HEVC (MPEG-2 "left"): a chroma sample sits on the even luma column and midway between two luma rows, so the
chroma planes land exactly where the luma does (no siting error).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fmstf_data.align.signatures import detail_score, frame_signature, match_score, thumbnail_size
from fmstf_data.errors import AlignmentError
from fmstf_data.video.decode import DecodedFrame

RESAMPLING_FILTER = "catmull-rom-antialias"
#: Keys cubic parameter of the filter
CUBIC_A = -0.5
#: a row or column is picture when any sample in it rises this far above black (in 8-bit code units)
BAR_MARGIN_CODES_8BIT = 12
#: narrow-range black luma in 8-bit code units
BLACK_CODE_8BIT = 16

Rect = tuple[int, int, int, int]
"""(x, y, width, height) in luma pixels."""


class PictureAreaDetector:
    """Accumulates the brightest sample of every row and column over frames, then finds the picture area.

    Call :meth:`update` with luma planes [H, W] of one version (any number of frames, the more the safer: a dark
    scene can look like bars in one frame, not in many), then :meth:`picture`.
    """

    def __init__(self) -> None:
        self._row_max: np.ndarray | None = None
        self._col_max: np.ndarray | None = None
        self.frames = 0
        self.bit_depth = 8

    def update(self, y: np.ndarray, bit_depth: int) -> None:
        """Register one luma code plane [H, W]."""
        rows, cols = y.max(axis=1), y.max(axis=0)
        if self._row_max is None or self._row_max.shape != rows.shape or self._col_max.shape != cols.shape:
            if self._row_max is not None:
                raise AlignmentError(f"frame size changed from {len(self._col_max)}x{len(self._row_max)} to "
                                     f"{len(cols)}x{len(rows)} while looking for the picture area")
            self._row_max, self._col_max = rows, cols
        else:
            np.maximum(self._row_max, rows, out=self._row_max)
            np.maximum(self._col_max, cols, out=self._col_max)
        self.frames += 1
        self.bit_depth = bit_depth

    def picture(self) -> Rect | None:
        """The picture area (x, y, width, height), or None when no frame was seen or nothing rose above black."""
        if self._row_max is None:
            return None
        threshold = (BLACK_CODE_8BIT + BAR_MARGIN_CODES_8BIT) << (self.bit_depth - 8)
        rows = np.flatnonzero(self._row_max > threshold)
        cols = np.flatnonzero(self._col_max > threshold)
        if rows.size == 0 or cols.size == 0:
            return None
        return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


@dataclass(frozen=True)
class Geometry:
    """How SDR pixels map onto the HDR frame.

    Attributes:
        hdr_width, hdr_height: the HDR frame size (the target grid).
        sdr_width, sdr_height: the SDR frame size as decoded.
        hdr_rect: the HDR region (x, y, width, height) that the SDR region ``sdr_rect`` maps onto.
        sdr_rect: the SDR region mapped; the whole frame unless the versions are framed differently.
        hdr_picture, sdr_picture: the detected picture areas (what signatures compare).
        fill_codes: (luma, chroma) codes written where the HDR frame lies outside ``hdr_rect`` (SDR black).
    """

    hdr_width: int
    hdr_height: int
    sdr_width: int
    sdr_height: int
    hdr_rect: Rect | None = None
    sdr_rect: Rect | None = None
    hdr_picture: Rect | None = None
    sdr_picture: Rect | None = None
    fill_codes: tuple[int, int] = (16, 128)

    def __post_init__(self) -> None:
        for name in ("hdr_width", "hdr_height", "sdr_width", "sdr_height"):
            if getattr(self, name) <= 0:
                raise AlignmentError(f"{name} must be positive, got {getattr(self, name)}")
        for name, width, height in (("hdr", self.hdr_width, self.hdr_height), ("sdr", self.sdr_width, self.sdr_height)):
            full = (0, 0, width, height)
            for kind in ("rect", "picture"):
                attribute = f"{name}_{kind}"
                rect = getattr(self, attribute) or full
                object.__setattr__(self, attribute, tuple(int(v) for v in rect))
                x, y, w, h = rect
                if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width or y + h > height:
                    raise AlignmentError(f"{attribute} {rect} does not fit the {width}x{height} frame")

    @property
    def needs_resampling(self) -> bool:
        """False when the SDR planes can be stored as decoded."""
        return (self.hdr_width, self.hdr_height) != (self.sdr_width, self.sdr_height) or self.hdr_rect != self.sdr_rect

    @property
    def scale(self) -> tuple[float, float]:
        """(x, y) scale factors from SDR to HDR pixels."""
        return self.hdr_rect[2] / self.sdr_rect[2], self.hdr_rect[3] / self.sdr_rect[3]

    @property
    def full_frame(self) -> bool:
        """True when the whole SDR frame maps onto the whole HDR frame."""
        return self.hdr_rect == (0, 0, self.hdr_width, self.hdr_height) and \
            self.sdr_rect == (0, 0, self.sdr_width, self.sdr_height)

    def describe(self) -> str:
        """One line a person reads."""
        if not self.needs_resampling:
            return f"same geometry {self.hdr_width}x{self.hdr_height}"
        if self.full_frame:
            return (f"SDR {self.sdr_width}x{self.sdr_height} resampled to {self.hdr_width}x{self.hdr_height} "
                    f"({RESAMPLING_FILTER})")
        return (f"SDR picture {_rect_text(self.sdr_rect)} of {self.sdr_width}x{self.sdr_height} resampled to "
                f"{_rect_text(self.hdr_rect)} of {self.hdr_width}x{self.hdr_height}, black outside "
                f"({RESAMPLING_FILTER})")

    def to_dict(self) -> dict[str, object]:
        """JSON-ready description."""
        return {"description": self.describe(), "hdr_size": [self.hdr_width, self.hdr_height],
                "sdr_size": [self.sdr_width, self.sdr_height], "hdr_rect": list(self.hdr_rect),
                "sdr_rect": list(self.sdr_rect), "hdr_picture": list(self.hdr_picture),
                "sdr_picture": list(self.sdr_picture), "scale_x": self.scale[0], "scale_y": self.scale[1],
                "resampling_filter": RESAMPLING_FILTER if self.needs_resampling else None}

    def map_sdr_planes(self, y: np.ndarray, cb: np.ndarray, cr: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """SDR 4:2:0 code planes -> the same on the HDR grid: luma [hdr_height, hdr_width], chroma
        [ceil(hdr_height/2), ceil(hdr_width/2)], same dtype; unchanged (not copied) when no resampling is needed."""
        if y.shape != (self.sdr_height, self.sdr_width):
            raise AlignmentError(f"SDR luma plane {y.shape} does not match the planned {self.sdr_width}x"
                                 f"{self.sdr_height}")
        if not self.needs_resampling:
            return y, cb, cr
        tables = _tables(self)
        out = []
        for plane, (rows, cols), fill in zip((y, cb, cr), (tables["luma"], tables["chroma"], tables["chroma"]),
                                             (self.fill_codes[0], self.fill_codes[1], self.fill_codes[1])):
            out.append(_resample(plane, rows, cols, fill))
        return out[0], out[1], out[2]


def _rect_text(rect: Rect) -> str:
    x, y, w, h = rect
    return f"{w}x{h}+{x}+{y}"


def plan_geometry(hdr_size: tuple[int, int], sdr_size: tuple[int, int], *, hdr_picture: Rect | None = None,
                  sdr_picture: Rect | None = None, max_aspect_difference: float = 0.02, max_upscale: float = 4.0,
                  same_framing_tolerance: float = 0.01, fill_codes: tuple[int, int] = (16, 128)) -> Geometry:
    """The geometry for frame sizes (width, height) and detected picture areas (None: the whole frame).

    When both pictures take the same relative place in their frames (within ``same_framing_tolerance`` of the frame
    size), the whole frames map onto each other; otherwise the SDR picture maps onto the HDR picture.

    Raises:
        AlignmentError: the mapped regions' aspect ratios differ by more than ``max_aspect_difference`` (relative),
            a picture covers less than a quarter of its frame, or the SDR picture would be upscaled more than
            ``max_upscale`` times.
    """
    hdr_width, hdr_height = hdr_size
    sdr_width, sdr_height = sdr_size
    hdr_picture = hdr_picture or (0, 0, hdr_width, hdr_height)
    sdr_picture = sdr_picture or (0, 0, sdr_width, sdr_height)
    for name, picture, (width, height) in (("HDR", hdr_picture, hdr_size), ("SDR", sdr_picture, sdr_size)):
        if picture[2] * picture[3] < 0.25 * width * height:
            raise AlignmentError(
                f"the {name} picture area found ({_rect_text(picture)} of {width}x{height}) covers less than a "
                f"quarter of the frame: bars that large, or a mostly black start, cannot be mapped")
    relative_hdr = np.array(hdr_picture, float) / [hdr_width, hdr_height, hdr_width, hdr_height]
    relative_sdr = np.array(sdr_picture, float) / [sdr_width, sdr_height, sdr_width, sdr_height]
    if np.abs(relative_hdr - relative_sdr).max() <= same_framing_tolerance:
        hdr_rect, sdr_rect = (0, 0, hdr_width, hdr_height), (0, 0, sdr_width, sdr_height)
    else:
        hdr_rect, sdr_rect = hdr_picture, sdr_picture
    geometry = Geometry(hdr_width=hdr_width, hdr_height=hdr_height, sdr_width=sdr_width, sdr_height=sdr_height,
                        hdr_rect=hdr_rect, sdr_rect=sdr_rect, hdr_picture=hdr_picture, sdr_picture=sdr_picture,
                        fill_codes=fill_codes)
    scale_x, scale_y = geometry.scale
    if abs(scale_x / scale_y - 1.0) > max_aspect_difference:
        what = "frames" if geometry.full_frame else "pictures (inside their black bars)"
        raise AlignmentError(
            f"the SDR and HDR {what} have different aspect ratios: SDR {_rect_text(sdr_rect)} of "
            f"{sdr_width}x{sdr_height}, HDR {_rect_text(hdr_rect)} of {hdr_width}x{hdr_height} (x scale "
            f"{scale_x:.4f}, y scale {scale_y:.4f}, tolerance {max_aspect_difference:.0%}); a cropped or stretched "
            f"version cannot be mapped by a scale")
    if max(scale_x, scale_y) > max_upscale:
        raise AlignmentError(
            f"the SDR picture {_rect_text(sdr_rect)} would be upscaled {max(scale_x, scale_y):.2f} times onto the HDR "
            f"picture {_rect_text(hdr_rect)} (limit {max_upscale}): use an SDR version closer to the HDR resolution")
    return geometry


# ---- resampling ---------------------------------------------------------------------------------------------------


def cubic_kernel(x: np.ndarray, a: float = CUBIC_A) -> np.ndarray:
    """Keys cubic convolution kernel (support [-2, 2])."""
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


@dataclass(frozen=True)
class AxisTable:
    """Resampling of one axis: output samples [first, first + index.shape[1]) are inside the mapped region and are
    ``sum_t weight[t, k] * source[index[t, k]]``; the others get the fill code."""

    out_count: int
    first: int
    index: np.ndarray
    weight: np.ndarray


def axis_table(out_count: int, out_start: float, out_length: float, in_count: int, in_start: float,
               in_length: float, *, centre: float, pitch: float) -> AxisTable:
    """The :class:`AxisTable` mapping luma coordinates [in_start, in_start + in_length) of the source onto
    [out_start, out_start + out_length) of the output, for samples whose k-th centre lies at ``centre + pitch * k``
    (luma: 0.5, 1; horizontally sited chroma: 0.5, 2; vertically sited chroma: 1, 2) in luma pixel coordinates."""
    ratio = in_length / out_length  # source samples per output sample
    centres = centre + pitch * np.arange(out_count)
    inside = np.flatnonzero((centres >= out_start) & (centres < out_start + out_length))
    if inside.size == 0:
        return AxisTable(out_count, 0, np.zeros((1, 0), np.int64), np.zeros((1, 0), np.float32))
    positions = in_start + (centres[inside] - out_start) * ratio  # luma coordinates in the source
    u = (positions - centre) / pitch  # fractional source sample index
    low = max(0, math.ceil((in_start - centre) / pitch))
    high = max(low, min(in_count, math.ceil((in_start + in_length - centre) / pitch)) - 1)
    stretch = max(1.0, ratio)
    radius = 2.0 * stretch
    taps = int(math.ceil(2 * radius)) + 1
    start = np.floor(u - radius).astype(np.int64) + 1
    index = start[None, :] + np.arange(taps)[:, None]
    weight = cubic_kernel((index - u[None, :]) / stretch)
    weight /= weight.sum(axis=0, keepdims=True)
    index = np.clip(index, low, high)
    return AxisTable(out_count, int(inside[0]), np.ascontiguousarray(index),
                     np.ascontiguousarray(weight, dtype=np.float32))


def _tables(geometry: Geometry) -> dict[str, tuple[AxisTable, AxisTable]]:
    """Row and column tables for luma and chroma (cached per geometry)."""
    cached = _TABLE_CACHE.get(geometry)
    if cached is not None:
        return cached
    hx, hy, hw, hh = geometry.hdr_rect
    sx, sy, sw, sh = geometry.sdr_rect
    chroma_height, chroma_width = (geometry.hdr_height + 1) // 2, (geometry.hdr_width + 1) // 2
    sdr_chroma_height, sdr_chroma_width = (geometry.sdr_height + 1) // 2, (geometry.sdr_width + 1) // 2
    tables = {
        "luma": (axis_table(geometry.hdr_height, hy, hh, geometry.sdr_height, sy, sh, centre=0.5, pitch=1.0),
                 axis_table(geometry.hdr_width, hx, hw, geometry.sdr_width, sx, sw, centre=0.5, pitch=1.0)),
        "chroma": (axis_table(chroma_height, hy, hh, sdr_chroma_height, sy, sh, centre=1.0, pitch=2.0),
                   axis_table(chroma_width, hx, hw, sdr_chroma_width, sx, sw, centre=0.5, pitch=2.0)),
    }
    if len(_TABLE_CACHE) > 8:
        _TABLE_CACHE.clear()
    _TABLE_CACHE[geometry] = tables
    return tables


_TABLE_CACHE: dict[Geometry, dict[str, tuple[AxisTable, AxisTable]]] = {}


def _apply_axis(source: np.ndarray, table: AxisTable) -> np.ndarray:
    """Resample the last axis of ``source`` [n, in] (float32) -> [n, table.index.shape[1]]."""
    out = np.take(source, table.index[0], axis=1)
    out *= table.weight[0]
    for tap in range(1, table.index.shape[0]):
        out += np.take(source, table.index[tap], axis=1) * table.weight[tap]
    return out


def _resample(plane: np.ndarray, rows: AxisTable, cols: AxisTable, fill: int) -> np.ndarray:
    maximum = float(np.iinfo(plane.dtype).max)
    source = np.ascontiguousarray(plane, dtype=np.float32)
    resampled = _apply_axis(np.ascontiguousarray(_apply_axis(source, cols).T), rows).T
    values = np.clip(np.rint(resampled), 0.0, maximum).astype(plane.dtype)
    out = np.full((rows.out_count, cols.out_count), fill, dtype=plane.dtype)
    out[rows.first:rows.first + values.shape[0], cols.first:cols.first + values.shape[1]] = values
    return out


def resample_planes(y: np.ndarray, cb: np.ndarray, cr: np.ndarray, height: int, width: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resample a whole 4:2:0 frame's planes to luma size (height, width) with :data:`RESAMPLING_FILTER`."""
    geometry = Geometry(hdr_width=width, hdr_height=height, sdr_width=y.shape[1], sdr_height=y.shape[0])
    return geometry.map_sdr_planes(y, cb, cr)


# ---- spatial registration ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Registration:
    """Result of :func:`register_rects`: the regions of the two versions that show the same picture.

    Attributes:
        hdr_rect, sdr_rect: (x, y, width, height) regions, one of them the input rect, the other a crop of its
            input rect (or both the inputs when no crop scores better).
        score: mean detail score of the pairs over the chosen regions.
        initial_score: the same over the input regions.
        candidates: regions tried.
    """

    hdr_rect: tuple[int, int, int, int]
    sdr_rect: tuple[int, int, int, int]
    score: float
    initial_score: float
    candidates: int

    @property
    def gain(self) -> float:
        return self.score - self.initial_score


def _crop(rect: tuple[int, int, int, int], crop: float, dx: float, dy: float) -> tuple[int, int, int, int] | None:
    """``rect`` shrunk by the fraction ``crop`` (same aspect), centred, then moved by (dx, dy) as fractions of its
    size; None when the result leaves ``rect``."""
    x, y, width, height = rect
    new_width, new_height = round(width * (1 - crop)), round(height * (1 - crop))
    left = x + (width - new_width) // 2 + round(dx * width)
    top = y + (height - new_height) // 2 + round(dy * height)
    if new_width < 8 or new_height < 8 or not _inside((left, top, new_width, new_height), rect):
        return None
    return left, top, new_width, new_height


def _inside(inner: tuple[int, int, int, int], outer: tuple[int, int, int, int]) -> bool:
    return inner[0] >= outer[0] and inner[1] >= outer[1] and inner[0] + inner[2] <= outer[0] + outer[2] and \
        inner[1] + inner[3] <= outer[1] + outer[3]


def _region_scores(pairs: Sequence[tuple[DecodedFrame, DecodedFrame]], hdr_rect: tuple[int, int, int, int],
                   sdr_rect: tuple[int, int, int, int]):
    """A cached scorer of candidate regions: ``score(side, rect, count)`` -> (mean match, mean detail score) of the
    first ``count`` pairs when ``side``'s region is ``rect`` and the other side keeps its region."""
    size = thumbnail_size(hdr_rect[2], hdr_rect[3])
    fixed = {"sdr": [frame_signature(hdr, size, hdr_rect) for hdr, _ in pairs],
             "hdr": [frame_signature(sdr, size, sdr_rect) for _, sdr in pairs]}
    cache: dict[tuple[str, tuple[int, int, int, int], int], tuple[float, float]] = {}

    def score(side: str, rect: tuple[int, int, int, int], count: int = len(pairs)) -> tuple[float, float]:
        key = (side, rect, count)
        if key not in cache:
            moving = [frame_signature(sdr if side == "sdr" else hdr, size, rect) for hdr, sdr in pairs[:count]]
            cache[key] = (float(np.mean([match_score(a, b) for a, b in zip(fixed[side], moving)])),
                          float(np.mean([detail_score(a, b) for a, b in zip(fixed[side], moving)])))
        return cache[key]

    score.cache = cache
    return score


def register_rects(pairs: Sequence[tuple[DecodedFrame, DecodedFrame]], hdr_rect: tuple[int, int, int, int],
                   sdr_rect: tuple[int, int, int, int], *, coarse: bool = False, max_crop: float = 0.25,
                   hdr_bounds: tuple[int, int, int, int] | None = None,
                   sdr_bounds: tuple[int, int, int, int] | None = None) -> Registration:
    """Find the crop of one version's region that best matches the other's, over frame pairs (HDR, SDR) that show
    the same instant: a version cropped (or zoomed) before scaling shows only part of the other.

    ``coarse=True`` (when the pairs may be a frame or two apart): crops of either side from 0 to ``max_crop`` in
    2 % steps, at 5 x 5 positions across the room each crop leaves, scored by the mean match score of three pairs
    (it changes smoothly with the region and forgives a frame of offset, so a coarse grid finds the basin); then
    crops and positions in 0.5 % steps around the best on the same score. ``coarse=False`` (the pairs show the same
    instant): single-pixel moves and resizes of either side's region, on the mean detail score of all pairs (sharp:
    a pixel of misregistration costs it visibly), until none improves it, within ``hdr_bounds`` / ``sdr_bounds``
    (default: the input regions). Crops keep the aspect of the region they shrink.
    """
    if not pairs:
        return Registration(hdr_rect, sdr_rect, float("nan"), float("nan"), 0)
    score = _region_scores(pairs, hdr_rect, sdr_rect)
    base = {"sdr": sdr_rect, "hdr": hdr_rect}
    initial = score("sdr", sdr_rect)[1]
    if coarse:
        count = min(3, len(pairs))
        best_side, best_rect, best_crop = "sdr", sdr_rect, 0.0
        best_value = score("sdr", sdr_rect, count)[0]
        for side in ("sdr", "hdr"):
            for k in range(1, int(round(max_crop / 0.02)) + 1):
                crop = 0.02 * k
                for dx in np.linspace(-crop / 2, crop / 2, 5):
                    for dy in np.linspace(-crop / 2, crop / 2, 5):
                        rect = _crop(base[side], crop, float(dx), float(dy))
                        if rect is not None and score(side, rect, count)[0] > best_value:
                            best_side, best_rect, best_crop, best_value = side, rect, crop, score(side, rect, count)[0]
        if best_crop > 0:
            width, height = base[best_side][2], base[best_side][3]
            centre_dx = (best_rect[0] + best_rect[2] / 2 - base[best_side][0] - width / 2) / width
            centre_dy = (best_rect[1] + best_rect[3] / 2 - base[best_side][1] - height / 2) / height
            for crop in np.arange(max(0.0, best_crop - 0.01), best_crop + 0.01 + 1e-9, 0.005):
                for dx in np.arange(centre_dx - 0.01, centre_dx + 0.01 + 1e-9, 0.005):
                    for dy in np.arange(centre_dy - 0.01, centre_dy + 0.01 + 1e-9, 0.005):
                        rect = _crop(base[best_side], float(crop), float(dx), float(dy))
                        if rect is not None and score(best_side, rect, count)[0] > best_value:
                            best_rect, best_value = rect, score(best_side, rect, count)[0]
        hdr_out, sdr_out = (hdr_rect, best_rect) if best_side == "sdr" else (best_rect, sdr_rect)
        final = score(best_side, best_rect)[1]
        return Registration(hdr_out, sdr_out, final, initial, len(score.cache))
    bounds = {"sdr": sdr_bounds or sdr_rect, "hdr": hdr_bounds or hdr_rect}
    best_side, best_rect, best_detail = "sdr", sdr_rect, initial
    for side in ("sdr", "hdr"):
        rect_now, detail_now = base[side], score(side, base[side])[1]
        aspect = base[side][2] / base[side][3]
        for _ in range(16):
            x, y, width, height = rect_now
            improved = False
            for grow in (-1, 0, 1):
                new_width = width + grow
                new_height = max(8, round(new_width / aspect))
                for dx in (-1, 0, 1):
                    for dy in (-1, 0, 1):
                        rect = (x + dx - grow // 2, y + dy - (new_height - height) // 2, new_width, new_height)
                        if rect == rect_now or not _inside(rect, bounds[side]):
                            continue
                        detail = score(side, rect)[1]
                        if detail > detail_now:
                            rect_now, detail_now, improved = rect, detail, True
            if not improved:
                break
        if detail_now > best_detail:
            best_side, best_rect, best_detail = side, rect_now, detail_now
    hdr_out, sdr_out = (hdr_rect, best_rect) if best_side == "sdr" else (best_rect, sdr_rect)
    return Registration(hdr_out, sdr_out, best_detail, initial, len(score.cache))
