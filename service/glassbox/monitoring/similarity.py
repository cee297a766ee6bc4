"""How alike two versions' maps of the same images and targets are, per image:

* Spearman rank correlation of |map| (scipy), and SSIM of |map| / max |map| (scikit-image, 7 × 7 window,
  data range 1): the definitions the evaluation job's randomisation check uses (`randomisation.spearman`,
  `randomisation.ssim`);
* top-k% overlap: the share of the k% most relevant pixels (by |map|) of one map that are also among the
  k% most relevant of the other (1 = the same pixels; ties broken by pixel index, as the deletion curve
  orders pixels);
* prediction agreement: the share of images both versions give the same top-1 class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from glassbox.evaluation.curves import pixel_order
from glassbox.evaluation.randomisation import spearman, ssim


@dataclass(frozen=True)
class PerImageSimilarity:
    """float [N] each: one value per image."""

    spearman: torch.Tensor
    ssim: torch.Tensor
    top_k_overlap: torch.Tensor


def top_k_count(pixels: int, percent: float) -> int:
    """How many pixels make the top `percent`% (at least one)."""
    return max(1, round(pixels * percent / 100.0))


def top_k_overlap(a: torch.Tensor, b: torch.Tensor, percent: float) -> torch.Tensor:
    """float [N]: |top-k(|a_i|) ∩ top-k(|b_i|)| / k, k = `percent`% of the pixels."""
    k = top_k_count(a[0].numel(), percent)
    first = torch.zeros(a.shape[0], a[0].numel(), dtype=torch.bool)
    second = torch.zeros_like(first)
    first.scatter_(1, pixel_order(a.abs())[:, :k], True)
    second.scatter_(1, pixel_order(b.abs())[:, :k], True)
    return (first & second).sum(dim=1).float() / k


def map_similarity(before: torch.Tensor, after: torch.Tensor, percent: float) -> PerImageSimilarity:
    """Per-image similarity of two [N, H, W] stacks of maps of the same images and targets."""
    return PerImageSimilarity(
        spearman(before, after), ssim(before, after), top_k_overlap(before, after, percent)
    )


def prediction_agreement(before: torch.Tensor, after: torch.Tensor) -> float:
    """The share of images whose top-1 class (of logits [N, C]) is the same under both versions."""
    return float((before.argmax(dim=1) == after.argmax(dim=1)).float().mean())
