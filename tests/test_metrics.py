"""Metrics: golden values from reference/color-and-hdr.md §2 and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fmstf_data.color import pq_inverse_eotf
from fmstf_data.errors import ModelError
from fmstf_model.metrics import (
    FrameMetrics,
    LpipsMetric,
    delta_e_itp,
    mabd,
    mabd_error,
    psnr,
    srsim,
    srsim_available,
    ssim,
)


def flat_pq(nits_rgb, height=4, width=5) -> torch.Tensor:
    """A [3, H, W] frame of one colour given as linear BT.2020 cd/m², PQ-encoded."""
    signal = torch.as_tensor(pq_inverse_eotf(np.asarray(nits_rgb, dtype=np.float64)))
    return signal[:, None, None].expand(3, height, width).clone()


@pytest.mark.parametrize(("a", "b", "expected"), [
    ((100, 100, 100), (110, 100, 100), 7.98210335931),
    ((1000, 0, 0), (900, 50, 0), 49.6433879232),
    ((0, 0, 0), (1, 1, 1), 107.960400824),
])
def test_delta_e_itp_golden_values_through_the_pq_signal(a, b, expected):
    value = delta_e_itp(flat_pq(a), flat_pq(b))
    assert value.shape == () and float(value) == pytest.approx(expected, abs=1e-6)
    batch = delta_e_itp(torch.stack([flat_pq(a), flat_pq(b)]), torch.stack([flat_pq(b), flat_pq(b)]))
    assert batch.tolist() == pytest.approx([expected, 0.0], abs=1e-6)


def test_delta_e_itp_is_the_mean_over_pixels():
    pred = flat_pq((100, 100, 100))
    target = pred.clone()
    target[:, :2] = flat_pq((110, 100, 100))[:, :2]  # 2 of 4 rows differ
    assert float(delta_e_itp(pred, target)) == pytest.approx(7.98210335931 / 2, abs=1e-6)


def test_psnr_follows_hdrtvnet_peak_one_whole_frame():
    target = torch.rand(2, 3, 16, 20, dtype=torch.float64)
    one_code = target + 1.0 / 65535  # one 16-bit PNG code everywhere
    assert psnr(one_code, target).tolist() == pytest.approx([20 * math.log10(65535)] * 2)
    pred = target.clone()
    pred[0, 1, :8] += 0.1  # a quarter of one channel's pixels: MSE = 0.01 / 6
    assert float(psnr(pred, target)[0]) == pytest.approx(10 * math.log10(600))
    assert float(psnr(target, target)[0]) == math.inf


def test_ssim_closed_form_and_properties():
    a, b = 0.3, 0.5
    x, y = torch.full((3, 24, 24), a), torch.full((3, 24, 24), b)
    c1 = 0.01**2
    assert float(ssim(x, y)) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1))  # constant images
    image = torch.rand(2, 3, 32, 40, generator=torch.Generator().manual_seed(0))
    assert ssim(image, image).tolist() == pytest.approx([1.0, 1.0])
    noisy = (image + 0.05 * torch.randn(image.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert torch.allclose(ssim(noisy, image), ssim(image, noisy))
    assert 0.3 < float(ssim(noisy, image)[0]) < 0.99
    with pytest.raises(ModelError, match="11x11"):
        ssim(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8))


def test_mabd_of_known_clips():
    levels = torch.tensor([0.2, 0.5, 0.4], dtype=torch.float64)
    clip = levels[:, None, None, None].expand(3, 3, 6, 7).clone()  # grey frames: Y' equals the level
    assert mabd(clip).tolist() == pytest.approx([0.3, 0.1])
    steady = torch.full_like(clip, 0.4)
    assert float(mabd_error(steady, clip)) == pytest.approx((0.3**2 + 0.1**2) / 2)
    assert float(mabd_error(clip, clip)) == 0.0
    red = torch.zeros(2, 3, 4, 4, dtype=torch.float64)
    red[1, 0] = 1.0  # frame 1 turns red: the BT.2020 luma weight of R
    assert mabd(red).tolist() == pytest.approx([0.2627])
    with pytest.raises(ModelError):
        mabd(clip[:1])


def test_frame_metrics_suite_and_optional_extras(tmp_path):
    suite = FrameMetrics(use_srsim=False)
    pred, target = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    values = suite(pred, target)
    assert list(values) == ["psnr", "ssim", "delta_e_itp"] and all(v.shape == (2,) for v in values.values())
    if srsim_available():
        assert srsim(target, target).tolist() == pytest.approx([1.0, 1.0], abs=1e-4)
    else:
        with pytest.raises(ModelError, match="piq"):
            srsim(pred, target)
        with pytest.raises(ModelError, match="piq"):
            FrameMetrics(use_srsim=True)
    try:
        import lpips  # noqa: F401
    except ImportError:
        with pytest.raises(ModelError, match="lpips"):
            LpipsMetric(tmp_path / "missing.pth")
    else:  # the plumbing, with random weights saved to a local file
        model = lpips.LPIPS(net="alex", pretrained=False, pnet_rand=True, verbose=False)
        torch.save(model.state_dict(), tmp_path / "lpips.pth")
        metric = LpipsMetric(tmp_path / "lpips.pth")
        assert metric(target, target).tolist() == pytest.approx([0.0, 0.0], abs=1e-6)
        assert FrameMetrics(use_srsim=False, lpips=metric).names == ["psnr", "ssim", "lpips", "delta_e_itp"]
