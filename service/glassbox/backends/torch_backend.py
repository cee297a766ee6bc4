"""The torch backend: eager modules or TorchScript, forward and gradients, normalisation inside."""

from __future__ import annotations

import functools
import threading

import torch
from torch import nn

from glassbox.backends.activations import ActivationSite, activation_sites
from glassbox.backends.base import LayerInfo, Model
from glassbox.backends.batchnorm_folding import fold_batchnorm
from glassbox.core.model_config import ExplainMode, ModelConfig


class NormalizedModel(nn.Module):
    """pixels in [0, 1] → logits: applies the model's mean/std, then the network."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, net: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.net((pixels - self.mean) / self.std)


class TorchModel(Model):
    """A torch nn.Module (eager or TorchScript) served with gradients.

    On a CPU, convolution weights are kept channels_last: oneDNN's convolutions and their backward run
    faster in that layout (resnet18 at 224², 50 input gradients in batches of 10: 1.22 s against 1.43 s
    contiguous), and the layout changes no value beyond float rounding. The input-gradient methods get a
    copy with BatchNorm folded into the convolutions (`batchnorm_folding`), 26% cheaper on resnet18.
    In exact mode (`[explain] mode = "exact"`) neither happens: the network is served as the user built it.
    """

    backend_name = "torch"
    supports_gradients = True
    supports_layer_outputs = True

    def __init__(
        self,
        name: str,
        version: str,
        config: ModelConfig,
        weights_digest: str,
        net: nn.Module,
        device: torch.device,
    ) -> None:
        super().__init__(name, version, config, weights_digest)
        self._device = device
        self.module = NormalizedModel(net.eval(), config.mean, config.std).to(device).eval()
        exact = config.mode is ExplainMode.EXACT
        if not exact and device.type == "cpu" and any(isinstance(m, nn.Conv2d) for m in net.modules()):
            self.module.to(memory_format=torch.channels_last)
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)
        self._layers = _discover_layers(self.module.net, config, device)
        foldable = config.fold_batchnorm and not exact and not isinstance(net, torch.jit.ScriptModule)
        folded = fold_batchnorm(self.module.net) if foldable else None
        self._input_gradient_module = self.module
        self._folded_convolutions: frozenset[str] = frozenset()
        if folded is not None:
            network = NormalizedModel(folded.network, config.mean, config.std).to(device).eval()
            self._input_gradient_module = network
            self._folded_convolutions = folded.changed_layers

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def layers(self) -> list[LayerInfo]:
        return self._layers

    @property
    def forward_engine(self) -> str:
        return "torch"

    @torch.inference_mode()
    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.module(pixels.to(self._device, torch.float32)).float().cpu()

    def differentiable(self) -> nn.Module:
        return self.module

    @functools.cached_property
    def activations(self) -> tuple[ActivationSite, ...]:
        """Every activation the network runs, in forward order (`backends.activations`): what the guided
        ReLU rules change and what they leave alone. The folded copy runs the same ones."""
        return activation_sites(self.module.net)

    def input_gradient_network(self) -> nn.Module:
        return self._input_gradient_module

    @property
    def supports_layer_hooks(self) -> bool:
        """Eager modules take hooks; TorchScript modules do not (and list no layers)."""
        return not isinstance(self.module.net, torch.jit.ScriptModule)

    def logits_and_layer(self, pixels: torch.Tensor, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits [B, classes] (CPU) and the layer's output [B, ...] (on the device) of one no-grad pass.
        The hook records only this thread's pass (a unit runs on one thread without yielding)."""
        module = self.submodule(layer)
        thread = threading.get_ident()
        captured: list[torch.Tensor] = []

        def record(_module: nn.Module, _inputs: object, output: object) -> None:
            if threading.get_ident() == thread and isinstance(output, torch.Tensor):
                captured.append(output.clone())

        handle = module.register_forward_hook(record)
        try:
            with torch.inference_mode():
                logits = self.module(pixels.to(self._device, torch.float32))
        finally:
            handle.remove()
        return logits.float().cpu(), captured[-1]

    def submodule(self, name: str) -> nn.Module:
        """The network's module called `name` (names as listed by `layers`)."""
        self.layer_info(name)
        return self.module.net.get_submodule(name)

    def hooked_network(self, layer: str) -> tuple[nn.Module, nn.Module]:
        """(network, its module called `layer`) for a method that hooks that layer and the ReLUs: the
        BatchNorm-folded network, unless `layer` is one of the convolutions whose output the fold changed."""
        self.layer_info(layer)
        network = self._input_gradient_module
        if layer in self._folded_convolutions or network is self.module:
            return self.module, self.module.net.get_submodule(layer)
        return network, network.net.get_submodule(layer)


def _discover_layers(net: nn.Module, config: ModelConfig, device: torch.device) -> list[LayerInfo]:
    """Run one zero image through the net with hooks on every named module to learn output shapes.

    TorchScript modules take no hooks, so they list no layers (layer-based methods are then unavailable).
    """
    if isinstance(net, torch.jit.ScriptModule):
        return []
    shapes: dict[str, tuple[int, ...]] = {}
    order: list[tuple[str, str]] = []
    handles = []
    for name, module in net.named_modules():
        if not name:
            continue

        def hook(_module: nn.Module, _inputs: object, output: object, name: str = name) -> None:
            if isinstance(output, torch.Tensor) and name not in shapes:
                shapes[name] = tuple(output.shape[1:])

        order.append((name, type(module).__name__))
        handles.append(module.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            net(torch.zeros(1, 3, config.input.height, config.input.width, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return [
        LayerInfo(name=name, kind=kind, output_shape=shapes[name], cam_compatible=len(shapes[name]) in (2, 3))
        for name, kind in order
        if name in shapes
    ]
