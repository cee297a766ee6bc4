"""ServerService: GetServerInfo — the server's version, the limits in force, its engines, methods, job
kinds and error reasons, and who the caller is, read from the settings the server runs with (so
callers stop hard-coding the defaults). Translation only; answered on the event loop.
"""

from __future__ import annotations

import grpc
from glassbox_client._generated.glassbox.v1 import server_service_pb2 as pb
from glassbox_client._generated.glassbox.v1 import server_service_pb2_grpc

from glassbox import __version__
from glassbox.core.reasons import Reason
from glassbox.methods.registry import method_names
from glassbox.server.context import ServerContext


class ServerServicer(server_service_pb2_grpc.ServerServiceServicer):
    def __init__(self, context: ServerContext) -> None:
        self._ctx = context

    async def GetServerInfo(
        self, request: pb.GetServerInfoRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetServerInfoResponse:
        settings = self._ctx.settings
        limits, caps, jobs, cache = settings.limits, settings.attribution, settings.jobs, settings.cache
        principal = self._ctx.principals.principal(context)
        if not cache.enabled:
            cache_engine = pb.CACHE_ENGINE_KIND_DISABLED
        else:
            cache_engine = pb.CACHE_ENGINE_KIND_REDIS if cache.redis_url else pb.CACHE_ENGINE_KIND_IN_PROCESS
        return pb.GetServerInfoResponse(
            version=__version__,
            replica_id=self._ctx.jobs.replica_tag,
            limits=pb.RequestLimits(
                max_message_bytes=limits.max_message_bytes,
                max_image_pixels=limits.max_image_pixels,
                max_batch_images=limits.max_batch_images,
            ),
            attribution=pb.AttributionCaps(
                max_samples=caps.max_samples,
                max_steps=caps.max_steps,
                max_perturbations=caps.max_perturbations,
            ),
            jobs=pb.JobLimits(
                engine=pb.JOB_ENGINE_KIND_REDIS if jobs.redis_url else pb.JOB_ENGINE_KIND_IN_PROCESS,
                queue_capacity=jobs.queue_capacity,
                result_ttl_seconds=jobs.result_ttl_seconds,
                max_run_seconds=jobs.max_run_seconds,
                max_attempts=self._ctx.jobs.max_attempts,
                min_preview_every_steps=jobs.min_preview_every_steps,
                max_preview_every_steps=jobs.max_preview_every_steps,
                page_size_max=jobs.page_size_max,
                watch_heartbeat_seconds=jobs.watch_heartbeat_seconds,
            ),
            cache=pb.CacheInfo(engine=cache_engine, ttl_seconds=cache.ttl_seconds),
            methods=method_names(),
            job_kinds=self._ctx.jobs.kinds.names(),
            caller=pb.CallerInfo(
                principal=principal.name,
                admin=principal.admin,
                token_required=self._ctx.principals.tokens_required,
                tls=settings.security.tls_enabled,
            ),
            error_reasons=[
                pb.ErrorReason(reason=reason.value, code=reason.code, description=reason.description)
                for reason in Reason
            ],
        )
