"""Random crops with noise: MACO's transformation robustness (Fel et al. 2023), as the `horama` package
(the authors' code) computes it.

Each step scores a batch of square crops of one large image [3, S, S], resized to the model's input size
h × w and perturbed by Gaussian and uniform noise. Crop centres are drawn around the image centre
(normal, sd 0.15 of the side), crop sides uniformly between two fractions of the side; the part of a crop
past the image edge is black. Every random draw comes from the CPU generator passed in, in horama's order
and dtype (centres x then y, sides, Gaussian noise, uniform noise), so a job's crops and noise are the
same for the same seed on any device.

The resampling is horama's: `torchvision.ops.roi_align` to 2h × 2w (bilinear samples, as many per output
bin as the crop is larger than the output, averaged), then an antialiased bicubic resize
(align_corners=True) to h × w. Both are linear and separable, so each crop is resampled by one small
matrix per axis (rows · window · columnsᵀ, batched over the crops) over a window just covering it. The
backward pass is two more matrix products: deterministic on every device, unlike roi_align's and
interpolate's atomic-add backward kernels on CUDA.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F

CENTRE_SD = 0.15
"""Standard deviation of a crop centre around the image centre, as a fraction of the side (horama's)."""


@lru_cache(maxsize=16)
def bicubic_halving(out: int) -> torch.Tensor:
    """[out, 2·out]: the antialiased bicubic resize (align_corners=True) from 2·out samples to out, as
    `F.interpolate` computes it, read off by resizing the unit vectors (two columns wide, which
    align_corners keeps as they are: a width of 1 sends torch down another code path)."""
    units = torch.eye(2 * out, dtype=torch.float64).reshape(2 * out, 1, 2 * out, 1).expand(-1, -1, -1, 2)
    resized = F.interpolate(units, size=(out, 2), mode="bicubic", align_corners=True, antialias=True)
    return resized[:, 0, :, 0].T.contiguous()


def roi_align_matrix(
    start: torch.Tensor, end: torch.Tensor, origin: torch.Tensor, window: int, side: int, bins: int
) -> torch.Tensor:
    """[N, bins, window]: `torchvision.ops.roi_align` (aligned=False, adaptive sampling) along one axis of
    length `side`, crop n spanning start_n..end_n, over source pixels origin_n .. origin_n + window − 1.

    Bin b of crop n averages g_n = ⌈length_n / bins⌉ bilinear samples, at
    start + (b + (k + ½)/g_n)·length/bins for k < g_n; a sample before −1 or past `side` is 0, one in
    [−1, 0) or past side − 1 takes the edge pixel."""
    length = (end - start).clamp_min(1.0)
    samples = torch.ceil(length / bins)
    k = torch.arange(int(samples.max()), dtype=torch.float64)
    b = torch.arange(bins, dtype=torch.float64)
    per_bin = (length / bins)[:, None, None]
    x = (
        start[:, None, None]
        + (b[None, :, None] + (k[None, None, :] + 0.5) / samples[:, None, None]) * per_bin
    )
    used = (k[None, None, :] < samples[:, None, None]) & (x >= -1.0) & (x <= side)
    x = x.clamp(0.0, side - 1.0)
    low = x.floor().clamp_max(side - 2.0) if side > 1 else x.floor()
    fraction = (x - low) * used / samples[:, None, None]
    below = (1.0 / samples[:, None, None]) * used - fraction
    index = (low - origin[:, None, None]).long()
    taps = torch.cat([index, (index + 1).clamp_max(window - 1)], dim=2).flatten(2)
    weights = torch.cat([below, fraction], dim=2).flatten(2)
    return torch.zeros(len(start), bins, window, dtype=torch.float64).scatter_add_(2, taps, weights)


@dataclass(frozen=True)
class RandomCrops:
    """`count` noisy random crops of an image [3, S, S], resized to `height` × `width`: [count, 3, h, w].

    Crop sides are fractions `size_min`..`size_max` of S; `noise` is the standard deviation of the
    Gaussian noise and the width of the uniform noise added to every crop pixel."""

    count: int
    size_min: float
    size_max: float
    noise: float
    height: int
    width: int

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        centre_x = 0.5 + torch.randn(self.count, generator=generator) * CENTRE_SD
        centre_y = 0.5 + torch.randn(self.count, generator=generator) * CENTRE_SD
        fraction = (
            torch.rand(self.count, generator=generator) * (self.size_max - self.size_min) + self.size_min
        )
        crops = self.resample(image, centre_y.double(), centre_x.double(), fraction.double())
        if self.noise > 0:
            shape = tuple(crops.shape)
            gaussian = torch.randn(shape, generator=generator) * self.noise
            uniform = (torch.rand(shape, generator=generator) - 0.5) * self.noise
            crops = crops + (gaussian + uniform).to(image.device)
        return crops

    def grid(self, image: torch.Tensor) -> torch.Tensor:
        """Nine crops without noise, of the mean side, centred on a 3 × 3 grid one centre-sd apart around
        the image centre: how the optimisation sees the image, without its randomness. [9, 3, h, w]."""
        offsets = torch.tensor([-CENTRE_SD, 0.0, CENTRE_SD], dtype=torch.float64) + 0.5
        centre_y, centre_x = (a.flatten() for a in torch.meshgrid(offsets, offsets, indexing="ij"))
        fraction = torch.full_like(centre_x, (self.size_min + self.size_max) / 2)
        return self.resample(image, centre_y, centre_x, fraction)

    def resample(
        self, image: torch.Tensor, centre_y: torch.Tensor, centre_x: torch.Tensor, fraction: torch.Tensor
    ) -> torch.Tensor:
        """Crops of `image` [3, S, S] with these centres and sides (fractions of S, float64 [N]):
        [N, 3, h, w]."""
        side = image.shape[-1]
        window = min(side, math.ceil(self.size_max * side) + 3)
        top, left = (centre_y - fraction / 2) * side, (centre_x - fraction / 2) * side
        bottom, right = (centre_y + fraction / 2) * side, (centre_x + fraction / 2) * side
        row_origin = top.floor().clamp(0, side - window)
        column_origin = left.floor().clamp(0, side - window)
        rows = bicubic_halving(self.height) @ roi_align_matrix(
            top, bottom, row_origin, window, side, 2 * self.height
        )
        columns = bicubic_halving(self.width) @ roi_align_matrix(
            left, right, column_origin, window, side, 2 * self.width
        )
        origins = list(zip(row_origin.long().tolist(), column_origin.long().tolist(), strict=True))
        windows = _Windows.apply(image, origins, window)  # [N, 3, window, window]
        rows, columns = rows.to(image.device, image.dtype), columns.to(image.device, image.dtype)
        count, channels = windows.shape[:2]
        # Two batched products over the crops: columns first ([N, 3·window, window] · [N, window, w]), then
        # rows ([N, h, window] · [N, window, 3·w]).
        narrow = torch.bmm(windows.reshape(count, channels * window, window), columns.transpose(1, 2))
        narrow = narrow.reshape(count, channels, window, self.width).transpose(1, 2)
        resized = torch.bmm(rows, narrow.reshape(count, window, channels * self.width))
        return resized.reshape(count, self.height, channels, self.width).transpose(1, 2)


class _Windows(torch.autograd.Function):
    """The square windows of an image [C, S, S] at the given (row, column) origins, stacked:
    [N, C, window, window]. The backward adds each window's gradient into one image-sized gradient,
    crop after crop (deterministic), instead of autograd's one zero-filled image per slice."""

    @staticmethod
    def forward(ctx: Any, image: torch.Tensor, origins: list[tuple[int, int]], window: int) -> torch.Tensor:
        ctx.origins, ctx.window, ctx.shape = origins, window, image.shape
        return torch.stack([image[:, r : r + window, c : c + window] for r, c in origins])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        image_grad = grad.new_zeros(ctx.shape)
        for n, (r, c) in enumerate(ctx.origins):
            image_grad[:, r : r + ctx.window, c : c + ctx.window] += grad[n]
        return image_grad, None, None
