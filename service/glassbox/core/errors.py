"""Domain errors raised by the core. One place (server/errors.py) maps them to gRPC status codes.

Every error carries the request field it is about, so the client learns *what* was wrong. Values from
the request are echoed through `echo` and every message is bounded (`MAX_MESSAGE_CHARS`): the message
travels in a response header, and a 20,000-character name echoed whole would make the client see a
header-size failure instead of the error.
"""

from __future__ import annotations

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

    def __init__(self, message: str, *, field: str | None = None) -> None:
        message = bounded(message)
        field = None if field is None else bounded(field, ECHO_CHARS * 2)
        super().__init__(message)
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class InvalidArgument(GlassboxError):
    """The request itself is wrong: a bad value, shape, range or name."""


class NotFound(GlassboxError):
    """A named thing (model, version, job) does not exist."""


class FailedPrecondition(GlassboxError):
    """The request is well formed but the target cannot do it (e.g. a gradient method on ONNX)."""


class ResourceExhausted(GlassboxError):
    """A limit was hit: queue full, not enough time before the deadline, the memory budget full.

    `retry_after_seconds`, when set, is how long the server expects the caller should wait before trying
    again (sent to gRPC clients as a `google.rpc.RetryInfo` detail)."""

    def __init__(
        self, message: str, *, field: str | None = None, retry_after_seconds: float | None = None
    ) -> None:
        super().__init__(message, field=field)
        self.retry_after_seconds = retry_after_seconds


class Unavailable(GlassboxError):
    """The target exists but cannot serve now (model failed to load, server shutting down)."""


class Cancelled(GlassboxError):
    """The caller went away or cancelled; the computation stopped early."""
