"""Image parametrisations: the Fourier and pixel images equal Lucent's for the same parameters, start
near grey from the seed, and `assign` inverts them exactly."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from glassbox.core.errors import InvalidArgument
from glassbox.generative.parametrisations import (
    ColourSpace,
    FourierImage,
    Kind,
    ParametrisationSettings,
    PixelImage,
    build,
)
from lucent.optvis.param import color as lucent_color
from lucent.optvis.param import spatial as lucent_spatial

CPU = torch.device("cpu")
IMAGE_KINDS = [kind for kind in Kind if kind is not Kind.LATENT_PRIOR]
"""The parametrisations of the image itself (the latent prior's is tested in test_image_prior.py)."""


def lucent_image(image_f: Callable[[], torch.Tensor], decorrelate: bool) -> torch.Tensor:
    with torch.no_grad():
        return lucent_color.to_valid_rgb(image_f, decorrelate=decorrelate)().cpu()


@pytest.mark.parametrize("decorrelate", [True, False])
def test_the_fourier_image_equals_lucents_for_the_same_spectrum(decorrelate: bool) -> None:
    torch.manual_seed(0)
    (spectrum,), image_f = lucent_spatial.fft_image((2, 3, 48, 64), sd=0.5)
    expected = lucent_image(image_f, decorrelate)
    ours = FourierImage(
        (2, 3, 48, 64), ColourSpace(decorrelate, CPU), spectrum.detach().cpu(), decay_power=1.0
    )
    with torch.no_grad():
        torch.testing.assert_close(ours(), expected, atol=1e-6, rtol=1e-5)


def test_the_pixel_image_equals_lucents_for_the_same_pixels() -> None:
    torch.manual_seed(0)
    (pixels,), image_f = lucent_spatial.pixel_image((1, 3, 20, 30), sd=1.0)
    expected = lucent_image(image_f, decorrelate=True)
    ours = PixelImage((1, 3, 20, 30), ColourSpace(True, CPU), pixels.detach().cpu())
    with torch.no_grad():
        torch.testing.assert_close(ours(), expected, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("kind", IMAGE_KINDS)
def test_the_start_is_near_grey_noise_drawn_from_the_seed(kind: Kind) -> None:
    settings = ParametrisationSettings(kind=kind)

    def start(seed: int) -> torch.Tensor:
        with torch.no_grad():
            return build(settings, 2, 32, 40, generator=torch.Generator().manual_seed(seed), device=CPU)()

    first = start(5)
    assert first.shape == (2, 3, 32, 40)
    assert float((first - 0.5).abs().max()) < 0.05 and float(first.std()) > 0
    assert torch.equal(first, start(5))
    assert not torch.equal(first, start(6))


@pytest.mark.parametrize("kind", IMAGE_KINDS)
@pytest.mark.parametrize("decorrelate", [True, False])
@pytest.mark.parametrize("size", [(32, 32), (27, 41)])
def test_assign_is_the_exact_inverse(kind: Kind, decorrelate: bool, size: tuple[int, int]) -> None:
    target = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(1)) * 0.98 + 0.01
    image = build(
        ParametrisationSettings(kind=kind, decorrelate=decorrelate),
        2,
        *size,
        generator=torch.Generator().manual_seed(0),
        device=CPU,
    )
    image.assign(target)
    with torch.no_grad():
        torch.testing.assert_close(image(), target, atol=2e-5, rtol=0)


def test_settings_out_of_range_name_the_field() -> None:
    with pytest.raises(InvalidArgument) as caught:
        ParametrisationSettings(init_sd=2.0)
    assert caught.value.field == "parametrisation.init_sd"
    with pytest.raises(InvalidArgument) as caught:
        ParametrisationSettings(decay_power=float(np.nan))
    assert caught.value.field == "parametrisation.decay_power"
