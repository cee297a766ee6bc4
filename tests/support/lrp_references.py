"""Zennit 1.0 and Captum 0.9 LRP references on the served networks, set up as Glassbox defines LRP.

Glassbox passes relevance through the model's normalisation unchanged, so the references run on the
network without it, on normalised inputs, and the z^B box is [0, 1] mapped through the normalisation.
Canonizers are Zennit's own: `ResNetCanonizer` (BatchNorm merged, residual sums), `VGGCanonizer`,
`SequentialMergeBatchNorm` on the demo CNN; on DenseNet `NamedMergeBatchNorm` with the true
convolution → BatchNorm pairs (`SequentialMergeBatchNorm` would merge each dense layer's last convolution
into the next layer's first BatchNorm, which reads the concatenation) and an `AttributeCanonizer` that
makes DenseNet's functional ReLU and average pooling modules, so that rules attach to them as they do in
Glassbox's traced canonisation.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision
from captum.attr import LRP
from captum.attr._utils.lrp_rules import EpsilonRule
from glassbox.core.model_config import load_config
from glassbox.models.architectures import build_architecture
from safetensors.torch import load_file
from torch import nn
from zennit.attribution import Gradient
from zennit.canonizers import AttributeCanonizer, Canonizer, NamedMergeBatchNorm, SequentialMergeBatchNorm
from zennit.composites import (
    EpsilonAlpha2Beta1,
    EpsilonGammaBox,
    EpsilonPlusFlat,
    SpecialFirstLayerMapComposite,
    layer_map_base,
)
from zennit.core import Composite
from zennit.rules import Epsilon, Gamma, ZBox
from zennit.torchvision import ResNetCanonizer, VGGCanonizer

from support.gradient_harness import ARCHITECTURES


class DenseNetTailCanonizer(AttributeCanonizer):
    """DenseNet's `F.relu` and `F.adaptive_avg_pool2d` after the features made modules."""

    def __init__(self) -> None:
        super().__init__(self._attribute_map)

    @classmethod
    def _attribute_map(cls, name: str, module: nn.Module) -> dict | None:
        if isinstance(module, torchvision.models.DenseNet):
            return {
                "forward": cls.forward.__get__(module),
                "tail_relu": nn.ReLU(),
                "tail_pool": nn.AdaptiveAvgPool2d(1),
            }
        return None

    @staticmethod
    def forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.tail_pool(self.tail_relu(self.features(x))), 1))


def canonizers(model: str, net: nn.Module) -> list[Canonizer]:
    if model == "resnet":
        return [ResNetCanonizer()]
    if model == "vgg":
        return [VGGCanonizer()]
    if model == "densenet":
        pairs = [(["features.conv0"], "features.norm0")] + [
            ([f"{name}.conv1"], f"{name}.norm2")
            for name, module in net.named_modules()
            if type(module).__name__ == "_DenseLayer"
        ]
        return [NamedMergeBatchNorm(pairs), DenseNetTailCanonizer()]
    return [SequentialMergeBatchNorm()]


class Reference:
    """The served network without its normalisation (read from the repository's files, in the layout
    the server keeps on a CPU: channels_last), and the images normalised as the model does."""

    def __init__(self, repository: Path, model: str, images: torch.Tensor) -> None:
        folder = repository / model / "1"
        config = load_config(folder)
        net = build_architecture(ARCHITECTURES[model], len(config.labels))
        net.load_state_dict(load_file(str(folder / config.weights)))
        self.net = net.eval().to(memory_format=torch.channels_last).requires_grad_(False)
        for module in self.net.modules():
            if isinstance(module, nn.ReLU):
                module.inplace = False  # Zennit's and Captum's hooks need out-of-place ReLUs
        self.model = model
        mean = torch.tensor(config.mean).view(1, 3, 1, 1)
        std = torch.tensor(config.std).view(1, 3, 1, 1)
        self.inputs = (images - mean) / std
        self.low = ((0.0 - mean) / std).expand_as(self.inputs)
        self.high = ((1.0 - mean) / std).expand_as(self.inputs)

    def composite(self, name: str) -> Composite:
        made = canonizers(self.model, self.net)
        if name == "epsilon_plus_flat":
            return EpsilonPlusFlat(canonizers=made)
        if name == "epsilon_gamma_box":
            return EpsilonGammaBox(low=self.low, high=self.high, canonizers=made)
        if name == "epsilon_alpha2_beta1":
            return EpsilonAlpha2Beta1(canonizers=made)
        if name == "gamma_box":  # the uniform composite: gamma everywhere, z^B first
            return SpecialFirstLayerMapComposite(
                layer_map=[*layer_map_base(), (nn.Conv2d, Gamma(gamma=0.5)), (nn.Linear, Gamma(gamma=0.5))],
                first_map=[(nn.Conv2d, ZBox(low=self.low, high=self.high))],
                canonizers=made,
            )
        if name == "epsilon":
            return SpecialFirstLayerMapComposite(
                layer_map=[*layer_map_base(), (nn.Conv2d, Epsilon(0.01)), (nn.Linear, Epsilon(0.01))],
                first_map=[],
                canonizers=made,
            )
        raise ValueError(name)

    def zennit(self, composite: str, target: int, inputs: torch.Tensor | None = None) -> torch.Tensor:
        x = (self.inputs if inputs is None else inputs).clone().requires_grad_(True)
        with torch.no_grad():
            classes = self.net(x[:1]).shape[1]
        one_hot = torch.zeros(x.shape[0], classes)
        one_hot[:, target] = 1.0
        with Gradient(model=self.net, composite=self.composite(composite)) as attributor:
            _, relevance = attributor(x, one_hot)
        return relevance

    def captum(self, target: int) -> torch.Tensor:
        """captum.attr.LRP with its default rules; Flatten has none, so it gets ε (identity up to 1e-9)."""
        net = copy.deepcopy(self.net)
        for module in net.modules():
            if isinstance(module, nn.Flatten):
                module.rule = EpsilonRule()
        return LRP(net).attribute(self.inputs.clone(), target=target).detach()


def noisy(reference: Reference, noise: Callable[[int], torch.Tensor], samples: int) -> list[torch.Tensor]:
    """The normalised inputs of SmoothGrad's samples: (pixels + noise − mean) / std = inputs + noise / std."""
    per_pixel = (reference.high - reference.low)[:1]  # 1 / std
    return [reference.inputs + noise(s) * per_pixel for s in range(samples)]
