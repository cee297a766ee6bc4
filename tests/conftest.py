"""Shared fixtures: a real gRPC server on an ephemeral loopback port, a real redis-server per test
module, and the shipped model repository. The helpers they use live in the `support` package."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from glassbox.demo.datasets import register_generators
from support.redis_server import RedisServer
from support.servers import RunningServer, server_settings

register_generators()  # the demo's generated sets, as every composition root registers them


@pytest.fixture(scope="module")
def start_server() -> Iterator[Callable[..., RunningServer]]:
    """Factory: start a server with settings overrides (defaults: `support.servers.server_settings`);
    every server started is stopped at module end."""
    started: list[RunningServer] = []

    def start(**overrides: Any) -> RunningServer:
        server = RunningServer(server_settings(**overrides))
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.fixture(scope="module")
def server(start_server: Callable[..., RunningServer]) -> RunningServer:
    """One server on the shipped model repository with default settings, shared by a test module."""
    return start_server()


@pytest.fixture(scope="session")
def shipped_server() -> Iterator[RunningServer]:
    """One server on the shipped model repository with default settings for the whole session, for the
    areas whose modules only submit work and read what comes back (generative, inspection: their
    conftest makes it their `server`), started once rather than once per module."""
    server = RunningServer(server_settings())
    yield server
    server.close()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.kill()
