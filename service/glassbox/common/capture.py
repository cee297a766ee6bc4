"""Per-call capture of layer outputs from a shared, served torch model.

The model object is shared by every request and job of the process, so the hooks are `hooks.CallHooks`
(the same the attribution methods use): registered for one call only, removed on exit whatever happens, and
acting only on forward passes of the thread that entered them. An attribution call or another job
running the same model meanwhile sees an untouched network, and no lock is needed. When the objective
needs no logits, the forward pass stops right after the last layer it reads, so the layers above it
cost nothing, forward or backward.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType

import torch

from glassbox.backends.torch_backend import TorchModel
from glassbox.common.hooks import CallHooks, OutputRecorder


@dataclass(frozen=True)
class Activations:
    """What one forward pass produced: the captured layer outputs and, when computed, the logits."""

    layers: dict[str, torch.Tensor]
    logits: torch.Tensor | None


class _LayersComplete(Exception):
    """Raised by the last hook to cut the forward pass short; never leaves `LayerCapture.forward`."""


class LayerCapture:
    """Records the outputs of named layers during this thread's forward passes, while entered.

    Each captured output is kept as the layer produced it and the network continues on a copy, so an
    in-place operation further up (a `ReLU(inplace=True)` after a captured BatchNorm) can neither
    overwrite the capture nor break its gradient.
    """

    def __init__(self, model: TorchModel, layers: Iterable[str], *, need_logits: bool) -> None:
        self.model = model
        self.layers = frozenset(layers)
        self.need_logits = need_logits or not self.layers
        self._hooks: CallHooks | None = None
        self._recorders: dict[str, OutputRecorder] = {}

    def __enter__(self) -> LayerCapture:
        modules = {name: self.model.submodule(name) for name in sorted(self.layers)}
        self._hooks = CallHooks().__enter__()
        try:
            for name, module in modules.items():
                self._recorders[name] = OutputRecorder(
                    self._hooks, module, name=name, after_record=self._stop_when_complete
                )
        except BaseException as exc:
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._hooks is not None:
            self._hooks.__exit__(exc_type, exc, tb)
            self._hooks = None
        self._recorders = {}

    def _stop_when_complete(self) -> None:
        if not self.need_logits and all(recorder.outputs for recorder in self._recorders.values()):
            raise _LayersComplete

    def _clear(self) -> None:
        for recorder in self._recorders.values():
            recorder.clear()

    def forward(self, pixels: torch.Tensor) -> Activations:
        """Run the model on pixels [B, 3, H, W] in [0, 1] and return what was captured."""
        if self._hooks is None:
            raise RuntimeError("LayerCapture.forward called outside its `with` block")
        self._clear()
        logits: torch.Tensor | None = None
        with contextlib.suppress(_LayersComplete):
            logits = self.model.differentiable()(pixels)
        layers = {name: recorder.last() for name, recorder in self._recorders.items() if recorder.outputs}
        self._clear()
        return Activations(layers=layers, logits=logits)
