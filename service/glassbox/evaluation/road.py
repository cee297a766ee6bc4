"""ROAD: RemOve And Debias (Rong, Leemann, Borisov, Kasneci & Kasneci 2022, "A consistent and efficient
evaluation strategy for attribution methods"). The most relevant pixels are removed by noisy linear
imputation: each removed pixel becomes the weighted mean of its 8 neighbours (weight 1/6 for the four
direct ones, 1/12 for the diagonals), solved jointly for all removed pixels as one sparse linear system
per image, plus Gaussian noise. Unlike a constant baseline, the imputed region carries no shape that
reveals where pixels were removed, so the accuracy drop measures the information removed, not the mask.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch

from glassbox.core.call import CallContext
from glassbox.evaluation.curves import CurveResult, pixel_order
from glassbox.methods.batching import evaluate_in_batches, inference_bytes_per_row

NEIGHBOURS: tuple[tuple[int, int, float], ...] = (
    (-1, -1, 1 / 12),
    (-1, 0, 1 / 6),
    (-1, 1, 1 / 12),
    (0, -1, 1 / 6),
    (0, 1, 1 / 6),
    (1, -1, 1 / 12),
    (1, 0, 1 / 6),
    (1, 1, 1 / 12),
)
"""(row offset, column offset, weight) of the imputation's neighbourhood (the paper's weights)."""


def linear_imputation(image: torch.Tensor, removed: torch.Tensor) -> torch.Tensor:
    """The image [3, H, W] with the pixels where `removed` [H, W] is True replaced by the solution of
    x_i · Σ_n w_n = Σ_n w_n · x_n over each removed pixel's neighbours n inside the image."""
    channels, height, width = image.shape
    unknown = removed.flatten().numpy()
    indices = np.flatnonzero(unknown)
    if indices.size == 0:
        return image.clone()
    values = image.reshape(channels, -1).double().numpy()
    variable = np.full(height * width, -1, dtype=np.int64)
    variable[indices] = np.arange(indices.size)
    rows, cols = np.divmod(indices, width)
    diagonal = np.zeros(indices.size)
    right = np.zeros((indices.size, channels))
    entries_row, entries_col, entries_value = [], [], []
    for dy, dx, weight in NEIGHBOURS:
        r, c = rows + dy, cols + dx
        valid = (r >= 0) & (r < height) & (c >= 0) & (c < width)
        source = np.flatnonzero(valid)
        neighbour = r[valid] * width + c[valid]
        diagonal[source] += weight
        is_unknown = unknown[neighbour]
        entries_row.append(source[is_unknown])
        entries_col.append(variable[neighbour[is_unknown]])
        entries_value.append(np.full(int(is_unknown.sum()), -weight))
        right[source[~is_unknown]] += weight * values[:, neighbour[~is_unknown]].T
    matrix = scipy.sparse.csc_matrix(
        (
            np.concatenate([diagonal, *entries_value]),
            (
                np.concatenate([np.arange(indices.size), *entries_row]),
                np.concatenate([np.arange(indices.size), *entries_col]),
            ),
        ),
        shape=(indices.size, indices.size),
    )
    solution = scipy.sparse.linalg.spsolve(matrix, right).reshape(indices.size, channels)
    imputed = values.copy()
    imputed[:, indices] = solution.T
    return torch.from_numpy(imputed).to(image.dtype).view(channels, height, width)


def noisy_linear_imputation(
    image: torch.Tensor, removed: torch.Tensor, noise: float, generator: torch.Generator
) -> torch.Tensor:
    """Linear imputation plus N(0, noise²) on the imputed pixels, clipped to [0, 1] (the pixel contract)."""
    imputed = linear_imputation(image, removed)
    jitter = torch.randn(imputed.shape, generator=generator) * noise
    return torch.where(removed.unsqueeze(0), (imputed + jitter).clamp(0.0, 1.0), image)


def forward_budget(images: int, fractions: int) -> int:
    return images * fractions


def road_curve(
    call: CallContext,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor,
    fractions: tuple[float, ...],
    noise: float,
    generator: torch.Generator,
) -> CurveResult:
    """Most-relevant-first ROAD: y[i, k] is 1 when image i is still classified as its target after the
    top `fractions[k]` of its pixels (by map value) are removed by noisy linear imputation, else 0."""
    count, _, height, width = images.shape
    order = pixel_order(maps)
    removed_counts = [int(height * width * fraction) for fraction in fractions]

    def build(start: int, stop: int) -> torch.Tensor:
        rows = []
        for flat in range(start, stop):
            image, k = divmod(flat, len(fractions))
            removed = torch.zeros(height * width, dtype=torch.bool)
            removed[order[image, : removed_counts[k]]] = True
            rows.append(noisy_linear_imputation(images[image], removed.view(height, width), noise, generator))
        return torch.stack(rows)

    rows = call.rows_per_batch(inference_bytes_per_row(call.model))
    logits = evaluate_in_batches(call, build, count * len(fractions), rows)
    predicted = logits.argmax(dim=1).view(count, len(fractions))
    return CurveResult(
        torch.tensor(fractions, dtype=torch.float32), (predicted == targets.view(-1, 1)).float()
    )
