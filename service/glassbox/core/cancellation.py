"""Cooperative cancellation: long computations call `token.check()` between batches or steps, so a
client deadline, a cancelled call or a cancelled job stops the work within one batch.

Each check is also a *yield point*: code that runs under the compute scheduler (glassbox.serving) has a
yield hook in its context, and `check()` hands the device to other calls there. So every existing
"between batches" point is a unit boundary, and a call that checks cancellation never holds the device
for longer than one batch or step.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar

from glassbox.core.errors import Cancelled

YIELD_POINT: ContextVar[Callable[[], None] | None] = ContextVar("glassbox_yield_point", default=None)
"""Set by the compute scheduler in the context of each call it runs: hands the device to other calls."""


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

    def raise_if_cancelled(self) -> None:
        """Raise Cancelled if the work should stop, without yielding (right before a scheduler unit,
        which is a switch point itself)."""
        if self.cancelled:
            raise Cancelled("the call was cancelled or its deadline passed")

    def check(self) -> None:
        """Yield to other calls when running under the scheduler, then raise Cancelled if the work should
        stop (it may have been cancelled while others ran)."""
        yield_point = YIELD_POINT.get()
        if yield_point is not None:
            yield_point()
        self.raise_if_cancelled()


NEVER_CANCELLED = CancellationToken()
