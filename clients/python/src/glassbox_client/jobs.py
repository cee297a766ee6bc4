"""Jobs: long computations (the generative methods) submitted, watched, waited for and cancelled.

    with GlassboxClient() as glassbox:
        job = glassbox.jobs.run("class_visualisation", model="shapes", target="star", progress=True)
        job.result.images[0].save("star.png")

`run` submits, watches the progress stream (a tqdm bar on stderr when it is a terminal, or as
`progress=True/False` says) until the job finishes,
cancels the job on Ctrl-C, and raises JobFailedError unless it SUCCEEDED. A watch stream that breaks
(server restart, load balancer drain) is resumed where it stands until the wait's deadline; when
a server (or a proxy in front of it) refuses the stream with RESOURCE_EXHAUSTED, `wait` polls GetJob
instead.
"""

from __future__ import annotations

import datetime
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import grpc
import numpy as np
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from PIL import Image as PILImage

from glassbox_client._generated.glassbox.v1 import job_service_pb2 as job_pb
from glassbox_client._generated.glassbox.v1 import job_service_pb2_grpc as job_grpc
from glassbox_client.calls import ServiceCalls
from glassbox_client.descriptors import message_type_of
from glassbox_client.errors import (
    ErrorStatus,
    GlassboxError,
    ResourceExhaustedError,
    UnavailableError,
    error_from_rpc,
)
from glassbox_client.images import array_from_tensor, image_from_png
from glassbox_client.requests import set_fields

KINDS = tuple(f.name for f in job_pb.SubmitJobRequest.DESCRIPTOR.oneofs_by_name["spec"].fields)
FINISHED = frozenset({"succeeded", "failed", "cancelled"})
DEFAULT_WAIT_S = 3600.0
POLL_INTERVAL_S = 1.0
"""How often `wait` polls GetJob when the server refuses a watch stream (RESOURCE_EXHAUSTED)."""


@dataclass(frozen=True)
class JobProgress:
    """Steps done of `total` (0 until reported), the objective's value if any, and a note."""

    step: int
    total: int
    objective: float | None
    message: str


@dataclass(frozen=True)
class JobResult:
    """A finished job's output: its top-level pictures (PIL: generated images with their float pixels
    [3, H, W], and a report's plot or summary, whose `pixels` entry is None), other arrays by field name
    (e.g. `perturbation`), and the scalar fields by name. `message` is the result message itself;
    `Job.typed_result` is the typed form of the kinds whose results nest further (reports, layouts,
    examples, cells)."""

    images: list[PILImage.Image] = field(default_factory=list)
    pixels: list[np.ndarray | None] = field(default_factory=list)
    arrays: dict[str, np.ndarray | None] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    message: Message | None = None

    @classmethod
    def from_proto(cls, result: Message) -> JobResult:
        out = cls(message=result)
        for descriptor, value in result.ListFields():
            items = list(value) if descriptor.is_repeated else [value]
            kind = message_type_of(descriptor).name if descriptor.type == FieldDescriptor.TYPE_MESSAGE else ""
            if kind == "GeneratedImage":
                out.images.extend(_picture(item.png) for item in items)
                out.pixels.extend(array_from_tensor(item.pixels) for item in items)
            elif kind == "Tensor":
                out.arrays[descriptor.name] = array_from_tensor(value)
            elif descriptor.type == FieldDescriptor.TYPE_BYTES:
                out.images.extend(_picture(item) for item in items)
                out.pixels.extend(None for _ in items)
            elif not kind:
                out.values[descriptor.name] = items if descriptor.is_repeated else value
        return out

    def _repr_png_(self) -> bytes | None:
        """Jupyter shows the generated images side by side."""
        from glassbox_client.display import picture_strip, png_bytes

        strip = picture_strip(self.images)
        return None if strip is None else png_bytes(strip)

    def _repr_html_(self) -> str | None:
        from glassbox_client.display import html_pictures

        pictures = [(f"image {index}", image) for index, image in enumerate(self.images)]
        return html_pictures(pictures) if pictures else None


def _picture(png: bytes) -> PILImage.Image:
    """A picture of a result: a generated image's PNG, or a bytes field that ListFields found set."""
    image = image_from_png(png)
    if image is None:
        raise ValueError("the job's result holds an empty PNG")
    return image


def _time(stamp: Any, present: bool) -> datetime.datetime | None:
    return stamp.ToDatetime(tzinfo=datetime.UTC) if present else None


@dataclass(frozen=True)
class Job:
    """A job as the server last reported it. `state` is queued, running, succeeded, failed or
    cancelled; `error_status` says why once failed or cancelled (typed: code, message, reason, field
    violations; `error` is its (code name, message)); `result` once succeeded. `owner` is the principal
    that submitted it, `request_id` the idempotency key it was submitted with."""

    id: str
    kind: str
    model: str
    seed: int
    state: str
    progress: JobProgress
    attempt: int
    max_attempts: int
    cancel_requested: bool
    create_time: datetime.datetime | None
    start_time: datetime.datetime | None
    finish_time: datetime.datetime | None
    error: tuple[str, str] | None
    result: JobResult | None
    error_status: ErrorStatus | None = None
    owner: str = ""
    request_id: str = ""

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def typed_result(self) -> Any:
        """The result as its kind's typed class (`RobustnessReport`, `ExplanationReport`, `EmbeddingMap`,
        `TopActivating`, `ActivationAtlas`); None before success or for the kinds `result` covers."""
        if self.result is None or self.result.message is None:
            return None
        from glassbox_client.typed_results import typed_result

        return typed_result(self.id, self.kind, self.result.message)

    def _repr_html_(self) -> str:
        """Jupyter shows the state and, once succeeded, the result's pictures."""
        from glassbox_client.display import html_pictures

        line = f"job {self.id} ({self.kind} on {self.model}): {self.state}"
        if self.error is not None:
            line += f": {self.error[0]} {self.error[1]}"
        images = self.result.images if self.result is not None else []
        return html_pictures([(f"image {i}", image) for i, image in enumerate(images)], line)

    def raise_for_state(self) -> Job:
        """This job when it SUCCEEDED; JobFailedError otherwise."""
        if self.state != "succeeded":
            raise JobFailedError(self)
        return self

    @classmethod
    def from_proto(cls, job: job_pb.Job) -> Job:
        progress = job.progress
        which = job.WhichOneof("result")
        status = ErrorStatus.from_proto(job.error_status) if job.HasField("error_status") else None
        if status is None and job.HasField("error"):  # a server from before error_status
            code = getattr(grpc.StatusCode, job.error.code_name, grpc.StatusCode.UNKNOWN)
            status = ErrorStatus(code, job.error.message)
        return cls(
            id=job.id,
            kind=job.kind,
            model=job.model,
            seed=job.seed,
            state=job_pb.JobState.Name(job.state).removeprefix("JOB_STATE_").lower(),
            progress=JobProgress(
                progress.step,
                progress.total,
                progress.objective if progress.HasField("objective") else None,
                progress.message,
            ),
            attempt=job.attempt,
            max_attempts=job.max_attempts,
            cancel_requested=job.cancel_requested,
            create_time=_time(job.create_time, job.HasField("create_time")),
            start_time=_time(job.start_time, job.HasField("start_time")),
            finish_time=_time(job.finish_time, job.HasField("finish_time")),
            error=(status.code.name, status.message) if status is not None else None,
            result=JobResult.from_proto(getattr(job, which)) if which else None,
            error_status=status,
            owner=job.owner,
            request_id=job.request_id,
        )


@dataclass(frozen=True)
class JobUpdate:
    """One message of a watched job: the job, a PNG preview when one was due, and whether it is only a
    heartbeat (nothing changed; the stream is alive)."""

    job: Job
    preview: PILImage.Image | None
    heartbeat: bool = False

    @classmethod
    def from_proto(cls, message: job_pb.WatchJobResponse) -> JobUpdate:
        return cls(Job.from_proto(message.job), image_from_png(message.preview_png), message.heartbeat)


def watch_request(job_id: str, preview_every_steps: int, omit_result: bool) -> job_pb.WatchJobRequest:
    return job_pb.WatchJobRequest(
        job_id=job_id, preview_every_steps=preview_every_steps, omit_result=omit_result
    )


class JobFailedError(GlassboxError):
    """A waited-for job ended FAILED or CANCELLED; `job` has its error, and this exception its status
    details (`reason`, `field`, ...) as a failed call's would."""

    def __init__(self, job: Job) -> None:
        status = job.error_status or ErrorStatus(grpc.StatusCode.UNKNOWN, f"job ended {job.state}")
        message = f"job {job.id} ({job.kind}) {job.state}: {status.message}"
        super().__init__(status.code, message, method="Job", status=status)
        self.job = job


def submit_request(
    kind: str, model: str, spec: dict[str, Any], request_id: str | None = None
) -> job_pb.SubmitJobRequest:
    """The SubmitJob request, with `request_id` or a new random one (see `with_request_id`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown job kind {kind!r}; the kinds are {', '.join(KINDS)}")
    request = job_pb.SubmitJobRequest(request_id=request_id or "")
    set_fields(getattr(request, kind), {"model": model, **spec}, where=kind)
    return with_request_id(request)


def with_request_id(request: job_pb.SubmitJobRequest) -> job_pb.SubmitJobRequest:
    """The request with a random request_id when it has none. The channel retries SubmitJob on
    UNAVAILABLE with the same message, hence the same id, so a retry never queues the job twice."""
    if not request.request_id:
        request.request_id = uuid.uuid4().hex
    return request


def list_request(states: Iterable[str], kind: str, model: str, page_size: int) -> job_pb.ListJobsRequest:
    numbers = [  # an enum's Value() is typed as a plain int
        cast(job_pb.JobState, job_pb.JobState.Value(f"JOB_STATE_{state.upper()}")) for state in states
    ]
    return job_pb.ListJobsRequest(states=numbers, kind=kind, model=model, page_size=page_size)


def show_progress(progress: bool | None) -> bool:
    """`progress=None` (the default of the waiting helpers): a bar when stderr is a terminal."""
    if progress is None:
        return sys.stderr.isatty()
    return progress


class ProgressBar:
    """A tqdm bar over a job's steps (tqdm is imported only when a bar is asked for)."""

    def __init__(self, job_id: str) -> None:
        from tqdm import tqdm

        self._bar = tqdm(desc=f"job {job_id[:8]}", unit="step", total=None, leave=True)

    def update(self, job: Job) -> None:
        progress = job.progress
        if progress.total and self._bar.total != progress.total:
            self._bar.total = progress.total
        self._bar.n = progress.step
        postfix = {"state": job.state}
        if progress.objective is not None:
            postfix["objective"] = f"{progress.objective:.4g}"
        self._bar.set_postfix(postfix, refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


class Jobs:
    """`GlassboxClient.jobs`: the JobService calls over the client's channel, deadline and token."""

    def __init__(self, channel: grpc.Channel, metadata: Callable[[], tuple], default_timeout: float) -> None:
        self._call = ServiceCalls(job_grpc.JobServiceStub(channel), metadata, default_timeout)

    def submit(
        self,
        kind: str,
        *,
        model: str,
        timeout: float | None = None,
        request_id: str | None = None,
        **spec: Any,
    ) -> Job:
        """Queue a job; `kind` is a spec name (class_visualisation, deepdream, ...) and `**spec` its
        fields (`target="star"`, `steps=256`, `image="docs/images/star.png"`). Returns the job QUEUED.

        `request_id` is the idempotency key (a random one when None): submitting again with the same
        id and spec returns the same job, e.g. after a DEADLINE_EXCEEDED whose request did arrive."""
        request = submit_request(kind, model, spec, request_id)
        return Job.from_proto(self._call("SubmitJob", request, timeout).job)

    def get(self, job_id: str, *, timeout: float | None = None) -> Job:
        return Job.from_proto(self._call("GetJob", job_pb.GetJobRequest(job_id=job_id), timeout).job)

    def cancel(self, job_id: str, *, timeout: float | None = None) -> Job:
        return Job.from_proto(self._call("CancelJob", job_pb.CancelJobRequest(job_id=job_id), timeout).job)

    def list(
        self, *, states: Iterable[str] = (), kind: str = "", model: str = "", page_size: int = 0
    ) -> Iterator[Job]:
        """Every matching job, newest first, fetching pages as the iteration goes."""
        request = list_request(states, kind, model, page_size)
        while True:
            page = self._call("ListJobs", request, None)
            yield from (Job.from_proto(job) for job in page.jobs)
            if not page.next_page_token:
                return
            request.page_token = page.next_page_token

    def watch(
        self,
        job_id: str,
        *,
        preview_every_steps: int = 0,
        omit_result: bool = False,
        timeout: float = DEFAULT_WAIT_S,
    ) -> Iterator[JobUpdate]:
        """The job now, then every update until it finishes (one stream; see `wait` for resuming);
        heartbeat updates (`update.heartbeat`) while nothing changes. `omit_result` leaves the result
        out of the last update."""
        request = watch_request(job_id, preview_every_steps, omit_result)
        try:
            for message in self._call.stub.WatchJob(request, timeout=timeout, metadata=self._call.metadata()):
                yield JobUpdate.from_proto(message)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, "WatchJob") from None

    def wait(
        self,
        job_id: str,
        *,
        timeout: float = DEFAULT_WAIT_S,
        progress: bool | None = None,
        cancel_on_interrupt: bool = True,
    ) -> Job:
        """Block until the job finishes and return it in its final state; Ctrl-C cancels it first."""
        deadline = time.monotonic() + timeout
        bar = ProgressBar(job_id) if show_progress(progress) else None
        backoff = 0.2
        try:
            while True:
                try:
                    for update in self.watch(job_id, timeout=max(deadline - time.monotonic(), 0.001)):
                        if bar is not None:
                            bar.update(update.job)
                        if update.job.finished:
                            return update.job
                except UnavailableError:
                    if time.monotonic() + backoff >= deadline:
                        raise
                except ResourceExhaustedError:
                    job = self.get(job_id)
                    if bar is not None:
                        bar.update(job)
                    if job.finished:
                        return job
                    backoff = POLL_INTERVAL_S / 2
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        except KeyboardInterrupt:
            if cancel_on_interrupt:
                self.cancel(job_id, timeout=5)
            raise
        finally:
            if bar is not None:
                bar.close()

    def run(
        self,
        kind: str,
        *,
        model: str,
        timeout: float = DEFAULT_WAIT_S,
        progress: bool | None = None,
        **spec: Any,
    ) -> Job:
        """Submit, wait (cancelling on Ctrl-C) and return the SUCCEEDED job; JobFailedError otherwise."""
        job = self.submit(kind, model=model, **spec)
        return self.wait(job.id, timeout=timeout, progress=progress).raise_for_state()

    def run_request(
        self,
        request: job_pb.SubmitJobRequest,
        *,
        timeout: float = DEFAULT_WAIT_S,
        progress: bool | None = None,
    ) -> job_pb.Job:
        """Submit a ready-made request, wait (cancelling on Ctrl-C) and return the SUCCEEDED job's message
        with its result, for the typed helpers whose results nest messages; JobFailedError otherwise."""
        job_id = self._call("SubmitJob", with_request_id(request)).job.id
        self.wait(job_id, timeout=timeout, progress=progress).raise_for_state()
        return self._call("GetJob", job_pb.GetJobRequest(job_id=job_id)).job
