"""SmoothGrad and its variants: a gradient method averaged over copies of the input with Gaussian noise.

Smilkov et al. 2017, "SmoothGrad: removing noise by adding noise" (mean of the maps); SmoothGrad²
(Hooker et al. 2019, "A Benchmark for Interpretability Methods in Deep Neural Networks": mean of the
squared maps); VarGrad (Adebayo et al. 2018, "Local Explanation Methods for Deep Neural Networks Lack
Sensitivity to Parameter Values": their variance). It wraps any gradient method (saliency, gradient ×
input, integrated gradients, guided backprop, deconvnet, guided and blur integrated gradients, LRP,
DeepLift, DeepLiftShap, GradientShap) by calling its `attribute_rows` on noisy inputs, in
memory-budgeted chunks of samples, every target of a sample in the same forward.

The noise of sample s is drawn from its own generator seeded by (seed, s), so a map depends on the seed
only — not on the batch it came in, the chunk size, or the device. `sample_noise` gives the same noise
to anyone who wants to reproduce a map.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import cast

import torch

from glassbox.backends.base import Model
from glassbox.core.errors import FailedPrecondition
from glassbox.core.reasons import Reason
from glassbox.methods.base import MapResult, MethodChoice, MethodOutput, NoParams
from glassbox.methods.gradients import GradientMethod, graph_rows_per_batch
from glassbox.methods.registry import method_class, smoothable_methods
from glassbox.methods.targets import TargetSelector

_SEED_MIX = 0x9E3779B97F4A7C15  # odd 64-bit constant: distinct (seed, sample) pairs get distinct seeds


class SmoothGradVariant(StrEnum):
    SMOOTHGRAD = "smoothgrad"
    SMOOTHGRAD_SQUARED = "smoothgrad_squared"
    VARGRAD = "vargrad"


@dataclass(frozen=True)
class SmoothGradParams:
    samples: int = 25
    noise_fraction: float = 0.15
    seed: int = 0
    variant: SmoothGradVariant = SmoothGradVariant.SMOOTHGRAD
    base: MethodChoice = field(default_factory=lambda: MethodChoice("saliency", NoParams()))


def sample_noise(seed: int, sample: int, shape: torch.Size | tuple[int, ...], sigma: float) -> torch.Tensor:
    """The Gaussian noise (CPU, float32) that SmoothGrad adds for `sample` under `seed`."""
    return noise_batch(seed, range(sample, sample + 1), shape, sigma)[0]


def noise_batch(seed: int, samples: range, shape: torch.Size | tuple[int, ...], sigma: float) -> torch.Tensor:
    """`sample_noise` of every sample in `samples`, stacked [len(samples), *shape] and drawn in place: a
    separate draw, scale and stack per sample cost 2.5× as much, which shows on a 64×64 input."""
    noise = torch.empty(len(samples), *shape)
    generator = torch.Generator()
    for row, sample in enumerate(samples):
        generator.manual_seed((seed * _SEED_MIX + sample) % 2**64)
        noise[row].normal_(0.0, sigma, generator=generator)
    return noise


def supported_bases(model: Model) -> list[str]:
    """The base methods SmoothGrad can wrap on `model` (GetModel lists smoothgrad when any can)."""
    return [name for name in smoothable_methods() if method_class(name).unsupported_reason(model) is None]


class SmoothGrad(GradientMethod):
    """Mean (or mean square, or variance) of the base method's maps over noisy samples."""

    name = "smoothgrad"
    Params = SmoothGradParams

    def validate(self) -> None:
        p = self.params
        cap = self.call.settings.max_samples
        self.require(
            1 <= p.samples <= cap,
            "samples",
            f"must be in 1..{cap} (the server's max_samples), got {p.samples}",
        )
        self.require(
            0.0 <= p.noise_fraction <= 1.0, "noise_fraction", f"must be in [0, 1], got {p.noise_fraction}"
        )
        self.require(0 <= p.seed < 2**64, "seed", f"must be in 0..2^64-1, got {p.seed}")
        bases = smoothable_methods()
        self.require(p.base.name in bases, "base", f"must be one of {bases}, got {p.base.name!r}")
        base_cls = method_class(p.base.name)
        reason = base_cls.unsupported_reason(self.model)
        if reason is not None:
            raise FailedPrecondition(
                f"{reason}; smoothgrad bases this model supports: {supported_bases(self.model)}",
                field=f"{self.field}.{p.base.name}",
                reason=Reason.METHOD_NOT_SUPPORTED,
            )
        base = base_cls(self.model, p.base.params, self.call, field=f"{self.field}.{p.base.name}")
        # Every smoothable method is a GradientMethod (tests/methods/test_method_params_contract.py).
        self.base = cast(GradientMethod, base)

    def applies_relu_rule(self) -> bool:
        return self.base.applies_relu_rule()

    def planned_rows(self, images: int, targets: int) -> tuple[int, int]:
        return images, images * targets * self.params.samples * self.base.rows_per_input

    def run(self, pixels: torch.Tensor, selector: TargetSelector) -> MethodOutput:
        logits = self.call.forward(pixels)
        targets = selector.resolve(logits)
        return MethodOutput(logits, targets, self.explain(pixels, targets, logits))

    def explain(
        self, pixels: torch.Tensor, targets: list[tuple[int, ...]], logits: torch.Tensor
    ) -> list[list[MapResult]]:
        x = pixels.to(self.model.device, torch.float32)
        images, samples = x.shape[0], self.params.samples
        rows_per_chunk = graph_rows_per_batch(self.call, self.model, self.base.rows_per_input)
        samples_per_chunk = max(1, rows_per_chunk // images)
        passes = max(len(t) for t in targets)
        sums = torch.zeros(passes, *x.shape, dtype=torch.float64, device=x.device)
        squares = torch.zeros_like(sums)
        for first in range(0, samples, samples_per_chunk):
            self.call.check()
            chunk = range(first, min(first + samples_per_chunk, samples))
            noise = noise_batch(self.params.seed, chunk, x.shape[1:], self.params.noise_fraction)
            noisy = (x.unsqueeze(0) + noise.to(x.device).unsqueeze(1)).reshape(-1, *x.shape[1:])
            maps = self.base.attribute_rows(noisy, targets * len(chunk))
            for i in range(images):  # rows are (sample, image) pairs: image i's are every images-th
                of_image = torch.stack(maps[i::images]).double()  # [samples in chunk, k_i, 3, H, W]
                k = of_image.shape[1]
                sums[:k, i] += of_image.sum(0)
                squares[:k, i] += of_image.square().sum(0)
        mean, mean_square = sums / samples, squares / samples
        if self.params.variant is SmoothGradVariant.SMOOTHGRAD:
            result = mean
        elif self.params.variant is SmoothGradVariant.SMOOTHGRAD_SQUARED:
            result = mean_square
        else:
            result = (mean_square - mean.square()).clamp(min=0)
        return [
            [MapResult(result[j, i].float().cpu()) for j in range(len(targets[i]))] for i in range(images)
        ]
