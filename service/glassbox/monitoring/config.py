"""The `[monitoring.explanations]` table of a model.toml and its checks (docs/monitoring.md):

[monitoring]
reference_set = "shapes-val"          # shared with robustness monitoring
interval_hours = 24

[monitoring.explanations]
methods = ["saliency", "grad_cam"]    # attribution methods (registry names, default parameters)
images = 48                           # the first N images of the reference set; 0 = all
baseline_version = "1"                # also compare with this pinned version ("" = previous only)
steps = 16                            # deletion / insertion steps
top_k_percent = 10                    # the share of pixels compared by the top-k overlap
regions = [{ name = "top-left corner", top = 0, left = 0, height = 8, width = 8 }]

[monitoring.explanations.thresholds]  # a method drifts when any of these is crossed
min_spearman = 0.5

A table that names an unknown method, set or region field, or a threshold out of its range, is a
ValueError whose message names the key: the version then fails to load (`check_monitoring`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from glassbox.evaluation.spec import Region

DEFAULT_METHODS = ("saliency", "grad_cam")
DEFAULT_IMAGES = 64
DEFAULT_STEPS = 16
DEFAULT_TOP_K_PERCENT = 10.0
MAX_STEPS = 256


@dataclass(frozen=True)
class Thresholds:
    """When a method's maps count as drifted. Similarities are means over the reference images against a
    compared version (the previous one, and the pinned baseline); drops and rises are absolute
    differences from the compared version's value; the region ratio is a named region's share of the
    positive relevance over its share of the pixels (1 = what a uniform map gives)."""

    min_spearman: float = 0.5
    min_ssim: float = 0.3
    min_top_k_overlap: float = 0.3
    min_prediction_agreement: float = 0.8
    max_pointing_game_drop: float = 0.15
    max_relevance_mass_drop: float = 0.1
    max_deletion_auc_rise: float = 0.1
    max_insertion_auc_drop: float = 0.1
    max_region_mass_ratio: float = 2.0


RANGES: dict[str, tuple[float, float]] = {
    "min_spearman": (-1.0, 1.0),
    "min_ssim": (-1.0, 1.0),
    "min_top_k_overlap": (0.0, 1.0),
    "min_prediction_agreement": (0.0, 1.0),
    "max_pointing_game_drop": (0.0, 1.0),
    "max_relevance_mass_drop": (0.0, 1.0),
    "max_deletion_auc_rise": (0.0, 1.0),
    "max_insertion_auc_drop": (0.0, 1.0),
    "max_region_mass_ratio": (0.0, math.inf),
}
"""Closed ranges of the thresholds (the region ratio must be above 0)."""


@dataclass(frozen=True)
class ExplanationMonitoring:
    """What the monitor checks for one model version."""

    reference_set: str
    interval_hours: float
    methods: tuple[str, ...] = DEFAULT_METHODS
    images: int = DEFAULT_IMAGES
    baseline_version: str = ""
    steps: int = DEFAULT_STEPS
    top_k_percent: float = DEFAULT_TOP_K_PERCENT
    regions: tuple[Region, ...] = ()
    thresholds: Thresholds = field(default_factory=Thresholds)


KEYS = {"methods", "images", "baseline_version", "steps", "top_k_percent", "regions", "thresholds"}
REGION_KEYS = {"name", "top", "left", "height", "width"}


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _integer(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in {low}..{high}, got {value!r}")
    return value


def _thresholds(raw: Any) -> Thresholds:
    if not isinstance(raw, dict):
        raise ValueError(f"monitoring.explanations.thresholds must be a table, got {raw!r}")
    known = {f.name for f in fields(Thresholds)}
    unknown = set(raw) - known
    if unknown:
        raise ValueError(
            f"monitoring.explanations.thresholds has unknown keys {sorted(unknown)}; known: {sorted(known)}"
        )
    values = {}
    for key, value in raw.items():
        name = f"monitoring.explanations.thresholds.{key}"
        number = _number(value, name)
        low, high = RANGES[key]
        if not low <= number <= high or (key == "max_region_mass_ratio" and number <= 0):
            raise ValueError(f"{name} must be in [{low}, {high}], got {number}")
        values[key] = number
    return Thresholds(**values)


def _region(raw: Any, index: int, height: int, width: int) -> Region:
    name = f"monitoring.explanations.regions[{index}]"
    if not isinstance(raw, dict):
        raise ValueError(f"{name} must be a table {{name, top, left, height, width}}, got {raw!r}")
    unknown, missing = set(raw) - REGION_KEYS, REGION_KEYS - set(raw)
    if unknown or missing:
        raise ValueError(
            f"{name} needs exactly the keys {sorted(REGION_KEYS)} "
            f"(unknown {sorted(unknown)}, missing {sorted(missing)})"
        )
    if not isinstance(raw["name"], str) or not raw["name"] or raw["name"] == "object":
        raise ValueError(f"{name}.name must be a non-empty string other than 'object', got {raw['name']!r}")
    top = _integer(raw["top"], f"{name}.top", 0, height - 1)
    left = _integer(raw["left"], f"{name}.left", 0, width - 1)
    rows = _integer(raw["height"], f"{name}.height", 1, height - top)
    columns = _integer(raw["width"], f"{name}.width", 1, width - left)
    return Region(raw["name"], top, left, rows, columns)


def parse_explanations(
    raw: Any, *, reference_set: str, interval_hours: float, input_size: tuple[int, int]
) -> ExplanationMonitoring:
    """The table as a checked ExplanationMonitoring (methods are checked against the model separately,
    by `check_monitoring`); ValueError naming the bad key."""
    if not isinstance(raw, dict):
        raise ValueError(f"monitoring.explanations must be a table, got {raw!r}")
    unknown = set(raw) - KEYS
    if unknown:
        raise ValueError(f"monitoring.explanations has unknown keys {sorted(unknown)}; known: {sorted(KEYS)}")
    methods = raw.get("methods", list(DEFAULT_METHODS))
    if not isinstance(methods, list) or not methods or not all(isinstance(m, str) for m in methods):
        raise ValueError(
            f"monitoring.explanations.methods must be a non-empty list of method names, got {methods!r}"
        )
    if len(set(methods)) != len(methods):
        raise ValueError(f"monitoring.explanations.methods lists a method twice: {methods}")
    baseline = raw.get("baseline_version", "")
    if not isinstance(baseline, str):
        raise ValueError(
            f"monitoring.explanations.baseline_version must be a version name (a string), got {baseline!r}"
        )
    top_k = _number(raw.get("top_k_percent", DEFAULT_TOP_K_PERCENT), "monitoring.explanations.top_k_percent")
    if not 0 < top_k <= 100:
        raise ValueError(f"monitoring.explanations.top_k_percent must be in (0, 100], got {top_k}")
    regions_raw = raw.get("regions", [])
    if not isinstance(regions_raw, list):
        raise ValueError(f"monitoring.explanations.regions must be a list of tables, got {regions_raw!r}")
    regions = tuple(_region(r, i, *input_size) for i, r in enumerate(regions_raw))
    names = [region.name for region in regions]
    if len(set(names)) != len(names):
        raise ValueError(f"monitoring.explanations.regions names a region twice: {names}")
    return ExplanationMonitoring(
        reference_set=reference_set,
        interval_hours=interval_hours,
        methods=tuple(methods),
        images=_integer(raw.get("images", DEFAULT_IMAGES), "monitoring.explanations.images", 0, 100_000),
        baseline_version=baseline,
        steps=_integer(raw.get("steps", DEFAULT_STEPS), "monitoring.explanations.steps", 2, MAX_STEPS),
        top_k_percent=top_k,
        regions=regions,
        thresholds=_thresholds(raw.get("thresholds", {})),
    )
