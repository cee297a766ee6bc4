"""FEM (Feature Explanation Method): channels weighted by how often they fire far above their mean; no
gradients, and the same map for every target.

Fuad et al. 2020, "Features understanding in 3D CNNs for actions recognition in video" (IPTA): per channel
a k-sigma threshold τ_c = mean(A_c) + k · std(A_c) over the positions, the weight w_c = the fraction of
positions above it, L = ReLU(Σ_c w_c A_c). As pytorch-grad-cam's `FEM` (population standard deviation).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from glassbox.methods.cam import ActivationCam

MAX_K = 10.0
"""Largest k accepted: beyond ten standard deviations no position of a real layer passes."""


@dataclass(frozen=True)
class FemParams:
    layer: str = ""
    k: float = 2.0


class Fem(ActivationCam):
    """w_c = mean over positions of [A_c > mean(A_c) + k · std(A_c)]."""

    name = "fem"
    Params = FemParams

    def validate(self) -> None:
        super().validate()
        k = self.params.k
        self.require(0.0 <= k <= MAX_K, "k", f"must be in [0, {MAX_K:g}], got {k:g}")

    def cam_image(self, activations: torch.Tensor) -> torch.Tensor:
        means = activations.mean(dim=(2, 3), keepdim=True)
        stds = activations.std(dim=(2, 3), keepdim=True, correction=0)
        weights = (activations > means + self.params.k * stds).float().mean(dim=(2, 3), keepdim=True)
        return (weights * activations).sum(dim=1)
