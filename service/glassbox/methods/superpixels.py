"""What LIME and KernelSHAP share: SLIC superpixels (a regular grid where SLIC fails), coalitions (which
superpixels are kept), the inputs they stand for, and the surrogate linear models fitted to the model's
scores on them.

The pieces are pure functions of tensors so that each can be checked on its own against Captum's `Lime`
and `KernelShap` given the same feature mask and the same coalitions. Coalitions are drawn from a private
`torch.Generator`, consuming it exactly as Captum's default samplers consume the global generator, so a
seed here gives the coalitions Captum draws after `torch.manual_seed(seed)`.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from skimage.segmentation import slic
from sklearn.linear_model import Lasso

from glassbox.methods.base import AttributionMethod, MapResult
from glassbox.methods.batching import evaluate_in_batches, inference_bytes_per_row

LASSO_ALPHA = 0.01
"""L1 penalty of LIME's surrogate (Captum's `Lime` default, `SkLearnLasso(alpha=0.01)`)."""
MAX_SUPERPIXELS = 1024
"""Most superpixels a request may ask for: beyond it the surrogate has more unknowns than the sample cap."""

GRID_FALLBACK_RATIO = 4
"""SLIC finding one superpixel, or under 1/GRID_FALLBACK_RATIO of those asked for, falls back to a grid."""


@dataclass(frozen=True)
class Segmentation:
    """Superpixel ids 0..count-1 per pixel, and the per-superpixel sums the LIME kernel needs."""

    labels: torch.Tensor  # int64 [H, W]
    count: int
    method: str  # "slic", or "grid" where SLIC found one superpixel or under a quarter of those asked for
    sizes: torch.Tensor  # float64 [count]: values (pixels × channels) in each superpixel
    sums: torch.Tensor  # float64 [count]: Σ pixel value
    squares: torch.Tensor  # float64 [count]: Σ pixel value²


def segment(pixels: torch.Tensor, superpixels: int) -> Segmentation:
    """SLIC superpixels (Achanta et al. 2012, scikit-image's defaults) of one image [3, H, W] in [0, 1].

    SLIC aims at `superpixels` segments; the count it finds may differ a little. Ids are made contiguous.
    On a noisy or nearly uniform image SLIC can merge almost everything into one segment, which leaves
    nothing (or next to nothing) to switch on and off: where it finds a single superpixel, or fewer than
    a quarter of those asked for, the image is cut into a regular grid of about `superpixels` cells
    instead (`method` says which was used), so every valid image gets an explanation at the resolution
    the caller asked for.
    """
    image = pixels.detach().to("cpu", torch.float64).permute(1, 2, 0).numpy()
    raw = slic(image, n_segments=superpixels, start_label=0, channel_axis=-1)
    _, contiguous = np.unique(raw, return_inverse=True)
    labels = torch.from_numpy(contiguous.reshape(raw.shape).astype(np.int64))
    method = "slic"
    if int(labels.max()) + 1 < max(2, superpixels // GRID_FALLBACK_RATIO):
        labels, method = grid(raw.shape[0], raw.shape[1], superpixels), "grid"
    return from_labels(pixels, labels, method)


def from_labels(pixels: torch.Tensor, labels: torch.Tensor, method: str) -> Segmentation:
    """The `Segmentation` of one image [3, H, W] whose superpixel ids 0..count-1 are `labels` [H, W]."""
    count = int(labels.max()) + 1
    values = pixels.detach().to("cpu", torch.float64).reshape(3, -1)
    flat = labels.reshape(-1).repeat(3)
    ones = torch.ones_like(values.reshape(-1))
    return Segmentation(
        labels=labels,
        count=count,
        method=method,
        sizes=torch.zeros(count, dtype=torch.float64).index_add_(0, flat, ones),
        sums=torch.zeros(count, dtype=torch.float64).index_add_(0, flat, values.reshape(-1)),
        squares=torch.zeros(count, dtype=torch.float64).index_add_(0, flat, values.reshape(-1) ** 2),
    )


def grid(height: int, width: int, cells: int) -> torch.Tensor:
    """int64 [height, width] ids of a regular grid of about `cells` (at least 2) near-square cells, row-major.

    Example:
        >>> grid(4, 6, 6)
        tensor([[0, 0, 1, 1, 2, 2],
                [0, 0, 1, 1, 2, 2],
                [3, 3, 4, 4, 5, 5],
                [3, 3, 4, 4, 5, 5]])
    """
    rows = min(height, max(1, round(math.sqrt(cells * height / width))))
    columns = min(width, max(1, round(cells / rows)))
    if rows * columns < 2:  # one cell compares nothing; a 1-pixel-wide image still splits along its length
        rows, columns = (1, 2) if width >= 2 else (2, 1)
    row = torch.arange(height) * rows // height
    column = torch.arange(width) * columns // width
    return row[:, None] * columns + column[None, :]


def compose(pixels: torch.Tensor, labels: torch.Tensor, keep: torch.Tensor, baseline: float) -> torch.Tensor:
    """Inputs [N, 3, H, W] showing the kept superpixels of `pixels` [3, H, W] and `baseline` elsewhere.

    `keep` is bool [N, count]; `labels` [H, W] are the superpixel ids. One fused multiply-add per value,
    exact: a kept pixel is the image's value, a dropped one the baseline.
    """
    shown = keep.to(pixels.device, pixels.dtype)[:, labels.to(pixels.device)].unsqueeze(1)  # [N, 1, H, W]
    hidden = ((1.0 - shown) * baseline).expand(-1, pixels.shape[0], -1, -1)
    return torch.addcmul(hidden, pixels[None], shown)


def lime_coalitions(count: int, samples: int, generator: torch.Generator) -> torch.Tensor:
    """bool [samples, count]: each superpixel kept with probability 1/2 (Captum's `Lime` sampler)."""
    return torch.bernoulli(torch.full((samples, count), 0.5), generator=generator).bool()


def shapley_coalitions(count: int, samples: int, generator: torch.Generator) -> torch.Tensor:
    """bool [samples, count] drawn from the Shapley kernel (Captum's `KernelShap` sampler).

    The first two coalitions are the whole image and the empty one. Each further coalition first draws its
    size k in 1..count-1 with probability ∝ (count - 1) / (k (count - k)), then a uniformly random subset
    of that size, so the sample frequency itself applies the Shapley kernel weight (Lundberg & Lee 2017).
    """
    sizes = torch.arange(count, dtype=torch.float)
    size_weights = torch.tensor(float(count - 1)) / (sizes * (count - sizes))
    size_weights[0] = 0.0
    rows = [torch.ones(count, dtype=torch.bool), torch.zeros(count, dtype=torch.bool)][:samples]
    for _ in range(samples - len(rows)):
        size = int(torch.multinomial(size_weights, 1, True, generator=generator)[0])
        scores = torch.randn(1, count, generator=generator)
        threshold = torch.kthvalue(scores, count - size).values.item()
        rows.append((scores > threshold)[0])
    return torch.stack(rows)


def lime_kernel(
    segmentation: Segmentation, keep: torch.Tensor, baseline: float, width: float
) -> torch.Tensor:
    """float64 [N]: exp(−d² / (2 width²)) with d the cosine distance between the image and each composed
    input, as Captum's `get_exp_kernel_similarity_function("cosine", width)` computes it, but from
    per-superpixel sums instead of N full images."""
    kept = keep.to(torch.float64)
    dropped = 1.0 - kept
    dot = kept @ segmentation.squares + baseline * (dropped @ segmentation.sums)
    norm_image = math.sqrt(float(segmentation.squares.sum()))
    norm_inputs = (kept @ segmentation.squares + baseline**2 * (dropped @ segmentation.sizes)).sqrt()
    cosine = dot / (norm_image * norm_inputs).clamp_min(1e-8)
    return torch.exp(-((1.0 - cosine) ** 2) / (2.0 * width**2))


def fit_lime(
    keep: torch.Tensor, scores: torch.Tensor, weights: torch.Tensor, num_features: int
) -> torch.Tensor:
    """float64 [count]: coefficients of a weighted Lasso of the scores [N] on the coalitions [N, count].

    With `num_features` > 0 only the superpixels with the largest |coefficient| are kept and the Lasso is
    refitted on them (LIME's "highest weights" selection); the others get 0.
    """
    inputs = keep.to(torch.float64).numpy()
    targets, sample_weights = scores.to(torch.float64).numpy(), weights.to(torch.float64).numpy()
    coefficients = _lasso(inputs, targets, sample_weights)
    if 0 < num_features < keep.shape[1]:
        chosen = np.argsort(-np.abs(coefficients), kind="stable")[:num_features]
        coefficients = np.zeros_like(coefficients)
        coefficients[chosen] = _lasso(inputs[:, chosen], targets, sample_weights)
    return torch.from_numpy(coefficients)


def fit_shapley(keep: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """float64 [count]: Shapley value estimates from coalitions drawn by `shapley_coalitions`.

    Least squares of score − score(empty) on the coalitions, constrained so that the values add up exactly
    to score(whole) − score(empty) (the efficiency property). Captum approximates the same constraint by
    giving the two end coalitions a weight of 10⁶. Solved in the constraint's null space with the
    minimum-norm least-squares solution, so superpixels the samples cannot tell apart share equally.
    """
    scores = scores.to(torch.float64)
    full, empty = float(scores[0]), float(scores[1])
    count = keep.shape[1]
    uniform = torch.full((count,), (full - empty) / count, dtype=torch.float64)
    inputs = keep[2:].to(torch.float64)
    if inputs.shape[0] == 0 or count == 1:
        return uniform
    basis = sum_zero_basis(count)
    residual = scores[2:] - empty - inputs @ uniform
    deviation = torch.linalg.lstsq(inputs @ basis, residual[:, None], driver="gelsd").solution[:, 0]
    return uniform + basis @ deviation


def sum_zero_basis(count: int) -> torch.Tensor:
    """float64 [count, count − 1]: an orthonormal basis of the vectors whose entries add up to 0 — the
    columns but the first of the Householder reflection that swaps the first axis and (1, …, 1)/√count."""
    normal = torch.full((count,), -1.0 / math.sqrt(count), dtype=torch.float64)
    normal[0] += 1.0
    normal /= normal.norm()
    reflection = torch.eye(count, dtype=torch.float64) - 2.0 * torch.outer(normal, normal)
    return reflection[:, 1:]


def superpixel_map(labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """float32 [H, W]: each pixel gets its superpixel's weight."""
    return weights.to(torch.float32)[labels]


def _lasso(inputs: np.ndarray, targets: np.ndarray, weights: np.ndarray) -> np.ndarray:
    model = Lasso(alpha=LASSO_ALPHA)
    model.fit(inputs, targets, sample_weight=weights)
    return np.asarray(model.coef_, dtype=np.float64)


class SuperpixelMethod(AttributionMethod):
    """Template of LIME and KernelSHAP: segment each image, evaluate the coalitions of its superpixels in
    batches, fit one surrogate per target on those same evaluations. Subclasses say how coalitions are
    drawn (`coalitions`) and how the surrogate is fitted (`fit`)."""

    needs_gradients = False
    min_samples: ClassVar[int] = 1

    def validate(self) -> None:
        p, cap = self.params, self.call.settings.max_samples
        self.require(
            self.min_samples <= p.samples <= cap,
            "samples",
            f"must be in {self.min_samples}..{cap} (the server's cap max_samples), got {p.samples}",
        )
        self.require(
            2 <= p.superpixels <= MAX_SUPERPIXELS,
            "superpixels",
            f"must be in 2..{MAX_SUPERPIXELS}, got {p.superpixels}",
        )
        self.require(0 <= p.seed < 2**64, "seed", f"must be in 0..2^64-1, got {p.seed}")
        self.require(
            0.0 <= p.baseline_value <= 1.0, "baseline_value", f"must be in [0, 1], got {p.baseline_value}"
        )

    def perturbations_per_image(self) -> int:
        return self.params.samples

    @abstractmethod
    def coalitions(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """bool [samples, count]: the superpixels each evaluated input keeps."""

    @abstractmethod
    def fit(self, segmentation: Segmentation, keep: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """float64 [count]: the superpixels' weights for one target, from its scores [samples]."""

    def explain(
        self, pixels: torch.Tensor, targets: list[tuple[int, ...]], logits: torch.Tensor
    ) -> list[list[MapResult]]:
        rows = self.call.rows_per_batch(inference_bytes_per_row(self.model))
        return [self.explain_image(pixels[i], targets[i], rows) for i in range(pixels.shape[0])]

    def explain_image(self, image: torch.Tensor, targets: tuple[int, ...], rows: int) -> list[MapResult]:
        self.call.check()
        segmentation = segment(image, self.params.superpixels)
        keep = self.coalitions(segmentation.count, torch.Generator().manual_seed(self.params.seed))
        labels, baseline = segmentation.labels, self.params.baseline_value
        # A coalition drawn twice (common for the Shapley kernel's smallest and largest sizes) is evaluated
        # once; every sample still enters the fit with its score.
        distinct, sample_of = torch.unique(keep, dim=0, return_inverse=True)
        scores = evaluate_in_batches(
            self.call,
            lambda start, stop: compose(image, labels, distinct[start:stop], baseline),
            distinct.shape[0],
            rows,
        )[sample_of]
        results = []
        for target in targets:
            weights = self.fit(segmentation, keep, scores[:, target])
            results.append(
                MapResult(
                    superpixel_map(labels, weights),
                    segments=labels,
                    segment_weights=weights.to(torch.float32),
                    segmentation=segmentation.method,
                )
            )
        return results
