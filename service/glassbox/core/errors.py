"""Domain errors raised by the core. One place (server/errors.py) maps them to gRPC status codes.

Every error carries the request field it is about, so the client learns *what* was wrong, and a stable
`reason` (core/reasons.py; by default the one of its class) with string `metadata` (e.g. the model
name), so a program can tell *which* failure it was without reading the message. Values from the
request are echoed through `echo`, and every message and metadata value is bounded
(`MAX_MESSAGE_CHARS`, `ECHO_CHARS`): they travel in response headers, and a 20,000-character name
echoed whole would make the client see a header-size failure instead of the error.
"""

from __future__ import annotations

from collections.abc import Mapping

from glassbox.core.reasons import Reason

ECHO_CHARS = 80
"""Longest part of a request value quoted back in an error message."""
MAX_MESSAGE_CHARS = 1024
"""Longest error message (field included); the rest is cut with a note of how much was left out."""


def echo(value: object, limit: int = ECHO_CHARS) -> str:
    """`repr(value)` for an error message, a long string cut to `limit` characters with its length noted.

    Example:
        >>> echo("x" * 20_000, limit=4)
        "'xxxx'… (20000 characters)"
    """
    if isinstance(value, str | bytes) and len(value) > limit:
        return f"{value[:limit]!r}… ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def bounded(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`text` cut to `limit` characters, saying how many were left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


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
        message = bounded(message)
        field = None if field is None else bounded(field, ECHO_CHARS * 2)
        super().__init__(message)
        self.field = field
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata = {key: bounded(str(value), ECHO_CHARS * 2) for key, value in (metadata or {}).items()}

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
