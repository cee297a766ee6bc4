"""LRP composites: which rule each layer of the canonical network gets, and their per-call installation.

The composites are Zennit 1.0's (`zennit.composites`), with its layer map: convolutions and linear
layers get the composite's rules, the first linear layer (in forward order) may get its own, sums of
branches and average pooling get the normalising rule with the composite's stabiliser, ReLUs and
un-merged BatchNorms pass relevance unchanged, max pooling keeps the gradient (the relevance goes to the
maximum):

* EpsilonPlusFlat: flat on the first layer, z⁺ on convolutions, ε on linear layers;
* EpsilonGammaBox: z^B (the pixel box) on the first convolution, γ on convolutions, ε on linear layers;
* EpsilonAlpha2Beta1: αβ (α = 2, β = 1 unless given) on convolutions, ε on linear layers;
* uniform: one rule on every convolution and linear layer, optionally another on the first one;
* captum: `captum.attr.LRP`'s default rules (0.9.0): ε = 1e-9 on convolutions, linear layers,
  BatchNorm (not merged: Captum keeps it as a layer), max and average pooling; ReLUs pass; the output's
  relevance is the target's score, not 1.

Rules attach for one call only (`hooks.CallHooks`): each rule-bearing module's output is replaced by a
custom autograd Function of its inputs whose backward is the rule, so concurrent calls on the same
network (other composites, or the same one merged into a batch by the compute scheduler) do not mix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from glassbox.common.hooks import CallHooks
from glassbox.methods.lrp_canonize import LayerKind, LrpNetwork, Sum
from glassbox.methods.lrp_linear import LinearMap
from glassbox.methods.lrp_rules import LinearRule, Norm


def _alias(z: torch.Tensor) -> torch.Tensor:
    """`z` as a new tensor with its strides. `z.view_as(z)` recomputes them, and for one channels_last row
    it gives the batch dimension a stride that no memory format matches: max pooling then took its strided
    fallback (16 ms instead of 0.15 ms on resnet18's 64×112×112 stem) and handed the next convolution an
    NCHW input to reorder."""
    return z.detach()


class _LinearRelevance(torch.autograd.Function):
    """The layer's output (computed by the module); backward: the layer's rule, relevance to the input."""

    @staticmethod
    def forward(
        ctx: Any, rule: LinearRule, layer: LinearMap, x: torch.Tensor, z: torch.Tensor
    ) -> torch.Tensor:
        ctx.save_for_backward(x, z)
        ctx.rule, ctx.layer, ctx.prepared = rule, layer, None
        return _alias(z)

    @staticmethod
    def backward(ctx: Any, relevance: torch.Tensor) -> tuple[Any, ...]:
        x, z = ctx.saved_tensors
        layer = ctx.layer
        if ctx.prepared is None:  # the first target pass; the others reuse what depends on the input only
            ctx.prepared = ctx.rule.prepare(layer, x, z)
        return None, None, ctx.rule.linear(layer, x, ctx.prepared, relevance), None


class _NormRelevance(torch.autograd.Function):
    """The layer's output; backward: the normalising rule over all of its tensor inputs."""

    @staticmethod
    def forward(
        ctx: Any, rule: Norm, module: nn.Module, z: torch.Tensor, *inputs: torch.Tensor
    ) -> torch.Tensor:
        ctx.save_for_backward(z, *inputs)
        ctx.rule, ctx.module = rule, module
        return _alias(z)

    @staticmethod
    def backward(ctx: Any, relevance: torch.Tensor) -> tuple[Any, ...]:
        z, *inputs = ctx.saved_tensors
        shares = ctx.rule.apply(
            ctx.module.forward, tuple(inputs), z, relevance, elementwise_sum=isinstance(ctx.module, Sum)
        )
        return None, None, None, *shares


class _PassRelevance(torch.autograd.Function):
    """The layer's output; backward: the relevance passes to the input unchanged (ReLU, BatchNorm)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return _alias(z)

    @staticmethod
    def backward(ctx: Any, relevance: torch.Tensor) -> tuple[torch.Tensor, None]:
        return relevance, None


class _ScaleByOutput(torch.autograd.Function):
    """Identity forward; backward multiplies the incoming relevance by the output (Captum's R = score)."""

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(logits)
        return logits.view_as(logits)

    @staticmethod
    def backward(ctx: Any, relevance: torch.Tensor) -> torch.Tensor:
        (logits,) = ctx.saved_tensors
        return relevance * logits


PASS = "pass"
"""Relevance passes to the input unchanged."""


@dataclass(frozen=True)
class LayerRules:
    """The rule of every kind of layer for one composite (hashable: part of the compute unit's batch key).

    `None` for a kind leaves the plain gradient (max pooling in Zennit's composites)."""

    first: LinearRule | None  # the first convolution or linear layer; None: as the others
    conv: LinearRule
    linear: LinearRule
    batchnorm: Norm | str
    maxpool: Norm | None
    pooling: Norm
    sums: Norm
    scale_by_output: bool = False

    def install(self, hooks: CallHooks, network: nn.Module) -> None:
        """Attach the rules to `network` (an `LrpNetwork`) for the call that owns `hooks`."""
        if not isinstance(network, LrpNetwork):
            raise TypeError(f"LRP rules need an LrpNetwork, got {type(network).__name__}")
        first_done = False
        for layer in network.layers:
            if layer.linear is not None:  # a convolution or linear layer
                rule = self.conv if layer.kind is LayerKind.CONV else self.linear
                if not first_done and self.first is not None:
                    rule = self.first
                first_done = True
                hooks.forward_hook(layer.module, _linear_hook(rule, layer.linear))
            elif layer.kind is LayerKind.RELU or (
                layer.kind is LayerKind.BATCHNORM and self.batchnorm == PASS
            ):
                hooks.forward_hook(layer.module, _pass_hook)
            else:
                norm = {
                    LayerKind.BATCHNORM: self.batchnorm,
                    LayerKind.MAXPOOL: self.maxpool,
                    LayerKind.AVGPOOL: self.pooling,
                    LayerKind.SUM: self.sums,
                }[layer.kind]
                if isinstance(norm, Norm):
                    hooks.forward_hook(layer.module, _norm_hook(norm))
        if self.scale_by_output:
            hooks.forward_hook(network, lambda _module, _inputs, logits: _ScaleByOutput.apply(logits))


def _linear_hook(rule: LinearRule, linear_map: LinearMap) -> Any:
    def hook(_module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        return _LinearRelevance.apply(rule, linear_map, inputs[0], output.detach())

    return hook


def _norm_hook(rule: Norm) -> Any:
    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        return _NormRelevance.apply(rule, module, output.detach(), *inputs)

    return hook


def _pass_hook(_module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
    return _PassRelevance.apply(inputs[0], output.detach())
