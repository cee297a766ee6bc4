"""The LRP rules: how one layer hands the relevance of its output back to its inputs.

Bach et al. 2015, "On Pixel-Wise Explanations for Non-Linear Classifier Decisions by Layer-Wise Relevance
Propagation"; Montavon et al. 2019, "Layer-Wise Relevance Propagation: An Overview" (§10.2 gives the
rules used here). The definitions are Zennit 1.0's (`zennit.rules`), term for term, so that a map equals
Zennit's up to float rounding: the same stabiliser (`z + ε·sign(z)`, with sign(0) = +1), the same handling
of negative inputs (the generalised γ, z⁺ and αβ rules split inputs and weights by sign), the same bias
treatment (z⁺ and αβ keep the positive or negative part of the bias in their positive or negative term,
γ adds γ·b⁺ to it, flat drops it).

A rule is computed without re-running the layer under autograd, as Zennit does: the linear map's transpose
is applied directly (`conv2d_input` for convolutions, a matrix product for linear layers), the output of the
unmodified layer (z) is the forward's own, and the terms that multiply an all-zero part of the input (the
negative part of a post-ReLU activation) are skipped, as they add exact zeros. Each rule is split in
`prepare` (what depends on the input only: modified weights, the stabilised denominators), computed once
per forward, and `linear` (the relevance), once per target pass: every target of an image shares the
denominators as it shares the forward.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.grad import conv2d_input

Relevance = tuple[torch.Tensor, ...]


def stabilize(z: torch.Tensor, epsilon: float) -> torch.Tensor:
    """z + ε·sign(z) with sign(0) = +1 (Zennit's `stabilize`): the denominator of every rule."""
    return z + ((z == 0).to(z) + z.sign()) * epsilon


@dataclass(frozen=True)
class LinearMap:
    """A convolution or linear layer as a linear map with its own weight and bias: forward and transpose."""

    module: nn.Conv2d | nn.Linear

    def forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        m = self.module
        if isinstance(m, nn.Conv2d):
            return F.conv2d(x, weight, bias, m.stride, m.padding, m.dilation, m.groups)
        return F.linear(x, weight, bias)

    def transpose(self, s: torch.Tensor, weight: torch.Tensor, input_shape: torch.Size) -> torch.Tensor:
        """Wᵀs: the input gradient of the map with weight `weight` for output gradient `s`."""
        m = self.module
        if isinstance(m, nn.Conv2d):
            return conv2d_input(input_shape, weight, s, m.stride, m.padding, m.dilation, m.groups)
        return s @ weight

    @property
    def weight(self) -> torch.Tensor:
        return self.module.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.module.bias


def _clamp(tensor: torch.Tensor | None, *, low: float | None = None, high: float | None = None) -> Any:
    return None if tensor is None else tensor.clamp(min=low, max=high)


def _has_negative(x: torch.Tensor) -> bool:
    return bool((x < 0).any())


@dataclass(frozen=True)
class Epsilon:
    """LRP-ε: R_in = x · Wᵀ(R / (z + ε·sign z)); ε = 0 is LRP-0."""

    epsilon: float

    def prepare(self, layer: LinearMap, x: torch.Tensor, z: torch.Tensor) -> Any:
        return stabilize(z, self.epsilon)

    def linear(self, layer: LinearMap, x: torch.Tensor, den: Any, r: torch.Tensor) -> torch.Tensor:
        return x * layer.transpose(r / den, layer.weight, x.shape)


@dataclass(frozen=True)
class ZPlus:
    """LRP-z⁺ (α1β0): only the positive contributions z⁺ = x⁺W⁺ + b⁺ + x⁻W⁻ share the relevance."""

    stabilizer: float

    def prepare(self, layer: LinearMap, x: torch.Tensor, z: torch.Tensor) -> Any:
        w_pos = layer.weight.clamp(min=0)
        negative = _has_negative(x)
        x_pos = x.clamp(min=0) if negative else x
        out = layer.forward(x_pos, w_pos, _clamp(layer.bias, low=0))
        x_neg = w_neg = None
        if negative:
            x_neg, w_neg = x.clamp(max=0), layer.weight.clamp(max=0)
            out = out + layer.forward(x_neg, w_neg, None)
        return x_pos, x_neg, w_pos, w_neg, stabilize(out, self.stabilizer)

    def linear(self, layer: LinearMap, x: torch.Tensor, prepared: Any, r: torch.Tensor) -> torch.Tensor:
        x_pos, x_neg, w_pos, w_neg, den = prepared
        s = r / den
        relevance = x_pos * layer.transpose(s, w_pos, x.shape)
        if x_neg is not None:
            relevance = relevance + x_neg * layer.transpose(s, w_neg, x.shape)
        return relevance


@dataclass(frozen=True)
class AlphaBeta:
    """LRP-αβ: α × the positive contributions' share − β × the negative contributions' share (α − β = 1)."""

    alpha: float
    beta: float
    stabilizer: float

    def prepare(self, layer: LinearMap, x: torch.Tensor, z: torch.Tensor) -> Any:
        w_pos, w_neg = layer.weight.clamp(min=0), layer.weight.clamp(max=0)
        negative = _has_negative(x)
        x_pos = x.clamp(min=0) if negative else x
        x_neg = x.clamp(max=0) if negative else None
        positive = layer.forward(x_pos, w_pos, _clamp(layer.bias, low=0))
        negative_out = layer.forward(x_pos, w_neg, _clamp(layer.bias, high=0))
        if x_neg is not None:
            positive = positive + layer.forward(x_neg, w_neg, None)
            negative_out = negative_out + layer.forward(x_neg, w_pos, None)
        return (
            x_pos,
            x_neg,
            w_pos,
            w_neg,
            stabilize(positive, self.stabilizer),
            stabilize(negative_out, self.stabilizer),
        )

    def linear(self, layer: LinearMap, x: torch.Tensor, prepared: Any, r: torch.Tensor) -> torch.Tensor:
        x_pos, x_neg, w_pos, w_neg, den_pos, den_neg = prepared
        s_pos, s_neg = r / den_pos, r / den_neg
        relevance = self.alpha * (x_pos * layer.transpose(s_pos, w_pos, x.shape)) - self.beta * (
            x_pos * layer.transpose(s_neg, w_neg, x.shape)
        )
        if x_neg is not None:
            relevance = (
                relevance
                + self.alpha * (x_neg * layer.transpose(s_pos, w_neg, x.shape))
                - self.beta * (x_neg * layer.transpose(s_neg, w_pos, x.shape))
            )
        return relevance


@dataclass(frozen=True)
class Gamma:
    """Generalised LRP-γ: where z > 0 the relevance follows W + γW⁺ on x⁺ (and W + γW⁻ on x⁻), where z < 0
    it follows W + γW⁻ on x⁺ (and W + γW⁺ on x⁻); the bias gets the same γ-share as the weights."""

    gamma: float
    stabilizer: float

    def prepare(self, layer: LinearMap, x: torch.Tensor, z: torch.Tensor) -> Any:
        g = self.gamma
        w, b = layer.weight, layer.bias
        w_up, w_down = w + g * w.clamp(min=0), w + g * w.clamp(max=0)
        b_up = None if b is None else b + g * b.clamp(min=0)
        b_down = None if b is None else b + g * b.clamp(max=0)
        negative = _has_negative(x)
        x_pos = x.clamp(min=0) if negative else x
        x_neg = x.clamp(max=0) if negative else None
        positive = layer.forward(x_pos, w_up, b_up)
        negative_out = layer.forward(x_pos, w_down, b_down)
        if x_neg is not None:
            positive = positive + layer.forward(x_neg, w_down, None)
            negative_out = negative_out + layer.forward(x_neg, w_up, None)
        signs = (z > 0).to(z), (z < 0).to(z)
        dens = stabilize(positive, self.stabilizer), stabilize(negative_out, self.stabilizer)
        return x_pos, x_neg, w_up, w_down, signs, dens

    def linear(self, layer: LinearMap, x: torch.Tensor, prepared: Any, r: torch.Tensor) -> torch.Tensor:
        x_pos, x_neg, w_up, w_down, (is_pos, is_neg), (den_pos, den_neg) = prepared
        s_pos, s_neg = is_pos * r / den_pos, is_neg * r / den_neg
        relevance = x_pos * (layer.transpose(s_pos, w_up, x.shape) + layer.transpose(s_neg, w_down, x.shape))
        if x_neg is not None:
            relevance = relevance + x_neg * (
                layer.transpose(s_pos, w_down, x.shape) + layer.transpose(s_neg, w_up, x.shape)
            )
        return relevance


@dataclass(frozen=True)
class Flat:
    """LRP-flat (Lapuschkin et al. 2019): every input of a neuron's receptive field gets an equal share,
    whatever its value or weight (unit weights, unit inputs, no bias)."""

    stabilizer: float

    def prepare(self, layer: LinearMap, x: torch.Tensor, z: torch.Tensor) -> Any:
        ones = torch.ones_like(layer.weight)
        return ones, stabilize(layer.forward(torch.ones_like(x), ones, None), self.stabilizer)

    def linear(self, layer: LinearMap, x: torch.Tensor, prepared: Any, r: torch.Tensor) -> torch.Tensor:
        ones, den = prepared
        return layer.transpose(r / den, ones, x.shape)


@dataclass(frozen=True)
class ZBox:
    """LRP-z^B (Montavon et al. 2017, deep Taylor decomposition): for inputs known to lie in [low, high]
    (the pixel box, mapped through the model's normalisation), R_in = x·Wᵀs − low·W⁺ᵀs − high·W⁻ᵀs with
    s = R / (z − low·W⁺ − high·W⁻) (the bias enters both and cancels)."""

    low: tuple[float, ...]  # per input channel
    high: tuple[float, ...]
    stabilizer: float

    def prepare(self, layer: LinearMap, x: torch.Tensor, z: torch.Tensor) -> Any:
        w, b = layer.weight, layer.bias
        w_pos, w_neg = w.clamp(min=0), w.clamp(max=0)
        shape = (1, len(self.low)) + (1,) * (x.dim() - 2)
        low = torch.tensor(self.low, dtype=x.dtype, device=x.device).view(shape).expand_as(x)
        high = torch.tensor(self.high, dtype=x.dtype, device=x.device).view(shape).expand_as(x)
        lower = layer.forward(low, w_pos, _clamp(b, low=0))
        upper = layer.forward(high, w_neg, _clamp(b, high=0))
        return low, high, w_pos, w_neg, stabilize(z - (lower + upper), self.stabilizer)

    def linear(self, layer: LinearMap, x: torch.Tensor, prepared: Any, r: torch.Tensor) -> torch.Tensor:
        low, high, w_pos, w_neg, den = prepared
        s = r / den
        return x * layer.transpose(s, layer.weight, x.shape) - (
            low * layer.transpose(s, w_pos, x.shape) + high * layer.transpose(s, w_neg, x.shape)
        )


LinearRule = Epsilon | ZPlus | AlphaBeta | Gamma | Flat | ZBox


@dataclass(frozen=True)
class Norm:
    """The rule of parameter-free linear layers (sums of branches, average pooling; also max pooling,
    BatchNorm in Captum's composite): each input's share of the output, R_in = x · Pᵀ(R / (z + ε·sign z))."""

    epsilon: float

    def apply(
        self,
        layer: Callable[..., torch.Tensor],
        inputs: tuple[torch.Tensor, ...],
        z: torch.Tensor,
        r: torch.Tensor,
    ) -> Relevance:
        s = r / stabilize(z, self.epsilon)
        with torch.enable_grad():
            leaves = tuple(x.detach().requires_grad_(True) for x in inputs)
            grads = torch.autograd.grad(layer(*leaves), leaves, s)
        return tuple(x * g for x, g in zip(inputs, grads, strict=True))
