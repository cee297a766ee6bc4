"""Feature visualisation (Olah, Mordvintsev & Schubert 2017, "Feature Visualization", Distill): images
rendered from noise to maximise an objective, under a Fourier/decorrelated parametrisation, random
transformations and optional priors. The defaults are Lucent's `render_vis` (512 steps, Adam 0.05,
`param.image(w, sd=0.01, fft=True, decorrelate=True)`, `standard_transforms`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from glassbox.backends.torch_backend import TorchModel
from glassbox.common.capture import LayerCapture
from glassbox.common.validation import (
    check_learning_rate,
    check_range,
    check_size,
    check_steps,
)
from glassbox.config import GenerativeJobLimits
from glassbox.generative import parametrisations
from glassbox.generative.objectives import Objective
from glassbox.generative.optimise import StepSpan, adam, evaluate, optimise
from glassbox.generative.parametrisations import FOURIER_DECORRELATED, ParametrisationSettings
from glassbox.generative.regularisers import NO_REGULARISERS, RegulariserSettings
from glassbox.generative.transforms import STANDARD, Compose, FitInput, TransformSettings


@dataclass(frozen=True)
class FeatureVisualisation:
    """A checked feature-visualisation request; `objective` must already be bound to `model`."""

    model: TorchModel
    objective: Objective
    height: int
    width: int
    batch: int = 1
    parametrisation: ParametrisationSettings = FOURIER_DECORRELATED
    transforms: TransformSettings = STANDARD
    regularisers: RegulariserSettings = NO_REGULARISERS
    steps: int = 512
    learning_rate: float = 0.05
    limits: GenerativeJobLimits = field(default_factory=GenerativeJobLimits, compare=False, repr=False)
    """The operator's caps (`jobs.limits.generative`); the embedded defaults outside a server."""

    def __post_init__(self) -> None:
        check_range(self.batch, 1, self.limits.max_batch, "batch")
        check_size(self.height, self.width, self.limits)
        check_steps(self.steps, self.limits)
        check_learning_rate(self.learning_rate, self.limits)
        self.transforms.check_fits(self.height, self.width)
        if self.parametrisation.prior is not None:
            self.parametrisation.prior.check_size(self.height, self.width)


@dataclass(frozen=True)
class RenderedImages:
    """The images [B, 3, H, W] in [0, 1] (CPU) and the objective per image before and after."""

    images: torch.Tensor
    initial_objective: torch.Tensor
    final_objective: torch.Tensor


def visualise(
    spec: FeatureVisualisation, *, generator: torch.Generator, progress: StepSpan
) -> RenderedImages:
    """Optimise the images; every random draw comes from `generator` (a CPU generator)."""
    model = spec.model
    image = parametrisations.build(
        spec.parametrisation, spec.batch, spec.height, spec.width, generator=generator, device=model.device
    )
    fit = FitInput(model.config.input.height, model.config.input.width)
    transform = Compose([*spec.transforms.build(), fit])
    penalties = spec.regularisers.penalties()
    objective = spec.objective
    with LayerCapture(model, objective.layers, need_logits=objective.needs_logits) as capture:

        def plain(images: torch.Tensor) -> torch.Tensor:
            return objective(capture.forward(fit(images, generator)))

        def score(images: torch.Tensor) -> torch.Tensor:
            value = objective(capture.forward(transform(images, generator)))
            for penalty in penalties:
                value = value - penalty(images)
            return value

        with torch.no_grad():
            initial = evaluate(plain, image())
        optimise(
            image,
            score,
            optimiser=adam(image.parameters(), spec.learning_rate),
            steps=spec.steps,
            progress=progress,
            between_steps=spec.regularisers.between_steps(),
        )
        with torch.no_grad():
            final_images = image().detach()
        final = evaluate(plain, final_images)
    return RenderedImages(images=final_images.cpu(), initial_objective=initial, final_objective=final)
