"""FMSTFnet loss: per-level weighting of the pyramid L1, and the VGG19 perceptual term loaded from a local file."""

from __future__ import annotations

import logging

import pytest
import torch

from fmstf_data.errors import ModelError
from fmstf_model import FMSTFLoss, LaplacianPyramid
from fmstf_model.losses import REAL_ESRGAN_LAYERS
from fmstf_model.vgg import VGG19_LAYERS, VGG19Features, layer_index, load_vgg19_features


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _offset_pyramid(target: torch.Tensor, levels: int, offsets: list[float]) -> list[torch.Tensor]:
    """The target's Gaussian pyramid with level k shifted by offsets[k] (alternating sign per pixel)."""
    gaussian = LaplacianPyramid(levels).gaussian(target)
    out = []
    for level, offset in zip(gaussian, offsets):
        signs = torch.where(torch.rand_like(level) < 0.5, -1.0, 1.0).to(level.dtype)
        out.append(level + offset * signs)
    return out


def test_equal_per_level_errors_contribute_equally():
    """Spec §9.12: a per-level mean, not a per-pixel sum (which would let the 64x64 level dominate)."""
    target = torch.rand(2, 3, 64, 64, dtype=torch.float64)
    prediction = _offset_pyramid(target, 2, [0.1, 0.1, 0.1])
    for k in range(3):
        one_hot = [1.0 if i == k else 0.0 for i in range(3)]
        terms = FMSTFLoss(2, perceptual_weight=0, level_weights=one_hot)(prediction, target)
        assert terms.reconstruction.item() == pytest.approx(0.1, abs=1e-12)
    assert FMSTFLoss(2, perceptual_weight=0)(prediction, target).total.item() == pytest.approx(0.3, abs=1e-12)
    weighted = FMSTFLoss(2, perceptual_weight=0, level_weights=[1.0, 2.0, 3.0], reconstruction_weight=0.5)
    assert weighted(prediction, target).total.item() == pytest.approx(0.5 * 0.6, abs=1e-12)


def test_loss_refuses_a_pyramid_of_the_wrong_shape():
    target = torch.rand(1, 3, 33, 35)
    pyramid = LaplacianPyramid(2).gaussian(target)
    with pytest.raises(ModelError, match="do not match"):
        FMSTFLoss(2, perceptual_weight=0)(pyramid[1:] + pyramid[-1:], target)  # shifted by one level
    with pytest.raises(ModelError, match="level_weights"):
        FMSTFLoss(2, level_weights=[1.0, 1.0])


def test_without_vgg_weights_the_perceptual_term_is_off_and_said_once(caplog):
    target = torch.rand(1, 3, 64, 64)
    prediction = _offset_pyramid(target, 2, [0.1, 0.2, 0.3])
    with caplog.at_level(logging.INFO, logger="fmstf_model.losses"):
        loss = FMSTFLoss(2)
        terms = [loss(prediction, target) for _ in range(3)]
    assert not loss.perceptual_enabled
    assert all(t.perceptual.item() == 0 and t.total.item() == pytest.approx(0.6, abs=1e-6) for t in terms)
    messages = [r.getMessage() for r in caplog.records if "perceptual loss off" in r.getMessage()]
    assert len(messages) == 1


def test_vgg19_layout_matches_torchvision():
    """torchvision vgg19().features: convs at these indices, max pools after each block, 37 layers."""
    model = VGG19Features()
    convs = [i for i, layer in enumerate(model.features) if isinstance(layer, torch.nn.Conv2d)]
    pools = [i for i, layer in enumerate(model.features) if isinstance(layer, torch.nn.MaxPool2d)]
    assert convs == [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
    assert pools == [4, 9, 18, 27, 36] and len(model.features) == len(VGG19_LAYERS) == 37
    state = model.features.state_dict()
    assert state["0.weight"].shape == (64, 3, 3, 3) and state["34.weight"].shape == (512, 512, 3, 3)
    assert layer_index("conv5_4") == 34 and layer_index("conv3_4") == 16
    assert not any(p.requires_grad for p in model.parameters())


def test_perceptual_loss_loads_a_torchvision_style_file(tmp_path):
    source = VGG19Features()  # random weights stand in for ImageNet ones
    state = {f"features.{k}": v for k, v in source.features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4, 4)  # a whole-model state_dict: classifier keys are ignored
    path = tmp_path / "vgg19.pth"
    torch.save(state, path)

    loss = FMSTFLoss(2, perceptual_weight=0.5, vgg_weights_path=path)
    assert loss.perceptual_enabled and len(loss.vgg.features) == 35  # built up to conv5_4 only
    assert torch.equal(loss.vgg.features[34].weight, source.features[34].weight)

    target = torch.rand(1, 3, 64, 64)
    exact = LaplacianPyramid(2).gaussian(target)
    assert loss(exact, target).perceptual.item() == 0.0
    prediction = [level.clone().requires_grad_(True) for level in _offset_pyramid(target, 2, [0.05, 0.05, 0.05])]
    terms = loss(prediction, target)
    assert terms.perceptual.item() > 0
    assert terms.total.item() == pytest.approx(terms.reconstruction.item() + 0.5 * terms.perceptual.item(), rel=1e-6)
    terms.total.backward()
    # level 0 (16x16) is under the 32 px minimum: only its L1 term gives it a gradient
    assert prediction[0].grad.abs().max().item() == pytest.approx(1 / prediction[0].numel(), rel=1e-4)
    assert prediction[2].grad.abs().max().item() > 1 / prediction[2].numel()
    assert all(p.grad is None for p in loss.vgg.parameters())


def test_perceptual_loss_with_plain_keys_and_several_layers(tmp_path):
    source = VGG19Features(last_layer=layer_index("conv4_4"))
    path = tmp_path / "features.pt"
    torch.save(source.features.state_dict(), path)  # keys "N.weight"
    with pytest.raises(ModelError, match="lacks VGG19 feature weights"):
        FMSTFLoss(1, vgg_weights_path=path)  # default conv5_4 is not in the file
    layers = {name: weight for name, weight in REAL_ESRGAN_LAYERS.items() if name != "conv5_4"}
    loss = FMSTFLoss(1, vgg_weights_path=path, vgg_layers=layers)
    target = torch.rand(2, 3, 40, 48)
    terms = loss(_offset_pyramid(target, 1, [0.1, 0.1]), target)
    assert terms.perceptual.item() > 0
    features = loss.vgg(target, [layer_index("conv4_4")])[layer_index("conv4_4")]
    assert (features < 0).any()  # pre-ReLU feature: not clobbered by an in-place ReLU


def test_bad_vgg_files_raise_model_errors(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_vgg19_features(tmp_path / "missing.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(ModelError, match="cannot read"):
        load_vgg19_features(garbage)
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(8, 3, 3, 3), "features.0.bias": torch.zeros(8)}, wrong)
    with pytest.raises(ModelError, match="do not fit"):
        load_vgg19_features(wrong, last_layer=0)
