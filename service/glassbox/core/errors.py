"""Domain errors raised by the core. One place (server/errors.py) maps them to gRPC status codes.

Every error carries the request field it is about, so the client learns *what* was wrong.
"""

from __future__ import annotations


class GlassboxError(Exception):
    """Base class for every error the core raises on purpose."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
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
