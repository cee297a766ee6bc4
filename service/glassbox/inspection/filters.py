"""A convolution layer's kernels as pictures (GetFilters): the first layer in colour, deeper layers per
input channel or averaged over them (as in Krizhevsky et al. 2012's figure of learned first-layer
filters and Zeiler & Fergus 2014)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import torch
from torch import nn

from glassbox.backends.torch_backend import TorchModel
from glassbox.common import pictures
from glassbox.core.errors import InvalidArgument

MAX_PER_INPUT_TILES = 16384
"""Most (output, input) channel pairs the per-input-channel view draws."""

MIN_TILE_SIDE = 24
"""Kernels are magnified to at least this many pixels a side."""


class FilterView(StrEnum):
    COLOUR = "colour"  # one RGB tile per output channel (3 input channels)
    MEAN = "mean"  # one tile per output channel: the mean over input channels
    PER_INPUT_CHANNEL = "per_input_channel"  # one tile per (output, input) pair


@dataclass(frozen=True)
class Filters:
    layer: str
    view: FilterView
    weights: torch.Tensor  # float32 [out, in / groups, kh, kw]
    grid: np.ndarray  # RGB uint8
    rows: int
    columns: int
    tile_size: int


def first_conv_layer(model: TorchModel) -> str:
    for layer in model.layers:
        if layer.kind == "Conv2d":
            return layer.name
    raise InvalidArgument(f"model {model.name!r} has no Conv2d layer", field="layer")


def conv_weights(model: TorchModel, layer: str) -> torch.Tensor:
    """The kernels of a Conv2d layer; InvalidArgument naming `layer` for any other layer."""
    module = model.submodule(layer)
    if not isinstance(module, nn.Conv2d):
        raise InvalidArgument(
            f"layer {layer!r} is a {type(module).__name__}; filters are drawn for Conv2d layers",
            field="layer",
        )
    return module.weight.detach().float().cpu().contiguous()


def _colour_tiles(weights: torch.Tensor, factor: int) -> list[np.ndarray]:
    scale = weights.flatten(1).abs().amax(1).clamp(min=1e-12)[:, None, None, None]
    return [pictures.magnify(pictures.rgb(kernel), factor) for kernel in weights / scale / 2 + 0.5]


def filters(model: TorchModel, layer: str, view: FilterView | None) -> Filters:
    """The layer's kernels drawn in `view` (None: colour for 3 input channels, the mean otherwise)."""
    layer = layer or first_conv_layer(model)
    weights = conv_weights(model, layer)
    out_channels, in_channels, kh, kw = weights.shape
    view = view or (FilterView.COLOUR if in_channels == 3 else FilterView.MEAN)
    factor = pictures.magnification(max(kh, kw), MIN_TILE_SIDE)
    if view is FilterView.COLOUR:
        if in_channels != 3:
            raise InvalidArgument(
                f"the colour view needs 3 input channels; layer {layer!r} takes {in_channels}", field="view"
            )
        tiles, columns = _colour_tiles(weights, factor), pictures.square_columns(out_channels)
    elif view is FilterView.MEAN:
        tiles, columns = (
            pictures.diverging_tiles(weights.mean(1), factor),
            pictures.square_columns(out_channels),
        )
    else:
        if out_channels * in_channels > MAX_PER_INPUT_TILES:
            raise InvalidArgument(
                f"{out_channels} × {in_channels} kernels is over the {MAX_PER_INPUT_TILES} this view draws; "
                "use the mean view",
                field="view",
            )
        tiles, columns = pictures.diverging_tiles(weights.flatten(0, 1), factor), in_channels
    rows = -(-len(tiles) // columns)
    return Filters(layer, view, weights, pictures.grid(tiles, columns), rows, columns, factor * max(kh, kw))
