"""Fixtures the method tests share: one repository of seeded models, written once per session, one
server on it with the result cache off, and in-process method runners on the same models (no gRPC).

A module that needs other models or other server settings defines its own `repository` and `stub` (a
module-scoped `repository` beside the shared `stub` fails loudly with a scope mismatch rather than
pairing a server with the wrong models)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from glassbox.core.model_config import load_config
from glassbox.methods.runner import MethodRunner
from glassbox.models.loaders import load_model
from glassbox.serving import ComputeScheduler
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2_grpc
from support.gradient_harness import write_shared_repository
from support.servers import RunningServer, server_settings


@pytest.fixture(scope="session")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """shapes, resnet, densenet, vgg, vit and shapes-onnx with seeded weights (gradient_harness)."""
    return write_shared_repository(tmp_path_factory.mktemp("method-models"))


@pytest.fixture(scope="session")
def shared_server(repository: Path) -> Iterator[RunningServer]:
    """A server on the shared repository with the result cache off (each request computes its maps)."""
    settings = server_settings(model_repository=repository, cache={"enabled": False})
    server = RunningServer(settings)
    yield server
    server.close()


@pytest.fixture(scope="session")
def stub(shared_server: RunningServer) -> attribution_service_pb2_grpc.AttributionServiceStub:
    return attribution_service_pb2_grpc.AttributionServiceStub(shared_server.channel)


@pytest.fixture(scope="session")
def method_runner(repository: Path) -> Iterator[Callable[[str], MethodRunner]]:
    """Factory: the MethodRunner of a model of the shared repository (loaded once, on the CPU as the
    reference networks are), every runner on one compute scheduler with the shared server's settings."""
    settings = server_settings(model_repository=repository, cache={"enabled": False})
    scheduler = ComputeScheduler(settings.scheduler, device=torch.device("cpu"))
    runners: dict[str, MethodRunner] = {}

    def runner(name: str) -> MethodRunner:
        if name not in runners:
            folder = repository / name / "1"
            model = load_model(name, "1", folder, load_config(folder), device=torch.device("cpu"))
            runners[name] = MethodRunner(model, settings=settings, scheduler=scheduler)
        return runners[name]

    yield runner
    scheduler.close()
