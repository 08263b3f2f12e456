"""VGG19 feature layers for the perceptual loss, defined here (no torchvision), loadable from a local file.

The layout is torchvision's ``vgg19().features`` (configuration "E" of Simonyan & Zisserman): 16 3x3 convolutions
in five blocks (2, 2, 4, 4, 4) with ReLU after each and 2x2 max pooling after each block, indices 0..36. So a
torchvision VGG19 ``state_dict`` file loads directly: keys ``features.N.weight`` / ``features.N.bias`` (a whole
model's state_dict; ``classifier.*`` keys are ignored) or ``N.weight`` (a ``features`` state_dict).

Layers are named ``conv{block}_{i}``, ``relu{block}_{i}``, ``pool{block}``; e.g. ``conv5_4`` is index 34 (the
pre-activation feature HDRTVNet's ``define_F`` uses, ``feature_layer=34``).

Nothing downloads: weights come from a path the caller gives. ReLUs are *not* in-place, so pre-activation
features stay intact when the next ReLU runs (torchvision's in-place ReLUs would overwrite them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from fmstf_data.errors import ModelError

_BLOCK_WIDTHS = ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512))
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _layer_names() -> list[str]:
    names = []
    for block, widths in enumerate(_BLOCK_WIDTHS, start=1):
        for i in range(1, len(widths) + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


VGG19_LAYERS: dict[str, int] = {name: index for index, name in enumerate(_layer_names())}
"""layer name -> index in ``features`` (``conv1_1`` 0 ... ``conv5_4`` 34, ``pool5`` 36)."""


def layer_index(name: str) -> int:
    """Index of a named VGG19 layer, e.g. ``layer_index('conv5_4') == 34``."""
    if name not in VGG19_LAYERS:
        raise ModelError(f"unknown VGG19 layer {name!r}; known: {', '.join(VGG19_LAYERS)}")
    return VGG19_LAYERS[name]


class VGG19Features(nn.Module):
    """``features[: last_layer + 1]`` of VGG19, frozen; ``x [B, 3, H, W]`` in [0, 1] -> the requested features.

    Inputs are normalised with the ImageNet mean and std first. Parameters never require gradients; the module
    stays in eval mode.

    Args:
        last_layer: index of the deepest layer needed (0..36); later layers are not built.
    """

    def __init__(self, last_layer: int = 36):
        super().__init__()
        if not 0 <= last_layer < len(VGG19_LAYERS):
            raise ModelError(f"last_layer must be in 0..{len(VGG19_LAYERS) - 1}, got {last_layer}")
        layers: list[nn.Module] = []
        in_channels = 3
        for widths in _BLOCK_WIDTHS:
            for width in widths:
                layers += [nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(inplace=False)]
                in_channels = width
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.features = nn.Sequential(*layers[: last_layer + 1])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN)[None, :, None, None], persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD)[None, :, None, None], persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG19Features:
        """Always stays in eval mode (frozen feature extractor)."""
        return super().train(False)

    def forward(self, x: Tensor, layers: Iterable[int]) -> dict[int, Tensor]:
        """Features ``{index: [B, c, h, w]}`` of the requested layer indices for ``x [B, 3, H, W]``."""
        wanted = set(layers)
        out: dict[int, Tensor] = {}
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in wanted:
                out[index] = x
                if len(out) == len(wanted):
                    break
        return out


_KEY = re.compile(r"^(?:features\.)?(\d+)\.(weight|bias)$")


def load_vgg19_features(path: str | Path, last_layer: int = 36) -> VGG19Features:
    """VGG19 features with weights from a local torchvision-style state_dict file (``torch.save`` format).

    Read with ``torch.load(weights_only=True)`` (no arbitrary unpickling). Keys ``features.N.*`` or ``N.*``;
    other keys (``classifier.*``) are ignored. Raises :class:`ModelError` when the file is missing or unreadable, or
    when a needed layer is missing or has the wrong shape.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"VGG19 weights file not found: {path}; pass an existing torchvision vgg19 state_dict file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or non-tensor files
        raise ModelError(f"cannot read VGG19 weights from {path}: {error}") from error
    if not isinstance(state, Mapping):
        raise ModelError(f"{path} holds a {type(state).__name__}, not a state_dict mapping of names to tensors")

    model = VGG19Features(last_layer)
    wanted = set(model.features.state_dict())
    selected: dict[str, Tensor] = {}
    for key, value in state.items():
        match = _KEY.match(str(key))
        if match and f"{match[1]}.{match[2]}" in wanted:
            selected[f"{match[1]}.{match[2]}"] = value
    missing = sorted(wanted - set(selected), key=lambda k: (int(k.split(".")[0]), k))
    if missing:
        raise ModelError(f"{path} lacks VGG19 feature weights {missing} (keys 'features.N.weight' or 'N.weight')")
    try:
        model.features.load_state_dict(selected, strict=True)
    except RuntimeError as error:
        raise ModelError(f"{path}: VGG19 weights do not fit the torchvision vgg19 layout: {error}") from error
    return model
