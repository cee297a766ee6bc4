"""Priors: the L2 and total-variation penalties have their documented values, blurring keeps a constant
image and smooths noise, and happens only every k steps."""

from __future__ import annotations

import pytest
import torch
from glassbox.core.errors import InvalidArgument
from glassbox.generative.parametrisations import PIXEL_RGB, from_image
from glassbox.generative.regularisers import (
    L2,
    BlurEvery,
    RegulariserSettings,
    TotalVariation,
    gaussian_blur,
)

CPU = torch.device("cpu")


def test_l2_is_the_mean_squared_distance_from_grey() -> None:
    image = torch.full((2, 3, 8, 8), 0.5)
    image[1] = 0.9
    torch.testing.assert_close(L2(2.0)(image), torch.tensor([0.0, 2.0 * 0.4**2]))


def test_total_variation_is_zero_on_flat_images_and_counts_steps() -> None:
    assert float(TotalVariation(1.0)(torch.full((1, 3, 8, 8), 0.3))[0]) == 0.0
    ramp = torch.arange(8.0).view(1, 1, 1, 8).expand(1, 3, 8, 8) / 10
    torch.testing.assert_close(TotalVariation(1.0)(ramp), torch.tensor([0.01]))
    torch.testing.assert_close(TotalVariation(1.0, beta=1.0)(ramp), torch.tensor([0.1]))


def test_blurring_keeps_a_constant_image_and_smooths_noise() -> None:
    flat = torch.full((1, 3, 16, 16), 0.25)
    torch.testing.assert_close(gaussian_blur(flat, 1.0), flat)
    noise = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    blurred = gaussian_blur(noise, 1.0)
    assert blurred.shape == noise.shape
    assert float(blurred.std()) < 0.5 * float(noise.std())


def test_blur_every_k_steps_changes_the_image_only_on_multiples_of_k() -> None:
    noise = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1
    image = from_image(PIXEL_RGB, noise, device=CPU)
    blur = BlurEvery(every=3, sigma=1.0)
    for step in (1, 2):
        blur(step, image)
        with torch.no_grad():
            torch.testing.assert_close(image(), noise, atol=1e-5, rtol=0)
    blur(3, image)
    with torch.no_grad():
        torch.testing.assert_close(image(), gaussian_blur(noise, 1.0), atol=1e-5, rtol=0)


def test_settings_build_only_the_priors_that_are_on_and_check_ranges() -> None:
    assert RegulariserSettings().penalties() == [] and RegulariserSettings().between_steps() == []
    settings = RegulariserSettings(l2_weight=1.0, total_variation_weight=0.5, blur_every=4)
    assert settings.penalties() == [L2(1.0), TotalVariation(0.5)]
    assert settings.between_steps() == [BlurEvery(4, 0.5)]
    for fields, name in (
        ({"l2_weight": -1.0}, "regularisers.l2_weight"),
        ({"total_variation_weight": float("inf")}, "regularisers.total_variation_weight"),
        ({"blur_every": -2}, "regularisers.blur_every"),
        ({"blur_sigma": 0.0}, "regularisers.blur_sigma"),
    ):
        with pytest.raises(InvalidArgument) as caught:
            RegulariserSettings(**fields)
        assert caught.value.field == name
