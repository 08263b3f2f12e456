"""``fmstf-convert``: an SDR video in, an HDR10 video out, with a trained FMSTFnet or a BT.2446 baseline.

    fmstf-convert clip.sdr.mp4 clip.hdr.mp4 --checkpoint runs/tiny-demo/checkpoints/latest.pt
    fmstf-convert clip.sdr.mp4 clip.hdr.mkv --method bt2446a
    fmstf-convert big.sdr.mp4 big.hdr.mp4 --checkpoint C --tile-size 512    # frames too large to convert whole

The input is probed first and must be SDR with BT.709 (or BT.2020 NCL) matrix coefficients, 8- or 10-bit 4:2:0.
Frames are decoded to their exact planes (:func:`fmstf_data.video.decode.iter_planes`), converted to R'G'B' with the
colour core on the device (a GPU when present), streamed through the converter one at a time (the model's
recurrent state carries from frame to frame; :mod:`fmstf_model.inference`), and handed to
:class:`fmstf_model.hdr10_writer.HDR10Writer`, which writes HEVC Main 10 PQ BT.2020 narrow range with the mastering
display and MaxCLL/MaxFALL measured from the output (two passes through a lossless FFV1 intermediate). The output is
probed at the end; its verdict must be HDR10.

Limits: constant frame rate (the input's average rate), no audio (remux it with any tool afterwards), frame size
kept. The result of ``--method bt2446a`` is exactly :func:`fmstf_model.baselines.sdr_to_hdr` of the decoded frames,
up to 10-bit quantisation and the HEVC encoding; with ``--lossless`` the file holds exactly the quantised output
(the tests check the decoded codes against the numpy reference of the formulas).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import torch
from torch import Tensor

from fmstf_data.color import torch_ops
from fmstf_data.errors import FmstfError, ModelError, SourceMismatchError
from fmstf_data.video.decode import DecodedFrame, iter_planes
from fmstf_data.video.probe import probe_video
from fmstf_model.baselines import BASELINES
from fmstf_model.checkpoint import load_model
from fmstf_model.hdr10_writer import HDR10Writer
from fmstf_model.inference import BaselineConverter, FrameConverter, ModelConverter

logger = logging.getLogger(__name__)

_MATRICES = {1: "bt709", 9: "bt2020nc"}
DEFAULT_FPS = Fraction(24)


@dataclass(frozen=True)
class InputColor:
    """How the SDR input's planes convert to R'G'B'."""

    matrix: str
    full_range: bool


@dataclass(frozen=True)
class ConvertResult:
    """What :func:`convert_video` did."""

    input: str
    output: str
    method: str
    frames: int
    width: int
    height: int
    fps: float
    max_cll_nits: int
    max_fall_nits: int
    output_verdict: str
    seconds: float


def input_color(path: str | Path) -> tuple[InputColor, Fraction, int, int]:
    """Check that ``path`` is an SDR video we can convert; returns (its colour, fps, width, height).

    Raises:
        SourceMismatchError: not SDR (HDR10, HLG, unknown transfer), wide-gamut SDR, or a matrix the colour core
            does not convert (e.g. BT.601).
    """
    probe = probe_video(path)
    problem = probe.problem_as("sdr")
    if problem is not None:
        raise SourceMismatchError(f"{path} cannot be converted as SDR: {problem}")
    if probe.is_wide_gamut_sdr:
        raise SourceMismatchError(f"{path} is BT.2020 (wide-gamut) SDR; the converters expect BT.709 SDR")
    matrix = _MATRICES.get(probe.colorspace)
    if matrix is None and probe.colorspace == 2:
        logger.warning("%s does not state its matrix coefficients; assuming BT.709", path)
        matrix = "bt709"
    if matrix is None:
        raise SourceMismatchError(f"{path} uses matrix {probe.colorspace_name}; supported: bt709, bt2020nc")
    full_range = probe.color_range == 2 or probe.pix_fmt == "yuvj420p"
    fps = probe.average_fps_from_header
    if fps is None and probe.fps_from_content is not None:
        fps = Fraction(probe.fps_from_content).limit_denominator(1001000)
    if fps is None:
        logger.warning("%s has no frame rate; writing %s fps", path, DEFAULT_FPS)
        fps = DEFAULT_FPS
    return InputColor(matrix=matrix, full_range=full_range), fps, probe.width, probe.height


def frame_to_rgb(frame: DecodedFrame, color: InputColor, device: torch.device) -> Tensor:
    """Exact planes -> SDR R'G'B' ``[1, 3, H, W]`` float32 in [0, 1] on ``device`` (colour core, in float)."""
    def plane(array) -> Tensor:
        tensor = torch.from_numpy(array if array.dtype.itemsize == 1 else array.astype("int32"))
        return tensor.to(device, non_blocking=True)

    rgb = torch_ops.planes_to_rgb(plane(frame.y), plane(frame.cb), plane(frame.cr), bit_depth=frame.bit_depth,
                                  matrix=color.matrix, full_range=color.full_range)
    return rgb.unsqueeze(0)


def make_converter(*, checkpoint: str | None, method: str | None, device: torch.device,
                   tile_size: int | None = None) -> FrameConverter:
    """A model from ``checkpoint`` or a baseline ``method`` (exactly one)."""
    if (checkpoint is None) == (method is None):
        raise ModelError("give exactly one of --checkpoint and --method")
    if method is not None:
        return BaselineConverter(method)
    return ModelConverter(load_model(checkpoint, device), name=f"FMSTFnet ({checkpoint})", tile_size=tile_size)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {name} requested but CUDA is not available")
    return torch.device(name)


def convert_video(input_path: str | Path, output_path: str | Path, converter: FrameConverter, *,
                  device: torch.device | str = "cpu", crf: float = 18, preset: str = "medium",
                  lossless: bool = False, max_frames: int | None = None) -> ConvertResult:
    """Convert ``input_path`` (SDR) into ``output_path`` (HDR10 .mp4/.mkv) with ``converter``, streaming."""
    start = time.perf_counter()
    device = torch.device(device)
    color, fps, width, height = input_color(input_path)
    writer = HDR10Writer(output_path, width=width, height=height, fps=fps, crf=crf, preset=preset,
                         lossless=lossless)

    def frames() -> Iterator[Tensor]:
        for decoded in iter_planes(input_path):
            if max_frames is not None and decoded.index >= max_frames:
                return
            yield frame_to_rgb(decoded, color, device)

    try:
        for hdr in converter.stream(frames()):
            writer.write(hdr[0])
    except BaseException:
        writer.abort()
        raise
    written = writer.close()
    verdict = probe_video(output_path).verdict
    if verdict != "HDR10":
        raise ModelError(f"internal error: {output_path} probes as {verdict}, not HDR10")
    result = ConvertResult(input=str(input_path), output=str(output_path), method=converter.name,
                           frames=written.frames, width=width, height=height, fps=float(fps),
                           max_cll_nits=written.content_light_level.max_cll_nits,
                           max_fall_nits=written.content_light_level.max_fall_nits, output_verdict=verdict,
                           seconds=time.perf_counter() - start)
    logger.info("converted %s -> %s with %s: %d frames in %.1f s", input_path, output_path, converter.name,
                result.frames, result.seconds)
    return result


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fmstf-convert", description="Convert an SDR video to HDR10.")
    parser.add_argument("input", help="SDR video (BT.709, 8- or 10-bit 4:2:0)")
    parser.add_argument("output", help="HDR10 output, .mp4 or .mkv")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="an fmstf-train checkpoint")
    source.add_argument("--method", choices=BASELINES, help="a non-learned BT.2446 inverse method")
    parser.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda, cuda:1 ...")
    parser.add_argument("--tile-size", type=int, default=None,
                        help="tile the full-resolution work in tiles of this many px (for frames that do not fit)")
    parser.add_argument("--crf", type=float, default=18, help="x265 constant rate factor (default 18)")
    parser.add_argument("--preset", default="medium", help="x265 preset (default medium)")
    parser.add_argument("--lossless", action="store_true",
                        help="x265 lossless: the file holds exactly the converter's 10-bit output (large files)")
    parser.add_argument("--max-frames", type=int, default=None, help="convert only the first N frames")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        device = resolve_device(args.device)
        converter = make_converter(checkpoint=args.checkpoint, method=args.method, device=device,
                                   tile_size=args.tile_size)
        result = convert_video(args.input, args.output, converter, device=device, crf=args.crf,
                               preset=args.preset, lossless=args.lossless, max_frames=args.max_frames)
    except FmstfError as error:
        logger.error("%s", error)
        return 2
    sys.stdout.write(json.dumps(asdict(result), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
