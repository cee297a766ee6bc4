"""The reference inputs of the path and difference methods (integrated gradients, DeepLift, layer
integrated gradients, layer conductance), in pixel space: black, white, the input blurred, uniform
noise from a seed, or an image given with the request.

`BaselineChoice` checks the parameters once (at the method's validation) and then makes one baseline per
input row.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import torch
from torchvision.transforms.functional import gaussian_blur

from glassbox.core.images import load_image
from glassbox.methods.base import AttributionMethod, ImageInput


class Baseline(StrEnum):
    BLACK = "black"
    WHITE = "white"
    BLURRED = "blurred"
    UNIFORM_NOISE = "uniform_noise"
    IMAGE = "image"


class BaselineChoice:
    """A method's baseline parameters (`baseline`, `baseline_image`, `blur_sigma`, `seed`), checked."""

    def __init__(
        self,
        method: AttributionMethod,
        kind: Baseline,
        image: ImageInput | None,
        blur_sigma: float,
        seed: int,
    ) -> None:
        self.kind, self.blur_sigma, self.seed = kind, blur_sigma, seed
        if kind is Baseline.BLURRED:
            method.require(
                blur_sigma > 0 and np.isfinite(blur_sigma), "blur_sigma", f"must be > 0, got {blur_sigma}"
            )
        method.require(0 <= seed < 2**64, "seed", f"must be in 0..2^64-1, got {seed}")
        self._image: torch.Tensor | None = None
        if kind is Baseline.IMAGE:
            method.require(image is not None, "baseline_image", "is required with BASELINE_IMAGE")
            assert image is not None
            self._image = load_image(
                image.source(),
                method.model.config.input,
                max_pixels=method.call.max_image_pixels,
                field=f"{method.field}.baseline_image",
            ).pixels

    def of(self, inputs: torch.Tensor) -> torch.Tensor:
        """One baseline per input row [n, 3, H, W], in pixel space."""
        if self.kind is Baseline.BLACK:
            return torch.zeros_like(inputs)
        if self.kind is Baseline.WHITE:
            return torch.ones_like(inputs)
        if self.kind is Baseline.BLURRED:
            sigma = self.blur_sigma
            size = 2 * int(np.ceil(3 * sigma)) + 1
            size = min(size, 2 * (min(inputs.shape[-2:]) - 1) + 1)  # reflect padding needs size < 2·side
            return gaussian_blur(inputs, [size, size], [sigma, sigma])
        if self.kind is Baseline.UNIFORM_NOISE:
            generator = torch.Generator().manual_seed(self.seed)
            noise = torch.rand(inputs.shape[1:], generator=generator)
            return noise.to(inputs.device).expand_as(inputs).contiguous()
        assert self._image is not None
        return self._image.to(inputs.device).expand_as(inputs).contiguous()
