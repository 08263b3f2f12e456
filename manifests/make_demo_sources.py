"""Write the demo's synthetic HDR10/SDR source pairs into manifests/demo/.

Run once from the repository root:

    .venv/bin/python manifests/make_demo_sources.py

Three pairs, each ``{id}.hdr.mp4`` (HEVC Main 10, HDR10 with mastering display and MaxCLL/MaxFALL) and
``{id}.sdr.mp4`` (H.264 8-bit BT.709, tone-mapped with BT.2390, trimmed like a platform's SDR version), plus
``{id}.truth.json`` (the ground truth: offset, sizes, shot starts):

- ``city`` (train): 320x180, 48 frames at 24 fps; the SDR version starts 5 frames late.
- ``forest`` (train): 320x180 HDR, SDR at 256x144 with the last 2 frames trimmed.
- ``harbor`` (test): two shots with a hard cut at frame 24; the SDR version starts 3 frames late.

Content is deterministic (seeded); the encoded bytes depend on the x264/x265 builds.
"""

from __future__ import annotations

import argparse
import logging
import sys
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))

from fmstf_data.synth.pairs import write_pair  # noqa: E402
from fmstf_data.synth.scene import ClipSpec

HDR_CRF = 24
SDR_CRF = 23

#: pair id -> (clip, trim at start, trim at end, SDR size or None)
DEMO_PAIRS: dict[str, tuple[ClipSpec, int, int, tuple[int, int] | None]] = {
    "city": (ClipSpec(width=320, height=180, fps=Fraction(24), frame_count=48, seed=101), 5, 0, None),
    "forest": (ClipSpec(width=320, height=180, fps=Fraction(24), frame_count=48, seed=202), 0, 2, (256, 144)),
    "harbor": (
        ClipSpec(width=320, height=180, fps=Fraction(24), frame_count=48, seed=303, shot_lengths=(24, 24)),
        3,
        0,
        None,
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "manifests" / "demo", help="output folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    total = 0
    for pair_id, (clip, trim_start, trim_end, sdr_size) in DEMO_PAIRS.items():
        hdr_path, sdr_path, truth = write_pair(
            args.out,
            pair_id,
            clip,
            trim_start_frames=trim_start,
            trim_end_frames=trim_end,
            sdr_size=sdr_size,
            hdr_crf=HDR_CRF,
            sdr_crf=SDR_CRF,
            preset="medium",
        )
        for path in (hdr_path, sdr_path):
            size = path.stat().st_size
            total += size
            print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {size / 1024:.1f} KiB")
        print(f"  offset {truth.offset_frames}, SDR {truth.sdr_frame_count} frames at {truth.sdr_size}, "
              f"shots start at {list(truth.shot_starts)}, MaxCLL {truth.max_cll_nits}")
    print(f"total {total / 1024:.1f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
