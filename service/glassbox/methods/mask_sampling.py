"""The template of the black-box methods that score randomly masked copies of an image (RISE, Sobol
attribution, HSIC attribution): forward passes only, so they run on every backend.

A subclass draws low-resolution masks [N, s, s] in [0, 1] (`draw_masks`), says how one is brought to
the input size (`upsample`), which score of the logits it looks at (`scores`) and how the map follows
from the masks and the scores (`estimate`). The template builds the masked images a batch at a time
(x · m + baseline · (1 − m), written into one reused buffer: a fresh batch-sized tensor per batch
costs more in page faults than the product itself), sends each batch through `CallContext.forward` (a
unit of the compute scheduler, batched with other calls' passes, on the model's fastest no-grad
engine) and keeps only the scores of the targets, so every target of an image shares one set of
forward passes. The masks are drawn once per call: every image of a call sees the same masks.
"""

from __future__ import annotations

from abc import abstractmethod

import torch

from glassbox.methods.base import AttributionMethod, MapResult
from glassbox.methods.batching import inference_bytes_per_row


class MaskSamplingMethod(AttributionMethod):
    """Score the image under N masks, then estimate each target's map from the masks and the scores."""

    needs_gradients = False

    def perturbations_per_image(self) -> int:
        return self.mask_count()

    @abstractmethod
    def mask_count(self) -> int:
        """N, the masked images evaluated per image."""

    @abstractmethod
    def draw_masks(self) -> torch.Tensor:
        """float32 [N, s, s] in [0, 1] (CPU), the masks at their low resolution."""

    @abstractmethod
    def upsample(self, masks: torch.Tensor, height: int, width: int, first: int) -> torch.Tensor:
        """float32 [n, H, W] in [0, 1]: masks `first`..`first + n - 1` at the input size."""

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """The value each target is scored by, from logits [n, C]; default the pre-softmax score."""
        return logits

    @abstractmethod
    def estimate(self, masks: torch.Tensor, scores: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """float32 [k, H, W] maps from the low-resolution masks [N, s, s] and the scores [N, k] (float64)."""

    def baseline_value(self) -> float:
        return float(self.params.baseline_value)

    def explain(
        self, pixels: torch.Tensor, targets: list[tuple[int, ...]], logits: torch.Tensor
    ) -> list[list[MapResult]]:
        masks = self.draw_masks()
        rows = self.call.rows_per_batch(inference_bytes_per_row(self.model))
        out = []
        for i in range(pixels.shape[0]):
            scores = self.masked_scores(pixels[i], masks, list(targets[i]), rows)
            maps = self.estimate(masks, scores, *pixels.shape[-2:])
            out.append([MapResult(map=maps[j]) for j in range(len(targets[i]))])
        return out

    def masked_scores(
        self, image: torch.Tensor, masks: torch.Tensor, index: list[int], rows: int
    ) -> torch.Tensor:
        """float64 [N, k]: the targets' scores on the image under every mask, `rows` images per batch."""
        channels, height, width = image.shape
        baseline = self.baseline_value()
        shifted = image - baseline if baseline else image
        total, start, out = masks.shape[0], 0, []
        batch: torch.Tensor | None = None
        while start < total:
            stop = min(total, start + self.call.unit_rows("forward", rows))
            up = self.upsample(masks[start:stop], height, width, start).to(image.device).unsqueeze(1)
            if batch is None or batch.shape[0] < stop - start:
                batch = torch.empty(stop - start, channels, height, width, device=image.device)
            masked = torch.mul(shifted.unsqueeze(0), up, out=batch[: stop - start])  # (x − b) · m + b
            if baseline:
                masked += baseline
            out.append(self.scores(self.call.forward(masked))[:, index].double())
            start = stop
        return torch.cat(out)


def upsample_nearest(masks: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[n, s, s] → [n, H, W], each input pixel taking the value of the grid cell it lies in
    (cell of row y: floor(y · s / H), as torch's nearest interpolation)."""
    return torch.nn.functional.interpolate(masks.unsqueeze(1), size=(height, width), mode="nearest")[:, 0]
