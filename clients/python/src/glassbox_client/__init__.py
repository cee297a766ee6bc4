"""glassbox-client: typed Python client for the Glassbox explanation service (no torch needed).

    from glassbox_client import GlassboxClient
    with GlassboxClient("127.0.0.1:50051") as glassbox:
        glassbox.explain("docs/images/star.png", model="shapes").overlay.save("overlay.png")

`AsyncGlassboxClient` has the same calls for asyncio. Failed calls raise the subclasses of
`GlassboxError` in `glassbox_client.errors`.

The names below load on first use, so importing the generated stubs alone (as the server does,
`glassbox_client._generated...`) pulls in neither the client nor PIL.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_HOMES = {
    "AsyncGlassboxClient": "aio",
    "GlassboxClient": "client",
    "NO_RETRIES": "connection",
    "RetryPolicy": "connection",
    "DeadlineExceededError": "errors",
    "ErrorStatus": "errors",
    "FailedPreconditionError": "errors",
    "FieldViolation": "errors",
    "GlassboxError": "errors",
    "InternalError": "errors",
    "InvalidArgumentError": "errors",
    "NotFoundError": "errors",
    "ResourceExhaustedError": "errors",
    "UnauthenticatedError": "errors",
    "UnavailableError": "errors",
    "Job": "jobs",
    "JobFailedError": "jobs",
    "JobResult": "jobs",
    "Attribution": "types",
    "AttributionResult": "types",
    "ClassScore": "types",
    "ModelInfo": "types",
    "ModelSummary": "types",
    "Prediction": "types",
    "ServerInfo": "server_info",
    "plot": "display",
}

if TYPE_CHECKING:
    from glassbox_client.aio import AsyncGlassboxClient
    from glassbox_client.client import GlassboxClient
    from glassbox_client.connection import NO_RETRIES, RetryPolicy
    from glassbox_client.display import plot
    from glassbox_client.errors import (
        DeadlineExceededError,
        ErrorStatus,
        FailedPreconditionError,
        FieldViolation,
        GlassboxError,
        InternalError,
        InvalidArgumentError,
        NotFoundError,
        ResourceExhaustedError,
        UnauthenticatedError,
        UnavailableError,
    )
    from glassbox_client.jobs import Job, JobFailedError, JobResult
    from glassbox_client.server_info import ServerInfo
    from glassbox_client.types import (
        Attribution,
        AttributionResult,
        ClassScore,
        ModelInfo,
        ModelSummary,
        Prediction,
    )

__all__ = [
    "NO_RETRIES",
    "AsyncGlassboxClient",
    "Attribution",
    "AttributionResult",
    "ClassScore",
    "DeadlineExceededError",
    "ErrorStatus",
    "FailedPreconditionError",
    "FieldViolation",
    "GlassboxClient",
    "GlassboxError",
    "InternalError",
    "InvalidArgumentError",
    "Job",
    "JobFailedError",
    "JobResult",
    "ModelInfo",
    "ModelSummary",
    "NotFoundError",
    "Prediction",
    "ResourceExhaustedError",
    "RetryPolicy",
    "ServerInfo",
    "UnauthenticatedError",
    "UnavailableError",
    "plot",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'glassbox_client' has no attribute {name!r}")
    return getattr(importlib.import_module(f"glassbox_client.{_HOMES[name]}"), name)
