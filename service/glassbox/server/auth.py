"""Bearer-token authentication: one interceptor, in front of everything else.

Clients send `authorization: Bearer <token>` metadata (RFC 6750 over gRPC, as grpcurl `-H` and every
gRPC library's access-token credentials do). The server keeps only SHA-256 digests of the accepted
tokens and compares digests in constant time against every entry, so neither the comparison nor a
memory dump gives a token away. A token file may list digests (`sha256:<hex>`) instead of tokens,
so the plain secret need not sit on the server's disk at all. The file is re-read when it changes,
which makes rotating a mounted Kubernetes Secret a matter of adding the new token, rolling the
clients, and removing the old one.

A call without a valid token is answered UNAUTHENTICATED (reason UNAUTHENTICATED in a
`google.rpc.ErrorInfo`) before its request is even parsed. The health service is always exempt (load
balancers and kubelets probe it without credentials); reflection is exempt only when
`security.reflection_requires_token` is false.

Principals. Every token entry names who holds it, and the jobs that caller submits are owned by that
name (JobService shows a caller only its own jobs). A line of the token file is

    <token or sha256:<hex>>  [name=<principal>]  [admin]

A line with the token alone (the format before names existed) still works: its principal is
`token:<first 12 hex of its SHA-256>`, stable across restarts and giving nothing of the token away.
`admin` (or the name in `security.admin_principals`) gives the admin scope: every principal's jobs.
Without a token, a caller with a verified client certificate is its certificate's subject; with
neither (no authentication configured), every caller is the anonymous principal "".
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from glassbox.config import SecuritySettings
from glassbox.core.principal import ANONYMOUS, Principal
from glassbox.core.reasons import Reason
from glassbox.server.errors import status_proto

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


@dataclass(frozen=True)
class TokenEntry:
    """One accepted token: its digest, the principal holding it, and whether that one is an admin."""

    digest: bytes
    name: str
    admin: bool = False


NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:/=,+-]{0,127}$")


def parse_token_line(line: str, *, source: str) -> TokenEntry:
    """One configured entry: `<token or sha256:hex> [name=<principal>] [admin]`."""
    secret, *attributes = line.split()
    digest = parse_token_entry(secret, source=source)
    name, admin = f"token:{digest.hex()[:12]}", False
    for attribute in attributes:
        if attribute == "admin":
            admin = True
        elif attribute.startswith("name=") and NAME.match(attribute.removeprefix("name=")):
            name = attribute.removeprefix("name=")
        else:
            raise ValueError(
                f"{source}: unknown attribute {attribute!r}; a line is `<token> [name=<principal>] [admin]` "
                "(a name: letters, digits and . _ @ : / = , + -, at most 128)"
            )
    return TokenEntry(digest, name, admin)


def read_token_file(path: Path) -> list[TokenEntry]:
    """The tokens in a file: one entry per line, blank lines and `#` comments ignored."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"cannot read security.token_file {path}: {exc.strerror}") from exc
    entries = []
    for number, line in enumerate(lines, start=1):
        entry = line.split("#", 1)[0].strip()
        if entry:
            entries.append(parse_token_line(entry, source=f"{path}:{number}"))
    return entries


class TokenVerifier:
    """Accepts a presented token when its digest equals one of the configured digests."""

    def __init__(self, tokens: Iterable[str], token_file: Path | None) -> None:
        self._fixed = [parse_token_line(t, source="security.tokens") for t in tokens]
        self._file = token_file
        self._file_digests: list[TokenEntry] = []
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

    def _digests(self) -> list[TokenEntry]:
        if self._file is not None:
            with self._lock:
                now = time.monotonic()
                if now - self._checked_at >= FILE_CHECK_INTERVAL_S:
                    self._checked_at = now
                    self._reload(self._file)
        return [*self._fixed, *self._file_digests]

    def identify(self, token: str) -> TokenEntry | None:
        """The entry of a presented token, or None; every entry is compared, in constant time."""
        presented = token_digest(token)
        found = None
        for entry in self._digests():
            if hmac.compare_digest(presented, entry.digest):
                found = entry
        return found

    def verify(self, token: str) -> bool:
        return self.identify(token) is not None


def bearer_token(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    """The token of an `authorization: Bearer <token>` entry, if there is one."""
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


WWW_AUTHENTICATE = (("www-authenticate", 'Bearer realm="glassbox"'),)
STATUS_DETAILS_KEY = "grpc-status-details-bin"


def _rejecting_handler(handler: grpc.RpcMethodHandler | None, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same cardinality that aborts UNAUTHENTICATED; no deserializer, so no parsing."""

    code = grpc.StatusCode.UNAUTHENTICATED
    details = status_proto(code, message, reason=Reason.UNAUTHENTICATED).SerializeToString()
    trailing = (*WWW_AUTHENTICATE, (STATUS_DETAILS_KEY, details))

    async def reject(_request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message, trailing)

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


def token_verifier(security: SecuritySettings) -> TokenVerifier | None:
    """The verifier of the configured tokens, or None when no token is configured."""
    if not security.tokens_enabled:
        return None
    return TokenVerifier([t.get_secret_value() for t in security.tokens], security.token_file)


def token_interceptor(
    security: SecuritySettings, verifier: TokenVerifier | None
) -> TokenAuthInterceptor | None:
    """The interceptor for these settings, or None when no token is configured."""
    if verifier is None:
        return None
    exempt = (HEALTH_PREFIX,) if security.reflection_requires_token else (HEALTH_PREFIX, *REFLECTION_PREFIXES)
    return TokenAuthInterceptor(verifier, exempt)


class PrincipalResolver:
    """Names the caller of a call (see the module docstring): the token's principal, else the verified
    client certificate's subject, else the anonymous principal."""

    def __init__(self, verifier: TokenVerifier | None, admin_principals: Iterable[str]) -> None:
        self._verifier = verifier
        self._admins = frozenset(admin_principals)

    @property
    def tokens_required(self) -> bool:
        return self._verifier is not None

    def principal(self, context: grpc.aio.ServicerContext) -> Principal:
        token = bearer_token(context.invocation_metadata())
        if self._verifier is not None and token is not None:
            entry = self._verifier.identify(token)
            if entry is not None:
                return Principal(entry.name, entry.admin or entry.name in self._admins)
        subject = certificate_subject(context.auth_context())
        if subject:
            return Principal(subject, subject in self._admins)
        return ANONYMOUS


def certificate_subject(auth_context: Mapping[str, Iterable[bytes]] | None) -> str:
    """The subject of the client certificate gRPC verified (`x509_subject`, else `CN=<common name>`);
    "" without one."""
    auth_context = auth_context or {}
    for key, prefix in (("x509_subject", ""), ("x509_common_name", "CN=")):
        values = auth_context.get(key)
        if values:
            return prefix + next(iter(values)).decode("utf-8", "replace")
    return ""
