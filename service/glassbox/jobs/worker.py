"""`glassbox worker`: run queued jobs from Redis, with the model repository loaded once per process.

The worker is RQ's non-forking `SimpleWorker` (models stay loaded and CUDA stays initialised between
jobs; a fork per job would reload models or break CUDA) plus a heartbeat thread: while a job runs its
started-registry entry is renewed every `heartbeat_seconds` for `visibility_timeout_seconds`, so a
killed worker's job is retried or failed within about `visibility_timeout_seconds + heartbeat_seconds`.
The same thread polls for cancellation, so a job stops within one step even when its steps are slow.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from dataclasses import dataclass, field

import redis
import torch
from rq import SimpleWorker
from rq.executions import Execution
from rq.job import Job
from rq.queue import Queue
from rq.worker import WorkerStatus

from glassbox.config import Settings
from glassbox.core.cancellation import CancellationToken
from glassbox.core.images import configure_decoder_limit
from glassbox.demo.datasets import register_generators
from glassbox.devices import resolve_device, use_deterministic_algorithms, use_full_float32_precision
from glassbox.jobs.engine import AttemptToken, JobFinished, Outcome, preview_due, run_attempt
from glassbox.jobs.kinds import JobContext, Progress, load_kinds
from glassbox.jobs.records import JobRecord, JobState
from glassbox.jobs.recovery import Reaper
from glassbox.jobs.redis_engine import connect, job_queue
from glassbox.jobs.redis_store import RedisJobStore, error_fields, progress_fields
from glassbox.models.repository import ModelRepository

log = logging.getLogger(__name__)


@dataclass
class WorkerRuntime:
    """What jobs in this process share: the models, the device, the store and the running attempt."""

    repository: ModelRepository
    store: RedisJobStore
    settings: Settings
    on_finished: JobFinished | None = None
    running: tuple[str, int, CancellationToken] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def poll_cancellation(self) -> None:
        """Cancel the running attempt if CancelJob asked for it or the attempt was taken away."""
        with self.lock:
            running = self.running
        if running is None:
            return
        job_id, attempt, token = running
        record = self.store.load_light([job_id])[0]
        stale = record is None or record.state is not JobState.RUNNING or record.attempt != attempt
        if stale or record.cancel_requested:
            token.cancel()


_runtime: WorkerRuntime | None = None


def perform(namespace: str, job_id: str, result_ttl_seconds: float, max_run_seconds: float) -> None:
    """The RQ job function: run one attempt of a job and store how it ended. The TTL and the run
    limit are the submitting server's settings."""
    if _runtime is None:
        raise RuntimeError("glassbox jobs run only inside `glassbox worker`")
    runtime = _runtime
    store = (
        runtime.store
        if runtime.store.namespace == namespace
        else RedisJobStore(runtime.store.redis, namespace)
    )
    started = _start_attempt(store, job_id)
    if started is None:
        log.info("job %s is no longer queued; skipped", job_id)
        return
    record, intervals = started
    spec = store.load_spec(job_id) or b""
    token = AttemptToken(max_run_seconds)

    def publish(progress: Progress, png: bytes | None) -> None:
        written, _, cancel, watchers = store.write(
            job_id, progress_fields(progress), states=[JobState.RUNNING], attempt=record.attempt, preview=png
        )
        intervals[:] = watchers
        if cancel or not written:
            token.cancel()

    context = JobContext(
        job_id=job_id,
        repository=runtime.repository,
        settings=runtime.settings,
        device=runtime.repository.device,
        token=token,
        seed=record.seed,
        attempt=record.attempt,
        publish=publish,
        preview_due=preview_due(lambda: intervals),
    )
    with runtime.lock:
        runtime.running = (job_id, record.attempt, token)
    try:
        outcome = run_attempt(record, spec, context)
    finally:
        with runtime.lock:
            runtime.running = None
    if not _finish(store, record, outcome, result_ttl_seconds):
        log.warning(
            "job %s attempt %d was taken away meanwhile; its outcome is dropped", job_id, record.attempt
        )
        return
    log.info("job %s (%s) attempt %d: %s", job_id, record.kind, record.attempt, outcome.state.value)
    if runtime.on_finished is not None:
        runtime.on_finished(
            record.kind, outcome.state.value, time.time() - (record.started_at or time.time())
        )


def _start_attempt(store: RedisJobStore, job_id: str) -> tuple[JobRecord, list[int]] | None:
    """QUEUED → RUNNING with the next attempt number; None when the job is not queued (cancelled)."""
    while True:
        record = store.load(job_id)
        if record is None or record.state is not JobState.QUEUED:
            return None
        started = record.with_(state=JobState.RUNNING, attempt=record.attempt + 1, started_at=time.time())
        fields = {
            "state": started.state.value,
            "attempt": str(started.attempt),
            "started_at": repr(started.started_at),
        }
        written, _, _, intervals = store.write(
            job_id, fields, states=[JobState.QUEUED], attempt=record.attempt
        )
        if written:
            return started, intervals


def _finish(store: RedisJobStore, record: JobRecord, outcome: Outcome, ttl_seconds: float) -> bool:
    """Store the final state, unless this attempt was taken away meanwhile (then a later one owns it);
    True when stored."""
    fields: dict[str, str | bytes] = {"state": outcome.state.value, "finished_at": repr(time.time())}
    fields.update(error_fields(outcome.error))
    if outcome.result is not None:
        fields["result"] = outcome.result
    written, *_ = store.write(
        record.id, fields, states=[JobState.RUNNING], attempt=record.attempt, ttl_seconds=ttl_seconds
    )
    return written


class GlassboxWorker(SimpleWorker):
    """RQ's SimpleWorker whose running jobs beat every `heartbeat_seconds` (see the module docstring)."""

    def __init__(
        self, *args: object, heartbeat_seconds: float, visibility_timeout_seconds: float, **kwargs: object
    ):
        super().__init__(*args, **kwargs)
        self.heartbeat_seconds = heartbeat_seconds
        self.visibility_ttl = max(1, math.ceil(visibility_timeout_seconds))

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        return self.visibility_ttl

    def execute_job(self, job: Job, queue: Queue) -> None:
        execution = self.prepare_execution(job)
        stop = threading.Event()
        beat = threading.Thread(
            target=self._beat, args=(job, execution, stop), name="glassbox-heartbeat", daemon=True
        )
        beat.start()
        try:
            self.perform_job(job, queue, execution)
        finally:
            stop.set()
            beat.join()
        self.set_state(WorkerStatus.IDLE)

    def _beat(self, job: Job, execution: Execution, stop: threading.Event) -> None:
        while not stop.wait(self.heartbeat_seconds):
            try:
                self.maintain_heartbeats(job, execution)
                if _runtime is not None:
                    _runtime.poll_cancellation()
            except redis.RedisError as exc:
                log.warning("heartbeat for job %s failed: %s", job.id, exc)


def run_worker(settings: Settings, *, burst: bool = False, on_finished: JobFinished | None = None) -> bool:
    """Load the models, then serve the namespace's queue until SIGTERM/SIGINT (or, with `burst`, until
    the queue is empty). Returns True unless the worker stopped on an error."""
    global _runtime
    jobs = settings.jobs
    if not jobs.redis_url:
        raise ValueError("glassbox worker needs jobs.redis_url (GLASSBOX_JOBS__REDIS_URL or --redis-url)")
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    if jobs.deterministic:
        use_deterministic_algorithms()
    use_full_float32_precision()
    configure_decoder_limit(settings.limits.max_image_pixels)
    log.info("job kinds: %s", ", ".join(load_kinds()))
    register_generators()
    repository = ModelRepository(settings.model_repository, device=resolve_device(settings.device))
    repository.load_all()
    connection = connect(jobs.redis_url)
    queue = job_queue(connection, jobs.namespace)
    _runtime = WorkerRuntime(repository, RedisJobStore(connection, jobs.namespace), settings, on_finished)
    worker = GlassboxWorker(
        [queue],
        connection=connection,
        name=f"glassbox-{socket.gethostname()}-{os.getpid()}",
        serializer=queue.serializer,
        heartbeat_seconds=jobs.heartbeat_seconds,
        visibility_timeout_seconds=jobs.visibility_timeout_seconds,
    )
    reaper = Reaper(queue, jobs.heartbeat_seconds).start()
    log.info(
        "glassbox worker %s on %s (queue %s, device %s)",
        worker.name,
        jobs.namespace,
        queue.name,
        repository.device,
    )
    try:
        return worker.work(burst=burst, with_scheduler=False, logging_level=settings.log_level)
    finally:
        reaper.stop()
        _runtime = None
