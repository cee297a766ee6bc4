"""A model's score for one class: what Predict returns per class, what an attribution explains, and the
predictions around an adversarial image."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClassScore:
    """Class `index` (named `label`) with its softmax probability and its logit."""

    index: int
    label: str
    probability: float
    logit: float
