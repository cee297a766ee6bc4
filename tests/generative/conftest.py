"""The generative test modules share one server on the shipped models (the session's `shipped_server`):
each of them submits its own work and waits for it to finish, so none depends on another's leftovers."""

from __future__ import annotations

import pytest
from support.servers import RunningServer


@pytest.fixture(scope="module")
def server(shipped_server: RunningServer) -> RunningServer:
    return shipped_server
