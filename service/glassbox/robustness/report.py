"""The typed robustness report and its JSON form, whose names follow RobustBench's model cards
(`clean_acc`, `robust_acc`, `threat_model`, `eps`, `corruptions_acc`, `n_ex`)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class AttackAccuracy:
    attack: str
    threat_model: str  # "Linf" or "L2"
    epsilon: float
    robust_accuracy: float
    attack_success_rate: float
    mean_linf: float
    mean_l2: float
    images: int


@dataclass(frozen=True)
class CorruptionAccuracy:
    corruption: str
    severity: int
    accuracy: float


@dataclass(frozen=True)
class MinimalEpsilons:
    """Per image the smallest ε found that fools the model (+inf: not fooled at `max_epsilon`)."""

    attack: str
    max_epsilon: float
    per_image: tuple[float, ...]

    def quantile(self, q: float) -> float:
        """The q-quantile over all images, +inf counted as the largest values (NaN for no images)."""
        if not self.per_image:
            return math.nan
        return float(torch.quantile(torch.tensor(self.per_image, dtype=torch.float64), q))

    @property
    def median(self) -> float:
        return self.quantile(0.5)


@dataclass(frozen=True)
class Example:
    image: int
    attack: str
    epsilon: float
    label: int
    original: torch.Tensor  # [3, H, W]
    adversarial: torch.Tensor  # [3, H, W]
    original_logits: torch.Tensor  # [C]
    adversarial_logits: torch.Tensor  # [C]


@dataclass(frozen=True)
class RobustnessReport:
    model: str
    version: str
    dataset: str
    images: int
    clean_accuracy: float
    attacks: tuple[AttackAccuracy, ...]
    worst_case: tuple[AttackAccuracy, ...]
    corruptions: tuple[CorruptionAccuracy, ...]
    minimal_epsilon: MinimalEpsilons | None
    forward_passes: int
    backward_passes: int
    wall_seconds: float
    warnings: tuple[str, ...]
    examples: tuple[Example, ...] = field(default=())

    @property
    def corruptions_accuracy(self) -> float:
        """Mean accuracy over every corruption and severity (RobustBench's `corruptions_acc`)."""
        if not self.corruptions:
            return math.nan
        return sum(c.accuracy for c in self.corruptions) / len(self.corruptions)

    def as_dict(self) -> dict[str, Any]:
        search = self.minimal_epsilon
        return {
            "model": self.model,
            "version": self.version,
            "dataset": self.dataset,
            "n_ex": self.images,
            "clean_acc": self.clean_accuracy,
            "attacks": [_attack(a) for a in self.attacks],
            "worst_case": [_attack(a) for a in self.worst_case],
            "corruptions": [
                {"corruption": c.corruption, "severity": c.severity, "corrupt_acc": c.accuracy}
                for c in self.corruptions
            ],
            "corruptions_acc": _number(self.corruptions_accuracy),
            "minimal_eps": None
            if search is None
            else {
                "attack": search.attack,
                "max_eps": search.max_epsilon,
                "median": _number(search.median),
                "q1": _number(search.quantile(0.25)),
                "q3": _number(search.quantile(0.75)),
                "per_image": [_number(value) for value in search.per_image],
            },
            "n_forward": self.forward_passes,
            "n_backward": self.backward_passes,
            "wall_seconds": self.wall_seconds,
            "warnings": list(self.warnings),
        }

    def to_json(self) -> str:
        """Strict JSON: +inf (robust up to the search's maximum) is written "inf", NaN as null."""
        return json.dumps(self.as_dict(), indent=2, allow_nan=False)


def _attack(a: AttackAccuracy) -> dict[str, Any]:
    return {
        "attack": a.attack,
        "threat_model": a.threat_model,
        "eps": a.epsilon,
        "robust_acc": a.robust_accuracy,
        "attack_success_rate": a.attack_success_rate,
        "mean_linf": a.mean_linf,
        "mean_l2": a.mean_l2,
        "n_ex": a.images,
    }


def _number(value: float) -> float | str | None:
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "inf"
    return value
