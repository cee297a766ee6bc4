"""JobService: SubmitJob, GetJob, WatchJob, CancelJob, ListJobs — translation only; the work is in
glassbox.jobs (the engine) and the job kinds it runs."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

import grpc
from glassbox_client._generated.glassbox.v1 import job_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import job_service_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp

from glassbox.core.cancellation import CancellationToken
from glassbox.core.errors import InvalidArgument
from glassbox.jobs.engine import JobEngine
from glassbox.jobs.kinds import kind_names
from glassbox.jobs.records import JobFilter, JobRecord, JobState
from glassbox.server.context import ServerContext
from glassbox.server.errors import status_for

STATES = {
    JobState.QUEUED: pb.JOB_STATE_QUEUED,
    JobState.RUNNING: pb.JOB_STATE_RUNNING,
    JobState.SUCCEEDED: pb.JOB_STATE_SUCCEEDED,
    JobState.FAILED: pb.JOB_STATE_FAILED,
    JobState.CANCELLED: pb.JOB_STATE_CANCELLED,
}
STATES_BY_ENUM = {enum: state for state, enum in STATES.items()}
JOB_ID = re.compile(r"^[0-9a-f]{32}$")
DEFAULT_PAGE_SIZE = 50


class JobServicer(job_service_pb2_grpc.JobServiceServicer):
    def __init__(self, context: ServerContext) -> None:
        self._ctx = context

    @property
    def _jobs(self) -> JobEngine:
        return self._ctx.jobs

    def SubmitJob(self, request: pb.SubmitJobRequest, context: grpc.ServicerContext) -> pb.SubmitJobResponse:
        kind = request.WhichOneof("spec")
        if kind is None:
            raise InvalidArgument(f"set one job spec (one of {kind_names()})", field="spec")
        return pb.SubmitJobResponse(job=self._job(self._jobs.submit(kind, getattr(request, kind))))

    def GetJob(self, request: pb.GetJobRequest, context: grpc.ServicerContext) -> pb.GetJobResponse:
        return pb.GetJobResponse(job=self._job(self._jobs.get(_job_id(request.job_id))))

    def WatchJob(
        self, request: pb.WatchJobRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.WatchJobResponse]:
        job_id = _job_id(request.job_id)
        self._jobs.check_preview_interval(request.preview_every_steps)
        token = CancellationToken(context.is_active)
        for update in self._jobs.watch(job_id, request.preview_every_steps, token):
            yield pb.WatchJobResponse(job=self._job(update.job), preview_png=update.preview_png or b"")

    def CancelJob(self, request: pb.CancelJobRequest, context: grpc.ServicerContext) -> pb.CancelJobResponse:
        return pb.CancelJobResponse(job=self._job(self._jobs.cancel(_job_id(request.job_id))))

    def ListJobs(self, request: pb.ListJobsRequest, context: grpc.ServicerContext) -> pb.ListJobsResponse:
        states = set()
        for i, state in enumerate(request.states):
            if state not in STATES_BY_ENUM:
                raise InvalidArgument(f"not a job state: {state}", field=f"states[{i}]")
            states.add(STATES_BY_ENUM[state])
        if request.kind and request.kind not in kind_names():
            raise InvalidArgument(
                f"unknown job kind {request.kind!r}; known kinds: {kind_names()}", field="kind"
            )
        largest = self._ctx.settings.jobs.page_size_max
        if not 0 <= request.page_size <= largest:
            raise InvalidArgument(f"must be in 0..{largest}, got {request.page_size}", field="page_size")
        criteria = JobFilter(states=frozenset(states), kind=request.kind, model=request.model)
        page, token = self._jobs.list(criteria, request.page_size or DEFAULT_PAGE_SIZE, request.page_token)
        jobs = [self._job(record, with_result=False) for record in page]
        return pb.ListJobsResponse(jobs=jobs, next_page_token=token)

    def _job(self, record: JobRecord, *, with_result: bool = True) -> pb.Job:
        job = pb.Job(
            id=record.id,
            kind=record.kind,
            model=record.model,
            seed=record.seed,
            state=STATES[record.state],
            progress=pb.JobProgress(
                step=record.progress.step, total=record.progress.total, message=record.progress.message
            ),
            attempt=record.attempt,
            max_attempts=record.max_attempts,
            cancel_requested=record.cancel_requested,
            create_time=_timestamp(record.created_at),
        )
        if not math.isnan(record.progress.objective):
            job.progress.objective = record.progress.objective
        if record.started_at is not None:
            job.start_time.CopyFrom(_timestamp(record.started_at))
        if record.finished_at is not None:
            job.finish_time.CopyFrom(_timestamp(record.finished_at))
            job.expire_time.CopyFrom(
                _timestamp(record.finished_at + self._ctx.settings.jobs.result_ttl_seconds)
            )
        if record.error is not None:
            code = status_for(record.error.as_exception())
            job.error.CopyFrom(
                pb.JobError(code=code.value[0], code_name=code.name, message=record.error.message)
            )
        if with_result and record.result is not None:
            getattr(job, record.kind).ParseFromString(record.result)
        return job


def _job_id(job_id: str) -> str:
    if not job_id:
        raise InvalidArgument("job_id is required", field="job_id")
    if not JOB_ID.match(job_id):
        raise InvalidArgument(
            f"not a job id (32 hex digits, as SubmitJob returns): {job_id[:64]!r}", field="job_id"
        )
    return job_id


def _timestamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(round(seconds * 1e9))
    return stamp
