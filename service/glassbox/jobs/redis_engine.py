"""The distributed engine: jobs go through an RQ queue on Redis and run in `glassbox worker` processes.

The server only admits, observes and cancels; it holds no job state, so a restart loses nothing. RQ
carries the work: its queue, its started-job registry and its retry of abandoned jobs (see
`recovery`). Job state, progress and results live in Redis (see `redis_store`). See docs/jobs.md for
the design and why RQ.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar, cast

import redis
from redis import Redis
from redis.client import Pipeline
from rq import Callback, Queue, Retry
from rq.serializers import JSONSerializer

from glassbox.config import JobSettings, Settings
from glassbox.core.cancellation import CancellationToken
from glassbox.core.errors import ResourceExhausted, Unavailable
from glassbox.core.reasons import Reason
from glassbox.jobs.engine import JobEngine, QueueDepth, job_not_found, preview_wanted
from glassbox.jobs.kinds import JobKind
from glassbox.jobs.records import (
    JobError,
    JobFilter,
    JobRecord,
    JobState,
    JobUpdate,
    PageCursor,
    RequestClaim,
    paginate,
)
from glassbox.jobs.recovery import Reaper, on_worker_lost
from glassbox.jobs.redis_store import RedisJobStore, error_fields
from glassbox.models.repository import ModelRepository

log = logging.getLogger(__name__)

PERFORM = "glassbox.jobs.worker.perform"
WATCH_BLOCK_SECONDS = 1.0
RUN_TIMEOUT_MARGIN_SECONDS = 60
"""RQ's own job timeout, past max_run_seconds: a backstop for a job stuck inside one step."""
LIST_BATCH = 256

T = TypeVar("T")


def connect(url: str) -> Redis:
    """A client for job state: binary values, a socket timeout longer than a watcher's blocking read."""
    return Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30)


def job_queue(connection: Redis, namespace: str) -> Queue:
    """The RQ queue of a namespace (JSON-serialised calls: nothing from Redis is ever unpickled)."""
    return Queue(f"{namespace}:jobs", connection=connection, serializer=JSONSerializer)


def transaction_value(connection: Redis, func: Callable[[Pipeline], T], *watches: str) -> T:
    """Run `func` in a transaction WATCHing `watches` (again on a WatchError) and return its value.
    redis-py types `Redis.transaction`'s callable as returning None and its result as the pipeline's
    replies, though with `value_from_callable=True` it returns the callable's value."""
    run = cast(Callable[[Pipeline], None], func)
    return cast(T, connection.transaction(run, *watches, value_from_callable=True))


@contextlib.contextmanager
def redis_errors() -> Iterator[None]:
    """Redis outages become UNAVAILABLE for the caller."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise Unavailable(
            f"the job store (Redis) is unreachable: {exc}", reason=Reason.STORE_UNAVAILABLE
        ) from exc


class RedisJobEngine(JobEngine):
    """Admission, state and watching on Redis; execution in `glassbox worker` processes."""

    def __init__(
        self,
        settings: JobSettings,
        repository: ModelRepository,
        *,
        kinds: Iterable[JobKind[Any, Any]],
        on_queue_depth: QueueDepth | None = None,
        server_settings: Settings | None = None,
    ) -> None:
        super().__init__(settings, repository, kinds=kinds, server_settings=server_settings)
        self.redis = connect(settings.redis_url)
        self.store = RedisJobStore(self.redis, settings.namespace)
        self.queue = job_queue(self.redis, settings.namespace)
        self._on_queue_depth = on_queue_depth
        self._depth_kinds: set[str] = set()
        self._reaper = Reaper(self.queue, settings.heartbeat_seconds, self._tick).start()

    def _claim_of(self, owner: str, request_id: str) -> RequestClaim | None:
        with redis_errors():
            return self.store.claim(self.redis, owner, request_id)

    def _enqueue(self, record: JobRecord, spec: bytes, spec_digest: str) -> JobRecord:
        settings = self.settings
        retry = Retry(max=settings.max_attempts - 1) if settings.max_attempts > 1 else None
        request_key = self.store.request_key(record.owner, record.request_id) if record.request_id else None

        def admit(pipe: Pipeline) -> RequestClaim | None:
            """Queue the job, or return the claim another request made on the same request_id first (the
            request key is WATCHed: two racing requests cannot both queue)."""
            if request_key is not None:
                claim = self.store.claim(pipe, record.owner, record.request_id)
                if claim is not None:
                    return claim
            waiting = pipe.llen(self.queue.key)
            if waiting >= self.settings.queue_capacity:
                raise ResourceExhausted(
                    f"the job queue is full ({self.settings.queue_capacity} jobs waiting); retry later",
                    reason=Reason.JOB_QUEUE_FULL,
                )
            pipe.multi()
            self.store.create(pipe, record, spec)
            if request_key is not None:
                ttl = math.ceil(self.request_ttl_seconds * 1000)
                pipe.set(request_key, f"{record.id} {spec_digest}", px=ttl)
            self.queue.enqueue_call(
                PERFORM,
                args=(
                    self.settings.namespace,
                    record.id,
                    settings.result_ttl_seconds,
                    settings.max_run_seconds,
                ),
                job_id=record.id,
                timeout=settings.max_run_seconds + RUN_TIMEOUT_MARGIN_SECONDS,
                result_ttl=0,
                failure_ttl=math.ceil(self.settings.result_ttl_seconds),
                retry=retry,
                on_failure=Callback(on_worker_lost),
                pipeline=pipe,
            )
            return None

        watched = [self.queue.key] + ([request_key] if request_key is not None else [])
        with redis_errors():
            claim = transaction_value(self.redis, admit, *watched)
        if claim is not None:
            return self.resolve_claim(claim, spec_digest, record.request_id)
        return record

    def _load(self, job_id: str) -> JobRecord:
        with redis_errors():
            record = self.store.load(job_id)
        if record is None:
            raise job_not_found(job_id)
        return record

    def _cancel(self, job_id: str) -> JobRecord:
        with redis_errors():
            while True:
                record = self._load(job_id)
                if record.state is JobState.QUEUED:
                    final: dict[str, str | bytes] = {
                        "state": JobState.CANCELLED.value,
                        "finished_at": repr(time.time()),
                    }
                    final.update(error_fields(JobError("Cancelled", "cancelled by CancelJob")))
                    ttl = self.settings.result_ttl_seconds
                    written, *_ = self.store.write(
                        job_id, final, states=[JobState.QUEUED], attempt=record.attempt, ttl_seconds=ttl
                    )
                    if written:
                        self._drop_queued_call(job_id)
                        return self._load(job_id)
                elif record.state is JobState.RUNNING and not record.cancel_requested:
                    written, *_ = self.store.write(
                        job_id, {"cancel_requested": "1"}, states=[JobState.RUNNING]
                    )
                    if written:
                        return self._load(job_id)
                else:
                    return record

    def list(self, criteria: JobFilter, page_size: int, page_token: str) -> tuple[list[JobRecord], str]:
        cursor = PageCursor.decode(page_token)
        before = cursor.created_at if cursor else math.inf
        matched: dict[str, JobRecord] = {}
        expired: list[str] = []
        offset = 0
        with redis_errors():
            while len(matched) <= page_size:
                ids = self.store.ids_created_before(before, offset, LIST_BATCH)
                for job_id, record in zip(ids, self.store.load_light(ids), strict=True):
                    if record is None:
                        expired.append(job_id)
                    elif (cursor is None or cursor.before(record)) and criteria.matches(record):
                        matched[job_id] = record
                if len(ids) < LIST_BATCH:
                    break
                offset += LIST_BATCH
            self.store.forget(expired)
        newest_first = sorted(matched.values(), key=lambda job: (job.created_at, job.id), reverse=True)
        return paginate(newest_first, JobFilter(), page_size, None)

    def _watch(self, job_id: str, preview_every_steps: int, token: CancellationToken) -> Iterator[JobUpdate]:
        watcher = uuid.uuid4().hex
        with redis_errors():
            record, last = self.store.snapshot(job_id)
            if record is None:
                raise job_not_found(job_id)
            self.store.register_watcher(job_id, watcher, preview_every_steps)
        try:
            yield JobUpdate(record)
            while not record.state.finished and not token.cancelled:
                with redis_errors():
                    self.store.register_watcher(job_id, watcher, preview_every_steps)
                    events = self.store.events(job_id, last, WATCH_BLOCK_SECONDS)
                    if not events and not self.redis.exists(self.store.key(job_id)):
                        return
                for _event_id, record, preview_id in events:
                    png = None
                    with redis_errors():
                        if record.state.finished:
                            record = record.with_(result=self.store.load_result(job_id))
                        if preview_id is not None and preview_wanted(
                            record.progress.step, preview_every_steps
                        ):
                            png = self.store.load_preview(job_id, preview_id)
                    yield JobUpdate(record, png)
                    if record.state.finished:
                        return
                if events:
                    last = events[-1][0]
        finally:
            with contextlib.suppress(redis.RedisError):
                self.store.unregister_watcher(job_id, watcher, preview_every_steps)

    def _drop_queued_call(self, job_id: str) -> None:
        """Take a cancelled job's call out of RQ's queue and let its data expire. A worker that
        dequeued it a moment ago finds the job CANCELLED and skips it."""
        self.queue.remove(job_id)
        queued_call = self.queue.fetch_job(job_id)
        if queued_call is not None:
            queued_call.cleanup(ttl=math.ceil(self.settings.result_ttl_seconds))

    def close(self) -> None:
        self._reaper.stop()
        self.redis.close()

    def _tick(self) -> None:
        """Housekeeping every heartbeat: drop expired jobs from the index, report the queue depth."""
        self.store.prune_index()
        if self._on_queue_depth is None:
            return
        waiting = [
            job_id.decode() if isinstance(job_id, bytes) else job_id for job_id in self.queue.get_job_ids()
        ]
        depth = Counter(r.kind for r in self.store.load_light(waiting) if r is not None)
        for kind in self._depth_kinds | set(depth):
            self._on_queue_depth(kind, depth.get(kind, 0))
        self._depth_kinds |= set(depth)
