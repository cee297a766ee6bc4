"""Neuron gradient: the gradient of one unit of a layer with respect to the input pixels.

The unit is one activation (a neuron), the sum of one channel, or the sum of the whole layer, chosen by
layer name and index — the input-space view of what a unit responds to (Captum's NeuronGradient and,
with `guided`, NeuronGuidedBackprop; Springenberg et al. 2015 for the guided rule). It explains the
network, not a class: each image gets one map and no target.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import torch

from glassbox.backends.base import Model
from glassbox.common.hooks import CallHooks, OutputRecorder, ReluRule, ReluRules, RuleSwitch
from glassbox.core.errors import FailedPrecondition, echo
from glassbox.core.reasons import Reason
from glassbox.methods.base import MapResult, MethodOutput
from glassbox.methods.gradients import GradientMethod, graph_unit_rows, relu_rule_unsupported
from glassbox.methods.targets import TargetSelector


class NeuronScope(StrEnum):
    NEURON = "neuron"
    CHANNEL = "channel"
    LAYER = "layer"


@dataclass(frozen=True)
class NeuronGradientParams:
    layer: str = ""
    scope: NeuronScope = NeuronScope.NEURON
    index: tuple[int, ...] = ()
    guided: bool = False


class NeuronGradient(GradientMethod):
    """∂ unit / ∂ pixels, the unit being a neuron, a channel's sum or the layer's sum."""

    name = "neuron_gradient"
    Params = NeuronGradientParams
    explains_classes = False

    @classmethod
    def unsupported_reason(cls, model: Model) -> str | None:
        reason = super().unsupported_reason(model)
        if reason is None and (not model.supports_layer_hooks or not model.layers):
            reason = f"{cls.name} needs a model with hookable layers (TorchScript has none)"
        return reason

    def validate(self) -> None:
        p = self.params
        self.require(bool(p.layer), "layer", "is required: a layer name from GetModel")
        shape = self.model.layer_info(p.layer, field=f"{self.field}.layer").output_shape
        if p.scope is NeuronScope.NEURON:
            self.require(
                len(p.index) == len(shape),
                "index",
                f"must have {len(shape)} entries for a layer of shape {list(shape)}, got {list(p.index)}",
            )
            for position, (i, size) in enumerate(zip(p.index, shape, strict=True)):
                self.require(
                    0 <= i < size,
                    f"index[{position}]",
                    f"{i} is out of range 0..{size - 1} of shape {list(shape)}",
                )
        elif p.scope is NeuronScope.CHANNEL:
            self.require(
                len(shape) >= 2,
                "scope",
                f"NEURON_SCOPE_CHANNEL needs a layer with channels ([C, H, W] or [tokens, C]); layer "
                f"{echo(p.layer)} has shape {list(shape)}: use NEURON_SCOPE_NEURON for one of its units",
            )
            channels = shape[-1] if len(shape) == 2 else shape[0]
            self.require(
                len(p.index) == 1, "index", f"must be [channel] for NEURON_SCOPE_CHANNEL, got {list(p.index)}"
            )
            self.require(
                0 <= p.index[0] < channels,
                "index[0]",
                f"channel {p.index[0]} is out of range 0..{channels - 1}",
            )
        else:
            self.require(not p.index, "index", f"must be empty for NEURON_SCOPE_LAYER, got {list(p.index)}")
        if p.guided:
            reason = relu_rule_unsupported(f"{self.name} with guided", self.model)
            if reason is not None:
                raise FailedPrecondition(
                    reason, field=f"{self.field}.guided", reason=Reason.METHOD_NOT_SUPPORTED
                )

    def applies_relu_rule(self) -> bool:
        return self.params.guided

    def unit(self, activations: torch.Tensor) -> torch.Tensor:
        """The chosen unit's value per row, [n]."""
        p = self.params
        if p.scope is NeuronScope.NEURON:
            return activations[(slice(None), *p.index)]
        if p.scope is NeuronScope.CHANNEL:
            channel = activations[..., p.index[0]] if activations.dim() == 3 else activations[:, p.index[0]]
            return channel.flatten(1).sum(dim=1)
        return activations.flatten(1).sum(dim=1)

    def run(self, pixels: torch.Tensor, selector: TargetSelector) -> MethodOutput:
        net, layer = self.model.hooked_network(self.params.layer)
        inputs = pixels.to(self.model.device, torch.float32)
        chunk = graph_unit_rows(self.call, self.model)
        logits_out: list[torch.Tensor] = []
        maps: list[list[MapResult]] = []
        with CallHooks() as hooks:
            if self.params.guided:
                ReluRules(hooks, net, RuleSwitch(ReluRule.GUIDED))
            capture = OutputRecorder(hooks, layer)
            for start in range(0, inputs.shape[0], chunk):
                self.call.check()
                x = inputs[start : start + chunk].detach().requires_grad_(True)
                capture.clear()
                with torch.enable_grad():
                    logits = net(x)
                    unit = self.unit(capture.last())
                self.call.count(forward=x.shape[0])
                (grad,) = torch.autograd.grad(unit.sum(), x)
                self.call.count(backward=x.shape[0])
                logits_out.append(logits.detach().cpu())
                maps.extend([MapResult(g.cpu())] for g in grad)
        return MethodOutput(torch.cat(logits_out), selector.resolve(None), maps)
