"""Domain errors raised by the core. One place (server/errors.py) maps them to gRPC status codes.

Every error carries the request field it is about, so the client learns *what* was wrong, and a stable
`reason` (core/reasons.py; by default the one of its class) with string `metadata` (e.g. the model
name), so a program can tell *which* failure it was without reading the message.
"""

from __future__ import annotations

from collections.abc import Mapping

from glassbox.core.reasons import Reason


class GlassboxError(Exception):
    """Base class for every error the core raises on purpose."""

    default_reason = Reason.INTERNAL

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        reason: Reason | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata = dict(metadata or {})

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class InvalidArgument(GlassboxError):
    """The request itself is wrong: a bad value, shape, range or name."""

    default_reason = Reason.INVALID_ARGUMENT


class NotFound(GlassboxError):
    """A named thing (model, version, job) does not exist."""

    default_reason = Reason.NOT_FOUND


class FailedPrecondition(GlassboxError):
    """The request is well formed but the target cannot do it (e.g. a gradient method on ONNX)."""

    default_reason = Reason.FAILED_PRECONDITION


class ResourceExhausted(GlassboxError):
    """A limit was hit: queue full, not enough time before the deadline, the memory budget full.

    `retry_after_seconds`, when set, is how long the server expects the caller should wait before trying
    again (sent to gRPC clients as a `google.rpc.RetryInfo` detail)."""

    default_reason = Reason.RESOURCE_EXHAUSTED

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        reason: Reason | None = None,
        metadata: Mapping[str, str] | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(message, field=field, reason=reason, metadata=metadata)
        self.retry_after_seconds = retry_after_seconds


class Unavailable(GlassboxError):
    """The target exists but cannot serve now (model failed to load, server shutting down)."""

    default_reason = Reason.UNAVAILABLE


class Cancelled(GlassboxError):
    """The caller went away or cancelled; the computation stopped early."""

    default_reason = Reason.CANCELLED
