"""The composition root handed to every servicer: settings, the long-lived services, and the two places
work leaves the event loop for.

- `blocking(fn, ...)`: blocking I/O and CPU-light preparation (image decoding and validation, cache and
  Redis I/O, job-engine calls) on the server's bounded pool of `settings.worker_threads` threads.
- `compute(work, ...)`: model work, always through the compute scheduler. The call's deadline and
  priority go with it, and a client that leaves (grpc.aio cancels the handler's task) cancels the work.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc

from glassbox.backends.base import Model
from glassbox.cache.service import CacheService
from glassbox.config import Settings
from glassbox.core.cancellation import CancellationToken
from glassbox.core.images import ImageSource, PreparedImage, decoded_bytes, load_images
from glassbox.jobs.engine import JobEngine
from glassbox.methods.registry import supported_methods
from glassbox.metrics import Metrics
from glassbox.models.repository import ModelRepository, ModelVersion
from glassbox.server.auth import PrincipalResolver
from glassbox.server.interceptors import in_pool
from glassbox.serving import ComputeScheduler, Estimate, Priority

T = TypeVar("T")


@dataclass
class ServerContext:
    settings: Settings
    repository: ModelRepository
    metrics: Metrics
    cache: CacheService
    jobs: JobEngine
    scheduler: ComputeScheduler
    pool: Executor
    """The blocking-I/O pool (`settings.worker_threads` threads); never runs model work."""
    principals: PrincipalResolver = field(default_factory=lambda: PrincipalResolver(None, ()))
    """Names the caller of a call (server/auth.py): the owner of the jobs it submits."""

    def supported_methods(self, entry: ModelVersion) -> list[str]:
        return supported_methods(entry.model) if entry.model is not None else []

    async def blocking(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`function(*args, **kwargs)` on the blocking-I/O pool."""
        return await in_pool(self.pool, function, *args, **kwargs)

    @contextlib.asynccontextmanager
    async def holding_images(self, sources: list[ImageSource]) -> AsyncIterator[None]:
        """Hold the memory that decoding these images takes (read from their headers, on the pool) in the
        scheduler's memory budget for the block: a burst of large images is refused (RESOURCE_EXHAUSTED)
        before it is decoded, not after it has filled the memory."""
        nbytes = await self.blocking(decoded_bytes, sources, max_pixels=self.settings.limits.max_image_pixels)
        with self.scheduler.holding(nbytes):
            yield

    async def load_images(self, sources: list[ImageSource], model: Model) -> list[PreparedImage]:
        """Decode, validate and resize a request's images for the model, on the pool, within the limits."""
        limits = self.settings.limits
        return await self.blocking(
            lambda: load_images(
                sources,
                model.config.input,
                max_pixels=limits.max_image_pixels,
                max_images=limits.max_batch_images,
            )
        )

    async def compute(
        self,
        work: Callable[[CancellationToken], T],
        *,
        model: Model | None,
        estimate: Estimate | None,
        context: grpc.aio.ServicerContext,
        label: str,
        priority: Priority = Priority.INTERACTIVE,
    ) -> T:
        """`work(token)` run by the compute scheduler; admission may refuse it at once
        (ResourceExhausted). The call's deadline bounds it, and if the handler's task is cancelled (the
        client left, the deadline passed, the server stopped) the token is cancelled: the call leaves the
        queue, or stops at its next cancellation check."""
        token = CancellationToken()
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        future = self.scheduler.submit(
            lambda: work(token),
            model=model,
            estimate=estimate,
            priority=priority,
            deadline=deadline,
            token=token,
            label=label,
        )
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            token.cancel()
            raise
