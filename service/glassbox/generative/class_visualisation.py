"""Class model visualisation (Simonyan, Vedaldi & Zisserman 2014, "Deep inside convolutional networks"):
the image I maximising S_c(I) − λ‖I‖², the class's pre-softmax score under an L2 prior. As in the paper
the defaults optimise plain RGB pixels with no transformations; the parametrisation and the
transformations of feature visualisation can be switched on for more natural images."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from glassbox.backends.torch_backend import TorchModel
from glassbox.common.validation import check_range
from glassbox.config import GenerativeJobLimits
from glassbox.generative.feature_visualisation import FeatureVisualisation, visualise
from glassbox.generative.objectives import Logit
from glassbox.generative.optimise import StepSpan
from glassbox.generative.parametrisations import PIXEL_RGB, ParametrisationSettings
from glassbox.generative.regularisers import RegulariserSettings
from glassbox.generative.transforms import NONE, FitInput, TransformSettings


@dataclass(frozen=True)
class ClassVisualisation:
    """A checked class-visualisation request."""

    model: TorchModel
    class_index: int
    height: int
    width: int
    l2_weight: float = 1.0
    parametrisation: ParametrisationSettings = PIXEL_RGB
    transforms: TransformSettings = NONE
    steps: int = 256
    learning_rate: float = 0.05
    limits: GenerativeJobLimits = field(default_factory=GenerativeJobLimits, compare=False, repr=False)
    """The operator's caps (`jobs.limits.generative`); the embedded defaults outside a server."""

    def __post_init__(self) -> None:
        check_range(self.l2_weight, 0.0, 1e6, "l2_weight")
        self.as_feature_visualisation()

    def as_feature_visualisation(self) -> FeatureVisualisation:
        return FeatureVisualisation(
            model=self.model,
            objective=Logit(self.class_index),
            height=self.height,
            width=self.width,
            parametrisation=self.parametrisation,
            transforms=self.transforms,
            regularisers=RegulariserSettings(l2_weight=self.l2_weight),
            steps=self.steps,
            learning_rate=self.learning_rate,
            limits=self.limits,
        )


@dataclass(frozen=True)
class ClassModel:
    """The class visualisation [3, H, W] in [0, 1] and the class's score before and after."""

    image: torch.Tensor
    initial_logit: float
    final_logit: float
    final_probability: float


def visualise_class(
    spec: ClassVisualisation, *, generator: torch.Generator, progress: StepSpan
) -> ClassModel:
    rendered = visualise(spec.as_feature_visualisation(), generator=generator, progress=progress)
    fit = FitInput(spec.model.config.input.height, spec.model.config.input.width)
    probabilities = F.softmax(spec.model.logits(fit(rendered.images)), dim=1)
    return ClassModel(
        image=rendered.images[0],
        initial_logit=float(rendered.initial_objective[0]),
        final_logit=float(rendered.final_objective[0]),
        final_probability=float(probabilities[0, spec.class_index]),
    )
