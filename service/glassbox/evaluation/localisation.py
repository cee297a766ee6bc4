"""Localisation against a ground-truth region (an object mask or a rectangle):

* the pointing game (Zhang et al. 2018, "Top-down neural attention by excitation backprop"): a hit when
  a maximum of the map lies on the region, or within `tolerance` pixels of it;
* relevance mass accuracy (Arras, Osman & Samek 2022, "CLEVR-XAI"): the share of the map's positive
  relevance that falls inside the region.

A uniform map scores the region's area fraction on both, which is the chance level the verdict uses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PAPER_TOLERANCE_PIXELS = 15
PAPER_INPUT_SIDE = 224


def paper_tolerance(height: int, width: int) -> int:
    """Zhang et al.'s pointing tolerance, 15 pixels at 224 × 224, scaled to the input's smaller side."""
    return round(PAPER_TOLERANCE_PIXELS * min(height, width) / PAPER_INPUT_SIDE)


def dilate(masks: torch.Tensor, pixels: int) -> torch.Tensor:
    """bool [N, H, W] masks grown by `pixels` in every direction (Chebyshev distance)."""
    if pixels == 0:
        return masks
    grown = F.max_pool2d(masks.float().unsqueeze(1), kernel_size=2 * pixels + 1, stride=1, padding=pixels)
    return grown.squeeze(1) > 0


def pointing_hits(maps: torch.Tensor, masks: torch.Tensor, tolerance: int = 0) -> torch.Tensor:
    """bool [N]: whether any maximum of map i lies on (dilated) mask i."""
    flat = maps.flatten(1)
    maxima = flat == flat.max(dim=1, keepdim=True).values
    return (maxima & dilate(masks, tolerance).flatten(1)).any(dim=1)


def relevance_mass(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """float [N]: positive relevance inside mask i over all positive relevance of map i (0 if none)."""
    positive = maps.clamp(min=0).flatten(1).double()
    total = positive.sum(dim=1)
    inside = (positive * masks.flatten(1)).sum(dim=1)
    return torch.where(total > 0, inside / total.clamp(min=1e-300), torch.zeros_like(total)).float()


def area_fraction(masks: torch.Tensor) -> torch.Tensor:
    """float [N]: the share of each image's pixels inside its mask."""
    return masks.flatten(1).float().mean(dim=1)
