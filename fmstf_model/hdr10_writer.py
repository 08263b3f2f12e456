"""Writing HDR10 video (HEVC Main 10, PQ, BT.2020, narrow range) with static metadata measured from the content.

HDR10's static metadata (SMPTE ST 2086 mastering display, CTA-861.3 MaxCLL/MaxFALL) goes into SEI messages that
x265 writes at the start of the stream, but MaxCLL/MaxFALL are only known when the last frame has been made. So
:class:`HDR10Writer` works in two passes:

1. each frame's PQ R'G'B' is quantised to 10-bit narrow-range BT.2020 NCL Y'CbCr 4:2:0 (the colour core's
   ``rgb_to_planes``, documented chroma filter) and appended to a temporary **lossless FFV1** file next to the
   output, while the light statistics accumulate (memory stays one frame, whatever the length);
2. :meth:`HDR10Writer.close` decodes the FFV1 planes (bit-exact) and encodes them with libx265, ``hdr10=1``,
   ``master-display=...`` and ``max-cll=MaxCLL,MaxFALL``, colour tags on the stream and every frame; the result is
   written under a temporary name and renamed into place, and the FFV1 file is removed.

The statistics (cd/m², through the PQ EOTF of the R'G'B' before quantisation): MaxCLL = ceil of the brightest
max(R, G, B) of any pixel of any frame, MaxFALL = ceil of the largest frame average of max(R, G, B) (CTA-861.3).
Mastering display: BT.2020 primaries and D65 white (the container gamut, since the content is made in BT.2020),
maximum luminance = MaxCLL (at least 1), minimum = the darkest pixel's luminance (at least 0.0001 cd/m², the
smallest value ST 2086 signals).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from torch import Tensor

from fmstf_data.color import torch_ops
from fmstf_data.color.constants import LUMINANCE_BT2020
from fmstf_data.errors import ModelError
from fmstf_data.synth.pairs import planes_to_video_frame
from fmstf_data.video.decode import iter_planes
from fmstf_data.video.record import ContentLightLevel, MasteringDisplay

logger = logging.getLogger(__name__)

SUFFIXES = (".mp4", ".mkv")
BT2020_PRIMARIES_XY = {"red": (0.708, 0.292), "green": (0.170, 0.797), "blue": (0.131, 0.046)}
D65_XY = (0.3127, 0.3290)
MIN_LUMINANCE_NITS = 0.0001
# H.273 code points: transfer PQ, primaries BT.2020, matrix BT.2020 NCL, range narrow (FFmpeg "MPEG")
PQ_TAGS = {"color_trc": 16, "color_primaries": 9, "colorspace": 9, "color_range": 1}


@dataclass(frozen=True)
class HDR10Result:
    """What :class:`HDR10Writer` wrote."""

    path: str
    frames: int
    width: int
    height: int
    content_light_level: ContentLightLevel
    mastering_display: MasteringDisplay


def _ceil_nits(nits: float) -> int:
    """Whole cd/m² rounded up, ignoring float noise of the PQ round trip (1000.0000001 -> 1000)."""
    return max(0, math.ceil(nits - 1e-6))


def x265_master_display(display: MasteringDisplay) -> str:
    """x265's ``master-display`` string: ``G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min)``, chromaticities in 0.00002
    units, luminances in 0.0001 cd/m² units."""
    def xy(point: tuple[float, float]) -> str:
        return f"({round(point[0] / 0.00002)},{round(point[1] / 0.00002)})"

    return (f"G{xy(display.green_xy)}B{xy(display.blue_xy)}R{xy(display.red_xy)}WP{xy(display.white_point_xy)}"
            f"L({round(display.max_luminance_nits * 10000)},{round(display.min_luminance_nits * 10000)})")


class HDR10Writer:
    """Collects PQ BT.2020 R'G'B' frames and writes an HDR10 file on :meth:`close` (see the module docstring).

    Args:
        path: the output, ``.mp4`` (tagged ``hvc1``) or ``.mkv``.
        width, height: frame size (even or odd; chroma is ``ceil(size / 2)``).
        fps: frame rate (constant).
        crf, preset: libx265 quality and speed.
        lossless: x265 lossless mode: the decoded file holds exactly the 10-bit planes made from the frames.
    """

    def __init__(self, path: str | Path, *, width: int, height: int, fps: Fraction | float, crf: float = 18,
                 preset: str = "medium", lossless: bool = False):
        self.path = Path(path)
        if self.path.suffix not in SUFFIXES:
            raise ModelError(f"HDR10 output must end in .mp4 or .mkv, got {self.path.name}")
        if width < 2 or height < 2:
            raise ModelError(f"frame size must be at least 2x2, got {width}x{height}")
        self.width, self.height = width, height
        self.fps = Fraction(fps).limit_denominator(1001000)
        self.crf, self.preset, self.lossless = crf, preset, lossless
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.intermediate = self.path.with_name(f".{self.path.name}.ffv1.mkv")
        self._container = av.open(str(self.intermediate), "w")
        stream = self._container.add_stream("ffv1", rate=self.fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p10le"
        stream.options = {"level": "3", "slices": "4", "threads": "auto"}
        self._stream = stream
        self.frames = 0
        self.max_cll_nits = 0.0
        self.max_fall_nits = 0.0
        self.min_nits = math.inf

    @torch.no_grad()
    def write(self, rgb_pq: Tensor) -> None:
        """Append one frame: PQ BT.2020 R'G'B' ``[3, H, W]`` in [0, 1] (any device; clipped to [0, 1])."""
        if rgb_pq.shape != (3, self.height, self.width):
            raise ModelError(f"frame must be [3, {self.height}, {self.width}], got {tuple(rgb_pq.shape)}")
        rgb = rgb_pq.float().clamp(0.0, 1.0)
        nits = torch_ops.pq_eotf(rgb)
        brightest = nits.amax(dim=0)
        self.max_cll_nits = max(self.max_cll_nits, float(brightest.max()))
        self.max_fall_nits = max(self.max_fall_nits, float(brightest.double().mean()))
        k_r, k_g, k_b = LUMINANCE_BT2020
        luminance = k_r * nits[0] + k_g * nits[1] + k_b * nits[2]
        self.min_nits = min(self.min_nits, float(luminance.min()))
        y, cb, cr = (plane.to(torch.int32).cpu().numpy().astype(np.uint16) for plane in
                     torch_ops.rgb_to_planes(rgb, bit_depth=10, matrix="bt2020nc", full_range=False))
        frame = planes_to_video_frame(y, cb, cr, "yuv420p10le")
        frame.pts = self.frames
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def metadata(self) -> tuple[ContentLightLevel, MasteringDisplay]:
        """The static metadata of the frames written so far."""
        light = ContentLightLevel(max_cll_nits=_ceil_nits(self.max_cll_nits),
                                  max_fall_nits=_ceil_nits(self.max_fall_nits))
        minimum = max(MIN_LUMINANCE_NITS, math.floor(min(self.min_nits, 1e4) * 1e4) / 1e4)
        display = MasteringDisplay(red_xy=BT2020_PRIMARIES_XY["red"], green_xy=BT2020_PRIMARIES_XY["green"],
                                   blue_xy=BT2020_PRIMARIES_XY["blue"], white_point_xy=D65_XY,
                                   min_luminance_nits=minimum,
                                   max_luminance_nits=float(max(1, light.max_cll_nits)))
        return light, display

    def close(self) -> HDR10Result:
        """Finish pass 1 and encode the HDR10 file (pass 2). Raises :class:`ModelError` when no frame was written."""
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        try:
            if self.frames == 0:
                raise ModelError(f"no frames were written for {self.path}")
            light, display = self.metadata()
            self._encode_hevc(light, display)
        finally:
            self.intermediate.unlink(missing_ok=True)
        logger.info("wrote HDR10 %s: %d frames %dx%d, MaxCLL %d MaxFALL %d cd/m²", self.path, self.frames,
                    self.width, self.height, light.max_cll_nits, light.max_fall_nits)
        return HDR10Result(path=str(self.path), frames=self.frames, width=self.width, height=self.height,
                           content_light_level=light, mastering_display=display)

    def abort(self) -> None:
        """Drop everything written (no output file)."""
        try:
            self._container.close()
        finally:
            self.intermediate.unlink(missing_ok=True)

    def _encode_hevc(self, light: ContentLightLevel, display: MasteringDisplay) -> None:
        params = ["log-level=error", "colorprim=bt2020", "transfer=smpte2084", "colormatrix=bt2020nc",
                  "range=limited", "hdr10=1", "repeat-headers=1", f"master-display={x265_master_display(display)}",
                  f"max-cll={light.max_cll_nits},{light.max_fall_nits}"]
        temporary = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        try:
            with av.open(str(temporary), "w", format="mp4" if self.path.suffix == ".mp4" else "matroska") as out:
                stream = out.add_stream("libx265", rate=self.fps)
                stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p10le"
                if self.lossless:
                    params.append("lossless=1")
                stream.options = {"preset": self.preset, "x265-params": ":".join(params)}
                if not self.lossless:
                    stream.options["crf"] = str(self.crf)
                context = stream.codec_context
                for name, value in PQ_TAGS.items():
                    setattr(context, name, value)
                if self.path.suffix == ".mp4":
                    context.codec_tag = "hvc1"
                count = 0
                for decoded in iter_planes(self.intermediate):
                    frame = planes_to_video_frame(decoded.y, decoded.cb, decoded.cr, "yuv420p10le")
                    frame.pts = count
                    for name, value in PQ_TAGS.items():
                        setattr(frame, name, value)
                    for packet in stream.encode(frame):
                        out.mux(packet)
                    count += 1
                for packet in stream.encode():
                    out.mux(packet)
            if count != self.frames:
                raise ModelError(f"the lossless intermediate gave {count} frames back of {self.frames}")
            os.replace(temporary, self.path)
        finally:
            temporary.unlink(missing_ok=True)
