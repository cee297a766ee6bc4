"""LIME (Ribeiro, Singh & Guestrin 2016, "Why should I trust you?") on SLIC superpixels.

Random coalitions keep each superpixel with probability 1/2 (the others show the baseline value); a
Lasso (α = 0.01) of the target's pre-softmax score on the coalitions, each sample weighted by
exp(−d² / (2 kernel_width²)) with d the cosine distance between the composed input and the image, is the
surrogate. Its coefficients are the superpixel weights. These are the choices of Captum's `Lime` (with
its cosine kernel), which the maps are checked against; with the same seed the coalitions are the ones
Captum draws after `torch.manual_seed(seed)`. `num_features` keeps only the strongest superpixels and
refits on them, as the lime package's "highest weights" selection does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from glassbox.methods.superpixels import (
    MAX_SUPERPIXELS,
    Segmentation,
    SuperpixelMethod,
    fit_lime,
    lime_coalitions,
    lime_kernel,
)


@dataclass(frozen=True)
class LimeParams:
    samples: int = 500
    superpixels: int = 50
    kernel_width: float = 0.25
    seed: int = 0
    baseline_value: float = 0.5
    num_features: int = 0


class Lime(SuperpixelMethod):
    """A locally weighted sparse linear surrogate over superpixels."""

    name = "lime"
    Params = LimeParams

    def validate(self) -> None:
        super().validate()
        p = self.params
        self.require(
            p.kernel_width > 0 and math.isfinite(p.kernel_width),
            "kernel_width",
            f"must be > 0, got {p.kernel_width}",
        )
        self.require(
            0 <= p.num_features <= MAX_SUPERPIXELS,
            "num_features",
            f"must be in 0..{MAX_SUPERPIXELS} (0 = every superpixel), got {p.num_features}",
        )

    def coalitions(self, count: int, generator: torch.Generator) -> torch.Tensor:
        return lime_coalitions(count, self.params.samples, generator)

    def fit(self, segmentation: Segmentation, keep: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        weights = lime_kernel(segmentation, keep, self.params.baseline_value, self.params.kernel_width)
        return fit_lime(keep, scores, weights, self.params.num_features)
