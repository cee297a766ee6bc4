"""App wiring: build the repository and services, start the gRPC server, stop it gracefully."""

from __future__ import annotations

import logging
import signal
import threading
import time
from concurrent import futures

import grpc
import torch
from glassbox_client._generated.glassbox.v1 import model_service_pb2, model_service_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from glassbox.config import Settings
from glassbox.models.repository import ModelRepository
from glassbox.server import health as model_health
from glassbox.server.context import ServerContext
from glassbox.server.errors import error_interceptor
from glassbox.server.model_servicer import ModelServicer

log = logging.getLogger(__name__)


def resolve_device(setting: str) -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA without it is a configuration error."""
    if setting == "cuda" and not torch.cuda.is_available():
        raise ValueError("device=cuda but no CUDA device is available")
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


class GlassboxServer:
    """One gRPC server over one model repository."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        repository = ModelRepository(settings.model_repository, device=resolve_device(settings.device))
        started = time.perf_counter()
        repository.load_all()
        log.info("model repository %s loaded in %.2f s", settings.model_repository, time.perf_counter() - started)
        self.context = ServerContext(settings=settings, repository=repository)
        limit = settings.limits.max_message_bytes
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.worker_threads, thread_name_prefix="glassbox-rpc"),
            interceptors=[error_interceptor()],
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.so_reuseport", 0),
            ],
        )
        self.health = health.HealthServicer(experimental_non_blocking=True)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(self.context), self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        services = [model_service_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name]
        model_health.publish(self.health, repository, services)
        if settings.reflection:
            names = [*services, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME]
            reflection.enable_server_reflection(names, self.server)
        self.port = 0

    def start(self) -> int:
        """Bind and start; returns the bound port (useful when the address asks for port 0)."""
        self.port = self.server.add_insecure_port(self.settings.address)
        if self.port == 0:
            raise RuntimeError(f"could not bind {self.settings.address}")
        self.server.start()
        log.info("glassbox serving on %s (port %d)", self.settings.address, self.port)
        return self.port

    def stop(self, grace: float | None = None) -> None:
        """Health goes NOT_SERVING first, then in-flight calls get `grace` seconds to finish."""
        self.health.enter_graceful_shutdown()
        grace = self.settings.grace_period_seconds if grace is None else grace
        self.server.stop(grace).wait()
        log.info("glassbox stopped")

    def serve_forever(self) -> None:
        """Run until SIGTERM or SIGINT, then stop gracefully."""
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda s, _f: (log.info("received signal %d, shutting down", s), stop.set()))
        self.start()
        stop.wait()
        self.stop()
