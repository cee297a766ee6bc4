"""How the client reaches a server: address, TLS, token, deadlines and retries.

Retries are gRPC's own (a service-config retry policy): only UNAVAILABLE is retried, with
exponential backoff and jitter, and always within the call's deadline, so a server that restarts or
a load balancer that drains a replica costs a short delay instead of an exception. Nothing else is
retried: INVALID_ARGUMENT would fail again, and RESOURCE_EXHAUSTED means "back off", which is the
caller's decision.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

DEFAULT_ADDRESS = "127.0.0.1:50051"
RETRIED_METHODS = (
    {"service": "glassbox.v1.ModelService"},
    {"service": "glassbox.v1.AttributionService"},
    {"service": "glassbox.v1.InspectionService"},
    {"service": "glassbox.v1.RobustnessService"},
    *(
        {"service": "glassbox.v1.JobService", "method": m}
        for m in ("SubmitJob", "GetJob", "WatchJob", "CancelJob", "ListJobs")
    ),
    {"service": "glassbox.v1.ServerService"},
)
"""Every idempotent RPC. SubmitJob is one because the client always sends a request_id: a retry of the
same message returns the job the first attempt queued."""
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of calls that fail with UNAVAILABLE. gRPC caps `max_attempts` at 5."""

    max_attempts: int = 5
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 5.0
    backoff_multiplier: float = 2.0

    def service_config(self) -> str:
        """gRPC service config: this retry policy, and round_robin over every address the target
        resolves to (a headless Service's pods), so calls spread over replicas, not connections."""
        balancing: list[dict[str, Any]] = [{"round_robin": {}}]
        if self.max_attempts < 2:
            return json.dumps({"loadBalancingConfig": balancing, "methodConfig": []})
        policy = {
            "maxAttempts": min(self.max_attempts, 5),
            "initialBackoff": f"{self.initial_backoff_s}s",
            "maxBackoff": f"{self.max_backoff_s}s",
            "backoffMultiplier": self.backoff_multiplier,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
        method_config = [{"name": list(RETRIED_METHODS), "retryPolicy": policy}]
        return json.dumps({"loadBalancingConfig": balancing, "methodConfig": method_config})


NO_RETRIES = RetryPolicy(max_attempts=1)


@dataclass(frozen=True)
class ConnectionOptions:
    """Everything needed to open a channel; see GlassboxClient for the meaning of each field."""

    address: str = DEFAULT_ADDRESS
    tls: bool = False
    ca_cert: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    server_name: str | None = None
    token: str | None = None
    timeout: float = 30.0
    retry: RetryPolicy = RetryPolicy()
    max_message_bytes: int = 64 * 1024 * 1024

    @classmethod
    def create(
        cls,
        address: str | None = None,
        *,
        tls: bool | None = None,
        ca_cert: str | os.PathLike[str] | None = None,
        client_cert: str | os.PathLike[str] | None = None,
        client_key: str | os.PathLike[str] | None = None,
        server_name: str | None = None,
        token: str | None = None,
        token_file: str | os.PathLike[str] | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        max_message_bytes: int = 64 * 1024 * 1024,
    ) -> ConnectionOptions:
        """Options from arguments, falling back to GLASSBOX_ADDRESS and GLASSBOX_TOKEN(_FILE)."""
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        if (client_cert is None) != (client_key is None):
            raise ValueError("client_cert and client_key must be given together")
        if token is None and token_file is None and os.environ.get("GLASSBOX_TOKEN_FILE"):
            token_file = os.environ["GLASSBOX_TOKEN_FILE"]
        if token is None and token_file is not None:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        if token is None:
            token = os.environ.get("GLASSBOX_TOKEN") or None
        use_tls = bool(tls) or any(p is not None for p in (ca_cert, client_cert))
        return cls(
            address=address or os.environ.get("GLASSBOX_ADDRESS") or DEFAULT_ADDRESS,
            tls=use_tls,
            ca_cert=Path(ca_cert) if ca_cert is not None else None,
            client_cert=Path(client_cert) if client_cert is not None else None,
            client_key=Path(client_key) if client_key is not None else None,
            server_name=server_name,
            token=token,
            timeout=timeout,
            retry=retry or RetryPolicy(),
            max_message_bytes=max_message_bytes,
        )

    def channel_options(self) -> list[tuple[str, str | int]]:
        options: list[tuple[str, str | int]] = [
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.enable_retries", 1 if self.retry.max_attempts > 1 else 0),
            ("grpc.service_config", self.retry.service_config()),
        ]
        if self.server_name:
            options.append(("grpc.ssl_target_name_override", self.server_name))
        return options

    def credentials(self) -> grpc.ChannelCredentials | None:
        """TLS credentials, or None for a plaintext channel."""
        if not self.tls:
            if self.token and not _is_loopback(self.address):
                warnings.warn(
                    f"sending a bearer token to {self.address} without TLS; pass tls=True", stacklevel=4
                )
            return None
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca_cert.read_bytes() if self.ca_cert else None,
            private_key=self.client_key.read_bytes() if self.client_key else None,
            certificate_chain=self.client_cert.read_bytes() if self.client_cert else None,
        )

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()


def _is_loopback(address: str) -> bool:
    host = address.removeprefix("dns:///").removeprefix("ipv4:").removeprefix("ipv6:")
    host = host.rsplit(":", 1)[0].strip("[]")
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def open_channel(options: ConnectionOptions) -> grpc.Channel:
    credentials = options.credentials()
    if credentials is None:
        return grpc.insecure_channel(options.address, options=options.channel_options())
    return grpc.secure_channel(options.address, credentials, options=options.channel_options())


def open_aio_channel(options: ConnectionOptions) -> grpc.aio.Channel:
    credentials = options.credentials()
    if credentials is None:
        return grpc.aio.insecure_channel(options.address, options=options.channel_options())
    return grpc.aio.secure_channel(options.address, credentials, options=options.channel_options())
