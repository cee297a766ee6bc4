"""The interface every backend implements: a loaded model version that maps pixels to logits.

Inputs are always float32 RGB [B, 3, H, W] in [0, 1] at the model's input size (the pixel contract);
normalisation happens inside the backend, so callers never see normalised tensors.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from glassbox.core.errors import FailedPrecondition, InvalidArgument, echo
from glassbox.core.model_config import ModelConfig
from glassbox.core.reasons import Reason


@dataclass(frozen=True)
class LayerInfo:
    """A named layer that layer-based requests accept."""

    name: str
    kind: str
    output_shape: tuple[int, ...]  # one image, batch dimension excluded
    cam_compatible: bool


class Model(ABC):
    """A loaded, ready model version.

    What a backend can do beyond logits is asked of the model, never read off its class:
    `supports_gradients` (`differentiable()`), `supports_layer_hooks` (`submodule`, `hooked_network`:
    modules that take forward hooks), `supports_layer_outputs` (`logits_and_layer`). The methods that
    cannot run raise FailedPrecondition naming the backend.
    """

    backend_name: str
    supports_gradients: bool
    supports_layer_outputs: bool = False
    """Whether `logits_and_layer` reads a layer's output in the logits' pass."""

    def __init__(self, name: str, version: str, config: ModelConfig, weights_digest: str) -> None:
        self.name = name
        self.version = version
        self.config = config
        self.weights_digest = weights_digest

    @property
    def labels(self) -> tuple[str, ...]:
        return self.config.labels

    @property
    def num_classes(self) -> int:
        return len(self.config.labels)

    @property
    @abstractmethod
    def device(self) -> torch.device:
        """Where the computation runs."""

    @property
    @abstractmethod
    def layers(self) -> list[LayerInfo]:
        """Layers usable by name, in forward order."""

    @abstractmethod
    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pre-softmax scores [B, classes] for pixels [B, 3, H, W] in [0, 1]; no gradients, on the CPU."""

    @property
    def forward_engine(self) -> str:
        """The engine of `logits` (GetModel shows it): "torch", "torch-channels_last" or "onnxruntime"."""
        return self.backend_name

    def amplifying_logits(self, pixels: torch.Tensor) -> torch.Tensor:
        """`logits` for methods whose maps amplify logit differences (Score-CAM's softmax over channels
        turns a 1e-4 logit difference into a 1e-4 relative weight change): an engine whose rounding they
        cannot see. By default the one engine there is."""
        return self.logits(pixels)

    def differentiable(self) -> torch.nn.Module:
        """A torch module pixels → logits that gradients flow through (torch backend only)."""
        raise FailedPrecondition(
            f"model {self.name!r} version {self.version!r} runs on {self.backend_name}, "
            "which computes no gradients",
            field="model",
            reason=Reason.METHOD_NOT_SUPPORTED,
            metadata={"model": self.name, "version": self.version},
        )

    @property
    def supports_layer_hooks(self) -> bool:
        """Whether the layers are modules that take forward hooks (`submodule`, `hooked_network`)."""
        return False

    def submodule(self, name: str) -> torch.nn.Module:
        """The network's module called `name` (names as listed by `layers`); hookable backends only."""
        raise self._no_hooks()

    def hooked_network(self, layer: str) -> tuple[torch.nn.Module, torch.nn.Module]:
        """(network pixels → logits, its module called `layer`) for a method that hooks that layer and
        the ReLUs; hookable backends only."""
        raise self._no_hooks()

    def logits_and_layer(self, pixels: torch.Tensor, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits [B, classes] (CPU) and the layer's output [B, ...] of one no-grad pass."""
        raise FailedPrecondition(
            f"model {self.name!r} version {self.version!r} runs on {self.backend_name}, "
            "which exposes no layer outputs",
            field="model",
            reason=Reason.METHOD_NOT_SUPPORTED,
            metadata={"model": self.name, "version": self.version},
        )

    def _no_hooks(self) -> FailedPrecondition:
        return FailedPrecondition(
            f"model {self.name!r} version {self.version!r} runs on {self.backend_name}, "
            "whose layers take no hooks",
            field="model",
            reason=Reason.METHOD_NOT_SUPPORTED,
            metadata={"model": self.name, "version": self.version},
        )

    def input_gradient_network(self) -> torch.nn.Module:
        """A module equal to `differentiable()` up to float rounding, for methods that need only the
        gradient at the input (hooks on its ReLUs allowed, on other layers not); possibly cheaper."""
        return self.differentiable()

    def layer_info(self, name: str, *, field: str = "layer") -> LayerInfo:
        """Look a layer up by name; InvalidArgument naming the field when it does not exist."""
        for info in self.layers:
            if info.name == name:
                return info
        raise InvalidArgument(
            f"model {self.name!r} has no layer {echo(name)}; GetModel lists the layer names",
            field=field,
            reason=Reason.LAYER_NOT_FOUND,
            metadata={"model": self.name, "layer": name},
        )
