"""What the layer attributions (Captum's LayerIntegratedGradients, LayerConductance,
LayerGradientXActivation) share: the layer (as the CAM methods choose it: a `[C, h, w]` or token
`[T, C]` layer, by default the model's default_cam_layer), and how a layer attribution is returned.

A layer attribution has the layer's output shape. It is returned at the layer's resolution as
`layer_map`: the sum over channels of the attribution on the layer's grid, [h, w] (token layers: the
patch tokens on their grid, class tokens dropped), signed, with no ReLU. Captum's attributions summed
over dimension 1 give it. The pixel map is `layer_map` upsampled bilinearly to the input size (half-pixel
centres: Captum's `LayerAttribution.interpolate(..., "bilinear")`), for the PNGs and the metrics; it is
a picture of the layer map, not an attribution of pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from glassbox.backends.base import Model
from glassbox.backends.torch_backend import TorchModel
from glassbox.methods.base import MapResult, MethodOutput
from glassbox.methods.cam import resolve_cam_layer, spatial, upsample
from glassbox.methods.gradients import GradientMethod, TargetsOf, for_rows, graph_rows_per_batch
from glassbox.methods.targets import TargetSelector
from glassbox.serving.execution import run_unit
from glassbox.serving.units import LayerGradientResult, LayerGradientUnit

LayerConsume = Callable[[range, LayerGradientResult], None]
"""(chunk rows, the chunk's layer activations and gradients at the layer for each target pass)."""


@dataclass(frozen=True)
class LayerParams:
    """The parameters of a layer attribution that has only a layer (empty: the model's default CAM layer)."""

    layer: str = ""


class LayerAttributionMethod(GradientMethod):
    """Template: resolve the layer, compute attributions of its output, return them as layer maps."""

    map_channels = 1

    @classmethod
    def unsupported_reason(cls, model: Model) -> str | None:
        reason = super().unsupported_reason(model)
        if reason is None and (
            not isinstance(model, TorchModel) or not any(i.cam_compatible for i in model.layers)
        ):
            reason = (
                f"{cls.name} needs a model with hookable [C, H, W] or [T, C] layers (TorchScript has none)"
            )
        return reason

    def validate(self) -> None:
        self.layer = resolve_cam_layer(self.model, self.params.layer, field=f"{self.field}.layer")

    def network(self) -> tuple[torch.nn.Module, torch.nn.Module]:
        """(network, its module for the layer), as the CAM methods hook them."""
        assert isinstance(self.model, TorchModel)
        return self.model.hooked_network(self.layer.info.name)

    def result(
        self, attribution: torch.Tensor, size: tuple[int, int], *, convergence_delta: float | None = None
    ) -> MapResult:
        """The MapResult of one attribution of the layer's output shape."""
        layer_map = spatial(attribution.unsqueeze(0), self.layer).sum(dim=1)
        return MapResult(
            upsample(layer_map, size)[0].cpu(),
            layer_map=layer_map[0].cpu(),
            convergence_delta=convergence_delta,
        )

    def run(self, pixels: torch.Tensor, selector: TargetSelector) -> MethodOutput:
        logits = self.call.forward(pixels)
        targets = selector.resolve(logits)
        return MethodOutput(logits, targets, self.explain(pixels, targets, logits))

    def layer_chunks(
        self,
        total: int,
        make_inputs: Callable[[range], torch.Tensor],
        targets_of: TargetsOf,
        consume: LayerConsume,
    ) -> None:
        """`total` network rows in memory-budgeted chunks, each a `LayerGradientUnit`: the layer's output
        and, per target pass, its gradient there."""
        net, layer = self.network()
        most = graph_rows_per_batch(self.call, self.model)
        start = 0
        while start < total:
            self.call.token.raise_if_cancelled()  # the unit is the yield point
            rows = range(start, min(start + self.call.unit_rows("gradient", most), total))
            result: LayerGradientResult = run_unit(
                LayerGradientUnit(
                    self.model,
                    net,
                    layer,
                    make_inputs(rows).detach(),
                    for_rows(targets_of, rows),
                )
            )
            self.call.count(forward=len(rows), backward=sum(len(p.selected) for p in result.passes))
            consume(rows, result)
            start = rows.stop
