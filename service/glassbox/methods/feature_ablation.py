"""Feature ablation on superpixels or a grid, as Captum's `FeatureAblation` with a feature mask: each
group's attribution is the drop of the target's pre-softmax score when that group alone shows the
baseline value (Zeiler & Fergus 2014's occlusion with the image's own regions as windows).

One forward per group, shared by every target; the unablated image's scores are the call's logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from glassbox.methods.feature_groups import FeatureGroupMethod


@dataclass(frozen=True)
class FeatureAblationParams:
    superpixels: int = 50
    grid: bool = False
    baseline_value: float = 0.5


class FeatureAblation(FeatureGroupMethod):
    """score(image) − score(image with one group at the baseline), per group."""

    name = "feature_ablation"
    Params = FeatureAblationParams

    def perturbations_per_image(self) -> int:
        return self.params.superpixels

    def coalitions(self, count: int) -> torch.Tensor:
        keep = torch.ones(count + 1, count, dtype=torch.bool)
        keep[1:].fill_diagonal_(False)
        return keep

    def weights(self, keep: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return scores[0] - scores[1:]
