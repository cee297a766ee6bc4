"""FullGrad: the input-gradient and every bias-gradient of the network, each made positive, scaled and
summed; it uses no layer.

Srinivas & Fleuret 2019, "Full-Gradient Representation for Neural Network Visualization" (NeurIPS): the
score is exactly the input-gradient term plus the bias-gradient terms of all layers; the saliency map
aggregates |∂score/∂x ⊙ x| and, for every layer with a bias b, |b ⊙ ∂score/∂z| (z the layer's output),
each resized to the input. As pytorch-grad-cam's `FullGrad`: the layers are every `nn.Conv2d` and
`nn.BatchNorm2d` with a bias (a BatchNorm's effective bias is β − μ·γ/√(σ² + ε)); every channel of every
term is min-max scaled on its own as pytorch-grad-cam's `scale_cam_image` does (x ← (x − min) / (max +
10⁻⁷) after subtracting the minimum: a channel whose spread is far below 10⁻⁷ counts less), upsampled
bilinearly, and the channels and terms summed. The map is that sum (pytorch-grad-cam then min-max scales
it); there is no `layer_map`. It runs on the network as loaded (BatchNorm not folded: its biases are
terms of their own).
"""

from __future__ import annotations

import torch
from torch import nn

from glassbox.backends.base import Model
from glassbox.common.hooks import CallHooks, OutputRecorder
from glassbox.methods.base import MapResult, MethodOutput, NoParams
from glassbox.methods.cam import upsample
from glassbox.methods.gradients import GradientMethod, graph_unit_rows
from glassbox.methods.targets import TargetSelector
from glassbox.serving.units import target_passes

SCALE_EPSILON = 1e-7
"""pytorch-grad-cam's `scale_cam_image` divides by max + this."""


def bias_layers(network: nn.Module) -> list[tuple[nn.Module, torch.Tensor]]:
    """(module, its effective bias [C]) of every Conv2d and BatchNorm2d with a bias, in module order."""
    layers: list[tuple[nn.Module, torch.Tensor]] = []
    for module in network.modules():
        if type(module) is nn.Conv2d and module.bias is not None:
            layers.append((module, module.bias.detach()))
        elif type(module) is nn.BatchNorm2d and module.bias is not None:
            assert module.running_mean is not None and module.running_var is not None
            scale = module.weight.detach() / torch.sqrt(module.running_var + module.eps)
            layers.append((module, module.bias.detach() - module.running_mean * scale))
    return layers


def scaled_channel_sum(values: torch.Tensor) -> torch.Tensor:
    """[n, C, h, w] → [n, h, w]: every channel min-max scaled as `scale_cam_image` does, then summed."""
    values = values - values.amin(dim=(2, 3), keepdim=True)
    return (values / (values.amax(dim=(2, 3), keepdim=True) + SCALE_EPSILON)).sum(dim=1)


class FullGrad(GradientMethod):
    """Σ scaled |∂score/∂x ⊙ x| + Σ_layers Σ_c scaled |b_c ⊙ ∂score/∂z_c|."""

    name = "full_grad"
    Params = NoParams
    map_channels = 1

    @classmethod
    def unsupported_reason(cls, model: Model) -> str | None:
        reason = super().unsupported_reason(model)
        if reason is None and not model.supports_layer_hooks:
            reason = (
                f"{cls.name} reads the gradient at every layer with a bias: it needs a torch model whose "
                "layers take hooks (not TorchScript)"
            )
        return reason

    def run(self, pixels: torch.Tensor, selector: TargetSelector) -> MethodOutput:
        network = self.model.differentiable()
        layers = bias_layers(network)
        inputs = pixels.to(self.model.device, torch.float32)
        size = (inputs.shape[2], inputs.shape[3])
        chunk = graph_unit_rows(self.call, self.model)
        logits_out: list[torch.Tensor] = []
        targets_out: list[tuple[int, ...]] = []
        maps: list[list[MapResult]] = [[] for _ in range(inputs.shape[0])]
        with CallHooks() as hooks:
            captures = [OutputRecorder(hooks, module) for module, _bias in layers]
            for start in range(0, inputs.shape[0], chunk):
                self.call.check()
                rows = range(start, min(start + chunk, inputs.shape[0]))
                x = inputs[rows.start : rows.stop].detach().requires_grad_(True)
                for capture in captures:
                    capture.clear()
                with torch.enable_grad():
                    logits = network(x)
                self.call.count(forward=len(rows))
                logits_out.append(logits.detach().cpu())
                targets = selector.resolve_rows(logits.detach(), rows)
                targets_out.extend(targets)
                outputs = [
                    (output, bias)
                    for capture, (_m, bias) in zip(captures, layers, strict=True)
                    for output in capture.outputs
                ]
                for _j, selected, one_hot in target_passes(logits, targets):
                    grads = torch.autograd.grad(
                        logits,
                        [x, *(output for output, _b in outputs)],
                        grad_outputs=one_hot,
                        retain_graph=True,
                        allow_unused=True,
                    )
                    self.call.count(backward=len(selected))
                    total = upsample(scaled_channel_sum((grads[0] * x).abs()), size)
                    for (_output, bias), grad in zip(outputs, grads[1:], strict=True):
                        if grad is not None:
                            total = total + upsample(
                                scaled_channel_sum((bias[None, :, None, None] * grad).abs()), size
                            )
                    for r in selected:
                        maps[start + r].append(MapResult(total[r].detach().cpu()))
        return MethodOutput(torch.cat(logits_out), targets_out, maps)
