"""grpc.health.v1 statuses: overall (""), per gRPC service, and per model ("model/<name>", and
"model/<name>/<version>"). A model is SERVING when its newest version is ready.

The servicer is grpc-health's asyncio one (`grpc_health.v1.health.aio.HealthServicer`): a Watch stream
costs a coroutine waiting on a condition, not a thread, and its `set` is a coroutine that must run on
the server's event loop. `publish` is that coroutine; `publish_from_thread` runs it there from any
other thread (the repository poller's).
"""

from __future__ import annotations

import asyncio
import concurrent.futures

from grpc_health.v1 import health, health_pb2

from glassbox.models.repository import ModelRepository, ModelState

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def model_health_name(name: str, version: str | None = None) -> str:
    return f"model/{name}" if version is None else f"model/{name}/{version}"


def statuses(repository: ModelRepository, services: list[str]) -> list[tuple[str, int]]:
    """Every status, from the repository's current state: (health service name, serving status)."""
    result = []
    for entry in repository.all_entries():
        ready = entry.state is ModelState.READY
        result.append((model_health_name(entry.name, entry.version), SERVING if ready else NOT_SERVING))
    for name in repository.names():
        newest = repository.entry(name)
        result.append((model_health_name(name), SERVING if newest.state is ModelState.READY else NOT_SERVING))
    result.extend((service, SERVING) for service in services)
    result.append(("", SERVING))
    return result


async def publish(
    servicer: health.aio.HealthServicer, repository: ModelRepository, services: list[str]
) -> None:
    """Set every status from the repository's current state (on the servicer's event loop)."""
    for name, status in statuses(repository, services):
        await servicer.set(name, status)


def publish_from_thread(
    servicer: health.aio.HealthServicer,
    loop: asyncio.AbstractEventLoop,
    repository: ModelRepository,
    services: list[str],
) -> concurrent.futures.Future[None]:
    """`publish` scheduled on `loop` from another thread; the future says when it is done."""
    return asyncio.run_coroutine_threadsafe(publish(servicer, repository, services), loop)
