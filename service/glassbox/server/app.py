"""App wiring: build the repository and services, start the gRPC server, stop it gracefully."""

from __future__ import annotations

import logging
import signal
import threading
import time
from concurrent import futures

import grpc
import torch
from glassbox_client._generated.glassbox.v1 import (
    attribution_service_pb2,
    attribution_service_pb2_grpc,
    inspection_pb2,
    inspection_pb2_grpc,
    job_service_pb2,
    job_service_pb2_grpc,
    model_service_pb2,
    model_service_pb2_grpc,
    robustness_pb2,
    robustness_pb2_grpc,
)
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from glassbox.cache.factory import build_cache
from glassbox.cache.service import CacheService
from glassbox.config import Settings
from glassbox.devices import resolve_device, use_deterministic_algorithms, use_full_float32_precision
from glassbox.jobs.factory import build_engine
from glassbox.metrics import Metrics
from glassbox.models.poller import RepositoryPoller
from glassbox.models.repository import ModelRepository
from glassbox.robustness.factory import build_history
from glassbox.robustness.history import HistoryRecord
from glassbox.robustness.monitor import RobustnessMonitor
from glassbox.server import health as model_health
from glassbox.server.attribution_servicer import AttributionServicer
from glassbox.server.auth import token_interceptor
from glassbox.server.context import ServerContext
from glassbox.server.errors import error_interceptor
from glassbox.server.inspection_servicer import InspectionServicer
from glassbox.server.job_servicer import JobServicer
from glassbox.server.limits import concurrency_limit_interceptor
from glassbox.server.metrics_interceptor import MetricsInterceptor
from glassbox.server.model_servicer import ModelServicer
from glassbox.server.robustness_servicer import RobustnessServicer
from glassbox.server.tls import server_credentials

log = logging.getLogger(__name__)


def _is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


class GlassboxServer:
    """One gRPC server over one model repository."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.credentials = server_credentials(settings.security)
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        if settings.jobs.deterministic:
            use_deterministic_algorithms()
        use_full_float32_precision()
        self.metrics = Metrics(settings.metrics)
        repository = ModelRepository(
            settings.model_repository,
            device=resolve_device(settings.device),
            on_loaded=self.metrics.observe_model_load,
        )
        started = time.perf_counter()
        repository.load_all()
        log.info(
            "model repository %s loaded in %.2f s", settings.model_repository, time.perf_counter() - started
        )
        backend = build_cache(settings.cache, max_connections=settings.worker_threads + 4)
        cache = CacheService(backend, settings.cache, self.metrics)
        jobs = build_engine(
            settings.jobs,
            repository,
            on_finished=self.metrics.observe_job,
            on_queue_depth=self.metrics.set_queue_depth,
        )
        self.context = ServerContext(
            settings=settings, repository=repository, metrics=self.metrics, cache=cache, jobs=jobs
        )
        limit = settings.limits.max_message_bytes
        self.server = grpc.server(
            futures.ThreadPoolExecutor(
                max_workers=settings.worker_threads, thread_name_prefix="glassbox-rpc"
            ),
            interceptors=[MetricsInterceptor(self.metrics), *self._interceptors(settings)],
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.so_reuseport", 0),
            ],
        )
        self.health = health.HealthServicer(experimental_non_blocking=True)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(self.context), self.server)
        job_service_pb2_grpc.add_JobServiceServicer_to_server(JobServicer(self.context), self.server)
        attribution_service_pb2_grpc.add_AttributionServiceServicer_to_server(
            AttributionServicer(self.context), self.server
        )
        inspection_pb2_grpc.add_InspectionServiceServicer_to_server(
            InspectionServicer(self.context), self.server
        )
        self.history = build_history(settings)
        self.monitor = RobustnessMonitor(
            repository,
            jobs,
            self.history,
            interval_seconds=settings.robustness.check_interval_seconds,
            observe=self._observe_robustness,
        )
        robustness_pb2_grpc.add_RobustnessServiceServicer_to_server(
            RobustnessServicer(self.context, self.history), self.server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        services = [model_service_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name]
        services.append(job_service_pb2.DESCRIPTOR.services_by_name["JobService"].full_name)
        services.append(attribution_service_pb2.DESCRIPTOR.services_by_name["AttributionService"].full_name)
        services.append(inspection_pb2.DESCRIPTOR.services_by_name["InspectionService"].full_name)
        services.append(robustness_pb2.DESCRIPTOR.services_by_name["RobustnessService"].full_name)
        model_health.publish(self.health, repository, services)
        self.poller = RepositoryPoller(
            repository,
            settings.model_repository_poll_seconds,
            lambda _added: model_health.publish(self.health, repository, services),
        )
        if settings.reflection:
            names = [
                *services,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ]
            reflection.enable_server_reflection(names, self.server)
        self.port = 0

    @staticmethod
    def _interceptors(settings: Settings) -> list[grpc.ServerInterceptor]:
        """Outermost first: refuse unauthenticated calls before any work, then enforce the concurrency
        limit, then map errors of the calls that run."""
        auth = token_interceptor(settings.security)
        limits = concurrency_limit_interceptor(settings.limits.max_concurrent_calls_per_method)
        return [*([auth] if auth else []), limits, error_interceptor()]

    def _observe_robustness(self, record: HistoryRecord) -> None:
        """Monitor hook: the latest evaluation of a model version as gauges."""
        self.metrics.observe_robustness(
            record.model,
            record.version,
            record.clean_accuracy,
            [(a.attack, a.epsilon, a.robust_accuracy) for a in record.attacks],
            record.minimal_epsilon_median,
        )

    def start(self) -> int:
        """Bind and start; returns the bound port (useful when the address asks for port 0)."""
        self.metrics.start()
        if self.credentials is None:
            self.port = self.server.add_insecure_port(self.settings.address)
        else:
            self.port = self.server.add_secure_port(self.settings.address, self.credentials)
        if self.port == 0:
            raise RuntimeError(f"could not bind {self.settings.address}")
        self.server.start()
        if self.settings.robustness.monitoring:
            self.monitor.start()
        if self.settings.model_repository_poll_seconds > 0:
            self.poller.start()
        security = self.settings.security
        log.info(
            "glassbox serving on %s (port %d, %s, %s)",
            self.settings.address,
            self.port,
            "mutual TLS" if security.require_client_cert else "TLS" if security.tls_enabled else "plaintext",
            "bearer tokens required" if security.tokens_enabled else "no authentication",
        )
        if not _is_loopback(self.settings.address) and not (security.tls_enabled or security.tokens_enabled):
            log.warning("listening beyond loopback with neither TLS nor tokens: anyone can call it")
        return self.port

    def stop(self, grace: float | None = None) -> None:
        """Health goes NOT_SERVING first, then in-flight calls get `grace` seconds to finish."""
        self.health.enter_graceful_shutdown()
        grace = self.settings.grace_period_seconds if grace is None else grace
        self.server.stop(grace).wait()
        self.poller.stop()
        self.monitor.stop()
        self.metrics.stop()
        self.history.close()
        self.context.cache.close()
        self.context.jobs.close()
        log.info("glassbox stopped")

    def serve_forever(self) -> None:
        """Run until SIGTERM or SIGINT, then stop gracefully."""
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(
                signum, lambda s, _f: (log.info("received signal %d, shutting down", s), stop.set())
            )
        self.start()
        stop.wait()
        self.stop()
