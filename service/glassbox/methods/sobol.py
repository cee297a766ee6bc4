"""Sobol attribution (Fel, Cadène, Chalvidal, Cord, Vigouroux & Serre 2021, "Look at the Variance!
Efficient Black-box Explanations with Sobol-based Sensitivity Analysis").

The image is split into a grid of s × s cells, each a random variable X_i in [0, 1] that blends its
pixels towards the baseline (x · X_i + b · (1 − X_i): the paper's inpainting perturbation). Two
quasi-Monte-Carlo matrices A and B [N, s²] come from the unscrambled Sobol sequence in 2s² dimensions
(the first s² coordinates and the last s²); C_i is A with column i taken from B. The total-order index
of cell i, the share of the score's variance that involves X_i, is Jansen's estimator

    ST_i = Σ_j (f(A_j) − f(C_ij))² / (2 N · Var f(A)),

f the target's pre-softmax score and Var the sample variance over A. Each cell's index is shown on its
pixels (nearest upsampling). N · (s² + 2) forward passes per image, shared by every target; where
f(A) does not vary the indices are undefined and the map is zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from glassbox.methods.mask_sampling import MaskSamplingMethod, upsample_nearest

MAX_GRID = 16
MAX_DESIGNS = 1024


@dataclass(frozen=True)
class SobolParams:
    grid_size: int = 8
    designs: int = 32
    baseline_value: float = 0.0


def sobol_masks(grid_size: int, designs: int) -> torch.Tensor:
    """float32 [designs · (s² + 2), s, s]: the rows of A, then B, then C_0, ..., C_{s²−1}."""
    d = grid_size * grid_size
    ab = torch.quasirandom.SobolEngine(2 * d, scramble=False).draw(designs, dtype=torch.float64)
    a, b = ab[:, :d], ab[:, d:]
    c = a.expand(d, -1, -1).clone()  # [d, N, d]
    cells = torch.arange(d)
    c[cells, :, cells] = b.T
    return torch.cat([a, b, c.reshape(d * designs, d)]).float().reshape(-1, grid_size, grid_size)


def jansen_total_order(scores: torch.Tensor, designs: int) -> torch.Tensor:
    """float64 [k, d]: Jansen's total-order indices from the scores [N · (d + 2), k] of A, B, C."""
    a = scores[:designs]
    c = scores[2 * designs :].reshape(-1, designs, scores.shape[1])  # [d, N, k]
    variance = a.var(dim=0)  # [k], unbiased
    squares = (a.unsqueeze(0) - c).square().sum(dim=1)  # [d, k]
    indices = squares / (2 * designs * variance)
    return torch.where(variance > 0, indices, torch.zeros_like(indices)).T


class Sobol(MaskSamplingMethod):
    """Total-order Sobol indices of grid cells, by quasi-Monte-Carlo and Jansen's estimator."""

    name = "sobol"
    Params = SobolParams

    def validate(self) -> None:
        p, spec = self.params, self.model.config.input
        most = min(MAX_GRID, spec.height, spec.width)
        self.require(2 <= p.grid_size <= most, "grid_size", f"must be in 2..{most}, got {p.grid_size}")
        self.require(
            2 <= p.designs <= MAX_DESIGNS, "designs", f"must be in 2..{MAX_DESIGNS}, got {p.designs}"
        )
        cap = self.call.settings.max_perturbations
        self.require(
            self.mask_count() <= cap,
            "designs",
            f"{p.designs} designs on a {p.grid_size}² grid make {self.mask_count()} masked inputs per image, "
            f"over the server's cap max_perturbations = {cap}",
        )
        self.require(
            0.0 <= p.baseline_value <= 1.0, "baseline_value", f"must be in [0, 1], got {p.baseline_value}"
        )

    def mask_count(self) -> int:
        return self.params.designs * (self.params.grid_size**2 + 2)

    def draw_masks(self) -> torch.Tensor:
        return sobol_masks(self.params.grid_size, self.params.designs)

    def upsample(self, masks: torch.Tensor, height: int, width: int, first: int) -> torch.Tensor:
        return upsample_nearest(masks, height, width)

    def estimate(self, masks: torch.Tensor, scores: torch.Tensor, height: int, width: int) -> torch.Tensor:
        s = self.params.grid_size
        indices = jansen_total_order(scores, self.params.designs).reshape(-1, s, s)
        return upsample_nearest(indices.float(), height, width)
