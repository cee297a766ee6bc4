"""The checked request of a robustness evaluation: which images, which attacks and corruptions, and the
minimal-ε search. Built by `wire.robustness` (proto → core) after every bound was checked, so the evaluator
can trust it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import torch

from glassbox.backends.base import Model
from glassbox.common.threat import Norm
from glassbox.models.datasets import LabelledImages
from glassbox.robustness.corruptions import Corruption
from glassbox.robustness.gradient_attacks import GradientAttack
from glassbox.robustness.square import SquareAttack

DEFAULT_EPSILONS = (1 / 255, 2 / 255, 4 / 255, 8 / 255)


class AttackMethod(StrEnum):
    FGSM = "fgsm"
    PGD_LINF = "pgd_linf"
    PGD_L2 = "pgd_l2"
    SQUARE_LINF = "square_linf"

    @property
    def norm(self) -> Norm:
        return Norm.L2 if self is AttackMethod.PGD_L2 else Norm.LINF

    @property
    def white_box(self) -> bool:
        return self is not AttackMethod.SQUARE_LINF


class Goal(StrEnum):
    UNTARGETED = "untargeted"
    TARGET_CLASS = "targeted"
    LEAST_LIKELY = "least_likely"


@dataclass(frozen=True)
class AttackSpec:
    method: AttackMethod
    epsilons: tuple[float, ...] = DEFAULT_EPSILONS
    steps: int = 10
    relative_step_size: float | None = None
    random_start: bool = True
    restarts: int = 1
    final_iterate_only: bool = False
    goal: Goal = Goal.UNTARGETED
    target_class: int | None = None
    queries: int = 1000
    p_init: float = 0.8

    @property
    def name(self) -> str:
        """fgsm, pgd_linf, ... with `_targeted` or `_least_likely` for a targeted goal."""
        return self.method.value if self.goal is Goal.UNTARGETED else f"{self.method.value}_{self.goal.value}"

    def gradient(self) -> GradientAttack:
        return GradientAttack(
            norm=self.method.norm,
            steps=self.steps,
            relative_step_size=self.relative_step_size,
            random_start=self.random_start,
            restarts=self.restarts,
            final_iterate_only=self.final_iterate_only,
            single_step=self.method is AttackMethod.FGSM,
        )

    def square(self) -> SquareAttack:
        return SquareAttack(queries=self.queries, p_init=self.p_init)


@dataclass(frozen=True)
class MinimalEpsilonSpec:
    attack_index: int = 0
    max_epsilon: float = 8 / 255
    iterations: int = 8


@dataclass(frozen=True)
class RobustnessEvaluation:
    """A checked evaluation request; `data` has labels."""

    model: Model
    data: LabelledImages
    attacks: tuple[AttackSpec, ...]
    corruptions: tuple[tuple[Corruption, tuple[int, ...]], ...]
    minimal_epsilon: MinimalEpsilonSpec | None
    examples: int = 4
    set_name: str = ""

    @property
    def labels(self) -> torch.Tensor:
        return self.data.require_labels("images")

    def attack_names(self) -> list[str]:
        """Each attack's name in the report; a name used twice gets its position appended (pgd_linf_2)."""
        names = [attack.name for attack in self.attacks]
        return [name if names.count(name) == 1 else f"{name}_{i}" for i, name in enumerate(names)]
