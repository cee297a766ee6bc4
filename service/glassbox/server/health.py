"""grpc.health.v1 statuses: overall (""), per gRPC service, and per model ("model/<name>", and
"model/<name>/<version>"). A model is SERVING when its newest version is ready.

While no model version is ready (an empty or mistyped model repository, an empty volume), the services
that need a model (`model_services`: ModelService, AttributionService, InspectionService) are
NOT_SERVING, so a readiness probe on `glassbox.v1.ModelService` keeps traffic away; the overall status
("") stays SERVING as long as the process serves (a liveness probe must not restart a server that is
waiting for models to appear, see `model_repository_poll_seconds`).

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


def statuses(
    repository: ModelRepository, services: list[str], model_services: frozenset[str] = frozenset()
) -> list[tuple[str, int]]:
    """Every status, from the repository's current state: (health service name, serving status).
    The services in `model_services` are NOT_SERVING while no model version is ready."""
    result: list[tuple[str, int]] = []
    entries = repository.all_entries()
    for entry in entries:
        ready = entry.state is ModelState.READY
        result.append((model_health_name(entry.name, entry.version), SERVING if ready else NOT_SERVING))
    for name in repository.names():
        versions = repository.versions(name)
        any_version_ready = any(v.state is ModelState.READY for v in versions)
        result.append((model_health_name(name), SERVING if any_version_ready else NOT_SERVING))
    any_ready = any(entry.state is ModelState.READY for entry in entries)
    result.extend(
        (service, SERVING if any_ready or service not in model_services else NOT_SERVING)
        for service in services
    )
    result.append(("", SERVING))
    return result


async def publish(
    servicer: health.aio.HealthServicer,
    repository: ModelRepository,
    services: list[str],
    model_services: frozenset[str] = frozenset(),
) -> None:
    """Set every status from the repository's current state (on the servicer's event loop)."""
    for name, status in statuses(repository, services, model_services):
        await servicer.set(name, status)


def publish_from_thread(
    servicer: health.aio.HealthServicer,
    loop: asyncio.AbstractEventLoop,
    repository: ModelRepository,
    services: list[str],
    model_services: frozenset[str] = frozenset(),
) -> concurrent.futures.Future[None]:
    """`publish` scheduled on `loop` from another thread; the future says when it is done."""
    return asyncio.run_coroutine_threadsafe(publish(servicer, repository, services, model_services), loop)


def unservable_reason(repository: ModelRepository) -> str | None:
    """Why no model can be served (None when a version is ready): for the loud start-up log."""
    entries = repository.all_entries()
    if any(entry.state is ModelState.READY for entry in entries):
        return None
    root = repository.root.resolve()
    if not entries:
        return (
            f"the model repository {root} holds no model version (expected <name>/<version>/model.toml); "
            "check --model-repository / GLASSBOX_MODEL_REPOSITORY and the volume mounted there"
        )
    failed = "; ".join(f"{e.name}/{e.version}: {e.error}" for e in entries[:5])
    return f"no model version in {root} loaded ({len(entries)} failed: {failed})"
