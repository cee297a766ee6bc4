"""The typed evaluation report, its verdicts and its JSON form.

Every check compares a method with what chance gives: faithfulness and ROAD with the random reference
map measured on the same images, localisation with a uniform map (the region's area fraction),
randomisation with the job's similarity threshold, robustness with the job's sensitivity threshold.
Sparseness is reported, never judged.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import torch

OBJECT_REGION = "object"


@dataclass
class Curve:
    x: list[float]
    y: list[float]
    auc: float


@dataclass
class RegionScore:
    region: str
    pointing_hit_rate: float | None
    relevance_mass: float | None
    area_fraction: float


@dataclass
class RandomisationStep:
    layer: str
    spearman: float
    ssim: float


@dataclass
class Randomisation:
    cascading: list[RandomisationStep] = field(default_factory=list)
    independent: list[RandomisationStep] = field(default_factory=list)


@dataclass
class MetricCost:
    metric: str
    budget_forward_passes: int
    forward_passes: int = 0
    backward_passes: int = 0
    seconds: float = 0.0


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class MethodReport:
    name: str
    method: str
    deletion: Curve | None = None
    insertion: Curve | None = None
    road: Curve | None = None
    localisation: list[RegionScore] = field(default_factory=list)
    randomisation: Randomisation | None = None
    max_sensitivity: float | None = None
    sparseness: float | None = None
    checks: list[Check] = field(default_factory=list)
    verdict: str = ""
    costs: list[MetricCost] = field(default_factory=list)


@dataclass
class Examples:
    """What the report picture shows: a few images and every method's maps of them."""

    images: torch.Tensor  # [K, 3, H, W]
    maps: dict[str, torch.Tensor] = field(default_factory=dict)  # method name → [K, H, W]


@dataclass
class EvaluationReport:
    model: str
    version: str
    images: int
    methods: list[MethodReport]
    random_reference: MethodReport
    examples: Examples

    def to_json(self) -> str:
        """The report's numbers as JSON (the examples' pixels are in the PNG, not here)."""
        body = {
            "model": self.model,
            "version": self.version,
            "images": self.images,
            "methods": [asdict(method) for method in self.methods],
            "random_reference": asdict(self.random_reference),
        }
        return json.dumps(body, indent=2, allow_nan=False)


def curve(x: torch.Tensor, y: torch.Tensor, auc: float) -> Curve:
    return Curve([round(float(v), 6) for v in x], [round(float(v), 6) for v in y], float(auc))


def judge(
    method: MethodReport, reference: MethodReport, similarity_threshold: float, sensitivity_threshold: float
) -> None:
    """Fill in the method's checks and verdict line."""
    checks: list[Check] = []
    if method.deletion is not None and reference.deletion is not None:
        passed = method.deletion.auc < reference.deletion.auc
        detail = f"deletion AUC {method.deletion.auc:.3f} vs random {reference.deletion.auc:.3f}"
        if method.insertion is not None and reference.insertion is not None:
            passed = passed and method.insertion.auc > reference.insertion.auc
            detail += f", insertion AUC {method.insertion.auc:.3f} vs random {reference.insertion.auc:.3f}"
        checks.append(Check("faithfulness", passed, detail))
    elif method.insertion is not None and reference.insertion is not None:
        passed = method.insertion.auc > reference.insertion.auc
        detail = f"insertion AUC {method.insertion.auc:.3f} vs random {reference.insertion.auc:.3f}"
        checks.append(Check("faithfulness", passed, detail))
    if method.road is not None and reference.road is not None:
        checks.append(
            Check(
                "road",
                method.road.auc < reference.road.auc,
                f"ROAD accuracy area {method.road.auc:.3f} vs random {reference.road.auc:.3f}",
            )
        )
    target = next((score for score in method.localisation if score.region == OBJECT_REGION), None)
    if target is not None:
        chance = target.area_fraction
        hit, mass = target.pointing_hit_rate, target.relevance_mass
        passed = (hit is None or hit > chance) and (mass is None or mass > chance)
        parts = [
            f"pointing {hit:.0%}" if hit is not None else "",
            f"mass {mass:.2f}" if mass is not None else "",
        ]
        detail = ", ".join(part for part in parts if part) + f" on the object (chance {chance:.2f})"
        checks.append(Check("localisation", passed, detail))
    if method.randomisation is not None and method.randomisation.cascading:
        final = method.randomisation.cascading[-1]
        checks.append(
            Check(
                "randomisation",
                final.spearman < similarity_threshold,
                f"rank correlation {final.spearman:.2f} fully randomised (pass < {similarity_threshold:g})",
            )
        )
    if method.max_sensitivity is not None:
        checks.append(
            Check(
                "robustness",
                method.max_sensitivity <= sensitivity_threshold,
                f"max-sensitivity {method.max_sensitivity:.2f} (pass <= {sensitivity_threshold:g})",
            )
        )
    method.checks = checks
    method.verdict = verdict_line(method)


def verdict_line(method: MethodReport) -> str:
    """`name: passed a, b; failed c; Gini 0.61; mass object 0.71, patch 0.05`."""
    passed = [check.name for check in method.checks if check.passed]
    failed = [check.name for check in method.checks if not check.passed]
    parts = [f"passed {', '.join(passed)}" if passed else "passed none"]
    if failed:
        parts.append(f"failed {', '.join(failed)}")
    if method.sparseness is not None:
        parts.append(f"Gini {method.sparseness:.2f}")
    masses = [
        f"{s.region} {s.relevance_mass:.2f}" for s in method.localisation if s.relevance_mass is not None
    ]
    if masses:
        parts.append("relevance mass " + ", ".join(masses))
    return f"{method.name}: " + "; ".join(parts)
