"""FMSTFnet benchmark: parameter counts, forward/backward time and peak memory.

Usage (from the repository root):

    .venv/bin/python bench/bench_model.py                 # CPU cases, plus GPU cases when CUDA is available
    .venv/bin/python bench/bench_model.py --only tiny     # cases whose name contains "tiny"
    .venv/bin/python bench/bench_model.py --list
    .venv/bin/python bench/bench_model.py --init-probe tiny   # why the image outputs start at x0.1 (see init_probe)

Each case runs in a fresh subprocess (``--case NAME``) so peak memory is that case's alone:

- CPU: peak resident memory (``VmHWM`` from /proc, Linux) minus the resident memory after the model and inputs were
  built, i.e. what the forward/backward pass added (activations, workspace, allocator slack).
- GPU: ``torch.cuda.max_memory_allocated`` after a reset, minus the memory allocated before the pass (the weights
  and inputs), i.e. what the pass added.

Times are the median (and minimum) of ``--repeats`` runs after one warm-up run; on a shared machine the minimum is
the better estimate of the uncontended time. "train" cases time the forward (train mode, with
the multi-scale L1 loss) and the backward separately; "infer" cases time ``torch.no_grad`` eval forwards. Results
go to stdout as a markdown table and to ``bench/results/bench_model.json`` (git-ignored). The figures are recorded
in docs/model.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fmstf_model import FMSTFConfig, FMSTFLoss, FMSTFnet  # noqa: E402


@dataclass(frozen=True)
class Case:
    name: str
    config: str  # "tiny" or "default"
    mode: str  # "train" or "infer"
    batch: int
    height: int
    width: int
    device: str  # "cpu" or "cuda"
    amp: str = "none"  # "none", "bf16" or "fp16" (autocast)


CASES = [
    Case("tiny-train-128-b1-cpu", "tiny", "train", 1, 128, 128, "cpu"),
    Case("tiny-train-128-b7-cpu", "tiny", "train", 7, 128, 128, "cpu"),
    Case("tiny-infer-128-b1-cpu", "tiny", "infer", 1, 128, 128, "cpu"),
    Case("tiny-infer-540p-b1-cpu", "tiny", "infer", 1, 540, 960, "cpu"),
    Case("default-train-256-b1-cpu", "default", "train", 1, 256, 256, "cpu"),
    Case("default-infer-540p-b1-cpu", "default", "infer", 1, 540, 960, "cpu"),
    Case("default-infer-1080p-b1-cpu", "default", "infer", 1, 1080, 1920, "cpu"),
    Case("default-train-256-b7-cuda", "default", "train", 7, 256, 256, "cuda"),
    Case("default-train-256-b7-cuda-bf16", "default", "train", 7, 256, 256, "cuda", "bf16"),
    Case("default-infer-1080p-b1-cuda", "default", "infer", 1, 1080, 1920, "cuda"),
    Case("default-infer-2160p-b1-cuda", "default", "infer", 1, 2160, 3840, "cuda"),
    Case("default-infer-2160p-b1-cuda-fp16", "default", "infer", 1, 2160, 3840, "cuda", "fp16"),
]


def parameter_counts(config: FMSTFConfig) -> dict[str, int]:
    model = FMSTFnet(config)
    counts = {name: sum(p.numel() for p in child.parameters()) for name, child in model.named_children()}
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts


def _resident_mib(field: str) -> float:
    """VmRSS / VmHWM of this process in MiB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def run_case(case: Case, repeats: int) -> dict:
    """Run one case in this process and return its measurements."""
    torch.manual_seed(0)
    device = torch.device(case.device)
    config = FMSTFConfig.tiny() if case.config == "tiny" else FMSTFConfig.default()
    model = FMSTFnet(config).to(device)
    clip = torch.rand(case.batch, 3, 3, case.height, case.width, device=device)
    target = torch.rand(case.batch, 3, case.height, case.width, device=device)
    loss_fn = FMSTFLoss(config.pyramid_levels, perceptual_weight=0).to(device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(case.amp)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def once() -> tuple[float, float]:
        model.zero_grad(set_to_none=True)
        sync()
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext():
            if case.mode == "infer":
                with torch.no_grad():
                    model(clip)
                sync()
                return time.perf_counter() - start, 0.0
            loss = loss_fn(model(clip).pyramid, target).total
        sync()
        middle = time.perf_counter()
        loss.backward()
        sync()
        return middle - start, time.perf_counter() - middle

    model.train(case.mode == "train")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base_mib = torch.cuda.memory_allocated() / 2**20
    else:
        base_mib = _resident_mib("VmRSS")
    timings = [once() for _ in range(repeats + 1)][1:]
    if device.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated() / 2**20 - base_mib
    else:
        peak_mib = _resident_mib("VmHWM") - base_mib
    return {
        **asdict(case),
        "forward_s": statistics.median(t[0] for t in timings),
        "forward_min_s": min(t[0] for t in timings),
        "backward_s": statistics.median(t[1] for t in timings) if case.mode == "train" else None,
        "backward_min_s": min(t[1] for t in timings) if case.mode == "train" else None,
        "peak_mib": peak_mib,
        "repeats": repeats,
    }


def init_probe(config_name: str, steps: int) -> None:
    """Why init_weights scales the image outputs by 0.1: train both inits on a synthetic task, print dead pixels.

    Task: SDR ramps plus noise -> ``0.55 * x**1.3`` (targets in [0, 0.55]), Adam 2e-4, batch 4 (tiny, 64 px) or 2
    (default, 128 px), L1 pyramid loss. "plain" undoes the x0.1 on STFM's Y_0 head and AHM's phi2 (plain MSRA).
    "dead" is the share of full-resolution output pixels at exactly 0 (the ReLU of eq. (3) gives no gradient there).
    """
    config = FMSTFConfig.tiny() if config_name == "tiny" else FMSTFConfig.default()
    size, batch = (64, 4) if config_name == "tiny" else (128, 2)
    for variant in ("plain", "scaled"):
        torch.manual_seed(0)
        model = FMSTFnet(config)
        if variant == "plain":
            with torch.no_grad():
                for conv in [model.stfm.image_head, *(ahm.phi2 for ahm in model.ahm)]:
                    conv.weight.mul_(10.0)
        loss_fn = FMSTFLoss(config.pyramid_levels, perceptual_weight=0)
        optimiser = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.9, 0.999))
        generator = torch.Generator().manual_seed(1)
        ramp = torch.linspace(0, 1, size)
        for step in range(steps + 1):
            gain = torch.rand(batch, 1, 3, 1, 1, generator=generator)
            clip = (gain * ramp + 0.1 * torch.rand(batch, 3, 3, size, size, generator=generator)).clamp(0, 1)
            output = model(clip)
            loss = loss_fn(output.pyramid, 0.55 * clip[:, 1] ** 1.3)
            optimiser.zero_grad()
            loss.total.backward()
            optimiser.step()
            if step % 50 == 0:
                dead = (output.pyramid[-1] == 0).float().mean().item()
                means = [round(y.abs().mean().item(), 3) for y in output.pyramid]
                print(f"{config_name} {variant:6s} step {step:4d} loss {loss.total.item():.4f} dead {dead:.3f} "
                      f"mean|Y_k| {means}", flush=True)


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1_5_15_min": [round(x, 2) for x in os.getloadavg()],  # other work sharing the CPUs
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _markdown(rows: list[dict]) -> str:
    lines = [
        "| case | config | mode | input (B x H x W) | device | amp | forward s (min) | backward s (min) | peak MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['name']} | | | | | | failed: {r['error']} | | |")
            continue
        forward = f"{r['forward_s']:.3f} ({r['forward_min_s']:.3f})"
        backward = f"{r['backward_s']:.3f} ({r['backward_min_s']:.3f})" if r["backward_s"] is not None else "-"
        lines.append(
            f"| {r['name']} | {r['config']} | {r['mode']} | {r['batch']} x {r['height']} x {r['width']} | "
            f"{r['device']} | {r['amp']} | {forward} | {backward} | {r['peak_mib']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="run the cases whose name contains this text")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per case after one warm-up (median)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "bench_model.json")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--init-probe", choices=("tiny", "default"), help="run the initialisation probe instead")
    parser.add_argument("--probe-steps", type=int, default=300)
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case, print JSON
    args = parser.parse_args(argv)

    if args.init_probe:
        init_probe(args.init_probe, args.probe_steps)
        return 0
    if args.case:
        case = next(c for c in CASES if c.name == args.case)
        print(json.dumps(run_case(case, args.repeats)))
        return 0
    if args.list:
        print("\n".join(c.name for c in CASES))
        return 0

    cuda = torch.cuda.is_available()
    rows, skipped = [], []
    for case in CASES:
        if args.only not in case.name:
            continue
        if case.device == "cuda" and not cuda:
            skipped.append(case.name)
            continue
        result = subprocess.run(
            [sys.executable, __file__, "--case", case.name, "--repeats", str(args.repeats)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            rows.append({"name": case.name, "error": (result.stderr.strip().splitlines() or ["?"])[-1]})
        else:
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
        print(f"done {case.name}", file=sys.stderr, flush=True)

    report = {
        "machine": machine(),
        "parameters": {name: parameter_counts(getattr(FMSTFConfig, name)()) for name in ("tiny", "default")},
        "cases": rows,
        "skipped_no_cuda": skipped,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["machine"]))
    print(json.dumps(report["parameters"]))
    print(_markdown(rows))
    if skipped:
        print(f"\nnot measured (no CUDA device): {', '.join(skipped)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
