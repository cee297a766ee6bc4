"""Image parametrisations: what the optimiser changes, and how that becomes pixels in [0, 1].

Two choices, as in Lucid/Lucent (Olah et al. 2017): the pixels themselves, or the image's Fourier
spectrum scaled by 1/frequency^decay (which equalises the gradient across frequencies, so the image
does not fill with high-frequency noise). Either lives in plain RGB or in a decorrelated colour space
(the square root of the ImageNet colour covariance), and a sigmoid keeps every pixel in [0, 1].
`assign(image)` is the exact inverse (up to the sigmoid's saturation), used to start from a given image
and to blur the image in place.

A third choice is the latent code of a learned image prior (`image_prior.LatentImage`): the settings
then carry the loaded prior (an `ImagePrior`), which builds the parametrisation itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import torch
from torch import nn

from glassbox.common.validation import check_range

COLOUR_CORRELATION_SQRT = torch.tensor(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=torch.float32
)
"""Square root of the ImageNet RGB colour covariance (columns: decorrelated components), from Lucid."""

COLOUR_MATRIX = COLOUR_CORRELATION_SQRT / COLOUR_CORRELATION_SQRT.norm(dim=0).max()
"""Decorrelated → RGB, scaled so that no component has a norm above 1 (as Lucid does)."""

FOURIER_SCALE_DIVISOR = 4.0
"""Lucid's constant dividing the Fourier image; it keeps the initial image away from saturation."""

_SIGMOID_EPSILON = 1e-4  # pixels exactly 0 or 1 map to ±9.2 logits instead of ±inf


class Kind(StrEnum):
    PIXEL = "pixel"
    FOURIER = "fourier"
    LATENT_PRIOR = "latent_prior"


class ImagePrior(Protocol):
    """A learned image prior (`image_prior.LatentPrior`): builds images from random latent codes."""

    def image(
        self,
        batch: int,
        height: int,
        width: int,
        *,
        init_sd: float,
        generator: torch.Generator,
        device: torch.device,
    ) -> ImageParametrisation: ...

    def check_size(self, height: int, width: int) -> None:
        """InvalidArgument naming `height` or `width` unless the prior renders images of that size."""


@dataclass(frozen=True)
class ParametrisationSettings:
    """Lucent's `param.image` defaults: Fourier, decorrelated colour, sd 0.01, 1/f spectrum.
    `prior` is the loaded prior of Kind.LATENT_PRIOR (and None for the other kinds)."""

    kind: Kind = Kind.FOURIER
    decorrelate: bool = True
    init_sd: float = 0.01
    decay_power: float = 1.0
    prior: ImagePrior | None = None

    def __post_init__(self) -> None:
        check_range(self.init_sd, 0.0, 1.0, "parametrisation.init_sd")
        check_range(self.decay_power, 0.0, 4.0, "parametrisation.decay_power")
        if (self.kind is Kind.LATENT_PRIOR) != (self.prior is not None):
            raise ValueError("a latent-prior parametrisation, and only it, carries a prior")


FOURIER_DECORRELATED = ParametrisationSettings()
PIXEL_RGB = ParametrisationSettings(kind=Kind.PIXEL, decorrelate=False)


class ColourSpace:
    """Maps unconstrained parameters to RGB in [0, 1] (sigmoid, optionally after decorrelation) and back."""

    def __init__(self, decorrelate: bool, device: torch.device) -> None:
        self.matrix = COLOUR_MATRIX.to(device) if decorrelate else None

    def to_rgb(self, raw: torch.Tensor) -> torch.Tensor:
        if self.matrix is not None:
            raw = torch.einsum("ij,bjhw->bihw", self.matrix, raw)
        return torch.sigmoid(raw)

    def from_rgb(self, image: torch.Tensor) -> torch.Tensor:
        raw = torch.logit(image.clamp(_SIGMOID_EPSILON, 1 - _SIGMOID_EPSILON))
        if self.matrix is not None:
            raw = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(self.matrix), raw)
        return raw


class ImageParametrisation(nn.Module, ABC):
    """A batch of images [B, 3, H, W] in [0, 1] computed from trainable parameters."""

    @abstractmethod
    def forward(self) -> torch.Tensor: ...

    @abstractmethod
    def assign(self, image: torch.Tensor) -> None:
        """Set the parameters so that `forward()` returns `image` [B, 3, H, W] in [0, 1]."""

    def constrain(self) -> None:
        """Project the parameters back onto their allowed set after an optimiser step (default: none)."""


class PixelImage(ImageParametrisation):
    """One parameter per pixel and colour component."""

    def __init__(self, shape: tuple[int, int, int, int], colour: ColourSpace, init: torch.Tensor) -> None:
        super().__init__()
        self.colour = colour
        self.raw = nn.Parameter(init.reshape(shape).clone())

    def forward(self) -> torch.Tensor:
        return self.colour.to_rgb(self.raw)

    @torch.no_grad()
    def assign(self, image: torch.Tensor) -> None:
        self.raw.copy_(self.colour.from_rgb(image))


def spectrum_scale(height: int, width: int, decay_power: float) -> torch.Tensor:
    """1 / max(|f|, 1/max(H, W))^decay for the frequencies of a real 2-D FFT, shape [H, W // 2 + 1]."""
    fy = torch.fft.fftfreq(height)[:, None]
    fx = torch.fft.rfftfreq(width)[None, :]
    frequency = torch.sqrt(fx * fx + fy * fy).clamp_min(1.0 / max(height, width))
    return frequency.pow(-decay_power)


class FourierImage(ImageParametrisation):
    """The real and imaginary parts of each image's 2-D spectrum, scaled by 1/frequency^decay."""

    scale: torch.Tensor

    def __init__(
        self, shape: tuple[int, int, int, int], colour: ColourSpace, init: torch.Tensor, decay_power: float
    ) -> None:
        super().__init__()
        batch, channels, self.height, self.width = shape
        self.colour = colour
        spectrum_shape = (batch, channels, self.height, self.width // 2 + 1, 2)
        self.spectrum = nn.Parameter(init.reshape(spectrum_shape).clone())
        scale = spectrum_scale(self.height, self.width, decay_power) / FOURIER_SCALE_DIVISOR
        self.register_buffer("scale", scale.to(init.device), persistent=False)

    def forward(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        raw = torch.fft.irfft2(spectrum, s=(self.height, self.width), norm="ortho")
        return self.colour.to_rgb(raw)

    @torch.no_grad()
    def assign(self, image: torch.Tensor) -> None:
        spectrum = torch.fft.rfft2(self.colour.from_rgb(image), norm="ortho") / self.scale
        self.spectrum.copy_(torch.view_as_real(spectrum))


def spectrum_size(height: int, width: int) -> int:
    """Parameters per image and colour component of a Fourier image."""
    return height * (width // 2 + 1) * 2


def build(
    settings: ParametrisationSettings,
    batch: int,
    height: int,
    width: int,
    *,
    generator: torch.Generator,
    device: torch.device,
) -> ImageParametrisation:
    """A random image (normal parameters of sd `init_sd`, drawn on the CPU from `generator`, so the
    start is the same on any device) under the chosen parametrisation."""
    if settings.prior is not None:
        return settings.prior.image(
            batch, height, width, init_sd=settings.init_sd, generator=generator, device=device
        )
    shape = (batch, 3, height, width)
    colour = ColourSpace(settings.decorrelate, device)
    count = batch * 3 * (spectrum_size(height, width) if settings.kind is Kind.FOURIER else height * width)
    init = (torch.randn(count, generator=generator) * settings.init_sd).to(device)
    if settings.kind is Kind.FOURIER:
        return FourierImage(shape, colour, init, settings.decay_power).to(device)
    return PixelImage(shape, colour, init).to(device)


def from_image(
    settings: ParametrisationSettings, image: torch.Tensor, *, device: torch.device
) -> ImageParametrisation:
    """The parametrisation of `settings` set to start exactly at `image` [B, 3, H, W]."""
    generator = torch.Generator().manual_seed(0)
    batch, _, height, width = image.shape
    param = build(settings, batch, height, width, generator=generator, device=device)
    param.assign(image.to(device))
    return param
