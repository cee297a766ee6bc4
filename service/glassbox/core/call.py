"""Per-call services for the code that computes one call (an attribution method, an attack, a metric):
pass counting, cancellation, the memory budget, and the way its work reaches the device.

How a forward pass or a unit size is decided belongs to the compute scheduler (glassbox.serving), which
sits above this package; it comes in as a `Compute` (`serving.execution.SCHEDULED`), so the call
context itself depends on nothing but the standard library, torch and the settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import torch

from glassbox.config import AttributionSettings
from glassbox.core.cancellation import CancellationToken

MAX_ROWS_PER_BATCH = 64
"""Beyond this many images per batch a CPU gains nothing and a GPU little; it also bounds latency."""


class DeviceModel(Protocol):
    """What the call context reads of the model it serves: where it computes."""

    @property
    def device(self) -> torch.device: ...


ModelT = TypeVar("ModelT", bound=DeviceModel)


class Compute(Protocol):
    """How a call's forward passes run and how large its next unit may be (the compute scheduler)."""

    def forward(self, model: Any, pixels: torch.Tensor, amplifying: bool) -> torch.Tensor:
        """Logits [B, C] (CPU, no gradients) of pixels [B, 3, H, W] in [0, 1]."""
        ...

    def unit_rows(self, model: Any, kind: str, rows: int) -> int:
        """How many of `rows` the next unit of `kind` ("forward", "gradient" or "layer_replacement")
        should take."""
        ...


@dataclass
class PassCounter:
    """Images evaluated forward and backward, counted per image (a pass over N images counts N)."""

    forward: int = 0
    backward: int = 0


class CallContext(Generic[ModelT]):
    """Per-call services for a method: the forward callable, pass counting, cancellation, memory budget."""

    def __init__(
        self,
        model: ModelT,
        token: CancellationToken,
        settings: AttributionSettings,
        *,
        compute: Compute,
        max_image_pixels: int = 40_000_000,
    ) -> None:
        self.model = model
        self.token = token
        self.settings = settings
        self.compute = compute
        self.max_image_pixels = max_image_pixels  # for images given as parameters (IG baseline)
        self.counter = PassCounter()
        self._budget_bytes: int | None = None

    def check(self) -> None:
        """Raise Cancelled when the caller has gone (deadline passed, call cancelled)."""
        self.token.check()

    def count(self, *, forward: int = 0, backward: int = 0) -> None:
        self.counter.forward += forward
        self.counter.backward += backward

    def forward(self, pixels: torch.Tensor, *, amplifying: bool = False) -> torch.Tensor:
        """Logits [B, C] (CPU, no gradients) for pixels [B, 3, H, W] in [0, 1], on any backend: one unit
        of the compute scheduler, which may batch it with other calls' forward passes. `amplifying`: the
        method's map amplifies logit differences (`Model.amplifying_logits`)."""
        self.token.raise_if_cancelled()
        self.count(forward=pixels.shape[0])
        return self.compute.forward(self.model, pixels, amplifying)

    def unit_rows(self, kind: str, rows: int) -> int:
        """How many of `rows` the next batch of `kind` ("forward", "gradient" or "layer_replacement")
        should take: all of them when the call runs alone, fewer while other calls wait for the device
        (serving.execution)."""
        return self.compute.unit_rows(self.model, kind, rows)

    def budget_bytes(self) -> int:
        """Memory one batched evaluation may use: the setting, or a quarter of the memory free when the
        call first asked (read once per call: every chunk of every method asks)."""
        if self.settings.memory_budget_bytes:
            return self.settings.memory_budget_bytes
        if self._budget_bytes is None:
            self._budget_bytes = free_memory_bytes(self.model.device) // 4
        return self._budget_bytes

    def rows_per_batch(self, bytes_per_row: int, *, cap: int = MAX_ROWS_PER_BATCH) -> int:
        """How many images fit in one batch when each costs `bytes_per_row` (at least 1, at most `cap`)."""
        return max(1, min(cap, self.budget_bytes() // max(1, bytes_per_row)))


def free_memory_bytes(device: torch.device) -> int:
    """Free memory where the computation runs: the GPU's free memory, or MemAvailable on the host."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
