"""Layer integrated gradients, as Captum's `LayerIntegratedGradients`: integrated gradients
(Sundararajan, Taly & Yan 2017) in the space of a layer's output. With a = the layer's output on the
input and a₀ on the baseline, the attribution is (a − a₀) · Σ_s w_s ∂F/∂a at a₀ + α_s (a − a₀): the
network runs on the input with the layer's output replaced by the path point (as Captum, so branches
that bypass the layer see the input), and every target of a row back-propagates to the layer in the
same forward. The attributions of a target add up to F(x) − F(x₀) up to the quadrature error, returned
as the convergence delta. Returned as a layer map (methods/layer_attribution.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from glassbox.methods.base import ImageInput, MapResult
from glassbox.methods.baselines import Baseline, BaselineChoice
from glassbox.methods.gradients import for_rows, graph_rows_per_batch
from glassbox.methods.integrated_gradients import IntegrationRule, quadrature
from glassbox.methods.layer_attribution import LayerAttributionMethod
from glassbox.serving.execution import run_unit
from glassbox.serving.units import LayerGradientResult, LayerReplacementGradientUnit, LayerReplacementResult


@dataclass(frozen=True)
class LayerIntegratedGradientsParams:
    layer: str = ""
    steps: int = 50
    rule: IntegrationRule = IntegrationRule.GAUSS_LEGENDRE
    baseline: Baseline = Baseline.BLACK
    baseline_image: ImageInput | None = None
    blur_sigma: float = 5.0
    seed: int = 0


class LayerIntegratedGradients(LayerAttributionMethod):
    """(a − a₀) · Σ_s w_s ∂F/∂a (a₀ + α_s (a − a₀)) at the layer."""

    name = "layer_integrated_gradients"
    Params = LayerIntegratedGradientsParams

    def validate(self) -> None:
        super().validate()
        p, cap = self.params, self.call.settings.max_steps
        minimum = 2 if p.rule is IntegrationRule.RIEMANN_TRAPEZOID else 1
        self.require(
            minimum <= p.steps <= cap,
            "steps",
            f"must be in {minimum}..{cap} (the server's max_steps), got {p.steps}",
        )
        self.baseline = BaselineChoice(self, p.baseline, p.baseline_image, p.blur_sigma, p.seed)

    @property
    def rows_per_input(self) -> int:
        return self.params.steps

    def planned_rows(self, images: int, targets: int) -> tuple[int, int]:
        return images, 2 * images + images * targets * self.params.steps

    def explain(
        self, pixels: torch.Tensor, targets: list[tuple[int, ...]], logits: torch.Tensor
    ) -> list[list[MapResult]]:
        x = pixels.to(self.model.device, torch.float32)
        n = x.shape[0]
        ends = torch.cat([x, self.baseline.of(x)])
        outputs: list[torch.Tensor] = [torch.empty(0)] * (2 * n)
        scores: list[torch.Tensor] = [torch.empty(0)] * (2 * n)

        def keep(rows: range, result: LayerGradientResult) -> None:
            for r in range(len(rows)):
                outputs[rows.start + r], scores[rows.start + r] = result.activation[r], result.logits[r]

        self.layer_chunks(
            2 * n, lambda rows: ends[rows.start : rows.stop], lambda _logits, rows: [()] * len(rows), keep
        )
        layer_x, layer_b = torch.stack(outputs[:n]), torch.stack(outputs[n:])
        sums = self.integrate(x, layer_x, layer_b, targets)
        size = (x.shape[2], x.shape[3])
        maps = []
        for i in range(n):
            row = []
            for j, target in enumerate(targets[i]):
                attribution = (layer_x[i] - layer_b[i]) * sums[j][i]
                delta = float(attribution.sum()) - float(scores[i][target] - scores[n + i][target])
                row.append(self.result(attribution, size, convergence_delta=delta))
            maps.append(row)
        return maps

    def integrate(
        self, x: torch.Tensor, layer_x: torch.Tensor, layer_b: torch.Tensor, targets: list[tuple[int, ...]]
    ) -> torch.Tensor:
        """Σ_s w_s ∂F_target/∂a at each path point, [passes, n, *layer shape]."""
        alphas, weights = quadrature(self.params.rule, self.params.steps)
        steps = len(alphas)
        alpha = torch.as_tensor(alphas, dtype=x.dtype, device=x.device)
        weight = torch.as_tensor(weights, dtype=x.dtype, device=x.device)
        passes = max(len(t) for t in targets)
        sums = torch.zeros(passes, *layer_x.shape, dtype=x.dtype, device=x.device)
        net, layer = self.network()
        most = graph_rows_per_batch(self.call, self.model)
        total, start = x.shape[0] * steps, 0
        while start < total:
            self.call.token.raise_if_cancelled()  # the unit is the yield point
            rows = range(start, min(start + self.call.unit_rows("gradient", most), total))
            index = torch.arange(rows.start, rows.stop, device=x.device)
            image, step = index // steps, index % steps
            shape = (-1,) + (1,) * (layer_x.dim() - 1)
            points = layer_b[image] + alpha[step].view(shape) * (layer_x[image] - layer_b[image])
            result: LayerReplacementResult = run_unit(
                LayerReplacementGradientUnit(
                    self.model,
                    net,
                    layer,
                    x[image],
                    points,
                    for_rows(lambda _logits, chunk: [targets[r // steps] for r in chunk], rows),
                )
            )
            self.call.count(forward=len(rows))
            for gradient_pass in result.passes:
                self.call.count(backward=len(gradient_pass.selected))
                selected = torch.tensor(gradient_pass.selected, device=x.device)
                sums[gradient_pass.j].index_add_(
                    0, image[selected], gradient_pass.gradient[selected] * weight[step[selected]].view(shape)
                )
            start = rows.stop
        return sums
