"""Architectures by name: the weights formats that store only tensors (safetensors, state_dict) need one.

`glassbox.*` names are built in here; any other name is a torchvision classification architecture,
always built with `weights=None` (weights come from the model repository, never from the internet).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

SHAPES_CNN_WIDTHS: tuple[int, ...] = (16, 32, 64, 128)
"""Channels of the shapes CNN's conv blocks; every block but the last halves the resolution."""


class ShapesCNN(nn.Module):
    """The demo CNN: Conv-BN-ReLU blocks with max-pooling, then global average pooling and a linear layer.

    `features` is one flat `nn.Sequential`, so every layer has a short dotted name (`features.14` is the
    last ReLU, whose 8×8 output at 64×64 input is the Grad-CAM layer). The ReLUs are in-place on purpose:
    explanation methods that hook ReLUs (guided backprop) must cope with that common pattern.
    """

    def __init__(self, num_classes: int, widths: tuple[int, ...] = SHAPES_CNN_WIDTHS) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for i, out_channels in enumerate(widths):
            layers += [
                nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            ]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_channels, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [N, num_classes] for normalised images [N, 3, H, W]."""
        return self.classifier(self.features(x))


SHAPES_CNN_CAM_LAYER = f"features.{4 * len(SHAPES_CNN_WIDTHS) - 2}"
"""Name of `ShapesCNN`'s last ReLU (the last conv block's output): the default Grad-CAM layer."""


def tiny_vit(num_classes: int, **kwargs: Any) -> nn.Module:
    """A small torchvision VisionTransformer (64×64 input, 8×8 patches, 2 layers, 2 heads, hidden 64):
    the token-layer case of the layer-based methods, fast enough for tests."""
    from torchvision.models import VisionTransformer  # deferred, as below

    options = {
        "image_size": 64,
        "patch_size": 8,
        "num_layers": 2,
        "num_heads": 2,
        "hidden_dim": 64,
        "mlp_dim": 128,
    }
    model = VisionTransformer(**{**options, **kwargs}, num_classes=num_classes)
    model.heads.head.reset_parameters()  # torchvision zeroes the head: untrained, every class would score 0
    return model


_BUILTINS: dict[str, Callable[..., nn.Module]] = {
    "glassbox.shapes_cnn": ShapesCNN,
    "glassbox.tiny_vit": tiny_vit,
}


def architecture_names() -> list[str]:
    """The built-in (`glassbox.*`) architecture names; torchvision names are accepted besides these."""
    return sorted(_BUILTINS)


def build_architecture(name: str, num_classes: int, **kwargs: Any) -> nn.Module:
    """Build an untrained network by name, with `num_classes` outputs.

    Built-in names map to the classes above; anything else goes to
    `torchvision.models.get_model(name, weights=None, ...)`. Raises `ValueError` for an unknown name.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    if name in _BUILTINS:
        return _BUILTINS[name](num_classes, **kwargs)
    import torchvision  # deferred: importing it costs a second and only non-builtin names need it

    if name not in torchvision.models.list_models(module=torchvision.models):
        raise ValueError(
            f"unknown architecture {name!r}: use one of the built-ins {architecture_names()} "
            "or a torchvision classification model name (e.g. 'resnet18')"
        )
    return torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)
