"""A Glassbox server started in the test's own process, and free loopback ports."""

from __future__ import annotations

import socket

import grpc
from glassbox.config import Settings
from glassbox.server.app import GlassboxServer


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
