"""Retries: UNAVAILABLE is retried with backoff inside the deadline; nothing else is."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from glassbox.config import load_settings
from glassbox.server.app import GlassboxServer
from glassbox_client import (
    NO_RETRIES,
    GlassboxClient,
    GlassboxError,
    InvalidArgumentError,
    RetryPolicy,
    UnavailableError,
)
from support.model_repository import write_model_version
from support.servers import free_port


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repository")
    write_model_version(root, "net", "1")
    return root


def _server(repository: Path, address: str) -> GlassboxServer:
    return GlassboxServer(load_settings(address=address, model_repository=repository, metrics={"port": 0}))


def test_a_server_that_comes_up_late_is_reached_by_retrying(repository: Path) -> None:
    port = free_port()
    server = _server(repository, f"127.0.0.1:{port}")
    starter = threading.Timer(0.8, server.start)
    retry = RetryPolicy(max_attempts=5, initial_backoff_s=0.3, max_backoff_s=2.0, backoff_multiplier=2.0)
    started = time.monotonic()
    starter.start()
    try:
        with GlassboxClient(f"127.0.0.1:{port}", timeout=15, retry=retry) as glassbox:
            assert [m.name for m in glassbox.models()] == ["net"]
        assert time.monotonic() - started >= 0.8
    finally:
        starter.join()
        server.stop(grace=0)


def test_without_retries_an_absent_server_fails_at_once_with_unavailable() -> None:
    with GlassboxClient(f"127.0.0.1:{free_port()}", timeout=15, retry=NO_RETRIES) as glassbox:
        started = time.monotonic()
        with pytest.raises(UnavailableError) as error:
            glassbox.models()
        assert time.monotonic() - started < 10
    assert error.value.code.name == "UNAVAILABLE"


def test_retries_stop_at_the_deadline() -> None:
    with GlassboxClient(f"127.0.0.1:{free_port()}", timeout=1.0) as glassbox:
        started = time.monotonic()
        with pytest.raises(GlassboxError) as error:
            glassbox.models()
        assert time.monotonic() - started < 5
    assert error.value.code.name in ("UNAVAILABLE", "DEADLINE_EXCEEDED")


def test_invalid_argument_is_not_retried(repository: Path) -> None:
    """A request the server rejects fails on the first answer: with five slow attempts it would not
    come back within the deadline."""
    server = _server(repository, "127.0.0.1:0")
    port = server.start()
    slow_retries = RetryPolicy(max_attempts=5, initial_backoff_s=3.0, max_backoff_s=3.0)
    try:
        with GlassboxClient(f"127.0.0.1:{port}", timeout=5, retry=slow_retries) as glassbox:
            with pytest.raises(InvalidArgumentError):
                glassbox.predict(b"garbage", model="net")
            assert glassbox.models()[0].name == "net"
    finally:
        server.stop(grace=0)


def test_calls_are_spread_over_every_address_of_the_target(tmp_path: Path) -> None:
    servers = []
    for name in ("alpha", "beta"):
        write_model_version(tmp_path / name, name, "1")
        servers.append(_server(tmp_path / name, "127.0.0.1:0"))
    try:
        ports = [server.start() for server in servers]
        target = "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in ports)
        with GlassboxClient(target, timeout=10) as glassbox:
            glassbox.wait_until_ready(timeout=10)
            answered = {glassbox.models()[0].name for _ in range(20)}
        assert answered == {"alpha", "beta"}
    finally:
        for server in servers:
            server.stop(grace=0)
