"""Integrated gradients: (input − baseline) times the gradient averaged along the straight path.

Sundararajan, Taly & Yan 2017, "Axiomatic Attribution for Deep Networks". The path integral
∫₀¹ ∂F(b + α(x − b))/∂x dα is approximated by a quadrature rule: Gauss–Legendre (exact for polynomials
of degree < 2·steps) or a Riemann sum. All (image, step) rows are evaluated in memory-budgeted chunks,
every target of a row in the same forward. Completeness gives a check: the attributions of a target
sum to F(x) − F(b); the difference is returned as the convergence delta.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import torch

from glassbox.methods.base import ImageInput, MapResult, MethodOutput
from glassbox.methods.baselines import Baseline, BaselineChoice
from glassbox.methods.gradients import GradientMethod
from glassbox.methods.targets import TargetSelector


class IntegrationRule(StrEnum):
    GAUSS_LEGENDRE = "gauss_legendre"
    RIEMANN_LEFT = "riemann_left"
    RIEMANN_RIGHT = "riemann_right"
    RIEMANN_MIDDLE = "riemann_middle"
    RIEMANN_TRAPEZOID = "riemann_trapezoid"


@dataclass(frozen=True)
class IntegratedGradientsParams:
    steps: int = 50
    rule: IntegrationRule = IntegrationRule.GAUSS_LEGENDRE
    baseline: Baseline = Baseline.BLACK
    baseline_image: ImageInput | None = None
    blur_sigma: float = 5.0
    seed: int = 0


def quadrature(rule: IntegrationRule, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Points α in [0, 1] and weights (summing to 1) of the rule with `steps` points."""
    if rule is IntegrationRule.GAUSS_LEGENDRE:
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return (nodes + 1.0) / 2.0, weights / 2.0
    if rule is IntegrationRule.RIEMANN_TRAPEZOID:
        # torch's float32 linspace (Captum's points too): a path point one ulp away can flip a ReLU near
        # zero, which moves a map by up to ~1e-3 of its maximum, so equal points keep maps comparable.
        alphas = torch.linspace(0.0, 1.0, steps).double().numpy()
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] /= 2.0
        return alphas, weights
    offset = {
        IntegrationRule.RIEMANN_LEFT: 0.0,
        IntegrationRule.RIEMANN_MIDDLE: 0.5,
        IntegrationRule.RIEMANN_RIGHT: 1.0,
    }
    return (np.arange(steps) + offset[rule]) / steps, np.full(steps, 1.0 / steps)


class IntegratedGradients(GradientMethod):
    """(x − b) · Σ_s w_s ∂F_target(b + α_s (x − b))/∂x."""

    name = "integrated_gradients"
    smoothable = True

    Params = IntegratedGradientsParams

    def validate(self) -> None:
        p = self.params
        cap = self.call.settings.max_steps
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

    def baselines(self, inputs: torch.Tensor) -> torch.Tensor:
        """One baseline per input row, in pixel space."""
        return self.baseline.of(inputs)

    def run(self, pixels: torch.Tensor, selector: TargetSelector) -> MethodOutput:
        x = pixels.to(self.model.device, torch.float32)
        baselines = self.baselines(x)
        logits = self.call.forward(x)
        baseline_logits = self.call.forward(baselines)
        targets = selector.resolve(logits)
        attributions = self.integrate(x, baselines, targets)
        maps = []
        for i, row in enumerate(attributions):
            maps.append(
                [
                    MapResult(
                        map=row[j].cpu(),
                        convergence_delta=float(row[j].sum()) - float(logits[i, t] - baseline_logits[i, t]),
                    )
                    for j, t in enumerate(targets[i])
                ]
            )
        return MethodOutput(logits, targets, maps)

    def attribute_rows(self, inputs: torch.Tensor, targets: list[tuple[int, ...]]) -> list[torch.Tensor]:
        return self.integrate(inputs, self.baselines(inputs), targets)

    def integrate(
        self, inputs: torch.Tensor, baselines: torch.Tensor, targets: list[tuple[int, ...]]
    ) -> list[torch.Tensor]:
        """Attributions [k_i, 3, H, W] per input row; network rows are (input, step) pairs."""
        alphas, weights = quadrature(self.params.rule, self.params.steps)
        steps = len(alphas)
        alpha = torch.as_tensor(alphas, dtype=inputs.dtype, device=inputs.device)
        weight = torch.as_tensor(weights, dtype=inputs.dtype, device=inputs.device)
        delta = inputs - baselines
        passes = max(len(t) for t in targets)
        sums = torch.zeros(passes, *inputs.shape, dtype=inputs.dtype, device=inputs.device)

        def make_inputs(rows: range) -> torch.Tensor:
            image = torch.arange(rows.start, rows.stop, device=inputs.device) // steps
            a = alpha[torch.arange(rows.start, rows.stop, device=inputs.device) % steps].view(-1, 1, 1, 1)
            return baselines[image] + a * delta[image]

        def targets_of(_logits: torch.Tensor, rows: range) -> list[tuple[int, ...]]:
            return [targets[r // steps] for r in rows]

        def consume(rows: range, _x: torch.Tensor, j: int, selected: list[int], grad: torch.Tensor) -> None:
            index = torch.tensor([rows.start + r for r in selected], device=inputs.device)
            sums[j].index_add_(0, index // steps, grad[selected] * weight[index % steps].view(-1, 1, 1, 1))

        self.backward_chunks(inputs.shape[0] * steps, make_inputs, targets_of, consume)
        return [delta[i] * sums[: len(targets[i]), i] for i in range(inputs.shape[0])]
