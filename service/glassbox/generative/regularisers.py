"""Priors that keep a generated image natural.

Penalties are subtracted from the objective, one value per image: an L2 prior on the image's distance
from mid-grey (Simonyan et al. 2014; pixels here are in [0, 1], so 0.5 plays the role of the mean
image) and total variation (Mahendran & Vedaldi 2015). Blurring every k steps (Yosinski et al. 2015)
is not a penalty but an operation on the image between steps. Penalties are means over pixels, so a
weight means the same at any image size.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from glassbox.common.validation import check_range
from glassbox.generative.parametrisations import ImageParametrisation


class Penalty(ABC):
    """A weighted cost of the image, [B, 3, H, W] → [B]."""

    @abstractmethod
    def __call__(self, image: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class L2(Penalty):
    """weight × mean((x − 0.5)²)."""

    weight: float

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return self.weight * (image - 0.5).square().flatten(1).mean(1)


@dataclass(frozen=True)
class TotalVariation(Penalty):
    """weight × mean over pixels of (Δx² + Δy²)^(β/2), neighbouring-pixel differences (β = 2 by default)."""

    weight: float
    beta: float = 2.0

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        dy = image[..., 1:, :-1] - image[..., :-1, :-1]
        dx = image[..., :-1, 1:] - image[..., :-1, :-1]
        squared = dx.square() + dy.square()
        variation = squared if self.beta == 2.0 else squared.clamp_min(1e-12).pow(self.beta / 2)
        return self.weight * variation.flatten(1).mean(1)


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [B, C, H, W] with replicated borders (kernel radius 3σ)."""
    radius = max(1, round(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-0.5 * (taps / sigma).square())
    kernel = kernel / kernel.sum()
    channels = image.shape[1]
    padded = F.pad(image, [radius] * 4, mode="replicate")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(rows, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


@dataclass(frozen=True)
class BlurEvery:
    """Blur the image with a Gaussian of `sigma` pixels after every `every`-th step."""

    every: int
    sigma: float = 0.5

    def __call__(self, step: int, image: ImageParametrisation) -> None:
        if step % self.every == 0:
            with torch.no_grad():
                image.assign(gaussian_blur(image(), self.sigma))


@dataclass(frozen=True)
class RegulariserSettings:
    """Weights ≥ 0; 0 (the default) turns a prior off."""

    l2_weight: float = 0.0
    total_variation_weight: float = 0.0
    blur_every: int = 0
    blur_sigma: float = 0.5

    def __post_init__(self) -> None:
        check_range(self.l2_weight, 0.0, 1e6, "regularisers.l2_weight")
        check_range(self.total_variation_weight, 0.0, 1e6, "regularisers.total_variation_weight")
        check_range(self.blur_every, 0, 10_000, "regularisers.blur_every")
        check_range(self.blur_sigma, 0.0, 10.0, "regularisers.blur_sigma", low_open=True)

    def penalties(self) -> list[Penalty]:
        penalties: list[Penalty] = []
        if self.l2_weight:
            penalties.append(L2(self.l2_weight))
        if self.total_variation_weight:
            penalties.append(TotalVariation(self.total_variation_weight))
        return penalties

    def between_steps(self) -> list[BlurEvery]:
        return [BlurEvery(self.blur_every, self.blur_sigma)] if self.blur_every else []


NO_REGULARISERS = RegulariserSettings()
