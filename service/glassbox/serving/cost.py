"""What a call will cost before it runs: per-row seconds learnt online from the units the scheduler runs.

Each model version has a forward cost and a gradient cost per row, an exponentially weighted mean of the
measured unit times divided by their rows × passes; each call label (e.g. `Attribute/lime`) has a mean
overhead: the time its own code took beside the units (building perturbations, fitting, rendering). A
call's estimate is `forward_rows × forward cost + backward_rows × gradient cost + overhead`. Until a
model's cost has been measured the estimate is unknown, and admission does not refuse on time.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from glassbox.backends.base import Model

SMOOTHING = 0.2
"""Weight of the newest measurement in the running means."""
GRADIENT_OVER_FORWARD = 3.0
"""A forward + backward row costs about this many forward rows (when only one of them was measured)."""


@dataclass(frozen=True)
class Estimate:
    """What a call asks of the device, before it runs."""

    forward_rows: int = 0
    """Network rows evaluated without gradients."""
    backward_rows: int = 0
    """Rows evaluated forward with graph and backward, one per target pass."""
    memory_bytes: int = 0
    """Bytes the call holds beside its units: decoded images, maps, renderings."""
    response_bytes: int = 0
    """Size of the response it will send."""


def model_key(model: Model) -> tuple[str, str]:
    return (model.name, model.version)


class CostModel:
    """Running means of per-row unit costs per (model, version, kind) and of call overheads per label."""

    def __init__(self) -> None:
        self._per_row: dict[tuple[tuple[str, str], str], float] = {}
        self._overhead: dict[str, float] = {}
        self._lock = threading.Lock()

    def observe_unit(self, model: Model, kind: str, weight: int, seconds: float) -> None:
        if weight <= 0:
            return
        self._update(self._per_row, (model_key(model), kind), seconds / weight)

    def observe_overhead(self, label: str, seconds: float) -> None:
        self._update(self._overhead, label, seconds)

    def _update(self, table: dict, key: object, value: float) -> None:
        with self._lock:
            old = table.get(key)
            table[key] = value if old is None else (1 - SMOOTHING) * old + SMOOTHING * value

    def per_row(self, model: Model, kind: str) -> float | None:
        """Seconds per row of `kind` ("forward" or "gradient"), or None while nothing was measured."""
        key = model_key(model)
        with self._lock:
            forward = self._per_row.get((key, "forward"))
            gradient = self._per_row.get((key, "gradient"))
        if kind == "forward":
            if forward is None and gradient is not None:
                return gradient / GRADIENT_OVER_FORWARD
            return forward
        if gradient is None and forward is not None:
            return forward * GRADIENT_OVER_FORWARD
        return gradient

    def seconds(self, model: Model | None, estimate: Estimate | None, label: str) -> float | None:
        """Estimated device seconds of a call, or None when its model's cost is not known yet."""
        if model is None or estimate is None:
            return None
        total = 0.0
        for kind, rows in (("forward", estimate.forward_rows), ("gradient", estimate.backward_rows)):
            if rows:
                cost = self.per_row(model, kind)
                if cost is None:
                    return None
                total += rows * cost
        with self._lock:
            return total + self._overhead.get(label, 0.0)
