"""Max-sensitivity (Yeh, Hsieh, Suggala, Inouye & Ravikumar 2019, "On the (in)fidelity and sensitivity of
explanations"): the largest change of a map under small input perturbations, estimated by Monte Carlo
over uniform noise in an L∞ ball of radius r. It is reported relative to the map's own norm,
max_δ ‖Φ(x + δ) − Φ(x)‖_F / ‖Φ(x)‖_F, so methods whose maps differ in scale compare. Lower is better.
Perturbed pixels are clipped to [0, 1] (the pixel contract); the target class stays the original one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

TINY_NORM = 1e-12


def uniform_noise(images: torch.Tensor, radius: float, generator: torch.Generator) -> torch.Tensor:
    """images + U(−radius, radius), clipped to [0, 1]."""
    noise = torch.rand(images.shape, generator=generator) * (2 * radius) - radius
    return (images + noise).clamp(0.0, 1.0)


def max_sensitivity(
    images: torch.Tensor,
    maps: torch.Tensor,
    explain: Callable[[torch.Tensor], torch.Tensor],
    samples: int,
    radius: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """float [N]: for each image, the largest relative change of its map over `samples` noisy copies;
    `explain(pixels)` returns the maps [N, H, W] of perturbed images for the original targets."""
    reference = maps.flatten(1).double()
    norms = reference.norm(dim=1).clamp(min=TINY_NORM)
    worst = torch.zeros(images.shape[0], dtype=torch.float64)
    for _ in range(samples):
        perturbed = explain(uniform_noise(images, radius, generator)).flatten(1).double()
        worst = torch.maximum(worst, (perturbed - reference).norm(dim=1) / norms)
    return worst.float()
