"""A layer's response to images: feature maps ranked by mean activation (GetActivations) and outputs
pooled to one vector per image (Embed, and the embedding map's input)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import torch

from glassbox.backends.torch_backend import TorchModel
from glassbox.core.errors import InvalidArgument
from glassbox.inspection.layers import layer_batches, output_shape, penultimate_layer


class Pooling(StrEnum):
    MEAN = "mean"  # over spatial positions or tokens
    MAX = "max"
    FLATTEN = "flatten"  # no pooling: the whole output as one vector


@dataclass(frozen=True)
class RankedActivations:
    """Feature maps [K, H, W] of the returned channels, highest mean first, with their summaries."""

    channels: torch.Tensor  # int64 [K], channel indices
    maps: torch.Tensor  # float32 [K, H, W]
    means: torch.Tensor  # float32 [K]
    maxima: torch.Tensor  # float32 [K]
    layer_channels: int


def ranked_activations(model: TorchModel, layer: str, image: torch.Tensor, top_k: int) -> RankedActivations:
    """The layer's output for one image [3, H, W], channels ranked by mean activation (ties: lower index
    first), only the first `top_k` when it is above 0. A [C] output counts as C maps of 1×1."""
    shape = output_shape(model, layer, "layer", (1, 3))
    if not 0 <= top_k <= shape[0]:
        raise InvalidArgument(f"must be in 0..{shape[0]} (the layer's channels), got {top_k}", field="top_k")
    (batch,) = layer_batches(model, layer, image[None])
    maps = batch.outputs[0].float().cpu()
    if maps.dim() == 1:
        maps = maps[:, None, None]
    means = maps.flatten(1).mean(1)
    order = torch.from_numpy((-means).numpy().argsort(kind="stable"))
    if top_k:
        order = order[:top_k]
    chosen = maps[order]
    return RankedActivations(
        channels=order,
        maps=chosen,
        means=means[order],
        maxima=chosen.flatten(1).amax(1),
        layer_channels=shape[0],
    )


def pool(outputs: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """Outputs [B, C, H, W], [B, T, C] or [B, C] as vectors [B, D]."""
    if pooling is Pooling.FLATTEN or outputs.dim() == 2:
        return outputs.flatten(1)
    reduce = torch.mean if pooling is Pooling.MEAN else torch.amax
    if outputs.dim() == 3:  # tokens [B, T, C]
        return reduce(outputs, dim=1)
    return reduce(outputs.flatten(2), dim=2)


@dataclass(frozen=True)
class Embeddings:
    """Pooled outputs [N, D] of `layer` and the model's predicted class of each image."""

    layer: str
    vectors: torch.Tensor
    predictions: torch.Tensor


MAX_EMBEDDING_VALUES = 1 << 24
"""Most values (images × vector length) one embedding may hold: 64 MiB of float32."""


def embedding_layer(model: TorchModel, layer: str, field: str = "layer") -> str:
    """`layer`, checked, or the penultimate layer when it is empty."""
    chosen = layer or penultimate_layer(model)
    output_shape(model, chosen, field, (1, 2, 3))
    return chosen


def check_embedding_size(model: TorchModel, layer: str, pooling: Pooling, images: int) -> None:
    """InvalidArgument naming `pooling` when the vectors of `images` images would be too large."""
    shape = model.layer_info(layer).output_shape
    length = math.prod(shape) if pooling is Pooling.FLATTEN else shape[-1] if len(shape) == 2 else shape[0]
    if images * length > MAX_EMBEDDING_VALUES:
        raise InvalidArgument(
            f"{images} vectors of {length} values is over the limit of {MAX_EMBEDDING_VALUES}; "
            "pool by mean or max, or use a later layer",
            field="pooling",
        )


def embed(
    model: TorchModel,
    layer: str,
    images: torch.Tensor,
    pooling: Pooling,
    *,
    after_batch: Callable[[int], None] | None = None,
) -> Embeddings:
    """Pooled outputs of `layer` (already checked) for images [N, 3, H, W]; `after_batch(done)` is called
    after each forward batch."""
    vectors, predictions = [], []
    for batch in layer_batches(model, layer, images, after_batch=after_batch):
        vectors.append(pool(batch.outputs.float(), pooling).cpu())
        predictions.append(batch.logits.argmax(1).cpu())
    return Embeddings(layer, torch.cat(vectors), torch.cat(predictions))
