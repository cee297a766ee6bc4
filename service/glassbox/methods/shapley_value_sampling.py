"""Shapley value sampling (Castro, Gómez & Tejada 2009, "Polynomial calculation of the Shapley value
based on sampling") on superpixels or a grid, as Captum's `ShapleyValueSampling` with a feature mask.

Each of `samples` random permutations of the groups starts from the baseline image and reveals the groups
one by one; a group's attribution is the mean, over the permutations, of the change of the target's
pre-softmax score when it was revealed. The permutations are `torch.randperm` draws from a generator
seeded with `seed`: Captum's after `torch.manual_seed(seed)`. Every permutation's prefixes are
evaluated in one batched pass shared by every target; a prefix two permutations share (the empty one,
often single groups) is evaluated once, and the whole image not at all (its logits come with the call).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from glassbox.methods.feature_groups import FeatureGroupMethod


@dataclass(frozen=True)
class ShapleyValueSamplingParams:
    samples: int = 25
    superpixels: int = 50
    grid: bool = False
    baseline_value: float = 0.5
    seed: int = 0


class ShapleyValueSampling(FeatureGroupMethod):
    """Mean marginal contribution of each group over random orders."""

    name = "shapley_value_sampling"
    Params = ShapleyValueSamplingParams

    def validate(self) -> None:
        super().validate()
        p, settings = self.params, self.call.settings
        self.require(
            1 <= p.samples <= settings.max_samples,
            "samples",
            f"must be in 1..{settings.max_samples} (the server's max_samples), got {p.samples}",
        )
        self.require(0 <= p.seed < 2**64, "seed", f"must be in 0..2^64-1, got {p.seed}")
        self.require(
            p.samples * p.superpixels <= settings.max_perturbations,
            "samples",
            f"{p.samples} permutations of {p.superpixels} superpixels make {p.samples * p.superpixels} "
            f"inputs per image, over the server's cap max_perturbations = {settings.max_perturbations}",
        )

    def perturbations_per_image(self) -> int:
        return self.params.samples * self.params.superpixels

    def coalitions(self, count: int) -> torch.Tensor:
        """Per permutation: the empty coalition, then each prefix (count + 1 rows, the last the whole)."""
        generator = torch.Generator().manual_seed(self.params.seed)
        revealed = torch.arange(count + 1)[:, None] > torch.arange(count)[None, :]  # row k: first k shown
        rows = []
        for _ in range(self.params.samples):
            order = torch.randperm(count, generator=generator)
            prefix = torch.zeros(count + 1, count, dtype=torch.bool)
            prefix[:, order] = revealed
            rows.append(prefix)
        return torch.cat(rows)

    def weights(self, keep: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        samples, count = self.params.samples, keep.shape[1]
        prefixes = keep.view(samples, count + 1, count)
        revealed = (prefixes[:, 1:] & ~prefixes[:, :-1]).to(torch.uint8).argmax(dim=2)  # group of each step
        steps = scores.view(samples, count + 1)
        totals = torch.zeros(count, dtype=torch.float64)
        totals.index_add_(0, revealed.reshape(-1), (steps[:, 1:] - steps[:, :-1]).reshape(-1))
        return totals / samples
