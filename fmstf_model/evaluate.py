"""``fmstf-eval``: models and the BT.2446 baselines over a build's test split, as a table shaped like Table I.

    fmstf-eval build/demo --checkpoint runs/tiny-demo/checkpoints/latest.pt --out runs/tiny-demo/eval

What is measured: every triplet (t-1, t, t+1) of the split, whole frames, read by the loader in eval mode (each
sample once, in index order). Each method converts the three SDR frames as a stream (FMSTFnet with its recurrent
state, :mod:`fmstf_model.inference`), so the centre frame's output is the model's forward output for the triplet
(its full context). PSNR, SSIM, ΔE_ITP (and SR-SIM, LPIPS when enabled) compare the centre frame with the HDR10
ground truth; MABD-MSE compares the three output frames' brightness changes with the truth's (the first and last
frame have replicated borders, as at the ends of a video). Per video: the mean over its samples; the "mean" table
is the mean over videos (the paper averages over its 4 test videos). HDR-VDP-3 (MATLAB) is not computed: its column
shows "–", as do SR-SIM and LPIPS when their packages or weights are absent.

Outputs: ``OUT/eval.md`` (the tables) and ``OUT/eval.json`` (per sample, per video, mean, and how it was measured).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fmstf_data.errors import FmstfError, ModelError
from fmstf_data.loader import make_loader
from fmstf_model.baselines import BASELINES
from fmstf_model.checkpoint import load_checkpoint, load_model
from fmstf_model.convert import resolve_device
from fmstf_model.inference import BaselineConverter, FrameConverter, ModelConverter, convert_clip
from fmstf_model.metrics import DISPLAY_SCALE, METRIC_COLUMNS, FrameMetrics, LpipsMetric, finite_mean, mabd_error

logger = logging.getLogger(__name__)

DECIMALS = {"psnr": 2, "ssim": 4, "srsim": 4, "lpips": 4, "delta_e_itp": 3, "hdr_vdp": 4, "mabd_mse": 3}


@dataclass
class EvalReport:
    """Results of :func:`evaluate`: ``samples`` (one row per method and sample), ``videos`` (method -> pair ->
    metric -> mean), ``mean`` (method -> metric -> mean over videos), ``labels`` (method -> label), ``info``."""

    samples: list[dict[str, Any]] = field(default_factory=list)
    videos: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    mean: dict[str, dict[str, float]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    metrics: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"info": self.info, "metrics": self.metrics, "labels": self.labels, "mean": self.mean,
                "videos": self.videos, "samples": self.samples}


def checkpoint_converter(path: str | Path, device: torch.device, *, name: str | None = None,
                         tile_size: int | None = None) -> ModelConverter:
    """A :class:`ModelConverter` of a checkpoint, labelled with its run directory and step unless ``name``."""
    path = Path(path)
    step = load_checkpoint(path).get("step")
    run = path.parent.parent.name if path.parent.name == "checkpoints" else path.parent.name
    label = name or f"FMSTFnet ({run}, step {step})"
    return ModelConverter(load_model(path, device), name=label, tile_size=tile_size)


def evaluate(source: str | Path, converters: Sequence[FrameConverter], *, split: str = "test",
             metrics: FrameMetrics | None = None, device: torch.device | str = "cpu", num_workers: int = 1,
             max_samples: int | None = None) -> EvalReport:
    """Run every converter over ``split`` of the build ``source`` and measure (see the module docstring)."""
    if not converters:
        raise ModelError("nothing to evaluate: give a checkpoint or a baseline method")
    names = [c.name for c in converters]
    if len(set(names)) != len(names):
        raise ModelError(f"method names must differ, got {names}")
    device = torch.device(device)
    metrics = metrics or FrameMetrics()
    loader = make_loader(str(source), split, rank=0, world_size=1, num_workers=num_workers, mode="eval",
                         batch_size=1, crop_size=None, flips=False, rot90=False)
    report = EvalReport(labels={c.name: getattr(c, "label", c.name) for c in converters},
                        metrics=[*metrics.names, "mabd_mse"])
    start = time.perf_counter()
    seen = 0
    for batch in loader:
        if max_samples is not None and seen >= max_samples:
            break
        if not bool(batch["valid"][0]):
            continue
        sdr = batch["sdr"].to(device)
        hdr = batch["hdr"].to(device)
        for converter in converters:
            predicted = convert_clip(converter, sdr)
            values = {name: float(v[0]) for name, v in metrics(predicted[:, 1], hdr[:, 1]).items()}
            values["mabd_mse"] = float(mabd_error(predicted[0], hdr[0]))
            report.samples.append({"method": converter.name, "pair_id": batch["pair_id"][0],
                                   "key": batch["key"][0], **values})
        seen += 1
        logger.info("evaluated %s (%d)", batch["key"][0], seen)
    if seen == 0:
        raise ModelError(f"split {split!r} of {source} has no samples to evaluate")
    for converter in converters:
        rows = [r for r in report.samples if r["method"] == converter.name]
        pairs = sorted({r["pair_id"] for r in rows})
        report.videos[converter.name] = {
            pair: {m: finite_mean([r[m] for r in rows if r["pair_id"] == pair]) for m in report.metrics}
            for pair in pairs}
        report.mean[converter.name] = {m: finite_mean([v[m] for v in report.videos[converter.name].values()])
                                       for m in report.metrics}
    report.info = {"source": str(source), "split": split, "samples": seen,
                   "videos": sorted({r["pair_id"] for r in report.samples}),
                   "device": str(device), "seconds": round(time.perf_counter() - start, 1),
                   "torch": torch.__version__, "python": platform.python_version(),
                   "measured": "centre frame of every triplet, whole frames, PQ BT.2020 R'G'B'; MABD over the "
                               "three streamed frames; per-video means, then the mean over videos"}
    return report


def _cell(metric: str, values: dict[str, float]) -> str:
    value = values.get(metric)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value * DISPLAY_SCALE.get(metric, 1.0):.{DECIMALS[metric]}f}"


def _table(report: EvalReport, rows: dict[str, dict[str, float]]) -> list[str]:
    columns = list(METRIC_COLUMNS)
    lines = ["| Method | " + " | ".join(METRIC_COLUMNS[c][0] for c in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for method, values in rows.items():
        lines.append(f"| {report.labels[method]} | " + " | ".join(_cell(c, values) for c in columns) + " |")
    return lines


def to_markdown(report: EvalReport) -> str:
    """Table I-shaped Markdown: the mean over videos, then one table per video."""
    info = report.info
    lines = [f"## Mean over {len(info['videos'])} {info['split']} video(s), {info['samples']} triplets",
             "", *_table(report, report.mean), ""]
    for pair in info["videos"]:
        count = sum(1 for r in report.samples if r["pair_id"] == pair) // max(1, len(report.labels))
        lines += [f"### {pair} ({count} triplets)", "",
                  *_table(report, {m: report.videos[m][pair] for m in report.labels}), ""]
    lines += [f"Measured on {info['source']} ({info['split']} split): {info['measured']}. "
              "HDR-VDP-3 is MATLAB-only and not computed; \"–\" marks metrics not computed "
              "(SR-SIM needs piq, LPIPS the lpips package and a local weights file). "
              f"MABD-MSE is shown ×10⁴. Device {info['device']}, {info['seconds']} s.", ""]
    return "\n".join(lines)


def write_report(report: EvalReport, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``eval.md`` and ``eval.json`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    markdown, data = out / "eval.md", out / "eval.json"
    markdown.write_text(to_markdown(report))
    data.write_text(json.dumps(report.to_dict(), indent=2, allow_nan=True) + "\n")
    return markdown, data


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fmstf-eval", description="Evaluate checkpoints and baselines on a build.")
    parser.add_argument("build", help="a build directory (local or object store) written by fmstf-data build")
    parser.add_argument("--split", default="test")
    parser.add_argument("--checkpoint", action="append", default=[], help="a checkpoint (repeatable)")
    parser.add_argument("--name", action="append", default=[], help="a label per --checkpoint, in order")
    parser.add_argument("--method", action="append", choices=BASELINES,
                        help="baseline(s) to include (default: all of them)")
    parser.add_argument("--no-baselines", action="store_true", help="evaluate only the checkpoints")
    parser.add_argument("--out", default="runs/eval", help="output directory for eval.md and eval.json")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tile-size", type=int, default=None, help="tile the model's full-resolution work")
    parser.add_argument("--srsim", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--lpips-weights", help="a local lpips.LPIPS state_dict file (enables LPIPS)")
    parser.add_argument("--lpips-net", default="alex", choices=("alex", "vgg", "squeeze"))
    parser.add_argument("--max-samples", type=int, default=None)
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        device = resolve_device(args.device)
        if args.name and len(args.name) != len(args.checkpoint):
            raise ModelError(f"give one --name per --checkpoint ({len(args.checkpoint)}), got {len(args.name)}")
        names = args.name or [None] * len(args.checkpoint)
        converters: list[FrameConverter] = [checkpoint_converter(path, device, name=name, tile_size=args.tile_size)
                                            for path, name in zip(args.checkpoint, names)]
        if not args.no_baselines:
            converters += [BaselineConverter(m) for m in (args.method or BASELINES)]
        lpips = LpipsMetric(args.lpips_weights, net=args.lpips_net, device=device) if args.lpips_weights else None
        metrics = FrameMetrics(use_srsim={"auto": None, "on": True, "off": False}[args.srsim], lpips=lpips)
        report = evaluate(args.build, converters, split=args.split, metrics=metrics, device=device,
                          num_workers=args.num_workers, max_samples=args.max_samples)
        markdown, data = write_report(report, args.out)
    except FmstfError as error:
        logger.error("%s", error)
        return 2
    sys.stdout.write(to_markdown(report) + f"\nwritten: {markdown}, {data}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
