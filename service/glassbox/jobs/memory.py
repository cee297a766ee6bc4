"""The embedded engine: jobs run inside `glassbox serve`, their state in memory.

`settings.worker_threads` threads take jobs off the queue; each hands its job's run to the server's
compute scheduler at background priority (`run_job`), so the job's model work interleaves with the
interactive calls, unit by unit, instead of competing with them for the cores.

No Redis and nothing to deploy; a server restart loses every job (use the Redis engine when that
matters), and a job id resolves only in the process that took it: the ids carry this engine's replica
tag (jobs/ids.py), so an id from another process is NotFound with reason JOB_NOT_ON_THIS_REPLICA, not
JOB_NOT_FOUND (docs/scaling.md).

A running job keeps its last `EVENT_HISTORY` updates, so watchers that fall behind still see them
(previews only on the last `PREVIEW_HISTORY`: they are large); a finished one keeps only its final
update once no watcher is left.
"""

from __future__ import annotations

import builtins
import functools
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from glassbox.config import JobSettings, Settings
from glassbox.core.cancellation import CancellationToken
from glassbox.core.errors import Cancelled, NotFound, ResourceExhausted, echo
from glassbox.core.reasons import Reason
from glassbox.jobs.engine import (
    AttemptToken,
    JobEngine,
    JobFinished,
    Outcome,
    QueueDepth,
    for_watcher,
    job_not_found,
    preview_due,
    run_attempt,
)
from glassbox.jobs.ids import id_tag, tagged_job_id
from glassbox.jobs.kinds import JobContext, JobKind, Progress
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
from glassbox.models.repository import ModelRepository

log = logging.getLogger(__name__)

EVENT_HISTORY = 256
PREVIEW_HISTORY = 16
WATCH_POLL_SECONDS = 0.5


@dataclass
class _Entry:
    record: JobRecord
    spec: bytes
    token: CancellationToken = field(default_factory=CancellationToken)
    events: deque[tuple[int, JobUpdate]] = field(default_factory=lambda: deque(maxlen=EVENT_HISTORY))
    sequence: int = 0
    with_previews: deque[int] = field(default_factory=deque)
    watchers: Counter[int] = field(default_factory=Counter)
    expires_at: float = float("inf")


JobRunner = Callable[[str, Callable[[], Outcome], CancellationToken], Outcome]
"""(job kind, the attempt, its token) → the attempt's outcome, run wherever the runner puts it."""


def run_in_place(_kind: str, attempt: Callable[[], Outcome], _token: CancellationToken) -> Outcome:
    return attempt()


class InProcessEngine(JobEngine):
    """A FIFO queue served by `settings.worker_threads` threads."""

    def __init__(
        self,
        settings: JobSettings,
        repository: ModelRepository,
        *,
        kinds: Iterable[JobKind[Any, Any]],
        on_finished: JobFinished | None = None,
        on_queue_depth: QueueDepth | None = None,
        run_job: JobRunner = run_in_place,
        server_settings: Settings | None = None,
    ) -> None:
        super().__init__(settings, repository, kinds=kinds, server_settings=server_settings)
        self._run_job = run_job
        self._on_finished = on_finished
        self._on_queue_depth = on_queue_depth
        self._changed = threading.Condition()
        self._jobs: dict[str, _Entry] = {}
        self._requests: dict[tuple[str, str], RequestClaim] = {}
        self._queue: deque[str] = deque()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"glassbox-job-{i}", daemon=True)
            for i in range(settings.worker_threads)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def max_attempts(self) -> int:
        return 1  # a job thread cannot be lost without the whole server, and its state with it

    def new_job_id(self) -> str:
        return tagged_job_id(self.replica_tag)

    def _claim_of(self, owner: str, request_id: str) -> RequestClaim | None:
        with self._changed:
            self._purge_expired()
            return self._requests.get((owner, request_id))

    def _enqueue(self, record: JobRecord, spec: bytes, spec_digest: str) -> JobRecord:
        with self._changed:
            self._purge_expired()
            request = (record.owner, record.request_id)
            if record.request_id and request in self._requests:
                return self.resolve_claim(self._requests[request], spec_digest, record.request_id)
            if len(self._queue) >= self.settings.queue_capacity:
                raise ResourceExhausted(
                    f"the job queue is full ({self.settings.queue_capacity} jobs waiting); retry later",
                    reason=Reason.JOB_QUEUE_FULL,
                )
            self._jobs[record.id] = _Entry(record, spec)
            if record.request_id:
                self._requests[request] = RequestClaim(record.id, spec_digest)
            self._queue.append(record.id)
            self._report_depth(record.kind)
            self._changed.notify_all()
        return record

    def _load(self, job_id: str) -> JobRecord:
        with self._changed:
            return self._entry(job_id).record

    def _cancel(self, job_id: str) -> JobRecord:
        with self._changed:
            entry = self._entry(job_id)
            record = entry.record
            if record.state is JobState.QUEUED:
                self._queue.remove(job_id)
                self._report_depth(record.kind)
                self._finish(
                    entry, Outcome(JobState.CANCELLED, error=JobError("Cancelled", "cancelled by CancelJob"))
                )
            elif record.state is JobState.RUNNING and not record.cancel_requested:
                entry.token.cancel()
                self._update(entry, record.with_(cancel_requested=True))
            return entry.record

    def list(self, criteria: JobFilter, page_size: int, page_token: str) -> tuple[list[JobRecord], str]:
        cursor = PageCursor.decode(page_token)
        with self._changed:
            self._purge_expired()
            records = [entry.record for entry in self._jobs.values()]
        records.sort(key=lambda job: (job.created_at, job.id), reverse=True)
        return paginate(records, criteria, page_size, cursor)

    def _watch(self, job_id: str, preview_every_steps: int, token: CancellationToken) -> Iterator[JobUpdate]:
        with self._changed:
            entry = self._entry(job_id)
            entry.watchers[preview_every_steps] += 1
            seen = entry.sequence
            first = JobUpdate(entry.record)
        try:
            yield first
            if first.job.state.finished:
                return
            while not token.cancelled:
                pending, seen = self._news(entry, seen)
                for update in pending:
                    yield for_watcher(update, preview_every_steps)
                    if update.job.state.finished:
                        return
                if self._closed:
                    return
        finally:
            with self._changed:
                entry.watchers[preview_every_steps] -= 1
                _forget_history(entry)

    def _news(self, entry: _Entry, seen: int) -> tuple[builtins.list[JobUpdate], int]:
        """The updates after sequence number `seen`, waiting a little for the first one."""
        with self._changed:
            self._changed.wait_for(lambda: entry.sequence != seen or self._closed, timeout=WATCH_POLL_SECONDS)
            return [update for number, update in entry.events if number > seen], entry.sequence

    def close(self) -> None:
        with self._changed:
            self._closed = True
            for entry in self._jobs.values():
                entry.token.cancel()
            self._changed.notify_all()
        for thread in self._threads:
            thread.join(timeout=10)

    def _work(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._queue or self._closed)
                if self._closed:
                    return
                entry = self._jobs[self._queue.popleft()]
                self._report_depth(entry.record.kind)
                record = entry.record.with_(state=JobState.RUNNING, attempt=1, started_at=time.time())
                entry.token = AttemptToken(self.settings.max_run_seconds)
                self._update(entry, record)
            context = JobContext(
                job_id=record.id,
                repository=self.repository,
                settings=self.server_settings,
                device=self.repository.device,
                token=entry.token,
                seed=record.seed,
                attempt=record.attempt,
                publish=functools.partial(self._publish, entry),
                preview_due=preview_due(functools.partial(self._preview_intervals, entry)),
            )
            outcome = self._attempt(record, entry, context)
            with self._changed:
                self._finish(entry, outcome)

    def _attempt(self, record: JobRecord, entry: _Entry, context: JobContext) -> Outcome:
        """Run one attempt through the runner; a run the runner refused or dropped becomes an Outcome."""
        try:
            return self._run_job(
                record.kind, lambda: run_attempt(self.kinds, record, entry.spec, context), entry.token
            )
        except Cancelled as exc:
            return Outcome(JobState.CANCELLED, error=JobError("Cancelled", str(exc)))
        except Exception as exc:
            log.exception("job %s could not be run", record.id)
            return Outcome(JobState.FAILED, error=JobError.from_exception(exc))

    def _preview_intervals(self, entry: _Entry) -> builtins.list[int]:
        with self._changed:
            return [every for every, watchers in entry.watchers.items() if watchers > 0]

    def _publish(self, entry: _Entry, progress: Progress, png: bytes | None) -> None:
        with self._changed:
            self._update(entry, entry.record.with_(progress=progress), png)

    def _finish(self, entry: _Entry, outcome: Outcome) -> None:
        """Record the final state (lock held)."""
        now = time.time()
        record = entry.record
        error = outcome.error
        if outcome.state is JobState.CANCELLED and self._closed and not record.cancel_requested:
            error = JobError("Cancelled", "the server shut down before the job finished")
        self._update(
            entry, record.with_(state=outcome.state, finished_at=now, result=outcome.result, error=error)
        )
        _forget_history(entry)
        entry.expires_at = now + self.settings.result_ttl_seconds
        if self._on_finished is not None:
            self._on_finished(record.kind, outcome.state.value, now - (record.started_at or now))

    def _update(self, entry: _Entry, record: JobRecord, png: bytes | None = None) -> None:
        """Replace the record and tell the watchers (lock held)."""
        entry.record = record
        entry.sequence += 1
        entry.events.append((entry.sequence, JobUpdate(record, png)))
        if png is not None:
            entry.with_previews.append(entry.sequence)
            if len(entry.with_previews) > PREVIEW_HISTORY:
                _drop_preview(entry, entry.with_previews.popleft())
        self._changed.notify_all()

    def _report_depth(self, kind: str) -> None:
        """Tell the metrics how many jobs of `kind` wait (lock held)."""
        if self._on_queue_depth is not None:
            self._on_queue_depth(
                kind, sum(1 for job_id in self._queue if self._jobs[job_id].record.kind == kind)
            )

    def _entry(self, job_id: str) -> _Entry:
        """The live entry (lock held); NotFound once its result TTL has passed."""
        entry = self._jobs.get(job_id)
        if entry is None or entry.expires_at <= time.time():
            tag = id_tag(job_id)
            if tag is not None and tag != self.replica_tag:
                raise NotFound(
                    f"job {echo(job_id)} was submitted to another server process (replica {tag}; this is "
                    f"{self.replica_tag}): the in-process job engine keeps a job only in the process that "
                    "took it. Send its calls to that replica, or use the Redis job engine (docs/scaling.md)",
                    field="job_id",
                    reason=Reason.JOB_NOT_ON_THIS_REPLICA,
                    metadata={"job_id": job_id, "job_replica": tag, "replica": self.replica_tag},
                )
            raise job_not_found(job_id)
        return entry

    def _purge_expired(self) -> None:
        now = time.time()
        for job_id in [job_id for job_id, entry in self._jobs.items() if entry.expires_at <= now]:
            del self._jobs[job_id]
        for request in [r for r, claim in self._requests.items() if claim.job_id not in self._jobs]:
            del self._requests[request]


def _forget_history(entry: _Entry) -> None:
    """Keep only the final update of a finished job once no watcher can still need the others."""
    if entry.record.state.finished and entry.watchers.total() == 0 and len(entry.events) > 1:
        final = entry.events[-1]
        entry.events.clear()
        entry.events.append(final)


def _drop_preview(entry: _Entry, sequence: int) -> None:
    """Keep the update numbered `sequence` but free its preview."""
    for index, (number, update) in enumerate(entry.events):
        if number == sequence:
            entry.events[index] = (number, JobUpdate(update.job))
            return
