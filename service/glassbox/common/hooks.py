"""Per-call hooks on a model module that every call shares.

The model's `nn.Module` serves all calls at once, so a hook registered for one call must not touch
another call's forward pass (Captum's hooks do; its instances are not thread-safe). `CallHooks`
registers forward hooks for the duration of one call and makes each of them act only while *its*
call's forward runs in *its* execution context (a context-variable owner check: per thread, and per
call where the compute scheduler runs several calls on one thread as greenlets); what they change is
attached to that call's own tensors (a cloned activation, a custom autograd Function), so the
backward pass needs no global state either, wherever autograd runs it. Handles are removed when the
call ends, even on error.

Three uses:
* `CallRules`: a method's own backward rules (LRP's composites, methods/lrp_composites.py).
* `OutputRecorder`: keeps a module's output (to read its values and differentiate with respect to it);
  `common.capture.LayerCapture` records named layers of a model with it.
* `ReluRules`: swaps every `nn.ReLU`'s gradient for guided backprop's or deconvnet's rule, switchable
  between backward passes of the same forward (Guided Grad-CAM needs plain and guided gradients).
  In-place ReLUs work: the module only ever sees a detached copy of the rule's own output.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from enum import StrEnum
from types import TracebackType
from typing import Any, Protocol

import torch
from torch import nn

_owner: ContextVar[CallHooks | None] = ContextVar("glassbox_call_hooks", default=None)


class CallHooks:
    """A context manager owning hooks that act only for the call (and thread) that entered it."""

    def __init__(self) -> None:
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._previous: CallHooks | None = None

    def __enter__(self) -> CallHooks:
        self._previous = _owner.get()
        _owner.set(self)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        _owner.set(self._previous)
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def active(self) -> bool:
        """True in this call's own context while the call is running."""
        return _owner.get() is self

    def forward_hook(self, module: nn.Module, hook: Callable[[nn.Module, tuple, Any], Any]) -> None:
        def guarded(mod: nn.Module, inputs: tuple, output: Any) -> Any:
            return hook(mod, inputs, output) if self.active() else None

        self._handles.append(module.register_forward_hook(guarded))

    def forward_pre_hook(self, module: nn.Module, hook: Callable[[nn.Module, tuple], Any]) -> None:
        def guarded(mod: nn.Module, inputs: tuple) -> Any:
            return hook(mod, inputs) if self.active() else None

        self._handles.append(module.register_forward_pre_hook(guarded))


class CallRules(Protocol):
    """Backward rules a method attaches to a network for one call (LRP's composites): hashable, because
    units of different calls merge into one batch only when their rules are equal."""

    def install(self, hooks: CallHooks, network: nn.Module) -> None:
        """Register, through `hooks`, whatever the rules need on `network`'s modules."""

    def __hash__(self) -> int: ...


class OutputRecorder:
    """Records a module's output on every forward of the call. The network continues on a copy, so a
    later in-place operation cannot change the recorded tensor (or its place in the autograd graph).

    `name` (the layer's name) goes into the error raised for an output that is not a tensor;
    `after_record`, when given, runs after each output is recorded (it may raise to end the forward)."""

    def __init__(
        self,
        hooks: CallHooks,
        module: nn.Module,
        *,
        name: str | None = None,
        after_record: Callable[[], None] | None = None,
    ) -> None:
        self.outputs: list[torch.Tensor] = []
        self._what = "the layer" if name is None else f"layer {name!r}"
        self._after_record = after_record
        hooks.forward_hook(module, self._record)

    def _record(self, _module: nn.Module, _inputs: tuple, output: Any) -> Any:
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"{self._what} returns {type(output).__name__}, not a tensor")
        self.outputs.append(output)
        if self._after_record is not None:
            self._after_record()
        return output.clone()

    def last(self) -> torch.Tensor:
        """The output of the layer's last call in the most recent forward pass."""
        if not self.outputs:
            raise RuntimeError("the layer did not run in the forward pass")
        return self.outputs[-1]

    def clear(self) -> None:
        self.outputs.clear()


class ReluRule(StrEnum):
    """How gradients pass a ReLU backwards."""

    PLAIN = "plain"  # the true gradient: g · [x > 0]
    GUIDED = "guided"  # guided backprop (Springenberg et al. 2015): max(g, 0) · [x > 0]
    DECONV = "deconv"  # deconvnet (Zeiler & Fergus 2014): max(g, 0)


class RuleSwitch:
    """The rule one call's ReLUs apply; read at backward time, so it may change between backward passes."""

    def __init__(self, rule: ReluRule) -> None:
        self.rule = rule


class _RuleRelu(torch.autograd.Function):
    """ReLU whose backward follows a call's `RuleSwitch`; each rule is one or two fused passes."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, switch: RuleSwitch) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.switch = switch
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        rule = ctx.switch.rule
        if rule is ReluRule.DECONV:
            return grad.clamp(min=0), None
        if rule is ReluRule.GUIDED:
            grad = grad.clamp(min=0)
        return torch.ops.aten.threshold_backward(grad, x, 0), None


def relu_modules(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, nn.ReLU)]


class ReluRules:
    """Replaces, for one call, the output of every `nn.ReLU` by a `_RuleRelu` of its input.

    The rule's ReLU runs in the pre-hook; the module itself then gets a detached alias of that
    result (so its own ReLU, in place or not, changes no value and records no graph), and the forward
    hook hands the network the rule's output. In-place ReLUs need no defensive copy this way."""

    def __init__(self, hooks: CallHooks, module: nn.Module, switch: RuleSwitch) -> None:
        self.switch = switch
        self.applied = 0  # rule ReLUs run so far in this call (their order against other layers' outputs)
        self._outputs: dict[int, list[torch.Tensor]] = {}
        for relu in relu_modules(module):
            hooks.forward_pre_hook(relu, self._apply_rule)
            hooks.forward_hook(relu, self._replace_output)

    def _apply_rule(self, module: nn.Module, inputs: tuple) -> tuple:
        (x,) = inputs
        out = _RuleRelu.apply(x, self.switch)
        self.applied += 1
        self._outputs.setdefault(id(module), []).append(out)
        return (out.detach(),)

    def _replace_output(self, module: nn.Module, _inputs: tuple, _output: Any) -> torch.Tensor:
        return self._outputs[id(module)].pop()
