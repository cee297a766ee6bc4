"""The deterministic resampling used on CUDA computes the same function as the native kernels used on
the CPU, forward and backward: resizing by interpolation matrices against `F.interpolate`, rotation by
gathers against `F.grid_sample` (so the GPU path is checked on any machine)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from glassbox.generative.resampling import (
    _grid_sample_rotate,
    interpolation_matrix,
    resize,
    resize_by_matrices,
    rotate,
    rotate_by_gather,
)


def value_and_gradient(
    function, image: torch.Tensor, upstream: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    image = image.detach().clone().requires_grad_(True)
    out = function(image)
    (gradient,) = torch.autograd.grad((out * upstream).sum(), image)
    return out.detach(), gradient


@pytest.mark.parametrize(
    ("shape", "size"), [((2, 3, 37, 53), (41, 60)), ((1, 3, 80, 80), (72, 72)), ((1, 3, 48, 80), (64, 64))]
)
def test_resizing_by_matrices_equals_interpolate_forward_and_backward(shape, size) -> None:
    generator = torch.Generator().manual_seed(0)
    image, upstream = (
        torch.rand(shape, generator=generator),
        torch.rand(shape[:2] + size, generator=generator),
    )
    native = value_and_gradient(
        lambda x: F.interpolate(x, size=size, mode="bilinear", align_corners=False), image, upstream
    )
    ours = value_and_gradient(lambda x: resize_by_matrices(x, size), image, upstream)
    for a, b in zip(native, ours, strict=True):
        torch.testing.assert_close(a, b, atol=5e-5, rtol=0)
    assert torch.equal(
        resize(image, size), F.interpolate(image, size=size, mode="bilinear", align_corners=False)
    )


def test_interpolation_rows_sum_to_one() -> None:
    for source, target in ((10, 13), (13, 10), (64, 64), (1, 5)):
        torch.testing.assert_close(interpolation_matrix(source, target).sum(1), torch.ones(target))


@pytest.mark.parametrize(
    ("shape", "degrees"), [((2, 3, 37, 53), 7.0), ((1, 3, 64, 64), -10.0), ((1, 3, 30, 50), 90.0)]
)
def test_rotation_by_gathers_equals_grid_sample_forward_and_backward(shape, degrees: float) -> None:
    generator = torch.Generator().manual_seed(1)
    image, upstream = torch.rand(shape, generator=generator), torch.rand(shape, generator=generator)
    native = value_and_gradient(lambda x: _grid_sample_rotate(x, math.radians(degrees)), image, upstream)
    ours = value_and_gradient(lambda x: rotate_by_gather(x, degrees), image, upstream)
    for a, b in zip(native, ours, strict=True):
        torch.testing.assert_close(a, b, atol=5e-5, rtol=0)
    assert rotate(image, 0.0) is image
