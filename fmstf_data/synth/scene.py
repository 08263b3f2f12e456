"""Procedural scenes of the synthetic clips: the light of every frame, in linear BT.2020 cd/m².

Content is procedural and deterministic from a seed. Each frame is made in *linear BT.2020 light in cd/m²*:

- a textured background: a sum of drifting sinusoids plus a gradient, mapped log-linearly to 0.1 .. 300 cd/m²
  and tinted by two mixed colours (the camera pans, so the background moves);
- several textured objects (ellipses and rectangles with stripe/checker texture) in saturated BT.2020 colours
  (most outside BT.709), translating (bouncing off the borders) and rotating;
- specular highlights riding on the objects: Gaussian glints with a flat core whose peak is 1000 .. 4000 cd/m²;
- shot cuts: every shot is a different scene (seed derived from the clip seed and the shot number); an optional
  fade to black over the last frames.

:class:`ClipSpec` and :class:`SceneSpec` describe a clip; :func:`iter_clip_nits` renders it frame by frame.
Encoding the frames (HDR10 and SDR files) is :mod:`fmstf_data.synth.pairs`'s concern.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction

import numpy as np

from fmstf_data.errors import SynthError

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
            raise SynthError(
                f"object_count and highlight_count must be >= 0, got {self.object_count}, {self.highlight_count}"
            )
        if self.highlight_count and not self.object_count:
            raise SynthError("highlights ride on objects: highlight_count > 0 needs object_count > 0")
        if not 0 < self.background_min_nits < self.background_max_nits:
            raise SynthError(
                f"need 0 < background_min_nits < background_max_nits, got {self.background_min_nits}, "
                f"{self.background_max_nits}"
            )
        if not 0 < self.highlight_min_nits <= self.highlight_max_nits <= 10000:
            raise SynthError(
                f"need 0 < highlight_min_nits <= highlight_max_nits <= 10000 cd/m², got {self.highlight_min_nits}, "
                f"{self.highlight_max_nits}"
            )
        if self.speed_fraction_per_frame < 0:
            raise SynthError(f"speed_fraction_per_frame must be >= 0, got {self.speed_fraction_per_frame}")


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
            raise SynthError(f"width and height must be even and > 0 (4:2:0), got {self.width}x{self.height}")
        if not isinstance(self.fps, Fraction) or self.fps <= 0:
            raise SynthError(f"fps must be a positive Fraction, got {self.fps!r}")
        if self.frame_count <= 0:
            raise SynthError(f"frame_count must be > 0, got {self.frame_count}")
        if self.shot_lengths:
            if any(length <= 0 for length in self.shot_lengths):
                raise SynthError(f"shot lengths must be > 0, got {self.shot_lengths}")
            if sum(self.shot_lengths) != self.frame_count:
                raise SynthError(
                    f"shot lengths {self.shot_lengths} sum to {sum(self.shot_lengths)}, not frame_count "
                    f"{self.frame_count}"
                )
        if not 0 <= self.fade_out_frames <= self.frame_count:
            raise SynthError(f"fade_out_frames must be in 0..{self.frame_count}, got {self.fade_out_frames}")
        if not 0 <= self.grain_fraction < 1:
            raise SynthError(f"grain_fraction must be in [0, 1), got {self.grain_fraction}")
        if self.calibration_patch_nits is not None:
            if not 0 <= self.calibration_patch_nits <= 10000:
                raise SynthError(
                    f"calibration_patch_nits must be in 0..10000 cd/m², got {self.calibration_patch_nits}"
                )
            size = self.calibration_patch_size
            if size <= 0 or size % 2 or size > min(self.width, self.height):
                raise SynthError(f"calibration_patch_size must be even and fit the frame, got {size}")

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
