"""DeepLift's rescale rule (Shrikumar, Greenside & Kundaje 2017, "Learning Important Features Through
Propagating Activation Differences"), applied to every nonlinearity of a forward pass, however it is
called.

The network runs once on the paired batch [inputs; baselines] (row i and row n + i are a pair). A
`torch.overrides.TorchFunctionMode` sees every call of the forward: module ReLUs, in-place ReLUs,
functional `F.relu` (densenet121 applies one after its last norm) and ReLU modules called twice per
block (torchvision's resnet) alike, which module hooks cannot all see. Each elementwise nonlinearity f
gets the multiplier Δf/Δx = (f(x) − f(x₀)) / (x − x₀) of its pair in place of its derivative (the plain
derivative where |x − x₀| < 1e-10, as Captum), max-pooling gets Captum's rule (the pooled difference
routed back through the argmax of the input and of the baseline, divided by the input difference).
Linear operations (convolutions, eval-mode BatchNorm, pooling by averages, additions, concatenations)
pass gradients unchanged, which is what the rule prescribes for them.

Captum's max-pool rule scatters the pooled differences back with `max_unpool2d`, which writes rather than
adds where overlapping windows (resnet's 3×3 stride-2 stem pool) share an argmax; the maps follow it
(they are tested equal to Captum's), so there summation-to-delta holds only up to the contributions it
drops. Without overlap (the demo CNN's 2×2 pools) the attributions add up to score(x) − score(x₀).

Where the rule is ill-defined (non-monotonic activations such as GELU, SiLU, Hardswish, Mish; softmax,
normalisations over activations such as LayerNorm; products of two activations; max-pooling other than
2-D) the forward stops with FailedPrecondition naming the layer it ran in: never a silently wrong map.
Operations not listed here are taken as linear.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from glassbox.backends.torch_backend import NormalizedModel
from glassbox.common.hooks import CallHooks
from glassbox.core.errors import FailedPrecondition
from glassbox.core.reasons import Reason

EPS = 1e-10
"""Below this |x − x₀| a nonlinearity passes its plain derivative (Captum's DeepLift `eps`)."""

ELEMENTWISE = frozenset(
    {
        "relu",
        "relu_",
        "relu6",
        "leaky_relu",
        "leaky_relu_",
        "elu",
        "elu_",
        "hardtanh",
        "hardtanh_",
        "hardsigmoid",
        "sigmoid",
        "sigmoid_",
        "tanh",
        "tanh_",
        "softplus",
    }
)
"""Monotonic elementwise nonlinearities: the rescale rule applies (Captum: ReLU, ELU, LeakyReLU, Sigmoid,
Tanh, Softplus; ReLU6, Hardtanh and Hardsigmoid are monotonic too)."""

REFUSED = frozenset(
    {
        "gelu",
        "silu",
        "silu_",
        "hardswish",
        "hardswish_",
        "mish",
        "selu",
        "celu",
        "prelu",
        "rrelu",
        "glu",
        "logsigmoid",
        "softsign",
        "softmax",
        "log_softmax",
        "softmin",
        "layer_norm",
        "group_norm",
        "instance_norm",
        "local_response_norm",
        "normalize",
        "scaled_dot_product_attention",
        "multi_head_attention_forward",
        "max_pool1d",
        "max_pool3d",
        "adaptive_max_pool1d",
        "adaptive_max_pool2d",
        "adaptive_max_pool3d",
        "fractional_max_pool2d",
        "lp_pool2d",
    }
)
"""Operations the rescale rule is not defined for (non-monotonic, or not elementwise)."""

PRODUCTS = frozenset(
    {"mul", "mul_", "__mul__", "__rmul__", "__imul__", "div", "div_", "__truediv__", "__rtruediv__"}
    | {"matmul", "__matmul__", "__rmatmul__", "bmm", "einsum", "bilinear"}
)
"""Operations that are nonlinear when two of their operands depend on the input (attention, gates)."""

REFUSED_MODULES: tuple[type[nn.Module], ...] = (
    nn.GELU,
    nn.SiLU,
    nn.Hardswish,
    nn.Mish,
    nn.SELU,
    nn.CELU,
    nn.PReLU,
    nn.RReLU,
    nn.GLU,
    nn.LogSigmoid,
    nn.Softsign,
    nn.Softmax,
    nn.LogSoftmax,
    nn.Softmin,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.MultiheadAttention,
    nn.MaxPool1d,
    nn.MaxPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
    nn.FractionalMaxPool2d,
    nn.LPPool2d,
)
"""The module types of REFUSED: a model containing one is not offered the rescale-rule methods."""

HANDLED = (
    "ReLU (module, in-place or functional), LeakyReLU, ELU, ReLU6, Hardtanh, Hardsigmoid, Sigmoid, Tanh, "
    "Softplus, MaxPool2d and linear layers"
)


def _layers(network: nn.Module) -> nn.Module:
    """The module whose names GetModel lists: the wrapped network inside the normalisation wrapper."""
    return network.net if isinstance(network, NormalizedModel) else network


def refused_layer(network: nn.Module) -> str | None:
    """The first layer of `network` whose type the rescale rule refuses, as "name (Type)"; None if none."""
    for name, module in _layers(network).named_modules():
        if isinstance(module, REFUSED_MODULES):
            return f"{name!r} ({type(module).__name__})"
    return None


def unsupported_layer_reason(method: str, network: nn.Module) -> str | None:
    """Why `method` cannot run on `network` (a layer type the rule refuses), or None."""
    layer = refused_layer(network)
    if layer is None:
        return None
    return f"{method}: the rescale rule is ill-defined for layer {layer}; it handles {HANDLED}"


class _Multiplier(torch.autograd.Function):
    """y = f(x) computed outside; backward multiplies the gradient by the pair multipliers m."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, y: torch.Tensor, multipliers: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(multipliers)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (multipliers,) = ctx.saved_tensors
        return grad * multipliers, None, None


class _MaxPool2dRule(torch.autograd.Function):
    """2-D max-pooling under Captum's DeepLift rule (`captum.attr._core.deep_lift.maxpool`): the output
    difference split at max(y, y₀) is routed back through the input's and the baseline's argmax, then
    divided by the input difference; each row falls back to its own plain gradient where |Δx| < EPS
    (Captum takes the batch's first row there, which is right only for a batch of one)."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, kernel: Any, stride: Any, padding: Any, dilation: Any, ceil_mode: bool
    ) -> torch.Tensor:
        y, indices = F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode, True)
        x1, x0 = x.chunk(2)
        y1, y0 = y.chunk(2)
        cross = torch.max(y1, y0)
        ctx.save_for_backward(torch.cat(2 * [x1 - x0]), torch.cat([cross - y0, y1 - cross]), indices)
        ctx.geometry = (kernel, stride, padding, list(x.shape))
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        delta_in, delta_out, indices = ctx.saved_tensors
        kernel, stride, padding, shape = ctx.geometry
        # Captum's backward reaches both halves with the same output gradient (its target picks the score
        # of the input and of the baseline); here only the inputs' scores are differentiated, so the
        # inputs' half stands for both.
        grad = torch.cat(2 * [grad.chunk(2)[0]])
        unpooled = F.max_unpool2d(grad * delta_out, indices, kernel, stride, padding, shape)
        first, second = unpooled.chunk(2)
        rescaled = torch.cat(2 * [first + second])
        plain = torch.zeros(shape, dtype=grad.dtype, device=grad.device).flatten(2)
        plain.scatter_add_(2, indices.flatten(2), grad.flatten(2))
        small = delta_in.abs() < EPS
        multiplied = torch.where(small, plain.view(shape), rescaled / torch.where(small, 1.0, delta_in))
        return multiplied, None, None, None, None, None


def _bound(func: Callable[..., Any], args: tuple, kwargs: dict) -> dict[str, Any]:
    """The call's arguments by parameter name ({} for builtins without a Python signature)."""
    try:
        return dict(inspect.signature(func).bind(*args, **kwargs).arguments)
    except (TypeError, ValueError):
        return {}


def _max_pool2d_signature(
    input: torch.Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> None:
    """The parameters of `F.max_pool2d` (a dispatch wrapper without a usable signature), for binding."""


def _name(func: Callable[..., Any]) -> str:
    return getattr(func, "__name__", "")


class RescaleRules(TorchFunctionMode):
    """While active (one forward over a paired batch), nonlinearities follow the rescale rule.

    `hooks` track which module is running, so that a refusal names the layer."""

    def __init__(self, hooks: CallHooks, network: nn.Module, method: str) -> None:
        super().__init__()
        self.method = method
        self._running: list[str] = []
        for name, module in _layers(network).named_modules():
            hooks.forward_pre_hook(module, functools.partial(self._enter, name))
            hooks.forward_hook(module, self._leave)

    def _enter(self, name: str, _module: nn.Module, _inputs: tuple) -> None:
        self._running.append(name)

    def _leave(self, _module: nn.Module, _inputs: tuple, _output: Any) -> None:
        self._running.pop()

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple = (), kwargs: Any = None):
        kwargs = kwargs or {}
        name = _name(func)
        if name in ELEMENTWISE:
            return self._elementwise(func, args, kwargs)
        if name == "max_pool2d":
            return self._max_pool(func, args, kwargs)
        if name in REFUSED:
            self._refuse(f"the operation {name}")
        if name in PRODUCTS and self._varying_operands(args) >= 2:
            self._refuse(f"{name} of two activations")
        return func(*args, **kwargs)

    def _refuse(self, what: str) -> None:
        layer = next((name for name in reversed(self._running) if name), "")
        where = f"layer {layer!r}" if layer else "the network's own forward"
        raise FailedPrecondition(
            f"{self.method}: the rescale rule is ill-defined for {what} in {where}; it handles {HANDLED}",
            reason=Reason.METHOD_NOT_SUPPORTED,
        )

    @staticmethod
    def _varying_operands(args: tuple) -> int:
        flat = [a for arg in args for a in (arg if isinstance(arg, list | tuple) else (arg,))]
        return sum(isinstance(a, torch.Tensor) and a.requires_grad for a in flat)

    def _elementwise(self, func: Callable[..., Any], args: tuple, kwargs: dict) -> torch.Tensor:
        x = args[0]
        if not isinstance(x, torch.Tensor) or not x.requires_grad:
            return func(*args, **kwargs)
        rest, name = args[1:], _name(func)
        in_place = name.endswith("_") or bool(_bound(func, args, kwargs).get("inplace", False))
        with torch.no_grad():
            y = func(x.detach().clone() if in_place else x.detach(), *rest, **kwargs)
        if name in ("relu", "relu_"):  # the derivative autograd gives ReLU, without a second pass
            derivative = (x.detach() > 0).to(x.dtype)
        else:
            with torch.enable_grad():
                leaf = x.detach().requires_grad_(True)
                (derivative,) = torch.autograd.grad(func(leaf * 1.0, *rest, **kwargs).sum(), leaf)
        with torch.no_grad():
            x1, x0 = x.detach().chunk(2)
            y1, y0 = y.chunk(2)
            delta_in, delta_out = torch.cat(2 * [x1 - x0]), torch.cat(2 * [y1 - y0])
            small = delta_in.abs() < EPS
            multipliers = torch.where(small, derivative, delta_out / torch.where(small, 1.0, delta_in))
        out = _Multiplier.apply(x, y, multipliers)
        if in_place:
            return x.copy_(out)
        return out

    def _max_pool(self, func: Callable[..., Any], args: tuple, kwargs: dict) -> torch.Tensor:
        x = args[0]
        if not isinstance(x, torch.Tensor) or not x.requires_grad:
            return func(*args, **kwargs)
        bound = _bound(_max_pool2d_signature, args, kwargs)
        if bound.get("return_indices", False):
            self._refuse("max_pool2d returning indices")
        kernel = bound["kernel_size"]
        stride = bound.get("stride") or kernel
        return _MaxPool2dRule.apply(
            x,
            kernel,
            stride,
            bound.get("padding", 0),
            bound.get("dilation", 1),
            bool(bound.get("ceil_mode", False)),
        )
