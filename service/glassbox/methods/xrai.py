"""XRAI (Kapishnikov, Bolukbasi, Viégas & Terry 2019, "XRAI: Better Attributions Through Regions").

As the `saliency` package 0.2.1 computes it ("full" algorithm):

1. Integrated gradients from two constant baselines, the image's smallest and its largest pixel value,
   each a Riemann sum over α = 0, 1/(steps − 1), ..., 1 with weight 1/steps; their mean, reduced over
   the channels by the maximum.
2. Candidate regions: Felzenszwalb segmentations (Felzenszwalb & Huttenlocher 2004) of the image
   min-max normalised to [−1, 1] and resized to 224 × 224 (cubic, anti-aliased), at scales 50, 100,
   150, 250, 500 and 1200 (σ 0.8, minimum size 150), each segment resized back (nearest) and dilated by
   a disk of radius 5 — scikit-image's functions, called as the package calls them.
3. Greedy region growing: repeatedly add the region whose not-yet-covered pixels have the highest mean
   attribution, dropping regions that would add fewer than `min_pixel_diff` pixels, until the covered
   area exceeds `area_threshold` or no region is left. A pixel's value is the density of the region
   that added it; pixels never covered share the mean attribution over them.

The integrated-gradients rows (image, baseline, step) go through the shared memory-budgeted gradient
chunks, every target of a row in the same forward; the regions of an image are segmented once for all
its targets. The greedy step keeps each region's count and attribution sum over the uncovered pixels
and updates them as pixels get covered, instead of re-measuring every region each round; identical
regions (the same segment found at several scales) are kept once, which changes nothing (the first of
equal gains wins, and its copies then add no pixel).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from skimage import segmentation
from skimage.morphology import disk
from skimage.transform import resize

from glassbox.methods.base import MapResult, MethodOutput
from glassbox.methods.gradients import GradientMethod
from glassbox.methods.targets import TargetSelector

FELZENSZWALB_SCALES = (50, 100, 150, 250, 500, 1200)
FELZENSZWALB_SIGMA = 0.8
FELZENSZWALB_SIZE = (224, 224)
FELZENSZWALB_MIN_SIZE = 150
DILATION_RADIUS = 5
BASELINES = 2  # the image's minimum and maximum value


@dataclass(frozen=True)
class XraiParams:
    steps: int = 100
    area_threshold: float = 1.0
    min_pixel_diff: int = 50


def xrai_regions(image: np.ndarray) -> np.ndarray:
    """bool [R, H, W]: the candidate regions of an image [H, W, 3], distinct, in the package's order."""
    original = image.shape[:2]
    low, high = image.min(), image.max()
    span = high - low if high > low else 1.0  # a constant image (the package divides by zero there)
    normalised = (image - low) / span * 2.0 - 1.0
    normalised = resize(
        normalised, FELZENSZWALB_SIZE, order=3, mode="constant", preserve_range=True, anti_aliasing=True
    )
    regions: list[np.ndarray] = []
    for scale in FELZENSZWALB_SCALES:
        segments = segmentation.felzenszwalb(
            normalised, scale=scale, sigma=FELZENSZWALB_SIGMA, min_size=FELZENSZWALB_MIN_SIZE
        )
        segments = resize(
            segments, original, order=0, preserve_range=True, mode="constant", anti_aliasing=False
        ).astype(int)
        regions.append(dilated_segments(segments - segments.min(), int(segments.max() - segments.min()) + 1))
    return first_of_each(np.concatenate(regions))


def dilated_segments(labels: np.ndarray, count: int) -> np.ndarray:
    """bool [count, H, W]: each label's pixels (labels [H, W] in 0..count−1) dilated by a disk of radius
    `DILATION_RADIUS`, as scikit-image's binary dilation of each mask: a pixel joins a label's region when
    the label lies within the disk around it. One scatter per disk offset covers every label at once,
    instead of one dilation of the whole image per label."""
    height, width = labels.shape
    regions = np.zeros((count, height, width), dtype=bool)
    for dy, dx in np.argwhere(disk(DILATION_RADIUS)) - DILATION_RADIUS:
        rows = slice(max(0, -dy), min(height, height - dy))
        columns = slice(max(0, -dx), min(width, width - dx))
        source = labels[max(0, dy) : min(height, height + dy), max(0, dx) : min(width, width + dx)]
        ys, xs = np.mgrid[rows, columns]
        regions[source, ys, xs] = True
    return regions


def first_of_each(regions: np.ndarray) -> np.ndarray:
    """The distinct regions of [R, H, W] in the order they first occur (rows compared as packed bits)."""
    seen: set[bytes] = set()
    keep = []
    for index, packed in enumerate(np.packbits(regions.reshape(len(regions), -1), axis=1)):
        key = packed.tobytes()
        if key not in seen:
            seen.add(key)
            keep.append(index)
    return regions[keep]


def grow_regions(
    attribution: np.ndarray, regions: np.ndarray, area_threshold: float, min_pixel_diff: int
) -> np.ndarray:
    """float64 [H, W]: XRAI's greedy region growing over `regions` [R, H, W] on `attribution` [H, W]."""
    values = attribution.reshape(-1).astype(np.float64)
    members = regions.reshape(len(regions), -1)
    counts = members.sum(axis=1).astype(np.int64)
    sums = members.astype(np.float64) @ values
    alive = np.ones(len(regions), dtype=bool)
    covered = np.zeros(values.shape[0], dtype=bool)
    out = np.full(values.shape[0], -np.inf)
    area = 0.0
    while area <= area_threshold:
        alive &= counts >= min_pixel_diff
        if not alive.any():
            break
        gains = np.where(alive, sums / np.maximum(counts, 1), -np.inf)
        best = int(np.argmax(gains))
        added = members[best] & ~covered
        out[added] = gains[best]
        covered |= added
        area = float(covered.mean())
        alive[best] = False
        counts -= members[:, added].sum(axis=1)
        sums -= members[:, added].astype(np.float64) @ values[added]
    if not covered.all():
        out[~covered] = values[~covered].mean()
    return out.reshape(attribution.shape)


class Xrai(GradientMethod):
    """Integrated gradients summed over the regions that explain the most per pixel."""

    name = "xrai"
    Params = XraiParams
    map_channels = 1

    def validate(self) -> None:
        p, spec = self.params, self.model.config.input
        cap = self.call.settings.max_steps
        self.require(
            2 <= p.steps <= cap, "steps", f"must be in 2..{cap} (the server's max_steps), got {p.steps}"
        )
        self.require(
            0.0 < p.area_threshold <= 1.0, "area_threshold", f"must be in (0, 1], got {p.area_threshold}"
        )
        pixels = spec.height * spec.width
        self.require(
            1 <= p.min_pixel_diff <= pixels,
            "min_pixel_diff",
            f"must be in 1..{pixels} (the input's pixels), got {p.min_pixel_diff}",
        )

    @property
    def rows_per_input(self) -> int:
        return BASELINES * self.params.steps

    def run(self, pixels: torch.Tensor, selector: TargetSelector) -> MethodOutput:
        x = pixels.to(self.model.device, torch.float32)
        logits = self.call.forward(x)
        targets = selector.resolve(logits)
        return MethodOutput(logits, targets, self.explain(x, targets, logits))

    def explain(
        self, pixels: torch.Tensor, targets: list[tuple[int, ...]], logits: torch.Tensor
    ) -> list[list[MapResult]]:
        gradients = self.integrated_gradients(pixels.to(self.model.device, torch.float32), targets)
        out = []
        for i in range(pixels.shape[0]):
            self.call.check()
            image = pixels[i].cpu().permute(1, 2, 0).numpy()
            regions = xrai_regions(image)
            row = []
            for attribution in gradients[i]:
                channel_max = attribution.amax(dim=0).cpu().numpy()
                grown = grow_regions(
                    channel_max, regions, self.params.area_threshold, self.params.min_pixel_diff
                )
                row.append(MapResult(torch.from_numpy(grown).float()))
            out.append(row)
        return out

    def integrated_gradients(
        self, inputs: torch.Tensor, targets: list[tuple[int, ...]]
    ) -> list[torch.Tensor]:
        """Per image [k, 3, H, W]: the mean over the two baselines of their integrated gradients."""
        steps = self.params.steps
        per_image = BASELINES * steps
        alphas = torch.from_numpy(np.linspace(0.0, 1.0, steps)).to(inputs.device)
        flat = inputs.reshape(inputs.shape[0], -1)
        levels = torch.stack([flat.amin(dim=1), flat.amax(dim=1)], dim=1).double()  # [B, 2]
        passes = max(len(t) for t in targets)
        sums = torch.zeros(passes, inputs.shape[0], BASELINES, *inputs.shape[1:], dtype=torch.float64)
        sums = sums.to(inputs.device)

        def make_inputs(rows: range) -> torch.Tensor:
            index = torch.arange(rows.start, rows.stop, device=inputs.device)
            image, baseline, step = index // per_image, (index % per_image) // steps, index % steps
            level = levels[image, baseline].view(-1, 1, 1, 1)
            alpha = alphas[step].view(-1, 1, 1, 1)
            # the difference in float32 and the point in float64, as the package computes them
            return (level + alpha * (inputs[image] - level.float()).double()).float()

        def targets_of(_logits: torch.Tensor, rows: range) -> list[tuple[int, ...]]:
            return [targets[r // per_image] for r in rows]

        def consume(rows: range, _x: torch.Tensor, j: int, selected: list[int], grad: torch.Tensor) -> None:
            index = torch.tensor([rows.start + r for r in selected], device=inputs.device)
            image, baseline = index // per_image, (index % per_image) // steps
            sums[j].index_put_((image, baseline), grad[selected].double(), accumulate=True)

        self.backward_chunks(inputs.shape[0] * per_image, make_inputs, targets_of, consume)
        differences = inputs.double().unsqueeze(1) - levels.view(-1, BASELINES, 1, 1, 1)  # [B, 2, 3, H, W]
        return [
            (sums[: len(targets[i]), i] * differences[i] / steps).mean(dim=1) for i in range(inputs.shape[0])
        ]
