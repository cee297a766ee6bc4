"""Transformation robustness (Olah et al. 2017): the image is randomly padded, shifted, scaled and rotated
before every forward pass, so the optimiser cannot rely on pixel-exact high-frequency patterns.

Every random draw comes from the `torch.Generator` passed in (on the CPU), so a job's transforms are the
same for the same seed on any device. Jitter is Lucid's random crop (an exact shift: no interpolation
and no blank border); scaling and rotation interpolate bilinearly (`resampling`, deterministic on CUDA
too) and are skipped when the draw is the identity.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from glassbox.common.validation import MIN_SIDE, check_range
from glassbox.core.errors import InvalidArgument
from glassbox.generative.resampling import resize, rotate


def _draw(options: Sequence[float], generator: torch.Generator) -> float:
    return options[int(torch.randint(len(options), (1,), generator=generator))]


def _offset(limit: int, generator: torch.Generator) -> int:
    return int(torch.randint(limit + 1, (1,), generator=generator))


class Transform(ABC):
    """A random image transformation [B, 3, H, W] → [B, 3, H', W'], differentiable in the image."""

    @abstractmethod
    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...


@dataclass(frozen=True)
class Pad(Transform):
    """Constant padding of `width` pixels on every side."""

    width: int
    value: float = 0.5

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return F.pad(image, [self.width] * 4, value=self.value)


@dataclass(frozen=True)
class Jitter(Transform):
    """A random crop `pixels` smaller in each dimension: a random shift by 0..pixels (Lucid's jitter)."""

    pixels: int

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        height, width = image.shape[-2:]
        top, left = _offset(self.pixels, generator), _offset(self.pixels, generator)
        return image[..., top : top + height - self.pixels, left : left + width - self.pixels]


@dataclass(frozen=True)
class RandomScale(Transform):
    """Resize by a factor drawn from `scales`."""

    scales: tuple[float, ...]

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        scale = _draw(self.scales, generator)
        if scale == 1.0:
            return image
        height, width = image.shape[-2:]
        return resize(image, (max(1, round(height * scale)), max(1, round(width * scale))))


@dataclass(frozen=True)
class RandomRotate(Transform):
    """Rotate about the centre by an angle (degrees) drawn from `angles`; corners are filled with 0."""

    angles: tuple[float, ...]

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return rotate(image, _draw(self.angles, generator))


@dataclass(frozen=True)
class Roll(Transform):
    """A random circular shift by -pixels..pixels in each dimension (DeepDream's jitter)."""

    pixels: int

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        dy = _offset(2 * self.pixels, generator) - self.pixels
        dx = _offset(2 * self.pixels, generator) - self.pixels
        return torch.roll(image, shifts=(dy, dx), dims=(-2, -1))


@dataclass(frozen=True)
class FitInput(Transform):
    """Upsample images smaller than the model's input to its input size (Lucent's rule, with the
    model's own size in place of 224); larger images pass unchanged to fully convolutional models."""

    height: int
    width: int

    def __call__(self, image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if image.shape[-2] >= self.height and image.shape[-1] >= self.width:
            return image
        return resize(image, (self.height, self.width))


@dataclass(frozen=True)
class TransformSettings:
    """Pad, jitter, scale, rotate, jitter again. The defaults are Lucent's `standard_transforms`."""

    pad: int = 12
    pad_value: float = 0.5
    jitter: int = 8
    scales: tuple[float, ...] = tuple(1 + (i - 5) / 50 for i in range(11))
    rotations_degrees: tuple[float, ...] = tuple(float(a) for a in range(-10, 11)) + (0.0,) * 5
    final_jitter: int = 4

    def __post_init__(self) -> None:
        check_range(self.pad, 0, 256, "transforms.pad")
        check_range(self.pad_value, 0.0, 1.0, "transforms.pad_value")
        check_range(self.jitter, 0, 128, "transforms.jitter")
        for i, scale in enumerate(self.scales):
            check_range(scale, 0.25, 4.0, f"transforms.scales[{i}]")
        for i, angle in enumerate(self.rotations_degrees):
            check_range(angle, -180.0, 180.0, f"transforms.rotations_degrees[{i}]")
        check_range(self.final_jitter, 0, 128, "transforms.final_jitter")

    def check_fits(self, height: int, width: int) -> None:
        """InvalidArgument when the jitters would crop an image of this size away entirely."""
        smallest = min(self.scales, default=1.0)
        side = (min(height, width) + 2 * self.pad - self.jitter) * smallest - self.final_jitter
        if side < MIN_SIDE // 2:
            raise InvalidArgument(
                f"the jitters crop a {height}x{width} image down to {side:.0f} pixels; use smaller jitters",
                field="transforms.jitter",
            )

    def build(self) -> list[Transform]:
        transforms: list[Transform] = []
        if self.pad:
            transforms.append(Pad(self.pad, self.pad_value))
        if self.jitter:
            transforms.append(Jitter(self.jitter))
        if self.scales:
            transforms.append(RandomScale(self.scales))
        if self.rotations_degrees:
            transforms.append(RandomRotate(self.rotations_degrees))
        if self.final_jitter:
            transforms.append(Jitter(self.final_jitter))
        return transforms


STANDARD = TransformSettings()
NONE = TransformSettings(pad=0, jitter=0, scales=(), rotations_degrees=(), final_jitter=0)


class Compose:
    """Transforms applied in order."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = tuple(transforms)

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for transform in self.transforms:
            image = transform(image, generator)
        return image
