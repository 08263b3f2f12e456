"""Evaluation over a build's test split: per-sample values, per-video and overall means, Table I-shaped output."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from fmstf_data.loader import make_loader
from fmstf_model import FMSTFConfig, FMSTFnet
from fmstf_model.baselines import sdr_to_hdr
from fmstf_model.checkpoint import save_checkpoint
from fmstf_model.evaluate import evaluate, main, to_markdown
from fmstf_model.inference import BaselineConverter, ModelConverter
from fmstf_model.metrics import FrameMetrics, delta_e_itp, psnr
from tests.loader_fixtures import write_build


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("evalbuild")
    write_build(root, {"train1": ("train", 1), "cove": ("test", 2), "dune": ("test", 1)}, height=48, width=64)
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = FMSTFnet(FMSTFConfig.tiny())
    path = tmp_path_factory.mktemp("ckpt") / "run" / "checkpoints" / "latest.pt"
    save_checkpoint(path, {"model": model.state_dict(), "model_config": model.config.to_dict(), "step": 7})
    return path


def test_evaluate_model_and_baselines(build, checkpoint):
    torch.manual_seed(0)
    model = FMSTFnet(FMSTFConfig.tiny()).eval()
    converters = [ModelConverter(model, name="tiny"), BaselineConverter("bt2446a"), BaselineConverter("bt2446c")]
    report = evaluate(build, converters, metrics=FrameMetrics(use_srsim=False), num_workers=0)
    assert report.info["videos"] == ["cove", "dune"] and report.info["samples"] == 3
    assert len(report.samples) == 9 and report.metrics == ["psnr", "ssim", "delta_e_itp", "mabd_mse"]

    # cross-check against the loader batch measured directly
    loader = make_loader(build, "test", rank=0, world_size=1, num_workers=0, mode="eval", batch_size=1,
                         crop_size=None, flips=False, rot90=False)
    batches = list(loader)
    first = batches[0]
    expected_psnr = float(psnr(sdr_to_hdr(first["sdr"][:, 1], "bt2446a"), first["hdr"][:, 1])[0])
    row = next(r for r in report.samples if r["method"] == "bt2446a" and r["key"] == first["key"][0])
    assert row["psnr"] == pytest.approx(expected_psnr, rel=1e-9)
    model_row = next(r for r in report.samples if r["method"] == "tiny" and r["key"] == first["key"][0])
    centre = model.predict(first["sdr"])  # the streamed centre frame is the forward output of the triplet
    assert model_row["delta_e_itp"] == pytest.approx(float(delta_e_itp(centre, first["hdr"][:, 1])[0]), rel=1e-5)

    for method in ("tiny", "bt2446a", "bt2446c"):
        cove = [r["psnr"] for r in report.samples if r["method"] == method and r["pair_id"] == "cove"]
        assert report.videos[method]["cove"]["psnr"] == pytest.approx(sum(cove) / 2)
        videos = report.videos[method]
        assert report.mean[method]["ssim"] == pytest.approx((videos["cove"]["ssim"] + videos["dune"]["ssim"]) / 2)
        assert all(math.isfinite(report.mean[method][m]) for m in report.metrics)
    assert report.mean["bt2446a"]["mabd_mse"] >= 0

    markdown = to_markdown(report)
    assert "| Method | PSNR ↑ | SSIM ↑ | SR-SIM ↑ | LPIPS ↓ | ΔE_ITP ↓ | HDR-VDP ↑ |" in markdown
    assert "BT.2446 Method A (inverse)" in markdown and "### dune (1 triplets)" in markdown


def test_fmstf_eval_command_writes_markdown_and_json(build, checkpoint, tmp_path, capsys):
    code = main([str(build), "--checkpoint", str(checkpoint), "--method", "bt2446c", "--out", str(tmp_path / "e"),
                 "--num-workers", "0", "--device", "cpu", "--tile-size", "16", "--srsim", "off"])
    assert code == 0
    data = json.loads((tmp_path / "e" / "eval.json").read_text())
    assert list(data["labels"].values()) == ["FMSTFnet (run, step 7)", "BT.2446 Method C (inverse)"]
    assert data["info"]["samples"] == 3 and set(data["videos"]["bt2446c"]) == {"cove", "dune"}
    assert (tmp_path / "e" / "eval.md").read_text().startswith("## Mean over 2 test video(s), 3 triplets")
    assert "FMSTFnet (run, step 7)" in capsys.readouterr().out
    assert main([str(build), "--split", "nosuchsplit", "--out", str(tmp_path / "x"), "--num-workers", "0"]) == 2
