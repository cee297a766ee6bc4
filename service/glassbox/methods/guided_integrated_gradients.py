"""Guided integrated gradients (Kapishnikov, Venugopalan, Avci, Wedin, Terry & Bolukbasi 2021, "Guided
Integrated Gradients: An Adaptive Path Method for Removing Noise").

Instead of the straight line from the baseline to the input, the path is chosen step by step from the
gradient: at each of `steps` steps the L1 distance to the input shrinks by 1/steps of the total, moving
first the features whose |gradient| is smallest (the `fraction` quantile, repeatedly, until the step's
distance is covered), each feature kept within `max_dist` (in path fraction α) of the straight line;
the attribution sums (x_new − x_old) ⊙ gradient along the way. This is the algorithm of the `saliency`
package 0.2.1 (`guided_ig_impl`), in float64 like it, with its quantile ("lower") and its tolerance.

A path depends on its target, so each (input, target) pair walks its own path; the pairs of a call
advance together, one memory-budgeted gradient chunk per step for all of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from glassbox.methods.base import MapResult, MethodOutput
from glassbox.methods.gradients import GradientMethod
from glassbox.methods.targets import TargetSelector

EPSILON = 1e-9
"""Relative and absolute tolerance of reaching a step's L1 target (the saliency package's)."""


@dataclass(frozen=True)
class GuidedIntegratedGradientsParams:
    steps: int = 200
    fraction: float = 0.25
    max_dist: float = 0.02
    baseline_value: float = 0.0


class GuidedPath:
    """The walk of one (input, target) pair from the baseline to the input, float64 numpy arrays.

    The arithmetic is the package's, value for value; masked assignments are `np.copyto(..., where=)`
    and the quantile a partition at the "lower" index, which give the same numbers with less work per
    inner iteration (a step of a 224² image walks about one iteration, each a dozen passes over the
    image, so these passes are the path's cost beside the gradients).
    """

    def __init__(self, target: np.ndarray, baseline: np.ndarray) -> None:
        self.target, self.baseline = target, baseline
        self.x = baseline.copy()
        self.attribution = np.zeros_like(target)
        self.span = target - baseline
        self.moving = self.span != 0
        self.total = float(np.abs(self.span).sum())

    def step(self, step: int, steps: int, gradient: np.ndarray, fraction: float, max_dist: float) -> None:
        """Advance by one step (the distance to the input shrinks to total · (1 − (step + 1)/steps))."""
        x, target, baseline, span = self.x, self.target, self.baseline, self.span
        alpha = (step + 1.0) / steps
        alpha_min, alpha_max = max(alpha - max_dist, 0.0), min(alpha + max_dist, 1.0)
        x_min = baseline + span * alpha_min
        x_max = baseline + span * alpha_max
        l1_target = self.total * (1 - (step + 1) / steps)
        grad = gradient.copy()
        lower = int(np.floor((grad.size - 1) * fraction))  # np.quantile(method="lower")'s index
        x_alpha = np.empty_like(x)
        gamma = np.inf
        while gamma > 1.0:
            x_old = x.copy()
            x_alpha.fill(alpha_max)
            np.divide(x - baseline, span, out=x_alpha, where=self.moving)
            np.copyto(x, x_min, where=x_alpha < alpha_min)
            l1_current = float(np.abs(x - target).sum())
            if math.isclose(l1_target, l1_current, rel_tol=EPSILON, abs_tol=EPSILON):
                self.attribution += (x - x_old) * gradient
                break
            grad[x == x_max] = np.inf
            magnitude = np.abs(grad)
            threshold = np.partition(magnitude.reshape(-1), lower)[lower]
            selected = (magnitude <= threshold) & (grad != np.inf)
            l1_selected = float((np.abs(x - x_max) * selected).sum())
            gamma = (l1_current - l1_target) / l1_selected if l1_selected > 0 else np.inf
            if gamma > 1.0:
                np.copyto(x, x_max, where=selected)
            else:
                np.copyto(x, x + (x_max - x) * gamma, where=selected)
            self.attribution += (x - x_old) * gradient


class GuidedIntegratedGradients(GradientMethod):
    """Integrated gradients along a path that moves the low-gradient features first."""

    name = "guided_integrated_gradients"
    smoothable = True

    Params = GuidedIntegratedGradientsParams

    def validate(self) -> None:
        p = self.params
        cap = self.call.settings.max_steps
        self.require(
            1 <= p.steps <= cap, "steps", f"must be in 1..{cap} (the server's max_steps), got {p.steps}"
        )
        self.require(0.0 < p.fraction <= 1.0, "fraction", f"must be in (0, 1], got {p.fraction}")
        self.require(0.0 <= p.max_dist <= 1.0, "max_dist", f"must be in [0, 1], got {p.max_dist}")
        self.require(
            0.0 <= p.baseline_value <= 1.0, "baseline_value", f"must be in [0, 1], got {p.baseline_value}"
        )

    @property
    def rows_per_input(self) -> int:
        return self.params.steps

    def run(self, pixels: torch.Tensor, selector: TargetSelector) -> MethodOutput:
        x = pixels.to(self.model.device, torch.float32)
        logits = self.call.forward(x)
        targets = selector.resolve(logits)
        rows = self.attribute_rows(x, targets)
        return MethodOutput(logits, targets, [[MapResult(m.cpu()) for m in row] for row in rows])

    def attribute_rows(self, inputs: torch.Tensor, targets: list[tuple[int, ...]]) -> list[torch.Tensor]:
        p = self.params
        images = inputs.detach().cpu().double().numpy()
        pairs = [(i, t) for i in range(inputs.shape[0]) for t in targets[i]]
        paths = [GuidedPath(images[i], np.full_like(images[i], p.baseline_value)) for i, _ in pairs]
        walking = [k for k, path in enumerate(paths) if path.total != 0]  # input = baseline: zero map
        gradients: dict[int, np.ndarray] = {}

        def make_inputs(rows: range) -> torch.Tensor:
            points = np.stack([paths[walking[r]].x for r in rows])
            return torch.from_numpy(points).to(inputs.device, torch.float32)

        def targets_of(_logits: torch.Tensor, rows: range) -> list[tuple[int, ...]]:
            return [(pairs[walking[r]][1],) for r in rows]

        def consume(rows: range, _x: torch.Tensor, _j: int, selected: list[int], grad: torch.Tensor) -> None:
            values = grad.detach().cpu().double().numpy()
            for r in selected:
                gradients[walking[rows.start + r]] = values[r]

        for step in range(p.steps if walking else 0):
            self.backward_chunks(len(walking), make_inputs, targets_of, consume)
            for k in walking:
                paths[k].step(step, p.steps, gradients[k], p.fraction, p.max_dist)
        out: list[list[torch.Tensor]] = [[] for _ in range(inputs.shape[0])]
        for (i, _), path in zip(pairs, paths, strict=True):
            out[i].append(torch.from_numpy(path.attribution).float())
        return [torch.stack(row).to(inputs.device) for row in out]
