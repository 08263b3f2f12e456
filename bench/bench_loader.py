"""Loader benchmark: training examples per second at 256x256 crops from 1080p and 2160p triplets, against its
ceiling and against the field's practice, with 0, 1 and 2 DataLoader workers.

On synthetic triplets (random smooth planes plus film grain, so zstd compresses them about as much as real
video planes), written with the real ShardWriter + sample codec into a build directory:

- **ceiling (bytes only)**: plain ``webdataset.WebDataset`` over the same shards, touching each sample's member
  bytes, no decoding, nothing sent back from the workers: the rate of reading the data and nothing else;
- **fmstf-data loader**, ``output="rgb"``: ranged read, zstd + .npy decode of all 18 planes, a random even 4:2:0
  crop shared by the six frames, Y'CbCr -> R'G'B' with the colour core, random flips and quarter turns, float32
  batches handed to the training process; with 1, 4 and 8 crops cut from each decoded triplet
  (``crops_per_sample``);
- **fmstf-data loader**, ``output="planes"``: the same up to the crop, shipping uint8 / int16 code planes (the
  conversion then runs on the GPU in the training step, not measured here);
- **16-bit PNG folder**: a BasicSR-style map-style dataset over ``{key}_{1,2,3}.png`` triplets (16-bit RGB PNGs of
  the same frames, HDR and SDR): decode six PNGs (FFmpeg's PNG decoder through PyAV, as cv2.imread would with
  libpng), convert to float32 / 65535, crop the same 256x256 region, flip / turn, to tensors.

"examples/s" counts training examples (crops) handed to the training loop; for the ceiling, one per sample read.
Each epoch lists the data ``--repeats`` times (long epochs: worker start-up and epoch tails do not count), the first
batch of each measurement is not timed, and every configuration is measured once per round for ``--rounds`` rounds:
rates are medians, ratios are medians of per-round ratios, so the load drifts of a shared machine hit both sides of
a ratio alike.

    python bench/bench_loader.py                       # writes data under /tmp/fmstf-bench-loader (reused)
    python bench/bench_loader.py --rounds 5 --json bench/results/bench_loader.json
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import io
import json
import logging
import os
import time
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import webdataset as wds
from torch.utils.data import DataLoader, Dataset

from fmstf_data.color import planes_to_rgb
from fmstf_data.loader import LoaderOptions, SampleCatalog, TripletDataset, TripletLoader, load_catalog
from fmstf_data.store.samples import SAMPLE_FORMAT_VERSION, Sample, encode_sample, sample_key
from fmstf_data.store.shards import ShardWriter
from fmstf_data.store.storage import open_storage

CROP = 256
BATCH = 8
RESOLUTIONS = {"1080p": (1080, 1920), "2160p": (2160, 3840)}
TAGS = {"hdr": {"bit_depth": 10, "colorspace": "bt2020nc", "color_range": "tv"},
        "sdr": {"bit_depth": 8, "colorspace": "bt709", "color_range": "tv"}}


# ---- data --------------------------------------------------------------------------------------------------------


def smooth(rng: np.random.Generator, height: int, width: int, low: float, high: float, grain: float,
           dtype) -> np.ndarray:
    """[3, height, width] codes: a bilinear upsampled random 16x16-pixel grid, plus Gaussian grain."""
    coarse = torch.from_numpy(rng.uniform(low, high, (1, 1, height // 16 + 2, width // 16 + 2)))
    base = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)[0, 0]
    frames = base.numpy()[None] + rng.normal(0.0, grain, (3, height, width)) if grain else base.numpy()[None]
    frames = np.broadcast_to(frames, (3, height, width))
    return np.clip(np.round(frames), low, high).astype(dtype)


def synthetic_sample(index: int, height: int, width: int) -> Sample:
    rng = np.random.default_rng(index)
    ch, cw = height // 2, width // 2
    hdr = (smooth(rng, height, width, 64, 940, 1.5, np.uint16), smooth(rng, ch, cw, 420, 600, 1.0, np.uint16),
           smooth(rng, ch, cw, 420, 600, 1.0, np.uint16))
    sdr = (smooth(rng, height, width, 16, 235, 0.6, np.uint8), smooth(rng, ch, cw, 110, 146, 0.4, np.uint8),
           smooth(rng, ch, cw, 110, 146, 0.4, np.uint8))
    centre = 2 * index + 1
    return Sample(key=sample_key("bench", centre), hdr=hdr, sdr=sdr,
                  metadata={**TAGS, "pair_id": "bench", "split": "train", "centre_frame": centre,
                            "hdr_frames": [centre - 1, centre, centre + 1],
                            "sdr_frames": [centre - 1, centre, centre + 1]})


def write_png(path: Path, rgb: np.ndarray) -> None:
    """R'G'B' float [3, h, w] in [0, 1] -> 16-bit PNG (rgb48) through PyAV's PNG encoder."""
    codes = np.round(np.clip(rgb, 0, 1) * 65535).astype(np.uint16).transpose(1, 2, 0)
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = codes.shape[1], codes.shape[0], "rgb48be"
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(codes), format="rgb48le").reformat(format="rgb48be")
    path.write_bytes(b"".join(bytes(packet) for packet in [*codec.encode(frame), *codec.encode(None)]))


def make_data(workdir: Path, name: str, height: int, width: int, count: int, png_count: int,
              samples_per_shard: int) -> Path:
    """A build directory (shards + index) of ``count`` triplets and a PNG folder of the first ``png_count``;
    reused when complete."""
    root = workdir / f"{name}-v{SAMPLE_FORMAT_VERSION}-{count}-{png_count}"
    marker = root / "complete"
    if marker.exists():
        return root
    storage = open_storage(root)
    rows = []
    for first in range(0, count, samples_per_shard):
        writer = ShardWriter(storage, f"shards/train/bench{first:04d}", f".staging/{first}")
        for index in range(first, min(first + samples_per_shard, count)):
            sample = synthetic_sample(index, height, width)
            stored = writer.write(sample.key, encode_sample(sample))
            rows.append({"key": sample.key, "pair_id": "bench", "split": "train", "shard": stored.shard,
                         **stored.index_columns(),
                         "centre_frame": sample.metadata["centre_frame"], "width": width, "height": height})
            for side, (bit_depth, matrix) in (("sdr", (8, "bt709")), ("hdr", (10, "bt2020nc"))):
                if index >= png_count:
                    break
                rgb = planes_to_rgb(*getattr(sample, side), bit_depth=bit_depth, matrix=matrix, full_range=False)
                (root / "png" / side).mkdir(parents=True, exist_ok=True)
                for frame in range(3):
                    write_png(root / "png" / side / f"{sample.key}_{frame + 1}.png", rgb[frame])
        writer.publish()
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), sink)
    storage.write_bytes_atomic("index/samples.parquet", sink.getvalue())
    marker.write_text("ok")
    return root


# ---- the PNG-folder baseline (BasicSR style) ------------------------------------------------------------------


def read_png_float(path: Path) -> np.ndarray:
    """[h, w, 3] float32 in [0, 1], like BasicSR's imfrombytes(..., float32=True) on a 16-bit PNG."""
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return frame.to_ndarray(format="rgb48le").astype(np.float32) / 65535.0


class PngTripletDataset(Dataset):
    """Map-style paired dataset over ``{sdr,hdr}/{key}_{1,2,3}.png``: random crop at the same place in all six
    frames, random flips and quarter turns, CHW tensors (BasicSR's PairedImageDataset, for triplets)."""

    def __init__(self, folder: Path, crop: int, repeats: int = 1) -> None:
        self.folder = folder
        self.keys = sorted({p.name.rsplit("_", 1)[0] for p in (folder / "sdr").glob("*.png")}) * repeats
        self.crop = crop

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        key = self.keys[index]
        frames = {side: [read_png_float(self.folder / side / f"{key}_{n}.png") for n in (1, 2, 3)]
                  for side in ("sdr", "hdr")}
        height, width = frames["sdr"][0].shape[:2]
        top, left = np.random.randint(0, height - self.crop + 1), np.random.randint(0, width - self.crop + 1)
        flip, turns = np.random.rand() < 0.5, np.random.randint(4)
        out = {}
        for side, images in frames.items():
            crops = []
            for image in images:
                patch = image[top:top + self.crop, left:left + self.crop]
                patch = patch[:, ::-1] if flip else patch
                crops.append(torch.from_numpy(np.ascontiguousarray(np.rot90(patch, turns).transpose(2, 0, 1))))
            out[side] = torch.stack(crops)
        return out


# ---- measurements ------------------------------------------------------------------------------------------------


def timed(batches, examples_per_batch, seconds: float) -> float:
    """Examples per second over ``seconds`` (at least 3 batches), the first batch excluded."""
    iterator = iter(batches)
    next(iterator)
    count, start = 0, time.perf_counter()
    for batch in iterator:
        count += examples_per_batch(batch)
        if time.perf_counter() - start > seconds and count >= 3:
            break
    rate = count / (time.perf_counter() - start)
    del iterator  # stops the workers before the next measurement
    gc.collect()
    return rate


def repeated(catalog: SampleCatalog, times: int) -> SampleCatalog:
    """The catalog's rows ``times`` over: long epochs, so worker start-up and epoch tails do not count."""
    return dataclasses.replace(
        catalog, keys=catalog.keys * times, pair_ids=catalog.pair_ids * times,
        centre_frames=np.tile(catalog.centre_frames, times), heights=np.tile(catalog.heights, times),
        widths=np.tile(catalog.widths, times), shard_index=np.tile(catalog.shard_index, times),
        spans=np.tile(catalog.spans, (times, 1)), json_bytes=np.tile(catalog.json_bytes, times),
        json_crc32=np.tile(catalog.json_crc32, times))


def ceiling(root: Path, workers: int, seconds: float, repeats: int) -> float:
    urls = sorted(str(p) for p in (root / "shards" / "train").glob("*.tar")) * repeats
    dataset = wds.WebDataset(urls, shardshuffle=False, empty_check=False).map(
        lambda sample: sum(len(v) for v in sample.values() if isinstance(v, bytes)))
    return timed(DataLoader(dataset, batch_size=None, num_workers=workers), lambda batch: 1, seconds)


def ours(catalog: SampleCatalog, workers: int, output: str, crops_per_sample: int, seconds: float) -> float:
    options = LoaderOptions(batch_size=BATCH, crop_size=CROP, crops_per_sample=crops_per_sample, output=output)
    loader = TripletLoader(TripletDataset(catalog, options, rank=0, world_size=1), num_workers=workers)
    return timed(loader, lambda batch: len(batch["key"]), seconds)


def png(root: Path, workers: int, seconds: float, repeats: int) -> float:
    dataset = PngTripletDataset(root / "png", CROP, repeats)
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=workers, drop_last=True)
    return timed(loader, lambda batch: batch["sdr"].shape[0], seconds)


#: (output, crops per triplet) of the loader configurations measured
CONFIGS = (("rgb", 1), ("rgb", 4), ("rgb", 8), ("planes", 1), ("planes", 8))


def measure(root: Path, workers: int, rounds: int, seconds: float, repeats: int,
            configs: tuple[tuple[str, int], ...] = CONFIGS) -> dict:
    """Median rates over ``rounds`` rounds, each measuring every configuration once, and the medians of the
    per-round ratios (so slow drifts of a shared machine's load hit both sides of a ratio alike)."""
    catalog = repeated(load_catalog(root, "train"), repeats)
    png_repeats = repeats * len(catalog) // max(1, len(list((root / "png" / "sdr").glob("*.png"))) // 3)
    samples: dict[str, list[float]] = {}
    for _ in range(rounds):
        samples.setdefault("ceiling", []).append(ceiling(root, workers, seconds, repeats))
        samples.setdefault("png", []).append(png(root, workers, seconds, png_repeats))
        for output, crops in configs:
            samples.setdefault(f"{output}_c{crops}", []).append(ours(catalog, workers, output, crops, seconds))
    row = {name: float(np.median(values)) for name, values in samples.items()}
    for output, crops in configs:
        name = f"{output}_c{crops}"
        row[f"{name}_vs_ceiling"] = float(np.median(np.array(samples[name]) / np.array(samples["ceiling"])))
        row[f"{name}_vs_png"] = float(np.median(np.array(samples[name]) / np.array(samples["png"])))
    row["all"] = samples
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="/tmp/fmstf-bench-loader")
    parser.add_argument("--seconds", type=float, default=4.0, help="timed seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of interleaved measurements (median)")
    parser.add_argument("--count-1080", type=int, default=24, help="1080p triplets in the shards")
    parser.add_argument("--count-2160", type=int, default=8, help="2160p triplets in the shards")
    parser.add_argument("--png-count", type=int, default=4, help="triplets in each PNG folder")
    parser.add_argument("--repeats", type=int, default=40, help="passes over the data in one epoch")
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--resolutions", default="1080p,2160p")
    parser.add_argument("--configs", default=",".join(f"{o}:{c}" for o, c in CONFIGS),
                        help="loader configurations, output:crops_per_sample, comma-separated")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)  # as in a DataLoader worker; the main process competes with the workers otherwise
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results = {"crop": CROP, "batch_size": BATCH, "cpu_count": os.cpu_count(), "seconds": args.seconds,
               "rounds": args.rounds, "load_average_before": os.getloadavg(), "rows": []}
    counts = {"1080p": args.count_1080, "2160p": args.count_2160}
    configs = tuple((part.split(":")[0], int(part.split(":")[1])) for part in args.configs.split(","))
    for name in args.resolutions.split(","):
        height, width = RESOLUTIONS[name]
        started = time.perf_counter()
        root = make_data(workdir, name, height, width, counts[name], min(args.png_count, counts[name]),
                         samples_per_shard=2 if name == "2160p" else 4)
        shard_bytes = sum(p.stat().st_size for p in (root / "shards" / "train").glob("*.tar"))
        png_files = list((root / "png").rglob("*.png"))
        png_triplets = len(png_files) // 6
        print(f"{name}: {counts[name]} triplets in shards, {shard_bytes / counts[name] / 1e6:.1f} MB each; "
              f"{png_triplets} as 16-bit PNG, {sum(p.stat().st_size for p in png_files) / png_triplets / 1e6:.1f} "
              f"MB each (data ready in {time.perf_counter() - started:.0f} s)", flush=True)
        for workers in (int(w) for w in args.workers.split(",")):
            row = {"resolution": name, "workers": workers, **measure(root, workers, args.rounds, args.seconds,
                                                                     args.repeats, configs)}
            results["rows"].append(row)
            parts = [f"  {name}, {workers} worker(s): ceiling {row['ceiling']:.1f}/s, PNG folder {row['png']:.2f}/s"]
            for output, crops in configs:
                key = f"{output}_c{crops}"
                parts.append(f"{output} x{crops} {row[key]:.1f}/s = {row[key + '_vs_ceiling']:.0%} of ceiling, "
                             f"{row[key + '_vs_png']:.0f}x PNG")
            print("; ".join(parts), flush=True)
    results["load_average_after"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
