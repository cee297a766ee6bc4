"""The compute scheduler: one per device, it owns all model work.

Every call that touches a model (Predict, Attribute, inspection, a job's run) is submitted as a
callable. Admission runs at once, on the submitting thread: the call's cost is estimated (rows × the
model's per-row cost learnt online, plus its label's overhead), and the call is refused before any work
when it could not finish before its deadline, when its priority class already has more than
`max_queue_seconds` of work queued, or when the memory budget is full (ResourceExhausted with a retry
delay). An admitted call runs as a greenlet on the scheduler's compute thread, the one thread that calls
torch, so one OpenMP team serves every call. The call's code hands the scheduler *units* (a forward
batch, a forward + backward chunk: `serving.units`) and yields at every cancellation check; between two
such points it holds the device, so a unit's size is bounded (`max_unit_seconds` while others wait).

Order. After each unit the scheduler picks the call to serve next: the interactive class before the
background class (jobs; `background_min_share` of the device time keeps jobs moving under a burst of
interactive calls), and within a class the call with the least estimated remaining work (shortest
remaining processing time; calls of unknown cost rank by the work they already had). A short call thus
waits for at most about one unit of a long one. The exception keeps admission's promise: when, in
deadline order, the work due before an admitted call's deadline fills the time left, the call with the
earliest deadline runs first, so calls that arrived later cannot push an admitted call past its deadline.

Batching. When the chosen call's unit is mergeable, pending units of other calls with the same batch key
join it, best-ranked first, up to the model's `[batching] max_rows`; calls of the same kind on the same
model that have not started yet are first run up to their first unit, and a call's first unit waits up
to `max_queue_delay_ms` for more. Its later units do not wait: calls that arrive meanwhile join its next
unit anyway, and a wait at every unit would cost a call of many small units (Guided IG: one per path
step) the delay as many times.

A call whose token is cancelled (client left) or whose deadline passed leaves the queue, or is stopped at
its next yield point with Cancelled thrown into it, so it stops within one unit.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

import greenlet
import torch

from glassbox.backends.base import Model
from glassbox.config import SchedulerSettings
from glassbox.core.cancellation import NEVER_CANCELLED, YIELD_POINT, CancellationToken
from glassbox.core.errors import Cancelled
from glassbox.serving.admission import Admission
from glassbox.serving.calls import Done, Priority, ScheduledCall, SchedulerObserver
from glassbox.serving.cost import CostModel, Estimate
from glassbox.serving.execution import CURRENT
from glassbox.serving.units import Unit, batching_limits

log = logging.getLogger(__name__)

T = TypeVar("T")

SHARE_WINDOW_SECONDS = 2.0
"""Time constant of the running device-time shares of the two priority classes."""
URGENCY_MARGIN_UNITS = 4
"""Time kept in hand, in units, when deciding that admitted calls must run now to meet their deadlines:
the response still has to be rendered and sent after the last unit."""
TRIM_AFTER_BYTES = 64 * 1024 * 1024
"""Give freed heap back to the system once calls that held this much have finished and the queue is empty."""


class ComputeScheduler:
    """Admission, priority, fairness and dynamic batching over one device's compute thread."""

    def __init__(
        self,
        settings: SchedulerSettings,
        *,
        device: torch.device,
        observer: SchedulerObserver | None = None,
        torch_threads: int = 0,
    ) -> None:
        self.settings = settings
        self.device = device
        self.observer = observer
        self.cost = CostModel()
        self.admission = Admission(settings, observer)
        self._torch_threads = torch_threads
        self._lock = threading.Condition()
        self._calls: list[ScheduledCall] = []
        self._seq = 0
        self._closed = False
        self._shares = [0.0, 0.0]  # decayed device seconds: interactive, background
        self._shares_at = time.monotonic()
        self._held_since_trim = 0
        self.main_greenlet: greenlet.greenlet = None  # type: ignore[assignment]  # set on the thread
        self._thread = threading.Thread(target=self._loop, name=f"glassbox-compute-{device}", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- submitting

    def submit(
        self,
        work: Callable[[], T],
        *,
        model: Model | None,
        estimate: Estimate | None,
        priority: Priority = Priority.INTERACTIVE,
        deadline: float | None = None,
        token: CancellationToken | None = None,
        label: str = "",
    ) -> Future[T]:
        """Admit `work` (or raise ResourceExhausted at once) and return the future of its result.

        `deadline` is a `time.monotonic()` instant; `token` cancels the call (queued or running)."""
        label = label or "call"
        with self._lock:
            if self._closed:
                raise Cancelled("the server is shutting down")
            estimated = self.cost.seconds(model, estimate, label)
            memory = estimate.memory_bytes if estimate is not None else 0
            self.admission.admit(self._calls, priority, deadline, estimated, memory)
            self._seq += 1
            call = ScheduledCall(
                self,
                self._seq,
                work,
                model,
                priority,
                deadline,
                token or NEVER_CANCELLED,
                label,
                estimated,
                memory,
            )
            self.admission.reserved += memory
            self._calls.append(call)
            self._report()
            self._lock.notify_all()
        return call.future

    @contextlib.contextmanager
    def holding(self, nbytes: int) -> Iterator[None]:
        """Hold `nbytes` of the memory budget while the block runs (e.g. decoding a request's images,
        sized from their headers before anything is decoded); ResourceExhausted when it is not free."""
        with self._lock:
            self.admission.admit_memory(nbytes)
            self.admission.reserved += nbytes
        try:
            yield
        finally:
            with self._lock:
                self.admission.reserved -= nbytes
                self._held_since_trim += nbytes
                if not self._calls:
                    self._maybe_trim()

    def run(self, work: Callable[[], T], **kwargs: Any) -> T:
        """Submit and wait. Inside a call already running here, run `work` in place (no nested queueing)."""
        if CURRENT.get() is not None:
            return work()
        return self.submit(work, **kwargs).result()

    # ---------------------------------------------------------------- unit size

    def unit_rows_for(self, call: ScheduledCall, model: Model, kind: str, rows: int) -> int:
        """`rows` when the call is alone, else as many rows as fit in `max_unit_seconds`."""
        if len(self._calls) <= 1:
            return rows
        cost = self.cost.unit_cost(model, kind)
        if cost is None or cost.per_row <= 0:
            return rows
        return max(1, min(rows, int((self.settings.max_unit_seconds - cost.fixed) / cost.per_row)))

    # ---------------------------------------------------------------- the compute thread

    def _loop(self) -> None:
        self.main_greenlet = greenlet.getcurrent()
        if self._torch_threads:
            torch.set_num_threads(self._torch_threads)
        while True:
            with self._lock:
                while not self._calls and not self._closed:
                    self._maybe_trim()
                    self._lock.wait()
                if not self._calls:
                    return
                call = self._pick()
            try:
                self._step(call)
            except BaseException as exc:  # the scheduler itself must never die with a call
                log.exception("compute scheduler step failed for %s", call.label)
                self._finish(call, error=exc)

    def _pick(self) -> ScheduledCall:
        """The next call to serve (lock held): the class, then an admitted call about to miss its
        deadline (earliest deadline first), else the least remaining work."""
        interactive = [c for c in self._calls if c.priority is Priority.INTERACTIVE]
        background = [c for c in self._calls if c.priority is not Priority.INTERACTIVE]
        pool = interactive
        if background and (not interactive or self._background_starved()):
            pool = background
        urgent = self._urgent(pool)
        return urgent if urgent is not None else min(pool, key=ScheduledCall.rank)

    def _urgent(self, pool: list[ScheduledCall]) -> ScheduledCall | None:
        """The call with the earliest deadline when, in deadline order, the work due before some call's
        deadline (with the admission's safety factor and `URGENCY_MARGIN_UNITS` of margin) has grown to
        fill the time left: cheaper calls that arrived later must not push admitted calls past their
        deadlines. Calls that can no longer make it (less time left than half their remaining work) are
        left out: serving them would take the device from calls that still can."""
        now = time.monotonic()
        timed = sorted(
            (
                c
                for c in pool
                if c.deadline is not None
                and c.estimated_seconds is not None
                and c.deadline - now >= 0.5 * c.remaining()
            ),
            key=lambda c: (c.deadline, c.seq),
        )
        due, margin = 0.0, URGENCY_MARGIN_UNITS * self.settings.max_unit_seconds
        for call in timed:
            due += call.remaining() * self.settings.admission_safety
            if call.deadline - now <= due + margin:  # type: ignore[operator]
                return timed[0]
        return None

    def _background_starved(self) -> bool:
        interactive, background = self._decayed_shares()
        total = interactive + background
        return total > 0 and background / total < self.settings.background_min_share

    def _decayed_shares(self) -> list[float]:
        now = time.monotonic()
        factor = math.exp(-(now - self._shares_at) / SHARE_WINDOW_SECONDS)
        self._shares = [share * factor for share in self._shares]
        self._shares_at = now
        return self._shares

    def _charge(self, call: ScheduledCall, seconds: float) -> None:
        with self._lock:
            self._decayed_shares()[min(int(call.priority), 1)] += seconds

    def _step(self, call: ScheduledCall) -> None:
        reason = call.gone()
        if reason is not None:
            if not call.started:
                self._finish(call, error=Cancelled(f"{reason} before it started"))
                return
            call.pending = None
            call.resume = Cancelled(reason)
        if call.pending is not None:
            self._run_batch(call)
        else:
            self._resume(call)

    def _resume(self, call: ScheduledCall) -> None:
        """Run the call's own code until its next unit, yield point or end."""
        if call.greenlet is None:
            call.greenlet = greenlet.greenlet(lambda _: Done(call.work()), parent=self.main_greenlet)
            context = contextvars.Context()
            context.run(CURRENT.set, call)
            context.run(YIELD_POINT.set, call.yield_now)
            call.greenlet.gr_context = context
            self._observe_start(call)
        resume, call.resume = call.resume, None
        started = time.perf_counter()
        try:
            if isinstance(resume, BaseException):
                message = call.greenlet.throw(resume)
            else:
                message = call.greenlet.switch(resume)
        except BaseException as exc:
            self._account(call, time.perf_counter() - started)
            self._finish(call, error=exc)
            return
        finally:
            torch.set_grad_enabled(True)
        self._account(call, time.perf_counter() - started)
        if isinstance(message, Done):
            self._finish(call, value=message.value)
        elif isinstance(message, Unit):
            call.pending = message
            call.pending_since = time.monotonic()

    def _account(self, call: ScheduledCall, seconds: float) -> None:
        call.attained += seconds
        self._charge(call, seconds)

    def _run_batch(self, call: ScheduledCall) -> None:
        """Run the call's pending unit, merged with compatible pending units of other calls."""
        unit = call.pending
        assert unit is not None
        members = self._gather(call, unit)
        units = [m.pending for m in members]
        started = time.perf_counter()
        results = type(unit).execute_merged(units)  # type: ignore[arg-type]
        seconds = time.perf_counter() - started
        torch.set_grad_enabled(True)
        weight = sum(u.weight for u in units if u is not None)
        self.cost.observe_unit(unit.model, unit.kind, weight, seconds)
        if self.observer is not None:
            rows = sum(u.rows for u in units if u is not None)
            self.observer.observe_batch_rows(unit.model.name, unit.kind, len(members), rows)
        for member, member_unit, result in zip(members, units, results, strict=True):
            assert member_unit is not None
            share = seconds * member_unit.weight / max(weight, 1)
            member.unit_seconds += share
            self._account(member, share)
            member.pending = None
            member.units_run += 1
            member.resume = result

    def _gather(self, call: ScheduledCall, unit: Unit) -> list[ScheduledCall]:
        """The members of the unit's batch: the call first, then compatible calls, best-ranked first."""
        key = unit.batch_key()
        if key is None:
            return [call]
        max_rows, delay = batching_limits(unit.model)
        until = call.pending_since + (delay if call.units_run == 0 else 0.0)
        looked_at_fresh = False
        while True:
            members, rows = [call], unit.rows
            with self._lock:
                candidates = sorted(
                    (
                        c
                        for c in self._calls
                        if c is not call and c.pending is not None and c.pending.batch_key() == key
                    ),
                    key=lambda c: (c.priority, c.rank()),
                )
                fresh = [  # calls of the same kind: they reach a compatible unit at once
                    c
                    for c in self._calls
                    if not c.started
                    and c.model is unit.model
                    and c.label == call.label
                    and c.priority is Priority.INTERACTIVE
                ]
            for other in candidates:
                assert other.pending is not None
                if rows + other.pending.rows <= max_rows and other.gone() is None:
                    members.append(other)
                    rows += other.pending.rows
            if rows >= max_rows:
                return members
            if fresh and (not looked_at_fresh or time.monotonic() < until):
                # run new calls on this model up to their first unit: it may join this batch
                looked_at_fresh = True
                for other in fresh:
                    if other.gone() is None:
                        self._resume(other)
                continue
            remaining = until - time.monotonic()
            if remaining <= 0:
                return members
            with self._lock:
                self._lock.wait(timeout=remaining)

    def _observe_start(self, call: ScheduledCall) -> None:
        if self.observer is not None:
            self.observer.observe_queue_time(
                call.model.name if call.model is not None else "",
                call.priority.name.lower(),
                time.monotonic() - call.submitted,
            )

    def _finish(self, call: ScheduledCall, *, value: Any = None, error: BaseException | None = None) -> None:
        with self._lock:
            if call not in self._calls:
                return
            self._calls.remove(call)
            self.admission.reserved -= call.memory_bytes
            self._held_since_trim += call.memory_bytes
            self._report()
        if error is None and call.started:
            self.cost.observe_overhead(call.label, max(0.0, call.attained - call.unit_seconds))
            if self.observer is not None and call.estimated_seconds is not None:
                self.observer.observe_call_cost(
                    call.model.name if call.model is not None else "",
                    call.label,
                    call.estimated_seconds,
                    call.attained,
                )
        if call.future.set_running_or_notify_cancel():
            if error is None:
                call.future.set_result(value)
            else:
                call.future.set_exception(error)

    def _report(self) -> None:
        """Gauges of calls per class (lock held)."""
        if self.observer is None:
            return
        for priority in Priority:
            calls = [c for c in self._calls if c.priority is priority]
            self.observer.set_scheduler_calls(
                priority.name.lower(), len(calls), sum(1 for c in calls if c.pending is not None)
            )

    def _maybe_trim(self) -> None:
        """With the queue empty, hand memory that finished calls freed back to the system (lock held)."""
        if self._held_since_trim >= TRIM_AFTER_BYTES:
            self._held_since_trim = 0
            malloc_trim()

    # ---------------------------------------------------------------- lifecycle

    def close(self, timeout: float = 10.0) -> None:
        """Cancel every call (running ones stop at their next yield point) and stop the compute thread."""
        with self._lock:
            self._closed = True
            for call in self._calls:
                call.token = _CANCELLED
            self._lock.notify_all()
        self._thread.join(timeout=timeout)

    def load(self) -> dict[str, float]:
        """Queued estimated seconds per priority class (for health and debugging)."""
        with self._lock:
            return {
                p.name.lower(): sum(c.remaining() for c in self._calls if c.priority is p) for p in Priority
            }


_CANCELLED = CancellationToken()
_CANCELLED.cancel()


def malloc_trim() -> None:
    """glibc keeps freed heap in its arenas; after a large call this returns it to the system."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
