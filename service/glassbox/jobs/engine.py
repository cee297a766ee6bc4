"""The job engine port and what both engines share: admission (validation before anything is queued)
and the execution of one attempt.

Two adapters implement the port: `memory.InProcessEngine` (worker threads inside `glassbox serve`,
state in memory) and `redis_engine.RedisJobEngine` (RQ queue on Redis, `glassbox worker` processes).
"""

from __future__ import annotations

import logging
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError, Message

from glassbox.config import JobSettings, Settings
from glassbox.core.cancellation import CancellationToken
from glassbox.core.errors import Cancelled, GlassboxError, InvalidArgument
from glassbox.jobs.kinds import JobContext, JobKind, get_kind, kind_names
from glassbox.jobs.records import JobError, JobFilter, JobRecord, JobState, JobUpdate
from glassbox.models.repository import ModelRepository

log = logging.getLogger(__name__)

JobFinished = Callable[[str, str, float], None]
"""Metrics hook: (kind, final state name, seconds from start to the final state)."""

QueueDepth = Callable[[str, int], None]
"""Metrics hook: (kind, jobs of that kind waiting to run)."""


@dataclass(frozen=True)
class Outcome:
    """How one attempt ended."""

    state: JobState
    result: bytes | None = None
    error: JobError | None = None


class AttemptToken(CancellationToken):
    """One attempt's token: cancelled by CancelJob (`cancel()`), or once the attempt has run for
    `max_run_seconds` — checked at every reported step, like a cancellation."""

    def __init__(self, max_run_seconds: float) -> None:
        self.max_run_seconds = max_run_seconds
        self._deadline = time.monotonic() + max_run_seconds
        super().__init__(is_alive=self._in_time)

    def _in_time(self) -> bool:
        return time.monotonic() < self._deadline

    @property
    def overran(self) -> bool:
        return not self._in_time()


class JobEngine(ABC):
    """Submit, observe and cancel jobs. Every method raises core errors naming the request field."""

    def __init__(
        self, settings: JobSettings, repository: ModelRepository, *, server_settings: Settings | None = None
    ) -> None:
        """`server_settings`: the whole settings jobs are validated and run with (default: embedded
        defaults with these job settings)."""
        self.settings = settings
        self.repository = repository
        self.server_settings = server_settings if server_settings is not None else Settings(jobs=settings)

    def submit(self, kind_name: str, spec: Message) -> JobRecord:
        """Validate `spec` for its kind, then queue it; nothing is queued when validation fails."""
        kind = find_kind(kind_name)
        try:
            kind.validate(spec, self.repository, self.server_settings)
        except GlassboxError as exc:
            exc.field = f"{kind_name}.{exc.field}" if exc.field else kind_name
            raise
        record = JobRecord(
            id=uuid.uuid4().hex,
            kind=kind_name,
            model=spec.model,
            seed=int(spec.seed),
            state=JobState.QUEUED,
            created_at=time.time(),
            max_attempts=self.max_attempts,
        )
        return self._enqueue(record, spec.SerializeToString())

    @property
    def max_attempts(self) -> int:
        """Runs a job may get: more than one only where a worker can be lost and the job retried."""
        return self.settings.max_attempts

    def check_preview_interval(self, every_steps: int) -> None:
        """0 = no previews; otherwise within the configured bounds."""
        low, high = self.settings.min_preview_every_steps, self.settings.max_preview_every_steps
        if every_steps != 0 and not low <= every_steps <= high:
            raise InvalidArgument(
                f"must be 0 (no previews) or in {low}..{high} steps, got {every_steps}",
                field="preview_every_steps",
            )

    @abstractmethod
    def _enqueue(self, record: JobRecord, spec: bytes) -> JobRecord:
        """Store and queue a validated job; ResourceExhausted when the queue is full."""

    @abstractmethod
    def get(self, job_id: str) -> JobRecord:
        """The job as it is now; NotFound (field `job_id`) when unknown or past its result TTL."""

    @abstractmethod
    def cancel(self, job_id: str) -> JobRecord:
        """Cancel a queued job at once, or ask a running one to stop at its next step; a finished job
        is returned unchanged."""

    @abstractmethod
    def list(self, criteria: JobFilter, page_size: int, page_token: str) -> tuple[list[JobRecord], str]:
        """Jobs newest first, filtered, one page at a time; returns the next page's token ("" at the end)."""

    @abstractmethod
    def watch(self, job_id: str, preview_every_steps: int, token: CancellationToken) -> Iterator[JobUpdate]:
        """The job now, then every change until it finishes (or `token` is cancelled); a preview PNG on
        the updates of steps that are multiples of `preview_every_steps` (0 = none)."""

    @abstractmethod
    def close(self) -> None:
        """Stop background work; the in-process engine cancels what is running."""


def find_kind(name: str) -> JobKind[Any]:
    try:
        return get_kind(name)
    except KeyError:
        raise InvalidArgument(
            f"unknown job kind {name!r}; known kinds: {kind_names()}", field="spec"
        ) from None


def run_attempt(record: JobRecord, spec: bytes, context: JobContext) -> Outcome:
    """Parse, validate and run one attempt of a job; every failure becomes an Outcome, never an exception.

    Failures inside the job are final (a job is deterministic given its seed, so a retry would fail the
    same way); only a lost worker is retried, by the engine.
    """
    try:
        kind = find_kind(record.kind)
        try:
            message = kind.spec_type.FromString(spec)
        except DecodeError as exc:
            raise InvalidArgument(f"stored spec does not parse: {exc}", field=record.kind) from exc
        result = kind.run(kind.validate(message, context.repository, context.settings), context)
        if not isinstance(result, kind.result_type):
            raise TypeError(
                f"job kind {kind.name!r} returned {type(result).__name__}, not {kind.result_type.__name__}"
            )
        return Outcome(JobState.SUCCEEDED, result=result.SerializeToString())
    except Cancelled:
        token = context.token
        if isinstance(token, AttemptToken) and token.overran:
            message = f"the job ran longer than jobs.max_run_seconds ({token.max_run_seconds:g} s)"
            return Outcome(JobState.FAILED, error=JobError("ResourceExhausted", message))
        return Outcome(JobState.CANCELLED, error=JobError("Cancelled", "cancelled by CancelJob"))
    except Exception as exc:
        if not isinstance(exc, GlassboxError):
            log.exception("job %s (%s, attempt %d) failed", record.id, record.kind, record.attempt)
        return Outcome(JobState.FAILED, error=JobError.from_exception(exc))


def preview_due(intervals: Callable[[], list[int]]) -> Callable[[int], bool]:
    """A `JobContext.preview_due` that is true when `step` is a multiple of any watcher's interval."""

    def due(step: int) -> bool:
        return step > 0 and any(step % every == 0 for every in intervals() if every > 0)

    return due


def preview_wanted(step: int, preview_every_steps: int) -> bool:
    """Whether a watcher with this interval wants the preview of `step`."""
    return preview_every_steps > 0 and step % preview_every_steps == 0


def for_watcher(update: JobUpdate, preview_every_steps: int) -> JobUpdate:
    """The update as one watcher sees it: the preview only at steps that are multiples of its interval."""
    if update.preview_png is None or preview_wanted(update.job.progress.step, preview_every_steps):
        return update
    return JobUpdate(update.job)
