"""Tests of the torch colour core: agreement with numpy, the canary on tensors, batching, autograd, and (marked
``gpu``) the same on CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fmstf_data.color as C
import fmstf_data.color.torch_ops as T
from fmstf_data.errors import ColorError

PQ_1000 = float(C.pq_inverse_eotf(1000.0))


def _random(seed: int, shape: tuple[int, ...], scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape) * scale


# name, numpy inputs, keyword arguments
ELEMENTWISE_CASES = [
    ("pq_eotf", (_random(1, (2, 3, 4, 5)),), {}),
    ("pq_inverse_eotf", (_random(2, (7, 9), 10000.0),), {}),
    ("bt1886_eotf", (_random(3, (4, 4)),), {"white_nits": 120.0, "black_nits": 0.05}),
    ("bt1886_inverse_eotf", (_random(4, (4, 4), 100.0),), {"white_nits": 100.0, "black_nits": 0.1}),
    ("bt709_oetf", (_random(5, (50,)) * 1.2 - 0.1,), {}),
    ("bt709_inverse_oetf", (_random(6, (50,)),), {}),
    ("bt2390_eetf", (_random(7, (3, 10)),), {"source_max_nits": 4000.0, "target_max_nits": 200.0,
                                              "target_min_nits": 0.05}),
    ("bt2446a_tone_curve", (_random(8, (3, 10)),), {"source_max_nits": 1000.0}),
    ("bt2446a_hdr_to_sdr", (_random(9, (3, 6, 7)),), {}),
    ("ycbcr_to_rgb", (_random(10, (4, 5)), _random(11, (4, 5)) - 0.5, _random(12, (4, 5)) - 0.5), {"matrix": "bt709"}),
    ("convert_primaries", (_random(13, (3, 4, 5)),), {"src": "bt2020", "dst": "bt709"}),
    ("gamut_map_bt2020_to_bt709", (_random(14, (3, 40)),), {"method": "desaturate"}),
    ("gamut_map_bt2020_to_bt709", (_random(15, (3, 40)),), {"method": "clip"}),
    ("ictcp_from_rgb2020_nits", (_random(16, (3, 8, 9), 2000.0),), {}),
    ("delta_e_itp", (_random(17, (3, 8)), _random(18, (3, 8))), {}),
    ("delta_e_itp_rgb2020_nits", (_random(19, (3, 8), 1000.0), _random(20, (3, 8), 1000.0)), {}),
    ("upsample_chroma_420", (_random(21, (2, 3, 4)),), {"out_height": 5, "out_width": 8}),
    ("downsample_chroma_420", (_random(22, (2, 5, 7)),), {}),
    ("hdr_to_sdr_rgb", (_random(23, (3, 6, 7), PQ_1000),), {"method": "bt2390"}),
    ("hdr_to_sdr_rgb", (_random(24, (3, 6, 7), PQ_1000),), {"method": "bt2446a", "gamut_mapping": "clip"}),
]


@pytest.mark.parametrize(("name", "inputs", "kwargs"), ELEMENTWISE_CASES, ids=[c[0] for c in ELEMENTWISE_CASES])
def test_torch_agrees_with_numpy_in_float64(name, inputs, kwargs):
    expected = getattr(C, name)(*inputs, **kwargs)
    got = getattr(T, name)(*(torch.from_numpy(x) for x in inputs), **kwargs)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
    assert tuple(got.shape) == np.shape(expected)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9, atol=1e-6)


def test_rgb_to_ycbcr_and_codes_agree():
    rgb = _random(30, (3, 5, 6))
    for ours, theirs in zip(T.rgb_to_ycbcr(torch.from_numpy(rgb), "bt2020nc"), C.rgb_to_ycbcr(rgb, "bt2020nc")):
        np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-14)
    kwargs = dict(bit_depth=10, matrix="bt2020nc", full_range=False)
    torch_codes = T.rgb_to_codes444(torch.from_numpy(rgb), **kwargs)
    assert torch_codes[0].dtype == torch.int32
    for ours, theirs in zip(torch_codes, C.rgb_to_codes444(rgb, **kwargs)):
        np.testing.assert_array_equal(ours.numpy(), theirs)
    red = T.rgb_to_codes444(torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), **kwargs)
    assert [int(c) for c in red] == [294, 387, 960]
    back = T.codes444_to_rgb(*torch_codes, **kwargs, clip=False)
    np.testing.assert_allclose(back.numpy(), C.codes444_to_rgb(*C.rgb_to_codes444(rgb, **kwargs), **kwargs, clip=False),
                               atol=1e-14)
    assert T.ycbcr_to_codes(0.5, 0.0, 0.0, bit_depth=8, full_range=False)[0].dtype == torch.uint8


@pytest.mark.parametrize("shape", [(4, 6), (5, 7), (2, 3, 9, 11)])
def test_planes_to_rgb_agrees_with_numpy_and_rgb_to_planes(shape):
    rng = np.random.default_rng(31)
    chroma = shape[:-2] + C.chroma_shape(*shape[-2:])
    y = rng.integers(0, 1024, shape).astype(np.uint16)
    cb, cr = rng.integers(0, 1024, chroma).astype(np.uint16), rng.integers(0, 1024, chroma).astype(np.uint16)
    kwargs = dict(bit_depth=10, matrix="bt2020nc", full_range=False)
    for out_dtype, np_dtype, tol in ((torch.float64, np.float64, 1e-12), (torch.float32, np.float32, 1e-6)):
        got = T.planes_to_rgb(torch.from_numpy(y), torch.from_numpy(cb), torch.from_numpy(cr), **kwargs,
                              out_dtype=out_dtype)
        expected = C.planes_to_rgb(y, cb, cr, **kwargs, out_dtype=np_dtype)
        assert got.dtype == out_dtype and tuple(got.shape) == shape[:-2] + (3,) + shape[-2:]
        np.testing.assert_allclose(got.numpy(), expected, atol=tol)
    rgb = C.planes_to_rgb(y, cb, cr, **kwargs, out_dtype=np.float64)
    for ours, theirs in zip(T.rgb_to_planes(torch.from_numpy(rgb), **kwargs), C.rgb_to_planes(rgb, **kwargs)):
        np.testing.assert_array_equal(ours.numpy(), theirs)


@pytest.mark.parametrize("code_dtype", [torch.uint16, torch.int16, torch.int32, torch.int64])
def test_canary_on_tensors(code_dtype):
    y = torch.full((2, 5, 7), 940, dtype=code_dtype)
    chroma = torch.full((2, 3, 4), 512, dtype=code_dtype)
    rgb = T.planes_to_rgb(y, chroma, chroma, bit_depth=10, matrix="bt2020nc", full_range=False)
    assert rgb.dtype == torch.float32 and rgb.shape == (2, 3, 5, 7)
    assert bool(torch.all(rgb == 1.0))


def test_numpy_arrays_are_accepted_and_float32_is_kept():
    assert T.pq_eotf(np.array([0.5])).dtype == torch.float64
    assert T.pq_eotf(torch.tensor([0.5], dtype=torch.float32)).dtype == torch.float32
    sdr = T.hdr_to_sdr_rgb(torch.rand(3, 4, 4) * PQ_1000)
    assert sdr.dtype == torch.float32 and float(sdr.min()) >= 0.0 and float(sdr.max()) <= 1.0


def test_gradients_flow_through_conversions():
    rgb_pq = (torch.rand(3, 8, 8, dtype=torch.float64) * 0.6 + 0.1).requires_grad_()
    T.hdr_to_sdr_rgb(rgb_pq, method="bt2390").sum().backward()
    assert torch.isfinite(rgb_pq.grad).all() and rgb_pq.grad.abs().sum() > 0
    nits = (torch.rand(3, 8, dtype=torch.float64) * 500 + 1).requires_grad_()
    T.delta_e_itp_rgb2020_nits(nits, nits.detach() * 1.1).sum().backward()
    assert torch.isfinite(nits.grad).all()


def test_torch_errors():
    with pytest.raises(ColorError):
        T.planes_to_rgb(torch.zeros(4, 4), torch.zeros(2, 2), torch.zeros(2, 2), bit_depth=10, matrix="bt601",
                        full_range=False)
    with pytest.raises(ColorError, match="does not fit"):
        T.planes_to_rgb(torch.zeros(4, 4), torch.zeros(3, 2), torch.zeros(2, 2), bit_depth=10, matrix="bt709",
                        full_range=False)
    with pytest.raises(ColorError):
        T.ycbcr_to_codes(0.5, 0.0, 0.0, bit_depth=20, full_range=False)
    with pytest.raises(ColorError):
        T.hdr_to_sdr_rgb(torch.zeros(3, 2), method="bt2446c")  # numpy only
    with pytest.raises(ColorError, match="3 channels"):
        T.convert_primaries(torch.zeros(4, 2), "bt709", "bt2020")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    device = torch.device("cuda")
    y = torch.randint(64, 941, (2, 3, 35, 47), dtype=torch.int32).to(torch.uint16)
    cb = torch.randint(64, 961, (2, 3, 18, 24), dtype=torch.int32).to(torch.uint16)
    cr = torch.randint(64, 961, (2, 3, 18, 24), dtype=torch.int32).to(torch.uint16)
    kwargs = dict(bit_depth=10, matrix="bt2020nc", full_range=False)
    for out_dtype in (torch.float32, torch.float64):
        cpu = T.planes_to_rgb(y, cb, cr, **kwargs, out_dtype=out_dtype)
        gpu = T.planes_to_rgb(y.to(device), cb.to(device), cr.to(device), **kwargs, out_dtype=out_dtype)
        assert gpu.device.type == "cuda"
        torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-6, rtol=0)
    white = T.planes_to_rgb(torch.full((4, 4), 940, device=device), torch.full((2, 2), 512, device=device),
                            torch.full((2, 2), 512, device=device), **kwargs)
    assert bool(torch.all(white == 1.0))
    for name, inputs, kw in ELEMENTWISE_CASES:
        cpu = getattr(T, name)(*(torch.from_numpy(x) for x in inputs), **kw)
        gpu = getattr(T, name)(*(torch.from_numpy(x).to(device) for x in inputs), **kw)
        torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-6, rtol=1e-9, msg=name)
    codes = T.rgb_to_planes(torch.rand(2, 3, 9, 11, device=device, dtype=torch.float64), **kwargs)
    assert all(c.device.type == "cuda" for c in codes)


def test_torch_pq_eotf_clips_its_input_like_numpy():
    import torch

    from fmstf_data.color import torch_ops

    signal = [-0.5, -1e-6, 0.0, 0.5, 1.0, 1.0 + 1e-6, 1.5]
    got = torch_ops.pq_eotf(torch.tensor(signal, dtype=torch.float64)).numpy()
    assert got.tolist()[:3] == [0.0, 0.0, 0.0] and got.tolist()[-3:] == [10000.0, 10000.0, 10000.0]
    assert np.allclose(got, C.pq_eotf(np.asarray(signal)), rtol=1e-12, atol=0)
