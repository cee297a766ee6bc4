"""Feature inversion (Mahendran & Vedaldi 2015, "Understanding deep image representations by inverting
them"): find an image x whose representation φ(x) at a layer matches φ(x₀) of a given image, starting
from noise, by minimising ‖φ(x) − φ(x₀)‖² / ‖φ(x₀)‖² plus total-variation and norm priors. What the
reconstruction keeps of x₀ (colour, layout, texture) is what the layer keeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from glassbox.backends.torch_backend import TorchModel
from glassbox.common.capture import LayerCapture
from glassbox.common.validation import check_learning_rate, check_steps
from glassbox.config import GenerativeJobLimits
from glassbox.generative import parametrisations
from glassbox.generative.optimise import StepSpan, adam, evaluate, optimise
from glassbox.generative.parametrisations import ParametrisationSettings
from glassbox.generative.regularisers import RegulariserSettings

SMOOTHNESS_PRIOR = RegulariserSettings(total_variation_weight=0.05)
"""The default prior: total variation only; the sigmoid already bounds the pixels."""

NOISE_START = ParametrisationSettings(init_sd=0.5)
"""The default start: visible Fourier noise in decorrelated colour. Near-grey noise (Lucent's sd 0.01)
can leave every first-layer unit of a trained network inactive, and then no gradient reaches the image."""


@dataclass(frozen=True)
class FeatureInversion:
    """A checked inversion request; `image` is [3, H, W] in [0, 1] at the model's input size and
    `layer` a layer of `model` (checked by the caller with `model.layer_info`)."""

    model: TorchModel
    image: torch.Tensor
    layer: str
    parametrisation: ParametrisationSettings = NOISE_START
    regularisers: RegulariserSettings = SMOOTHNESS_PRIOR
    steps: int = 256
    learning_rate: float = 0.05
    limits: GenerativeJobLimits = field(default_factory=GenerativeJobLimits, compare=False, repr=False)
    """The operator's caps (`jobs.limits.generative`); the embedded defaults outside a server."""

    def __post_init__(self) -> None:
        self.model.layer_info(self.layer, field="layer")
        check_steps(self.steps, self.limits)
        check_learning_rate(self.learning_rate, self.limits)


@dataclass(frozen=True)
class Inversion:
    """The reconstruction [3, H, W] in [0, 1] and the relative representation error before and after."""

    image: torch.Tensor
    initial_relative_error: float
    final_relative_error: float


def invert(spec: FeatureInversion, *, generator: torch.Generator, progress: StepSpan) -> Inversion:
    model = spec.model
    target_image = spec.image[None].to(model.device)
    height, width = target_image.shape[-2:]
    image = parametrisations.build(
        spec.parametrisation, 1, height, width, generator=generator, device=model.device
    )
    penalties = spec.regularisers.penalties()
    with LayerCapture(model, {spec.layer}, need_logits=False) as capture:
        with torch.no_grad():
            target = capture.forward(target_image).layers[spec.layer].detach()
        target_norm = target.flatten(1).norm(dim=1).clamp_min(1e-12)

        def squared_relative_error(images: torch.Tensor) -> torch.Tensor:
            representation = capture.forward(images).layers[spec.layer]
            return (representation - target).flatten(1).square().sum(1) / target_norm.square()

        def relative_error(images: torch.Tensor) -> torch.Tensor:
            return squared_relative_error(images).sqrt()

        def score(images: torch.Tensor) -> torch.Tensor:
            value = -squared_relative_error(images)
            for penalty in penalties:
                value = value - penalty(images)
            return value

        with torch.no_grad():
            initial = float(evaluate(relative_error, image())[0])
        optimise(
            image,
            score,
            optimiser=adam(image.parameters(), spec.learning_rate),
            steps=spec.steps,
            progress=progress,
            between_steps=spec.regularisers.between_steps(),
        )
        with torch.no_grad():
            result = image()
        final = float(evaluate(relative_error, result)[0])
    return Inversion(image=result[0].cpu(), initial_relative_error=initial, final_relative_error=final)
