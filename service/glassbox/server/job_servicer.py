"""JobService: SubmitJob, GetJob, WatchJob, CancelJob, ListJobs — translation only; the work is in
glassbox.jobs (the engine) and the job kinds it runs. Every engine call (in-process locks, Redis I/O,
a spec's validation) runs on the blocking-I/O pool; the engine submits the job runs themselves to the
compute scheduler at background priority.

WatchJob costs a coroutine, not a thread, while its job does not change. The engine's `watch()` is a
blocking iterator (it waits up to a poll interval for news), so it is stepped on the pool only while it
has news: after each update the stream compares the update with the job as the engine has it now, and
while they agree it waits on a `JobChanges` hub, one task for the whole server that looks all watched
jobs up in one pool task per tick and wakes the streams whose job changed (every update the engines
publish changes the job record: its state, attempt or progress). (With the Redis engine a watcher
renews its preview lease at each step, so a job idle for over 5 s may skip the preview of the step that
ends the pause.) After `jobs.watch_heartbeat_seconds` without news the stream sends a heartbeat (the job
as it is, with `heartbeat` set), and it always ends with a finished job or an error status.

Every call acts for its principal (server/auth.py): the engine shows it only its own jobs (an admin sees
all), and a SubmitJob request_id is scoped to it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from glassbox_client._generated.glassbox.v1 import job_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import job_service_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp

from glassbox.core.cancellation import CancellationToken
from glassbox.core.errors import GlassboxError, InvalidArgument, Unavailable
from glassbox.core.reasons import Reason
from glassbox.jobs.engine import JobEngine
from glassbox.jobs.ids import JOB_ID
from glassbox.jobs.records import JobFilter, JobRecord, JobState, JobUpdate
from glassbox.server.context import ServerContext
from glassbox.server.errors import status_for, status_proto
from glassbox.server.interceptors import DONE, PooledIterator

STATES = {
    JobState.QUEUED: pb.JOB_STATE_QUEUED,
    JobState.RUNNING: pb.JOB_STATE_RUNNING,
    JobState.SUCCEEDED: pb.JOB_STATE_SUCCEEDED,
    JobState.FAILED: pb.JOB_STATE_FAILED,
    JobState.CANCELLED: pb.JOB_STATE_CANCELLED,
}
STATES_BY_ENUM = {enum: state for state, enum in STATES.items()}
DEFAULT_PAGE_SIZE = 50
WATCH_TICK_SECONDS = 0.1
"""How often the watch hub looks the watched jobs up (the longest a change waits to be noticed)."""


class JobServicer(job_service_pb2_grpc.JobServiceServicer):
    def __init__(self, context: ServerContext) -> None:
        self._ctx = context
        self._changes = JobChanges(context)

    @property
    def _jobs(self) -> JobEngine:
        return self._ctx.jobs

    async def SubmitJob(
        self, request: pb.SubmitJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.SubmitJobResponse:
        kind = request.WhichOneof("spec")
        if kind is None:
            raise InvalidArgument(f"set one job spec (one of {self._jobs.kinds.names()})", field="spec")
        spec = getattr(request, kind)
        owner = self._ctx.principals.principal(context).name
        return await self._ctx.blocking(
            lambda: pb.SubmitJobResponse(
                job=self._job(self._jobs.submit(kind, spec, owner=owner, request_id=request.request_id))
            )
        )

    async def GetJob(self, request: pb.GetJobRequest, context: grpc.aio.ServicerContext) -> pb.GetJobResponse:
        job_id = _job_id(request.job_id)
        principal = self._ctx.principals.principal(context)
        return await self._ctx.blocking(
            lambda: pb.GetJobResponse(job=self._job(self._jobs.get(job_id, principal)))
        )

    async def WatchJob(
        self, request: pb.WatchJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchJobResponse]:
        job_id = _job_id(request.job_id)
        every = request.preview_every_steps
        self._jobs.check_preview_interval(every)
        principal = self._ctx.principals.principal(context)
        with_result = not request.omit_result
        heartbeat = self._ctx.settings.jobs.watch_heartbeat_seconds
        token = CancellationToken()

        def step(iterator: Any) -> tuple[pb.WatchJobResponse, JobRecord, JobRecord | None] | object:
            """One update as sent, its job, and the job as the engine has it now (None: unknown)."""
            update: JobUpdate | object = next(iterator, DONE)
            if not isinstance(update, JobUpdate):
                return DONE
            job = self._job(update.job, with_result=with_result)
            response = pb.WatchJobResponse(job=job, preview_png=update.preview_png or b"")
            return response, update.job, None if update.job.state.finished else _lookup(self._jobs, job_id)

        updates = PooledIterator(
            self._ctx.pool, lambda: _stepper(self._jobs.watch(job_id, every, token, principal), step)
        )
        try:
            while (item := await updates.next()) is not DONE:
                response, job, now = item
                yield response
                if job.state.finished:
                    return
                while (
                    now is not None
                    and _same(now, job)
                    and not await self._changes.wait(job_id, job, heartbeat)
                ):
                    yield pb.WatchJobResponse(job=self._job(now, with_result=False), heartbeat=True)
        finally:
            token.cancel()
            updates.close()
        await self._ctx.blocking(self._jobs.get, job_id, principal)  # NotFound when the job went away
        raise Unavailable(
            f"the watch of job {job_id} ended before the job did (the server is stopping or the job store "
            "failed); watch it again",
            reason=Reason.WATCH_INTERRUPTED,
            metadata={"job_id": job_id},
        )

    async def CancelJob(
        self, request: pb.CancelJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelJobResponse:
        job_id = _job_id(request.job_id)
        principal = self._ctx.principals.principal(context)
        return await self._ctx.blocking(
            lambda: pb.CancelJobResponse(job=self._job(self._jobs.cancel(job_id, principal)))
        )

    async def ListJobs(
        self, request: pb.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListJobsResponse:
        states = set()
        for i, state in enumerate(request.states):
            if state not in STATES_BY_ENUM:
                raise InvalidArgument(f"not a job state: {state}", field=f"states[{i}]")
            states.add(STATES_BY_ENUM[state])
        if request.kind and request.kind not in self._jobs.kinds:
            raise InvalidArgument(
                f"unknown job kind {request.kind!r}; known kinds: {self._jobs.kinds.names()}", field="kind"
            )
        largest = self._ctx.settings.jobs.page_size_max
        if not 0 <= request.page_size <= largest:
            raise InvalidArgument(f"must be in 0..{largest}, got {request.page_size}", field="page_size")
        principal = self._ctx.principals.principal(context)
        owner = None if principal.admin else principal.name
        criteria = JobFilter(states=frozenset(states), kind=request.kind, model=request.model, owner=owner)

        def page() -> pb.ListJobsResponse:
            records, token = self._jobs.list(
                criteria, request.page_size or DEFAULT_PAGE_SIZE, request.page_token
            )
            jobs = [self._job(record, with_result=False) for record in records]
            return pb.ListJobsResponse(jobs=jobs, next_page_token=token)

        return await self._ctx.blocking(page)

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
            owner=record.owner,
            request_id=record.request_id,
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
            error = record.error.as_exception()
            code = status_for(error)
            job.error.CopyFrom(  # the deprecated form, for clients that predate error_status
                pb.JobError(code=code.value[0], code_name=code.name, message=record.error.message)
            )
            reason = Reason.INTERNAL if code is grpc.StatusCode.INTERNAL else error.reason
            job.error_status.CopyFrom(
                status_proto(
                    code,
                    record.error.message,
                    reason=reason,
                    field=record.error.field or None,
                    metadata=record.error.metadata,
                )
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


def _stepper(iterator: Any, step: Callable[[Any], Any]) -> Any:
    """An iterator over `step(iterator)` until it returns DONE (the work of each step stays on the pool);
    closing it closes the engine's iterator."""
    try:
        while (item := step(iterator)) is not DONE:
            yield item
    finally:
        iterator.close()


def _lookup(jobs: JobEngine, job_id: str) -> JobRecord | None:
    """The job as the engine has it now; None when that cannot be told (gone, or the store failed)."""
    try:
        return jobs.get(job_id)
    except GlassboxError:
        return None


def _lookup_all(jobs: JobEngine, job_ids: list[str]) -> dict[str, JobRecord | None]:
    return {job_id: _lookup(jobs, job_id) for job_id in job_ids}


def _same(a: JobRecord, b: JobRecord) -> bool:
    """Whether two records of a job show the same state to a watcher (NaN objectives compare equal)."""
    return _fingerprint(a) == _fingerprint(b)


def _fingerprint(record: JobRecord) -> tuple[object, ...]:
    progress = record.progress
    objective = None if math.isnan(progress.objective) else progress.objective
    return (
        record.state,
        record.attempt,
        record.cancel_requested,
        record.started_at,
        record.finished_at,
        progress.step,
        progress.total,
        progress.message,
        objective,
    )


class JobChanges:
    """Wakes watch streams when their job changes, looking every watched job up once per tick in one
    pool task (not one task per stream). Runs only while some stream waits."""

    def __init__(self, context: ServerContext) -> None:
        self._ctx = context
        self._waiting: dict[str, list[tuple[tuple[object, ...], asyncio.Future[None]]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def wait(self, job_id: str, seen: JobRecord, timeout: float) -> bool:
        """Wait until the job looks different from `seen` (or is gone): True, or False after `timeout`."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (_fingerprint(seen), waiter)
        self._waiting.setdefault(job_id, []).append(entry)
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            entries = self._waiting.get(job_id, [])
            if entry in entries:
                entries.remove(entry)
            if not entries:
                self._waiting.pop(job_id, None)

    async def _run(self) -> None:
        while self._waiting:
            await asyncio.sleep(WATCH_TICK_SECONDS)
            job_ids = list(self._waiting)
            if not job_ids:
                break
            try:
                records = await self._ctx.blocking(_lookup_all, self._ctx.jobs, job_ids)
            except Exception:  # the pool is gone (stopping) or the engine failed: let every stream step
                records = dict.fromkeys(job_ids)
            for job_id, record in records.items():
                for seen, waiter in self._waiting.get(job_id, []):
                    if not waiter.done() and (record is None or _fingerprint(record) != seen):
                        waiter.set_result(None)
