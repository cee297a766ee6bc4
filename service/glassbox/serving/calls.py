"""A call as the compute scheduler sees it: priority class, estimate, progress, and its greenlet.

The call's own code runs in the greenlet; `run_unit` and `yield_now` (the Execution protocol of
glassbox.serving.execution) switch back to the scheduler's main greenlet on the compute thread, which
switches in again with the unit's result. Torch's grad mode is thread state, shared by every greenlet of
the thread, so each switch keeps the call's own mode.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Protocol

import greenlet
import torch

from glassbox.backends.base import Model
from glassbox.core.cancellation import CancellationToken
from glassbox.serving.units import Unit

if TYPE_CHECKING:
    from glassbox.serving.scheduler import ComputeScheduler

UNKNOWN_CALL_SECONDS = 0.05
"""Remaining work assumed for ranking a call whose cost is not known yet (its model was never measured)."""
OVERRUN_FLOOR = 0.25
"""The least remaining work a call is taken to have, as a fraction of its estimate."""


class Priority(IntEnum):
    """Priority classes, served strictly in this order (but for the background's minimum share)."""

    INTERACTIVE = 0
    BACKGROUND = 1


class SchedulerObserver(Protocol):
    """What the scheduler reports (implemented by glassbox.metrics.Metrics)."""

    def observe_queue_time(self, model: str, priority: str, seconds: float) -> None: ...

    def observe_batch_rows(self, model: str, kind: str, calls: int, rows: int) -> None: ...

    def set_scheduler_calls(self, priority: str, running: int, waiting_units: int) -> None: ...

    def observe_call_cost(self, model: str, label: str, estimated: float, measured: float) -> None: ...

    def count_admission_refused(self, reason: str) -> None: ...


class Done:
    """What a call's greenlet returns when its work finished."""

    def __init__(self, value: Any) -> None:
        self.value = value


YIELD = object()


@dataclass(eq=False)
class ScheduledCall:
    scheduler: ComputeScheduler
    seq: int
    work: Callable[[], Any]
    model: Model | None
    priority: Priority
    deadline: float | None
    token: CancellationToken
    label: str
    estimated_seconds: float | None
    memory_bytes: int
    future: Future = field(default_factory=Future)
    submitted: float = field(default_factory=time.monotonic)
    greenlet: greenlet.greenlet | None = None
    attained: float = 0.0
    unit_seconds: float = 0.0
    pending: Unit | None = None
    pending_since: float = 0.0
    units_run: int = 0
    resume: Any = None

    @property
    def started(self) -> bool:
        return self.greenlet is not None

    def remaining(self) -> float:
        """Estimated work left. A call past its estimate keeps a quarter of it: its estimate was short,
        and it must not jump ahead of every cheap call as if it were about to finish."""
        if self.estimated_seconds is None:
            return UNKNOWN_CALL_SECONDS
        return max(self.estimated_seconds - self.attained, OVERRUN_FLOOR * self.estimated_seconds)

    def rank(self) -> tuple[float, int]:
        """Order within a priority class: least remaining work first; unknown costs by work had so far."""
        if self.estimated_seconds is None:
            return (UNKNOWN_CALL_SECONDS + self.attained, self.seq)
        return (self.remaining(), self.seq)

    def gone(self) -> str | None:
        """Why the call should stop now, if it should."""
        if self.token.cancelled:
            return "the call was cancelled"
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return "the call's deadline passed"
        return None

    # The Execution protocol (glassbox.serving.execution), called inside the call's greenlet.

    def run_unit(self, unit: Unit) -> Any:
        if torch.is_inference_mode_enabled():  # a switch would carry inference mode to other calls
            return unit.execute()
        return self._switch_out(unit)

    def yield_now(self) -> None:
        if not torch.is_inference_mode_enabled():
            self._switch_out(YIELD)

    def unit_rows(self, model: Model, kind: str, rows: int) -> int:
        return self.scheduler.unit_rows_for(self, model, kind, rows)

    def _switch_out(self, request: Any) -> Any:
        grad_mode = torch.is_grad_enabled()
        try:
            return self.scheduler.main_greenlet.switch(request)
        finally:
            torch.set_grad_enabled(grad_mode)
