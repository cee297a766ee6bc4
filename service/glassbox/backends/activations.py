"""The activations a network runs, and which of them the guided ReLU rules can change.

Guided backprop and deconvnet (common/hooks.py: `ReluRules`) replace the backward pass of `nn.ReLU`
modules. Any other activation, a module (Hardswish, SiLU, GELU, Sigmoid, ...) or a functional call
(`F.relu` after densenet's last norm), passes its true gradient, so on a mixed network a guided map is
guided only in part, and on a network whose only ReLUs are functional it would be a plain gradient.
`activation_sites` lists every activation the forward pass runs (from a `torch.fx` trace, in forward
order; from the module list when the network does not trace, where functional calls cannot be seen), so
the server can refuse the latter and say which activations a guided map modified.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

ACTIVATION_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softplus,
    nn.Threshold,
)
"""Element-wise activation modules (nn.ReLU is the one the guided rules change)."""

ACTIVATION_FUNCTIONS: dict[Callable[..., object], str] = {
    F.relu: "F.relu",
    F.relu_: "F.relu_",
    torch.relu: "torch.relu",
    torch.relu_: "torch.relu_",
    F.relu6: "F.relu6",
    F.leaky_relu: "F.leaky_relu",
    F.elu: "F.elu",
    F.gelu: "F.gelu",
    F.silu: "F.silu",
    F.mish: "F.mish",
    F.hardswish: "F.hardswish",
    F.hardsigmoid: "F.hardsigmoid",
    F.hardtanh: "F.hardtanh",
    F.softplus: "F.softplus",
    torch.sigmoid: "torch.sigmoid",
    torch.tanh: "torch.tanh",
}
"""Functional activations a traced graph may call, by the name shown to users."""
ACTIVATION_METHODS = {"relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_"}
"""Tensor methods that are activations (`x.relu()`)."""


@dataclass(frozen=True)
class ActivationSite:
    """One activation of the network: a module (by name) or a functional call (by its traced node)."""

    name: str
    kind: str  # the module's class name ("ReLU", "Hardswish") or the function ("F.relu")
    guided: bool  # the guided ReLU rules replace its backward (an nn.ReLU module)

    def describe(self) -> str:
        return f"{self.name} ({self.kind})"


def activation_sites(net: nn.Module) -> tuple[ActivationSite, ...]:
    """Every activation `net` runs, in forward order (each module once, however often it is called)."""
    modules = dict(net.named_modules())
    try:
        graph = torch.fx.symbolic_trace(net).graph
    except Exception as exc:  # the tracer cannot follow the Python: list the modules, in definition order
        log.info("activations of %s from its modules only: it does not trace (%s)", type(net).__name__, exc)
        return tuple(
            _module_site(name, module)
            for name, module in modules.items()
            if name and _is_activation_module(module)
        )
    sites: list[ActivationSite] = []
    seen: set[str] = set()
    for node in graph.nodes:
        site = None
        if node.op == "call_module" and _is_activation_module(modules.get(str(node.target))):
            site = _module_site(str(node.target), modules[str(node.target)])
        elif node.op == "call_function" and node.target in ACTIVATION_FUNCTIONS:
            site = ActivationSite(node.name, ACTIVATION_FUNCTIONS[node.target], False)
        elif node.op == "call_method" and node.target in ACTIVATION_METHODS:
            site = ActivationSite(node.name, f"Tensor.{node.target}", False)
        if site is not None and site.name not in seen:
            seen.add(site.name)
            sites.append(site)
    return tuple(sites)


def _module_site(name: str, module: nn.Module) -> ActivationSite:
    return ActivationSite(name, type(module).__name__, isinstance(module, nn.ReLU))


def _is_activation_module(module: nn.Module | None) -> bool:
    return module is not None and isinstance(module, ACTIVATION_MODULES)


def activation_kinds(sites: tuple[ActivationSite, ...]) -> list[str]:
    """The distinct kinds of `sites`, in order of first appearance."""
    return list(dict.fromkeys(map(operator.attrgetter("kind"), sites)))
