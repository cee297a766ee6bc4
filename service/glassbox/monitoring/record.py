"""What one explanation check found for a model version: one record per check, kept in the monitoring
history (newest first) and published as gauges."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

PASS, DRIFT = "pass", "drift"
PREVIOUS, BASELINE = "previous", "baseline"


@dataclass(frozen=True)
class RegionMass:
    """The share of a map's positive relevance inside a named region, and the region's share of pixels."""

    region: str
    mass: float
    area_fraction: float


@dataclass(frozen=True)
class Similarity:
    """Mean similarity over the reference images of this version's maps to `baseline_version`'s maps of
    the same images and targets; `relation` says why that version was compared ("previous", "baseline"
    or both, comma-separated)."""

    baseline_version: str
    relation: str
    spearman: float
    ssim: float
    top_k_overlap: float


@dataclass(frozen=True)
class Agreement:
    """The share of reference images both versions give the same top-1 class."""

    baseline_version: str
    relation: str
    prediction_agreement: float


@dataclass(frozen=True)
class MethodCheck:
    """One method's measurements and verdict. Localisation is None when the set has no object masks."""

    method: str
    pointing_game: float | None
    relevance_mass: float | None
    regions: tuple[RegionMass, ...]
    deletion_auc: float
    insertion_auc: float
    similarity: tuple[Similarity, ...]
    verdict: str  # PASS or DRIFT
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class ExplanationRecord:
    model: str
    version: str
    time: float  # Unix seconds
    reference_set: str
    trigger: str  # "new_version" or "schedule"
    images: int
    methods: tuple[MethodCheck, ...]
    agreements: tuple[Agreement, ...]
    reasons: tuple[str, ...]  # version-level findings (prediction agreement) and notes
    budget_forward_passes: int
    forward_passes: int
    backward_passes: int
    seconds: float
    check_id: str

    @property
    def drifted(self) -> bool:
        return any(method.verdict == DRIFT for method in self.methods)

    def method(self, name: str) -> MethodCheck:
        return next(method for method in self.methods if method.method == name)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @property
    def job_id(self) -> str:
        """The history's record id (the lease and publish logic key records by it)."""
        return self.check_id

    @classmethod
    def from_json(cls, text: str | bytes) -> ExplanationRecord:
        raw = json.loads(text)
        raw["methods"] = tuple(
            MethodCheck(
                **{
                    **method,
                    "regions": tuple(RegionMass(**r) for r in method["regions"]),
                    "similarity": tuple(Similarity(**s) for s in method["similarity"]),
                    "reasons": tuple(method["reasons"]),
                }
            )
            for method in raw["methods"]
        )
        raw["agreements"] = tuple(Agreement(**a) for a in raw["agreements"])
        raw["reasons"] = tuple(raw["reasons"])
        return cls(**raw)
