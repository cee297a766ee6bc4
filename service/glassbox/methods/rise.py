"""RISE (Petsiuk, Das & Saenko 2018, "RISE: Randomized Input Sampling for Explanation of Black-box
Models").

N random binary grids of s × s cells (each kept with probability p) are upsampled bilinearly to
(s + 1) cells of ceil(side / s) pixels and cropped at a random shift in [0, cell) (the paper's smooth,
shifted masks); the masked image is I ⊙ M (masked pixels take the baseline value, 0 in the paper). The
map is the Monte-Carlo estimate of E[P(target | I ⊙ M) · M] / p: Σ_i P_i · M_i / (N · p), with P the
softmax probability of the target. Every target of an image shares the N forward passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from glassbox.methods.mask_sampling import MaskSamplingMethod


@dataclass(frozen=True)
class RiseParams:
    masks: int = 2000
    grid_size: int = 7
    probability: float = 0.5
    seed: int = 0
    baseline_value: float = 0.0


def rise_masks(params: RiseParams, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The grids (float32 [N, s, s] of 0/1) and crop shifts (int64 [N, 2], row and column) of `params`."""
    generator = torch.Generator().manual_seed(params.seed)
    s = params.grid_size
    grids = (torch.rand(params.masks, s, s, generator=generator) < params.probability).float()
    cells = torch.tensor([math.ceil(height / s), math.ceil(width / s)], dtype=torch.float64)
    shifts = (torch.rand(params.masks, 2, generator=generator, dtype=torch.float64) * cells).long()
    return grids, shifts


def interpolation_matrix(cells: int, size: int) -> torch.Tensor:
    """float64 [size, cells]: row y holds the weights torch's bilinear interpolation (half-pixel centres,
    `align_corners=False`, edges clamped) gives the `cells` grid values at output pixel y."""
    source = ((torch.arange(size, dtype=torch.float64) + 0.5) * (cells / size) - 0.5).clamp(min=0.0)
    low = source.floor().long().clamp(max=cells - 1)
    high = (low + 1).clamp(max=cells - 1)
    fraction = source - low
    matrix = torch.zeros(size, cells, dtype=torch.float64)
    rows = torch.arange(size)
    matrix[rows, low] += 1.0 - fraction
    matrix[rows, high] += fraction
    return matrix


def crop_factor(shifts: torch.Tensor, grid_size: int, side: int) -> torch.Tensor:
    """float64 [n, side, s]: along one axis, the interpolation rows that a crop at each shift keeps.
    Bilinear upsampling is separable and cropping picks rows of each factor, so mask_i = R_i · G_i · C_iᵀ
    with R_i the row factor and C_i the column factor."""
    along = interpolation_matrix(grid_size, (grid_size + 1) * math.ceil(side / grid_size))
    return along[shifts[:, None] + torch.arange(side)]


def rise_upsample(
    grids: torch.Tensor, shifts: torch.Tensor, grid_size: int, height: int, width: int
) -> torch.Tensor:
    """float32 [n, H, W]: each grid bilinearly upsampled (half-pixel centres, edges clamped) to
    (s + 1) · cell pixels a side, cropped at its shift — as two small matrix products per mask instead
    of upsampling the whole (s + 1)-cell plane and gathering the crop."""
    rows = crop_factor(shifts[:, 0], grid_size, height).float()
    columns = crop_factor(shifts[:, 1], grid_size, width).float()
    return torch.bmm(torch.bmm(rows, grids), columns.transpose(1, 2))


def rise_estimate(
    grids: torch.Tensor, shifts: torch.Tensor, scores: torch.Tensor, grid_size: int, height: int, width: int
) -> torch.Tensor:
    """float64 [k, H, W]: Σ_i scores[i, k] · mask_i without forming a full-size mask. Masks sharing a row
    shift share their row factor, so Σ_i P_i R_i G_i C_iᵀ = Σ_a R_a (Σ_{i: shift_i = a} P_i G_i C_iᵀ):
    the inner sums are [s, W], one per row shift."""
    columns = crop_factor(shifts[:, 1], grid_size, width)
    right = torch.bmm(grids.double(), columns.transpose(1, 2))  # [n, s, W]
    cell_h = math.ceil(height / grid_size)
    by_shift = torch.zeros(scores.shape[1], cell_h, grid_size, width, dtype=torch.float64)
    by_shift.index_add_(1, shifts[:, 0], scores.T[:, :, None, None] * right[None])
    shift_rows = crop_factor(torch.arange(cell_h), grid_size, height)  # [cell_h, H, s]
    return torch.einsum("ahs,kasw->khw", shift_rows, by_shift)


class Rise(MaskSamplingMethod):
    """Probability-weighted mean of random smooth masks."""

    name = "rise"
    Params = RiseParams

    def validate(self) -> None:
        p, spec = self.params, self.model.config.input
        cap = self.call.settings.max_perturbations
        side = min(spec.height, spec.width)
        self.require(1 <= p.masks <= cap, "masks", f"must be in 1..{cap} (max_perturbations), got {p.masks}")
        self.require(
            2 <= p.grid_size <= side, "grid_size", f"must be in 2..{side} (the input side), got {p.grid_size}"
        )
        self.require(0.0 < p.probability < 1.0, "probability", f"must be in (0, 1), got {p.probability}")
        self.require(0 <= p.seed < 2**64, "seed", f"must be in 0..2^64-1, got {p.seed}")
        self.require(
            0.0 <= p.baseline_value <= 1.0, "baseline_value", f"must be in [0, 1], got {p.baseline_value}"
        )

    def mask_count(self) -> int:
        return self.params.masks

    def draw_masks(self) -> torch.Tensor:
        spec = self.model.config.input
        grids, self.shifts = rise_masks(self.params, spec.height, spec.width)
        return grids

    def upsample(self, masks: torch.Tensor, height: int, width: int, first: int) -> torch.Tensor:
        shifts = self.shifts[first : first + masks.shape[0]]
        return rise_upsample(masks, shifts, self.params.grid_size, height, width)

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits.double(), dim=1)

    def estimate(self, masks: torch.Tensor, scores: torch.Tensor, height: int, width: int) -> torch.Tensor:
        total = rise_estimate(masks, self.shifts, scores, self.params.grid_size, height, width)
        return (total / (masks.shape[0] * self.params.probability)).float()
