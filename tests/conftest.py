"""Shared fixtures: a real gRPC server on an ephemeral loopback port, a real redis-server per test
module, and the shipped model repository. The helpers they use live in the `support` package."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from glassbox.config import load_settings
from support.paths import MODELS
from support.redis_server import RedisServer
from support.servers import RunningServer


@pytest.fixture(scope="module")
def start_server() -> Iterator[Callable[..., RunningServer]]:
    """Factory: start a server with settings overrides; every server started is stopped at module end.

    Robustness monitoring is off unless the test passes `robustness` settings: the shipped demo models
    ask for it, and a test's server should not run their background evaluations beside the work the
    test measures (the monitoring tests pass `robustness`)."""
    started: list[RunningServer] = []

    def start(**overrides: Any) -> RunningServer:
        overrides.setdefault("model_repository", MODELS)
        overrides.setdefault("robustness", {"monitoring": False})
        overrides.setdefault("metrics", {"port": 0})
        settings = load_settings(address="127.0.0.1:0", **overrides)
        server = RunningServer(settings)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.fixture(scope="module")
def server(start_server: Callable[..., RunningServer]) -> RunningServer:
    """One server on the shipped model repository with default settings, shared by a test module."""
    return start_server()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.kill()
