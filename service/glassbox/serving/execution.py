"""What code running under the compute scheduler sees: hand a unit to the scheduler, yield the device,
ask how large the next unit may be. Outside the scheduler (a benchmark, a test, `glassbox worker`) the
same calls run the unit in place, so methods are written once for both.

The scheduler runs each call as a greenlet on its compute thread and sets `CURRENT` in the greenlet's own
context; `run_unit` switches back to the scheduler with the unit and returns when the scheduler switches
in again with the unit's result (possibly computed in one batch with other calls' units).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Protocol

import torch

from glassbox.backends.base import Model
from glassbox.serving.units import ForwardUnit, Unit


class Execution(Protocol):
    """The scheduler's side of one running call."""

    def run_unit(self, unit: Unit) -> Any: ...

    def unit_rows(self, model: Model, kind: str, rows: int) -> int: ...


CURRENT: ContextVar[Execution | None] = ContextVar("glassbox_execution", default=None)


def run_unit(unit: Unit) -> Any:
    """The unit's result: computed by the scheduler when this code runs under it, else here and now."""
    execution = CURRENT.get()
    return unit.execute() if execution is None else execution.run_unit(unit)


def unit_rows(model: Model, kind: str, rows: int) -> int:
    """How many of `rows` (what memory allows) the next unit of `kind` should take: fewer when other calls
    wait, so that none of them waits longer than about one unit (`scheduler.max_unit_seconds`)."""
    execution = CURRENT.get()
    return rows if execution is None else max(1, min(rows, execution.unit_rows(model, kind, rows)))


class _ScheduledCompute:
    """`core.call.Compute` through this module: forward passes are units of the compute scheduler when
    the call runs under it, and run in place otherwise."""

    def forward(self, model: Model, pixels: torch.Tensor, amplifying: bool) -> torch.Tensor:
        return run_unit(ForwardUnit(model, pixels, amplifying))

    def unit_rows(self, model: Model, kind: str, rows: int) -> int:
        return unit_rows(model, kind, rows)


SCHEDULED = _ScheduledCompute()
"""What every `CallContext` computes through: the compute scheduler, or in place outside it."""
