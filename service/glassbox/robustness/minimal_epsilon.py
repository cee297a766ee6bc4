"""Each image's minimal ε: the smallest radius at which an attack fools the model, by bisection.

All images are searched at once: every round runs the attack once over the images still searched, each
at the midpoint of its own bracket (the attacks take a radius per image). An image the attack cannot fool
at the maximum gets +inf; one misclassified without attack gets 0. After k rounds the bracket is
max / 2^k wide and the answer is its upper end, a radius at which the attack did fool the image.
Bisection assumes success grows with ε, as it does for PGD; deterministic attack settings (a fixed start
per image, drawn once, scaled by ε) keep one image's runs comparable.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

FoolsAt = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""(image indices [M], radius per image [M]) → bool [M]: whether the attack fooled each image there."""


def minimal_epsilons(
    fools_at: FoolsAt,
    correct: torch.Tensor,
    max_epsilon: float,
    iterations: int,
    *,
    after_round: Callable[[], None] = lambda: None,
) -> torch.Tensor:
    """float64 [N]: per image its minimal ε (0 where `correct` is False, +inf where never fooled)."""
    result = torch.full((len(correct),), math.inf, dtype=torch.float64)
    result[~correct] = 0.0
    candidates = correct.nonzero().flatten()
    if not len(candidates):
        return result
    fooled = fools_at(candidates, torch.full((len(candidates),), max_epsilon))
    after_round()
    searched = candidates[fooled]
    low = torch.zeros(len(searched), dtype=torch.float64)
    high = torch.full((len(searched),), max_epsilon, dtype=torch.float64)
    for _ in range(iterations):
        if not len(searched):
            break
        middle = (low + high) / 2
        fooled = fools_at(searched, middle.float())
        high = torch.where(fooled, middle, high)
        low = torch.where(fooled, low, middle)
        after_round()
    result[searched] = high
    return result
