"""evaluation.proto `ExplanationEvaluationSpec` → the checked core `EvaluationJob`, before anything is
queued. Errors name the field relative to the spec (e.g. `methods[1].smoothgrad.samples`); the job
servicer prefixes `explanation_evaluation.`. Method parameters go through the same generic translation
and the same method-level validation as `Attribute`, so every bad parameter is refused here."""

from __future__ import annotations

import functools
from typing import Any

from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as attribution_pb2
from glassbox_client._generated.glassbox.v1 import evaluation_pb2 as pb
from google.protobuf.message import Message

from glassbox.backends.torch_backend import TorchModel
from glassbox.common.validation import check_range, gradient_model
from glassbox.config import EvaluationJobLimits, Settings
from glassbox.core.call import CallContext
from glassbox.core.cancellation import CancellationToken
from glassbox.core.errors import InvalidArgument
from glassbox.evaluation import spec as core
from glassbox.methods.base import AttributionMethod
from glassbox.methods.service import Aggregation, build_method
from glassbox.models.repository import ModelRepository
from glassbox.serving.execution import SCHEDULED
from glassbox.wire.fields import optional
from glassbox.wire.image_sets import spec_images
from glassbox.wire.method_params import dataclass_from_message

MAX_BLUR_SIGMA = 64.0
MAX_TOLERANCE = 64

METRICS = {
    pb.EVALUATION_METRIC_DELETION: core.Metric.DELETION,
    pb.EVALUATION_METRIC_INSERTION: core.Metric.INSERTION,
    pb.EVALUATION_METRIC_ROAD: core.Metric.ROAD,
    pb.EVALUATION_METRIC_POINTING_GAME: core.Metric.POINTING_GAME,
    pb.EVALUATION_METRIC_RELEVANCE_MASS: core.Metric.RELEVANCE_MASS,
    pb.EVALUATION_METRIC_RANDOMISATION: core.Metric.RANDOMISATION,
    pb.EVALUATION_METRIC_MAX_SENSITIVITY: core.Metric.MAX_SENSITIVITY,
    pb.EVALUATION_METRIC_SPARSENESS: core.Metric.SPARSENESS,
}
AGGREGATIONS = {
    attribution_pb2.AGGREGATION_UNSPECIFIED: Aggregation.SUM,
    attribution_pb2.AGGREGATION_SUM: Aggregation.SUM,
    attribution_pb2.AGGREGATION_ABS_MAX: Aggregation.ABS_MAX,
    attribution_pb2.AGGREGATION_L2: Aggregation.L2,
}
BASELINES = {
    pb.PERTURBATION_BASELINE_UNSPECIFIED: core.PerturbationBaseline.BLUR,
    pb.PERTURBATION_BASELINE_BLUR: core.PerturbationBaseline.BLUR,
    pb.PERTURBATION_BASELINE_MEAN: core.PerturbationBaseline.MEAN,
}


def evaluation_job(
    spec: pb.ExplanationEvaluationSpec, repository: ModelRepository, settings: Settings
) -> core.EvaluationJob:
    """The checked core job of a spec (see the module docstring), within the server's
    `jobs.limits.evaluation`, `limits.max_image_pixels` and `attribution` caps."""
    limits = settings.jobs.limits.evaluation
    model = gradient_model(repository.get(spec.model, spec.version, field="model"))
    if not spec.HasField("images"):
        raise InvalidArgument("the images are required: inline or a named set", field="images")
    images = spec_images(spec, repository, settings)
    if len(images) > limits.max_images:
        raise InvalidArgument(
            f"{len(images)} images is over the limit of {limits.max_images}; set images.limit", field="images"
        )
    if spec.target not in (pb.EVALUATION_TARGET_UNSPECIFIED, *pb.EvaluationTarget.values()):
        raise InvalidArgument(f"unknown target {spec.target}", field="target")
    use_labels = spec.target == pb.EVALUATION_TARGET_LABEL
    if use_labels:
        images.require_labels("images")
    height, width = model.config.input.height, model.config.input.width
    localisation = _localisation(spec.localisation, height, width, limits)
    metrics = _metrics(spec, images.masks is not None or bool(localisation.regions))
    if images.masks is None and not localisation.regions:
        for i, metric in enumerate(metrics):
            if metric in core.LOCALISATION_METRICS:
                raise InvalidArgument(
                    f"{metric.value} needs object masks (inline.masks or a named set with masks) or "
                    f"localisation.regions, and the set has neither (metrics[{i}])",
                    field="images",
                )
    example_images = int(optional(spec, "example_images", 4))
    check_range(example_images, 0, limits.max_examples, "example_images")
    return core.EvaluationJob(
        model=model,
        images=images.images,
        masks=images.masks,
        labels=images.labels,
        use_labels=use_labels,
        methods=_methods(spec, model, settings),
        metrics=metrics,
        faithfulness=_faithfulness(spec.faithfulness, limits),
        road=_road(spec.road, limits),
        localisation=localisation,
        randomisation=_randomisation(spec.randomisation, limits),
        sensitivity=_sensitivity(spec.sensitivity, limits),
        example_images=example_images,
        settings=settings,
    )


def _metrics(spec: pb.ExplanationEvaluationSpec, can_localise: bool) -> tuple[core.Metric, ...]:
    if not spec.metrics:
        return tuple(
            metric for metric in core.Metric if can_localise or metric not in core.LOCALISATION_METRICS
        )
    chosen: list[core.Metric] = []
    for i, number in enumerate(spec.metrics):
        if number not in METRICS:
            raise InvalidArgument(
                f"unknown metric {number}; leave the list empty for all", field=f"metrics[{i}]"
            )
        if METRICS[number] in chosen:
            raise InvalidArgument(f"{METRICS[number].value} is listed twice", field=f"metrics[{i}]")
        chosen.append(METRICS[number])
    return tuple(metric for metric in core.Metric if metric in chosen)


def _params_of(fields: Message, where: str, method: type[AttributionMethod]) -> Any:
    """The method's params dataclass from its params message (errors name `where`)."""
    return dataclass_from_message(fields, method.Params, field=where)


def _methods(
    spec: pb.ExplanationEvaluationSpec, model: TorchModel, settings: Settings
) -> tuple[core.MethodConfig, ...]:
    most = settings.jobs.limits.evaluation.max_methods
    if not 1 <= len(spec.methods) <= most:
        raise InvalidArgument(f"give 1..{most} methods, got {len(spec.methods)}", field="methods")
    configs: list[core.MethodConfig] = []
    for i, message in enumerate(spec.methods):
        field = f"methods[{i}]"
        method = message.WhichOneof("method")
        if method is None:
            raise InvalidArgument("set one method (a field of the method oneof)", field=field)
        where, fields = f"{field}.{method}", getattr(message, method)
        params = build_method(
            model,
            method,
            functools.partial(_params_of, fields, where),
            CallContext(model, CancellationToken(), settings.attribution, compute=SCHEDULED),
            field=where,
            params_field=where,
        ).params
        if message.aggregation not in AGGREGATIONS:
            raise InvalidArgument(
                "must be AGGREGATION_SUM, AGGREGATION_ABS_MAX or AGGREGATION_L2 (metrics rank pixels)",
                field=f"{field}.aggregation",
            )
        name = message.name or method
        if any(config.name == name for config in configs):
            raise InvalidArgument(f"the name {name!r} is used twice; name the methods", field=f"{field}.name")
        configs.append(core.MethodConfig(name, method, params, AGGREGATIONS[message.aggregation]))
    return tuple(configs)


def _faithfulness(message: pb.FaithfulnessOptions, limits: EvaluationJobLimits) -> core.FaithfulnessOptions:
    default = core.FaithfulnessOptions()
    steps = int(optional(message, "steps", default.steps))
    check_range(steps, 2, limits.max_steps, "faithfulness.steps")
    if message.baseline not in BASELINES:
        raise InvalidArgument(f"unknown baseline {message.baseline}", field="faithfulness.baseline")
    sigma = float(optional(message, "blur_sigma", default.blur_sigma))
    check_range(sigma, 0.0, MAX_BLUR_SIGMA, "faithfulness.blur_sigma", low_open=True)
    return core.FaithfulnessOptions(steps, BASELINES[message.baseline], sigma)


def _road(message: pb.RoadOptions, limits: EvaluationJobLimits) -> core.RoadOptions:
    default = core.RoadOptions()
    fractions = tuple(float(f) for f in message.fractions) or default.fractions
    if len(fractions) > limits.max_fractions:
        raise InvalidArgument(f"at most {limits.max_fractions} fractions", field="road.fractions")
    for i, fraction in enumerate(fractions):
        if not 0.0 < fraction < 1.0:
            raise InvalidArgument(f"must be in (0, 1), got {fraction:g}", field=f"road.fractions[{i}]")
        if i and fraction <= fractions[i - 1]:
            raise InvalidArgument("fractions must increase strictly", field=f"road.fractions[{i}]")
    noise = float(optional(message, "noise", default.noise))
    check_range(noise, 0.0, 1.0, "road.noise")
    return core.RoadOptions(fractions, noise)


def _localisation(
    message: pb.LocalisationOptions, height: int, width: int, limits: EvaluationJobLimits
) -> core.LocalisationOptions:
    tolerance = optional(message, "tolerance_pixels", None)
    if tolerance is not None:
        check_range(tolerance, 0, MAX_TOLERANCE, "localisation.tolerance_pixels")
    if len(message.regions) > limits.max_regions:
        raise InvalidArgument(f"at most {limits.max_regions} regions", field="localisation.regions")
    regions: list[core.Region] = []
    for i, region in enumerate(message.regions):
        field = f"localisation.regions[{i}]"
        if not region.name or region.name in {r.name for r in regions}:
            raise InvalidArgument("every region needs a unique, non-empty name", field=f"{field}.name")
        check_range(region.top, 0, height - 1, f"{field}.top")
        check_range(region.left, 0, width - 1, f"{field}.left")
        check_range(region.height, 1, height - region.top, f"{field}.height")
        check_range(region.width, 1, width - region.left, f"{field}.width")
        regions.append(core.Region(region.name, region.top, region.left, region.height, region.width))
    return core.LocalisationOptions(tolerance, tuple(regions))


def _randomisation(
    message: pb.RandomisationOptions, limits: EvaluationJobLimits
) -> core.RandomisationOptions:
    default = core.RandomisationOptions()
    images = int(optional(message, "images", default.images))
    check_range(images, 1, limits.max_randomisation_images, "randomisation.images")
    threshold = float(optional(message, "similarity_threshold", default.similarity_threshold))
    check_range(threshold, 0.0, 1.0, "randomisation.similarity_threshold", low_open=True)
    return core.RandomisationOptions(images, threshold)


def _sensitivity(message: pb.SensitivityOptions, limits: EvaluationJobLimits) -> core.SensitivityOptions:
    default = core.SensitivityOptions()
    samples = int(optional(message, "samples", default.samples))
    check_range(samples, 1, limits.max_sensitivity_samples, "sensitivity.samples")
    radius = float(optional(message, "radius", default.radius))
    check_range(radius, 0.0, 0.5, "sensitivity.radius", low_open=True)
    threshold = float(optional(message, "threshold", default.threshold))
    check_range(threshold, 0.0, float("inf"), "sensitivity.threshold", low_open=True)
    return core.SensitivityOptions(samples, radius, threshold)
