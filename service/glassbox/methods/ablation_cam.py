"""Ablation-CAM: channel weights from the drop of the target's score when the channel is switched off;
no gradients.

Desai & Ramaswamy 2020, "Ablation-CAM: Visual Explanations for Deep Convolutional Network via
Gradient-free Localization" (WACV): w_c = (y − y_c) / y, y the target's pre-softmax score and y_c the
score with channel c of the layer ablated; L = ReLU(Σ_c w_c A_c). As pytorch-grad-cam's `AblationCAM`
(every channel ablated): a channel is set to 0 when the image's smallest activation at the layer is 0
(the paper), else to that minimum − 10⁷ (pytorch-grad-cam's deviation for layers with negative values;
its own value also drops by another 10⁷ per row of its ablation batch, which makes the map depend on its
batch size: here every ablated row gets the first row's value, as its `batch_size=1` computes).

The ablated passes of one image (one per channel) are shared by all its targets and run in batches
through the compute scheduler (`LayerReplacementUnit`). Where the network allows it, the layers before
the ablated one run once per batch on the image alone and the batch's rows part at the replaced output
(residual additions broadcast the one row); the first batch carries the unablated output as a check row,
and if the network does not broadcast, or the check row's logits differ from the image's, every batch
runs the whole network on copies of the image instead.
"""

from __future__ import annotations

import torch

from glassbox.backends.base import Model
from glassbox.methods.batching import inference_bytes_per_row
from glassbox.methods.cam import ActivationCam, spatial
from glassbox.serving.execution import run_unit
from glassbox.serving.units import LayerReplacementUnit

ABLATION_OFFSET = 1e7
"""How far below the layer's minimum an ablated channel is set when that minimum is not 0."""
CHECK_TOLERANCE = 1e-4
"""Largest |logit difference| of the check row, relative to max(1, largest |logit|)."""


class AblationCam(ActivationCam):
    """w_c = (y − y_c) / y from one ablated pass per channel."""

    name = "ablation_cam"

    @classmethod
    def unsupported_reason(cls, model: Model) -> str | None:
        reason = super().unsupported_reason(model)
        if reason is None and not model.supports_layer_hooks:
            reason = (
                f"{cls.name} replaces a layer's output: it needs a torch model whose layers take hooks "
                f"(eager torch, not TorchScript or {model.backend_name})"
            )
        return reason

    def validate(self) -> None:
        super().validate()
        shape = self.layer.info.output_shape
        self.channels = shape[0] if self.layer.grid is None else shape[1]
        cap = self.call.settings.max_perturbations
        self.require(
            self.channels <= cap,
            "layer",
            f"layer {self.layer.info.name!r} has {self.channels} channels, so {self.channels} ablated passes "
            f"per image, over the server's cap max_perturbations = {cap}; choose a layer with fewer channels",
        )
        self.shared_prefix: bool | None = None  # None: not tried yet in this call

    def perturbations_per_image(self) -> int:
        return self.channels

    def planned_rows(self, images: int, targets: int) -> tuple[int, int]:
        return images, 0  # the images' own forward; the ablated passes are replaced rows

    def replaced_rows(self, images: int) -> int:
        return images * self.channels

    def layer_maps(
        self, pixels: torch.Tensor, targets: list[tuple[int, ...]], logits: torch.Tensor
    ) -> list[torch.Tensor]:
        grids = spatial(self.outputs, self.layer)
        maps = []
        for i, row in enumerate(targets):
            scores = self._ablated_scores(pixels[i], self.outputs[i], logits[i])
            chosen = list(row)
            original = logits[i, chosen][:, None]
            weights = (original - scores[:, chosen].T) / original  # [targets, C]
            maps.append(torch.einsum("tc,chw->thw", weights.to(grids.device), grids[i]))
        return maps

    def _ablated_scores(
        self, image: torch.Tensor, output: torch.Tensor, logits: torch.Tensor
    ) -> torch.Tensor:
        """Logits [C, classes] of the image with each channel of the layer's output [C, ...] or [T, C]
        ablated in turn."""
        network = self.model.differentiable()
        module = self.model.submodule(self.layer.info.name)
        low = output.min()
        value = low if low == 0 else low - ABLATION_OFFSET
        most = self.call.rows_per_batch(inference_bytes_per_row(self.model))
        scores = []
        start = 0
        while start < self.channels:
            self.call.token.raise_if_cancelled()  # the unit is the yield point
            stop = min(start + self.call.unit_rows("layer_replacement", most), self.channels)
            replacement = output.unsqueeze(0).repeat(stop - start, *([1] * output.dim()))
            rows = torch.arange(stop - start)
            if self.layer.grid is None:
                replacement[rows, rows + start] = value
            else:
                replacement[rows, :, rows + start] = value
            scores.append(self._forward(network, module, image, replacement, output, logits))
            self.call.count(forward=stop - start)
            start = stop
        return torch.cat(scores)

    def _forward(
        self,
        network: torch.nn.Module,
        module: torch.nn.Module,
        image: torch.Tensor,
        replacement: torch.Tensor,
        output: torch.Tensor,
        logits: torch.Tensor,
    ) -> torch.Tensor:
        """The logits of the replaced rows: on the shared prefix once it is known to be right, checked on
        the first batch, else on copies of the image."""
        if self.shared_prefix is None:
            checked = torch.cat([replacement, output.unsqueeze(0)])
            try:
                result = run_unit(LayerReplacementUnit(self.model, network, module, image[None], checked))
            except RuntimeError:
                result = None
            scale = max(1.0, float(logits.abs().max()))
            self.shared_prefix = (
                result is not None
                and result.shape[0] == checked.shape[0]
                and float((result[-1] - logits).abs().max()) <= CHECK_TOLERANCE * scale
            )
            if self.shared_prefix:
                assert result is not None
                return result[:-1]
        rows = replacement.shape[0]
        inputs = image[None] if self.shared_prefix else image[None].repeat(rows, 1, 1, 1)
        return run_unit(LayerReplacementUnit(self.model, network, module, inputs, replacement))
