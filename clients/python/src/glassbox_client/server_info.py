"""What a server is and enforces (ServerService.GetServerInfo), typed: read the limits instead of
hard-coding the defaults.

    with GlassboxClient() as glassbox:
        info = glassbox.server_info()
        print(info.version, info.limits["max_batch_images"], info.jobs["engine"], info.caller)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf.json_format import MessageToDict

from glassbox_client._generated.glassbox.v1 import server_service_pb2 as server_pb


@dataclass(frozen=True)
class ErrorReason:
    """One `google.rpc.ErrorInfo` reason the server may send, its status code name and meaning."""

    reason: str
    code: str
    description: str


@dataclass(frozen=True)
class ServerInfo:
    """The server's version and replica, its limits and caps (snake_case keys as in the settings), its
    cache and job engines, methods, job kinds and error reasons, and the caller's principal."""

    version: str
    replica_id: str
    limits: dict[str, int]
    attribution: dict[str, int]
    jobs: dict[str, Any]
    cache: dict[str, Any]
    methods: list[str]
    job_kinds: list[str]
    principal: str
    admin: bool
    token_required: bool
    tls: bool
    error_reasons: list[ErrorReason]
    message: server_pb.GetServerInfoResponse

    @classmethod
    def from_proto(cls, info: server_pb.GetServerInfoResponse) -> ServerInfo:
        def fields(message: Any) -> dict[str, Any]:
            return MessageToDict(
                message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
            )

        jobs = fields(info.jobs)
        jobs["engine"] = (
            server_pb.JobEngineKind.Name(info.jobs.engine).removeprefix("JOB_ENGINE_KIND_").lower()
        )
        cache = fields(info.cache)
        cache["engine"] = (
            server_pb.CacheEngineKind.Name(info.cache.engine).removeprefix("CACHE_ENGINE_KIND_").lower()
        )
        return cls(
            version=info.version,
            replica_id=info.replica_id,
            limits={k: int(v) for k, v in fields(info.limits).items()},
            attribution={k: int(v) for k, v in fields(info.attribution).items()},
            jobs=jobs,
            cache=cache,
            methods=list(info.methods),
            job_kinds=list(info.job_kinds),
            principal=info.caller.principal,
            admin=info.caller.admin,
            token_required=info.caller.token_required,
            tls=info.caller.tls,
            error_reasons=[ErrorReason(r.reason, r.code, r.description) for r in info.error_reasons],
            message=info,
        )
