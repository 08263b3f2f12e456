"""How many rows per band: the size banding costs against the decoding a crop saves, measured side by side.

Sample format 3 stores each plane stack as one zstd frame per row band per frame (:mod:`fmstf_data.store.bands`).
Smaller bands let a crop decompress fewer rows it does not use, but every zstd frame starts its entropy tables
afresh, so the sample grows. For 1920x1080 (or ``--size``) triplets of the synthetic scenes (film grain 0, 1 and 3 %, the planes
``bench_zstd.py`` measures), at zstd level 3, per band height: stored bytes against one zstd frame per member
(formats 1-2), and the time to decode the rows a 256x256 crop needs (260 rows with the conversion margin, at random
offsets) and to decode the whole sample. Each band height is measured in turn within one round, over ``--rounds``
rounds; times are medians.

    python bench/bench_bands.py --rounds 5

Results are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from bench_zstd import planes

from fmstf_data.store.arrays import encode_array
from fmstf_data.store.samples import Sample, decode_sample, encode_sample, sample_key

CROP_ROWS = 256 + 4


def sample_of(stacks: dict[str, np.ndarray]) -> Sample:
    return Sample(key=sample_key("bench", 1), hdr=(stacks["hdr_y"], stacks["hdr_cb"], stacks["hdr_cr"]),
                  sdr=(stacks["sdr_y"], stacks["sdr_cb"], stacks["sdr_cr"]), metadata={})


def timed(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--crops", type=int, default=20, help="crops decoded per measurement")
    parser.add_argument("--band-rows", default="16,32,64,128,256")
    parser.add_argument("--grains", default="0,0.01,0.03")
    parser.add_argument("--size", default="1920x1080", help="WIDTHxHEIGHT of the frames")
    args = parser.parse_args()
    band_rows = [int(v) for v in args.band_rows.split(",")]
    width, height = (int(v) for v in args.size.split("x"))
    print("| grain | band rows | stored MB | vs one frame | crop decode ms | whole decode ms |")
    print("|---|---|---|---|---|---|")
    for grain in (float(g) for g in args.grains.split(",")):
        sample = sample_of(planes(grain, width=width, height=height))
        single = sum(len(encode_array(plane)) for plane in (*sample.hdr, *sample.sdr))
        encoded = {rows: encode_sample(sample, band_rows=rows) for rows in band_rows}
        rng = np.random.default_rng(0)
        tops = [int(v) for v in rng.integers(0, height - CROP_ROWS, args.crops) // 2 * 2]
        crop_ms: dict[int, list[float]] = {rows: [] for rows in band_rows}
        whole_ms: dict[int, list[float]] = {rows: [] for rows in band_rows}
        for _ in range(args.rounds):
            for rows in band_rows:
                members = encoded[rows]
                crop_ms[rows].append(1000 * timed(lambda: [decode_sample(members, rows=(top, top + CROP_ROWS))
                                                           for top in tops], 1) / len(tops))
                whole_ms[rows].append(1000 * timed(lambda: decode_sample(members), 3))
        for rows in band_rows:
            stored = sum(len(data) for data in encoded[rows].values())
            print(f"| {grain:.0%} | {rows} | {stored / 1e6:.2f} | {stored / single - 1:+.1%} | "
                  f"{np.median(crop_ms[rows]):.1f} | {np.median(whole_ms[rows]):.1f} |", flush=True)
        print(f"| {grain:.0%} | one frame | {single / 1e6:.2f} | | | |", flush=True)


if __name__ == "__main__":
    main()
