"""Occlusion (Zeiler & Fergus 2014, "Visualizing and understanding convolutional networks").

A square window of baseline pixels slides over the input; each pixel's attribution is the drop of the
target's pre-softmax score when a window covers it, averaged over the windows that cover it. Window
positions are those of Captum's `Occlusion` (starts at multiples of the stride, the last window clipped
at the border), so the maps equal Captum's.

Every target of an image reuses the same occluded passes, which are built one batch at a time in one
reused buffer and run on the model's fastest no-grad engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from glassbox.methods.base import AttributionMethod, MapResult
from glassbox.methods.batching import evaluate_in_batches, inference_bytes_per_row


@dataclass(frozen=True)
class OcclusionParams:
    window: int = 8
    stride: int = 4
    baseline_value: float = 0.5


def window_starts(size: int, window: int, stride: int) -> list[int]:
    """First row (or column) of each window along a side of `size` pixels: 0, stride, … until the window
    reaches the border (the last one may stick out and is clipped)."""
    return [k * stride for k in range(math.ceil((size - window) / stride) + 1)]


class Occlusion(AttributionMethod):
    """Score drop under a sliding window of baseline pixels; forward passes only."""

    name = "occlusion"
    Params = OcclusionParams
    needs_gradients = False

    def validate(self) -> None:
        p, spec = self.params, self.model.config.input
        side = min(spec.height, spec.width)
        self.require(p.window >= 1, "window", f"must be at least 1 pixel, got {p.window}")
        self.require(
            p.window <= side, "window", f"{p.window} is larger than the {spec.height}x{spec.width} input"
        )
        self.require(p.stride >= 1, "stride", f"must be at least 1 pixel, got {p.stride}")
        self.require(
            p.stride <= p.window,
            "stride",
            f"{p.stride} is larger than the window ({p.window}): "
            "pixels between windows would get no attribution",
        )
        self.require(
            0.0 <= p.baseline_value <= 1.0, "baseline_value", f"must be in [0, 1], got {p.baseline_value}"
        )
        windows = self.window_count()
        cap = self.call.settings.max_perturbations
        self.require(
            windows <= cap,
            "stride",
            f"window {p.window} with stride {p.stride} makes {windows} occluded "
            f"inputs per image, over the server's cap max_perturbations = {cap}; use a larger stride",
        )

    def perturbations_per_image(self) -> int:
        return self.window_count()

    def window_count(self) -> int:
        p, spec = self.params, self.model.config.input
        return len(window_starts(spec.height, p.window, p.stride)) * len(
            window_starts(spec.width, p.window, p.stride)
        )

    def explain(
        self, pixels: torch.Tensor, targets: list[tuple[int, ...]], logits: torch.Tensor
    ) -> list[list[MapResult]]:
        rows = self.call.rows_per_batch(inference_bytes_per_row(self.model))
        return [self.explain_image(pixels[i], targets[i], logits[i], rows) for i in range(pixels.shape[0])]

    def explain_image(
        self, image: torch.Tensor, targets: tuple[int, ...], logits: torch.Tensor, rows: int
    ) -> list[MapResult]:
        p = self.params
        _, height, width = image.shape
        tops, lefts = window_starts(height, p.window, p.stride), window_starts(width, p.window, p.stride)
        batches = OccludedBatches(image, [(top, left) for top in tops for left in lefts], p, rows)
        scores = evaluate_in_batches(self.call, batches.build, len(tops) * len(lefts), rows)
        index = list(targets)
        drops = (logits[index][None] - scores[:, index]).T.reshape(len(index), len(tops), len(lefts))
        # Sum of the drops of the windows covering each pixel, divided by their number. Coverage is
        # separable (a pixel is covered by window (i, j) iff its row is in window row i and its column in
        # window column j), so the sums are two small matrix products.
        covered_rows, covered_columns = coverage(height, tops, p.window), coverage(width, lefts, p.window)
        sums = torch.einsum("hi,tij,wj->thw", covered_rows, drops.double(), covered_columns)
        counts = torch.outer(covered_rows.sum(dim=1), covered_columns.sum(dim=1))
        maps = (sums / counts).float()
        return [MapResult(map=maps[j]) for j in range(len(index))]


def coverage(size: int, starts: list[int], window: int) -> torch.Tensor:
    """float64 [size, windows]: 1 where a pixel row (or column) lies in a window's span."""
    positions = torch.arange(size)[:, None]
    first = torch.tensor(starts)[None]
    return ((positions >= first) & (positions < first + window)).double()


class OccludedBatches:
    """Batches of occluded copies of one image in one reused buffer: each batch restores the windows the
    previous one occluded and occludes its own, instead of copying the whole image for every row."""

    def __init__(
        self, image: torch.Tensor, corners: list[tuple[int, int]], params: OcclusionParams, rows: int
    ):
        self.image, self.corners, self.params = image, corners, params
        self.buffer = image.expand(min(rows, len(corners)), -1, -1, -1).clone()
        self.occluded: list[tuple[int, int]] = []

    def build(self, start: int, stop: int) -> torch.Tensor:
        window = self.params.window
        for row, (top, left) in enumerate(self.occluded):
            self.buffer[row, :, top : top + window, left : left + window] = self.image[
                :, top : top + window, left : left + window
            ]
        self.occluded = self.corners[start:stop]
        for row, (top, left) in enumerate(self.occluded):
            self.buffer[row, :, top : top + window, left : left + window] = self.params.baseline_value
        return self.buffer[: stop - start]
