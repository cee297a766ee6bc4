"""The [monitoring] section of a model.toml (docs/monitoring.md) and the evaluation it asks for:

[monitoring]
reference_set = "shapes-val"     # a named set of the model (required)
interval_hours = 24              # 0 = only when a version has no history yet
images = 0                       # first N images of the set; 0 = all
attacks = ["pgd_linf", "fgsm"]   # default ["pgd_linf"] (["square_linf"] for ONNX models)
epsilons = [0.0039, 0.0078]      # default 1/255, 2/255, 4/255, 8/255
corruptions = true               # all five at all severities
robustness = true                # false: only the explanation checks ([monitoring.explanations])
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from glassbox_client._generated.glassbox.v1 import datasets_pb2
from glassbox_client._generated.glassbox.v1 import robustness_pb2 as pb

from glassbox.models.repository import ModelVersion
from glassbox.robustness.spec import DEFAULT_EPSILONS

log = logging.getLogger(__name__)

ATTACK_METHODS = {
    "fgsm": pb.ATTACK_METHOD_FGSM,
    "pgd_linf": pb.ATTACK_METHOD_PGD_LINF,
    "pgd_l2": pb.ATTACK_METHOD_PGD_L2,
    "square_linf": pb.ATTACK_METHOD_SQUARE_LINF,
}


@dataclass(frozen=True)
class MonitoringConfig:
    reference_set: str
    interval_hours: float = 24.0
    images: int = 0
    attacks: tuple[str, ...] = ()
    epsilons: tuple[float, ...] = DEFAULT_EPSILONS
    corruptions: bool = True
    robustness: bool = True

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> MonitoringConfig:
        """The [monitoring] table; ValueError naming the bad key."""
        unknown = set(raw) - {
            "reference_set",
            "interval_hours",
            "images",
            "attacks",
            "epsilons",
            "corruptions",
            "robustness",
            "explanations",
        }
        if unknown:
            raise ValueError(f"monitoring has unknown keys {sorted(unknown)}")
        if not isinstance(raw.get("reference_set"), str) or not raw["reference_set"]:
            raise ValueError("monitoring.reference_set (a named set of the model) is required")
        attacks = tuple(raw.get("attacks", ()))
        for name in attacks:
            if name not in ATTACK_METHODS:
                raise ValueError(f"monitoring.attacks: {name!r} is not one of {sorted(ATTACK_METHODS)}")
        interval = float(raw.get("interval_hours", 24.0))
        if not (math.isfinite(interval) and interval >= 0):
            raise ValueError(f"monitoring.interval_hours must be >= 0, got {interval}")
        return cls(
            reference_set=raw["reference_set"],
            interval_hours=interval,
            images=int(raw.get("images", 0)),
            attacks=attacks,
            epsilons=tuple(float(e) for e in raw.get("epsilons", DEFAULT_EPSILONS)),
            corruptions=bool(raw.get("corruptions", True)),
            robustness=bool(raw.get("robustness", True)),
        )

    def spec(self, entry: ModelVersion) -> pb.RobustnessEvaluationSpec:
        gradients = entry.model is not None and entry.model.supports_gradients
        attacks = self.attacks or (("pgd_linf",) if gradients else ("square_linf",))
        return pb.RobustnessEvaluationSpec(
            model=entry.name,
            version=entry.version,
            images=datasets_pb2.ImageSet(named=self.reference_set, limit=self.images),
            attacks=[pb.Attack(method=ATTACK_METHODS[a], epsilons=list(self.epsilons)) for a in attacks],
            corruptions=[pb.CorruptionCheck(corruption=name) for name, c in pb.Corruption.items() if c]
            if self.corruptions
            else [],
            examples=0,
        )


def monitoring_config(entry: ModelVersion) -> MonitoringConfig | None:
    """The version's [monitoring] section when it asks for robustness evaluations, else None (absent,
    `robustness = false`, or broken: logged; the server fails such a version's load, `check_monitoring`)."""
    if entry.config is None or "monitoring" not in entry.config.extra:
        return None
    try:
        config = MonitoringConfig.parse(dict(entry.config.extra["monitoring"]))
    except (TypeError, ValueError) as exc:
        log.error("model %s version %s: [monitoring] ignored: %s", entry.name, entry.version, exc)
        return None
    return config if config.robustness else None
