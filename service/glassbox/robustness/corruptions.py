"""Common corruptions at five severities (Hendrycks & Dietterich 2019, "Benchmarking neural network
robustness to common corruptions and perturbations"), with ImageNet-C's parameters, on pixels in [0, 1].

Gaussian blur's σ is ImageNet-C's at 224 px, scaled with the image's size, so a 64 px image is blurred
as much relative to its content. Brightness adds to the HSV value channel as ImageNet-C does; scaling a
pixel's RGB by v'/v changes V exactly so and leaves hue and saturation as they are, which is what the
HSV round trip computes. Gaussian noise is drawn from the job's generator.
"""

from __future__ import annotations

import io
import math
from enum import StrEnum

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

SEVERITIES = (1, 2, 3, 4, 5)
REFERENCE_SIZE = 224
"""The image size ImageNet-C's blur radii are given for."""


class Corruption(StrEnum):
    GAUSSIAN_NOISE = "gaussian_noise"
    GAUSSIAN_BLUR = "gaussian_blur"
    BRIGHTNESS = "brightness"
    CONTRAST = "contrast"
    JPEG = "jpeg"


PARAMETERS: dict[Corruption, tuple[float, ...]] = {
    Corruption.GAUSSIAN_NOISE: (0.08, 0.12, 0.18, 0.26, 0.38),  # σ of the noise
    Corruption.GAUSSIAN_BLUR: (1.0, 2.0, 3.0, 4.0, 6.0),  # σ in pixels at 224 px
    Corruption.BRIGHTNESS: (0.1, 0.2, 0.3, 0.4, 0.5),  # added to V
    Corruption.CONTRAST: (0.4, 0.3, 0.2, 0.1, 0.05),  # contrast kept
    Corruption.JPEG: (25, 18, 15, 10, 7),  # quality
}


def corrupt(
    images: torch.Tensor, corruption: Corruption, severity: int, *, generator: torch.Generator
) -> torch.Tensor:
    """`images` [N, 3, H, W] in [0, 1] corrupted at `severity` (1..5), still in [0, 1]."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be 1..5, got {severity}")
    value = PARAMETERS[corruption][severity - 1]
    if corruption is Corruption.GAUSSIAN_NOISE:
        noise = torch.randn(images.shape, generator=generator) * value
        return (images + noise).clamp(0.0, 1.0)
    if corruption is Corruption.GAUSSIAN_BLUR:
        return gaussian_blur(images, value * images.shape[-1] / REFERENCE_SIZE)
    if corruption is Corruption.BRIGHTNESS:
        return brighten(images, value)
    if corruption is Corruption.CONTRAST:
        means = images.mean(dim=(2, 3), keepdim=True)
        return ((images - means) * value + means).clamp(0.0, 1.0)
    return jpeg(images, int(value))


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with a kernel of radius ceil(3σ), reflecting at the borders."""
    radius = max(1, math.ceil(3 * sigma))
    radius = min(radius, images.shape[-1] - 1, images.shape[-2] - 1)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    horizontal = kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    vertical = kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    out = F.conv2d(F.pad(images, (radius, radius, 0, 0), mode="reflect"), horizontal, groups=channels)
    out = F.conv2d(F.pad(out, (0, 0, radius, radius), mode="reflect"), vertical, groups=channels)
    return out.clamp(0.0, 1.0)


def brighten(images: torch.Tensor, amount: float) -> torch.Tensor:
    """Add `amount` to each pixel's HSV value (clipped to 1), keeping its hue and saturation."""
    value = images.amax(dim=1, keepdim=True)
    brighter = (value + amount).clamp(max=1.0)
    scaled = images * brighter / value.clamp_min(1e-12)
    return torch.where(value > 0, scaled, brighter.expand_as(images)).clamp(0.0, 1.0)


def jpeg(images: torch.Tensor, quality: int) -> torch.Tensor:
    """Each image through PIL's JPEG encoder and decoder at `quality`."""
    out = torch.empty_like(images)
    for i, image in enumerate(images):
        array = (image.permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="JPEG", quality=quality)
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
        out[i] = torch.from_numpy(decoded.copy()).permute(2, 0, 1).float() / 255
    return out
