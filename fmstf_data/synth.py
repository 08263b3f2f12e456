"""Synthetic HDR10 clips and their SDR versions, for the demo and the tests.

Content is procedural and deterministic from a seed. Each frame is made in *linear BT.2020 light in cd/m²*:

- a textured background: a sum of drifting sinusoids plus a gradient, mapped log-linearly to 0.1 .. 300 cd/m²
  and tinted by two mixed colours (the camera pans, so the background moves);
- several textured objects (ellipses and rectangles with stripe/checker texture) in saturated BT.2020 colours
  (most outside BT.709), translating (bouncing off the borders) and rotating;
- specular highlights riding on the objects: Gaussian glints with a flat core whose peak is 1000 .. 4000 cd/m²;
- shot cuts: every shot is a different scene (seed derived from the clip seed and the shot number); an optional
  fade to black over the last frames.

The HDR10 file: light -> PQ inverse EOTF (SMPTE ST 2084) -> 10-bit narrow-range BT.2020 NCL Y'CbCr 4:2:0 by
:func:`fmstf_data.color.rgb_to_planes` -> planes copied into ``yuv420p10le`` frames -> libx265 Main 10, tagged PQ /
BT.2020 / BT.2020 NCL / narrow range, with SMPTE ST 2086 mastering display and the clip's measured MaxCLL/MaxFALL
(CTA-861.3) in SEI. swscale is never involved.

The SDR version (as a video platform would serve it): the HDR file's decoded planes -> PQ R'G'B' (our
:func:`planes_to_rgb`) -> :func:`hdr_to_sdr_rgb` (BT.2390 EETF or BT.2446 tone mapping, BT.2020 -> BT.709 gamut
mapping, BT.1886 100 cd/m² encoding) -> optional resize -> 8-bit narrow BT.709 Y'CbCr 4:2:0 -> libx264, tagged
BT.709, with frames trimmed at the start and/or end.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import av
import numpy as np

from fmstf_data.color import hdr_to_sdr_rgb, planes_to_rgb, pq_inverse_eotf, rgb_to_planes
from fmstf_data.errors import SourceMismatchError
from fmstf_data.probe import ContentLightLevel, MasteringDisplay, probe_video
from fmstf_data.video import iter_planes

logger = logging.getLogger(__name__)

#: BT.2020 luminance weights of linear RGB (the Y row of the BT.2020 RGB -> XYZ matrix)
_LUMINANCE_2020 = np.array([0.2627, 0.6780, 0.0593])

#: saturated object colours, linear BT.2020 RGB (most lie outside the BT.709 gamut); scaled to luminance 1 later
_PALETTE_2020 = np.array(
    [
        [1.00, 0.03, 0.02],  # BT.2020 red
        [0.03, 1.00, 0.06],  # BT.2020 green
        [0.05, 0.08, 1.00],  # BT.2020 blue
        [1.00, 0.55, 0.00],  # orange
        [0.00, 0.85, 1.00],  # cyan
        [1.00, 0.00, 0.75],  # magenta
        [0.85, 1.00, 0.00],  # yellow-green
        [0.60, 0.40, 0.30],  # skin-like, less saturated
    ]
)

#: mastering display of the synthetic clips: BT.2020 primaries, D65, 0.005 .. 4000 cd/m² (SMPTE ST 2086)
DEFAULT_MASTERING_DISPLAY = MasteringDisplay(
    red_xy=(0.708, 0.292),
    green_xy=(0.170, 0.797),
    blue_xy=(0.131, 0.046),
    white_point_xy=(0.3127, 0.3290),
    min_luminance_nits=0.005,
    max_luminance_nits=4000.0,
)

HDR_SUFFIXES = (".mp4", ".mkv")
SDR_CODECS = ("libx264", "libx265")


# ---- specifications ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SceneSpec:
    """One shot's scene. Every random choice derives from ``seed``; sizes scale with the frame."""

    seed: int
    """Seed of the scene's random choices (layout, colours, motion)."""
    object_count: int = 4
    """Moving textured objects."""
    highlight_count: int = 3
    """Specular highlights (each rides on an object)."""
    background_min_nits: float = 0.1
    """Darkest background luminance, cd/m²."""
    background_max_nits: float = 300.0
    """Brightest background luminance, cd/m²."""
    highlight_min_nits: float = 1000.0
    """Lowest highlight peak, cd/m²."""
    highlight_max_nits: float = 4000.0
    """Highest highlight peak, cd/m²; also the clip's light ceiling (everything is clipped to it)."""
    speed_fraction_per_frame: float = 0.008
    """Typical object speed as a fraction of the frame width per frame (0.008: 2 px at 256 px wide)."""

    def __post_init__(self) -> None:
        if self.object_count < 0 or self.highlight_count < 0:
            raise ValueError(
                f"object_count and highlight_count must be >= 0, got {self.object_count}, {self.highlight_count}"
            )
        if self.highlight_count and not self.object_count:
            raise ValueError("highlights ride on objects: highlight_count > 0 needs object_count > 0")
        if not 0 < self.background_min_nits < self.background_max_nits:
            raise ValueError(
                f"need 0 < background_min_nits < background_max_nits, got {self.background_min_nits}, "
                f"{self.background_max_nits}"
            )
        if not 0 < self.highlight_min_nits <= self.highlight_max_nits <= 10000:
            raise ValueError(
                f"need 0 < highlight_min_nits <= highlight_max_nits <= 10000 cd/m², got {self.highlight_min_nits}, "
                f"{self.highlight_max_nits}"
            )
        if self.speed_fraction_per_frame < 0:
            raise ValueError(f"speed_fraction_per_frame must be >= 0, got {self.speed_fraction_per_frame}")


@dataclass(frozen=True)
class ClipSpec:
    """A synthetic clip: size, rate, length, and its shots (each a different scene)."""

    width: int
    """Frame width in pixels (even, for 4:2:0)."""
    height: int
    """Frame height in pixels (even)."""
    fps: Fraction
    """Frame rate, e.g. ``Fraction(24)`` or ``Fraction(24000, 1001)``."""
    frame_count: int
    """Total frames (> 0)."""
    seed: int = 0
    """Clip seed; shot i's scene seed derives from (seed, i)."""
    shot_lengths: tuple[int, ...] = ()
    """Frames per shot, summing to ``frame_count``; empty means one shot. A cut switches to a new scene."""
    fade_out_frames: int = 0
    """Frames at the end that fade linearly to black (the last one is black)."""
    scene: SceneSpec = field(default_factory=lambda: SceneSpec(seed=0))
    """Scene settings shared by the shots; its ``seed`` is replaced per shot."""
    calibration_patch_nits: float | None = None
    """When set, a neutral grey patch of this luminance (cd/m²) at the top-left corner of every frame (after fades),
    for exactness checks; ``calibration_patch_size`` pixels square."""
    calibration_patch_size: int = 16
    """Side of the calibration patch in pixels (even)."""
    grain_fraction: float = 0.0
    """Film grain: multiplicative Gaussian noise with this relative standard deviation, new every frame (seeded).
    Real camera footage is grainy; 0.02-0.05 brings the encoded bitrate and decode cost near real videos."""

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.width % 2 or self.height % 2:
            raise ValueError(f"width and height must be even and > 0 (4:2:0), got {self.width}x{self.height}")
        if not isinstance(self.fps, Fraction) or self.fps <= 0:
            raise ValueError(f"fps must be a positive Fraction, got {self.fps!r}")
        if self.frame_count <= 0:
            raise ValueError(f"frame_count must be > 0, got {self.frame_count}")
        if self.shot_lengths:
            if any(length <= 0 for length in self.shot_lengths):
                raise ValueError(f"shot lengths must be > 0, got {self.shot_lengths}")
            if sum(self.shot_lengths) != self.frame_count:
                raise ValueError(
                    f"shot lengths {self.shot_lengths} sum to {sum(self.shot_lengths)}, not frame_count "
                    f"{self.frame_count}"
                )
        if not 0 <= self.fade_out_frames <= self.frame_count:
            raise ValueError(f"fade_out_frames must be in 0..{self.frame_count}, got {self.fade_out_frames}")
        if not 0 <= self.grain_fraction < 1:
            raise ValueError(f"grain_fraction must be in [0, 1), got {self.grain_fraction}")
        if self.calibration_patch_nits is not None:
            if not 0 <= self.calibration_patch_nits <= 10000:
                raise ValueError(
                    f"calibration_patch_nits must be in 0..10000 cd/m², got {self.calibration_patch_nits}"
                )
            size = self.calibration_patch_size
            if size <= 0 or size % 2 or size > min(self.width, self.height):
                raise ValueError(f"calibration_patch_size must be even and fit the frame, got {size}")

    @property
    def shots(self) -> tuple[int, ...]:
        """Shot lengths, ``(frame_count,)`` for a single shot."""
        return self.shot_lengths or (self.frame_count,)

    @property
    def shot_starts(self) -> tuple[int, ...]:
        """Frame index where each shot starts; the first is 0, the others follow a cut."""
        starts = [0]
        for length in self.shots[:-1]:
            starts.append(starts[-1] + length)
        return tuple(starts)


# ---- rendering --------------------------------------------------------------------------------------------------


def _reflect(position: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Fold positions into [low, high] as a ball bouncing between the walls would move."""
    span = np.maximum(high - low, 1e-6)
    phase = np.mod(position - low, 2 * span)
    return low + np.where(phase <= span, phase, 2 * span - phase)


def _unit_luminance(rgb: np.ndarray) -> np.ndarray:
    """Scale linear BT.2020 colours [..., 3] to luminance 1."""
    return rgb / (rgb @ _LUMINANCE_2020)[..., None]


class _Scene:
    """The random parameters of one scene (drawn once), and the renderer of its frames."""

    def __init__(self, spec: SceneSpec, width: int, height: int) -> None:
        rng = np.random.default_rng(spec.seed)
        self.spec = spec
        self.width, self.height = width, height
        size = min(width, height)
        speed = spec.speed_fraction_per_frame * width
        # background: drifting waves + a gradient, two tints
        waves = 6
        wavelength = size * rng.uniform(0.25, 1.2, waves)
        angle = rng.uniform(0, 2 * np.pi, waves)
        self.wave_kx = 2 * np.pi / wavelength * np.cos(angle)
        self.wave_ky = 2 * np.pi / wavelength * np.sin(angle)
        self.wave_phase = rng.uniform(0, 2 * np.pi, waves)
        self.wave_drift = rng.uniform(-0.15, 0.15, waves)  # radians per frame: the texture evolves
        gradient_angle = rng.uniform(0, 2 * np.pi)
        self.gradient = np.array([np.cos(gradient_angle), np.sin(gradient_angle)])
        self.pan = rng.uniform(-0.5, 0.5, 2) * speed  # camera pan, px per frame
        self.tints = _unit_luminance(rng.uniform(0.15, 1.0, (2, 3)))
        # objects
        count = spec.object_count
        self.object_centre = np.stack(
            [rng.uniform(0.15, 0.85, count) * width, rng.uniform(0.15, 0.85, count) * height], 1
        )
        direction = rng.uniform(0, 2 * np.pi, count)
        magnitude = speed * rng.uniform(0.5, 1.5, count)
        self.object_velocity = np.stack([np.cos(direction), np.sin(direction)], 1) * magnitude[:, None]
        self.object_radii = rng.uniform(0.08, 0.2, (count, 2)) * size
        self.object_angle = rng.uniform(0, np.pi, count)
        self.object_spin = rng.uniform(-0.06, 0.06, count)  # radians per frame
        palette_order = rng.permutation(len(_PALETTE_2020))
        self.object_colour = _unit_luminance(_PALETTE_2020[palette_order[np.arange(count) % len(_PALETTE_2020)]])
        self.object_nits = np.exp(rng.uniform(np.log(20.0), np.log(500.0), count))
        self.object_stripe = 2 * np.pi / (rng.uniform(0.15, 0.5, (count, 2)) * self.object_radii)
        self.object_is_box = rng.random(count) < 0.4
        # highlights: on object j at offset (u, v) in its frame
        highlights = spec.highlight_count
        self.highlight_object = rng.integers(0, max(count, 1), highlights)
        self.highlight_offset = rng.uniform(-0.5, 0.5, (highlights, 2))
        self.highlight_sigma = rng.uniform(1.5, 3.0, highlights) * max(size / 144.0, 1.0)
        self.highlight_peak = rng.uniform(spec.highlight_min_nits, spec.highlight_max_nits, highlights)
        self.highlight_tint = _unit_luminance(0.85 + 0.15 * rng.random((highlights, 3)))

    def render(self, t: int, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
        """Frame ``t`` of the shot (0-based) as linear BT.2020 light in cd/m², float32 [3, h, w]."""
        spec = self.spec
        x = xx + self.pan[0] * t
        y = yy + self.pan[1] * t
        noise = np.zeros_like(xx)
        for kx, ky, phase, drift in zip(self.wave_kx, self.wave_ky, self.wave_phase, self.wave_drift):
            noise += np.sin(kx * x + ky * y + phase + drift * t)
        noise = np.clip(noise / np.sqrt(len(self.wave_kx) / 2) / 2, -1, 1)  # about unit spread, in [-1, 1]
        ramp = (self.gradient[0] * xx / self.width + self.gradient[1] * yy / self.height) / 2 + 0.5
        level = np.clip(0.45 * ramp + 0.55 * (0.5 + 0.5 * noise), 0, 1)
        log_low, log_high = np.log(spec.background_min_nits), np.log(spec.background_max_nits)
        nits = np.exp(log_low + (log_high - log_low) * level)
        mix = (0.5 + 0.5 * np.sin(0.7 * noise * np.pi + t * 0.02))[None]
        image = nits[None] * ((1 - mix) * self.tints[0][:, None, None] + mix * self.tints[1][:, None, None])

        low = self.object_radii.max(axis=1)  # keep each object inside the frame
        centres = np.stack(
            [
                _reflect(self.object_centre[:, 0] + self.object_velocity[:, 0] * t, low, self.width - low),
                _reflect(self.object_centre[:, 1] + self.object_velocity[:, 1] * t, low, self.height - low),
            ],
            1,
        )
        angles = self.object_angle + self.object_spin * t
        for index in range(len(centres)):
            cos, sin = np.cos(angles[index]), np.sin(angles[index])
            dx, dy = xx - centres[index, 0], yy - centres[index, 1]
            u, v = cos * dx + sin * dy, -sin * dx + cos * dy
            a, b = self.object_radii[index]
            if self.object_is_box[index]:
                distance = np.maximum(np.abs(u) / a, np.abs(v) / b)
            else:
                distance = np.sqrt((u / a) ** 2 + (v / b) ** 2)
            mask = np.clip((1 - distance) * min(a, b) + 0.5, 0, 1)  # about one pixel of anti-aliased edge
            texture = 0.6 + 0.4 * np.sin(u * self.object_stripe[index, 0]) * np.cos(v * self.object_stripe[index, 1])
            colour = self.object_colour[index][:, None, None] * (self.object_nits[index] * texture)[None]
            image = image * (1 - mask)[None] + colour * mask[None]

        for index in range(len(self.highlight_peak)):
            j = self.highlight_object[index]
            cos, sin = np.cos(angles[j]), np.sin(angles[j])
            ou, ov = self.highlight_offset[index] * self.object_radii[j]
            hx = centres[j, 0] + cos * ou - sin * ov
            hy = centres[j, 1] + sin * ou + cos * ov
            sigma = self.highlight_sigma[index]
            glint = np.exp(-((xx - hx) ** 2 + (yy - hy) ** 2) / (2 * sigma**2))
            # a flat core (1.25 g clipped at 1): the sampled maximum reaches the peak wherever the centre falls
            core = np.clip(1.25 * glint, 0, 1)
            image = image + (self.highlight_peak[index] * core)[None] * self.highlight_tint[index][:, None, None]
        return np.clip(image, 0, spec.highlight_max_nits).astype(np.float32)


def iter_clip_nits(spec: ClipSpec) -> Iterator[np.ndarray]:
    """Yield every frame of the clip as linear BT.2020 light in cd/m², float32 [3, height, width]."""
    yy, xx = np.mgrid[0 : spec.height, 0 : spec.width].astype(np.float64)
    frame_index = 0
    for shot_index, length in enumerate(spec.shots):
        scene_seed = int(np.random.SeedSequence([spec.seed, shot_index]).generate_state(1)[0])
        scene = _Scene(replace(spec.scene, seed=scene_seed), spec.width, spec.height)
        for t in range(length):
            image = scene.render(t, xx, yy)
            fade_start = spec.frame_count - spec.fade_out_frames
            if spec.fade_out_frames and frame_index >= fade_start:
                image = image * np.float32((spec.frame_count - 1 - frame_index) / spec.fade_out_frames)
            if spec.grain_fraction:
                grain_rng = np.random.default_rng([spec.seed, frame_index, 7])
                grain = grain_rng.standard_normal(image.shape[1:], dtype=np.float32) * np.float32(spec.grain_fraction)
                image = np.clip(image * (1.0 + grain)[None], 0, spec.scene.highlight_max_nits).astype(np.float32)
            if spec.calibration_patch_nits is not None:
                size = spec.calibration_patch_size
                image[:, :size, :size] = spec.calibration_patch_nits
            yield image
            frame_index += 1


def nits_to_hdr10_planes(nits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear BT.2020 cd/m² [3, h, w] -> 10-bit narrow BT.2020 NCL Y'CbCr 4:2:0 code planes (uint16):
    PQ inverse EOTF, then :func:`fmstf_data.color.rgb_to_planes` (its documented chroma filter)."""
    return rgb_to_planes(pq_inverse_eotf(nits), bit_depth=10, matrix="bt2020nc", full_range=False)


# ---- frames in and out of PyAV ----------------------------------------------------------------------------------


def planes_to_video_frame(y: np.ndarray, cb: np.ndarray, cr: np.ndarray, pix_fmt: str) -> av.VideoFrame:
    """A PyAV frame (``yuv420p`` from uint8 planes, ``yuv420p10le`` from uint16) holding exactly these planes.

    Each plane is written row by row into PyAV's buffer, whose lines are padded to ``line_size`` bytes.
    """
    dtype = {"yuv420p": np.dtype(np.uint8), "yuv420p10le": np.dtype("<u2")}.get(pix_fmt)
    if dtype is None:
        raise ValueError(f"pix_fmt must be 'yuv420p' or 'yuv420p10le', got {pix_fmt!r}")
    height, width = y.shape
    frame = av.VideoFrame(width, height, pix_fmt)
    for plane, data in zip(frame.planes, (y, cb, cr)):
        if data.shape != (plane.height, plane.width):
            raise ValueError(f"plane shape {data.shape} does not fit a {width}x{height} {pix_fmt} frame")
        padded = np.zeros((plane.height, plane.line_size // dtype.itemsize), dtype=dtype)
        padded[:, : plane.width] = data
        plane.update(padded.tobytes())
    return frame


def _x265_mastering(display: MasteringDisplay) -> str:
    """x265 ``master-display`` string: chromaticities in 0.00002 units, luminance in 0.0001 cd/m² units."""
    if None in (display.red_xy, display.green_xy, display.blue_xy, display.white_point_xy):
        raise ValueError("the mastering display needs its primaries and white point")
    if display.min_luminance_nits is None or display.max_luminance_nits is None:
        raise ValueError("the mastering display needs its minimum and maximum luminance")

    def xy(point: tuple[float, float]) -> str:
        return f"({round(point[0] / 0.00002)},{round(point[1] / 0.00002)})"

    return (
        f"G{xy(display.green_xy)}B{xy(display.blue_xy)}R{xy(display.red_xy)}WP{xy(display.white_point_xy)}"
        f"L({round(display.max_luminance_nits * 10000)},{round(display.min_luminance_nits * 10000)})"
    )


# ---- HDR10 clip -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HdrClip:
    """What :func:`write_hdr_clip` wrote."""

    path: str
    """The HDR10 file."""
    spec: ClipSpec
    """The clip it renders."""
    content_light_level: ContentLightLevel
    """MaxCLL/MaxFALL measured on the rendered light (max and frame-average of max(R, G, B)), written to SEI."""
    mastering_display: MasteringDisplay
    """Mastering display written to SEI."""


def write_hdr_clip(
    path: str | Path,
    spec: ClipSpec,
    *,
    crf: float = 20,
    preset: str = "fast",
    lossless: bool = False,
    mastering_display: MasteringDisplay = DEFAULT_MASTERING_DISPLAY,
) -> HdrClip:
    """Render ``spec`` and encode it as HDR10 (HEVC Main 10, libx265) into ``path`` (``.mp4`` or ``.mkv``).

    All frames' planes are made before encoding starts (MaxCLL/MaxFALL go into the stream headers), so memory
    grows with the clip: about 3 bytes per pixel per frame; meant for short clips.

    Args:
        path: output file; the container follows the suffix.
        spec: the clip.
        crf: x265 constant rate factor (lower is better; 18-24 is typical).
        preset: x265 preset (``"ultrafast"`` .. ``"slow"``).
        lossless: x265 lossless mode: the decoded planes equal the planes made here, code for code.
        mastering_display: SMPTE ST 2086 values for the SEI.

    Returns:
        :class:`HdrClip`, with the measured MaxCLL/MaxFALL.
    """
    path = Path(path)
    if path.suffix not in HDR_SUFFIXES:
        raise ValueError(f"HDR clip must be .mp4 or .mkv, got {path.name}")
    planes = []
    max_cll = max_fall = 0.0
    for nits in iter_clip_nits(spec):
        brightest = nits.max(axis=0)  # max(R, G, B) per pixel, CTA-861.3
        max_cll = max(max_cll, float(brightest.max()))
        max_fall = max(max_fall, float(brightest.mean()))
        planes.append(nits_to_hdr10_planes(nits))
    light = ContentLightLevel(max_cll_nits=math.ceil(max_cll), max_fall_nits=math.ceil(max_fall))
    params = [
        "log-level=error",
        "colorprim=bt2020",
        "transfer=smpte2084",
        "colormatrix=bt2020nc",
        "range=limited",
        "hdr10=1",
        f"master-display={_x265_mastering(mastering_display)}",
        f"max-cll={light.max_cll_nits},{light.max_fall_nits}",
    ]
    if lossless:
        params.append("lossless=1")
    options = {"preset": preset, "x265-params": ":".join(params)}
    if not lossless:
        options["crf"] = str(crf)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx265", rate=spec.fps)
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p10le"
        stream.options = options
        context = stream.codec_context
        context.color_trc, context.color_primaries, context.colorspace, context.color_range = 16, 9, 9, 1
        if path.suffix == ".mp4":
            context.codec_tag = "hvc1"  # the tag Apple players require; FFmpeg's default is hev1
        for index, (y, cb, cr) in enumerate(planes):
            frame = planes_to_video_frame(y, cb, cr, "yuv420p10le")
            frame.pts = index
            frame.color_trc, frame.color_primaries, frame.colorspace, frame.color_range = 16, 9, 9, 1
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    logger.info("wrote HDR10 clip %s: %d frames %dx%d, MaxCLL %d MaxFALL %d", path, spec.frame_count, spec.width,
                spec.height, light.max_cll_nits, light.max_fall_nits)
    return HdrClip(path=str(path), spec=spec, content_light_level=light, mastering_display=mastering_display)


# ---- SDR version ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SdrVersion:
    """What :func:`write_sdr_version` wrote."""

    path: str
    """The SDR file."""
    frame_count: int
    """Frames written (HDR frames minus both trims)."""
    width: int
    """SDR width in pixels."""
    height: int
    """SDR height in pixels."""
    trim_start_frames: int
    """HDR frames dropped at the start: SDR frame 0 shows HDR frame ``trim_start_frames``."""
    trim_end_frames: int
    """HDR frames dropped at the end."""
    tone_curve: str
    """The HDR -> SDR method of :func:`fmstf_data.color.hdr_to_sdr_rgb`."""
    source_max_nits: float
    """HDR luminance mapped to SDR white by the tone curve, cd/m²."""


def resize_rgb(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resample R'G'B' float [3, h, w] to [3, height, width]: torch ``F.interpolate`` bilinear with
    ``antialias=True`` (a triangle filter widened by the scale when shrinking), ``align_corners=False``, on the
    non-linear signal as video scalers do; the result is clipped to [0, 1]."""
    import torch
    import torch.nn.functional as functional

    tensor = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32))[None]
    resized = functional.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return resized[0].clamp_(0.0, 1.0).numpy()


def write_sdr_version(
    hdr_path: str | Path,
    sdr_path: str | Path,
    *,
    trim_start_frames: int = 0,
    trim_end_frames: int = 0,
    size: tuple[int, int] | None = None,
    tone_curve: str = "bt2390",
    gamut_mapping: str = "desaturate",
    source_max_nits: float | None = None,
    codec: str = "libx264",
    crf: float = 20,
    preset: str = "fast",
) -> SdrVersion:
    """Make the SDR version of an HDR10 file, as a platform would serve it.

    Args:
        hdr_path: an HDR10 file (checked with :func:`probe_video`).
        sdr_path: output (``.mp4`` or ``.mkv``), 8-bit yuv420p tagged BT.709, narrow range.
        trim_start_frames / trim_end_frames: HDR frames left out at the start / end.
        size: (width, height) of the SDR version, even; None keeps the HDR size. See :func:`resize_rgb`.
        tone_curve: ``"bt2390"``, ``"bt2446a"`` or ``"bt2446c"`` (:func:`fmstf_data.color.hdr_to_sdr_rgb`).
        gamut_mapping: ``"desaturate"`` or ``"clip"`` (BT.2020 -> BT.709).
        source_max_nits: HDR luminance that maps to SDR white; None: the mastering display's maximum, else
            MaxCLL, else 1000 cd/m².
        codec: ``"libx264"`` (H.264 High) or ``"libx265"`` (HEVC Main), 8-bit.
        crf, preset: encoder quality settings.

    Raises:
        SourceMismatchError: ``hdr_path`` is not HDR10, or the trims leave no frame.
        ProbeError: ``hdr_path`` cannot be read.
    """
    hdr_path, sdr_path = Path(hdr_path), Path(sdr_path)
    if codec not in SDR_CODECS:
        raise ValueError(f"codec must be one of {SDR_CODECS}, got {codec!r}")
    if trim_start_frames < 0 or trim_end_frames < 0:
        raise ValueError(f"trims must be >= 0, got {trim_start_frames}, {trim_end_frames}")
    probe = probe_video(hdr_path)
    problem = probe.problem_as("hdr")
    if problem is not None:
        raise SourceMismatchError(f"{hdr_path}: {problem}")
    total = probe.frame_count_from_content
    keep = total - trim_start_frames - trim_end_frames
    if keep <= 0:
        raise SourceMismatchError(
            f"{hdr_path} has {total} frames; trimming {trim_start_frames} + {trim_end_frames} leaves none"
        )
    width, height = size if size is not None else (probe.width, probe.height)
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ValueError(f"SDR size must be even and > 0, got {width}x{height}")
    if source_max_nits is None:
        if probe.mastering_display is not None and probe.mastering_display.max_luminance_nits:
            source_max_nits = probe.mastering_display.max_luminance_nits
        elif probe.content_light_level is not None and probe.content_light_level.max_cll_nits:
            source_max_nits = float(probe.content_light_level.max_cll_nits)
        else:
            source_max_nits = 1000.0
    fps = probe.average_fps_from_header or Fraction(probe.fps_from_content or 24).limit_denominator(1001)

    sdr_path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with av.open(str(sdr_path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        options = {"crf": str(crf), "preset": preset}
        if codec == "libx265":
            options["x265-params"] = "log-level=error:colorprim=bt709:transfer=bt709:colormatrix=bt709:range=limited"
        stream.options = options
        context = stream.codec_context
        context.color_trc, context.color_primaries, context.colorspace, context.color_range = 1, 1, 1, 1
        for decoded in iter_planes(hdr_path):
            if decoded.index < trim_start_frames:
                continue
            if decoded.index >= total - trim_end_frames:
                break
            rgb_pq = planes_to_rgb(decoded.y, decoded.cb, decoded.cr, bit_depth=10, matrix="bt2020nc", full_range=False)
            rgb_sdr = hdr_to_sdr_rgb(
                rgb_pq, method=tone_curve, source_max_nits=source_max_nits, gamut_mapping=gamut_mapping
            )
            if (width, height) != (decoded.width, decoded.height):
                rgb_sdr = resize_rgb(rgb_sdr, width, height)
            y, cb, cr = rgb_to_planes(rgb_sdr, bit_depth=8, matrix="bt709", full_range=False)
            frame = planes_to_video_frame(y, cb, cr, "yuv420p")
            frame.pts = written
            frame.color_trc, frame.color_primaries, frame.colorspace, frame.color_range = 1, 1, 1, 1
            for packet in stream.encode(frame):
                container.mux(packet)
            written += 1
        for packet in stream.encode():
            container.mux(packet)
    if written != keep:
        raise SourceMismatchError(f"{hdr_path}: expected {keep} frames after trimming, decoded {written}")
    logger.info("wrote SDR version %s: %d frames %dx%d (%s, trims %d/%d)", sdr_path, written, width, height,
                tone_curve, trim_start_frames, trim_end_frames)
    return SdrVersion(
        path=str(sdr_path),
        frame_count=written,
        width=width,
        height=height,
        trim_start_frames=trim_start_frames,
        trim_end_frames=trim_end_frames,
        tone_curve=tone_curve,
        source_max_nits=float(source_max_nits),
    )


# ---- pairs ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairTruth:
    """Ground truth of a synthetic pair: how the SDR version relates to the HDR clip."""

    name: str
    """Pair name."""
    hdr_file: str
    """File name of the HDR10 version, ``{name}.hdr.{ext}`` (in the same folder as the truth JSON)."""
    sdr_file: str
    """File name of the SDR version, ``{name}.sdr.{ext}``."""
    fps: Fraction
    """Frame rate of both."""
    hdr_frame_count: int
    """Frames in the HDR file."""
    sdr_frame_count: int
    """Frames in the SDR file."""
    offset_frames: int
    """HDR frame index that SDR frame 0 shows (= frames trimmed at the start); SDR frame k shows HDR frame
    ``k + offset_frames``."""
    hdr_size: tuple[int, int]
    """(width, height) of the HDR file."""
    sdr_size: tuple[int, int]
    """(width, height) of the SDR file."""
    shot_starts: tuple[int, ...]
    """HDR frame indices where shots start: 0, then every frame that follows a hard cut."""
    tone_curve: str
    """HDR -> SDR method used."""
    max_cll_nits: int
    """MaxCLL of the HDR clip."""
    max_fall_nits: int
    """MaxFALL of the HDR clip."""

    def __post_init__(self) -> None:
        if self.offset_frames < 0 or self.sdr_frame_count <= 0 or self.hdr_frame_count <= 0:
            raise ValueError(
                f"bad truth: offset {self.offset_frames}, frames {self.hdr_frame_count}/{self.sdr_frame_count}"
            )
        if self.offset_frames + self.sdr_frame_count > self.hdr_frame_count:
            raise ValueError(
                f"SDR frames {self.offset_frames}..{self.offset_frames + self.sdr_frame_count - 1} exceed the "
                f"{self.hdr_frame_count} HDR frames"
            )
        if not self.shot_starts or self.shot_starts[0] != 0 or list(self.shot_starts) != sorted(set(self.shot_starts)):
            raise ValueError(f"shot_starts must start at 0 and increase, got {self.shot_starts}")

    @property
    def cut_frames(self) -> tuple[int, ...]:
        """HDR frame indices that follow a hard cut (``shot_starts`` without 0)."""
        return self.shot_starts[1:]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (fps as ``"num/den"``)."""
        return {
            "name": self.name,
            "hdr_file": self.hdr_file,
            "sdr_file": self.sdr_file,
            "fps": f"{self.fps.numerator}/{self.fps.denominator}",
            "hdr_frame_count": self.hdr_frame_count,
            "sdr_frame_count": self.sdr_frame_count,
            "offset_frames": self.offset_frames,
            "hdr_size": list(self.hdr_size),
            "sdr_size": list(self.sdr_size),
            "shot_starts": list(self.shot_starts),
            "tone_curve": self.tone_curve,
            "max_cll_nits": self.max_cll_nits,
            "max_fall_nits": self.max_fall_nits,
        }


def write_pair(
    out_dir: str | Path,
    name: str,
    clip: ClipSpec,
    *,
    trim_start_frames: int = 0,
    trim_end_frames: int = 0,
    sdr_size: tuple[int, int] | None = None,
    tone_curve: str = "bt2390",
    container: str = "mp4",
    hdr_crf: float = 20,
    sdr_crf: float = 20,
    preset: str = "fast",
    lossless_hdr: bool = False,
    write_truth_json: bool = True,
) -> tuple[Path, Path, PairTruth]:
    """Write ``{name}.hdr.{container}`` and ``{name}.sdr.{container}`` into ``out_dir`` (and, when
    ``write_truth_json``, ``{name}.truth.json`` with :meth:`PairTruth.to_dict`).

    Returns:
        (hdr_path, sdr_path, truth).
    """
    if container not in ("mp4", "mkv"):
        raise ValueError(f"container must be 'mp4' or 'mkv', got {container!r}")
    out_dir = Path(out_dir)
    hdr_path = out_dir / f"{name}.hdr.{container}"
    sdr_path = out_dir / f"{name}.sdr.{container}"
    hdr = write_hdr_clip(hdr_path, clip, crf=hdr_crf, preset=preset, lossless=lossless_hdr)
    sdr = write_sdr_version(
        hdr_path,
        sdr_path,
        trim_start_frames=trim_start_frames,
        trim_end_frames=trim_end_frames,
        size=sdr_size,
        tone_curve=tone_curve,
        crf=sdr_crf,
        preset=preset,
    )
    truth = PairTruth(
        name=name,
        hdr_file=hdr_path.name,
        sdr_file=sdr_path.name,
        fps=clip.fps,
        hdr_frame_count=clip.frame_count,
        sdr_frame_count=sdr.frame_count,
        offset_frames=trim_start_frames,
        hdr_size=(clip.width, clip.height),
        sdr_size=(sdr.width, sdr.height),
        shot_starts=clip.shot_starts,
        tone_curve=tone_curve,
        max_cll_nits=hdr.content_light_level.max_cll_nits,
        max_fall_nits=hdr.content_light_level.max_fall_nits,
    )
    if write_truth_json:
        (out_dir / f"{name}.truth.json").write_text(json.dumps(truth.to_dict(), indent=2) + "\n")
    return hdr_path, sdr_path, truth
