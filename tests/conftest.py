"""Shared fixtures: a real gRPC server on an ephemeral loopback port, a real redis-server per test
module, and the shipped model repository."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from glassbox.config import Settings, load_settings
from glassbox.server.app import GlassboxServer

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RunningServer:
    """A GlassboxServer started in this process, with a channel to it."""

    def __init__(self, settings: Settings) -> None:
        self.server = GlassboxServer(settings)
        self.port = self.server.start()
        self.address = f"127.0.0.1:{self.port}"
        self.channel = grpc.insecure_channel(self.address)
        grpc.channel_ready_future(self.channel).result(timeout=30)

    def close(self) -> None:
        self.channel.close()
        self.server.stop(grace=0)


@pytest.fixture(scope="module")
def start_server() -> Iterator[Callable[..., RunningServer]]:
    """Factory: start a server with settings overrides; every server started is stopped at module end."""
    started: list[RunningServer] = []

    def start(**overrides: Any) -> RunningServer:
        overrides.setdefault("model_repository", MODELS)
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


class RedisServer:
    """A redis-server of our own on a free loopback port; can be killed and restarted."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (scripts/ensure-redis.sh installs it)")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.kill()
