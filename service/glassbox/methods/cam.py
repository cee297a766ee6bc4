"""The CAM family's shared part: choosing the layer, reading token layers as grids, the CAM template.

`CamMethod` (pytorch-grad-cam's BaseCAM, per call and thread-safe): one forward with the layer's output
captured, then per target pass one backward to that layer only (cheap: it stops there), `cam_image`
(activations, gradients) → layer map — pytorch-grad-cam's `get_cam_image`; by default the channel sum
weighted by `cam_weights`, so most subclasses define only the weights — then ReLU and bilinear
upsampling to the input. The CAM at layer resolution is returned as `layer_map`.

`ActivationCam` is the same template for the CAMs that need no gradient (EigenCAM, KPCA-CAM, FEM,
Ablation-CAM): one pass per batch reads the logits and the layer's output (`LayerOutputUnit`, on any
backend that exposes layer outputs), and `cam_image(activations)` makes the map.

Token layers [T, C] (vision transformers) are read as a grid [C, gh, gw]: the grid is inferred from the
model — its patch-embedding layer's [C, gh, gw] output, the rest of the T tokens being class/register
tokens, which are dropped — or, failing that, from square patches that tile the input size. Nothing is
hard-coded (pytorch-grad-cam's users hard-code 14×14; its issues #76, #257, #509).

`resolve_cam_layer` and `spatial` are public for the other CAM methods (Score-CAM).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from glassbox.backends.base import LayerInfo, Model
from glassbox.common.hooks import CallHooks, OutputRecorder, ReluRule, ReluRules, RuleSwitch
from glassbox.core.errors import InvalidArgument
from glassbox.methods.base import AttributionMethod, MapResult, MethodOutput
from glassbox.methods.batching import inference_bytes_per_row
from glassbox.methods.gradients import GradientMethod, for_rows, graph_rows_per_batch, graph_unit_rows
from glassbox.methods.targets import TargetSelector
from glassbox.serving.execution import run_unit
from glassbox.serving.units import LayerGradientResult, LayerGradientUnit, LayerOutputUnit, target_passes


@dataclass(frozen=True)
class CamLayerParams:
    """The parameters of a CAM method that has only a layer (empty: the model's default CAM layer)."""

    layer: str = ""


@dataclass(frozen=True)
class CamLayer:
    """A resolved CAM layer: its info, and for token layers how tokens map to a grid."""

    info: LayerInfo
    extra_tokens: int = 0  # leading tokens that are not patches (class token, registers)
    grid: tuple[int, int] | None = None  # (gh, gw) for token layers


def resolve_cam_layer(model: Model, name: str, *, field: str) -> CamLayer:
    """The layer to use: `name`, else the model's default_cam_layer, else its last spatial layer."""
    if not name:
        name = model.config.default_cam_layer or _last_spatial_layer(model, field)
    info = model.layer_info(name, field=field)
    if not info.cam_compatible:
        raise InvalidArgument(
            f"layer {name!r} has output shape {list(info.output_shape)}; CAM methods need a [C, H, W] or "
            "token [T, C] layer (GetModel marks them cam_compatible)",
            field=field,
        )
    if len(info.output_shape) == 3:
        return CamLayer(info)
    extra, grid_h, grid_w = token_grid(model, info.output_shape[0], field=field)
    return CamLayer(info, extra_tokens=extra, grid=(grid_h, grid_w))


def _last_spatial_layer(model: Model, field: str) -> str:
    spatial = [
        layer.name
        for layer in model.layers
        if len(layer.output_shape) == 3 and layer.output_shape[1] * layer.output_shape[2] > 1
    ]
    if not spatial:
        raise InvalidArgument(
            f"model {model.name!r} has no default_cam_layer; choose a cam_compatible layer from GetModel",
            field=field,
        )
    return spatial[-1]


def token_grid(model: Model, tokens: int, *, field: str) -> tuple[int, int, int]:
    """(extra tokens, grid height, grid width) of a token layer with `tokens` tokens."""
    from_model = [
        (tokens - layer.output_shape[1] * layer.output_shape[2], layer.output_shape[1], layer.output_shape[2])
        for layer in model.layers
        if len(layer.output_shape) == 3
        and 0 <= tokens - layer.output_shape[1] * layer.output_shape[2] < tokens // 2
    ]
    if from_model:
        return min(from_model)
    height, width = model.config.input.height, model.config.input.width
    for extra in range(tokens):
        for patch in range(1, min(height, width) + 1):
            if (
                height % patch == 0
                and width % patch == 0
                and (height // patch) * (width // patch) == tokens - extra
            ):
                return extra, height // patch, width // patch
    raise InvalidArgument(f"cannot read the {tokens} tokens of this layer as a patch grid", field=field)


def spatial(activations: torch.Tensor, layer: CamLayer) -> torch.Tensor:
    """A layer output [n, C, h, w] or [n, T, C] as a grid [n, C, h, w] (token layers: patches only)."""
    if layer.grid is None:
        return activations
    grid_h, grid_w = layer.grid
    patches = activations[:, layer.extra_tokens :, :]
    return patches.reshape(patches.shape[0], grid_h, grid_w, patches.shape[2]).permute(0, 3, 1, 2)


def upsample(cams: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling (half-pixel centres, as cv2.resize and Captum's interpolate) of [n, h, w]."""
    return F.interpolate(cams.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)


class CamMethod(GradientMethod):
    """Template: capture the layer, back-propagate each target to it, weight its channels, upsample.

    With a `relu_rule` (Guided Grad-CAM) each target also gets a backward to the input under that rule,
    and the map is that gradient times the upsampled CAM. When no rule ReLU ran after the layer's output
    was made (resnet18's `layer4`: only pooling and the classifier follow), the rule cannot change the
    gradient at the layer, so one backward under the rule yields both gradients.

    Without a rule, each chunk is a `LayerGradientUnit` of the compute scheduler; a method whose
    `layer_gradient` needs the autograd graph at the layer (`needs_graph`: Shapley-CAM's second
    derivative) runs its hooked forward in the call instead."""

    map_channels = 1

    Params: ClassVar[type] = CamLayerParams
    apply_relu = True
    needs_graph: ClassVar[bool] = False

    @classmethod
    def unsupported_reason(cls, model: Model) -> str | None:
        reason = super().unsupported_reason(model)
        if reason is None and (
            not model.supports_layer_hooks or not any(i.cam_compatible for i in model.layers)
        ):
            reason = (
                f"{cls.name} needs a model with hookable [C, H, W] or [T, C] layers (TorchScript has none)"
            )
        return reason

    def validate(self) -> None:
        self.layer = resolve_cam_layer(self.model, self.params.layer, field=f"{self.field}.layer")

    def cam_image(self, activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        """The layer map [n, h, w] (before the ReLU) from the layer's activations and gradients, both
        [n, C, h, w]: pytorch-grad-cam's `get_cam_image`. Default: Σ_c cam_weights_c · A_c."""
        return (self.cam_weights(activations, gradients)[:, :, None, None] * activations).sum(dim=1)

    def cam_weights(self, activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        """Per-channel weights [n, C] for the default `cam_image`: a subclass defines one of the two."""
        raise NotImplementedError(f"{type(self).__name__} defines neither cam_weights nor cam_image")

    def forward_context(self) -> contextlib.AbstractContextManager[object]:
        """Entered around the in-call forward with graph (Shapley-CAM: attention that has a second
        derivative)."""
        return contextlib.nullcontext()

    def layer_gradient(
        self, logits: torch.Tensor, one_hot: torch.Tensor, activation: torch.Tensor
    ) -> torch.Tensor:
        """What `cam_image` gets as the gradients: ∂(the selected scores)/∂(the layer's output)."""
        (grad,) = torch.autograd.grad(logits, activation, grad_outputs=one_hot, retain_graph=True)
        return grad

    def run(self, pixels: torch.Tensor, selector: TargetSelector) -> MethodOutput:
        if self.relu_rule is None and not self.needs_graph:
            return self._run_in_units(pixels, selector)
        net, layer = self.model.hooked_network(self.layer.info.name)
        inputs = pixels.to(self.model.device, torch.float32)
        size = (inputs.shape[2], inputs.shape[3])
        chunk = graph_unit_rows(self.call, self.model)
        logits_out: list[torch.Tensor] = []
        targets_out: list[tuple[int, ...]] = []
        maps: list[list[MapResult]] = [[] for _ in range(inputs.shape[0])]
        switch = RuleSwitch(ReluRule.PLAIN)
        with CallHooks() as hooks:
            rules = None if self.relu_rule is None else ReluRules(hooks, net, switch)
            capture = OutputRecorder(hooks, layer)  # after the rules: it must see the output they produce
            rules_before_layer: list[int] = []
            if rules is not None:
                hooks.forward_hook(layer, lambda *_: rules_before_layer.append(rules.applied))
            for start in range(0, inputs.shape[0], chunk):
                self.call.check()
                rows = range(start, min(start + chunk, inputs.shape[0]))
                x = inputs[rows.start : rows.stop].detach().requires_grad_(True)
                capture.clear()
                rules_before_layer.clear()
                with torch.enable_grad(), self.forward_context():
                    logits = net(x)
                self.call.count(forward=len(rows))
                logits_out.append(logits.detach().cpu())
                targets = selector.resolve_rows(logits.detach(), rows)
                targets_out.extend(targets)
                activation = capture.last()
                grids = spatial(activation.detach(), self.layer)
                shared_backward = rules is not None and rules_before_layer[-1] == rules.applied
                for _j, selected, one_hot in target_passes(logits, targets):
                    grad, guided = self._gradients(
                        logits, one_hot, activation, x, switch, shared_backward, rows=len(selected)
                    )
                    cams = self._cams(grids, spatial(grad, self.layer))
                    upsampled = upsample(cams, size)
                    if guided is not None:
                        upsampled = guided * upsampled.unsqueeze(1)
                    for r in selected:
                        maps[start + r].append(MapResult(upsampled[r].cpu(), layer_map=cams[r].cpu()))
        return MethodOutput(torch.cat(logits_out), targets_out, maps)

    def _run_in_units(self, pixels: torch.Tensor, selector: TargetSelector) -> MethodOutput:
        """Without a ReLU rule the passes need only the layer's output and its gradients: each chunk is a
        `LayerGradientUnit` of the compute scheduler, merged with other calls' chunks on the same layer."""
        net, layer = self.model.hooked_network(self.layer.info.name)
        inputs = pixels.to(self.model.device, torch.float32)
        size = (inputs.shape[2], inputs.shape[3])
        most = graph_rows_per_batch(self.call, self.model)
        logits_out: list[torch.Tensor] = []
        targets_out: list[tuple[int, ...]] = []
        maps: list[list[MapResult]] = [[] for _ in range(inputs.shape[0])]
        start = 0
        while start < inputs.shape[0]:
            self.call.token.raise_if_cancelled()  # the unit is the yield point
            rows = range(start, min(start + self.call.unit_rows("gradient", most), inputs.shape[0]))
            result: LayerGradientResult = run_unit(
                LayerGradientUnit(
                    self.model,
                    net,
                    layer,
                    inputs[rows.start : rows.stop],
                    for_rows(selector.resolve_rows, rows),
                )
            )
            self.call.count(forward=len(rows))
            logits_out.append(result.logits.cpu())
            targets_out.extend(result.targets)
            grids = spatial(result.activation, self.layer)
            for gradient_pass in result.passes:
                self.call.count(backward=len(gradient_pass.selected))
                cams = self._cams(grids, spatial(gradient_pass.gradient, self.layer))
                upsampled = upsample(cams, size)
                for r in gradient_pass.selected:
                    maps[start + r].append(MapResult(upsampled[r].cpu(), layer_map=cams[r].cpu()))
            start = rows.stop
        return MethodOutput(torch.cat(logits_out), targets_out, maps)

    def _cams(self, grids: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        """The class activation maps [n, h, w] of the layer's grids and their gradients."""
        cams = self.cam_image(grids, gradients)
        return cams.clamp(min=0) if self.apply_relu else cams

    def _gradients(
        self,
        logits: torch.Tensor,
        one_hot: torch.Tensor,
        activation: torch.Tensor,
        x: torch.Tensor,
        switch: RuleSwitch,
        shared_backward: bool,
        *,
        rows: int,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The plain gradient at the layer and, with a ReLU rule, the rule's gradient at the input, from
        one backward pass or two (counted for `rows` rows each)."""
        if self.relu_rule is not None and shared_backward:
            switch.rule = self.relu_rule
            grad, guided = torch.autograd.grad(
                logits, (activation, x), grad_outputs=one_hot, retain_graph=True
            )
            self.call.count(backward=rows)
            return grad, guided
        switch.rule = ReluRule.PLAIN
        grad = self.layer_gradient(logits, one_hot, activation)
        self.call.count(backward=rows)
        if self.relu_rule is None:
            return grad, None
        switch.rule = self.relu_rule
        (guided,) = torch.autograd.grad(logits, x, grad_outputs=one_hot, retain_graph=True)
        self.call.count(backward=rows)
        return grad, guided


class ActivationCam(AttributionMethod):
    """Template of the CAMs made from the layer's activations without gradients: per batch one pass
    gives the logits (hence the targets) and the layer's output; `layer_maps` turns them into each
    image's maps (by default `cam_image`, computed once per image and shared by all its targets); ReLU
    and bilinear upsampling as in `CamMethod`."""

    Params: ClassVar[type] = CamLayerParams
    needs_gradients = False
    map_channels = 1

    @classmethod
    def unsupported_reason(cls, model: Model) -> str | None:
        if not model.supports_layer_outputs or not any(info.cam_compatible for info in model.layers):
            return (
                f"{cls.name} needs a layer's activations: a torch or ONNX model with [C, H, W] or [T, C] "
                "layers"
            )
        return None

    def validate(self) -> None:
        self.layer = resolve_cam_layer(self.model, self.params.layer, field=f"{self.field}.layer")

    def run(self, pixels: torch.Tensor, selector: TargetSelector) -> MethodOutput:
        inputs = pixels.to(self.model.device, torch.float32)
        most = self.call.rows_per_batch(inference_bytes_per_row(self.model))
        logits: list[torch.Tensor] = []
        outputs: list[torch.Tensor] = []
        start = 0
        while start < inputs.shape[0]:
            self.call.token.raise_if_cancelled()  # the unit is the yield point
            stop = min(start + self.call.unit_rows("forward", most), inputs.shape[0])
            batch_logits, values = run_unit(
                LayerOutputUnit(self.model, inputs[start:stop], self.layer.info.name)
            )
            self.call.count(forward=stop - start)
            logits.append(batch_logits.float().cpu())
            outputs.append(values.to(self.model.device, torch.float32))
            start = stop
        self.outputs = torch.cat(outputs)
        all_logits = torch.cat(logits)
        targets = selector.resolve(all_logits)
        return MethodOutput(all_logits, targets, self.explain(inputs, targets, all_logits))

    def cam_image(self, activations: torch.Tensor) -> torch.Tensor:
        """The target-independent layer map [n, h, w] (before the ReLU) of activations [n, C, h, w]."""
        raise NotImplementedError(f"{type(self).__name__} defines neither cam_image nor layer_maps")

    def layer_maps(
        self, pixels: torch.Tensor, targets: list[tuple[int, ...]], logits: torch.Tensor
    ) -> list[torch.Tensor]:
        """Per image, its layer maps [k_i, h, w] before the ReLU (the layer's output as read by `run` is
        `self.outputs`); default: the image's `cam_image` for each of its targets."""
        cams = self.cam_image(spatial(self.outputs, self.layer))
        return [cams[i].expand(len(row), *cams.shape[1:]) for i, row in enumerate(targets)]

    def explain(
        self, pixels: torch.Tensor, targets: list[tuple[int, ...]], logits: torch.Tensor
    ) -> list[list[MapResult]]:
        size = (pixels.shape[2], pixels.shape[3])
        maps: list[list[MapResult]] = []
        for cams in self.layer_maps(pixels, targets, logits):
            cams = cams.clamp(min=0)
            upsampled = upsample(cams, size)
            maps.append(
                [MapResult(upsampled[j].cpu(), layer_map=cams[j].cpu()) for j in range(cams.shape[0])]
            )
        return maps
