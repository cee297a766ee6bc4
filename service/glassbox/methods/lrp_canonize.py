"""Canonisation for LRP: a copy of the served network in which every operation is a module that a rule
can be attached to, or is refused by name.

LRP assigns a rule to each layer, so it must see every operation the network performs; a function call
that module hooks cannot see (a residual `out += identity`, DenseNet's closing `F.relu` and
`F.adaptive_avg_pool2d`) would silently get the plain gradient instead of a rule. The network is traced
with `torch.fx` and rewritten (Zennit's canonizers do the same per architecture, by hand; Montavon et al.
2019, §10.3 "Handling Batch Normalization", Motzkus et al. 2022 on canonisation):

* eval-mode BatchNorm2d merged into the convolution before it (`backends.batchnorm_folding`, the fold the
  input-gradient network uses: Zennit's `MergeBatchNorm`, with the pairs found on the traced graph, so
  DenseNet's BatchNorms after a concatenation are never merged into the wrong convolution); a BatchNorm
  that follows no convolution stays, and the composite decides its rule (Zennit: relevance passes);
* residual additions of two tensors become a `Sum` module (Zennit's `ResNetCanonizer`); functional ReLUs
  and adaptive average pooling become modules; in-place ReLUs are made out-of-place;
* concatenation, flattening and reshaping keep the gradient, which moves relevance unchanged.

Anything else (attention, normalisations other than BatchNorm2d, activations other than ReLU, products of
tensors, ...) is refused with FailedPrecondition naming the layer and listing what is supported. The
normalisation of the model wrapper passes relevance unchanged (it is an element-wise bijection), so the
pixel map is the relevance of the normalised input, and the z^B box is the pixel box [0, 1] mapped
through the normalisation.
"""

from __future__ import annotations

import copy
import operator
import threading
import weakref
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from glassbox.backends.base import Model
from glassbox.backends.batchnorm_folding import fold_batchnorm
from glassbox.backends.torch_backend import TorchModel
from glassbox.core.errors import FailedPrecondition
from glassbox.core.reasons import Reason
from glassbox.methods.lrp_linear import LinearMap

SUPPORTED = (
    "Conv2d (zero padding), Linear, BatchNorm2d, ReLU, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Flatten, "
    "Dropout, Identity, residual additions, concatenation, reshapes"
)


class Sum(nn.Module):
    """A residual addition made a module, so that the sum rule can be attached to it."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class LayerKind(StrEnum):
    CONV = "conv"
    LINEAR = "linear"
    BATCHNORM = "batchnorm"
    RELU = "relu"
    MAXPOOL = "maxpool"
    AVGPOOL = "avgpool"
    SUM = "sum"


_KINDS: tuple[tuple[type[nn.Module], LayerKind | None], ...] = (
    (nn.Conv2d, LayerKind.CONV),
    (nn.Linear, LayerKind.LINEAR),
    (nn.BatchNorm2d, LayerKind.BATCHNORM),
    (nn.ReLU, LayerKind.RELU),
    (nn.MaxPool2d, LayerKind.MAXPOOL),
    (nn.AvgPool2d, LayerKind.AVGPOOL),
    (nn.AdaptiveAvgPool2d, LayerKind.AVGPOOL),
    (Sum, LayerKind.SUM),
    (nn.Flatten, None),  # the gradient moves relevance unchanged
    (nn.Dropout, None),
    (nn.Identity, None),
)
_SHAPE_FUNCTIONS = {torch.flatten, torch.cat, torch.reshape}
_SHAPE_METHODS = {"view", "reshape", "flatten", "size", "contiguous"}
_ADDITIONS = {operator.add, operator.iadd, torch.add}
_RELUS = {F.relu, torch.relu}


@dataclass(frozen=True)
class Layer:
    """A module of the canonical network that gets a rule, in the order the forward first calls it;
    `linear`: a convolution's or linear layer's map, which keeps the weights its rules derive."""

    name: str
    module: nn.Module
    kind: LayerKind
    linear: LinearMap | None = None


class _NormaliseKeepingRelevance(torch.autograd.Function):
    """(pixels − mean) / std whose backward passes the relevance through unchanged."""

    @staticmethod
    def forward(ctx: Any, pixels: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        return (pixels - mean) / std

    @staticmethod
    def backward(ctx: Any, relevance: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return relevance, None, None


class LrpNetwork(nn.Module):
    """pixels in [0, 1] → logits through the canonical copy; `layers` are the modules rules attach to."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self, graph: torch.fx.GraphModule, layers: list[Layer], mean: torch.Tensor, std: torch.Tensor
    ):
        super().__init__()
        self.net = graph
        self.layers = layers
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.pixel_box = (
            tuple(((0.0 - mean) / std).flatten().tolist()),
            tuple(((1.0 - mean) / std).flatten().tolist()),
        )

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.net(_NormaliseKeepingRelevance.apply(pixels, self.mean, self.std))


def _refusal(message: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"lrp: {message}; LRP here supports {SUPPORTED}", field="lrp", reason=Reason.METHOD_NOT_SUPPORTED
    )


def _node_label(node: torch.fx.Node, modules: dict[str, nn.Module]) -> str:
    if node.op == "call_module":
        return f"layer '{node.target}' ({type(modules[str(node.target)]).__name__})"
    target = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", node.target)
    return f"operation '{node.name}' ({node.op} {target})"


def _replace(graph: torch.fx.GraphModule, node: torch.fx.Node, module: nn.Module, args: tuple) -> None:
    name = f"lrp_{node.name}"
    graph.add_submodule(name, module)
    with graph.graph.inserting_before(node):
        replacement = graph.graph.call_module(name, args)
    node.replace_all_uses_with(replacement)
    graph.graph.erase_node(node)


def _kind(module: nn.Module) -> tuple[bool, LayerKind | None]:
    for cls, kind in _KINDS:
        if isinstance(module, cls):
            return True, kind
    return False, None


def canonize(net: nn.Module, *, merge_batchnorm: bool) -> tuple[torch.fx.GraphModule, list[Layer]]:
    """The canonical copy of `net` and its rule-bearing layers; FailedPrecondition naming what cannot be."""
    if isinstance(net, torch.jit.ScriptModule):
        raise _refusal(
            "TorchScript models cannot be canonised (their operations are not modules); serve "
            "the eager model (safetensors or state_dict with an architecture)"
        )
    folded = fold_batchnorm(net) if merge_batchnorm else None
    base = folded.network if folded is not None else copy.deepcopy(net)
    try:
        graph = torch.fx.symbolic_trace(base)
    except Exception as exc:  # any Python the tracer cannot follow
        raise _refusal(f"the network does not trace with torch.fx ({type(exc).__name__}: {exc})") from exc
    modules = dict(graph.named_modules())
    unsupported: list[str] = []
    for node in list(graph.graph.nodes):
        if node.op == "call_module":
            module = modules[str(node.target)]
            known, _ = _kind(module)
            if not known or (isinstance(module, nn.Conv2d) and module.padding_mode != "zeros"):
                unsupported.append(_node_label(node, modules))
            elif isinstance(module, nn.ReLU):
                module.inplace = False
        elif node.op == "call_function" and node.target in _ADDITIONS:
            tensors = [a for a in node.args if isinstance(a, torch.fx.Node)]
            if len(tensors) != 2 or len(node.args) != 2 or node.kwargs:
                unsupported.append(_node_label(node, modules))
            else:
                _replace(graph, node, Sum(), tuple(node.args))
        elif (node.op == "call_function" and node.target in _RELUS) or (
            node.op == "call_method" and node.target == "relu"
        ):
            _replace(graph, node, nn.ReLU(), (node.args[0],))
        elif node.op == "call_function" and node.target is F.adaptive_avg_pool2d:
            output_size = node.args[1] if len(node.args) > 1 else node.kwargs["output_size"]
            _replace(graph, node, nn.AdaptiveAvgPool2d(output_size), (node.args[0],))
        elif node.op in ("placeholder", "output"):
            continue
        elif not (
            (node.op == "call_function" and node.target in _SHAPE_FUNCTIONS)
            or (node.op == "call_method" and node.target in _SHAPE_METHODS)
        ):
            unsupported.append(_node_label(node, modules))
    if unsupported:  # layers (modules) first: they name what a user recognises, e.g. attention
        unsupported.sort(key=lambda label: not label.startswith("layer"))
        # One named, the rest counted: the message also carries the model's supported methods, and every
        # status message is cut at 1024 characters (core.errors.bounded).
        more = f" and {len(unsupported) - 1} more" if len(unsupported) > 1 else ""
        raise _refusal(f"no rule for {unsupported[0]}{more}")
    graph.recompile()
    modules = dict(graph.named_modules())
    nonnegative_inputs = _nonnegative_inputs(graph, modules)
    layers: list[Layer] = []
    seen: set[int] = set()
    for node in graph.graph.nodes:
        if node.op == "call_module":
            module = modules[str(node.target)]
            _, kind = _kind(module)
            if kind is not None and id(module) not in seen:
                seen.add(id(module))
                linear = None
                if isinstance(module, nn.Conv2d | nn.Linear):
                    linear = LinearMap(module, input_nonnegative=nonnegative_inputs[id(module)])
                layers.append(Layer(str(node.target), module, kind, linear))
    return graph, layers


_KEEPS_SIGN = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Dropout, nn.Identity)
"""Modules whose output is non-negative wherever their input is (eval-mode dropout is the identity)."""


def _nonnegative_inputs(graph: torch.fx.GraphModule, modules: dict[str, nn.Module]) -> dict[int, bool]:
    """For each module (by id), whether every input it is called with is non-negative by construction: it
    comes from a ReLU through modules and operations that keep the sign (pooling, sums, concatenation,
    reshapes). The rules then skip looking for negative inputs (methods/lrp_linear.py)."""
    nonnegative: dict[torch.fx.Node, bool] = {}

    def first_argument(node: torch.fx.Node) -> bool:
        first = node.args[0] if node.args else None
        return isinstance(first, torch.fx.Node) and nonnegative[first]

    inputs: dict[int, bool] = {}
    for node in graph.graph.nodes:  # in topological order
        if node.op == "call_module":
            module = modules[str(node.target)]
            inputs[id(module)] = inputs.get(id(module), True) and first_argument(node)
            both = isinstance(module, Sum) and all(nonnegative[a] for a in node.all_input_nodes)
            keeps = isinstance(module, _KEEPS_SIGN) and first_argument(node)
            nonnegative[node] = isinstance(module, nn.ReLU) or both or keeps
        elif node.op == "call_function" and node.target is torch.cat:
            nonnegative[node] = all(nonnegative[a] for a in node.all_input_nodes)
        elif (node.op == "call_function" and node.target in _SHAPE_FUNCTIONS) or (
            node.op == "call_method" and node.target in _SHAPE_METHODS
        ):
            nonnegative[node] = first_argument(node)
        else:
            nonnegative[node] = False
    return inputs


_CACHE: weakref.WeakKeyDictionary[Model, dict[bool, LrpNetwork | FailedPrecondition]] = (
    weakref.WeakKeyDictionary()
)
_LOCK = threading.Lock()


def lrp_network(model: Model, *, merge_batchnorm: bool = True) -> LrpNetwork:
    """The model's canonical LRP network (built once per model and BatchNorm choice, then shared by every
    call: rules attach per call through `CallHooks`); FailedPrecondition where the model cannot have one."""
    if not isinstance(model, TorchModel):
        raise _refusal(f"the {model.backend_name} backend computes no gradients")
    with _LOCK:
        built = _CACHE.setdefault(model, {})
        if merge_batchnorm not in built:
            try:
                graph, layers = canonize(model.module.net, merge_batchnorm=merge_batchnorm)
                network = LrpNetwork(graph, layers, model.module.mean.clone(), model.module.std.clone())
                built[merge_batchnorm] = network.to(model.device).eval().requires_grad_(False)
            except FailedPrecondition as refusal:
                built[merge_batchnorm] = refusal
        result = built[merge_batchnorm]
    if isinstance(result, FailedPrecondition):
        raise result
    return result
