"""A Glassbox server started in the test's own process, and free loopback ports."""

from __future__ import annotations

import socket
from typing import Any

import grpc
from glassbox.config import Settings, load_settings
from glassbox.server.app import GlassboxServer

from support.paths import MODELS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_settings(**overrides: Any) -> Settings:
    """Settings for a test's server on an ephemeral loopback port: the shipped model repository and an
    ephemeral metrics port unless `overrides` say otherwise.

    Robustness monitoring is off unless the test passes `robustness` settings: the shipped demo models
    ask for it, and a test's server should not run their background evaluations beside the work the
    test measures (the monitoring tests pass `robustness`)."""
    overrides.setdefault("model_repository", MODELS)
    overrides.setdefault("robustness", {"monitoring": False})
    overrides.setdefault("metrics", {"port": 0})
    return load_settings(address="127.0.0.1:0", **overrides)


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
