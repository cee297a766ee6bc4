"""Recovery from lost workers (Redis engine).

A worker proves it is alive by renewing its job's entry in RQ's started-job registry every heartbeat
(see `worker.GlassboxWorker`). A `Reaper` in every server and worker hands the entries that expired to
RQ, which retries the job while it has attempts left and fails it otherwise; `on_worker_lost`, the
job's RQ failure callback, mirrors that into the job's record. A job is so never stuck RUNNING for
longer than about `visibility_timeout_seconds + heartbeat_seconds + 1 s` after its worker died.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from redis import Redis
from rq import Queue
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.timeouts import TimerDeathPenalty

from glassbox.core.reasons import Reason
from glassbox.jobs.records import JobError, JobState
from glassbox.jobs.redis_store import RedisJobStore, error_fields

log = logging.getLogger(__name__)

LOCK_SECONDS = 30


def on_worker_lost(job: Job, connection: Redis, exc_type: type, exc_value: BaseException, _tb: Any) -> None:
    """RQ failure callback: the job's worker died (or was stopped hard) mid-job.

    RQ calls it before it retries the job (retries left) or moves it to its failed registry; the
    record follows: back to QUEUED with the reason in its message, or FAILED (UNAVAILABLE) for good.
    A job whose cancellation was asked for ends CANCELLED instead of being retried.
    """
    namespace, job_id, result_ttl, _max_run_seconds = job.args
    store = RedisJobStore(connection, namespace)
    record = store.load(job_id)
    if record is None or record.state.finished:
        return
    cause = (
        "stopped sending heartbeats"
        if exc_type.__name__ == "AbandonedJobError"
        else f"stopped ({exc_type.__name__})"
    )
    lost = f"the worker running attempt {record.attempt} of {record.max_attempts} {cause}"
    now = time.time()
    if record.cancel_requested:
        final: dict[str, str | bytes] = {"state": JobState.CANCELLED.value, "finished_at": repr(now)}
        final.update(error_fields(JobError("Cancelled", "cancelled by CancelJob")))
        store.write(job_id, final, states=[record.state], attempt=record.attempt, ttl_seconds=result_ttl)
    elif job.retries_left and record.state is JobState.RUNNING:
        log.warning("job %s: %s; retrying", job_id, lost)
        store.write(
            job_id,
            {"state": JobState.QUEUED.value, "message": f"{lost}; queued again"},
            states=[JobState.RUNNING],
            attempt=record.attempt,
        )
    elif not job.retries_left:
        log.warning("job %s: %s; no attempts left", job_id, lost)
        final = {"state": JobState.FAILED.value, "finished_at": repr(now)}
        final.update(error_fields(JobError("Unavailable", f"{lost}; no attempts left", Reason.WORKER_LOST)))
        store.write(job_id, final, states=[record.state], attempt=record.attempt, ttl_seconds=result_ttl)


class Reaper:
    """Every `interval` seconds, let RQ retry or fail the jobs whose worker stopped beating.

    Runs in servers and workers alike; RQ's maintenance lock keeps two from handling one job twice
    (which could retry it twice, or fail it while its retry is queued).
    """

    def __init__(self, queue: Queue, interval: float, on_tick: Callable[[], None] | None = None) -> None:
        self._queue = queue
        self._interval = interval
        self._on_tick = on_tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="glassbox-job-reaper", daemon=True)

    def start(self) -> Reaper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def reap(self) -> None:
        """One pass, under RQ's maintenance lock (shared with RQ's own clean-ups) held for at most
        LOCK_SECONDS, so a process that dies holding it stalls recovery only that long."""
        lock = self._queue.registry_cleaning_key
        if not self._queue.connection.set(lock, 1, nx=True, px=LOCK_SECONDS * 1000):
            return
        try:
            StartedJobRegistry(queue=self._queue, death_penalty_class=TimerDeathPenalty).cleanup()
        finally:
            self._queue.release_maintenance_lock()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.reap()
                if self._on_tick is not None:
                    self._on_tick()
            except redis.RedisError as exc:
                log.warning("job reaper: Redis error: %s", exc)
            except Exception:
                log.exception("job reaper: unexpected error; it keeps running")
