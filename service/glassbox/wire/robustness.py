"""robustness.proto ↔ core: the spec checked field by field (errors name the field relative to the spec,
e.g. `attacks[1].epsilons[0]`; the engine prefixes `robustness_evaluation.`), the report as a result
message, the monitor's scheduled evaluations as specs and their results as history records. No
computation."""

from __future__ import annotations

import math

import torch
from glassbox_client._generated.glassbox.v1 import datasets_pb2, model_service_pb2
from glassbox_client._generated.glassbox.v1 import robustness_pb2 as pb

from glassbox.backends.base import Model
from glassbox.common.threat import Norm, l2_diameter
from glassbox.config import RobustnessJobLimits, Settings
from glassbox.core.errors import FailedPrecondition, InvalidArgument
from glassbox.models.repository import ModelRepository
from glassbox.robustness import spec as core
from glassbox.robustness.corruptions import SEVERITIES, Corruption
from glassbox.robustness.history import HistoryRecord
from glassbox.robustness.monitoring_config import ScheduledEvaluation
from glassbox.robustness.plot import accuracy_plot, example_png
from glassbox.robustness.report import AttackAccuracy, CorruptionAccuracy, RobustnessReport
from glassbox.wire.fields import optional
from glassbox.wire.generative import class_index
from glassbox.wire.image_sets import spec_images

METHODS = {
    pb.ATTACK_METHOD_FGSM: core.AttackMethod.FGSM,
    pb.ATTACK_METHOD_PGD_LINF: core.AttackMethod.PGD_LINF,
    pb.ATTACK_METHOD_PGD_L2: core.AttackMethod.PGD_L2,
    pb.ATTACK_METHOD_SQUARE_LINF: core.AttackMethod.SQUARE_LINF,
}
METHOD_ENUMS = {method: number for number, method in METHODS.items()}
GOALS = {
    pb.ATTACK_GOAL_UNSPECIFIED: core.Goal.UNTARGETED,
    pb.ATTACK_GOAL_UNTARGETED: core.Goal.UNTARGETED,
    pb.ATTACK_GOAL_TARGET_CLASS: core.Goal.TARGET_CLASS,
    pb.ATTACK_GOAL_LEAST_LIKELY: core.Goal.LEAST_LIKELY,
}
CORRUPTIONS = {
    pb.CORRUPTION_GAUSSIAN_NOISE: Corruption.GAUSSIAN_NOISE,
    pb.CORRUPTION_GAUSSIAN_BLUR: Corruption.GAUSSIAN_BLUR,
    pb.CORRUPTION_BRIGHTNESS: Corruption.BRIGHTNESS,
    pb.CORRUPTION_CONTRAST: Corruption.CONTRAST,
    pb.CORRUPTION_JPEG: Corruption.JPEG,
}
DEFAULT_SEARCH_ITERATIONS = 8
DEFAULT_EXAMPLES = 4


def _within(value: float, low: float, high: float, field: str, *, low_open: bool = False) -> None:
    ok = math.isfinite(value) and (low < value if low_open else low <= value) and value <= high
    if not ok:
        bracket = "(" if low_open else "["
        raise InvalidArgument(f"must be in {bracket}{low:g}, {high:g}], got {value}", field=field)


def _count(value: int, default: int, high: int, field: str) -> int:
    """0 = the default; otherwise 1..high."""
    if value == 0:
        return default
    if not 1 <= value <= high:
        raise InvalidArgument(f"must be in 1..{high} (0 = {default}), got {value}", field=field)
    return value


def epsilon_bound(method: core.AttackMethod, model: Model) -> float:
    """The largest radius: 1 for L∞ attacks, the pixel cube's L2 diameter for PGD_L2."""
    if method.norm is Norm.L2:
        return l2_diameter(model.config.input.height, model.config.input.width)
    return 1.0


def attack(message: pb.Attack, model: Model, field: str, limits: RobustnessJobLimits) -> core.AttackSpec:
    if message.method not in METHODS:
        known = ", ".join(pb.AttackMethod.Name(v) for v in METHODS)
        raise InvalidArgument(
            f"unknown attack method {message.method}; use one of {known}", field=f"{field}.method"
        )
    method = METHODS[message.method]
    if method.white_box and not model.supports_gradients:
        raise FailedPrecondition(
            f"{method.value} needs gradients, and model {model.name!r} runs on {model.backend_name}, which "
            "computes none; use ATTACK_METHOD_SQUARE_LINF (black-box) for it",
            field=f"{field}.method",
        )
    if not message.epsilons:
        raise InvalidArgument("give at least one epsilon", field=f"{field}.epsilons")
    if len(message.epsilons) > limits.max_epsilons:
        raise InvalidArgument(f"at most {limits.max_epsilons} epsilons", field=f"{field}.epsilons")
    bound = epsilon_bound(method, model)
    for j, epsilon in enumerate(message.epsilons):
        _within(epsilon, 0.0, bound, f"{field}.epsilons[{j}]")
    steps = _count(message.steps, 10, limits.max_steps, f"{field}.steps")
    relative = optional(message, "relative_step_size", None)
    if relative is not None:
        _within(relative, 0.0, 1.0, f"{field}.relative_step_size", low_open=True)
    random_start = bool(optional(message, "random_start", True))
    restarts = _count(message.restarts, 1, limits.max_restarts, f"{field}.restarts")
    if restarts > 1 and not random_start:
        raise InvalidArgument("restarts > 1 need random_start", field=f"{field}.restarts")
    if message.goal not in GOALS:
        raise InvalidArgument(f"unknown goal {message.goal}", field=f"{field}.goal")
    goal = GOALS[message.goal]
    target = None
    if goal is core.Goal.TARGET_CLASS:
        target = class_index(message, "target_class", model, field=f"{field}.target_class")
    p_init = optional(message, "p_init", 0.8)
    _within(p_init, 0.0, 1.0, f"{field}.p_init", low_open=True)
    return core.AttackSpec(
        method=method,
        epsilons=tuple(float(e) for e in message.epsilons),
        steps=steps,
        relative_step_size=relative,
        random_start=random_start,
        restarts=restarts,
        final_iterate_only=message.final_iterate_only,
        goal=goal,
        target_class=target,
        queries=_count(message.queries, 1000, limits.max_queries, f"{field}.queries"),
        p_init=float(p_init),
    )


def corruption_checks(
    messages: list[pb.CorruptionCheck],
) -> tuple[tuple[Corruption, tuple[int, ...]], ...]:
    if len(messages) > len(CORRUPTIONS):
        raise InvalidArgument(f"at most {len(CORRUPTIONS)} corruption checks", field="corruptions")
    checks: dict[Corruption, tuple[int, ...]] = {}
    for i, message in enumerate(messages):
        field = f"corruptions[{i}]"
        if message.corruption not in CORRUPTIONS:
            raise InvalidArgument(f"unknown corruption {message.corruption}", field=f"{field}.corruption")
        corruption = CORRUPTIONS[message.corruption]
        if corruption in checks:
            raise InvalidArgument(f"{corruption.value} is listed twice", field=f"{field}.corruption")
        for j, severity in enumerate(message.severities):
            if severity not in SEVERITIES:
                raise InvalidArgument(
                    f"severity must be 1..5, got {severity}", field=f"{field}.severities[{j}]"
                )
        if len(set(message.severities)) != len(message.severities):
            raise InvalidArgument("a severity is listed twice", field=f"{field}.severities")
        checks[corruption] = tuple(sorted(message.severities)) or SEVERITIES
    return tuple(checks.items())


def search(
    message: pb.MinimalEpsilonSearch,
    present: bool,
    attacks: tuple[core.AttackSpec, ...],
    model: Model,
    limits: RobustnessJobLimits,
) -> core.MinimalEpsilonSpec | None:
    if (present and message.skip) or not attacks:
        return None
    field = "minimal_epsilon"
    if not 0 <= message.attack_index < len(attacks):
        raise InvalidArgument(
            f"must index one of the {len(attacks)} attacks, got {message.attack_index}",
            field=f"{field}.attack_index",
        )
    chosen = attacks[message.attack_index]
    largest = optional(message, "max_epsilon", max(chosen.epsilons))
    _within(largest, 0.0, epsilon_bound(chosen.method, model), f"{field}.max_epsilon", low_open=True)
    iterations = _count(
        message.iterations, DEFAULT_SEARCH_ITERATIONS, limits.max_search_iterations, f"{field}.iterations"
    )
    return core.MinimalEpsilonSpec(message.attack_index, float(largest), iterations)


def evaluation(
    spec: pb.RobustnessEvaluationSpec, repository: ModelRepository, settings: Settings
) -> core.RobustnessEvaluation:
    """The checked core request, within the server's `jobs.limits.robustness` and
    `limits.max_image_pixels`; every bad field raises before any work."""
    limits = settings.jobs.limits.robustness
    model = repository.get(spec.model, spec.version, field="model")
    if not spec.HasField("images"):
        raise InvalidArgument("labelled images are required (inline, or a named set)", field="images")
    if len(spec.attacks) > limits.max_attacks:
        raise InvalidArgument(f"at most {limits.max_attacks} attacks", field="attacks")
    attacks = tuple(attack(message, model, f"attacks[{i}]", limits) for i, message in enumerate(spec.attacks))
    corruptions = corruption_checks(list(spec.corruptions))
    if not attacks and not corruptions:
        default = core.AttackMethod.PGD_LINF if model.supports_gradients else core.AttackMethod.SQUARE_LINF
        attacks = (core.AttackSpec(default),)
        corruptions = tuple((c, SEVERITIES) for c in Corruption)
    minimal = search(spec.minimal_epsilon, spec.HasField("minimal_epsilon"), attacks, model, limits)
    examples = optional(spec, "examples", DEFAULT_EXAMPLES)
    if not 0 <= examples <= limits.max_examples:
        raise InvalidArgument(f"must be in 0..{limits.max_examples}, got {examples}", field="examples")
    data = spec_images(spec, repository, settings)
    data.require_labels("images")
    return core.RobustnessEvaluation(
        model=model,
        data=data,
        attacks=attacks,
        corruptions=corruptions,
        minimal_epsilon=minimal,
        examples=examples,
        set_name=spec.images.named if spec.images.WhichOneof("source") == "named" else "inline",
    )


def attack_accuracy(result: AttackAccuracy) -> pb.AttackAccuracy:
    return pb.AttackAccuracy(
        attack=result.attack,
        epsilon=result.epsilon,
        robust_accuracy=result.robust_accuracy,
        attack_success_rate=result.attack_success_rate,
        mean_linf=result.mean_linf,
        mean_l2=result.mean_l2,
        images=result.images,
        threat_model=result.threat_model,
    )


def _attack_accuracy_from(message: pb.AttackAccuracy) -> AttackAccuracy:
    return AttackAccuracy(
        attack=message.attack,
        threat_model=message.threat_model,
        epsilon=message.epsilon,
        robust_accuracy=message.robust_accuracy,
        attack_success_rate=message.attack_success_rate,
        mean_linf=message.mean_linf,
        mean_l2=message.mean_l2,
        images=message.images,
    )


def scheduled_spec(evaluation: ScheduledEvaluation) -> pb.RobustnessEvaluationSpec:
    """The job spec of an evaluation the robustness monitor schedules."""
    return pb.RobustnessEvaluationSpec(
        model=evaluation.model,
        version=evaluation.version,
        images=datasets_pb2.ImageSet(named=evaluation.reference_set, limit=evaluation.images),
        attacks=[
            pb.Attack(method=METHOD_ENUMS[method], epsilons=list(evaluation.epsilons))
            for method in evaluation.attacks
        ],
        corruptions=[pb.CorruptionCheck(corruption=name) for name, number in pb.Corruption.items() if number]
        if evaluation.corruptions
        else [],
        examples=evaluation.examples,
    )


def history_record(
    result: bytes, *, time: float, reference_set: str, trigger: str, job_id: str
) -> HistoryRecord:
    """The summary the history keeps of a finished evaluation (its serialized result message)."""
    message = pb.RobustnessEvaluationResult.FromString(result)
    return HistoryRecord(
        model=message.model,
        version=message.version,
        time=time,
        reference_set=reference_set,
        trigger=trigger,
        images=message.images,
        clean_accuracy=message.clean_accuracy,
        attacks=tuple(_attack_accuracy_from(a) for a in message.attacks),
        corruptions=tuple(
            CorruptionAccuracy(c.corruption, c.severity, c.accuracy) for c in message.corruptions
        ),
        minimal_epsilon_median=message.minimal_epsilon.median,
        warnings=tuple(message.warnings),
        job_id=job_id,
    )


def history_message(record: HistoryRecord) -> pb.RobustnessRecord:
    message = pb.RobustnessRecord(
        model=record.model,
        version=record.version,
        reference_set=record.reference_set,
        trigger=record.trigger,
        images=record.images,
        clean_accuracy=record.clean_accuracy,
        attacks=[attack_accuracy(a) for a in record.attacks],
        corruptions=[
            pb.CorruptionAccuracy(corruption=c.corruption, severity=c.severity, accuracy=c.accuracy)
            for c in record.corruptions
        ],
        minimal_epsilon_median=record.minimal_epsilon_median,
        warnings=list(record.warnings),
        job_id=record.job_id,
    )
    message.time.FromNanoseconds(round(record.time * 1e9))
    return message


def _class_score(logits: torch.Tensor, labels: tuple[str, ...]) -> model_service_pb2.ClassScore:
    probabilities = logits.softmax(dim=0)
    index = int(probabilities.argmax())
    return model_service_pb2.ClassScore(
        index=index, label=labels[index], probability=float(probabilities[index]), logit=float(logits[index])
    )


def result(report: RobustnessReport, labels: tuple[str, ...]) -> pb.RobustnessEvaluationResult:
    message = pb.RobustnessEvaluationResult(
        model=report.model,
        version=report.version,
        images=report.images,
        clean_accuracy=report.clean_accuracy,
        attacks=[attack_accuracy(a) for a in report.attacks],
        worst_case=[attack_accuracy(a) for a in report.worst_case],
        corruptions=[
            pb.CorruptionAccuracy(corruption=c.corruption, severity=c.severity, accuracy=c.accuracy)
            for c in report.corruptions
        ],
        passes=pb.PassCounts(forward=report.forward_passes, backward=report.backward_passes),
        wall_seconds=report.wall_seconds,
        warnings=list(report.warnings),
        json=report.to_json(),
        plot_png=accuracy_plot(report),
        examples=[
            pb.AdversarialExample(
                image=e.image,
                attack=e.attack,
                epsilon=e.epsilon,
                label=e.label,
                original_prediction=_class_score(e.original_logits, labels),
                adversarial_prediction=_class_score(e.adversarial_logits, labels),
                png=example_png(e, labels),
            )
            for e in report.examples
        ],
    )
    search = report.minimal_epsilon
    if search is None:
        message.minimal_epsilon.median = math.nan
        message.minimal_epsilon.lower_quartile = math.nan
        message.minimal_epsilon.upper_quartile = math.nan
    else:
        message.minimal_epsilon.attack = search.attack
        message.minimal_epsilon.max_epsilon = search.max_epsilon
        message.minimal_epsilon.median = search.median
        message.minimal_epsilon.lower_quartile = search.quantile(0.25)
        message.minimal_epsilon.upper_quartile = search.quantile(0.75)
        for i, value in enumerate(search.per_image):
            entry = message.minimal_epsilon.images.add(image=i)
            if math.isfinite(value):
                entry.epsilon = value
    return message
