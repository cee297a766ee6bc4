"""`GlassboxClient.robustness`: how easily a model is fooled (the `robustness_evaluation` job) and the
monitoring history of its evaluations (GetRobustnessHistory).

    with GlassboxClient() as glassbox:
        report = glassbox.robustness.evaluate(
            "shapes",
            images="shapes-val",
            limit=64,
            attacks=["fgsm", {"method": "pgd_linf", "steps": 10}],
            epsilons=[1 / 255, 4 / 255, 8 / 255],
            corruptions=["jpeg"],
        )
        print(report.clean_accuracy, report.robust_accuracy("pgd_linf", 8 / 255))
        report.plot.save("robustness.png")
        for record in glassbox.robustness.history("shapes"):
            print(record.version, record.time, record.clean_accuracy)

An attack is a method name (fgsm, pgd_linf, pgd_l2, square_linf) or a dict with `method` and the other
fields of the Attack message (steps, relative_step_size, random_start, restarts, goal, target_class,
queries, ...); an attack without its own `epsilons` takes `epsilons`. A corruption is a name
(gaussian_noise, gaussian_blur, brightness, contrast, jpeg) or a dict with `corruption` and `severities`.
Every ε is in pixel units: images are RGB in [0, 1] and normalisation happens inside the model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grpc

from glassbox_client._generated.glassbox.v1 import job_service_pb2 as job_pb
from glassbox_client._generated.glassbox.v1 import robustness_pb2 as pb
from glassbox_client._generated.glassbox.v1 import robustness_pb2_grpc
from glassbox_client.calls import ServiceCalls
from glassbox_client.images import ImageInput
from glassbox_client.jobs import DEFAULT_WAIT_S, Jobs
from glassbox_client.requests import image_set, set_fields
from glassbox_client.robustness_results import RobustnessRecord, RobustnessReport

KIND = "robustness_evaluation"


def _attack_message(attack: str | dict[str, Any], epsilons: Sequence[float] | None) -> pb.Attack:
    fields: dict[str, Any] = {"method": attack} if isinstance(attack, str) else dict(attack)
    if "method" not in fields:
        raise ValueError(f"an attack needs its method under 'method', got {attack!r}")
    if "epsilons" not in fields:
        if epsilons is None:
            raise ValueError(f"attack {fields['method']!r} has no epsilons: give them to it or as epsilons=")
        fields["epsilons"] = list(epsilons)
    message = pb.Attack()
    set_fields(message, fields, where="attack")
    return message


def _corruption_message(corruption: str | dict[str, Any]) -> pb.CorruptionCheck:
    fields = {"corruption": corruption} if isinstance(corruption, str) else dict(corruption)
    message = pb.CorruptionCheck()
    set_fields(message, fields, where="corruption")
    return message


def robustness_spec(
    model: str,
    *,
    images: str | Sequence[ImageInput],
    labels: Sequence[int] = (),
    limit: int = 0,
    attacks: Sequence[str | dict[str, Any]] = (),
    epsilons: Sequence[float] | None = None,
    corruptions: Sequence[str | dict[str, Any]] = (),
    minimal_epsilon: dict[str, Any] | None = None,
    **options: Any,
) -> pb.RobustnessEvaluationSpec:
    """The job spec: `images` is a named set of the model or a list of images with their `labels`;
    `minimal_epsilon` the search's fields ({"attack_index": 1, "iterations": 6} or {"skip": True});
    `options` the other spec fields (version, seed, examples). With neither attacks nor corruptions the
    server runs its default check (PGD-L∞ at 1/255 .. 8/255 and every corruption)."""
    chosen = image_set(images, labels=labels, limit=limit)
    spec = pb.RobustnessEvaluationSpec()
    set_fields(spec, {"model": model, "images": chosen, **options}, where=KIND)
    spec.attacks.extend(_attack_message(attack, epsilons) for attack in attacks)
    spec.corruptions.extend(_corruption_message(corruption) for corruption in corruptions)
    if minimal_epsilon is not None:
        set_fields(spec.minimal_epsilon, minimal_epsilon, where=f"{KIND}.minimal_epsilon")
    return spec


def robustness_job(
    model: str, images: str | Sequence[ImageInput], spec: dict[str, Any]
) -> job_pb.SubmitJobRequest:
    """The SubmitJob request of `Robustness.evaluate` (shared with the asyncio client)."""
    return job_pb.SubmitJobRequest(robustness_evaluation=robustness_spec(model, images=images, **spec))


def report_from_job(job: job_pb.Job) -> RobustnessReport:
    """The typed report of a succeeded robustness_evaluation job."""
    return RobustnessReport.from_proto(job.id, job.robustness_evaluation)


def records_from_response(response: pb.GetRobustnessHistoryResponse) -> list[RobustnessRecord]:
    return [RobustnessRecord.from_proto(record) for record in response.records]


class Robustness:
    """`GlassboxClient.robustness`: robustness evaluations (jobs) and the RobustnessService history."""

    def __init__(
        self, jobs: Jobs, channel: grpc.Channel, metadata: Callable[[], tuple], default_timeout: float
    ) -> None:
        self._jobs = jobs
        self._call = ServiceCalls(
            robustness_pb2_grpc.RobustnessServiceStub(channel), metadata, default_timeout
        )

    def evaluate(
        self,
        model: str,
        *,
        images: str | Sequence[ImageInput],
        timeout: float = DEFAULT_WAIT_S,
        progress: bool | None = None,
        **spec: Any,
    ) -> RobustnessReport:
        """Submit a robustness evaluation, wait for it (a progress bar on a terminal, or as `progress`
        says; Ctrl-C cancels it) and return its report; JobFailedError if it did not succeed. `spec` takes
        `robustness_spec`'s keyword arguments (labels, limit, attacks, epsilons, corruptions, ...)."""
        request = robustness_job(model, images, spec)
        return report_from_job(self._jobs.run_request(request, timeout=timeout, progress=progress))

    def history(
        self, model: str, *, version: str = "", limit: int = 0, timeout: float | None = None
    ) -> list[RobustnessRecord]:
        """The model's recorded monitoring evaluations, newest first (only `version`'s when given; at most
        `limit`, 0 = the server's default of 100)."""
        request = pb.GetRobustnessHistoryRequest(model=model, version=version, limit=limit)
        return records_from_response(self._call("GetRobustnessHistory", request, timeout))
