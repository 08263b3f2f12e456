"""FMSTFnet building blocks: pyramid exactness, hashing attention vs dense attention, FFC/CGLFM on tiny maps."""

from __future__ import annotations

import pytest
import torch

from fmstf_data.errors import ModelError
from fmstf_model.cglfm import CGLFM, InstanceNorm2dAnySize
from fmstf_model.ffc import FFC
from fmstf_model.hashing_attention import HNAM, HSTNAM, HashingCore, bucket_count, dense_attention, hashed_attention
from fmstf_model.pyramid import LaplacianPyramid, level_sizes
from fmstf_model.transformer import TransformerBlock


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# --- pyramid (spec §2, §9.1) ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(67, 93), (5, 7), (1, 1), (2, 3), (64, 64), (33, 2)])
@pytest.mark.parametrize("levels", [1, 3, 4])
def test_pyramid_reconstruction_is_exact_on_any_size(size, levels):
    pyramid = LaplacianPyramid(levels)
    x64 = torch.rand(2, 3, *size, dtype=torch.float64)
    gaussian, highs = pyramid.decompose(x64)
    assert (pyramid.reconstruct(gaussian[0], highs) - x64).abs().max().item() < 1e-12
    x32 = x64.float()
    gaussian, highs = pyramid.decompose(x32)
    assert (pyramid.reconstruct(gaussian[0], highs) - x32).abs().max().item() < 1e-6
    expected = level_sizes(*size, levels)
    assert [tuple(g.shape[-2:]) for g in gaussian] == expected
    assert [tuple(h.shape[-2:]) for h in highs] == expected[1:]


def test_level_sizes_are_ceil_of_powers_of_two():
    assert level_sizes(2160, 3840, 3) == [(270, 480), (540, 960), (1080, 1920), (2160, 3840)]
    assert level_sizes(67, 93, 3) == [(9, 12), (17, 24), (34, 47), (67, 93)]


@pytest.mark.parametrize("size", [(9, 13), (2, 2), (1, 5)])
def test_pyramid_keeps_a_constant_image_constant(size):
    """Zero insertion and padding must keep their phase at the borders: a flat image has no detail anywhere."""
    pyramid = LaplacianPyramid(3)
    gaussian, highs = pyramid.decompose(torch.full((1, 3, *size), 0.7, dtype=torch.float64))
    for level in gaussian:
        assert torch.allclose(level, torch.full_like(level, 0.7), atol=1e-12)
    for high in highs:
        assert high.abs().max().item() < 1e-12


def test_pyramid_stays_exact_under_autocast():
    pyramid = LaplacianPyramid(3)
    x = torch.rand(1, 3, 45, 61)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gaussian, highs = pyramid.decompose(x)
        image = pyramid.reconstruct(gaussian[0], highs)
    assert image.dtype == torch.float32
    assert (image - x).abs().max().item() < 1e-6


# --- hashing attention (spec §4, §9.2-9.4, §9.7) -------------------------------------------------------------


def test_bucket_count_follows_nlsa_with_a_floor_of_two():
    assert bucket_count(1, 144) == 2
    assert bucket_count(20, 144) == 2  # L < k: NLSA gave 0 buckets
    assert bucket_count(1024, 144) == 8  # 7 rounded up to even
    assert bucket_count(3 * 270 * 480, 144) == 128  # capped


def test_hashed_attention_equals_dense_when_one_chunk_holds_everything():
    match = torch.randn(2, 50, 4, dtype=torch.float64)
    values = torch.randn(2, 50, 6, dtype=torch.float64)
    rotations = torch.randn(3, 4, bucket_count(50, 64) // 2, dtype=torch.float64)
    out = hashed_attention(match, values, rotations, chunk_size=64)
    assert (out - dense_attention(match, values)).abs().max().item() < 1e-12


def test_hashed_attention_with_many_chunks_is_sparse_and_normalised():
    """Several chunks (with masked padding): not dense any more, but every output is a convex combination."""
    match = torch.randn(1, 100, 4, dtype=torch.float64) * 3
    values = torch.randn(1, 100, 6, dtype=torch.float64)
    rotations = torch.randn(2, 4, bucket_count(100, 16) // 2, dtype=torch.float64)
    out = hashed_attention(match, values, rotations, chunk_size=16)  # 7 chunks, 12 padded slots
    assert (out - dense_attention(match, values)).abs().max().item() > 1e-3
    ones = hashed_attention(match, torch.ones(1, 100, 1, dtype=torch.float64), rotations, chunk_size=16)
    assert torch.allclose(ones, torch.ones_like(ones), atol=1e-12)  # padding keys carry no weight


def _dense_block(core: HashingCore, x: torch.Tensor) -> torch.Tensor:
    """Reference for HashingCore: x + res_scale * dense attention over all T*h*w tokens, with the core's convs."""
    batch, frames, channels, height, width = x.shape
    flat = x.flatten(0, 1)
    match = core.conv_match(flat).view(batch, frames, -1, height * width).permute(0, 1, 3, 2).flatten(1, 2)
    values = core.conv_assembly(flat).view(batch, frames, -1, height * width).permute(0, 1, 3, 2).flatten(1, 2)
    out = dense_attention(match, values).view(batch, frames, height, width, channels).permute(0, 1, 4, 2, 3)
    return x + core.res_scale * out


def test_hnam_and_hstnam_equal_dense_attention_when_one_chunk_holds_everything():
    hnam = HNAM(8, reduction=2, n_hashes=3, chunk_size=1000, res_scale=0.5, hash_seed=1).double().eval()
    x = torch.randn(2, 8, 6, 7, dtype=torch.float64)
    expected = _dense_block(hnam.core, x[:, None])[:, 0]
    assert (hnam(x) - expected).abs().max().item() < 1e-12

    hstnam = HSTNAM(8, reduction=2, n_hashes=3, chunk_size=1000, res_scale=0.5, hash_seed=1).double().train()
    clip = torch.randn(2, 3, 8, 6, 7, dtype=torch.float64)
    attended = _dense_block(hstnam.core, clip)  # dense over the 3*6*7 space-time tokens
    expected = hstnam.fuse(attended.flatten(1, 2)) + clip[:, 1]
    assert (hstnam(clip) - expected).abs().max().item() < 1e-12


def test_spatio_temporal_attention_crosses_frames():
    """The centre frame's attention output must depend on the neighbour frames (one hash set for all frames)."""
    core = HashingCore(8, reduction=2, n_hashes=2, chunk_size=16, res_scale=1.0, hash_seed=0).eval()
    clip = torch.randn(1, 3, 8, 6, 6)
    changed = clip.clone()
    changed[:, 0] = clip[:, 1] + 0.01 * torch.randn_like(clip[:, 1])  # near-copies hash into the same buckets
    centre, centre_changed = core(clip)[:, 1], core(changed)[:, 1]
    assert (centre - centre_changed).abs().max().item() > 1e-3
    assert torch.equal(clip[:, 1], changed[:, 1])


@pytest.mark.parametrize("size", [(4, 5), (1, 1), (2, 1), (13, 3)])
def test_hashing_attention_on_tiny_maps(size):
    """Spec §9.3: L < k and L < k/2 broke NLSA; here they run (default k = 144)."""
    hnam = HNAM(16, reduction=4, n_hashes=4, chunk_size=144, res_scale=0.1, hash_seed=0)
    hstnam = HSTNAM(16, reduction=4, n_hashes=4, chunk_size=144, res_scale=0.1, hash_seed=0)
    x = torch.randn(2, 3, 16, *size, requires_grad=True)
    out = hnam(x[:, 0]) + hstnam(x)
    out.sum().backward()
    assert out.shape == (2, 16, *size) and torch.isfinite(out).all() and torch.isfinite(x.grad).all()


def test_hash_rotations_are_seeded_in_eval_and_random_in_training():
    core = HashingCore(8, reduction=2, n_hashes=2, chunk_size=16, res_scale=1.0, hash_seed=3)
    core.eval()
    assert torch.equal(core.rotations(500, torch.device("cpu")), core.rotations(500, torch.device("cpu")))
    clip = torch.randn(1, 3, 8, 9, 9)
    assert torch.equal(core(clip), core(clip))
    core.train()
    assert not torch.equal(core.rotations(500, torch.device("cpu")), core.rotations(500, torch.device("cpu")))


# --- FFC / CGLFM / transformer on awkward sizes --------------------------------------------------------------


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (9, 16)])
def test_ffc_cglfm_and_transformer_run_on_any_size(size):
    ffc = FFC(16, 32, 0.75)
    cglfm = CGLFM(16, (16, 16, 32, 32, 32), 0.75)
    block = TransformerBlock(16, heads=2)
    x = torch.rand(2, 3, *size)
    features = cglfm(x)
    assert features.shape == (2, 16, *size)
    assert ffc(features).shape == (2, 32, *size)
    assert block(features).shape == (2, 16, *size)
    assert torch.isfinite(block(ffc(features)[:, :16])).all()


def test_fourier_unit_runs_in_float32_under_autocast():
    ffc = FFC(16, 16, 0.75)
    x = torch.rand(1, 16, 27, 45)  # not a power of two (spec §9.8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = ffc(x)
    assert torch.isfinite(out).all()
    assert (out.float() - ffc(x)).abs().max().item() < 0.1 * ffc(x).abs().max().item()


def test_instance_norm_matches_torch_and_accepts_one_pixel():
    norm = InstanceNorm2dAnySize(4)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.0, 2.0, 0.5, -1.0]))
        norm.bias.copy_(torch.tensor([0.0, 0.1, -0.2, 0.3]))
    reference = torch.nn.InstanceNorm2d(4, affine=True)
    reference.load_state_dict(norm.state_dict())
    x = torch.randn(3, 4, 5, 6)
    assert torch.allclose(norm(x), reference(x), atol=1e-5)
    assert torch.allclose(norm(torch.randn(3, 4, 1, 1))[..., 0, 0], norm.bias.expand(3, 4))


def test_ffc_without_channels_in_a_path_is_refused():
    with pytest.raises(ModelError, match="global_ratio"):
        FFC(1, 8, 0.75)  # one input channel: nothing left for the global path
