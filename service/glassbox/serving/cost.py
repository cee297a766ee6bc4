"""What a call will cost before it runs: unit costs learnt online from the units the scheduler runs.

Each model version has a forward, a gradient and a layer-replacement unit cost, `fixed + per_row × rows`
fitted by exponentially weighted least squares to the measured units (rows × passes for gradients); each
call label (e.g. `Attribute/lime`) has a mean overhead: the time its own code took beside the units
(segmenting, fitting, rendering). A call's estimate is, per kind, its rows × the per-row cost plus the
fixed cost of the units those rows make, plus the overhead. Until a model's cost has been measured the
estimate is unknown, and admission does not refuse on time.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

from glassbox.backends.base import Model

SMOOTHING = 0.1
"""Weight of the newest measurement in the running fits (about the last ten units count)."""
GRADIENT_OVER_FORWARD = 3.0
"""A forward + backward row costs about this many forward rows (when only one of them was measured)."""
UNIT_ROWS = {
    ("forward", "cpu"): 64,
    ("gradient", "cpu"): 10,
    ("forward", "cuda"): 64,
    ("gradient", "cuda"): 64,
    ("layer_replacement", "cpu"): 64,
    ("layer_replacement", "cuda"): 64,
}
"""Rows of a typical unit, to count the units (each with its fixed cost) that a call's rows make."""


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
    replaced_rows: int = 0
    """Rows evaluated from a layer onwards, with that layer's output replaced (Ablation-CAM's ablated
    passes): a fraction of a forward each, learnt as its own unit kind."""


def model_key(model: Model) -> tuple[str, str]:
    return (model.name, model.version)


@dataclass
class UnitCost:
    """seconds ≈ fixed + per_row × rows: an exponentially weighted least-squares line through the
    units measured. A 1-row Predict and a 64-row LIME batch cost very differently per row (the fixed
    cost of a pass dominates the first); one mean per row would overestimate the large batches."""

    fixed: float = 0.0
    per_row: float = 0.0
    _sums: list[float] = field(default_factory=lambda: [0.0] * 5)  # Σw, Σwx, Σwx², Σwy, Σwxy

    def add(self, rows: float, seconds: float) -> None:
        keep = 1.0 - SMOOTHING
        w, wx, wxx, wy, wxy = (value * keep for value in self._sums)
        self._sums = [w + 1, wx + rows, wxx + rows * rows, wy + seconds, wxy + rows * seconds]
        w, wx, wxx, wy, wxy = self._sums
        spread = w * wxx - wx * wx
        if spread > 1e-9 * w * wxx:
            slope = (w * wxy - wx * wy) / spread
            intercept = (wy - slope * wx) / w
            if slope >= 0 and intercept >= 0:
                self.fixed, self.per_row = intercept, slope
                return
        self.fixed, self.per_row = 0.0, (wy / wx if wx > 0 else 0.0)  # through the origin

    def seconds(self, rows: int, units: int) -> float:
        return units * self.fixed + rows * self.per_row

    def scaled(self, factor: float) -> UnitCost:
        return UnitCost(self.fixed * factor, self.per_row * factor)


class CostModel:
    """Unit costs per (model, version, kind), learnt from the units run, and call overheads per label."""

    def __init__(self) -> None:
        self._units: dict[tuple[tuple[str, str], str], UnitCost] = {}
        self._overhead: dict[str, float] = {}
        self._lock = threading.Lock()

    def observe_unit(self, model: Model, kind: str, weight: int, seconds: float) -> None:
        if weight <= 0:
            return
        with self._lock:
            self._units.setdefault((model_key(model), kind), UnitCost()).add(weight, seconds)

    def observe_overhead(self, label: str, seconds: float) -> None:
        with self._lock:
            old = self._overhead.get(label)
            self._overhead[label] = seconds if old is None else (1 - SMOOTHING) * old + SMOOTHING * seconds

    def unit_cost(self, model: Model, kind: str) -> UnitCost | None:
        """The fitted cost of a unit of `kind` ("forward", "gradient" or "layer_replacement"), or None
        while it cannot be told. Forward and gradient stand in for each other, scaled; a layer
        replacement costs anything from a sliver to a whole forward (it depends on the layer), so it is
        unknown until measured: a whole forward would over-price a late layer's passes hundredfold."""
        key = model_key(model)
        if kind == "layer_replacement":
            with self._lock:
                return self._units.get((key, kind))
        with self._lock:
            own = self._units.get((key, kind))
            other = self._units.get((key, "gradient" if kind == "forward" else "forward"))
        if own is not None:
            return own
        if other is None:
            return None
        return other.scaled(1 / GRADIENT_OVER_FORWARD if kind == "forward" else GRADIENT_OVER_FORWARD)

    def seconds(self, model: Model | None, estimate: Estimate | None, label: str) -> float | None:
        """Estimated device seconds of a call, or None when its model's cost is not known yet."""
        if model is None or estimate is None:
            return None
        device = "cuda" if model.device.type == "cuda" else "cpu"
        total = 0.0
        for kind, rows in (
            ("forward", estimate.forward_rows),
            ("gradient", estimate.backward_rows),
            ("layer_replacement", estimate.replaced_rows),
        ):
            if rows:
                cost = self.unit_cost(model, kind)
                if cost is None:
                    return None
                total += cost.seconds(rows, math.ceil(rows / UNIT_ROWS[(kind, device)]))
        with self._lock:
            return total + self._overhead.get(label, 0.0)
