"""Alignment accuracy benchmark: generated HDR10/SDR pairs with known truth, and what alignment costs.

Six HDR masters are rendered in memory with :mod:`fmstf_data.synth` (256x144 pictures: a 20 s three-shot clip, an
unrelated clip, a 2.39:1 picture letterboxed in its frame, a 50 fps clip, a shot fading to black before a cut, and
a dissolve). Each case writes an HDR10 file (x265) from a range of master frames and an SDR version made the way a
platform might, with a known list of which master frame every SDR frame shows:

- offsets from -110 to +110 frames (both ends trimmed), the SDR version starting before or after the HDR one;
- tone curves BT.2390, BT.2446 A and C, Hable and Reinhard applied per channel, and a "platform" contrast curve on
  the PQ signal; gamut mapping by desaturation or clipping;
- scales 0.5x to 1.5x, letterbox, pillarbox, the HDR version's own bars cropped away, both letterboxed, an SDR
  version zoomed (cropped then scaled back up) or shifted, an HDR version cropped; a stretched 4:3 version that
  must be refused;
- H.264, HEVC, VP9 and AV1 at constant quality or low bit rates; Gaussian noise of 0, 3 and 8 code values;
- dropped and duplicated SDR frames; 50 fps HDR with 25 fps SDR; 24 vs 24000/1001 fps; a 30 fps SDR version
  of a 24 fps HDR one (must be refused); a fade to black followed by a cut; a dissolve;
- unrelated pairs (the SDR version of another clip), which must be refused.

Every case runs exactly as the build runs a pair (:class:`fmstf_data.extract.PairExtractor` with the build's
defaults: a 5 s offset window, 10 s of search, stride 4) and every kept triplet is checked against the truth:
wrongly paired (an SDR frame that does not show its HDR partner), across a cut, or touching a fade or dissolve
frame (one at most 90 % as bright as its shot, or mixing two shots with at least 10 % of the light each).

The cost part decodes a 1080p pair with film grain (8 s, HEVC and H.264 at crf 18, made once and cached) and
compares the time alignment takes (picture areas, signatures, offset search, registration, per-frame
verification, shots; plus any re-decoding) with the time a plain decode of both files takes. It runs with one
thread per BLAS/OpenMP pool, as a one-CPU Ray worker does.

    python bench/bench_align.py            # full grid (about 5 min on 2 cores) and the cost
    python bench/bench_align.py --quick    # 12 s masters, one case per tone curve
    python bench/bench_align.py --only drop --no-cost
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # measure as a one-CPU Ray worker runs (Ray sets OMP_NUM_THREADS=1): no thread pools
    for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")

import argparse
import json
import logging
import math
import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from fmstf_data.color import (
    bt1886_inverse_eotf,
    pq_inverse_eotf,
    gamut_map_bt2020_to_bt709,
    hable,
    hdr_to_sdr_rgb,
    planes_to_rgb,
    pq_eotf,
    reinhard,
    rgb_to_planes,
)
from fmstf_data.align import plan_frame_mapping, video_fps
from fmstf_data.errors import AlignmentError
from fmstf_data.extract import ExtractOptions, PairExtractor
from fmstf_data.synth import ClipSpec, iter_clip_nits, nits_to_hdr10_planes, planes_to_video_frame
from fmstf_data.video import iter_planes

logger = logging.getLogger(__name__)
os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1: errors only

#: tone curves a generated SDR version can use: the library's standard ones, two filmic curves applied per channel
#: (as game engines and some players do), and a crude "platform" curve on the PQ signal itself
TONE_CURVES = ("bt2390", "bt2446a", "bt2446c", "hable", "reinhard", "platform")
#: SDR codecs: (encoder, container suffix)
SDR_CODECS = {"h264": ("libx264", "mp4"), "hevc": ("libx265", "mp4"), "vp9": ("libvpx-vp9", "webm"),
              "av1": ("libsvtav1", "mkv")}
#: 10-bit narrow-range black of the HDR planes, 8-bit narrow-range black of the SDR planes (Y, Cb/Cr)
HDR_BLACK = (64, 512)
SDR_BLACK = (16, 128)


# ---- the HDR master and its HDR file -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Master:
    """Rendered HDR10 planes of a clip (in memory), the source of both versions of a case.

    ``frames[k]`` is (y, cb, cr) uint16 10-bit narrow BT.2020 of master frame k; ``picture`` is the (x, y, w, h)
    rectangle of the picture inside the frame (the rest is black bars).
    """

    clip: ClipSpec
    frames: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...] = field(repr=False)
    picture: tuple[int, int, int, int]
    cuts: tuple[int, ...]
    transition_frames: tuple[int, ...]

    @property
    def width(self) -> int:
        return int(self.frames[0][0].shape[1])

    @property
    def height(self) -> int:
        return int(self.frames[0][0].shape[0])


def render_master(clip: ClipSpec, *, frame_size: tuple[int, int] | None = None, dissolve_frames: int = 0,
                  dissolve_seed: int = 99) -> Master:
    """Render ``clip`` (its picture is ``clip.width`` x ``clip.height``) into HDR10 planes.

    Args:
        frame_size: (width, height) of the frame when the picture is letterboxed/pillarboxed into a bigger frame
            (centred, on even coordinates, black bars around); None: the frame is the picture.
        dissolve_frames: when > 0, the last ``dissolve_frames`` frames of the clip dissolve (a linear mix in
            light) into a different scene, which then continues for as many frames again.

    ``transition_frames`` lists the frames a triplet must not use: fade frames at most 90 % as bright as the shot,
    dissolve frames where both scenes bring at least 10 % of the light.
    """
    width, height = frame_size or (clip.width, clip.height)
    left, top = (width - clip.width) // 2 & ~1, (height - clip.height) // 2 & ~1
    pictures = list(iter_clip_nits(clip))
    transition: list[int] = []
    if clip.fade_out_frames:  # frames at most 90 % as bright as the shot
        transition.extend(k for k in range(clip.frame_count - clip.fade_out_frames, clip.frame_count)
                          if (clip.frame_count - 1 - k) / clip.fade_out_frames <= 0.9)
    if dissolve_frames:
        other = replace(clip, seed=dissolve_seed, shot_lengths=(), fade_out_frames=0,
                        frame_count=2 * dissolve_frames)
        incoming = list(iter_clip_nits(other))
        start = clip.frame_count - dissolve_frames
        for k in range(dissolve_frames):
            weight = (k + 1) / (dissolve_frames + 1)
            pictures[start + k] = (1 - weight) * pictures[start + k] + weight * incoming[k]
            if 0.1 <= weight <= 0.9:  # both scenes bring at least 10 % of the light
                transition.append(start + k)
        pictures.extend(incoming[dissolve_frames:])
    frames = []
    for nits in pictures:
        y, cb, cr = nits_to_hdr10_planes(nits)
        if (width, height) != (clip.width, clip.height):
            y, cb, cr = _pad_planes((y, cb, cr), width, height, left, top, HDR_BLACK)
        frames.append((y, cb, cr))
    return Master(clip=clip, frames=tuple(frames), picture=(left, top, clip.width, clip.height),
                  cuts=clip.shot_starts[1:], transition_frames=tuple(transition))


def _pad_planes(planes, width: int, height: int, left: int, top: int, black: tuple[int, int]):
    y, cb, cr = planes
    out_y = np.full((height, width), black[0], dtype=y.dtype)
    out_y[top:top + y.shape[0], left:left + y.shape[1]] = y
    chroma = []
    for plane in (cb, cr):
        out = np.full(((height + 1) // 2, (width + 1) // 2), black[1], dtype=plane.dtype)
        out[top // 2:top // 2 + plane.shape[0], left // 2:left // 2 + plane.shape[1]] = plane
        chroma.append(out)
    return out_y, chroma[0], chroma[1]


class _Writer:
    """An encoder of (y, cb, cr) planes into one file; the first frame fixes the size."""

    def __init__(self, path: Path, *, codec: str, fps: Fraction, pix_fmt: str, options: dict[str, str],
                 tags: tuple[int, int, int, int], bit_rate: int | None = None) -> None:
        self.container = av.open(str(path), "w")
        self.codec, self.fps, self.pix_fmt, self.options, self.tags = codec, fps, pix_fmt, options, tags
        self.bit_rate = bit_rate
        self.stream = None
        self.count = 0

    def write(self, y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> None:
        if self.stream is None:
            self.stream = self.container.add_stream(self.codec, rate=self.fps)
            self.stream.width, self.stream.height, self.stream.pix_fmt = y.shape[1], y.shape[0], self.pix_fmt
            self.stream.options = self.options
            if self.bit_rate:
                self.stream.bit_rate = self.bit_rate
            context = self.stream.codec_context
            context.color_trc, context.color_primaries, context.colorspace, context.color_range = self.tags
        frame = planes_to_video_frame(y, cb, cr, self.pix_fmt)
        frame.pts = self.count
        frame.color_trc, frame.color_primaries, frame.colorspace, frame.color_range = self.tags
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.count += 1

    def close(self) -> None:
        if self.stream is not None:
            for packet in self.stream.encode():
                self.container.mux(packet)
        self.container.close()


def _encode(path: Path, frames, **settings) -> None:
    """Encode an iterable of (y, cb, cr) planes (see :class:`_Writer` for the settings)."""
    writer = _Writer(path, **settings)
    try:
        for y, cb, cr in frames:
            writer.write(y, cb, cr)
    finally:
        writer.close()


HDR_X265_PARAMS = "log-level=error:colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc:range=limited:hdr10=1"


def write_hdr_file(master: Master, path: Path, *, start: int = 0, stop: int | None = None, crf: float = 22,
                   fps: Fraction | None = None, crop: tuple[int, int, int, int] | None = None) -> Path:
    """Encode master frames [start, stop) as HDR10 (HEVC Main 10, PQ / BT.2020 tags); HDR frame k = master
    frame ``start + k``. ``crop`` = (x, y, width, height), even numbers: only that part of the frame."""
    frames = master.frames[start:stop]
    if crop is not None:
        x, y, width, height = crop
        frames = [(fy[y:y + height, x:x + width], fb[y // 2:(y + height) // 2, x // 2:(x + width) // 2],
                   fr[y // 2:(y + height) // 2, x // 2:(x + width) // 2]) for fy, fb, fr in frames]
    _encode(path, frames, codec="libx265", fps=fps or master.clip.fps, pix_fmt="yuv420p10le",
            options={"preset": "ultrafast", "crf": str(crf), "x265-params": HDR_X265_PARAMS}, tags=(16, 9, 9, 1))
    return path


# ---- SDR versions ---------------------------------------------------------------------------------------------


def tone_map(rgb_pq: np.ndarray, curve: str, gamut_mapping: str = "desaturate") -> np.ndarray:
    """PQ BT.2020 R'G'B' [3, h, w] -> BT.709 R'G'B' for a 100 cd/m² BT.1886 display, by ``curve``."""
    if curve in ("bt2390", "bt2446a", "bt2446c"):
        return hdr_to_sdr_rgb(rgb_pq, method=curve, source_max_nits=4000.0, gamut_mapping=gamut_mapping)
    if curve == "platform":  # a contrast curve straight on the PQ signal, per channel; BT.2020 primaries kept
        return np.clip((rgb_pq - 0.1) * 1.9, 0.0, 1.0) ** 0.9
    relative = pq_eotf(rgb_pq) / 100.0  # 1 = SDR white
    if curve == "hable":
        mapped = hable(relative * 2.0, white=11.2)
    elif curve == "reinhard":
        mapped = reinhard(relative, white=8.0)
    else:
        raise ValueError(f"unknown tone curve {curve!r}: use one of {TONE_CURVES}")
    linear_709 = np.clip(gamut_map_bt2020_to_bt709(mapped, method=gamut_mapping), 0.0, 1.0)
    return bt1886_inverse_eotf(linear_709 * 100.0, white_nits=100.0)


@dataclass(frozen=True)
class SdrSpec:
    """How the SDR version of a case is made from its master.

    Attributes:
        shows: for each SDR frame, the master frame it shows (trims, drops, duplicates, frame-rate changes).
        tone_curve: one of :data:`TONE_CURVES`; gamut_mapping: "desaturate" or "clip".
        picture_size: (width, height) the picture is scaled to; None keeps the master's picture size.
        frame_size: (width, height) of the SDR frame (bars around the picture); None: the picture size.
        crop_hdr_bars: take only the master's picture (its bars cut away) before scaling.
        codec: a key of :data:`SDR_CODECS`; kbps: target bit rate (None: constant quality).
        noise_codes: Gaussian noise added to R'G'B', standard deviation in 8-bit code units (seeded).
        fps: the SDR frame rate (None: the master's).
        crop: (x, y, width, height) of the master picture that the SDR version shows (None: all of it).
    """

    shows: tuple[int, ...]
    tone_curve: str = "bt2390"
    gamut_mapping: str = "desaturate"
    picture_size: tuple[int, int] | None = None
    frame_size: tuple[int, int] | None = None
    crop_hdr_bars: bool = True
    codec: str = "h264"
    kbps: int | None = None
    noise_codes: float = 0.0
    fps: Fraction | None = None
    seed: int = 0
    crop: tuple[int, int, int, int] | None = None


def write_sdr_file(master: Master, spec: SdrSpec, path_stem: Path) -> Path:
    """Make the SDR version described by ``spec`` from the master; returns the file (suffix from the codec)."""
    encoder, suffix = SDR_CODECS[spec.codec]
    path = path_stem.parent / f"{path_stem.name}.{suffix}"
    left, top, pw, ph = master.picture if spec.crop_hdr_bars else (0, 0, master.width, master.height)
    if spec.crop is not None:
        left, top, pw, ph = left + spec.crop[0], top + spec.crop[1], spec.crop[2], spec.crop[3]
    picture_size = spec.picture_size or (pw, ph)
    frame_size = spec.frame_size or picture_size
    rng = np.random.default_rng(spec.seed)
    frames = []
    cache: dict[int, np.ndarray] = {}
    for shown in spec.shows:
        if shown not in cache:
            cache.clear()
            y, cb, cr = master.frames[shown]
            rgb = planes_to_rgb(y, cb, cr, bit_depth=10, matrix="bt2020nc", full_range=False)
            rgb = rgb[:, top:top + ph, left:left + pw]
            sdr = tone_map(rgb.astype(np.float64), spec.tone_curve, spec.gamut_mapping).astype(np.float32)
            if picture_size != (pw, ph):
                from fmstf_data.synth import resize_rgb

                sdr = resize_rgb(sdr, *picture_size)
            cache[shown] = sdr
        sdr = cache[shown]
        if spec.noise_codes:
            sdr = np.clip(sdr + rng.normal(0.0, spec.noise_codes / 255.0, sdr.shape).astype(np.float32), 0, 1)
        planes = rgb_to_planes(sdr, bit_depth=8, matrix="bt709", full_range=False)
        if frame_size != picture_size:
            planes = _pad_planes(planes, frame_size[0], frame_size[1], (frame_size[0] - picture_size[0]) // 2 & ~1,
                                 (frame_size[1] - picture_size[1]) // 2 & ~1, SDR_BLACK)
        frames.append(planes)
    options = {"crf": "23"} if spec.kbps is None else {}
    if spec.codec in ("h264", "hevc"):
        options["preset"] = "ultrafast"
        if spec.codec == "hevc":
            options["x265-params"] = "log-level=error"
    elif spec.codec == "vp9":
        options.update({"deadline": "realtime", "cpu-used": "8"})
        if spec.kbps is None:
            options["b"] = "0"
    elif spec.codec == "av1":
        options["preset"] = "12"
        if spec.kbps is None:
            options["crf"] = "35"
    _encode(path, frames, codec=encoder, fps=spec.fps or master.clip.fps, pix_fmt="yuv420p", options=options,
            tags=(1, 1, 1, 1), bit_rate=None if spec.kbps is None else spec.kbps * 1000)
    return path


# ---- cases with known truth --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One generated pair: the HDR file shows master frames [hdr_start, hdr_stop), the SDR one ``sdr.shows``.

    ``expect`` is "aligned" (must align, every kept triplet must be true), "refused" (must be refused: unrelated
    videos, unmappable geometry or frame rates), or "unrelated" (the SDR comes from another master: must be refused).
    """

    name: str
    master: str
    sdr: SdrSpec
    hdr_start: int = 0
    hdr_stop: int | None = None
    sdr_master: str | None = None
    hdr_fps: Fraction | None = None
    hdr_crop: tuple[int, int, int, int] | None = None
    expect_hdr_rect: tuple[int, int, int, int] | None = None
    expect_sdr_rect: tuple[int, int, int, int] | None = None
    expect: str = "aligned"
    note: str = ""

    @property
    def truth_offset(self) -> int:
        """HDR frame shown by SDR frame 0 (in the HDR file's own indices)."""
        return self.sdr.shows[0] - self.hdr_start


@dataclass
class CaseResult:
    """What the alignment did with a :class:`Case`, checked against its truth."""

    name: str
    expect: str
    refused: str | None = None
    offset_frames: int | None = None
    truth_offset: int | None = None
    confidence: float = float("nan")
    triplets: int = 0
    wrong_triplets: int = 0
    cut_triplets: int = 0
    transition_triplets: int = 0
    verified_share: float = float("nan")
    offset_changes: int = 0
    min_verified_detail: float = float("nan")
    geometry: str = ""
    geometry_error_px: float | None = None
    geometry_ok: bool | None = None
    seconds: float = 0.0

    @property
    def exact(self) -> bool:
        return self.refused is None and self.offset_frames == self.truth_offset

    @property
    def ok(self) -> bool:
        if self.expect != "aligned":
            return self.refused is not None
        return self.exact and self.triplets > 0 and self.geometry_ok is not False and \
            not (self.wrong_triplets or self.cut_triplets or self.transition_triplets)


def masters_spec(quick: bool) -> dict[str, tuple[ClipSpec, dict[str, Any]]]:
    """The rendered masters of the grid: (clip, render_master keywords)."""
    seconds = 12 if quick else 20
    frames = 24 * seconds
    shots = (frames * 3 // 8, frames * 3 // 8, frames - 2 * (frames * 3 // 8))
    return {
        "main": (ClipSpec(width=256, height=144, fps=Fraction(24), frame_count=frames, seed=11, shot_lengths=shots),
                 {}),
        "other": (ClipSpec(width=256, height=144, fps=Fraction(24), frame_count=frames, seed=99,
                           shot_lengths=(frames // 2, frames - frames // 2)), {}),
        "scope": (ClipSpec(width=256, height=108, fps=Fraction(24), frame_count=24 * 10, seed=12,
                           shot_lengths=(24 * 6, 24 * 4)), {"frame_size": (256, 144)}),
        "fast": (ClipSpec(width=256, height=144, fps=Fraction(50), frame_count=50 * 8, seed=13,
                          shot_lengths=(50 * 5, 50 * 3)), {}),
        "fade": (ClipSpec(width=256, height=144, fps=Fraction(24), frame_count=24 * 8, seed=14,
                          shot_lengths=(24 * 4, 24 * 4), fade_out_frames=16), {}),
        "dissolve": (ClipSpec(width=256, height=144, fps=Fraction(24), frame_count=24 * 7, seed=15), 
                     {"dissolve_frames": 16}),
    }


def grid_cases(masters: dict[str, Master], quick: bool) -> list[Case]:
    """The benchmark grid (see the module docstring)."""
    main_frames = len(masters["main"].frames)
    length = main_frames - 130  # SDR frames of the offset cases: room for the largest offset
    offsets = [0, 3, -7, 12, -1, 60, 1, -40, 110, 5, -110, 24]
    scales = [None, (160, 90), (320, 180), (192, 108), (384, 216), (128, 72)]
    codecs = [("h264", None), ("hevc", None), ("vp9", 200), ("av1", 120), ("h264", 150), ("vp9", None)]
    noises = [0.0, 3.0, 8.0]
    cases = []
    count = 0
    for curve_index, curve in enumerate(TONE_CURVES):
        for repeat in range(1 if quick else 4):
            position = 4 * curve_index + repeat
            offset = offsets[position % len(offsets)]
            codec, kbps = codecs[count % len(codecs)]
            scale = scales[(count + curve_index) % len(scales)]
            noise = noises[count % len(noises)]
            gamut = "clip" if repeat % 2 else "desaturate"
            start = max(0, -offset)
            shows = tuple(range(max(0, offset), max(0, offset) + length))
            cases.append(Case(
                name=f"{curve}-{'p' if offset >= 0 else 'm'}{abs(offset)}-{codec}{kbps or ''}-"
                     f"{'x'.join(map(str, scale)) if scale else 'same'}-n{noise:g}-{gamut}",
                master="main", hdr_start=start, sdr=SdrSpec(shows=shows, tone_curve=curve, gamut_mapping=gamut,
                                                            picture_size=scale, codec=codec, kbps=kbps,
                                                            noise_codes=noise, seed=count)))
            count += 1
    # framing: letterbox, pillarbox, HDR bars cropped away, both letterboxed, an unmappable stretch
    shows = tuple(range(4, 4 + length))
    cases += [
        Case("letterboxed-sdr", "main", SdrSpec(shows=shows, frame_size=(256, 192), tone_curve="bt2446a"),
             expect_hdr_rect=(0, 0, 256, 144), expect_sdr_rect=(0, 24, 256, 144)),
        Case("pillarboxed-sdr-small", "main", SdrSpec(shows=shows, picture_size=(192, 108), frame_size=(256, 108),
                                                      tone_curve="hable", codec="hevc"),
             expect_hdr_rect=(0, 0, 256, 144), expect_sdr_rect=(32, 0, 192, 108)),
        Case("hdr-bars-cropped", "scope", SdrSpec(shows=tuple(range(6, 230)), tone_curve="reinhard"),
             expect_hdr_rect=(0, 18, 256, 108), expect_sdr_rect=(0, 0, 256, 108)),
        Case("hdr-bars-sdr-scaled", "scope", SdrSpec(shows=tuple(range(0, 200)), picture_size=(192, 81),
                                                     tone_curve="bt2390", codec="vp9", kbps=150),
             expect_hdr_rect=(0, 18, 256, 108), expect_sdr_rect=(0, 0, 192, 81)),
        Case("both-letterboxed", "scope", SdrSpec(shows=tuple(range(9, 220)), picture_size=(320, 135),
                                                  frame_size=(320, 180), tone_curve="platform", noise_codes=3),
             expect_hdr_rect=(0, 0, 256, 144), expect_sdr_rect=(0, 0, 320, 180)),
        Case("stretched-4x3", "main", SdrSpec(shows=shows, picture_size=(192, 144)), expect="refused",
             note="aspect mismatch"),
        Case("sdr-zoomed-5pct", "main", SdrSpec(shows=shows, crop=(13, 7, 230, 130), picture_size=(256, 144),
                                                tone_curve="bt2446a"), expect_hdr_rect=(13, 7, 230, 130)),
        Case("sdr-zoomed-10pct-small", "main", SdrSpec(shows=shows, crop=(26, 14, 204, 115), picture_size=(192, 108),
                                                       codec="hevc"), expect_hdr_rect=(26, 14, 204, 115)),
        Case("sdr-shifted", "main", SdrSpec(shows=shows, crop=(6, 0, 250, 141), picture_size=(256, 144),
                                            tone_curve="hable"), expect_hdr_rect=(6, 0, 250, 141)),
        Case("hdr-cropped", "main", SdrSpec(shows=shows, tone_curve="reinhard", noise_codes=3),
             hdr_crop=(14, 8, 228, 128), expect_sdr_rect=(14, 8, 228, 128)),
    ]
    # dropped and duplicated frames, frame rates
    at = [round(length * fraction) for fraction in (0.2, 0.45, 0.7, 0.85)]
    drop = tuple(k for k in range(2, 2 + length) if k not in (at[0], at[1], at[2]))
    dup = tuple(sorted(list(range(0, length)) + [at[1], at[3]]))
    mixed = tuple(k for k in sorted(list(range(8, 8 + length)) + [at[0], at[3]]) if k not in (at[2], at[2] + 1))
    cases += [
        Case("sdr-drops", "main", SdrSpec(shows=drop, tone_curve="bt2446c")),
        Case("sdr-duplicates", "main", SdrSpec(shows=dup, tone_curve="hable", noise_codes=3)),
        Case("sdr-drops-and-duplicates", "main", SdrSpec(shows=mixed, picture_size=(192, 108), codec="hevc")),
        Case("50fps-hdr-25fps-sdr", "fast", SdrSpec(shows=tuple(range(7, 380, 2)), fps=Fraction(25),
                                                     tone_curve="bt2446a")),
        Case("50fps-hdr-25fps-sdr-early", "fast", SdrSpec(shows=tuple(range(0, 360, 2)), fps=Fraction(25)),
             hdr_start=10),
        Case("24fps-hdr-23.976-sdr", "main", SdrSpec(shows=tuple(range(2, 2 + length)), fps=Fraction(24000, 1001),
                                                      tone_curve="reinhard")),
        Case("23.976-hdr-24fps-sdr", "main", SdrSpec(shows=tuple(range(0, length)), fps=Fraction(24)),
             hdr_fps=Fraction(24000, 1001), hdr_start=3),
        Case("30fps-sdr-of-24fps-hdr", "main", SdrSpec(shows=shows, fps=Fraction(30)), expect="refused",
             note="frame-rate ratio 0.8"),
        Case("fade-to-black-and-cut", "fade", SdrSpec(shows=tuple(range(2, 190)), tone_curve="bt2446c")),
        Case("dissolve", "dissolve", SdrSpec(shows=tuple(range(0, 180)), tone_curve="hable")),
    ]
    # unrelated pairs: the SDR version of another video
    for index, (curve, scale) in enumerate([("bt2390", None), ("hable", (160, 90)), ("platform", None),
                                            ("reinhard", (320, 180))]):
        cases.append(Case(f"unrelated-{curve}", "main", SdrSpec(shows=tuple(range(index * 20, index * 20 + 200)),
                                                                 tone_curve=curve, picture_size=scale),
                          sdr_master="other", expect="unrelated"))
    cases.append(Case("unrelated-fade-vs-main", "fade", SdrSpec(shows=tuple(range(0, 180))), sdr_master="main",
                      expect="unrelated"))
    cases.append(Case("unrelated-scope-vs-dissolve", "scope", SdrSpec(shows=tuple(range(0, 160)),
                                                                       picture_size=(256, 108), frame_size=(256, 144)),
                      sdr_master="dissolve", expect="unrelated"))
    return cases


#: a found geometry is right when it puts the true SDR region's edges within this many HDR pixels of the truth
GEOMETRY_TOLERANCE_PX = 1.5


def mapping_error(geometry, expected_hdr_rect, expected_sdr_rect) -> float:
    """Largest distance, in HDR pixels, between where the found geometry and the true one put the corners of the
    true SDR region (rects not given are the whole frames)."""
    true_hdr = expected_hdr_rect or (0, 0, geometry.hdr_width, geometry.hdr_height)
    true_sdr = expected_sdr_rect or (0, 0, geometry.sdr_width, geometry.sdr_height)
    error = 0.0
    for axis in (0, 1):
        for edge in (true_sdr[axis], true_sdr[axis] + true_sdr[axis + 2]):
            def mapped(hdr_rect, sdr_rect):
                return hdr_rect[axis] + (edge - sdr_rect[axis]) * hdr_rect[axis + 2] / sdr_rect[axis + 2]
            error = max(error, abs(mapped(true_hdr, true_sdr) - mapped(geometry.hdr_rect, geometry.sdr_rect)))
    return error


def make_case_files(case: Case, masters: dict[str, Master], workdir: Path) -> tuple[Path, Path]:
    """Write (or reuse) the case's two files."""
    crop = "-".join(map(str, case.hdr_crop)) if case.hdr_crop else "full"
    hdr_path = workdir / (f"{case.master}-{case.hdr_start}-{case.hdr_stop}-{case.hdr_fps}-{crop}.hdr.mp4"
                          .replace("/", "_"))
    if not hdr_path.exists():
        write_hdr_file(masters[case.master], hdr_path, start=case.hdr_start, stop=case.hdr_stop, fps=case.hdr_fps,
                       crop=case.hdr_crop)
    sdr_stem = workdir / f"{case.name}.sdr"
    existing = list(workdir.glob(f"{case.name}.sdr.*"))
    sdr_path = existing[0] if existing else write_sdr_file(masters[case.sdr_master or case.master], case.sdr,
                                                          sdr_stem)
    return hdr_path, sdr_path


def extract_options(hdr_fps: Fraction, sdr_fps: Fraction, *, stride_frames: int = 4) -> ExtractOptions:
    """The build's defaults (5 s offset window, 10 s search) for these rates."""
    return ExtractOptions(stride_frames=stride_frames, max_offset_frames=math.ceil(5 * hdr_fps),
                          search_frames=math.ceil(10 * sdr_fps))


def run_case(case: Case, masters: dict[str, Master], workdir: Path) -> CaseResult:
    """Align the case's files as the build does and check every kept triplet against the truth."""
    hdr_path, sdr_path = make_case_files(case, masters, workdir)
    result = CaseResult(case.name, case.expect, truth_offset=case.truth_offset)
    started = time.perf_counter()
    try:
        mapping = plan_frame_mapping(video_fps(hdr_path), video_fps(sdr_path))
        extractor = PairExtractor(hdr_path, sdr_path, pair_id="bench", split="train", mapping=mapping,
                                  options=extract_options(mapping.hdr_fps, mapping.sdr_fps))
        alignment = extractor.align()
        result.offset_frames = alignment.offset_frames
        result.confidence = alignment.estimate.confidence
        result.geometry = alignment.geometry.describe()
        geometry = alignment.geometry
        if case.expect_hdr_rect or case.expect_sdr_rect:
            result.geometry_error_px = mapping_error(geometry, case.expect_hdr_rect, case.expect_sdr_rect)
            result.geometry_ok = result.geometry_error_px <= GEOMETRY_TOLERANCE_PX
        samples = [sample.metadata for sample in extractor.samples()]
    except AlignmentError as error:
        result.refused = str(error)
        result.seconds = time.perf_counter() - started
        return result
    result.seconds = time.perf_counter() - started
    stats = extractor.stats
    result.verified_share = stats.verified_frames / max(stats.paired_frames, 1)
    result.offset_changes = len(stats.offset_changes)
    verified = [d for d, status in zip(stats.detail_scores, stats.frame_status) if status in "vt"]
    result.min_verified_detail = min(verified) if verified else float("nan")
    master = masters[case.master]
    cuts = set(master.cuts)
    transitions = set(master.transition_frames)
    result.triplets = len(samples)
    for meta in samples:
        shown = [case.sdr.shows[j] for j in meta["sdr_frames"]]
        true_hdr = [index + case.hdr_start for index in meta["hdr_frames"]]
        if shown != true_hdr or case.sdr_master is not None:
            result.wrong_triplets += 1
        if any(true_hdr[0] < cut <= true_hdr[-1] for cut in cuts):
            result.cut_triplets += 1
        if transitions.intersection(range(true_hdr[0], true_hdr[-1] + 1)):
            result.transition_triplets += 1
    return result


# ---- cost ---------------------------------------------------------------------------------------------------------


def write_cost_clip(workdir: Path, *, width: int = 1920, height: int = 1080, frames: int = 192,
                    grain: float = 0.012) -> tuple[Path, Path]:
    """A 1080p pair with film grain (so that it codes at a realistic bit rate): the scene is rendered at a third of
    the size, upscaled, grained (the same grain on both versions, as it is part of the picture), then encoded as
    HDR10 HEVC and as BT.2390-mapped SDR H.264 (both at crf 18, preset "faster"), the SDR version 3 frames late."""
    import torch
    import torch.nn.functional as functional

    hdr_path, sdr_path = workdir / f"cost{height}.hdr.mp4", workdir / f"cost{height}.sdr.mp4"
    if hdr_path.exists() and sdr_path.exists():
        return hdr_path, sdr_path
    clip = ClipSpec(width=width // 3, height=height // 3, fps=Fraction(24), frame_count=frames, seed=21,
                    shot_lengths=(frames // 2, frames - frames // 2))
    rng = np.random.default_rng(5)

    def upscale(rgb: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32))[None]
        return functional.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False)[0].numpy()

    def both():
        for nits in iter_clip_nits(clip):
            noise = rng.normal(0.0, grain, (1, height, width)).astype(np.float32)
            pq = np.clip(upscale(pq_inverse_eotf(nits)) + noise, 0, 1)
            sdr = np.clip(upscale(tone_map(pq_inverse_eotf(nits).astype(np.float64), "bt2390")) + noise, 0, 1)
            yield (rgb_to_planes(pq, bit_depth=10, matrix="bt2020nc", full_range=False),
                   rgb_to_planes(sdr, bit_depth=8, matrix="bt709", full_range=False))

    options = {"preset": "faster", "crf": "18"}
    hdr_writer = _Writer(hdr_path, codec="libx265", fps=clip.fps, pix_fmt="yuv420p10le",
                         options={**options, "x265-params": HDR_X265_PARAMS}, tags=(16, 9, 9, 1))
    sdr_writer = _Writer(sdr_path, codec="libx264", fps=clip.fps, pix_fmt="yuv420p", options=options,
                         tags=(1, 1, 1, 1))
    try:
        for index, (hdr, sdr) in enumerate(both()):
            hdr_writer.write(*hdr)
            if index >= 3:
                sdr_writer.write(*sdr)
    finally:
        hdr_writer.close()
        sdr_writer.close()
    return hdr_path, sdr_path


def decode_seconds(paths: list[Path]) -> float:
    """Time to decode every frame of ``paths`` to planes (what any build must do at least once)."""
    started = time.perf_counter()
    for path in paths:
        for _ in iter_planes(path):
            pass
    return time.perf_counter() - started


def measure_cost(hdr: Path, sdr: Path, repeats: int = 2) -> dict[str, Any]:
    """Alignment cost on one pair: the best of ``repeats`` runs of a plain decode of both files and of the
    alignment pass (``PairExtractor.run``: search, signatures, verification, shots; no samples)."""
    plain = min(decode_seconds([hdr, sdr]) for _ in range(repeats))
    best = None
    for _ in range(repeats):
        mapping = plan_frame_mapping(video_fps(hdr), video_fps(sdr))
        extractor = PairExtractor(hdr, sdr, pair_id="cost", split="train", mapping=mapping,
                                  options=extract_options(mapping.hdr_fps, mapping.sdr_fps))
        stats = extractor.run()
        if best is None or stats.align_seconds < best.align_seconds:
            best = stats
    frames = best.hdr_frames_decoded + best.sdr_frames_decoded - best.hdr_frames_redecoded - \
        best.sdr_frames_redecoded
    cost = best.align_seconds + best.redecode_seconds
    return {
        "pair": f"{hdr.name} + {sdr.name}", "frames": frames, "offset_frames": extractor.alignment.offset_frames,
        "kept_centres": len(best.kept_centres), "decode_seconds": round(plain, 3),
        "decode_ms_per_frame": round(1000 * plain / frames, 3),
        "align_seconds": round(best.align_seconds, 3), "search_seconds": round(best.search_seconds, 3),
        "redecode_seconds": round(best.redecode_seconds, 3),
        "align_ms_per_frame": round(1000 * (best.align_seconds - best.search_seconds) / frames, 3),
        "share_of_decode": round(cost / plain, 4),
        "share_of_decode_in_pass": round(cost / max(best.decode_seconds - best.redecode_seconds, 1e-9), 4),
    }


# ---- main ---------------------------------------------------------------------------------------------------------


def render_masters(quick: bool) -> dict[str, Master]:
    return {name: render_master(clip, **keywords) for name, (clip, keywords) in masters_spec(quick).items()}


def summarise(results: list[CaseResult]) -> dict[str, Any]:
    """The benchmark's headline numbers."""
    aligned = [r for r in results if r.expect == "aligned"]
    unrelated = [r for r in results if r.expect == "unrelated"]
    refused = [r for r in results if r.expect == "refused"]
    return {
        "cases": len(results),
        "aligned_cases": len(aligned),
        "exact_offset_share": round(sum(r.exact for r in aligned) / max(len(aligned), 1), 4),
        "triplets_kept": sum(r.triplets for r in results),
        "wrongly_paired_triplets": sum(r.wrong_triplets for r in results),
        "cut_spanning_triplets": sum(r.cut_triplets for r in results),
        "transition_triplets": sum(r.transition_triplets for r in results),
        "aligned_cases_without_triplets": sum(r.triplets == 0 for r in aligned),
        "unrelated_cases": len(unrelated),
        "unrelated_accepted": sum(r.refused is None for r in unrelated),
        "unmappable_cases": len(refused),
        "unmappable_accepted": sum(r.refused is None for r in refused),
        "offset_changes_followed": sum(r.offset_changes for r in results),
        "geometry_cases": sum(r.geometry_error_px is not None for r in results),
        "geometry_wrong": sum(r.geometry_ok is False for r in results),
        "geometry_max_error_px": round(max((r.geometry_error_px for r in results
                                            if r.geometry_error_px is not None), default=0.0), 3),
        "cases_failed": [r.name for r in results if not r.ok],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="12 s masters and a quarter of the tone-curve cases")
    parser.add_argument("--no-cost", action="store_true", help="skip the 1080p cost measurement")
    parser.add_argument("--only", default="", help="run only the cases whose name contains this")
    parser.add_argument("--workdir", type=Path, default=Path(__file__).parent / "results" / "align")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    workdir = args.workdir / ("quick" if args.quick else "full")
    workdir.mkdir(parents=True, exist_ok=True)
    bench_started = started = time.perf_counter()
    masters = render_masters(args.quick)
    print(f"masters rendered in {time.perf_counter() - started:.1f} s")
    cases = [case for case in grid_cases(masters, args.quick) if args.only in case.name]
    results = []
    header = (f"{'case':44} {'expect':9} {'offset':>7} {'truth':>6} {'conf':>5} {'trip':>4} {'wrong':>5} "
              f"{'cut':>3} {'fade':>4} {'verif':>6} {'resync':>6} {'minD':>5} {'time':>6}  result")
    print(header)
    for case in cases:
        result = run_case(case, masters, workdir)
        results.append(result)
        offset = "-" if result.offset_frames is None else f"{result.offset_frames:+d}"
        verified = "-" if math.isnan(result.verified_share) else f"{100 * result.verified_share:.0f}%"
        outcome = "ok" if result.ok else "FAIL"
        if result.refused:
            outcome += f" (refused: {result.refused[:70]})"
        print(f"{case.name:44} {case.expect:9} {offset:>7} {case.truth_offset:+6d} {result.confidence:5.2f} "
              f"{result.triplets:4d} {result.wrong_triplets:5d} {result.cut_triplets:3d} "
              f"{result.transition_triplets:4d} {verified:>6} {result.offset_changes:6d} "
              f"{result.min_verified_detail:5.2f} {result.seconds:5.1f}s  {outcome}", flush=True)
    summary = summarise(results)
    print("\nsummary: " + json.dumps(summary))
    print(f"  exact offsets: {100 * summary['exact_offset_share']:.1f}% of {summary['aligned_cases']} aligned cases; "
          f"wrongly paired triplets kept: {summary['wrongly_paired_triplets']}; across a cut: "
          f"{summary['cut_spanning_triplets']}; in a fade or dissolve: {summary['transition_triplets']}; "
          f"unrelated pairs accepted: {summary['unrelated_accepted']} of {summary['unrelated_cases']}; "
          f"unmappable pairs accepted: {summary['unmappable_accepted']} of {summary['unmappable_cases']}; "
          f"geometry within {GEOMETRY_TOLERANCE_PX} px: {summary['geometry_cases'] - summary['geometry_wrong']} of "
          f"{summary['geometry_cases']} (largest error {summary['geometry_max_error_px']} px)")
    costs = []
    if not args.no_cost:
        grid_case = next(case for case in cases if case.expect == "aligned") if cases else None
        if grid_case is not None:
            costs.append(measure_cost(*make_case_files(grid_case, masters, workdir)))
        started = time.perf_counter()
        cost_pair = write_cost_clip(args.workdir)
        print(f"\n1080p cost clip ready in {time.perf_counter() - started:.1f} s")
        costs.append(measure_cost(*cost_pair))
        for cost in costs:
            print(f"cost {cost['pair']}: {cost['frames']} frames decoded in {cost['decode_seconds']:.2f} s "
                  f"({cost['decode_ms_per_frame']:.2f} ms/frame); alignment {cost['align_seconds']:.2f} s "
                  f"(search {cost['search_seconds']:.2f} s, {cost['align_ms_per_frame']:.2f} ms/frame) + "
                  f"re-decoding {cost['redecode_seconds']:.2f} s = {100 * cost['share_of_decode']:.1f}% of decoding")
    print(f"\nbench done in {time.perf_counter() - bench_started:.1f} s")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "cases": [r.__dict__ for r in results],
                                         "cost": costs}, indent=1, default=str))


if __name__ == "__main__":
    main()
