"""The job engine port and what both engines share: admission (validation before anything is queued)
and the execution of one attempt.

Two adapters implement the port: `memory.InProcessEngine` (worker threads inside `glassbox serve`,
state in memory) and `redis_engine.RedisJobEngine` (RQ queue on Redis, `glassbox worker` processes).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from glassbox.config import JobSettings, Settings
from glassbox.core.cancellation import CancellationToken
from glassbox.core.errors import Cancelled, GlassboxError, InvalidArgument, NotFound, echo
from glassbox.core.principal import Principal
from glassbox.core.reasons import Reason
from glassbox.jobs.ids import new_replica_tag
from glassbox.jobs.kinds import JobContext, JobKind, JobKinds
from glassbox.jobs.records import JobError, JobFilter, JobRecord, JobState, JobUpdate, RequestClaim
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
    """Submit, observe and cancel jobs. Every method raises core errors naming the request field.

    Ownership is enforced here, once for both engines: `get`, `cancel` and `watch` answer NotFound
    (reason JOB_NOT_FOUND) for a job the principal may not see, exactly as for an unknown id, so ids do
    not leak; `principal=None` is the server itself (sees everything)."""

    def __init__(
        self,
        settings: JobSettings,
        repository: ModelRepository,
        *,
        kinds: Iterable[JobKind[Any, Any]],
        server_settings: Settings | None = None,
    ) -> None:
        """`kinds`: the job kinds this engine accepts (the composition root's); `server_settings`: the
        whole settings jobs are validated and run with (default: embedded defaults with these job
        settings)."""
        self.settings = settings
        self.repository = repository
        self.kinds = JobKinds(kinds)
        self.replica_tag = new_replica_tag()
        self.server_settings = server_settings if server_settings is not None else Settings(jobs=settings)

    def submit(self, kind_name: str, spec: Any, *, owner: str = "", request_id: str = "") -> JobRecord:
        """Validate `spec` (in the form its kind encodes) for its kind, then queue it; nothing is queued
        when validation fails.

        With a `request_id`, the job `owner` queued earlier with the same id and spec is returned instead
        (InvalidArgument, reason REQUEST_ID_REUSED, when the spec differs)."""
        check_request_id(request_id)
        kind = self.kinds.find(kind_name)
        spec_bytes = kind.encode(spec)
        digest = hashlib.sha256(kind_name.encode() + b"\0" + spec_bytes).hexdigest()
        if request_id:
            claim = self._claim_of(owner, request_id)
            if claim is not None:
                return self.resolve_claim(claim, digest, request_id)
        try:
            kind.validate(spec, self.repository, self.server_settings)
        except GlassboxError as exc:
            exc.field = f"{kind_name}.{exc.field}" if exc.field else kind_name
            raise
        identity = kind.identity(spec)
        record = JobRecord(
            id=self.new_job_id(),
            kind=kind_name,
            model=identity.model,
            seed=identity.seed,
            state=JobState.QUEUED,
            created_at=time.time(),
            max_attempts=self.max_attempts,
            owner=owner,
            request_id=request_id,
        )
        return self._enqueue(record, spec_bytes, digest)

    def new_job_id(self) -> str:
        return uuid.uuid4().hex

    @property
    def request_ttl_seconds(self) -> float:
        """How long a request_id is remembered at most (and never longer than its job exists): the
        job's longest run plus its result TTL."""
        return self.settings.max_run_seconds + self.settings.result_ttl_seconds

    def resolve_claim(self, claim: RequestClaim, digest: str, request_id: str) -> JobRecord:
        """The job a request_id is bound to, when the spec is the same; REQUEST_ID_REUSED otherwise."""
        if claim.spec_digest != digest:
            raise InvalidArgument(
                f"request_id {request_id!r} was already used for another spec (job {claim.job_id}); "
                "use a new request_id for a new job",
                field="request_id",
                reason=Reason.REQUEST_ID_REUSED,
                metadata={"job_id": claim.job_id},
            )
        return self._load(claim.job_id)

    def get(self, job_id: str, principal: Principal | None = None) -> JobRecord:
        """The job as it is now; NotFound (field `job_id`) when unknown, past its result TTL, or not
        visible to `principal`."""
        record = self._load(job_id)
        if principal is not None and not principal.can_see(record.owner):
            raise job_not_found(job_id)
        return record

    def cancel(self, job_id: str, principal: Principal | None = None) -> JobRecord:
        """Cancel a queued job at once, or ask a running one to stop at its next step; a finished job
        is returned unchanged."""
        self.get(job_id, principal)
        return self._cancel(job_id)

    def watch(
        self,
        job_id: str,
        preview_every_steps: int,
        token: CancellationToken,
        principal: Principal | None = None,
    ) -> Iterator[JobUpdate]:
        """The job now, then every change until it finishes (or `token` is cancelled); a preview PNG on
        the updates of steps that are multiples of `preview_every_steps` (0 = none)."""
        self.get(job_id, principal)
        return self._watch(job_id, preview_every_steps, token)

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
    def _enqueue(self, record: JobRecord, spec: bytes, spec_digest: str) -> JobRecord:
        """Store and queue a validated job; ResourceExhausted when the queue is full. When the record has
        a request_id, bind it to the job atomically: if another request bound it first, return that
        request's job (`resolve_claim`) and queue nothing."""

    @abstractmethod
    def _claim_of(self, owner: str, request_id: str) -> RequestClaim | None:
        """The live job `owner` bound to `request_id`, if any (None once that job has expired)."""

    @abstractmethod
    def _load(self, job_id: str) -> JobRecord:
        """The job as it is now, whoever owns it; NotFound (`job_not_found`) when unknown or expired."""

    @abstractmethod
    def _cancel(self, job_id: str) -> JobRecord:
        """`cancel` once the caller may see the job."""

    @abstractmethod
    def list(self, criteria: JobFilter, page_size: int, page_token: str) -> tuple[list[JobRecord], str]:
        """Jobs newest first, filtered (`criteria.owner` restricts them to one principal's), one page at a
        time; returns the next page's token ("" at the end)."""

    @abstractmethod
    def _watch(self, job_id: str, preview_every_steps: int, token: CancellationToken) -> Iterator[JobUpdate]:
        """`watch` once the caller may see the job."""

    @abstractmethod
    def close(self) -> None:
        """Stop background work; the in-process engine cancels what is running."""


REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def check_request_id(request_id: str) -> None:
    if request_id and not REQUEST_ID.match(request_id):
        raise InvalidArgument(
            f"must be 1..128 characters of A-Z a-z 0-9 . _ : - (e.g. a UUID), got {request_id[:64]!r}",
            field="request_id",
        )


def job_not_found(job_id: str) -> NotFound:
    return NotFound(
        f"job {echo(job_id)} does not exist or its results have expired",
        field="job_id",
        reason=Reason.JOB_NOT_FOUND,
        metadata={"job_id": job_id},
    )


def run_attempt(kinds: JobKinds, record: JobRecord, spec: bytes, context: JobContext) -> Outcome:
    """Decode, validate and run one attempt of a job of one of `kinds`; every failure becomes an Outcome,
    never an exception.

    Failures inside the job are final (a job is deterministic given its seed, so a retry would fail the
    same way); only a lost worker is retried, by the engine.
    """
    try:
        kind = kinds.find(record.kind)
        job = kind.validate(kind.decode(spec), context.repository, context.settings)
        return Outcome(JobState.SUCCEEDED, result=kind.run(job, context))
    except Cancelled:
        token = context.token
        if isinstance(token, AttemptToken) and token.overran:
            message = f"the job ran longer than jobs.max_run_seconds ({token.max_run_seconds:g} s)"
            return Outcome(
                JobState.FAILED, error=JobError("ResourceExhausted", message, Reason.JOB_RAN_TOO_LONG)
            )
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
