"""Bilinear resizing and rotation whose backward pass is deterministic on every device.

On CUDA the backward passes of `F.interpolate` (bilinear) and `F.grid_sample` accumulate with atomic
additions, which PyTorch documents as non-deterministic: the same job would give a different image on
each run. On CUDA, images are therefore resized by two small interpolation matrices (A_h · X · A_wᵀ,
whose gradient is two more matrix products) and rotated by a gather whose backward is its exact adjoint,
computed as another gather. On the CPU the native kernels are deterministic already, and faster, so they
are used there. Both paths compute the same function: align_corners=False pixel centres, edge clamping
for resizing (as `F.interpolate`), zeros outside for rotation (as `F.grid_sample`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F


def resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of [B, C, H, W] to `size` (no antialiasing), like `F.interpolate`."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    if not image.is_cuda:
        return F.interpolate(image, size=size, mode="bilinear", align_corners=False)
    return resize_by_matrices(image, size)


def resize_by_matrices(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """`resize` as A_h · X · A_wᵀ: deterministic forward and backward on any device."""
    rows = interpolation_matrix(image.shape[-2], size[0]).to(image.device, image.dtype)
    columns = interpolation_matrix(image.shape[-1], size[1]).to(image.device, image.dtype)
    return rows @ image @ columns.T


def interpolation_matrix(source: int, target: int) -> torch.Tensor:
    """A [target, source] matrix of linear-interpolation weights, with F.interpolate's align_corners=False
    source positions (clamped at the first and last pixel). Built on the CPU, where it is deterministic."""
    position = ((torch.arange(target, dtype=torch.float64) + 0.5) * (source / target) - 0.5).clamp_min(0.0)
    low = position.floor().long().clamp_max(source - 1)
    high = (low + 1).clamp_max(source - 1)
    fraction = position - low
    matrix = torch.zeros(target, source, dtype=torch.float64)
    rows = torch.arange(target)
    matrix.index_put_((rows, low), 1.0 - fraction, accumulate=True)
    matrix.index_put_((rows, high), fraction, accumulate=True)
    return matrix.float()


def rotate(image: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate [B, C, H, W] about its centre by `degrees` (counter-clockwise on screen), bilinear, zeros
    outside, like `F.grid_sample` on an `F.affine_grid` rotation."""
    if degrees == 0.0:
        return image
    if not image.is_cuda:
        return _grid_sample_rotate(image, math.radians(degrees))
    return rotate_by_gather(image, degrees)


def rotate_by_gather(image: torch.Tensor, degrees: float) -> torch.Tensor:
    """`rotate` as a gather whose backward is its exact adjoint, another gather: deterministic anywhere."""
    height, width = image.shape[-2:]
    angle = math.radians(degrees)
    forward = _rotation_taps(height, width, angle, image.device)
    backward = _adjoint_taps(height, width, angle, image.device)
    return _GatherWarp.apply(image, forward, backward)


def _grid_sample_rotate(image: torch.Tensor, angle: float) -> torch.Tensor:
    batch, _, height, width = image.shape
    cos, sin = math.cos(angle), math.sin(angle)
    theta = torch.tensor(
        [[cos, -sin * height / width, 0.0], [sin * width / height, cos, 0.0]],
        dtype=image.dtype,
        device=image.device,
    ).expand(batch, 2, 3)
    grid = F.affine_grid(theta, list(image.shape), align_corners=False)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _sample_points(
    height: int, width: int, angle: float, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each output pixel samples the input (pixel-centre coordinates), [H·W] each."""
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float32, device=device),
        torch.arange(width, dtype=torch.float32, device=device),
        indexing="ij",
    )
    u, v = xs - (width - 1) / 2, ys - (height - 1) / 2
    cos, sin = math.cos(angle), math.sin(angle)
    return (cos * u - sin * v + (width - 1) / 2).flatten(), (sin * u + cos * v + (height - 1) / 2).flatten()


def _weights(
    points_x: torch.Tensor, points_y: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor
) -> torch.Tensor:
    """Bilinear weight of the pixels (xs, ys) for the sample points, 0 when farther than a pixel."""
    return (1 - (points_x - xs).abs()).clamp_min(0) * (1 - (points_y - ys).abs()).clamp_min(0)


def _rotation_taps(
    height: int, width: int, angle: float, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each output pixel: its 4 input pixels (flat indices) and their weights (0 outside the image)."""
    px, py = _sample_points(height, width, angle, device)
    x0, y0 = px.floor()[:, None], py.floor()[:, None]
    xs = x0 + torch.tensor([0.0, 1.0, 0.0, 1.0], device=device)
    ys = y0 + torch.tensor([0.0, 0.0, 1.0, 1.0], device=device)
    inside = (xs >= 0) & (xs < width) & (ys >= 0) & (ys < height)
    weights = _weights(px[:, None], py[:, None], xs, ys) * inside
    index = (ys.clamp(0, height - 1) * width + xs.clamp(0, width - 1)).long()
    return index, weights


def _adjoint_taps(
    height: int, width: int, angle: float, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each input pixel: the output pixels whose samples it contributes to, and with what weight.

    Output j samples input i with a non-zero weight only if |p_j − i|∞ < 1, and p is a rotation, so j
    lies within √2 of the point that samples i exactly: a 5×5 window around it holds every such j."""
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float32, device=device),
        torch.arange(width, dtype=torch.float32, device=device),
        indexing="ij",
    )
    xs, ys = xs.flatten()[:, None], ys.flatten()[:, None]
    centre_x, centre_y = _sample_points_inverse(xs, ys, height, width, angle)
    offsets = torch.arange(-2.0, 3.0, device=device)
    jx = (centre_x.round() + offsets.repeat(5)).clamp(-1, width)
    jy = (centre_y.round() + offsets.repeat_interleave(5)).clamp(-1, height)
    inside = (jx >= 0) & (jx < width) & (jy >= 0) & (jy < height)
    cos, sin = math.cos(angle), math.sin(angle)
    u, v = jx - (width - 1) / 2, jy - (height - 1) / 2
    px, py = cos * u - sin * v + (width - 1) / 2, sin * u + cos * v + (height - 1) / 2
    weights = _weights(px, py, xs, ys) * inside
    index = (jy.clamp(0, height - 1) * width + jx.clamp(0, width - 1)).long()
    return index, weights


def _sample_points_inverse(
    xs: torch.Tensor, ys: torch.Tensor, height: int, width: int, angle: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The output position whose sample point is exactly the input pixel (xs, ys)."""
    cos, sin = math.cos(angle), math.sin(angle)
    u, v = xs - (width - 1) / 2, ys - (height - 1) / 2
    return cos * u + sin * v + (width - 1) / 2, -sin * u + cos * v + (height - 1) / 2


def _gather(image: torch.Tensor, index: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    flat = image.flatten(-2)  # [B, C, N]
    return (flat[..., index] * weights).sum(-1).view(image.shape)


class _GatherWarp(torch.autograd.Function):
    """out = Σ weights · image[taps], with the exact adjoint as its backward, both gathers: no atomics."""

    @staticmethod
    def forward(ctx: Any, image: torch.Tensor, forward: tuple, backward: tuple) -> torch.Tensor:
        ctx.backward_taps = backward
        return _gather(image, *forward)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return _gather(grad.contiguous(), *ctx.backward_taps), None, None
