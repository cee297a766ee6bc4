"""TLS and mutual TLS on the gRPC port, with certificates made at test time."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import ssl
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from glassbox.config import SecuritySettings, load_settings
from glassbox.server.app import GlassboxServer
from glassbox_client import NO_RETRIES, GlassboxClient, UnavailableError
from pydantic import ValidationError
from support.model_repository import write_model_version


@dataclass
class Issued:
    key_pem: bytes
    cert_pem: bytes
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(common_name: str, issuer: Issued | None, *, ca: bool = False, server: bool = False) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer.cert.subject if issuer else _name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if ca:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        builder = builder.add_extension(usage, critical=True)
    cert = builder.sign(issuer.key if issuer else key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Issued(key_pem, cert.public_bytes(serialization.Encoding.PEM), key, cert)


@dataclass
class Pki:
    folder: Path
    ca: Issued
    other_ca: Issued

    def write(self, name: str, issued: Issued) -> tuple[Path, Path]:
        cert, key = self.folder / f"{name}.crt", self.folder / f"{name}.key"
        cert.write_bytes(issued.cert_pem)
        key.write_bytes(issued.key_pem)
        return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca, other_ca = _issue("glassbox test CA", None, ca=True), _issue("someone else's CA", None, ca=True)
    pki = Pki(folder, ca, other_ca)
    pki.write("ca", ca)
    pki.write("other-ca", other_ca)
    pki.write("server", _issue("glassbox server", ca, server=True))
    pki.write("client", _issue("client", ca))
    pki.write("stranger", _issue("stranger", other_ca))
    return pki


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repository")
    write_model_version(root, "net", "1")
    return root


@pytest.fixture
def serve(repository: Path) -> Iterator:
    servers: list[GlassboxServer] = []

    def start(**security: object) -> str:
        settings = load_settings(
            address="127.0.0.1:0", model_repository=repository, metrics={"port": 0}, security=security
        )
        server = GlassboxServer(settings)
        servers.append(server)
        return f"127.0.0.1:{server.start()}"

    yield start
    for server in servers:
        server.stop(grace=0)


def _server_pair_copy(pki: Pki, folder: Path) -> tuple[Path, Path]:
    """A copy of the server's certificate and key that a test may replace (rotation)."""
    cert, key = folder / "tls.crt", folder / "tls.key"
    cert.write_bytes((pki.folder / "server.crt").read_bytes())
    key.write_bytes((pki.folder / "server.key").read_bytes())
    return cert, key


def _renew_from_the_other_ca(pki: Pki, cert: Path, key: Path) -> None:
    """Replace the pair with one issued by the other CA, dated later (as a renewal would be)."""
    renewed = _issue("glassbox server, renewed", pki.other_ca, server=True)
    cert.write_bytes(renewed.cert_pem)
    key.write_bytes(renewed.key_pem)
    later = time.time_ns() + 5_000_000_000
    for path in (cert, key):
        os.utime(path, ns=(later, later))


def _client(address: str, pki: Pki, **kwargs: object) -> GlassboxClient:
    return GlassboxClient(address, timeout=10, retry=NO_RETRIES, **kwargs)


def test_tls_serves_clients_that_trust_its_ca_and_no_one_else(serve, pki: Pki) -> None:
    f = pki.folder
    address = serve(tls_cert=f / "server.crt", tls_key=f / "server.key")
    with _client(address, pki, ca_cert=f / "ca.crt") as trusting:
        assert trusting.models()[0].name == "net"
    with _client(address, pki) as plaintext, pytest.raises(UnavailableError):
        plaintext.models()
    with _client(address, pki, ca_cert=f / "other-ca.crt") as wrong_ca, pytest.raises(UnavailableError):
        wrong_ca.models()
    with _client(address, pki, ca_cert=f / "ca.crt") as trusting:
        assert trusting.health() == "SERVING"


def test_mutual_tls_requires_a_client_certificate_from_the_client_ca(serve, pki: Pki) -> None:
    f = pki.folder
    tls = {"tls_cert": f / "server.crt", "tls_key": f / "server.key", "tls_client_ca": f / "ca.crt"}
    address = serve(**tls, require_client_cert=True)
    with _client(address, pki, ca_cert=f / "ca.crt") as anonymous, pytest.raises(UnavailableError):
        anonymous.models()
    stranger = {"client_cert": f / "stranger.crt", "client_key": f / "stranger.key"}
    with _client(address, pki, ca_cert=f / "ca.crt", **stranger) as impostor, pytest.raises(UnavailableError):
        impostor.models()
    member = {"client_cert": f / "client.crt", "client_key": f / "client.key"}
    with _client(address, pki, ca_cert=f / "ca.crt", **member) as known:
        assert known.models()[0].name == "net"


def test_a_client_ca_without_required_certificates_is_refused_at_start(repository: Path, pki: Pki) -> None:
    """grpcio cannot ask for an optional client certificate: with the CA set but certificates not
    required, a certificate from an unrelated CA would pass unseen. The settings refuse that."""
    f = pki.folder
    with pytest.raises(
        ValidationError, match=r"tls_client_ca is set but security\.require_client_cert is not"
    ):
        load_settings(
            address="127.0.0.1:0",
            model_repository=repository,
            security={
                "tls_cert": f / "server.crt",
                "tls_key": f / "server.key",
                "tls_client_ca": f / "ca.crt",
            },
        )


def test_without_a_client_ca_client_certificates_are_not_asked_for(serve, pki: Pki) -> None:
    """Plain TLS: the server never requests a certificate, so a presented one carries no weight either
    way (the call is anonymous, as without one)."""
    f = pki.folder
    address = serve(tls_cert=f / "server.crt", tls_key=f / "server.key")
    stranger = {"client_cert": f / "stranger.crt", "client_key": f / "stranger.key"}
    with _client(address, pki, ca_cert=f / "ca.crt", **stranger) as client:
        assert client.models()[0].name == "net"


def test_rotated_certificates_take_effect_without_a_restart(serve, pki: Pki, tmp_path: Path) -> None:
    cert, key = _server_pair_copy(pki, tmp_path)
    address = serve(tls_cert=cert, tls_key=key)
    with _client(address, pki, ca_cert=pki.folder / "ca.crt") as before:
        assert before.models()[0].name == "net"

    _renew_from_the_other_ca(pki, cert, key)
    with _client(address, pki, ca_cert=pki.folder / "other-ca.crt") as after:
        assert after.models()[0].name == "net"
    with _client(address, pki, ca_cert=pki.folder / "ca.crt") as stale, pytest.raises(UnavailableError):
        stale.models()


def test_a_broken_renewal_keeps_the_previous_certificate(serve, pki: Pki, tmp_path: Path) -> None:
    cert, key = _server_pair_copy(pki, tmp_path)
    address = serve(tls_cert=cert, tls_key=key)
    key.write_bytes(_issue("unrelated", None).key_pem)
    later = time.time_ns() + 5_000_000_000
    os.utime(key, ns=(later, later))
    with _client(address, pki, ca_cert=pki.folder / "ca.crt") as client:
        assert client.models()[0].name == "net"


def _https(port: int, ca: Path, client: tuple[Path, Path] | None = None) -> int:
    context = ssl.create_default_context(cafile=str(ca))
    if client is not None:
        context.load_cert_chain(certfile=client[0], keyfile=client[1])
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/v1/models", context=context, timeout=10) as reply:
        assert json.loads(reply.read())["models"][0]["name"] == "net"
        return reply.status


def test_the_http_gateway_serves_https_with_the_same_certificates_and_client_ca(
    repository: Path, pki: Pki, tmp_path: Path
) -> None:
    f = pki.folder
    cert, key = _server_pair_copy(pki, tmp_path)
    security = {"tls_cert": cert, "tls_key": key, "tls_client_ca": f / "ca.crt", "require_client_cert": True}
    settings = load_settings(
        address="127.0.0.1:0",
        model_repository=repository,
        metrics={"port": 0},
        security=security,
        http={"enabled": True, "address": "127.0.0.1:0"},
    )
    server = GlassboxServer(settings)
    server.start()
    port = server.http_port
    try:
        assert _https(port, f / "ca.crt", (f / "client.crt", f / "client.key")) == 200
        # refused handshakes surface as URLError, ssl.SSLError or a reset connection: all OSErrors
        with pytest.raises(OSError):
            _https(port, f / "ca.crt")  # no client certificate
        with pytest.raises(OSError):
            _https(port, f / "ca.crt", (f / "stranger.crt", f / "stranger.key"))
        with pytest.raises(OSError):
            _https(port, f / "other-ca.crt", (f / "client.crt", f / "client.key"))  # not our server
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=10)  # plaintext

        _renew_from_the_other_ca(pki, cert, key)
        assert _https(port, f / "other-ca.crt", (f / "client.crt", f / "client.key")) == 200
    finally:
        server.stop(grace=0)


def test_a_key_that_does_not_match_the_certificate_stops_the_server_at_start(
    repository: Path, pki: Pki
) -> None:
    f = pki.folder
    security = {"tls_cert": f / "server.crt", "tls_key": f / "client.key"}
    settings = load_settings(address="127.0.0.1:0", model_repository=repository, security=security)
    with pytest.raises(ValueError, match=r"security\.tls_cert .* not a usable pair"):
        GlassboxServer(settings)


def test_incomplete_tls_settings_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"tls_cert and security\.tls_key must be set together"):
        SecuritySettings(tls_cert=Path("a.crt"))
    with pytest.raises(ValidationError, match=r"require_client_cert needs security\.tls_client_ca"):
        SecuritySettings(tls_cert=Path("a.crt"), tls_key=Path("a.key"), require_client_cert=True)
    with pytest.raises(ValidationError, match="tls_client_ca needs"):
        SecuritySettings(tls_client_ca=Path("ca.crt"))
