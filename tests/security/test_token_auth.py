"""Bearer tokens: one interceptor in front of everything, health exempt, reflection by setting."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from glassbox.config import load_settings
from glassbox.server.app import GlassboxServer
from glassbox.server.auth import TokenVerifier, bearer_token, parse_token_entry, read_token_file
from glassbox_client import GlassboxClient, InvalidArgumentError, UnauthenticatedError
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from support.model_repository import write_model_version
from support.servers import RunningServer

ENV_TOKEN = "env-token-0123456789abcdef"
FILE_TOKEN = "file-token-0123456789abcdef"
HASHED_TOKEN = "hashed-token-0123456789abcdef"


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repository")
    write_model_version(root, "net", "1")
    return root


@pytest.fixture(scope="module")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secrets") / "tokens"
    digest = hashlib.sha256(HASHED_TOKEN.encode()).hexdigest()
    path.write_text(f"# glassbox tokens\n{FILE_TOKEN}  # ci\n\nsha256:{digest}\n")
    return path


@pytest.fixture(scope="module")
def running(start_server: Callable[..., RunningServer], repository: Path, token_file: Path) -> RunningServer:
    security = {"tokens": [ENV_TOKEN], "token_file": token_file}
    return start_server(model_repository=repository, security=security)


def _client(running: RunningServer, token: str | None) -> GlassboxClient:
    return GlassboxClient(running.address, token=token, timeout=10)


@pytest.mark.parametrize("token", [ENV_TOKEN, FILE_TOKEN, HASHED_TOKEN])
def test_each_configured_token_is_accepted(running: RunningServer, token: str) -> None:
    with _client(running, token) as client:
        assert client.models()[0].name == "net"


def test_a_missing_token_is_refused_with_a_hint(
    running: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GLASSBOX_TOKEN", raising=False)
    monkeypatch.delenv("GLASSBOX_TOKEN_FILE", raising=False)
    with _client(running, None) as client, pytest.raises(UnauthenticatedError) as error:
        client.models()
    assert "authorization: Bearer <token>" in error.value.message


def test_a_wrong_token_is_refused_before_the_request_is_read(running: RunningServer) -> None:
    with _client(running, "wrong-token-0123456789abcdef") as client:
        with pytest.raises(UnauthenticatedError, match="invalid bearer token"):
            client.models()
        with pytest.raises(UnauthenticatedError):
            client.predict(b"not an image at all", model="net")
    with _client(running, FILE_TOKEN) as client:
        with pytest.raises(InvalidArgumentError):
            client.predict(b"not an image at all", model="net")
        assert client.models()[0].name == "net"


def test_the_refusal_says_how_to_authenticate(running: RunningServer) -> None:
    health = health_pb2_grpc.HealthStub(running.channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as error:
        running.channel.unary_unary("/glassbox.v1.ModelService/ListModels")(b"", timeout=5)
    assert error.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert ("www-authenticate", 'Bearer realm="glassbox"') in error.value.trailing_metadata()


def _reflection_services(channel: grpc.Channel, metadata: tuple = ()) -> list[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    responses = stub.ServerReflectionInfo(iter([request]), timeout=5, metadata=metadata)
    return [s.name for r in responses for s in r.list_services_response.service]


def test_reflection_needs_a_token_unless_exempted(
    running: RunningServer, start_server: Callable[..., RunningServer], repository: Path
) -> None:
    with pytest.raises(grpc.RpcError) as error:
        _reflection_services(running.channel)
    assert error.value.code() is grpc.StatusCode.UNAUTHENTICATED
    names = _reflection_services(running.channel, (("authorization", f"Bearer {ENV_TOKEN}"),))
    assert "glassbox.v1.ModelService" in names
    open_reflection = start_server(
        model_repository=repository, security={"tokens": [ENV_TOKEN], "reflection_requires_token": False}
    )
    assert "glassbox.v1.ModelService" in _reflection_services(open_reflection.channel)


def test_a_rotated_token_file_takes_effect_without_a_restart(repository: Path, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    old, new = "old-token-0123456789abcdef", "new-token-0123456789abcdef"
    tokens.write_text(old + "\n")
    settings = load_settings(
        address="127.0.0.1:0",
        model_repository=repository,
        metrics={"port": 0},
        security={"token_file": tokens},
    )
    server = GlassboxServer(settings)
    address = f"127.0.0.1:{server.start()}"
    try:
        with GlassboxClient(address, token=old, timeout=10) as client:
            assert client.models()
        tokens.write_text(new + "\n")
        later = time.time_ns() + 5_000_000_000
        os.utime(tokens, ns=(later, later))
        time.sleep(1.1)
        with GlassboxClient(address, token=new, timeout=10) as client:
            assert client.models()
        with GlassboxClient(address, token=old, timeout=10) as client, pytest.raises(UnauthenticatedError):
            client.models()
    finally:
        server.stop(grace=0)


def test_token_entries_are_validated() -> None:
    assert parse_token_entry("x" * 16, source="t") == hashlib.sha256(b"x" * 16).digest()
    assert parse_token_entry("sha256:" + "ab" * 32, source="t") == bytes.fromhex("ab" * 32)
    with pytest.raises(ValueError, match="at least 16 characters"):
        parse_token_entry("short", source="t")
    with pytest.raises(ValueError, match="64 hex digits"):
        parse_token_entry("sha256:abc", source="t")


def test_a_bad_token_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("# comment\n" + "y" * 20 + "\nshort\n")
    with pytest.raises(ValueError, match=r"tokens:3: a token needs at least 16"):
        read_token_file(path)
    with pytest.raises(ValueError, match="no token is configured"):
        TokenVerifier([], None)
    empty = tmp_path / "empty"
    empty.write_text("# nothing yet\n")
    with pytest.raises(ValueError, match="no token is configured"):
        TokenVerifier([], empty)


def test_bearer_token_parsing() -> None:
    assert bearer_token([("authorization", "Bearer abc")]) == "abc"
    assert bearer_token([("authorization", "bearer  abc ")]) == "abc"
    assert bearer_token([("authorization", "Basic abc")]) is None
    assert bearer_token([("x-other", "Bearer abc")]) is None
    assert bearer_token(None) is None


def test_verification_is_thread_safe_under_concurrent_calls(token_file: Path) -> None:
    verifier = TokenVerifier([ENV_TOKEN], token_file)
    results: list[bool] = []

    def check() -> None:
        results.extend(verifier.verify(t) for t in (ENV_TOKEN, FILE_TOKEN, HASHED_TOKEN, "nope" * 5) * 50)

    threads = [threading.Thread(target=check) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 4 * 50 * 3 and results.count(False) == 4 * 50


def test_the_client_reads_the_token_from_the_environment(
    running: RunningServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GLASSBOX_TOKEN", FILE_TOKEN)
    with GlassboxClient(running.address, timeout=10) as client:
        assert client.models()[0].name == "net"
    monkeypatch.delenv("GLASSBOX_TOKEN")
    secret = tmp_path / "token"
    secret.write_text(HASHED_TOKEN + "\n")
    monkeypatch.setenv("GLASSBOX_TOKEN_FILE", str(secret))
    with GlassboxClient(running.address, timeout=10) as client:
        assert client.models()[0].name == "net"
