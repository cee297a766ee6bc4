"""The load-time check of a version's `[monitoring]` section: robustness keys, the reference set, and the
explanation table with its methods (each must exist, run on the model and accept its default
parameters). A broken section fails that version's load with the reason; other models keep serving."""

from __future__ import annotations

from glassbox.config import AttributionSettings
from glassbox.core.call import CallContext
from glassbox.core.cancellation import CancellationToken
from glassbox.core.errors import GlassboxError
from glassbox.methods.registry import method_class, method_names
from glassbox.models.repository import ModelVersion
from glassbox.monitoring.config import ExplanationMonitoring, parse_explanations
from glassbox.robustness.monitoring_config import MonitoringConfig
from glassbox.serving.execution import SCHEDULED


def check_monitoring(entry: ModelVersion, dataset_names: list[str]) -> None:
    """ValueError naming the bad key when the version's [monitoring] section is broken."""
    if entry.config is None or "monitoring" not in entry.config.extra:
        return
    raw = entry.config.extra["monitoring"]
    if not isinstance(raw, dict):
        raise ValueError(f"monitoring must be a table, got {raw!r}")
    try:
        config = MonitoringConfig.parse(dict(raw))
    except TypeError as exc:
        raise ValueError(f"monitoring: {exc}") from exc
    if config.reference_set not in dataset_names:
        raise ValueError(
            f"monitoring.reference_set: model {entry.name!r} has no named set {config.reference_set!r}; "
            f"it has {dataset_names}"
        )
    explanations = explanation_monitoring(entry)
    if explanations is not None and entry.model is not None:
        for index, name in enumerate(explanations.methods):
            _check_method(entry, name, f"monitoring.explanations.methods[{index}]")


def _check_method(entry: ModelVersion, name: str, key: str) -> None:
    if name not in method_names():
        raise ValueError(f"{key}: unknown method {name!r}; methods: {method_names()}")
    model = entry.model
    assert model is not None
    cls = method_class(name)
    reason = cls.unsupported_reason(model)
    if reason is not None:
        raise ValueError(f"{key}: {name} cannot run on this model: {reason}")
    try:
        cls(
            model,
            cls.Params(),
            CallContext(model, CancellationToken(), AttributionSettings(), compute=SCHEDULED),
            field=name,
        )
    except (GlassboxError, TypeError) as exc:
        raise ValueError(f"{key}: {name} with its default parameters: {exc}") from exc


def explanation_monitoring(entry: ModelVersion) -> ExplanationMonitoring | None:
    """The version's explanation checks, or None when its [monitoring] has no `explanations` table.
    ValueError when the section is broken (a loaded version's section was checked at load)."""
    if entry.config is None or "monitoring" not in entry.config.extra:
        return None
    raw = dict(entry.config.extra["monitoring"])
    if "explanations" not in raw:
        return None
    config = MonitoringConfig.parse(raw)
    return parse_explanations(
        raw["explanations"],
        reference_set=config.reference_set,
        interval_hours=config.interval_hours,
        input_size=(entry.config.input.height, entry.config.input.width),
    )
