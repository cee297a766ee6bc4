"""Layer gradient × activation, as Captum's `LayerGradientXActivation`: a layer's output times the
gradient of the target's pre-softmax score with respect to it (Shrikumar et al. 2016's gradient × input,
at a layer). One forward (whose logits also choose the targets) and one backward per target, which stops
at the layer. Returned as a layer map (methods/layer_attribution.py)."""

from __future__ import annotations

import torch

from glassbox.methods.base import MapResult, MethodOutput
from glassbox.methods.gradients import TargetsOf
from glassbox.methods.layer_attribution import LayerAttributionMethod, LayerParams
from glassbox.methods.targets import TargetSelector
from glassbox.serving.units import LayerGradientResult


class LayerGradientXActivation(LayerAttributionMethod):
    """activation · ∂ score_target / ∂ activation at the layer."""

    name = "layer_gradient_x_activation"
    Params = LayerParams

    def planned_rows(self, images: int, targets: int) -> tuple[int, int]:
        return 0, images * targets

    def run(self, pixels: torch.Tensor, selector: TargetSelector) -> MethodOutput:
        """The targets come from the logits of the layer unit's own forward: no extra pass, even for top-k."""
        logits, targets, maps = self.layer_maps(pixels, selector.resolve_rows)
        return MethodOutput(logits, targets, maps)

    def explain(
        self, pixels: torch.Tensor, targets: list[tuple[int, ...]], logits: torch.Tensor
    ) -> list[list[MapResult]]:
        return self.layer_maps(pixels, lambda _logits, rows: targets[rows.start : rows.stop])[2]

    def layer_maps(
        self, pixels: torch.Tensor, targets_of: TargetsOf
    ) -> tuple[torch.Tensor, list[tuple[int, ...]], list[list[MapResult]]]:
        """(logits, targets, maps) of one forward per image and one backward per target to the layer."""
        x = pixels.to(self.model.device, torch.float32)
        size = (x.shape[2], x.shape[3])
        logits: list[torch.Tensor] = []
        targets: list[tuple[int, ...]] = []
        maps: list[list[MapResult]] = [[] for _ in range(x.shape[0])]

        def consume(rows: range, result: LayerGradientResult) -> None:
            logits.append(result.logits.cpu())
            targets.extend(result.targets)
            for gradient_pass in result.passes:
                values = result.activation * gradient_pass.gradient
                for r in gradient_pass.selected:
                    maps[rows.start + r].append(self.result(values[r], size))

        self.layer_chunks(x.shape[0], lambda rows: x[rows.start : rows.stop], targets_of, consume)
        return torch.cat(logits), targets, maps
