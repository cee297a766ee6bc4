"""DeepLiftShap (Lundberg & Lee 2017, "A Unified Approach to Interpreting Model Predictions"), as
Captum's `DeepLiftShap`: DeepLift's rescale-rule attributions averaged over a distribution of baselines,
which approximates the SHAP values of the pixels with those baselines as the background.

The baselines are `baselines` images of uniform noise in [0, 1] drawn from `seed` (`shap_baselines`,
shared with GradientShap); every (image, baseline) pair is one pair of rows of the rescale forward
(methods/deep_lift.py), every target one more backward of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from glassbox.methods.deep_lift import RescaleMethod

MAX_BASELINES = 64
"""Most baselines per image: each costs a pair of rows per image in the rescale forward."""
BASELINE_SEED_MIX = 0x5851F42D4C957F2D
"""Seeds the baselines' generator with seed × this (mod 2⁶⁴) + 1, apart from any other draw of `seed`."""


@dataclass(frozen=True)
class DeepLiftShapParams:
    baselines: int = 8
    seed: int = 0


def shap_baselines(seed: int, count: int, shape: tuple[int, ...]) -> torch.Tensor:
    """float32 [count, *shape] (CPU): the uniform-noise baselines that `seed` draws."""
    generator = torch.Generator().manual_seed((seed * BASELINE_SEED_MIX + 1) % 2**64)
    return torch.rand(count, *shape, generator=generator)


class DeepLiftShap(RescaleMethod):
    """Mean over the baselines of DeepLift's (x − x₀) · multipliers."""

    name = "deep_lift_shap"
    smoothable = True

    Params = DeepLiftShapParams

    def validate(self) -> None:
        p = self.params
        self.require(
            1 <= p.baselines <= MAX_BASELINES,
            "baselines",
            f"must be in 1..{MAX_BASELINES}, got {p.baselines}",
        )
        self.require(0 <= p.seed < 2**64, "seed", f"must be in 0..2^64-1, got {p.seed}")

    @property
    def rows_per_input(self) -> int:
        return self.params.baselines

    def planned_rows(self, images: int, targets: int) -> tuple[int, int]:
        return images, 2 * images * targets * self.params.baselines

    def baselines_of(self, inputs: torch.Tensor) -> torch.Tensor:
        drawn = shap_baselines(self.params.seed, self.params.baselines, tuple(inputs.shape[1:]))
        return drawn.to(inputs.device).repeat(inputs.shape[0], 1, 1, 1)
