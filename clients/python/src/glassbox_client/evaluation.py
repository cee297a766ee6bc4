"""Explanation evaluation: how good are a model's attribution maps? (the `explanation_evaluation` job).

    with GlassboxClient() as glassbox:
        report = glassbox.evaluation.evaluate(
            "shapes",
            ["grad_cam", {"method": "smoothgrad", "samples": 16, "aggregation": "abs_max"}],
            images="shapes-val",
            limit=32,
        )
        print("\\n".join(report.verdicts))
        report.png.save("evaluation.png")

`evaluate` submits the job, waits for it (a progress bar on a terminal, or as `progress` says; Ctrl-C
cancels it) and returns the typed result. A method is a method name, or a dict with `method` and its
parameters (as `Attribute` takes them) plus optional `name` and `aggregation`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from PIL import Image as PILImage

from glassbox_client._generated.glassbox.v1 import evaluation_pb2 as pb
from glassbox_client._generated.glassbox.v1 import job_service_pb2 as job_pb
from glassbox_client.images import ImageInput
from glassbox_client.jobs import DEFAULT_WAIT_S, Jobs
from glassbox_client.requests import image_set, set_fields

KIND = "explanation_evaluation"
METHOD_OPTIONS = ("name", "aggregation")


@dataclass(frozen=True)
class ExplanationReport:
    """A finished evaluation: every number typed (`result`), and conveniences over it."""

    job_id: str
    result: pb.ExplanationEvaluationResult

    @property
    def methods(self) -> dict[str, pb.MethodEvaluation]:
        """Per method name, in request order."""
        return {method.name: method for method in self.result.methods}

    @property
    def random_reference(self) -> pb.MethodEvaluation:
        return self.result.random_reference

    @property
    def verdicts(self) -> list[str]:
        return [method.verdict for method in self.result.methods]

    @property
    def report(self) -> dict[str, Any]:
        """The JSON report, parsed."""
        return json.loads(self.result.report_json)

    @property
    def png(self) -> PILImage.Image:
        """The report picture: curves and example maps."""
        return PILImage.open(io.BytesIO(self.result.report_png))

    def _repr_png_(self) -> bytes:
        """Jupyter shows the report picture."""
        return self.result.report_png


def method_message(method: str | dict[str, Any]) -> pb.EvaluatedMethod:
    """An EvaluatedMethod from a method name or a dict `{"method": name, **params, name=, aggregation=}`."""
    options = {"method": method} if isinstance(method, str) else dict(method)
    name = options.pop("method", None)
    if not isinstance(name, str):
        raise ValueError(f"a method needs its name under 'method', got {method!r}")
    message = pb.EvaluatedMethod()
    extras = {key: options.pop(key) for key in METHOD_OPTIONS if key in options}
    set_fields(message, {"method": (name, options), **extras}, where="method")
    return message


def evaluation_spec(
    model: str,
    methods: Sequence[str | dict[str, Any]],
    *,
    images: str | Sequence[ImageInput],
    labels: Sequence[int] = (),
    masks: Sequence[ImageInput] = (),
    limit: int = 0,
    metrics: Sequence[str] = (),
    **options: Any,
) -> pb.ExplanationEvaluationSpec:
    """The job spec: `images` is a named set or a list of images; `metrics` short names ("deletion");
    `options` the other spec fields (version, seed, target, faithfulness={...}, localisation={...})."""
    spec = pb.ExplanationEvaluationSpec()
    chosen = image_set(images, labels=labels, masks=masks, limit=limit)
    set_fields(spec, {"model": model, "images": chosen, **options}, where=KIND)
    spec.methods.extend(method_message(method) for method in methods)
    spec.metrics.extend(  # an enum's Value() is typed as a plain int
        cast(pb.EvaluationMetric, pb.EvaluationMetric.Value(f"EVALUATION_METRIC_{metric.upper()}"))
        for metric in metrics
    )
    return spec


def evaluation_job(
    model: str,
    methods: Sequence[str | dict[str, Any]],
    images: str | Sequence[ImageInput],
    spec: dict[str, Any],
) -> job_pb.SubmitJobRequest:
    """The SubmitJob request of `Evaluation.evaluate` (shared with the asyncio client)."""
    return job_pb.SubmitJobRequest(
        explanation_evaluation=evaluation_spec(model, methods, images=images, **spec)
    )


def report_from_job(job: job_pb.Job) -> ExplanationReport:
    """The typed report of a succeeded explanation_evaluation job."""
    return ExplanationReport(job.id, job.explanation_evaluation)


class Evaluation:
    """`GlassboxClient.evaluation`: explanation-evaluation jobs over the client's channel."""

    def __init__(self, jobs: Jobs) -> None:
        self._jobs = jobs

    def evaluate(
        self,
        model: str,
        methods: Sequence[str | dict[str, Any]],
        *,
        images: str | Sequence[ImageInput],
        timeout: float = DEFAULT_WAIT_S,
        progress: bool | None = None,
        **spec: Any,
    ) -> ExplanationReport:
        """Submit an evaluation, wait for it and return its report; JobFailedError if it did not succeed.
        `spec` takes `evaluation_spec`'s keyword arguments."""
        request = evaluation_job(model, methods, images, spec)
        return report_from_job(self._jobs.run_request(request, timeout=timeout, progress=progress))
