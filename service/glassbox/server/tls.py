"""TLS and mutual TLS for the gRPC port, with certificates that rotate without a restart.

The files are re-read when their modification times change (checked on each new connection), so a
cert-manager or Vault renewal of a mounted Secret takes effect for new connections while existing
ones keep their session. A renewal that leaves a broken pair behind (half-written, key and
certificate not matching) is logged and the previous certificates stay in use.

Client certificates: with `security.tls_client_ca` (which needs `require_client_cert`) every client
must present a certificate that verifies against the CA, or the handshake fails. There is no optional
mode: grpcio either requires and verifies a client certificate or never asks for one, so "verify it
if one is presented" cannot be expressed, and a CA that is set but never used would look like a check
that is not made; the settings refuse that combination.
"""

from __future__ import annotations

import logging
import ssl
import threading
from pathlib import Path

import grpc

from glassbox.config import SecuritySettings

log = logging.getLogger(__name__)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {what} {path}: {exc.strerror}") from exc


def _check_pair(cert: Path, key: Path) -> None:
    """Fail with a clear message when the certificate or key is not PEM or they do not belong together."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(certfile=cert, keyfile=key)
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(
            f"security.tls_cert {cert} and security.tls_key {key} are not a usable pair: {exc}"
        ) from exc


class CertificateFiles:
    """The PEM files named by the security settings, loaded as a gRPC certificate configuration."""

    def __init__(self, security: SecuritySettings) -> None:
        if security.tls_cert is None or security.tls_key is None:
            raise ValueError("TLS needs security.tls_cert and security.tls_key")
        self._cert = security.tls_cert
        self._key = security.tls_key
        self._client_ca = security.tls_client_ca
        self._lock = threading.Lock()
        self._stamp = self._mtimes()
        self.configuration = self._load()

    def _paths(self) -> list[Path]:
        return [p for p in (self._cert, self._key, self._client_ca) if p is not None]

    def _mtimes(self) -> tuple[int, ...]:
        try:
            return tuple(p.stat().st_mtime_ns for p in self._paths())
        except OSError:
            return ()

    def _load(self) -> grpc.ServerCertificateConfiguration:
        _check_pair(self._cert, self._key)
        pair = (_read(self._key, "security.tls_key"), _read(self._cert, "security.tls_cert"))
        client_ca = _read(self._client_ca, "security.tls_client_ca") if self._client_ca else None
        return grpc.ssl_server_certificate_configuration([pair], root_certificates=client_ca)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's per-handshake hook: a new configuration when the files changed, else None (keep)."""
        with self._lock:
            stamp = self._mtimes()
            if stamp == self._stamp or not stamp:
                return None
            self._stamp = stamp
            try:
                self.configuration = self._load()
            except ValueError as exc:
                log.error("TLS certificates changed but cannot be used; keeping the previous ones: %s", exc)
                return None
            log.info("TLS certificates reloaded from %s", self._cert)
            return self.configuration


def server_credentials(security: SecuritySettings) -> grpc.ServerCredentials | None:
    """Credentials for the listening port, or None for plaintext when no certificate is configured."""
    if not security.tls_enabled:
        return None
    files = CertificateFiles(security)
    return grpc.dynamic_ssl_server_credentials(
        files.configuration,
        files.fetch,  # type: ignore[arg-type]  # fetch returns None for "unchanged", as grpc documents
        require_client_authentication=security.require_client_cert,
    )
