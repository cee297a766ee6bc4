"""The typed results of `GlassboxClient.robustness`: the report of a robustness evaluation and the records
of the monitoring history (robustness.proto, as plain dataclasses with PIL images)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from PIL import Image as PILImage

from glassbox_client._generated.glassbox.v1 import robustness_pb2 as pb
from glassbox_client.images import image_from_png
from glassbox_client.types import ClassScore


@dataclass(frozen=True)
class AttackAccuracy:
    """Accuracy under one attack at one ε (pixel units); `threat_model` is "Linf" or "L2"."""

    attack: str
    epsilon: float
    robust_accuracy: float
    attack_success_rate: float
    mean_linf: float
    mean_l2: float
    images: int
    threat_model: str

    @classmethod
    def from_proto(cls, a: pb.AttackAccuracy) -> AttackAccuracy:
        return cls(
            a.attack,
            a.epsilon,
            a.robust_accuracy,
            a.attack_success_rate,
            a.mean_linf,
            a.mean_l2,
            a.images,
            a.threat_model,
        )


@dataclass(frozen=True)
class CorruptionAccuracy:
    corruption: str
    severity: int
    accuracy: float

    @classmethod
    def from_proto(cls, c: pb.CorruptionAccuracy) -> CorruptionAccuracy:
        return cls(c.corruption, c.severity, c.accuracy)


@dataclass(frozen=True)
class MinimalEpsilons:
    """The minimal-ε search: per image the smallest ε that fools the model, None when the attack does not
    fool it at `max_epsilon`; statistics count such images as +inf (NaN when the search was skipped)."""

    attack: str
    max_epsilon: float
    median: float
    lower_quartile: float
    upper_quartile: float
    per_image: list[float | None]

    @classmethod
    def from_proto(cls, s: pb.MinimalEpsilonSummary) -> MinimalEpsilons:
        per_image = [m.epsilon if m.HasField("epsilon") else None for m in s.images]
        return cls(s.attack, s.max_epsilon, s.median, s.lower_quartile, s.upper_quartile, per_image)


@dataclass(frozen=True)
class AdversarialExample:
    """One adversarial example: the original, the adversarial image and the amplified perturbation side
    by side (`picture`), with the true label and both predictions."""

    image: int
    attack: str
    epsilon: float
    label: int
    original_prediction: ClassScore
    adversarial_prediction: ClassScore
    picture: PILImage.Image

    @classmethod
    def from_proto(cls, e: pb.AdversarialExample) -> AdversarialExample:
        picture = image_from_png(e.png)
        assert picture is not None
        original, adversarial = (
            ClassScore.from_proto(e.original_prediction),
            ClassScore.from_proto(e.adversarial_prediction),
        )
        return cls(e.image, e.attack, e.epsilon, e.label, original, adversarial, picture)


def _accuracy_at(attacks: Sequence[AttackAccuracy], attack: str, epsilon: float) -> float:
    """The robust accuracy of `attack` at the reported ε closest to `epsilon` (within float32 rounding)."""
    for entry in attacks:
        if entry.attack == attack and math.isclose(entry.epsilon, epsilon, rel_tol=1e-6, abs_tol=1e-7):
            return entry.robust_accuracy
    have = sorted({(a.attack, round(a.epsilon, 6)) for a in attacks})
    raise KeyError(f"no result for {attack} at ε={epsilon:.6g}; the report has {have}")


@dataclass(frozen=True)
class RobustnessReport:
    """A finished robustness evaluation, every number typed; `json` is the RobustBench-like JSON report
    (clean_acc, robust_acc, eps, ...) parsed, `plot` accuracy against ε per attack."""

    job_id: str
    model: str
    version: str
    images: int
    clean_accuracy: float
    attacks: list[AttackAccuracy]
    worst_case: list[AttackAccuracy]
    corruptions: list[CorruptionAccuracy]
    minimal_epsilon: MinimalEpsilons
    forward_passes: int
    backward_passes: int
    wall_seconds: float
    warnings: list[str]
    json: dict[str, Any]
    plot: PILImage.Image
    examples: list[AdversarialExample]

    @classmethod
    def from_proto(cls, job_id: str, r: pb.RobustnessEvaluationResult) -> RobustnessReport:
        plot = image_from_png(r.plot_png)
        assert plot is not None
        return cls(
            job_id=job_id,
            model=r.model,
            version=r.version,
            images=r.images,
            clean_accuracy=r.clean_accuracy,
            attacks=[AttackAccuracy.from_proto(a) for a in r.attacks],
            worst_case=[AttackAccuracy.from_proto(a) for a in r.worst_case],
            corruptions=[CorruptionAccuracy.from_proto(c) for c in r.corruptions],
            minimal_epsilon=MinimalEpsilons.from_proto(r.minimal_epsilon),
            forward_passes=r.passes.forward,
            backward_passes=r.passes.backward,
            wall_seconds=r.wall_seconds,
            warnings=list(r.warnings),
            json=json.loads(r.json),
            plot=plot,
            examples=[AdversarialExample.from_proto(e) for e in r.examples],
        )

    def robust_accuracy(self, attack: str, epsilon: float) -> float:
        """Accuracy under `attack` (its report name, e.g. "pgd_linf") at `epsilon`; KeyError if not run."""
        return _accuracy_at(self.attacks, attack, epsilon)

    def _repr_png_(self) -> bytes:
        """Jupyter shows the accuracy-against-ε plot."""
        from glassbox_client.display import png_bytes

        return png_bytes(self.plot)


@dataclass(frozen=True)
class RobustnessRecord:
    """One recorded monitoring evaluation (a summary; GetJob on `job_id` has the full report while it is
    kept). `trigger` is "new_version" or "schedule"."""

    model: str
    version: str
    time: datetime
    reference_set: str
    trigger: str
    images: int
    clean_accuracy: float
    attacks: list[AttackAccuracy]
    corruptions: list[CorruptionAccuracy]
    minimal_epsilon_median: float
    warnings: list[str]
    job_id: str

    @classmethod
    def from_proto(cls, r: pb.RobustnessRecord) -> RobustnessRecord:
        return cls(
            model=r.model,
            version=r.version,
            time=r.time.ToDatetime(tzinfo=UTC),
            reference_set=r.reference_set,
            trigger=r.trigger,
            images=r.images,
            clean_accuracy=r.clean_accuracy,
            attacks=[AttackAccuracy.from_proto(a) for a in r.attacks],
            corruptions=[CorruptionAccuracy.from_proto(c) for c in r.corruptions],
            minimal_epsilon_median=r.minimal_epsilon_median,
            warnings=list(r.warnings),
            job_id=r.job_id,
        )

    def robust_accuracy(self, attack: str, epsilon: float) -> float:
        return _accuracy_at(self.attacks, attack, epsilon)
