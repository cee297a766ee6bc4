"""Threat models: the L∞ and L2 balls around an image in pixel space, their projections, steepest-ascent
directions and random starting points.

Every radius is per image (a tensor [N]), so one batched attack can run each image at its own ε — the
minimal-ε bisection does. Random starts are drawn per image from a generator seeded with (seed, restart,
image index), so an image's start never depends on how the images are batched or which others run.
"""

from __future__ import annotations

from enum import StrEnum

import torch

DIVISION_GUARD = 1e-10
"""Added to gradient norms before dividing (torchattacks' `eps_for_division`): a zero gradient is no step."""


class Norm(StrEnum):
    LINF = "Linf"
    L2 = "L2"


def per_image(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[N] values shaped [N, 1, 1, 1] to broadcast over images [N, 3, H, W]."""
    return values.to(like.device, like.dtype).view(-1, *([1] * (like.dim() - 1)))


def project(delta: torch.Tensor, epsilon: torch.Tensor, norm: Norm) -> torch.Tensor:
    """The perturbation moved into the ball of radius `epsilon` [N] (L∞: clipped; L2: rescaled)."""
    radius = per_image(epsilon, delta)
    if norm is Norm.LINF:
        return torch.maximum(torch.minimum(delta, radius), -radius)
    lengths = delta.flatten(1).norm(dim=1)
    factor = torch.clamp(epsilon.to(delta.device, delta.dtype) / lengths, max=1.0)
    return delta * per_image(factor, delta)


def ascent_direction(gradient: torch.Tensor, norm: Norm) -> torch.Tensor:
    """The steepest-ascent step of unit size: sign(∇) for L∞, ∇ / ‖∇‖₂ for L2."""
    if norm is Norm.LINF:
        return gradient.sign()
    lengths = gradient.flatten(1).norm(dim=1) + DIVISION_GUARD
    return gradient / per_image(lengths, gradient)


def norms(delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: (‖δ‖∞, ‖δ‖₂)."""
    flat = delta.flatten(1)
    return flat.abs().amax(dim=1), flat.norm(dim=1)


def l2_diameter(height: int, width: int) -> float:
    """The L2 length of the pixel cube's diagonal, sqrt(3·H·W): the largest meaningful L2 radius."""
    return float((3 * height * width) ** 0.5)


class StartSampler:
    """Unit random starts (radius 1) per image: scaled by ε they are PGD's starting perturbations.

    L∞: uniform in [-1, 1] per pixel (Madry et al.). L2: a uniformly random direction at a radius drawn
    uniformly from [0, 1] (as torchattacks' PGDL2).
    """

    def __init__(self, seed: int, norm: Norm, shape: tuple[int, ...]) -> None:
        self.seed, self.norm, self.shape = seed, norm, shape

    def units(self, indices: torch.Tensor, restart: int) -> torch.Tensor:
        """[len(indices), *shape] unit starts of the images at `indices` (CPU, float32)."""
        out = torch.empty((len(indices), *self.shape))
        for row, index in enumerate(indices.tolist()):
            generator = torch.Generator().manual_seed(
                hash((self.seed, restart, index)) & 0x7FFF_FFFF_FFFF_FFFF
            )
            if self.norm is Norm.LINF:
                out[row] = torch.rand(self.shape, generator=generator) * 2 - 1
            else:
                direction = torch.randn(self.shape, generator=generator)
                radius = torch.rand((), generator=generator)
                out[row] = direction / direction.norm().clamp_min(DIVISION_GUARD) * radius
        return out
