"""Synthetic HDR10 clips and their SDR versions, for the demo and the tests: encoding and writing.

The frames' light comes from :mod:`fmstf_data.synth.scene` (procedural, deterministic from a seed).

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
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from fmstf_data.color import hdr_to_sdr_rgb, planes_to_rgb, pq_inverse_eotf, rgb_to_planes
from fmstf_data.errors import SourceMismatchError, SynthError
from fmstf_data.synth.scene import ClipSpec, iter_clip_nits
from fmstf_data.video.decode import iter_planes
from fmstf_data.video.probe import probe_video
from fmstf_data.video.record import ContentLightLevel, MasteringDisplay

logger = logging.getLogger(__name__)


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
        raise SynthError(f"pix_fmt must be 'yuv420p' or 'yuv420p10le', got {pix_fmt!r}")
    height, width = y.shape
    frame = av.VideoFrame(width, height, pix_fmt)
    for plane, data in zip(frame.planes, (y, cb, cr)):
        if data.shape != (plane.height, plane.width):
            raise SynthError(f"plane shape {data.shape} does not fit a {width}x{height} {pix_fmt} frame")
        padded = np.zeros((plane.height, plane.line_size // dtype.itemsize), dtype=dtype)
        padded[:, : plane.width] = data
        plane.update(padded.tobytes())
    return frame


def _x265_mastering(display: MasteringDisplay) -> str:
    """x265 ``master-display`` string: chromaticities in 0.00002 units, luminance in 0.0001 cd/m² units."""
    if None in (display.red_xy, display.green_xy, display.blue_xy, display.white_point_xy):
        raise SynthError("the mastering display needs its primaries and white point")
    if display.min_luminance_nits is None or display.max_luminance_nits is None:
        raise SynthError("the mastering display needs its minimum and maximum luminance")

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
        raise SynthError(f"HDR clip must be .mp4 or .mkv, got {path.name}")
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
        raise SynthError(f"codec must be one of {SDR_CODECS}, got {codec!r}")
    if trim_start_frames < 0 or trim_end_frames < 0:
        raise SynthError(f"trims must be >= 0, got {trim_start_frames}, {trim_end_frames}")
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
        raise SynthError(f"SDR size must be even and > 0, got {width}x{height}")
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
            raise SynthError(
                f"bad truth: offset {self.offset_frames}, frames {self.hdr_frame_count}/{self.sdr_frame_count}"
            )
        if self.offset_frames + self.sdr_frame_count > self.hdr_frame_count:
            raise SynthError(
                f"SDR frames {self.offset_frames}..{self.offset_frames + self.sdr_frame_count - 1} exceed the "
                f"{self.hdr_frame_count} HDR frames"
            )
        if not self.shot_starts or self.shot_starts[0] != 0 or list(self.shot_starts) != sorted(set(self.shot_starts)):
            raise SynthError(f"shot_starts must start at 0 and increase, got {self.shot_starts}")

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
        raise SynthError(f"container must be 'mp4' or 'mkv', got {container!r}")
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
