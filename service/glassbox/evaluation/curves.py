"""Deletion and insertion curves (Petsiuk, Das & Saenko 2018, "RISE"): pixels are replaced by a baseline
(deletion) or revealed on it (insertion) in order of decreasing attribution, in equal steps, and the
target's softmax probability is recorded after each step. A faithful map makes the deletion curve fall
fast (low AUC) and the insertion curve rise fast (high AUC).

The perturbed inputs are built lazily, a memory-budgeted batch at a time (`methods.batching`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchvision.transforms.functional as TF

from glassbox.core.call import CallContext
from glassbox.evaluation.spec import PerturbationBaseline
from glassbox.methods.batching import evaluate_in_batches, inference_bytes_per_row


@dataclass(frozen=True)
class CurveResult:
    """x [P] increasing fractions in [0, 1]; y [N, P] per image; the mean curve and its AUC."""

    x: torch.Tensor
    y: torch.Tensor

    @property
    def mean(self) -> torch.Tensor:
        return self.y.mean(dim=0)

    @property
    def auc(self) -> float:
        return float(torch.trapezoid(self.mean, self.x))


def baseline_images(images: torch.Tensor, baseline: PerturbationBaseline, blur_sigma: float) -> torch.Tensor:
    """What removed pixels become: the Gaussian-blurred image, or each channel's mean over the image."""
    if baseline is PerturbationBaseline.MEAN:
        return images.mean(dim=(2, 3), keepdim=True).expand_as(images).clone()
    radius = max(1, round(3 * blur_sigma))
    size = min(2 * radius + 1, 2 * (min(images.shape[-2:]) - 1) + 1)
    return TF.gaussian_blur(images, kernel_size=[size, size], sigma=[blur_sigma, blur_sigma])


def pixel_order(maps: torch.Tensor) -> torch.Tensor:
    """Flat pixel indices [N, H*W] by decreasing value (ties by index, so the order is deterministic)."""
    return torch.sort(maps.flatten(1), dim=1, descending=True, stable=True).indices


def step_counts(pixels: int, steps: int) -> list[int]:
    """Pixels switched after each of 0..steps steps: round(k · pixels / steps)."""
    return [round(k * pixels / steps) for k in range(steps + 1)]


def forward_budget(images: int, steps: int) -> int:
    """Forward passes of one curve: every image at each of the steps + 1 points."""
    return images * (steps + 1)


def perturbation_curve(
    call: CallContext,
    images: torch.Tensor,
    baselines: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor,
    steps: int,
    *,
    insertion: bool,
) -> CurveResult:
    """The deletion (or insertion) curve of every image: the target probability after 0..steps steps."""
    count, _, height, width = images.shape
    order = pixel_order(maps)
    counts = step_counts(height * width, steps)
    source, filler = (baselines, images) if insertion else (images, baselines)

    def build(start: int, stop: int) -> torch.Tensor:
        rows = []
        for flat in range(start, stop):
            image, step = divmod(flat, steps + 1)
            switched = torch.zeros(height * width, dtype=torch.bool)
            switched[order[image, : counts[step]]] = True
            mask = switched.view(1, height, width)
            rows.append(torch.where(mask, filler[image], source[image]))
        return torch.stack(rows)

    rows = call.rows_per_batch(inference_bytes_per_row(call.model))
    logits = evaluate_in_batches(call, build, count * (steps + 1), rows)
    probabilities = logits.softmax(dim=1).view(count, steps + 1, -1)
    y = probabilities.gather(2, targets.view(count, 1, 1).expand(count, steps + 1, 1)).squeeze(2)
    x = torch.tensor(counts, dtype=torch.float32) / (height * width)
    return CurveResult(x, y)
