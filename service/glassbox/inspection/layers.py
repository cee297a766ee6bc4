"""Which models and layers inspection works on, and a layer's outputs over many images, batch by batch.

Inspection reads modules: their weights, their outputs through forward hooks, and gradients, which only
the torch backend has (an ONNX model exposes its [C, H, W] tensors to Score-CAM, but neither weights by
module nor gradients), so every inspection call on an ONNX model is FailedPrecondition naming `model`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from glassbox.backends.base import Model
from glassbox.backends.torch_backend import TorchModel
from glassbox.common.capture import LayerCapture
from glassbox.core.errors import FailedPrecondition, InvalidArgument

BATCH_IMAGES = 64
"""Images per forward pass when a layer is read over a dataset."""


def inspectable(model: Model, field: str = "model") -> TorchModel:
    """The model when its layers can be read (torch backend); FailedPrecondition otherwise."""
    if not isinstance(model, TorchModel) or not model.supports_gradients:
        raise FailedPrecondition(
            f"model {model.name!r} runs on {model.backend_name}; inspection needs a torch model (module "
            "weights, forward hooks and gradients)",
            field=field,
        )
    if not model.supports_layer_hooks or not model.layers:
        raise FailedPrecondition(
            f"model {model.name!r} lists no layers (a TorchScript module takes no hooks)", field=field
        )
    return model


def _is_container(name: str, names: set[str]) -> bool:
    return any(other.startswith(f"{name}.") for other in names)


def penultimate_layer(model: TorchModel) -> str:
    """The last leaf layer, in forward order, whose output is not the logits: the features the
    classifier reads (e.g. the shapes CNN's flattened pooled features, a ResNet's `avgpool`)."""
    names = {layer.name for layer in model.layers}
    for layer in reversed(model.layers):
        if _is_container(layer.name, names) or layer.output_shape == (model.num_classes,):
            continue
        return layer.name
    raise FailedPrecondition(f"model {model.name!r} has no layer before its logits", field="layer")


def output_shape(model: TorchModel, layer: str, field: str, dims: tuple[int, ...]) -> tuple[int, ...]:
    """The layer's output shape for one image; InvalidArgument naming `field` when the layer is
    unknown or its output has a number of dimensions not in `dims`."""
    if not layer:
        raise InvalidArgument("a layer name is required; GetModel lists them", field=field)
    shape = model.layer_info(layer, field=field).output_shape
    if len(shape) not in dims:
        wanted = " or ".join({1: "[C]", 2: "[T, C]", 3: "[C, H, W]"}[d] for d in dims)
        raise InvalidArgument(f"layer {layer!r} outputs {list(shape)}; this needs {wanted}", field=field)
    return shape


@dataclass(frozen=True)
class OutputBatch:
    """One batch of a layer read over images: the images' offset, the layer's outputs and the logits,
    both on the model's device, without gradients."""

    start: int
    outputs: torch.Tensor
    logits: torch.Tensor


def layer_batches(
    model: TorchModel,
    layer: str,
    images: torch.Tensor,
    *,
    batch: int = BATCH_IMAGES,
    after_batch: Callable[[int], None] | None = None,
) -> Iterator[OutputBatch]:
    """The layer's outputs (and the logits) for images [N, 3, H, W], `batch` images at a time.

    `after_batch(done)` is called after each batch (for progress and cancellation)."""
    with LayerCapture(model, [layer], need_logits=True) as capture, torch.no_grad():
        for start in range(0, images.shape[0], batch):
            chunk = images[start : start + batch].to(model.device, torch.float32)
            captured = capture.forward(chunk)
            assert captured.logits is not None
            yield OutputBatch(start, captured.layers[layer], captured.logits)
            if after_batch is not None:
                after_batch(min(start + batch, images.shape[0]))


def batch_count(images: int, batch: int = BATCH_IMAGES) -> int:
    return -(-images // batch)
