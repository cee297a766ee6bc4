"""Single-flight: concurrent identical computations in one process run once and share the result.

The first caller of a key (the leader) computes; callers arriving while it runs wait for its result
instead of computing again. A leader that fails shares its exception, except when it was cancelled:
its caller left, not the computation failed, so the waiters start over and one of them leads.
Waiters stay cancellable: each polls its own cancellation token while it waits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from glassbox.core.cancellation import NEVER_CANCELLED, CancellationToken
from glassbox.core.errors import Cancelled

T = TypeVar("T")

WAIT_POLL_SECONDS = 0.05
"""How often a waiter checks its own cancellation while the leader computes."""


@dataclass
class _Flight(Generic[T]):
    done: threading.Event = field(default_factory=threading.Event)
    waiters: int = 0
    result: T | None = None
    error: BaseException | None = None


class SingleFlight(Generic[T]):
    """Deduplicates concurrent calls by key; nothing is remembered once a call completes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight[T]] = {}

    def do(
        self, key: str, compute: Callable[[], T], *, cancel: CancellationToken = NEVER_CANCELLED
    ) -> tuple[T, bool]:
        """`(result, shared)`: `shared` is True when another caller's computation produced the result."""
        while True:
            with self._lock:
                flight = self._flights.get(key)
                leader = flight is None
                if flight is None:
                    flight = self._flights[key] = _Flight()
                else:
                    flight.waiters += 1
            if leader:
                return self._lead(key, flight, compute), False
            while not flight.done.wait(WAIT_POLL_SECONDS):
                cancel.check()
            if isinstance(flight.error, Cancelled):
                cancel.check()
                continue
            if flight.error is not None:
                raise flight.error
            return flight.result, True  # type: ignore[return-value]

    def _lead(self, key: str, flight: _Flight[T], compute: Callable[[], T]) -> T:
        try:
            flight.result = compute()
            return flight.result
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()

    def waiters(self, key: str) -> int:
        """How many callers joined the running computation of `key` to share its result."""
        with self._lock:
            flight = self._flights.get(key)
            return flight.waiters if flight is not None else 0

    def in_flight(self) -> int:
        """How many distinct keys are being computed now."""
        with self._lock:
            return len(self._flights)
