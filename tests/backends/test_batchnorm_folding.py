"""BatchNorm folded into convolutions: same logits and input gradients, only safe pairs folded."""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from glassbox.backends.batchnorm_folding import conv_batchnorm_pairs, fold_batchnorm
from glassbox.models.architectures import build_architecture
from glassbox.models.repository import ModelRepository
from support.model_repository import write_model_version
from torch import nn


def trained_like(net: nn.Module) -> nn.Module:
    """Random BatchNorm statistics and affine parameters, so that a wrong fold shows."""
    generator = torch.Generator().manual_seed(0)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.3)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.2)
    return net.eval()


def input_gradient(net: nn.Module, x: torch.Tensor, target: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.clone().requires_grad_(True)
    logits = net(x)
    (grad,) = torch.autograd.grad(logits[:, target].sum(), x)
    return logits.detach(), grad


def test_folded_networks_give_the_same_logits_and_input_gradients() -> None:
    """In float64, so that no ReLU or max-pool near-tie flips under float32 rounding (on random-weight
    resnets a rounding-level change, such as channels_last against contiguous, moves a few images'
    input gradients by up to 2% of their maximum through such flips)."""
    torch.manual_seed(0)
    for net, size in (
        (torchvision.models.resnet18(), 224),
        (build_architecture("glassbox.shapes_cnn", 6), 64),
    ):
        net = trained_like(net).double()
        fold = fold_batchnorm(net)
        assert fold is not None
        folded = fold.network
        assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
        assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules()), "the original is left as trained"
        x = torch.rand(3, 3, size, size, dtype=torch.float64)
        logits, grad = input_gradient(net, x, 2)
        folded_logits, folded_grad = input_gradient(folded, x, 2)
        assert (folded_logits - logits).abs().max() <= 1e-12 * logits.abs().max()
        assert (folded_grad - grad).abs().max() <= 1e-12 * grad.abs().max()


def test_resnet18_folds_every_convolution_batchnorm_pair() -> None:
    pairs = conv_batchnorm_pairs(torchvision.models.resnet18())
    assert len(pairs) == 20 and ("conv1", "bn1") in pairs and ("layer4.1.conv2", "layer4.1.bn2") in pairs


class SharedConvOutput(nn.Module):
    """The convolution's output feeds the BatchNorm and a skip: folding would change the skip."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.bn(y) + y


class Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
            x = -x
        return self.bn(self.conv(x))


def test_unsafe_or_untraceable_networks_are_not_folded() -> None:
    assert conv_batchnorm_pairs(SharedConvOutput()) == []
    assert fold_batchnorm(SharedConvOutput().eval()) is None
    assert fold_batchnorm(Untraceable().eval()) is None


def test_layer_hooks_run_on_the_folded_network_except_at_a_folded_convolution(tmp_path: Path) -> None:
    write_model_version(tmp_path, "shapes", "1")
    write_model_version(tmp_path, "plain", "1", extra_toml="[explain]\nfold_batchnorm = false\n")
    repository = ModelRepository(tmp_path, device=torch.device("cpu"))
    repository.load_all()
    model = repository.get("shapes")
    folded = model.input_gradient_network()
    assert folded is not model.differentiable()
    network, relu = model.hooked_network("features.14")
    assert network is folded and relu is folded.net.get_submodule("features.14")
    network, conv = model.hooked_network("features.0")
    assert network is model.differentiable() and isinstance(conv, nn.Conv2d)
    plain = repository.get("plain")
    assert plain.input_gradient_network() is plain.differentiable()
    assert plain.hooked_network("features.14")[0] is plain.differentiable()
