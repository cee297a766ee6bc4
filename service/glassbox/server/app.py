"""App wiring: build the repository and services, start the gRPC server, stop it gracefully.

The server is a `grpc.aio` server on an asyncio event loop that runs in a thread of its own, so the
public API stays synchronous (`start()`, `stop()`, `serve_forever()`). Handlers are coroutines: they
translate on the loop, hand blocking I/O (decoding, cache, Redis, job store) to a bounded pool of
`worker_threads` threads, and all model work to the compute scheduler. A health check, ListModels or an
open stream therefore never waits for a thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

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
    monitoring_pb2,
    monitoring_pb2_grpc,
    robustness_pb2,
    robustness_pb2_grpc,
    server_service_pb2,
    server_service_pb2_grpc,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from glassbox.cache.factory import build_cache
from glassbox.cache.service import CacheService
from glassbox.config import Settings
from glassbox.core.cancellation import CancellationToken
from glassbox.core.images import configure_decoder_limit
from glassbox.demo.datasets import register_generators
from glassbox.devices import resolve_device, use_deterministic_algorithms, use_full_float32_precision
from glassbox.jobs.engine import Outcome
from glassbox.jobs.factory import build_engine
from glassbox.metrics import Metrics
from glassbox.models.poller import RepositoryPoller
from glassbox.models.repository import ModelRepository
from glassbox.monitoring.monitor import ExplanationMonitor
from glassbox.monitoring.record import ExplanationRecord
from glassbox.monitoring.validate import check_monitoring
from glassbox.robustness.factory import build_history
from glassbox.robustness.history import HistoryRecord
from glassbox.robustness.monitor import RobustnessMonitor
from glassbox.server import health as model_health
from glassbox.server.attribution_servicer import AttributionServicer
from glassbox.server.auth import PrincipalResolver, TokenVerifier, token_interceptor, token_verifier
from glassbox.server.context import ServerContext
from glassbox.server.errors import error_interceptor
from glassbox.server.inspection_servicer import InspectionServicer
from glassbox.server.job_servicer import JobServicer
from glassbox.server.metrics_interceptor import MetricsInterceptor
from glassbox.server.model_servicer import ModelServicer
from glassbox.server.monitoring_servicer import MonitoringServicer
from glassbox.server.requests import RequestParsingInterceptor
from glassbox.server.robustness_servicer import RobustnessServicer
from glassbox.server.server_servicer import ServerServicer
from glassbox.server.tls import server_credentials
from glassbox.serving import ComputeScheduler, Priority
from glassbox.wire.kinds import job_kinds
from glassbox.wire.kinds.robustness import MONITORING_JOBS

if TYPE_CHECKING:
    from glassbox.server.http.gateway import HttpGateway

log = logging.getLogger(__name__)

T = TypeVar("T")


def _is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


class EventLoopThread:
    """An asyncio event loop running in a daemon thread of its own; coroutines are run on it from other
    threads with `run`."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(_loop_exception)
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coroutine` on the loop and wait for its result (from any thread but the loop's)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        """Stop the loop, once the tasks still pending (streams closing) had a moment to finish."""
        if self.loop.is_closed():
            return

        async def drain() -> None:
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if pending:
                await asyncio.wait(pending, timeout=1.0)
            await self.loop.shutdown_asyncgens()

        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            self.run(drain(), timeout=5.0)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5.0)
        if not self._thread.is_alive():
            self.loop.close()


def _loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The loop's handler of errors nobody awaited. grpc.aio shares one completion-queue socket between
    every event loop of the process (a client's in the same process, another server's), so a loop may
    find the socket already drained by another: that BlockingIOError is harmless and not logged."""
    if isinstance(context.get("exception"), BlockingIOError):
        return
    loop.default_exception_handler(context)


def warn_about_replicas(settings: Settings) -> None:
    """Warn when the in-process job engine looks deployed behind several replicas: clients spread calls
    over replicas, and a job id resolves only on the one that took the job (JOB_NOT_ON_THIS_REPLICA)."""
    if settings.jobs.redis_url:
        return
    hints = []
    if settings.replicas > 1:
        hints.append(f"replicas = {settings.replicas}")
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        hints.append("running in Kubernetes")
    if hints:
        log.warning(
            "jobs run in the in-process engine (no jobs.redis_url) but %s: a job is known only to the "
            "replica that took it, so GetJob/WatchJob/CancelJob on another replica answer NOT_FOUND with "
            "reason JOB_NOT_ON_THIS_REPLICA. Set jobs.redis_url (GLASSBOX_JOBS__REDIS_URL) for several "
            "replicas; docs/scaling.md",
            " and ".join(hints),
        )


class ServiceBinding(NamedTuple):
    """One gRPC service the server offers: where its descriptor lives, how its servicer is added, and
    whether it answers for the models (NOT_SERVING to health checks while no version is loaded)."""

    proto_file: ModuleType
    name: str
    add: Callable[[Any, grpc.aio.Server], None]
    servicer: Any
    needs_model: bool = False

    @property
    def full_name(self) -> str:
        return str(self.proto_file.DESCRIPTOR.services_by_name[self.name].full_name)


class GlassboxServer:
    """One gRPC server over one model repository."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.credentials = server_credentials(settings.security)
        configure_decoder_limit(settings.limits.max_image_pixels)
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        if settings.jobs.deterministic:
            use_deterministic_algorithms()
        use_full_float32_precision()
        self.metrics = Metrics(settings.metrics)
        register_generators()
        repository = ModelRepository(
            settings.model_repository,
            device=resolve_device(settings.device),
            on_loaded=self.metrics.observe_model_load,
            check=check_monitoring,
        )
        started = time.perf_counter()
        repository.load_all()
        log.info(
            "model repository %s loaded in %.2f s", settings.model_repository, time.perf_counter() - started
        )
        backend = build_cache(settings.cache, max_connections=settings.worker_threads + 4)
        cache = CacheService(backend, settings.cache, observer=self.metrics)
        self.pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=settings.worker_threads, thread_name_prefix="glassbox-io"
        )
        self.scheduler = ComputeScheduler(
            settings.scheduler,
            device=repository.device,
            observer=self.metrics,
            torch_threads=settings.torch_threads,
        )
        jobs = build_engine(
            settings.jobs,
            repository,
            job_kinds(),
            on_finished=self.metrics.observe_job,
            on_queue_depth=self.metrics.set_queue_depth,
            run_job=self._run_job,
            server_settings=settings,
        )
        warn_about_replicas(settings)
        self.verifier = token_verifier(settings.security)
        self.context = ServerContext(
            settings=settings,
            repository=repository,
            metrics=self.metrics,
            cache=cache,
            jobs=jobs,
            scheduler=self.scheduler,
            pool=self.pool,
            principals=PrincipalResolver(self.verifier, settings.security.admin_principals),
        )
        self._loop = EventLoopThread("glassbox-grpc")
        self.server: grpc.aio.Server = self._loop.run(self._build_server())
        self.health = health_aio.HealthServicer()
        self.history = build_history(settings)
        self.monitor = RobustnessMonitor(
            repository,
            jobs,
            self.history,
            evaluations=MONITORING_JOBS,
            interval_seconds=settings.robustness.check_interval_seconds,
            observe=self._observe_robustness,
        )
        self.explanation_history = build_history(settings, kind="explanations", record_type=ExplanationRecord)
        self.explanation_monitor = ExplanationMonitor(
            repository,
            self.scheduler,
            self.explanation_history,
            interval_seconds=settings.robustness.check_interval_seconds,
            settings=settings,
            observe=self.metrics.observe_explanations,
        )
        bindings = (
            ServiceBinding(
                model_service_pb2,
                "ModelService",
                model_service_pb2_grpc.add_ModelServiceServicer_to_server,
                ModelServicer(self.context),
                needs_model=True,
            ),
            ServiceBinding(
                attribution_service_pb2,
                "AttributionService",
                attribution_service_pb2_grpc.add_AttributionServiceServicer_to_server,
                AttributionServicer(self.context),
                needs_model=True,
            ),
            ServiceBinding(
                inspection_pb2,
                "InspectionService",
                inspection_pb2_grpc.add_InspectionServiceServicer_to_server,
                InspectionServicer(self.context),
                needs_model=True,
            ),
            ServiceBinding(
                job_service_pb2,
                "JobService",
                job_service_pb2_grpc.add_JobServiceServicer_to_server,
                JobServicer(self.context),
            ),
            ServiceBinding(
                robustness_pb2,
                "RobustnessService",
                robustness_pb2_grpc.add_RobustnessServiceServicer_to_server,
                RobustnessServicer(self.context, self.history),
            ),
            ServiceBinding(
                server_service_pb2,
                "ServerService",
                server_service_pb2_grpc.add_ServerServiceServicer_to_server,
                ServerServicer(self.context),
            ),
            ServiceBinding(
                monitoring_pb2,
                "MonitoringService",
                monitoring_pb2_grpc.add_MonitoringServiceServicer_to_server,
                MonitoringServicer(self.context, self.explanation_history),
            ),
        )
        for binding in bindings:
            binding.add(binding.servicer, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        model_services = frozenset(binding.full_name for binding in bindings if binding.needs_model)
        services = sorted(model_services) + [
            binding.full_name for binding in bindings if not binding.needs_model
        ]
        self._loop.run(model_health.publish(self.health, repository, services, model_services))
        self.poller = RepositoryPoller(
            repository,
            settings.model_repository_poll_seconds,
            lambda _added: model_health.publish_from_thread(
                self.health, self._loop.loop, repository, services, model_services
            ).result(timeout=30),
        )
        reason = model_health.unservable_reason(repository)
        if reason is not None:
            log.error(
                "NO MODEL TO SERVE: %s. ModelService, AttributionService and InspectionService report "
                "NOT_SERVING to health checks until a version loads%s",
                reason,
                f" (polled every {settings.model_repository_poll_seconds:g} s)"
                if settings.model_repository_poll_seconds
                else "; restart, or serve with --model-repository-poll-seconds to pick models up",
            )
        if settings.reflection:
            names = [
                *services,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ]
            reflection.enable_server_reflection(names, self.server)
        self.gateway = self._gateway(settings, services) if settings.http.enabled else None
        self._gateway_socket_dir: str | None = None
        self.port = 0
        self.http_port = 0
        self._stopped = False

    @staticmethod
    def _gateway(settings: Settings, services: list[str]) -> HttpGateway:
        """The HTTP/JSON gateway over `services` (imported only when enabled: aiohttp stays unloaded)."""
        from google.protobuf import descriptor_pool

        from glassbox.server.http.gateway import HttpGateway

        pool = descriptor_pool.Default()
        return HttpGateway(settings, [pool.FindServiceByName(name) for name in services])

    async def _build_server(self) -> grpc.aio.Server:
        """The aio server, made on the loop that will run it."""
        limit = self.settings.limits.max_message_bytes
        return grpc.aio.server(
            migration_thread_pool=self.pool,  # where a synchronous handler would run; ours are async
            interceptors=[
                MetricsInterceptor(self.metrics, self.pool),
                *self._interceptors(self.settings, self.pool, self.verifier),
            ],
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.so_reuseport", 0),
            ],
        )

    @staticmethod
    def _interceptors(
        settings: Settings, pool: concurrent.futures.Executor, verifier: TokenVerifier | None
    ) -> list[grpc.aio.ServerInterceptor]:
        """Outermost first: refuse unauthenticated calls before any work, then map errors of the calls
        that run; innermost, request bytes that do not parse become INVALID_ARGUMENT. (Load is bounded
        by the compute scheduler's admission, not per method.)"""
        auth = token_interceptor(settings.security, verifier)
        return [*([auth] if auth else []), error_interceptor(pool), RequestParsingInterceptor(pool)]

    def _observe_robustness(self, record: HistoryRecord) -> None:
        """Monitor hook: the latest evaluation of a model version as gauges."""
        self.metrics.observe_robustness(
            record.model,
            record.version,
            record.clean_accuracy,
            [(a.attack, a.epsilon, a.robust_accuracy) for a in record.attacks],
            record.minimal_epsilon_median,
        )

    def _run_job(self, kind: str, attempt: Callable[[], Outcome], token: CancellationToken) -> Outcome:
        """An in-process job's attempt, run by the compute scheduler at background priority: its steps
        interleave with the interactive calls unit by unit (the job thread only waits)."""
        return self.scheduler.run(
            attempt, model=None, estimate=None, priority=Priority.BACKGROUND, token=token, label=f"job/{kind}"
        )

    def start(self) -> int:
        """Bind and start; returns the bound port (useful when the address asks for port 0). Returns
        once the server accepts calls."""
        self.metrics.start()
        self.port = self._loop.run(self._start())
        if self.settings.robustness.monitoring:
            self.monitor.start()
            self.explanation_monitor.start()
        if self.settings.model_repository_poll_seconds > 0:
            self.poller.start()
        security = self.settings.security
        if self.gateway is not None:
            log.info(
                "HTTP gateway and web page on http%s://%s (port %d)",
                "s" if security.tls_enabled else "",
                self.settings.http.address,
                self.http_port,
            )
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

    async def _start(self) -> int:
        if self.credentials is None:
            port = self.server.add_insecure_port(self.settings.address)
        else:
            port = self.server.add_secure_port(self.settings.address, self.credentials)
        if port == 0:
            raise RuntimeError(f"could not bind {self.settings.address}")
        gateway_target = None
        if self.gateway is not None:
            # The gateway's private way in: a Unix socket in a directory only this user can open, so
            # HTTP calls pass the same interceptors (tokens, errors, metrics) as gRPC calls.
            self._gateway_socket_dir = tempfile.mkdtemp(prefix="glassbox-gateway-")
            gateway_target = f"unix:{self._gateway_socket_dir}/grpc.sock"
            if self.server.add_insecure_port(gateway_target) == 0:
                raise RuntimeError(f"could not bind the gateway's socket {gateway_target}")
        await self.server.start()
        if self.gateway is not None and gateway_target is not None:
            self.http_port = await self.gateway.start(gateway_target)
        return port

    def stop(self, grace: float | None = None) -> None:
        """Health goes NOT_SERVING first, then in-flight calls get `grace` seconds to finish; then the
        job engine, the compute scheduler and the pools stop."""
        if self._stopped:
            return
        self._stopped = True
        grace = self.settings.grace_period_seconds if grace is None else grace
        self._loop.run(self.health.enter_graceful_shutdown())
        self._loop.run(self.server.stop(grace))
        if self.gateway is not None:
            self._loop.run(self.gateway.stop())
        if self._gateway_socket_dir is not None:
            shutil.rmtree(self._gateway_socket_dir, ignore_errors=True)
        self.poller.stop()
        self.monitor.stop()
        self.explanation_monitor.stop()
        self.context.jobs.close()
        self.scheduler.close()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self._loop.stop()
        self.metrics.stop()
        self.history.close()
        self.explanation_history.close()
        self.context.cache.close()
        log.info("glassbox stopped")

    def serve_forever(self) -> None:
        """Run until SIGTERM or SIGINT, then stop gracefully."""
        stop = threading.Event()

        def request_stop(signum: int, _frame: object) -> None:
            log.info("received signal %d, shutting down", signum)
            stop.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, request_stop)
        self.start()
        stop.wait()
        self.stop()
