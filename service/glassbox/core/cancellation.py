"""Cooperative cancellation: long computations call `token.check()` between batches or steps, so a
client deadline, a cancelled call or a cancelled job stops the work within one batch."""

from __future__ import annotations

import threading
from collections.abc import Callable

from glassbox.core.errors import Cancelled


class CancellationToken:
    """Cancelled when `cancel()` was called or when the optional `is_alive` callback says the caller left."""

    def __init__(self, is_alive: Callable[[], bool] | None = None) -> None:
        self._event = threading.Event()
        self._is_alive = is_alive

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        if self._event.is_set():
            return True
        if self._is_alive is not None and not self._is_alive():
            self._event.set()
            return True
        return False

    def check(self) -> None:
        """Raise Cancelled if the work should stop."""
        if self.cancelled:
            raise Cancelled("the call was cancelled or its deadline passed")


NEVER_CANCELLED = CancellationToken()
