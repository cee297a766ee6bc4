"""Single-flight: concurrent identical computations run once; failures, cancellation and keys."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from glassbox.cache.singleflight import SingleFlight
from glassbox.core.cancellation import CancellationToken
from glassbox.core.errors import Cancelled, InvalidArgument


class GatedComputation:
    """A computation that blocks until released and counts how often it ran."""

    def __init__(self, result: Any = "result") -> None:
        self.calls = 0
        self.started = threading.Event()
        self.release = threading.Event()
        self.result = result
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        with self._lock:
            self.calls += 1
        self.started.set()
        assert self.release.wait(10)
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


def wait_for_waiters(flights: SingleFlight[Any], key: str, count: int) -> None:
    """Block until `count` callers are waiting on `key` (they register before blocking)."""
    deadline = time.monotonic() + 5
    while flights.waiters(key) < count:
        assert time.monotonic() < deadline, f"{count} waiters never arrived"
        time.sleep(0.005)


def test_concurrent_identical_calls_compute_once_and_share_the_result() -> None:
    flights: SingleFlight[str] = SingleFlight()
    compute = GatedComputation()
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(flights.do, "k", compute) for _ in range(8)]
        assert compute.started.wait(5)
        wait_for_waiters(flights, "k", 7)
        compute.release.set()
        results = [f.result(timeout=10) for f in futures]
    assert compute.calls == 1
    assert sorted(shared for _, shared in results) == [False] + [True] * 7
    assert {value for value, _ in results} == {"result"}
    assert flights.in_flight() == 0


def test_different_keys_compute_independently() -> None:
    flights: SingleFlight[str] = SingleFlight()
    first, second = GatedComputation("one"), GatedComputation("two")
    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(flights.do, "a", first)
        b = pool.submit(flights.do, "b", second)
        assert first.started.wait(5) and second.started.wait(5)  # both run at once
        first.release.set()
        second.release.set()
        assert a.result(timeout=5) == ("one", False)
        assert b.result(timeout=5) == ("two", False)


def test_nothing_is_remembered_after_a_call_completes() -> None:
    flights: SingleFlight[int] = SingleFlight()
    counter = iter(range(10))
    assert flights.do("k", lambda: next(counter)) == (0, False)
    assert flights.do("k", lambda: next(counter)) == (1, False)


def test_a_failure_is_shared_with_the_waiters() -> None:
    flights: SingleFlight[str] = SingleFlight()
    compute = GatedComputation(InvalidArgument("bad", field="smoothgrad.samples"))
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(flights.do, "k", compute) for _ in range(4)]
        assert compute.started.wait(5)
        wait_for_waiters(flights, "k", 3)
        compute.release.set()
        for future in futures:
            with pytest.raises(InvalidArgument, match=r"smoothgrad\.samples"):
                future.result(timeout=5)
    assert compute.calls == 1


def test_a_cancelled_leader_hands_over_to_a_waiter() -> None:
    flights: SingleFlight[str] = SingleFlight()
    leader_work = GatedComputation(Cancelled("client left"))
    with ThreadPoolExecutor(2) as pool:
        leader = pool.submit(flights.do, "k", leader_work)
        assert leader_work.started.wait(5)
        waiter = pool.submit(flights.do, "k", lambda: "recomputed")
        wait_for_waiters(flights, "k", 1)
        leader_work.release.set()
        with pytest.raises(Cancelled):
            leader.result(timeout=5)
        assert waiter.result(timeout=5) == ("recomputed", False)


def test_a_waiter_whose_client_leaves_stops_waiting_without_stopping_the_leader() -> None:
    flights: SingleFlight[str] = SingleFlight()
    compute = GatedComputation()
    token = CancellationToken()
    with ThreadPoolExecutor(2) as pool:
        leader = pool.submit(flights.do, "k", compute)
        assert compute.started.wait(5)
        waiter = pool.submit(flights.do, "k", lambda: "never", cancel=token)
        wait_for_waiters(flights, "k", 1)
        token.cancel()
        with pytest.raises(Cancelled):
            waiter.result(timeout=5)
        compute.release.set()
        assert leader.result(timeout=5) == ("result", False)
    assert compute.calls == 1
