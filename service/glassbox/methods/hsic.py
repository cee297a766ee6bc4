"""HSIC attribution (Novello, Fel & Vigouroux 2022, "Making Sense of Dependence: Efficient Black-box
Explanations Using Dependence Measure").

The image is split into a grid of s × s cells, each switched on or off by a binary variable X_i; N
designs come from a Latin hypercube in [0, 1]^{s²} thresholded at 1/2 (so each cell is on in half the
designs), and a design shows the image where a cell is on and the baseline where it is off. The
dependence of the target's pre-softmax score Y on cell i is the Hilbert–Schmidt independence
criterion, estimated as

    HSIC(X_i, Y) = tr(K_i H L H) / (N − 1)²,

K_i the Dirac kernel [X_ij = X_il], L the Gaussian kernel exp(−(y_j − y_l)² / (2 σ²)) with σ the
median of the pairwise distances |y_j − y_l| (j < l), H = I − 11ᵀ/N. Each cell's value is shown on its
pixels (nearest upsampling). N forward passes per image, shared by every target; where the scores do
not vary (σ = 0) nothing depends on anything and the map is zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from glassbox.methods.mask_sampling import MaskSamplingMethod, upsample_nearest

MAX_GRID = 32
MIN_DESIGNS = 4


@dataclass(frozen=True)
class HsicParams:
    grid_size: int = 8
    designs: int = 1500
    seed: int = 0
    baseline_value: float = 0.0


def hsic_masks(grid_size: int, designs: int, seed: int) -> torch.Tensor:
    """float32 [N, s, s] of 0/1: a Latin hypercube (per cell a random permutation of the N strata, a
    uniform point in each) thresholded at 1/2."""
    generator = torch.Generator().manual_seed(seed)
    d = grid_size * grid_size
    strata = torch.stack([torch.randperm(designs, generator=generator) for _ in range(d)], dim=1)
    points = (strata + torch.rand(designs, d, generator=generator, dtype=torch.float64)) / designs
    return (points > 0.5).float().reshape(designs, grid_size, grid_size)


def hsic_indices(masks: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """float64 [k, d]: HSIC of every cell of the binary masks [N, s, s] with each score column [N, k]."""
    n = masks.shape[0]
    on = masks.reshape(n, -1).double()
    off = 1.0 - on
    out = []
    for y in scores.T:
        width = torch.quantile(torch.pdist(y[:, None]), 0.5)
        if width == 0:
            out.append(torch.zeros(on.shape[1], dtype=torch.float64))
            continue
        gram = torch.exp(-(y[:, None] - y[None, :]).square() / (2 * width**2))
        # H L H without the two N³ products: subtract the row and column means, add the total mean
        centred = gram - gram.mean(dim=0, keepdim=True) - gram.mean(dim=1, keepdim=True) + gram.mean()
        # tr(K_i Lc) with K_i = on_i on_iᵀ + off_i off_iᵀ (the Dirac kernel of a binary variable)
        trace = ((centred @ on) * on).sum(dim=0) + ((centred @ off) * off).sum(dim=0)
        out.append(trace / (n - 1) ** 2)
    return torch.stack(out)


class Hsic(MaskSamplingMethod):
    """Dependence (HSIC) between each grid cell's presence and the target's score."""

    name = "hsic"
    Params = HsicParams

    def validate(self) -> None:
        p, spec = self.params, self.model.config.input
        most = min(MAX_GRID, spec.height, spec.width)
        self.require(2 <= p.grid_size <= most, "grid_size", f"must be in 2..{most}, got {p.grid_size}")
        cap = self.call.settings.max_perturbations
        self.require(
            MIN_DESIGNS <= p.designs <= cap,
            "designs",
            f"must be in {MIN_DESIGNS}..{cap} (max_perturbations), got {p.designs}",
        )
        self.require(0 <= p.seed < 2**64, "seed", f"must be in 0..2^64-1, got {p.seed}")
        self.require(
            0.0 <= p.baseline_value <= 1.0, "baseline_value", f"must be in [0, 1], got {p.baseline_value}"
        )

    def mask_count(self) -> int:
        return self.params.designs

    def draw_masks(self) -> torch.Tensor:
        return hsic_masks(self.params.grid_size, self.params.designs, self.params.seed)

    def upsample(self, masks: torch.Tensor, height: int, width: int, first: int) -> torch.Tensor:
        return upsample_nearest(masks, height, width)

    def estimate(self, masks: torch.Tensor, scores: torch.Tensor, height: int, width: int) -> torch.Tensor:
        s = self.params.grid_size
        return upsample_nearest(hsic_indices(masks, scores).reshape(-1, s, s).float(), height, width)
