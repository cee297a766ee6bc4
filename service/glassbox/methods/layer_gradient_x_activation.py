"""Layer gradient × activation, as Captum's `LayerGradientXActivation`: a layer's output times the gradient
of the target's pre-softmax score with respect to it (Shrikumar et al. 2016's gradient × input, at a
layer). One forward and one backward per target, which stops at the layer. Returned as a layer map
(methods/layer_attribution.py)."""

from __future__ import annotations

import torch

from glassbox.methods.base import MapResult
from glassbox.methods.layer_attribution import LayerAttributionMethod, LayerParams
from glassbox.methods.registry import register
from glassbox.serving.units import LayerGradientResult


@register("layer_gradient_x_activation")
class LayerGradientXActivation(LayerAttributionMethod):
    """activation · ∂ score_target / ∂ activation at the layer."""

    Params = LayerParams

    def planned_rows(self, images: int, targets: int) -> tuple[int, int]:
        return images, images * targets

    def explain(
        self, pixels: torch.Tensor, targets: list[tuple[int, ...]], logits: torch.Tensor
    ) -> list[list[MapResult]]:
        x = pixels.to(self.model.device, torch.float32)
        size = (x.shape[2], x.shape[3])
        maps: list[list[MapResult]] = [[] for _ in range(x.shape[0])]

        def consume(rows: range, result: LayerGradientResult) -> None:
            for gradient_pass in result.passes:
                values = result.activation * gradient_pass.gradient
                for r in gradient_pass.selected:
                    maps[rows.start + r].append(self.result(values[r], size))

        self.layer_chunks(
            x.shape[0],
            lambda rows: x[rows.start : rows.stop],
            lambda rows: targets[rows.start : rows.stop],
            consume,
        )
        return maps
