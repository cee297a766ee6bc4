"""Layer conductance (Dhamdhere, Sundararajan & Yan 2018, "How Important Is a Neuron?"), as Captum's
`LayerConductance`: integrated gradients of the target's score flowing through a layer's units, along the
straight path from the baseline to the input in pixel space,

    Σ_k ∂F/∂a (x_k) · (a(x_{k+1}) − a(x_k)),   x_k = x₀ + α_k (x − x₀), k = 0..steps,

with the `steps + 1` points α_k of the integration rule (Captum's `n_steps + 1` points). Each (image,
point) row is one forward that stops its backward at the layer, every target in the same forward; the
rows of an image are consumed in path order, so only the previous point's activation and gradients are
kept. Returned as a layer map (methods/layer_attribution.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch

from glassbox.methods.base import ImageInput, MapResult
from glassbox.methods.baselines import Baseline, BaselineChoice
from glassbox.methods.integrated_gradients import IntegrationRule, quadrature
from glassbox.methods.layer_attribution import LayerAttributionMethod
from glassbox.serving.units import LayerGradientResult


@dataclass(frozen=True)
class LayerConductanceParams:
    layer: str = ""
    steps: int = 50
    rule: IntegrationRule = IntegrationRule.GAUSS_LEGENDRE
    baseline: Baseline = Baseline.BLACK
    baseline_image: ImageInput | None = None
    blur_sigma: float = 5.0
    seed: int = 0


class LayerConductance(LayerAttributionMethod):
    """Σ_k gradient at the layer × the step of the layer's output, along the input path."""

    name = "layer_conductance"
    Params = LayerConductanceParams

    def validate(self) -> None:
        super().validate()
        p, cap = self.params, self.call.settings.max_steps
        self.require(
            1 <= p.steps < cap,
            "steps",
            f"must be in 1..{cap - 1} (the server's max_steps − 1), got {p.steps}",
        )
        self.baseline = BaselineChoice(self, p.baseline, p.baseline_image, p.blur_sigma, p.seed)

    @property
    def rows_per_input(self) -> int:
        return self.params.steps + 1

    def planned_rows(self, images: int, targets: int) -> tuple[int, int]:
        return images, images * targets * self.rows_per_input

    def explain(
        self, pixels: torch.Tensor, targets: list[tuple[int, ...]], logits: torch.Tensor
    ) -> list[list[MapResult]]:
        x = pixels.to(self.model.device, torch.float32)
        baselines = self.baseline.of(x)
        points = self.rows_per_input
        alphas, _weights = quadrature(self.params.rule, points)
        alpha = torch.as_tensor(alphas, dtype=x.dtype, device=x.device)
        sums: list[list[torch.Tensor | None]] = [[None] * len(t) for t in targets]
        previous: dict[int, tuple[torch.Tensor, dict[int, torch.Tensor]]] = {}

        def make_inputs(rows: range) -> torch.Tensor:
            index = torch.arange(rows.start, rows.stop, device=x.device)
            image, step = index // points, index % points
            return baselines[image] + alpha[step].view(-1, 1, 1, 1) * (x[image] - baselines[image])

        def consume(rows: range, result: LayerGradientResult) -> None:
            gradients: dict[int, dict[int, torch.Tensor]] = {}
            for gradient_pass in result.passes:
                for r in gradient_pass.selected:
                    gradients.setdefault(r, {})[gradient_pass.j] = gradient_pass.gradient[r]
            for r in range(len(rows)):
                image, step = divmod(rows.start + r, points)
                activation = result.activation[r]
                if step > 0:
                    before, before_gradients = previous[image]
                    change = activation - before
                    for j, gradient in before_gradients.items():
                        term = gradient * change
                        summed = sums[image][j]
                        sums[image][j] = term if summed is None else summed + term
                previous[image] = (activation, gradients.get(r, {}))
                if step == points - 1:
                    del previous[image]

        self.layer_chunks(
            x.shape[0] * points,
            make_inputs,
            lambda _logits, rows: [targets[r // points] for r in rows],
            consume,
        )
        size = (x.shape[2], x.shape[3])
        # Every target has a term from each step after the first (rows_per_input >= 2).
        return [[self.result(cast(torch.Tensor, total), size) for total in row] for row in sums]
