"""Blur integrated gradients (Xu, Venugopalan & Sundararajan 2020, "Attribution in Scale and Space").

The path runs from the image blurred by a Gaussian of standard deviation `max_sigma` down to the image
itself, through the blurs of sigma σ_0 = 0 < σ_1 < ... < σ_steps = max_sigma (linear, or σ_i =
sqrt(i · max_sigma / steps)). The attribution is the path integral along it, Riemann-summed as the
`saliency` package 0.2.1 does:

    −Σ_{i<steps} (σ_{i+1} − σ_i) · ∂blur(x, σ_i)/∂σ ⊙ ∂F(blur(x, σ_i))/∂x,

the derivative in σ a forward difference (blur(x, σ_i + grad_step) − blur(x, σ_i)) / grad_step. The blur
is scipy's `gaussian_filter` over the two spatial axes (zero padding, kernel radius int(4σ + 0.5),
weights exp(−t²/2σ²) normalised), written as two banded matrix products. Every (image, step) row is a
network row of the shared memory-budgeted chunks, every target of a row in the same forward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from glassbox.methods.base import MapResult, MethodOutput
from glassbox.methods.gradients import GradientMethod
from glassbox.methods.targets import TargetSelector

MAX_SIGMA = 1000.0
MAX_GRAD_STEP = 10.0


@dataclass(frozen=True)
class BlurIntegratedGradientsParams:
    steps: int = 100
    max_sigma: float = 50.0
    grad_step: float = 0.01
    sqrt: bool = False


def blur_matrix(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    """float64 [size, size] G with (G @ v) the 1-D Gaussian blur of v (zero padding, radius int(4σ + 0.5))."""
    if sigma <= 1e-15:
        return torch.eye(size, dtype=torch.float64, device=device)
    radius = int(4.0 * sigma + 0.5)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    kernel = torch.exp(-0.5 / sigma**2 * taps.square())
    kernel /= kernel.sum()
    offset = torch.arange(size, device=device)[None, :] - torch.arange(size, device=device)[:, None]
    inside = offset.abs() <= radius
    return torch.where(inside, kernel[(offset + radius).clamp(0, 2 * radius)], 0.0)


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """float64 [..., H, W] blurred over the last two axes."""
    height, width = images.shape[-2:]
    rows = blur_matrix(height, sigma, images.device)
    columns = blur_matrix(width, sigma, images.device)
    return rows @ images.double() @ columns.T


def sigmas(params: BlurIntegratedGradientsParams) -> list[float]:
    """σ_0..σ_steps of the path."""
    steps, top = params.steps, params.max_sigma
    if params.sqrt:
        return [math.sqrt(float(i) * top / float(steps)) for i in range(steps + 1)]
    return [float(i) * top / float(steps) for i in range(steps + 1)]


class BlurIntegratedGradients(GradientMethod):
    """Integrated gradients along the path of decreasing blur."""

    name = "blur_integrated_gradients"
    smoothable = True

    Params = BlurIntegratedGradientsParams

    def validate(self) -> None:
        p = self.params
        cap = self.call.settings.max_steps
        self.require(
            1 <= p.steps <= cap, "steps", f"must be in 1..{cap} (the server's max_steps), got {p.steps}"
        )
        self.require(
            0.0 < p.max_sigma <= MAX_SIGMA and math.isfinite(p.max_sigma),
            "max_sigma",
            f"must be in (0, {MAX_SIGMA:g}] pixels, got {p.max_sigma}",
        )
        self.require(
            0.0 < p.grad_step <= MAX_GRAD_STEP and math.isfinite(p.grad_step),
            "grad_step",
            f"must be in (0, {MAX_GRAD_STEP:g}], got {p.grad_step}",
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
        """Per input row, [k, 3, H, W]; network rows are (input, step) pairs."""
        p = self.params
        path = sigmas(p)
        steps = p.steps
        passes = max(len(t) for t in targets)
        sums = torch.zeros(passes, *inputs.shape, dtype=torch.float64, device=inputs.device)
        chunk: dict[str, object] = {}

        def make_inputs(rows: range) -> torch.Tensor:
            blurred, slopes = [], []
            for r in rows:
                image, step = inputs[r // steps], r % steps
                now = gaussian_blur(image, path[step])
                later = gaussian_blur(image, path[step] + p.grad_step)
                blurred.append(now)
                slopes.append((later - now) * ((path[step + 1] - path[step]) / p.grad_step))
            chunk["start"], chunk["slopes"] = rows.start, torch.stack(slopes)
            return torch.stack(blurred).float()

        def targets_of(_logits: torch.Tensor, rows: range) -> list[tuple[int, ...]]:
            return [targets[r // steps] for r in rows]

        def consume(rows: range, _x: torch.Tensor, j: int, selected: list[int], grad: torch.Tensor) -> None:
            assert chunk["start"] == rows.start
            slopes = chunk["slopes"]
            assert isinstance(slopes, torch.Tensor)
            index = torch.tensor([rows.start + r for r in selected], device=inputs.device)
            sums[j].index_add_(0, index // steps, slopes[selected] * grad[selected].double())

        self.backward_chunks(inputs.shape[0] * steps, make_inputs, targets_of, consume)
        return [(-sums[: len(targets[i]), i]).float() for i in range(inputs.shape[0])]
