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
from glassbox.methods.registry import register

ESTIMATE_ROWS = 256
"""Masks upsampled at once while the map is summed (bounds the memory to 256 input-sized planes)."""


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


def rise_upsample(
    grids: torch.Tensor, shifts: torch.Tensor, grid_size: int, height: int, width: int
) -> torch.Tensor:
    """float32 [n, H, W]: each grid bilinearly upsampled (half-pixel centres, edges clamped) to
    (s + 1) · cell pixels a side, cropped at its shift."""
    cell_h, cell_w = math.ceil(height / grid_size), math.ceil(width / grid_size)
    size = ((grid_size + 1) * cell_h, (grid_size + 1) * cell_w)
    up = torch.nn.functional.interpolate(grids.unsqueeze(1), size=size, mode="bilinear", align_corners=False)[
        :, 0
    ]
    rows = shifts[:, 0, None] + torch.arange(height)  # [n, H]
    columns = shifts[:, 1, None] + torch.arange(width)  # [n, W]
    index = torch.arange(grids.shape[0])[:, None, None]
    return up[index, rows[:, :, None], columns[:, None, :]]


@register("rise")
class Rise(MaskSamplingMethod):
    """Probability-weighted mean of random smooth masks."""

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
        total = torch.zeros(scores.shape[1], height, width, dtype=torch.float64)
        for start in range(0, masks.shape[0], ESTIMATE_ROWS):
            stop = min(start + ESTIMATE_ROWS, masks.shape[0])
            up = self.upsample(masks[start:stop], height, width, start).double()
            total += torch.einsum("nk,nhw->khw", scores[start:stop], up)
        return (total / (masks.shape[0] * self.params.probability)).float()
