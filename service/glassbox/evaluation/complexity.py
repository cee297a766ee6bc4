"""Sparseness of a map: the Gini index of its absolute values (Chalasani, Chen, Chowdhury, Wu & Jha 2020,
"Concise explanations of neural networks using adversarial training"), in [0, 1]: 0 when every pixel
carries the same relevance, near 1 when one pixel carries it all. Informative only: a sparse map is
easier to read, not necessarily more faithful."""

from __future__ import annotations

import torch

EPSILON = 1e-7
"""Added to every |value| so an all-zero map is uniform (Gini 0) rather than undefined."""


def gini(maps: torch.Tensor) -> torch.Tensor:
    """float [N]: Σ_k (2k − n − 1) · a_(k) / (n · Σ_k a_(k)) over |map i| sorted increasingly, k = 1..n."""
    values = torch.sort(maps.flatten(1).abs().double() + EPSILON, dim=1).values
    n = values.shape[1]
    ranks = torch.arange(1, n + 1, dtype=torch.float64)
    return (((2 * ranks - n - 1) * values).sum(dim=1) / (n * values.sum(dim=1))).float()
