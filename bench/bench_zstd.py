"""Which zstd level (and whether a byte shuffle or a delta filter) for the stored planes: size and speed measured.

Planes: a triplet of 1920x1080 HDR10 frames (10-bit Y'CbCr 4:2:0 in uint16) and its 8-bit SDR version, from the
synthetic scenes (:mod:`fmstf_data.synth.scene`) with film grain of 0, 1 % and 3 % (grain is what makes real
video expensive to store). For each level, the plain ``.npy`` in one zstd frame (what fmstf-data writes: readable by
numpy and any zstd tool) is compared with two filters that are not standard files: a byte shuffle of the 16-bit
planes (low bytes, then high bytes) and a horizontal delta. Single-threaded compress and decompress speed in MB/s
of raw planes, median of ``--repeats``.

    python bench/bench_zstd.py --repeats 3

Results are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import time
from fractions import Fraction

import numpy as np
import pyarrow as pa

from fmstf_data.store.samples import encode_array
from fmstf_data.synth.pairs import nits_to_hdr10_planes
from fmstf_data.synth.scene import ClipSpec, iter_clip_nits


def planes(grain: float, width: int = 1920, height: int = 1080) -> dict[str, np.ndarray]:
    """[3, H, W] stacks of one triplet: HDR Y, Cb, Cr (uint16) and SDR Y, Cb, Cr (uint8)."""
    clip = ClipSpec(width=width, height=height, fps=Fraction(24), frame_count=3, seed=5, grain_fraction=grain)
    hdr, sdr = [], []
    for nits in iter_clip_nits(clip):
        y, cb, cr = nits_to_hdr10_planes(nits)
        hdr.append((y, cb, cr))
        # an SDR stand-in for compression statistics: the 10-bit codes requantised to 8 bits (same texture and grain)
        sdr.append(tuple(np.clip(np.round(plane / 4.0), 0, 255).astype(np.uint8) for plane in (y, cb, cr)))
    stacks = {f"hdr_{name}": np.stack([frame[k] for frame in hdr]) for k, name in enumerate(("y", "cb", "cr"))}
    stacks.update({f"sdr_{name}": np.stack([frame[k] for frame in sdr]) for k, name in enumerate(("y", "cb", "cr"))})
    return stacks


def shuffled(array: np.ndarray) -> np.ndarray:
    if array.dtype.itemsize == 1:
        return array
    raw = array.view(np.uint8).reshape(*array.shape, array.dtype.itemsize)
    return np.ascontiguousarray(np.moveaxis(raw, -1, 0))


def delta(array: np.ndarray) -> np.ndarray:
    signed = array.astype(np.int32)
    out = signed.copy()
    out[..., 1:] = signed[..., 1:] - signed[..., :-1]
    return out.astype(array.dtype)  # wraps: invertible by a cumulative sum modulo 2^bits


def measure(stacks: dict[str, np.ndarray], level: int, transform, repeats: int) -> tuple[int, float, float]:
    raw = sum(array.nbytes for array in stacks.values())
    inputs = {name: transform(array) for name, array in stacks.items()}
    codec = pa.Codec("zstd")
    sizes, encode, decode = 0, [], []
    for _ in range(repeats):
        started = time.perf_counter()
        blobs = [encode_array(array, zstd_level=level) for array in inputs.values()]
        encode.append(time.perf_counter() - started)
        started = time.perf_counter()
        for blob, array in zip(blobs, inputs.values()):
            codec.decompress(blob, decompressed_size=array.nbytes + 128)
        decode.append(time.perf_counter() - started)
        sizes = sum(len(blob) for blob in blobs)
    return sizes, raw / 1e6 / float(np.median(encode)), raw / 1e6 / float(np.median(decode))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--levels", default="1,3,6,9,15")
    parser.add_argument("--grains", default="0,0.02,0.06")
    parser.add_argument("--size", default="1920x1080", help="frame size, e.g. 3840x2160")
    parser.add_argument("--no-filters", action="store_true", help="plain .npy only")
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]
    print(f"{args.size}\n| grain | filter | level | MB per triplet | ratio | compress MB/s | decompress MB/s |")
    print("|---|---|---|---|---|---|---|")
    for grain in (float(g) for g in args.grains.split(",")):
        width, height = (int(value) for value in args.size.split("x"))
        stacks = planes(grain, width, height)
        raw = sum(array.nbytes for array in stacks.values())
        filters = (("none (.npy)", lambda a: a), ("byte shuffle", shuffled), ("delta", delta))
        for name, transform in filters[:1] if args.no_filters else filters:
            for level in levels if name == "none (.npy)" else [3]:
                size, encode, decode = measure(stacks, level, transform, args.repeats)
                print(f"| {grain:.0%} | {name} | {level} | {size / 1e6:.2f} | {raw / size:.2f} | {encode:.0f} | "
                      f"{decode:.0f} |", flush=True)
    print(f"raw triplet (HDR and SDR planes): {raw / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
