"""Score-CAM (Wang et al. 2020, "Score-CAM: Score-Weighted Visual Explanations for Convolutional Neural
Networks"): gradient-free CAM whose channel weights come from forward passes.

Each channel of the layer, upsampled to the input (bilinear, corners aligned) and min-max scaled to
[0, 1], multiplies the input; the masked input's pre-softmax score for the target, softmax-normalised
over the channels, is the channel's weight. The CAM is ReLU(Σ_c w_c A_c), upsampled bilinearly to the
input. This is pytorch-grad-cam's `ScoreCAM` (which the maps are checked against); the paper's weight is
the increase of the target's softmax probability over a baseline input, not normalised over the channels.

One forward gives the logits and the activations (a hooked torch forward, or for an ONNX model a pass
of the session that exposes its intermediate tensors); the masked passes (one per channel, shared by
every target of the image) are built one batch at a time. The softmax over the channels turns an absolute
logit difference d into a relative weight change of about d, so the masked passes run on the model's
`amplifying_logits` engine: its fastest no-grad engine only where that engine's logits agree with eager
torch to 1e-5 of the largest logit (backends/forward_selection.py), else eager torch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from glassbox.backends.base import Model
from glassbox.common.hooks import CallHooks, OutputRecorder
from glassbox.methods.base import AttributionMethod, MapResult, MethodOutput
from glassbox.methods.batching import batch_ranges, evaluate_in_batches, inference_bytes_per_row
from glassbox.methods.cam import CamLayerParams, resolve_cam_layer, spatial, upsample
from glassbox.methods.targets import TargetSelector


class ScoreCam(AttributionMethod):
    """Channel weights from the target's score on the input masked by each channel."""

    name = "score_cam"
    Params = CamLayerParams
    needs_gradients = False

    @classmethod
    def unsupported_reason(cls, model: Model) -> str | None:
        if not model.supports_layer_outputs or not any(info.cam_compatible for info in model.layers):
            return f"{cls.name} needs a layer's activations: a model with [C, H, W] or [T, C] layers"
        return None

    def validate(self) -> None:
        self.layer = resolve_cam_layer(self.model, self.params.layer, field=f"{self.field}.layer")
        shape = self.layer.info.output_shape
        channels = shape[0] if self.layer.grid is None else shape[1]
        self.channels = channels
        cap = self.call.settings.max_perturbations
        self.require(
            channels <= cap,
            "layer",
            f"layer {self.layer.info.name!r} has {channels} channels, so {channels} masked inputs per image, "
            f"over the server's cap max_perturbations = {cap}; choose a layer with fewer channels",
        )

    def perturbations_per_image(self) -> int:
        return self.channels

    def run(self, pixels: torch.Tensor, selector: TargetSelector) -> MethodOutput:
        """One forward per batch gives both the logits (hence the targets) and the activations that
        `explain` masks the input with."""
        inputs = pixels.to(self.model.device, torch.float32)
        logits, grids = [], []
        rows = self.call.rows_per_batch(inference_bytes_per_row(self.model))
        with CallHooks() as hooks, torch.no_grad():
            read = self._layer_reader(hooks)
            for start, stop in batch_ranges(inputs.shape[0], rows):
                self.call.check()
                batch_logits, activations = read(inputs[start:stop])
                logits.append(batch_logits.float().cpu())
                self.call.count(forward=stop - start)
                grids.append(spatial(activations.to(self.model.device), self.layer).float())
        self.activations = torch.cat(grids)
        all_logits = torch.cat(logits)
        targets = selector.resolve(all_logits)
        return MethodOutput(all_logits, targets, self.explain(inputs, targets, all_logits))

    def _layer_reader(self, hooks: CallHooks) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """inputs → (logits, the layer's output) in one pass of the model's own kind."""
        name = self.layer.info.name
        if not self.model.supports_layer_hooks:
            model = self.model
            return lambda inputs: model.logits_and_layer(inputs, name)
        capture = OutputRecorder(hooks, self.model.submodule(name))
        network = self.model.differentiable()

        def read(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            capture.clear()
            return network(inputs), capture.last()

        return read

    def explain(
        self, pixels: torch.Tensor, targets: list[tuple[int, ...]], logits: torch.Tensor
    ) -> list[list[MapResult]]:
        return [
            self.explain_image(pixels[i], self.activations[i], targets[i]) for i in range(pixels.shape[0])
        ]

    def explain_image(
        self, image: torch.Tensor, activations: torch.Tensor, targets: tuple[int, ...]
    ) -> list[MapResult]:
        """Maps of one image [3, H, W] from its layer activations [C, h, w]."""
        size = (image.shape[1], image.shape[2])

        def masked(start: int, stop: int) -> torch.Tensor:
            masks = F.interpolate(
                activations[None, start:stop], size=size, mode="bilinear", align_corners=True
            )[0]
            low = masks.amin(dim=(1, 2), keepdim=True)
            high = masks.amax(dim=(1, 2), keepdim=True)
            masks = (masks - low) / (high - low + 1e-8)
            return image[None] * masks[:, None]

        rows = self.call.rows_per_batch(inference_bytes_per_row(self.model))
        scores = evaluate_in_batches(self.call, masked, activations.shape[0], rows, amplifying=True)
        weights = scores[:, list(targets)].T.softmax(dim=1)  # [targets, C]
        cams = torch.einsum("tc,chw->thw", weights.to(activations.device), activations).clamp(min=0)
        upsampled = upsample(cams, size)
        return [MapResult(upsampled[j].cpu(), layer_map=cams[j].cpu()) for j in range(len(targets))]
