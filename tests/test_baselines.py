"""BT.2446 Method A and C inverse baselines (torch): the Report's values and the numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fmstf_data.color import pq_eotf, sdr_to_hdr_rgb
from fmstf_data.errors import ColorError
from fmstf_model.baselines import (
    bt2446a_sdr_to_hdr,
    bt2446c_inverse_tone_curve,
    bt2446c_sdr_to_hdr,
    sdr_to_hdr,
)


@pytest.mark.parametrize(("y_prime", "nits"), [(0.1, 1.1010), (0.5, 76.2809), (0.75, 278.9767), (1.0, 999.52)])
def test_method_a_grey_regression_values(y_prime, nits):
    grey = torch.full((3, 2), y_prime, dtype=torch.float64)  # BT.2020 gamma SDR grey: Y' = R' = G' = B'
    light = bt2446a_sdr_to_hdr(grey) * 1000.0
    assert light[:, 0].tolist() == pytest.approx([nits] * 3, abs=5e-3)


def test_method_c_inverse_curve_values():
    values = bt2446c_inverse_tone_curve(torch.tensor([90.6523, 118.3773, 10.0], dtype=torch.float64))
    assert values.tolist() == pytest.approx([203.0, 1000.0, 10.0 / 0.83802], rel=2e-5)
    grey = bt2446c_sdr_to_hdr(torch.full((3, 1), 90.6523, dtype=torch.float64))
    assert grey[:, 0].tolist() == pytest.approx([203.0] * 3, rel=2e-5)  # x, y kept: a grey stays grey


@pytest.mark.parametrize("method", ["bt2446a", "bt2446c"])
def test_torch_baselines_equal_the_numpy_reference(method):
    rng = np.random.default_rng(7)
    sdr = rng.uniform(0.0, 1.0, (3, 9, 11))
    sdr[:, 0, :3] = 0.0  # black pixels (Y' = 0 paths)
    expected = sdr_to_hdr_rgb(sdr, method=method)
    got = sdr_to_hdr(torch.from_numpy(sdr), method, dim=0)
    assert got.dtype == torch.float64 and np.abs(got.numpy() - expected).max() < 1e-9
    batch = torch.from_numpy(np.stack([sdr, sdr[:, ::-1].copy()])).float()  # [B, 3, H, W], float32
    out = sdr_to_hdr(batch, method)
    assert out.shape == batch.shape and out.dtype == torch.float32
    assert np.abs(out[0].double().numpy() - expected).max() < 2e-5
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0


def test_sdr_white_lands_on_each_method_peak():
    white = torch.ones(1, 3, 2, 2, dtype=torch.float64)
    peak_a = float(pq_eotf(sdr_to_hdr(white, "bt2446a")[0, 0, 0, 0].item()))
    peak_c = float(pq_eotf(sdr_to_hdr(white, "bt2446c")[0, 0, 0, 0].item()))
    assert peak_a == pytest.approx(999.52 * 1.0, abs=0.02)
    assert peak_c == pytest.approx(float(bt2446c_inverse_tone_curve(torch.tensor(100.0, dtype=torch.float64))))
    with pytest.raises(ColorError, match="bt2446a"):
        sdr_to_hdr(white, "reinhard")
