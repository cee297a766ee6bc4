"""KernelSHAP (Lundberg & Lee 2017, "A unified approach to interpreting model predictions") on SLIC
superpixels.

Coalitions are drawn from the Shapley kernel (the whole image and the empty one first, then sizes with
probability ∝ (M − 1) / (k (M − k)) and uniform subsets of that size); the superpixels' Shapley values are
the least-squares fit of the target's pre-softmax score on the coalitions under the efficiency
constraint Σ φ = score(image) − score(baseline), which holds exactly. The sampler is Captum's
`KernelShap` sampler (the same seed draws the same coalitions); Captum imposes the constraint only
approximately, by weighting the two end coalitions 10⁶ in a float32 regression.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from glassbox.methods.superpixels import Segmentation, SuperpixelMethod, fit_shapley, shapley_coalitions


@dataclass(frozen=True)
class KernelShapParams:
    samples: int = 500
    superpixels: int = 50
    seed: int = 0
    baseline_value: float = 0.5


class KernelShap(SuperpixelMethod):
    """Shapley values of the superpixels from Shapley-kernel coalitions."""

    name = "kernel_shap"
    Params = KernelShapParams
    min_samples = 2  # the whole image and the empty coalition fix the constraint

    def coalitions(self, count: int, generator: torch.Generator) -> torch.Tensor:
        return shapley_coalitions(count, self.params.samples, generator)

    def fit(self, segmentation: Segmentation, keep: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return fit_shapley(keep, scores)
