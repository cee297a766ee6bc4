"""The convolutions and linear layers of the canonical LRP network as linear maps, and the work the rules
share across calls.

A rule (methods/lrp_rules.py) runs the layer's linear map, or its transpose, with a modified weight: the
positive part W⁺ (z⁺, αβ, z^B), the negative part W⁻, W + γW⁺ (γ), all ones (flat). The canonical network
is a private copy of the served one whose parameters never change (methods/lrp_canonize.py builds it once
per model), so these weights are computed once per layer and kept with it, as are the values that depend
only on the input's shape (flat's denominator, the z^B box's bounds). Per call, computing them again cost a
pass over every weight of the network (on resnet18, 45 MB read and written per modified weight). The cost
is the memory of the modified weights the served composites use, once per model.

Where the canonical graph shows that a layer's input cannot be negative (it comes from a ReLU, through
pooling, sums, concatenations or reshapes), the rules skip the scan for negative inputs as well as the terms
that would multiply the (all-zero) negative part.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

T = TypeVar("T")


def stabilize(z: torch.Tensor, epsilon: float) -> torch.Tensor:
    """z + ε·sign(z) with sign(0) = +1 (Zennit's `stabilize`): the denominator of every rule.

    Zennit writes it `z + ((z == 0) + sign(z)) · ε`, six passes over z; this is the same value (z + ε where
    z ≥ 0, ±0 included, z − ε where z < 0, NaN stays NaN) in three."""
    step = torch.full((), epsilon, dtype=z.dtype, device=z.device)
    return z + torch.where(z >= 0, step, -step)


class LinearMap:
    """A convolution or linear layer as a linear map: forward and transpose with any weight, the weights
    the rules derive from the layer's own (computed once, `derived`), and whether its input may be negative.
    """

    def __init__(self, module: nn.Conv2d | nn.Linear, *, input_nonnegative: bool = False) -> None:
        self.module = module
        self.input_nonnegative = input_nonnegative
        self._derived: dict[Hashable, tuple[Hashable, Any]] = {}

    def forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        m = self.module
        if isinstance(m, nn.Conv2d):
            return F.conv2d(x, weight, bias, m.stride, m.padding, m.dilation, m.groups)
        return F.linear(x, weight, bias)

    def transpose(self, s: torch.Tensor, weight: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Wᵀs: the input gradient of the map with weight `weight` for output gradient `s`, shaped and laid
        out as the layer's input `like`. The convolution's backward is given that input itself: its values
        do not enter the input gradient, and `torch.nn.grad.conv2d_input`'s stand-in (one element expanded
        to the input's shape) was copied into a full-size contiguous tensor on every call."""
        m = self.module
        if isinstance(m, nn.Conv2d):
            return torch.ops.aten.convolution_backward(
                s,
                like,
                weight,
                None,
                m.stride,
                m.padding,
                m.dilation,
                False,
                [0] * len(m.stride),
                m.groups,
                (True, False, False),
            )[0]
        return s @ weight

    @property
    def weight(self) -> torch.Tensor:
        return self.module.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.module.bias

    def derived(self, key: Hashable, compute: Callable[[], T], *, variant: Hashable = None) -> T:
        """`compute()`, kept under `key` and computed again only when `variant` (e.g. an input shape)
        differs from the kept one's: one value per key, so varying shapes cannot grow the cache."""
        kept = self._derived.get(key)
        if kept is None or kept[0] != variant:
            kept = self._derived[key] = (variant, compute())
        value: T = kept[1]
        return value

    def positive_weight(self) -> torch.Tensor:
        """W⁺ = max(W, 0)."""
        return self.derived("weight+", lambda: self.weight.clamp(min=0))

    def negative_weight(self) -> torch.Tensor:
        """W⁻ = min(W, 0)."""
        return self.derived("weight-", lambda: self.weight.clamp(max=0))

    def unit_weight(self) -> torch.Tensor:
        """A weight of ones, shaped as W (the flat rule's)."""
        return self.derived("ones", lambda: torch.ones_like(self.weight))

    def positive_bias(self) -> torch.Tensor | None:
        """b⁺ (None without a bias)."""
        return self.derived("bias+", lambda: None if self.bias is None else self.bias.clamp(min=0))

    def negative_bias(self) -> torch.Tensor | None:
        """b⁻ (None without a bias)."""
        return self.derived("bias-", lambda: None if self.bias is None else self.bias.clamp(max=0))

    def may_be_negative(self, x: torch.Tensor) -> bool:
        """Whether `x`, this layer's input, has a negative entry; False without looking where the graph
        shows the input cannot have one."""
        return not self.input_nonnegative and bool((x < 0).any())
