"""What the engines store about a job, independent of where they store it.

Spec and result are kept as serialized proto bytes: the engines never look inside them (the kind's
`spec_type` / `result_type` do), and the Redis engine can store them as they are.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from glassbox.core import errors
from glassbox.core.errors import InvalidArgument
from glassbox.core.reasons import Reason
from glassbox.jobs.kinds import Progress


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


ERROR_TYPES: dict[str, type[errors.GlassboxError]] = {
    cls.__name__: cls
    for cls in (
        errors.InvalidArgument,
        errors.NotFound,
        errors.FailedPrecondition,
        errors.ResourceExhausted,
        errors.Unavailable,
        errors.Cancelled,
    )
}


@dataclass(frozen=True)
class JobError:
    """Why a job failed: the domain error class name (a key of ERROR_TYPES, or "Internal"), a message for
    the user, and what a program needs: the stable reason (a `Reason` value; empty in records written
    before reasons existed, then the class's default), the request field at fault, and the error's
    metadata. Tracebacks stay in the worker's log."""

    type: str
    message: str
    reason: str = ""
    field: str = ""
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_exception(cls, exc: BaseException) -> JobError:
        if isinstance(exc, errors.GlassboxError) and type(exc).__name__ in ERROR_TYPES:
            return cls(type(exc).__name__, str(exc), exc.reason.value, exc.field or "", dict(exc.metadata))
        return cls("Internal", f"the job failed with {type(exc).__name__}: {exc}", Reason.INTERNAL.value)

    def as_exception(self) -> errors.GlassboxError:
        """The domain error this stands for (a plain GlassboxError for "Internal"); its message is the
        stored one, which already names the field."""
        cls = ERROR_TYPES.get(self.type, errors.GlassboxError)
        reason = Reason(self.reason) if self.reason in Reason.__members__ else None
        return cls(self.message, reason=reason, metadata=self.metadata)


@dataclass(frozen=True)
class JobRecord:
    """One job as the API shows it. Times are Unix seconds; `result` is the result message's bytes."""

    id: str
    kind: str
    model: str
    seed: int
    state: JobState
    created_at: float
    max_attempts: int
    attempt: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    progress: Progress = field(default_factory=Progress)
    error: JobError | None = None
    result: bytes | None = None
    cancel_requested: bool = False
    owner: str = ""
    """The principal that submitted the job (server/auth.py); "" where no caller was authenticated."""
    request_id: str = ""
    """The submitter's idempotency key, "" when it sent none."""

    def with_(self, **changes: Any) -> JobRecord:
        return replace(self, **changes)


@dataclass(frozen=True)
class RequestClaim:
    """What a (caller, request_id) pair is bound to: the job it queued and a digest of its kind and spec."""

    job_id: str
    spec_digest: str


@dataclass(frozen=True)
class JobUpdate:
    """One event a watcher sees: the job as it is now, and a PNG preview when one was due."""

    job: JobRecord
    preview_png: bytes | None = None


@dataclass(frozen=True)
class JobFilter:
    """ListJobs criteria; an empty field matches everything, `owner` None every principal's jobs."""

    states: frozenset[JobState] = frozenset()
    kind: str = ""
    model: str = ""
    owner: str | None = None

    def matches(self, job: JobRecord) -> bool:
        return (
            (self.owner is None or job.owner == self.owner)
            and (not self.states or job.state in self.states)
            and (not self.kind or job.kind == self.kind)
            and (not self.model or job.model == self.model)
        )


@dataclass(frozen=True)
class PageCursor:
    """Where a page ends: jobs are listed newest first, ordered by (created_at, id) descending."""

    created_at: float
    job_id: str

    def encode(self) -> str:
        return base64.urlsafe_b64encode(f"{self.created_at!r}/{self.job_id}".encode()).decode()

    @classmethod
    def decode(cls, token: str) -> PageCursor | None:
        """None for an empty token; InvalidArgument naming `page_token` for a malformed one."""
        if not token:
            return None
        try:
            created, job_id = base64.urlsafe_b64decode(token.encode()).decode().split("/", 1)
            return cls(float(created), job_id)
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidArgument(
                "page_token is not a token returned by ListJobs", field="page_token"
            ) from exc

    def before(self, job: JobRecord) -> bool:
        """True when `job` comes after this cursor in listing order."""
        return (job.created_at, job.id) < (self.created_at, self.job_id)


def paginate(
    jobs: list[JobRecord], criteria: JobFilter, page_size: int, cursor: PageCursor | None
) -> tuple[list[JobRecord], str]:
    """One page of `jobs` (already newest first) and the token for the next page ("" at the end)."""
    selected = [job for job in jobs if criteria.matches(job) and (cursor is None or cursor.before(job))]
    page = selected[:page_size]
    more = len(selected) > page_size
    return page, PageCursor(page[-1].created_at, page[-1].id).encode() if more else ""
