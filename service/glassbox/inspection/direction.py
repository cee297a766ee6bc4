"""The activation-atlas objective: how far a layer's activations point along a direction.

At every position p of the layer's grid, the activation vector a_p dotted with the unit direction v̂,
times max(cos(a_p, v), 0.1)^4 (Lucid's cosine-weighted direction objective of the activation-atlas
notebook, Carter et al. 2019), averaged over the positions, so the image is pushed both to point along
v and to grow along it. Lucid renders the centre position only; averaging over the grid (Lucid's
`direction` objective) keeps a gradient on small networks whose central unit is dead on the
near-grey starting image. Each image of a batch has its own direction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from glassbox.backends.base import Model
from glassbox.common.capture import Activations
from glassbox.common.layers import layer_shape
from glassbox.core.errors import InvalidArgument
from glassbox.generative.objectives import Objective

COSINE_POWER = 4
COSINE_FLOOR = 0.1


@dataclass(frozen=True, eq=False)
class Direction(Objective):
    """One direction [C] per image of the batch: `directions` is [B, C]."""

    layer: str
    directions: torch.Tensor

    @property
    def layers(self) -> frozenset[str]:
        return frozenset({self.layer})

    def bind(self, model: Model, field: str) -> Direction:
        shape = layer_shape(model, self.layer, field)
        if len(shape) != 3:
            raise InvalidArgument(f"layer output is {list(shape)}; a direction needs [C, H, W]", field=field)
        if self.directions.dim() != 2 or self.directions.shape[1] != shape[0]:
            raise InvalidArgument(
                f"directions must be [B, {shape[0]}], got {list(self.directions.shape)}", field=field
            )
        return self

    def __call__(self, activations: Activations) -> torch.Tensor:
        output = activations.layers[self.layer]
        directions = self.directions.to(output.device, output.dtype)[:, :, None, None]
        along = (output * F.normalize(directions, dim=1)).sum(1)
        cosine = F.cosine_similarity(output, directions, dim=1)
        return (along * cosine.clamp(min=COSINE_FLOOR) ** COSINE_POWER).flatten(1).mean(1)
