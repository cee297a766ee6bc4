"""Looking up a model's layers and checking indices into their outputs, for every area that reads layers
(generative objectives, inspection). Each check raises InvalidArgument naming the request field."""

from __future__ import annotations

from glassbox.backends.base import Model
from glassbox.core.errors import InvalidArgument


def layer_shape(model: Model, layer: str, field: str) -> tuple[int, ...]:
    """The layer's output shape for one image at the model's input size; InvalidArgument if unknown."""
    return model.layer_info(layer, field=field).output_shape


def check_index(value: int, size: int, field: str, what: str) -> None:
    """0 ≤ value < size: an index (`what`: "channel", "class index", ...) into something of that size."""
    if not 0 <= value < size:
        raise InvalidArgument(f"{what} must be in 0..{size - 1}, got {value}", field=field)
