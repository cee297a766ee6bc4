"""The LRP rules: how one layer hands the relevance of its output back to its inputs.

Bach et al. 2015, "On Pixel-Wise Explanations for Non-Linear Classifier Decisions by Layer-Wise Relevance
Propagation"; Montavon et al. 2019, "Layer-Wise Relevance Propagation: An Overview" (§10.2 gives the
rules used here). The definitions are Zennit 1.0's (`zennit.rules`), term for term, so that a map equals
Zennit's up to float rounding: the same stabiliser (`z + ε·sign(z)`, with sign(0) = +1), the same handling
of negative inputs (the generalised γ, z⁺ and αβ rules split inputs and weights by sign), the same bias
treatment (z⁺ and αβ keep the positive or negative part of the bias in their positive or negative term,
γ adds γ·b⁺ to it, flat drops it).

A rule is computed without re-running the layer under autograd, as Zennit does: the linear map's transpose
is applied directly (methods/lrp_linear.py: the convolution's input gradient, a matrix product for linear
layers), the output of the unmodified layer (z) is the forward's own, and the terms that multiply an
all-zero part of the input (the negative part of a post-ReLU activation) are skipped, as they add exact
zeros. Each rule is split in `prepare` (what depends on the input: the stabilised denominators), computed
once per forward, and `linear` (the relevance), once per target pass: every target of an image shares the
denominators as it shares the forward. What depends on the weights or the input's shape only (modified
weights, flat's denominator, the z^B bounds) is computed once per layer and kept with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from glassbox.methods.lrp_linear import LinearMap, stabilize

Relevance = tuple[torch.Tensor, ...]


def _split_input(layer: LinearMap, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(x⁺, x⁻), x⁻ None where the input has no negative entry (its terms would add exact zeros)."""
    if layer.may_be_negative(x):
        return x.clamp(min=0), x.clamp(max=0)
    return x, None


@dataclass(frozen=True)
class Epsilon:
    """LRP-ε: R_in = x · Wᵀ(R / (z + ε·sign z)); ε = 0 is LRP-0."""

    epsilon: float

    def prepare(self, layer: LinearMap, x: torch.Tensor, z: torch.Tensor) -> Any:
        return stabilize(z, self.epsilon)

    def linear(self, layer: LinearMap, x: torch.Tensor, den: Any, r: torch.Tensor) -> torch.Tensor:
        return x * layer.transpose(r / den, layer.weight, x)


@dataclass(frozen=True)
class ZPlus:
    """LRP-z⁺ (α1β0): only the positive contributions z⁺ = x⁺W⁺ + b⁺ + x⁻W⁻ share the relevance."""

    stabilizer: float

    def prepare(self, layer: LinearMap, x: torch.Tensor, z: torch.Tensor) -> Any:
        x_pos, x_neg = _split_input(layer, x)
        out = layer.forward(x_pos, layer.positive_weight(), layer.positive_bias())
        if x_neg is not None:
            out = out + layer.forward(x_neg, layer.negative_weight(), None)
        return x_pos, x_neg, stabilize(out, self.stabilizer)

    def linear(self, layer: LinearMap, x: torch.Tensor, prepared: Any, r: torch.Tensor) -> torch.Tensor:
        x_pos, x_neg, den = prepared
        s = r / den
        relevance = x_pos * layer.transpose(s, layer.positive_weight(), x)
        if x_neg is not None:
            relevance = relevance + x_neg * layer.transpose(s, layer.negative_weight(), x)
        return relevance


@dataclass(frozen=True)
class AlphaBeta:
    """LRP-αβ: α × the positive contributions' share − β × the negative contributions' share (α − β = 1)."""

    alpha: float
    beta: float
    stabilizer: float

    def prepare(self, layer: LinearMap, x: torch.Tensor, z: torch.Tensor) -> Any:
        w_pos, w_neg = layer.positive_weight(), layer.negative_weight()
        x_pos, x_neg = _split_input(layer, x)
        positive = layer.forward(x_pos, w_pos, layer.positive_bias())
        negative_out = layer.forward(x_pos, w_neg, layer.negative_bias())
        if x_neg is not None:
            positive = positive + layer.forward(x_neg, w_neg, None)
            negative_out = negative_out + layer.forward(x_neg, w_pos, None)
        return (
            x_pos,
            x_neg,
            stabilize(positive, self.stabilizer),
            stabilize(negative_out, self.stabilizer),
        )

    def linear(self, layer: LinearMap, x: torch.Tensor, prepared: Any, r: torch.Tensor) -> torch.Tensor:
        x_pos, x_neg, den_pos, den_neg = prepared
        w_pos, w_neg = layer.positive_weight(), layer.negative_weight()
        s_pos, s_neg = r / den_pos, r / den_neg
        relevance = self.alpha * (x_pos * layer.transpose(s_pos, w_pos, x)) - self.beta * (
            x_pos * layer.transpose(s_neg, w_neg, x)
        )
        if x_neg is not None:
            relevance = (
                relevance
                + self.alpha * (x_neg * layer.transpose(s_pos, w_neg, x))
                - self.beta * (x_neg * layer.transpose(s_neg, w_pos, x))
            )
        return relevance


@dataclass(frozen=True)
class Gamma:
    """Generalised LRP-γ: where z > 0 the relevance follows W + γW⁺ on x⁺ (and W + γW⁻ on x⁻), where z < 0
    it follows W + γW⁻ on x⁺ (and W + γW⁺ on x⁻); the bias gets the same γ-share as the weights."""

    gamma: float
    stabilizer: float

    def weights(self, layer: LinearMap) -> tuple[torch.Tensor, torch.Tensor, Any, Any]:
        """(W + γW⁺, W + γW⁻, b + γb⁺, b + γb⁻), computed once per layer and γ."""

        def compute() -> tuple[torch.Tensor, torch.Tensor, Any, Any]:
            g, w, b = self.gamma, layer.weight, layer.bias
            return (
                w + g * w.clamp(min=0),
                w + g * w.clamp(max=0),
                None if b is None else b + g * b.clamp(min=0),
                None if b is None else b + g * b.clamp(max=0),
            )

        return layer.derived(("gamma", self.gamma), compute)

    def prepare(self, layer: LinearMap, x: torch.Tensor, z: torch.Tensor) -> Any:
        w_up, w_down, b_up, b_down = self.weights(layer)
        x_pos, x_neg = _split_input(layer, x)
        positive = layer.forward(x_pos, w_up, b_up)
        negative_out = layer.forward(x_pos, w_down, b_down)
        if x_neg is not None:
            positive = positive + layer.forward(x_neg, w_down, None)
            negative_out = negative_out + layer.forward(x_neg, w_up, None)
        signs = (z > 0).to(z), (z < 0).to(z)
        dens = stabilize(positive, self.stabilizer), stabilize(negative_out, self.stabilizer)
        return x_pos, x_neg, signs, dens

    def linear(self, layer: LinearMap, x: torch.Tensor, prepared: Any, r: torch.Tensor) -> torch.Tensor:
        x_pos, x_neg, (is_pos, is_neg), (den_pos, den_neg) = prepared
        w_up, w_down, _, _ = self.weights(layer)
        s_pos, s_neg = is_pos * r / den_pos, is_neg * r / den_neg
        relevance = x_pos * (layer.transpose(s_pos, w_up, x) + layer.transpose(s_neg, w_down, x))
        if x_neg is not None:
            relevance = relevance + x_neg * (
                layer.transpose(s_pos, w_down, x) + layer.transpose(s_neg, w_up, x)
            )
        return relevance


@dataclass(frozen=True)
class Flat:
    """LRP-flat (Lapuschkin et al. 2019): every input of a neuron's receptive field gets an equal share,
    whatever its value or weight (unit weights, unit inputs, no bias). Its denominator depends on the
    input's shape only, so it is computed once per layer and shape, for one row (rows share it)."""

    stabilizer: float

    def prepare(self, layer: LinearMap, x: torch.Tensor, z: torch.Tensor) -> Any:
        return layer.derived(
            ("flat", self.stabilizer),
            lambda: stabilize(
                layer.forward(torch.ones_like(x[:1]), layer.unit_weight(), None), self.stabilizer
            ),
            variant=(x.shape[1:], x.dtype, x.device),
        )

    def linear(self, layer: LinearMap, x: torch.Tensor, den: Any, r: torch.Tensor) -> torch.Tensor:
        return layer.transpose(r / den, layer.unit_weight(), x)


@dataclass(frozen=True)
class ZBox:
    """LRP-z^B (Montavon et al. 2017, deep Taylor decomposition): for inputs known to lie in [low, high]
    (the pixel box, mapped through the model's normalisation), R_in = x·Wᵀs − low·W⁺ᵀs − high·W⁻ᵀs with
    s = R / (z − low·W⁺ − high·W⁻) (the bias enters both and cancels). The box terms depend on the input's
    shape only: computed once per layer and shape, for one row."""

    low: tuple[float, ...]  # per input channel
    high: tuple[float, ...]
    stabilizer: float

    def bounds(self, layer: LinearMap, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(low, high) as one row of inputs, and low·W⁺ + b⁺ + high·W⁻ + b⁻."""

        def compute() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            shape = (1, len(self.low)) + (1,) * (x.dim() - 2)
            row = (1, *x.shape[1:])
            low = torch.tensor(self.low, dtype=x.dtype, device=x.device).view(shape).expand(row)
            high = torch.tensor(self.high, dtype=x.dtype, device=x.device).view(shape).expand(row)
            lower = layer.forward(low, layer.positive_weight(), layer.positive_bias())
            upper = layer.forward(high, layer.negative_weight(), layer.negative_bias())
            return low, high, lower + upper

        return layer.derived(("box", self.low, self.high), compute, variant=(x.shape[1:], x.dtype, x.device))

    def prepare(self, layer: LinearMap, x: torch.Tensor, z: torch.Tensor) -> Any:
        return stabilize(z - self.bounds(layer, x)[2], self.stabilizer)

    def linear(self, layer: LinearMap, x: torch.Tensor, den: Any, r: torch.Tensor) -> torch.Tensor:
        low, high, _ = self.bounds(layer, x)
        s = r / den
        return x * layer.transpose(s, layer.weight, x) - (
            low * layer.transpose(s, layer.positive_weight(), x)
            + high * layer.transpose(s, layer.negative_weight(), x)
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
        *,
        elementwise_sum: bool = False,
    ) -> Relevance:
        """`elementwise_sum`: `layer` adds its inputs; where they have the output's shape, Pᵀs is s itself
        for each of them, so it is used without running the layer again under autograd."""
        s = r / stabilize(z, self.epsilon)
        if elementwise_sum and all(x.shape == z.shape for x in inputs):
            return tuple(x * s for x in inputs)
        with torch.enable_grad():
            leaves = tuple(x.detach().requires_grad_(True) for x in inputs)
            grads = torch.autograd.grad(layer(*leaves), leaves, s)
        return tuple(x * g for x, g in zip(inputs, grads, strict=True))
