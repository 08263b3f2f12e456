"""FMSTFnet as a whole: shapes, tiny inputs, cross-frame dependence, recurrence, streaming, config, init, AMP."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from fmstf_data.errors import ModelError
from fmstf_model import FMSTFConfig, FMSTFnet, LaplacianPyramid
from fmstf_model.high_frequency import ResidualBlockNoBN


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def tiny_model() -> FMSTFnet:
    torch.manual_seed(0)
    return FMSTFnet(FMSTFConfig.tiny()).eval()


def test_output_pyramid_matches_the_target_pyramid_on_odd_sizes(tiny_model):
    """Spec §9.1: every Y_k has the shape of the ground truth's G_k (this catches eq. (3)'s off-by-one)."""
    clip = torch.rand(2, 3, 3, 67, 45)
    output = tiny_model(clip)
    reference = LaplacianPyramid(2).gaussian(torch.rand(2, 3, 67, 45))
    assert [y.shape for y in output.pyramid] == [g.shape for g in reference]
    assert output.state.shape == (2, 16, 17, 12)


@pytest.mark.parametrize("size", [(8, 8), (5, 7), (1, 1), (2, 3), (32, 40)])
def test_tiny_inputs_train_and_infer(size):
    model = FMSTFnet(FMSTFConfig.tiny())
    clip = torch.rand(2, 3, 3, *size)
    output = model(clip)
    output.pyramid[-1].mean().backward()
    assert output.pyramid[-1].shape == (2, 3, *size)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    assert torch.isfinite(model.predict(clip)).all()


def test_default_config_runs_on_a_small_odd_input():
    model = FMSTFnet(FMSTFConfig.default()).eval()
    output = model(torch.rand(1, 3, 3, 9, 11))
    assert [tuple(y.shape[-2:]) for y in output.pyramid] == [(2, 2), (3, 3), (5, 6), (9, 11)]


def test_every_parameter_gets_a_gradient():
    model = FMSTFnet(FMSTFConfig.tiny())
    # 128 px: the 32 px low level keeps every encoder stage above 1x1 (a 1x1 instance norm has no gradient)
    model(torch.rand(2, 3, 3, 128, 128)).pyramid[-1].mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_neighbour_frames_and_state_change_the_output(tiny_model):
    clip = torch.rand(1, 3, 3, 48, 48)
    base = tiny_model(clip)
    for frame in (0, 2):
        changed = clip.clone()
        changed[:, frame] = torch.rand_like(clip[:, frame])
        assert (tiny_model(changed).pyramid[-1] - base.pyramid[-1]).abs().max().item() > 1e-4
    other_state = tiny_model(clip, state=torch.randn_like(base.state))
    assert (other_state.pyramid[-1] - base.pyramid[-1]).abs().max().item() > 1e-4


def test_streaming_step_equals_the_unrolled_forward(tiny_model):
    model = copy.deepcopy(tiny_model).double()  # float64: equal up to rounding, so a tight tolerance
    video = torch.rand(1, 5, 3, 40, 36, dtype=torch.float64)
    stream = model.init_stream()
    outputs = []
    for t in [*range(5), None]:
        output, stream = model.step(None if t is None else video[:, t], stream)
        if output is not None:
            outputs.append(output)
    assert len(outputs) == 5 and stream.centre_feature is None

    def close(a, b):
        pairs = [*zip(a.pyramid, b.pyramid), (a.state, b.state)]
        return all(torch.allclose(x, y, rtol=1e-9, atol=1e-9) for x, y in pairs)

    first = model(video[:, 0:3])  # warm-up step on frame 0 (border replicated), then frame 1
    assert close(outputs[1], first)
    assert close(outputs[3], model(video[:, 0:5]))  # a 5-frame clip unrolls 4 steps
    assert close(outputs[2], model(video[:, 1:4], state=first.state))
    last_clip = torch.cat((video[:, 3:5], video[:, 4:5]), dim=1)  # end of video: next frame replicated
    assert close(outputs[4], model(last_clip, state=outputs[3].state))
    assert not close(outputs[1], outputs[2])


@pytest.mark.parametrize("config", [FMSTFConfig.tiny(), FMSTFConfig.default()], ids=["tiny", "default"])
def test_recurrent_state_stays_bounded_over_a_long_stream(config):
    model = FMSTFnet(config).eval()
    stream, sizes = model.init_stream(), []
    for _ in range(30):
        output, stream = model.step(torch.rand(1, 3, 32, 32), stream)
        if output is not None:
            sizes.append(output.state.abs().mean().item())
    assert max(sizes) < 10 * sizes[0]


def test_stream_frames_gives_one_clamped_frame_per_input(tiny_model):
    frames = [torch.rand(1, 3, 20, 24) for _ in range(4)]
    hdr = list(tiny_model.stream_frames(iter(frames)))
    assert len(hdr) == 4 and all(f.shape == (1, 3, 20, 24) and 0 <= f.min() and f.max() <= 1 for f in hdr)
    assert len(list(tiny_model.stream_frames(frames[:1]))) == 1


def test_state_none_does_not_depend_on_previous_calls(tiny_model):
    clip_a, clip_b = torch.rand(1, 3, 3, 32, 32), torch.rand(1, 3, 3, 32, 32)
    first = tiny_model(clip_a).pyramid[-1]
    tiny_model(clip_b)
    assert torch.equal(tiny_model(clip_a).pyramid[-1], first)


def test_carrying_the_state_across_training_steps_does_not_backprop_twice():
    model = FMSTFnet(FMSTFConfig.tiny())
    state = None
    for _ in range(2):
        output = model(torch.rand(1, 3, 3, 32, 32), state)
        output.pyramid[-1].mean().backward()
        state = output.state  # not detached by the caller on purpose
    assert state.requires_grad


def test_eval_outputs_are_deterministic_and_training_hashing_is_random():
    config = FMSTFConfig.tiny()
    clip = torch.rand(1, 3, 3, 64, 64)  # 16x16 low level: several chunks per hash round
    model = FMSTFnet(config).eval()
    assert torch.equal(model(clip).pyramid[-1], model(clip).pyramid[-1])
    model.train()
    assert not torch.equal(model(clip).pyramid[-1], model(clip).pyramid[-1])


def test_autocast_bfloat16_forward_and_backward():
    model = FMSTFnet(FMSTFConfig.tiny())
    clip = torch.rand(1, 3, 3, 36, 52)  # 9x13 low level: FFT sizes that are not powers of two
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = model(clip)
    output.pyramid[-1].float().mean().backward()
    assert torch.isfinite(output.pyramid[-1].float()).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize(
    "bad",
    [
        torch.rand(1, 3, 32, 32),
        torch.rand(1, 2, 3, 32, 32),
        torch.rand(1, 3, 4, 32, 32),
        torch.zeros(1, 3, 3, 8, 8).long(),
    ],
)
def test_forward_rejects_bad_clips(tiny_model, bad):
    with pytest.raises(ModelError, match="clip must be"):
        tiny_model(bad)


def test_forward_and_step_reject_mismatched_state_and_sizes(tiny_model):
    with pytest.raises(ModelError, match="state must have shape"):
        tiny_model(torch.rand(1, 3, 3, 32, 32), state=torch.zeros(1, 16, 4, 4))
    _, stream = tiny_model.step(torch.rand(1, 3, 32, 32), tiny_model.init_stream())
    with pytest.raises(ModelError, match="frame size changed"):
        tiny_model.step(torch.rand(1, 3, 64, 64), stream)


@pytest.mark.parametrize(
    "change",
    [
        {"channels": 0},
        {"channels": 18},  # not a multiple of reduction 4
        {"vit_heads": 3},
        {"encoder_channels": ()},
        {"ffc_global_ratio": 1.0},
        {"encoder_channels": (2, 16, 32, 32, 32)},  # FFC of 2 channels: one global channel
        {"pyramid_levels": -1},
        {"n_hashes": True},
        {"res_scale": float("nan")},
    ],
)
def test_config_validation_names_the_bad_value(change):
    with pytest.raises(ModelError):
        FMSTFConfig(**{**FMSTFConfig.tiny().to_dict(), **change})


def test_config_round_trip_and_unknown_keys():
    config = FMSTFConfig.tiny()
    assert FMSTFConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ModelError, match="unknown FMSTFConfig fields"):
        FMSTFConfig.from_dict({**config.to_dict(), "chanels": 8})


def test_msra_initialisation():
    model = FMSTFnet(FMSTFConfig.default())
    conv = model.cglfm.decoder[0][0]  # 3x3 conv with fan_in (128 + 128) * 9
    fan_in = conv.weight[0].numel()
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.05)
    assert all(m.bias is None or not m.bias.any() for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    block = next(m for m in model.modules() if isinstance(m, ResidualBlockNoBN))
    assert block.conv1.weight.std().item() == pytest.approx(0.1 * math.sqrt(2 / block.conv1.weight[0].numel()), rel=0.1)
    head = model.stfm.image_head
    assert head.weight.std().item() == pytest.approx(0.1 * math.sqrt(2 / head.weight[0].numel()), rel=0.1)
