"""grpc.health.v1 statuses: overall (""), per gRPC service, and per model ("model/<name>", and
"model/<name>/<version>"). A model is SERVING when its newest version is ready."""

from __future__ import annotations

from grpc_health.v1 import health, health_pb2

from glassbox.models.repository import ModelRepository, ModelState

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def model_health_name(name: str, version: str | None = None) -> str:
    return f"model/{name}" if version is None else f"model/{name}/{version}"


def publish(servicer: health.HealthServicer, repository: ModelRepository, services: list[str]) -> None:
    """Set every status from the repository's current state."""
    for entry in repository.all_entries():
        ready = entry.state is ModelState.READY
        servicer.set(model_health_name(entry.name, entry.version), SERVING if ready else NOT_SERVING)
    for name in repository.names():
        newest = repository.entry(name)
        servicer.set(model_health_name(name), SERVING if newest.state is ModelState.READY else NOT_SERVING)
    for service in services:
        servicer.set(service, SERVING)
    servicer.set("", SERVING)
