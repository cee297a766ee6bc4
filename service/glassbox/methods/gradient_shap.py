"""GradientShap (Lundberg & Lee 2017, "A Unified Approach to Interpreting Model Predictions"), as
Captum's `GradientShap`: the expected value of (x̃ − x₀) · ∂F(x₀ + α (x̃ − x₀))/∂x over a random baseline
x₀ from the distribution, a random α ~ U(0, 1) and x̃ = x + N(0, stdev²) noise, estimated from `samples`
draws. It approximates the SHAP values of the pixels, with the baselines as the background.

The baselines are DeepLiftShap's: `baselines` images of uniform noise from `seed`. Each image draws its
samples as Captum does for a batch of one after `torch.manual_seed(seed)` and `numpy.random.seed(seed)`
(the baselines' indices and the α from numpy's legacy generator, the noise from torch's), so a map does not
depend on the other images of the request and equals Captum's image by image. All (image, sample) rows
run in memory-budgeted chunks, every target of a row in the same forward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from glassbox.methods.base import MapResult, MethodOutput
from glassbox.methods.deep_lift_shap import MAX_BASELINES, shap_baselines
from glassbox.methods.gradients import GradientMethod
from glassbox.methods.targets import TargetSelector


@dataclass(frozen=True)
class GradientShapParams:
    samples: int = 50
    stdev: float = 0.0
    baselines: int = 8
    seed: int = 0


@dataclass(frozen=True)
class ShapSamples:
    """One image's draws: the noisy inputs x̃ [n, 3, H, W], the baseline of each sample [n], and α [n]."""

    noisy: torch.Tensor
    baseline_index: torch.Tensor
    alpha: torch.Tensor


def draw_samples(image: torch.Tensor, samples: int, stdev: float, baselines: int, seed: int) -> ShapSamples:
    """The draws of one image [3, H, W] (CPU), in Captum's order: the baseline indices
    (`numpy.random.choice`), the noise (`torch.normal`), then α (`numpy.random.uniform`)."""
    state = np.random.RandomState(seed)
    index = state.choice(baselines, samples).tolist()
    generator = torch.Generator().manual_seed(seed)
    spread = torch.tensor(stdev).repeat((samples, *image.shape))
    noise = torch.normal(0, spread, generator=generator)
    alpha = torch.tensor(state.uniform(0.0, 1.0, samples), dtype=torch.float32)
    return ShapSamples(image.unsqueeze(0) + noise, torch.tensor(index), alpha)


class GradientShap(GradientMethod):
    """Mean over the samples of (x̃ − x₀) · ∂F/∂x at x₀ + α (x̃ − x₀)."""

    name = "gradient_shap"
    smoothable = True
    Params = GradientShapParams

    def validate(self) -> None:
        p, cap = self.params, self.call.settings.max_samples
        self.require(
            1 <= p.samples <= cap,
            "samples",
            f"must be in 1..{cap} (the server's max_samples), got {p.samples}",
        )
        self.require(
            0.0 <= p.stdev <= 1.0 and math.isfinite(p.stdev), "stdev", f"must be in [0, 1], got {p.stdev}"
        )
        self.require(
            1 <= p.baselines <= MAX_BASELINES,
            "baselines",
            f"must be in 1..{MAX_BASELINES}, got {p.baselines}",
        )
        self.require(0 <= p.seed < 2**32, "seed", f"must be in 0..2^32-1 (numpy's seed range), got {p.seed}")

    @property
    def rows_per_input(self) -> int:
        return self.params.samples

    def planned_rows(self, images: int, targets: int) -> tuple[int, int]:
        return images, images * targets * self.params.samples

    def run(self, pixels: torch.Tensor, selector: TargetSelector) -> MethodOutput:
        """One forward for the logits and the targets, then the sampled gradients."""
        logits = self.call.forward(pixels)
        targets = selector.resolve(logits)
        maps = self.attribute_rows(pixels.to(self.model.device, torch.float32), targets)
        return MethodOutput(logits, targets, [[MapResult(m.cpu()) for m in row] for row in maps])

    def attribute_rows(self, inputs: torch.Tensor, targets: list[tuple[int, ...]]) -> list[torch.Tensor]:
        p = self.params
        n = p.samples
        shape = tuple(inputs.shape[1:])
        references = shap_baselines(p.seed, p.baselines, shape).to(inputs.device)
        drawn: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

        def sample_of(image: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            """(x̃, x₀, α) of an image's samples, drawn once, kept while its rows are being evaluated."""
            if image not in drawn:
                drawn.clear()
                s = draw_samples(inputs[image].cpu(), n, p.stdev, p.baselines, p.seed)
                drawn[image] = (
                    s.noisy.to(inputs.device),
                    references[s.baseline_index.to(inputs.device)],
                    s.alpha.to(inputs.device).view(-1, 1, 1, 1),
                )
            return drawn[image]

        def rows_of(rows: range) -> tuple[torch.Tensor, torch.Tensor]:
            """(x̃ − x₀, x₀ + α (x̃ − x₀)) of network rows (image r // n, sample r % n)."""
            differences, points = [], []
            for r in rows:
                noisy, baseline, alpha = sample_of(r // n)
                s = r % n
                differences.append(noisy[s] - baseline[s])
                points.append(alpha[s] * noisy[s] + (1.0 - alpha[s]) * baseline[s])
            return torch.stack(differences), torch.stack(points)

        passes = max(len(t) for t in targets)
        sums = torch.zeros(passes, *inputs.shape, dtype=inputs.dtype, device=inputs.device)
        differences: dict[int, torch.Tensor] = {}

        def make_inputs(rows: range) -> torch.Tensor:
            difference, points = rows_of(rows)
            differences.clear()  # one chunk at a time: its target passes come before the next chunk
            differences[rows.start] = difference
            return points

        def targets_of(_logits: torch.Tensor, rows: range) -> list[tuple[int, ...]]:
            return [targets[r // n] for r in rows]

        def consume(rows: range, _x: torch.Tensor, j: int, selected: list[int], grad: torch.Tensor) -> None:
            values = differences[rows.start][selected] * grad[selected]
            index = torch.tensor([(rows.start + r) // n for r in selected], device=inputs.device)
            sums[j].index_add_(0, index, values)

        self.backward_chunks(inputs.shape[0] * n, make_inputs, targets_of, consume)
        return [sums[: len(targets[i]), i] * (1 / n) for i in range(inputs.shape[0])]
