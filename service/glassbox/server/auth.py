"""Bearer-token authentication: one interceptor, in front of everything else.

Clients send `authorization: Bearer <token>` metadata (RFC 6750 over gRPC, as grpcurl `-H` and every
gRPC library's access-token credentials do). The server keeps only SHA-256 digests of the accepted
tokens and compares digests in constant time against every entry, so neither the comparison nor a
memory dump gives a token away. A token file may list digests (`sha256:<hex>`) instead of tokens,
so the plain secret need not sit on the server's disk at all. The file is re-read when it changes,
which makes rotating a mounted Kubernetes Secret a matter of adding the new token, rolling the
clients, and removing the old one.

A call without a valid token is answered UNAUTHENTICATED before its request is even parsed. The
health service is always exempt (load balancers and kubelets probe it without credentials);
reflection is exempt only when `security.reflection_requires_token` is false.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import grpc

from glassbox.config import SecuritySettings

log = logging.getLogger(__name__)

HEALTH_PREFIX = "/grpc.health.v1.Health/"
REFLECTION_PREFIXES = ("/grpc.reflection.v1alpha.ServerReflection/", "/grpc.reflection.v1.ServerReflection/")
DIGEST_PREFIX = "sha256:"
MIN_TOKEN_CHARS = 16
FILE_CHECK_INTERVAL_S = 1.0


def token_digest(token: str) -> bytes:
    """The SHA-256 digest under which a token is stored and compared."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def parse_token_entry(entry: str, *, source: str) -> bytes:
    """One configured token (`<token>` or `sha256:<64 hex digits>`) as its digest."""
    if entry.startswith(DIGEST_PREFIX):
        hex_digest = entry.removeprefix(DIGEST_PREFIX)
        try:
            digest = bytes.fromhex(hex_digest)
        except ValueError:
            digest = b""
        if len(digest) != hashlib.sha256().digest_size:
            raise ValueError(f"{source}: `sha256:` must be followed by 64 hex digits")
        return digest
    if len(entry) < MIN_TOKEN_CHARS or any(c.isspace() for c in entry):
        raise ValueError(f"{source}: a token needs at least {MIN_TOKEN_CHARS} characters and no spaces")
    return token_digest(entry)


def read_token_file(path: Path) -> list[bytes]:
    """Digests of the tokens in a file: one entry per line, blank lines and `#` comments ignored."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"cannot read security.token_file {path}: {exc.strerror}") from exc
    digests = []
    for number, line in enumerate(lines, start=1):
        entry = line.split("#", 1)[0].strip()
        if entry:
            digests.append(parse_token_entry(entry, source=f"{path}:{number}"))
    return digests


class TokenVerifier:
    """Accepts a presented token when its digest equals one of the configured digests."""

    def __init__(self, tokens: Iterable[str], token_file: Path | None) -> None:
        self._fixed = [parse_token_entry(t, source="security.tokens") for t in tokens]
        self._file = token_file
        self._file_digests: list[bytes] = []
        self._file_mtime: int | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()
        if token_file is not None:
            self._reload(token_file, force=True)
        if not self._fixed and not self._file_digests:
            raise ValueError("token authentication is on but no token is configured")

    def _reload(self, path: Path, *, force: bool = False) -> None:
        try:
            mtime = path.stat().st_mtime_ns
        except OSError as exc:
            if force:
                raise ValueError(f"cannot read security.token_file {path}: {exc.strerror}") from exc
            log.error("security.token_file %s is unreadable; keeping the previous tokens", path)
            return
        if mtime == self._file_mtime:
            return
        try:
            digests = read_token_file(path)
        except ValueError as exc:
            if force:
                raise
            log.error("security.token_file changed but is invalid; keeping the previous tokens: %s", exc)
            return
        self._file_digests, self._file_mtime = digests, mtime
        log.info("loaded %d token(s) from %s", len(digests), path)

    def _digests(self) -> list[bytes]:
        if self._file is not None:
            with self._lock:
                now = time.monotonic()
                if now - self._checked_at >= FILE_CHECK_INTERVAL_S:
                    self._checked_at = now
                    self._reload(self._file)
        return [*self._fixed, *self._file_digests]

    def verify(self, token: str) -> bool:
        presented = token_digest(token)
        matched = False
        for digest in self._digests():
            matched |= hmac.compare_digest(presented, digest)
        return matched


def bearer_token(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    """The token of an `authorization: Bearer <token>` entry, if there is one."""
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


WWW_AUTHENTICATE = (("www-authenticate", 'Bearer realm="glassbox"'),)


def _rejecting_handler(handler: grpc.RpcMethodHandler | None, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same cardinality that aborts UNAUTHENTICATED; no deserializer, so no parsing."""

    async def reject(_request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message, WWW_AUTHENTICATE)

    async def reject_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await reject(request, context)
        yield  # never reached: an async generator, as grpc.aio expects of a streaming handler

    if handler is not None and handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(reject_stream)
    if handler is not None and handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(reject)
    if handler is not None and handler.stream_stream:
        return grpc.stream_stream_rpc_method_handler(reject_stream)
    return grpc.unary_unary_rpc_method_handler(reject)


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):
    """Lets a call through only with a valid bearer token, unless its method is exempt."""

    def __init__(self, verifier: TokenVerifier, exempt_prefixes: tuple[str, ...]) -> None:
        self._verifier = verifier
        self._exempt = exempt_prefixes

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        if details.method.startswith(self._exempt):
            return await continuation(details)
        token = bearer_token(details.invocation_metadata)
        if token is not None and self._verifier.verify(token):
            return await continuation(details)
        message = (
            "missing bearer token: send metadata `authorization: Bearer <token>`"
            if token is None
            else "invalid bearer token"
        )
        log.info("rejected %s: %s", details.method, message)
        return _rejecting_handler(await continuation(details), message)


def token_interceptor(security: SecuritySettings) -> TokenAuthInterceptor | None:
    """The interceptor for these settings, or None when no token is configured."""
    if not security.tokens_enabled:
        return None
    verifier = TokenVerifier([t.get_secret_value() for t in security.tokens], security.token_file)
    exempt = (HEALTH_PREFIX,) if security.reflection_requires_token else (HEALTH_PREFIX, *REFLECTION_PREFIXES)
    return TokenAuthInterceptor(verifier, exempt)
