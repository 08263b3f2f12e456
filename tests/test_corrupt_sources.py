"""Corrupt sources (issue 15 item 4): random bytes inside an HEVC payload decode without an FFmpeg error and give
damaged HDR frames that still match their SDR partners well. The per-frame damage check
(:func:`fmstf_data.align.verify.damage_score`) must refuse them, count them in the pair record and in
``frames.parquet``, keep the pair's clean frames, and refuse nothing on a clean pair.

The truth is computed here, independently of the code under test: both HDR files are decoded with plain PyAV and
their planes compared block by block.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from fmstf_data.align.verify import LOCAL_DAMAGE
from fmstf_data.synth.cases import SdrSpec, render_master, write_hdr_file, write_sdr_file
from fmstf_data.synth.scene import ClipSpec
from pipelines.align_cli import analyse_pair
from pipelines.build import run_build
from pipelines.options import BuildOptions, PairOptions

FRAMES = 48
GOP = 24
#: a frame is *damaged* when one 16 x 16 block of a plane is off by this many 10-bit codes on average: about twice
#: the worst block error of the encoder itself on these clips (x265 ultrafast, crf 22: 21 codes)
DAMAGED_BLOCK_CODES = 40.0
#: seeds of the corruption (each hits 3 packets with 16..256 random bytes); all decode without an error
SEEDS = (0, 4)


def plain_planes(path: Path) -> list[np.ndarray]:
    """Every frame's Y, Cb and Cr stacked as float64 [3, h/2, w/2] (luma 2x2-subsampled), plain PyAV, output order."""
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            stacked = frame.to_ndarray().astype(np.float64)  # yuv420p10le: [h * 3 / 2, w]
            height, width = frame.height, frame.width
            chroma = stacked[height:].reshape(2, height // 2, width // 2)
            frames.append(np.stack([stacked[:height:2, ::2], chroma[0], chroma[1]]))
    return frames


def worst_block_error(damaged: np.ndarray, clean: np.ndarray, block: int = 8) -> float:
    """The largest mean absolute difference over 16 x 16-pixel blocks (8 x 8 on the subsampled grid) of any plane."""
    planes, height, width = damaged.shape
    difference = np.abs(damaged - clean)[:, :height // block * block, :width // block * block]
    return float(difference.reshape(planes, height // block, block, width // block, block).mean(axis=(2, 4)).max())


def corrupt_payloads(source: Path, target: Path, seed: int, hits: int = 3) -> list[int]:
    """Copy ``source`` with ``hits`` runs of 16..256 seeded random bytes written over the payload of inter-coded
    video packets (never a keyframe, never the first 32 bytes of a packet: NAL length, header and slice header
    stay intact, so FFmpeg decodes it without an error). Returns the packets' presentation timestamps."""
    with av.open(str(source)) as container:
        packets = [(packet.pos, packet.size, packet.pts) for packet in container.demux(video=0)
                   if packet.size > 96 and not packet.is_keyframe]
    data = bytearray(source.read_bytes())
    rng = np.random.default_rng(seed)
    touched = []
    for _ in range(hits):
        position, size, pts = packets[int(rng.integers(len(packets)))]
        count = int(rng.integers(16, min(256, size // 2) + 1))
        start = position + 32 + int(rng.integers(0, size - 32 - count + 1))
        data[start:start + count] = rng.integers(0, 256, count, dtype=np.uint8).tobytes()
        touched.append(pts)
    target.write_bytes(bytes(data))
    return touched


@pytest.fixture(scope="module")
def clean_pair(tmp_path_factory) -> tuple[Path, Path]:
    """2 s of 320x180 HDR10 (a keyframe every second) and its SDR version (BT.2390, H.264)."""
    workdir = tmp_path_factory.mktemp("corrupt")
    master = render_master(ClipSpec(width=320, height=180, fps=Fraction(24), frame_count=FRAMES, seed=11))
    hdr = write_hdr_file(master, workdir / "clip.hdr.mp4", gop_frames=GOP)
    sdr = write_sdr_file(master, SdrSpec(shows=tuple(range(FRAMES)), gop_frames=GOP), workdir / "clip.sdr")
    return hdr, sdr


def build_pair(workdir: Path, hdr: Path, sdr: Path) -> Path:
    manifest = workdir / "corrupt.yaml"
    manifest.write_text(f"version: 1\nname: corrupt\npairs:\n  - id: clip\n    split: train\n    hdr: {hdr}\n"
                        f"    sdr: {sdr}\n")
    out = workdir / "out"
    result = run_build(BuildOptions(manifest_path=str(manifest), out=str(out), cache_dir=str(workdir / "cache"),
                                    workers=2, previews=False, pair_options=PairOptions(stride_frames=1)))
    assert result.exit_code == 0, result.report["summary"]
    return out


def test_a_clean_pair_loses_no_frame_to_the_damage_check(clean_pair):
    record = analyse_pair(*clean_pair)
    extraction = record["extraction"]
    assert extraction["damaged_frames"] == 0
    assert LOCAL_DAMAGE not in extraction["unverified"]
    assert extraction["verified_frames"] >= 0.9 * extraction["paired_frames"]


@pytest.mark.parametrize("seed", SEEDS)
def test_damaged_hdr_frames_are_refused_counted_and_the_clean_ones_kept(clean_pair, tmp_path, ray_session, seed):
    clean_hdr, sdr = clean_pair
    hdr = tmp_path / "clip.hdr.mp4"
    corrupt_payloads(clean_hdr, hdr, seed)
    clean_frames, damaged_frames = plain_planes(clean_hdr), plain_planes(hdr)
    assert len(damaged_frames) == len(clean_frames) == FRAMES  # decoded without an error, no frame lost
    errors = [worst_block_error(damaged, clean) for damaged, clean in zip(damaged_frames, clean_frames)]
    damaged = {index for index, error in enumerate(errors) if error > DAMAGED_BLOCK_CODES}
    assert len(damaged) >= 3, f"seed {seed} damaged too little to test: {np.round(errors, 1)}"

    out = build_pair(tmp_path, hdr, sdr)
    samples = pq.read_table(out / "index" / "samples.parquet").to_pylist()
    carried = sorted({frame for sample in samples for frame in sample["hdr_frames"]} & damaged)
    assert not carried, f"samples carry damaged HDR frames {carried} (block errors " \
                        f"{[round(errors[frame]) for frame in carried]})"
    # the clean frames still give samples: at least half the centres whose window holds no touched frame
    untouched = [centre for centre in range(1, FRAMES - 1) if max(errors[centre - 1:centre + 2]) == 0]
    assert len(samples) >= len(untouched) // 2 > 0, (len(samples), len(untouched))

    frames = pq.read_table(out / "pairs" / "clip.frames.parquet").to_pylist()
    refused = [row["hdr_frame"] for row in frames if row["status"] == LOCAL_DAMAGE]
    touched = [index for index, error in enumerate(errors) if error > 0]
    near_touched = {index for frame in touched for index in range(frame - 2, frame + 3)}
    assert refused and set(refused) <= near_touched, \
        f"frames refused as damaged {sorted(set(refused) - near_touched)} are far from every touched frame"
    record = json.loads((out / "pairs" / "clip.json").read_text())
    assert record["extraction"]["damaged_frames"] == len(refused)
    assert record["extraction"]["unverified"][LOCAL_DAMAGE] == len(refused)
