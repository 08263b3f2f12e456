"""Alignment cases with known truth: HDR masters rendered in memory, HDR10 files cut from them, and SDR versions
made the way a platform might (tone curves, gamut mapping, scales, crops, bars, codecs, noise, dropped or
duplicated frames, other frame rates), each with the list of master frames its frames show.

Shared by the alignment tests and ``bench/bench_align.py``; :mod:`fmstf_data.synth.truth` runs a case exactly as
the build runs a pair and checks every kept triplet against this truth.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from fmstf_data.color import (
    bt1886_inverse_eotf,
    gamut_map_bt2020_to_bt709,
    hable,
    hdr_to_sdr_rgb,
    planes_to_rgb,
    pq_eotf,
    reinhard,
    rgb_to_planes,
)
from fmstf_data.errors import SynthError
from fmstf_data.synth.pairs import nits_to_hdr10_planes, planes_to_video_frame
from fmstf_data.synth.scene import ClipSpec, iter_clip_nits

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


class PlaneWriter:
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
    """Encode an iterable of (y, cb, cr) planes (see :class:`PlaneWriter` for the settings)."""
    writer = PlaneWriter(path, **settings)
    try:
        for y, cb, cr in frames:
            writer.write(y, cb, cr)
    finally:
        writer.close()


HDR_X265_PARAMS = "log-level=error:colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc:range=limited:hdr10=1"


def write_hdr_file(master: Master, path: Path, *, start: int = 0, stop: int | None = None, crf: float = 22,
                   fps: Fraction | None = None, crop: tuple[int, int, int, int] | None = None,
                   gop_frames: int | None = None) -> Path:
    """Encode master frames [start, stop) as HDR10 (HEVC Main 10, PQ / BT.2020 tags); HDR frame k = master
    frame ``start + k``. ``crop`` = (x, y, width, height), even numbers: only that part of the frame.
    ``gop_frames``: a keyframe at least this often (None: the encoder's default, 250 frames)."""
    frames = master.frames[start:stop]
    if crop is not None:
        x, y, width, height = crop
        frames = [(fy[y:y + height, x:x + width], fb[y // 2:(y + height) // 2, x // 2:(x + width) // 2],
                   fr[y // 2:(y + height) // 2, x // 2:(x + width) // 2]) for fy, fb, fr in frames]
    _encode(path, frames, codec="libx265", fps=fps or master.clip.fps, pix_fmt="yuv420p10le",
            options={"preset": "ultrafast", "crf": str(crf), "x265-params": HDR_X265_PARAMS,
                     **({} if gop_frames is None else {"g": str(gop_frames)})}, tags=(16, 9, 9, 1))
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
        raise SynthError(f"unknown tone curve {curve!r}: use one of {TONE_CURVES}")
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
        gop_frames: a keyframe at least this often (None: the encoder's default).
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
    gop_frames: int | None = None


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
                from fmstf_data.synth.pairs import resize_rgb

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
    if spec.gop_frames is not None:
        options["g"] = str(spec.gop_frames)
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
