"""What FeatureAblation and ShapleyValueSampling share: the image cut into feature groups (SLIC superpixels
with their grid fallback, or a regular grid), inputs showing some groups and the baseline value elsewhere,
and one batched evaluation of those inputs that serves every target.

Each group's attribution is spread over its pixels, as Captum's methods do with a `feature_mask`; the
map, the segmentation and the per-group weights are returned like LIME's. The inputs are built a batch
at a time (`superpixels.compose`), duplicates (a coalition two permutations share) are evaluated once,
and the whole image is never evaluated again: its logits come with the call.
"""

from __future__ import annotations

from abc import abstractmethod

import torch

from glassbox.methods.base import AttributionMethod, MapResult
from glassbox.methods.batching import evaluate_in_batches, inference_bytes_per_row
from glassbox.methods.superpixels import (
    MAX_SUPERPIXELS,
    Segmentation,
    compose,
    from_labels,
    grid,
    segment,
    superpixel_map,
)


class FeatureGroupMethod(AttributionMethod):
    """Template: group the pixels, evaluate the coalitions of groups (`coalitions`), turn each target's
    scores into group weights (`weights`). Params have `superpixels`, `grid`, `baseline_value`."""

    needs_gradients = False

    def validate(self) -> None:
        p = self.params
        self.require(
            2 <= p.superpixels <= MAX_SUPERPIXELS,
            "superpixels",
            f"must be in 2..{MAX_SUPERPIXELS}, got {p.superpixels}",
        )
        self.require(
            0.0 <= p.baseline_value <= 1.0, "baseline_value", f"must be in [0, 1], got {p.baseline_value}"
        )

    def segmentation(self, image: torch.Tensor) -> Segmentation:
        """The feature groups of one image [3, H, W]."""
        if self.params.grid:
            return from_labels(image, grid(image.shape[1], image.shape[2], self.params.superpixels), "grid")
        return segment(image, self.params.superpixels)

    @abstractmethod
    def coalitions(self, count: int) -> torch.Tensor:
        """bool [N, count]: the groups each evaluated input shows (the others show the baseline)."""

    @abstractmethod
    def weights(self, keep: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """float64 [count]: the groups' attributions for one target from its scores [N] on `keep`."""

    def explain(
        self, pixels: torch.Tensor, targets: list[tuple[int, ...]], logits: torch.Tensor
    ) -> list[list[MapResult]]:
        rows = self.call.rows_per_batch(inference_bytes_per_row(self.model))
        return [self.explain_image(pixels[i], targets[i], logits[i], rows) for i in range(pixels.shape[0])]

    def explain_image(
        self, image: torch.Tensor, targets: tuple[int, ...], logits: torch.Tensor, rows: int
    ) -> list[MapResult]:
        self.call.check()
        segmentation = self.segmentation(image)
        labels, baseline = segmentation.labels, self.params.baseline_value
        keep = self.coalitions(segmentation.count)
        distinct, sample_of = torch.unique(keep, dim=0, return_inverse=True)
        whole = distinct.all(dim=1)
        evaluate = distinct[~whole]
        scores = torch.empty(distinct.shape[0], logits.shape[0], dtype=logits.dtype)
        scores[whole] = logits
        if evaluate.shape[0]:
            scores[~whole] = evaluate_in_batches(
                self.call,
                lambda start, stop: compose(image, labels, evaluate[start:stop], baseline),
                evaluate.shape[0],
                rows,
            )
        scores = scores[sample_of]
        results = []
        for target in targets:
            weights = self.weights(keep, scores[:, target].double())
            results.append(
                MapResult(
                    superpixel_map(labels, weights),
                    segments=labels,
                    segment_weights=weights.to(torch.float32),
                    segmentation=segmentation.method,
                )
            )
        return results
