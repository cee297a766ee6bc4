"""The core description of an explanation-evaluation job: what to measure, on which images, with which
methods. Every default lives here; the proto adapter (`wire.evaluation`) only fills in what a
request sets."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import torch

from glassbox.backends.torch_backend import TorchModel
from glassbox.config import Settings
from glassbox.methods.service import Aggregation


class Metric(StrEnum):
    DELETION = "deletion"
    INSERTION = "insertion"
    ROAD = "road"
    POINTING_GAME = "pointing_game"
    RELEVANCE_MASS = "relevance_mass"
    RANDOMISATION = "randomisation"
    MAX_SENSITIVITY = "max_sensitivity"
    SPARSENESS = "sparseness"


LOCALISATION_METRICS = (Metric.POINTING_GAME, Metric.RELEVANCE_MASS)


class PerturbationBaseline(StrEnum):
    """What replaces the pixels a faithfulness curve removes (not an attribution method's `Baseline`)."""

    BLUR = "blur"
    MEAN = "mean"


@dataclass(frozen=True)
class MethodConfig:
    """One method to evaluate: its registry name, frozen params and how channels are reduced."""

    name: str
    method: str
    params: Any
    aggregation: Aggregation = Aggregation.SUM


@dataclass(frozen=True)
class Region:
    """A named rectangle in input pixels."""

    name: str
    top: int
    left: int
    height: int
    width: int

    def mask(self, height: int, width: int) -> torch.Tensor:
        """bool [height, width], True inside the rectangle."""
        inside = torch.zeros(height, width, dtype=torch.bool)
        inside[self.top : self.top + self.height, self.left : self.left + self.width] = True
        return inside


@dataclass(frozen=True)
class FaithfulnessOptions:
    steps: int = 16
    baseline: PerturbationBaseline = PerturbationBaseline.BLUR
    blur_sigma: float = 5.0


@dataclass(frozen=True)
class RoadOptions:
    fractions: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    noise: float = 0.01


@dataclass(frozen=True)
class LocalisationOptions:
    tolerance_pixels: int | None = None  # None: localisation.paper_tolerance of the input size
    regions: tuple[Region, ...] = ()


@dataclass(frozen=True)
class RandomisationOptions:
    images: int = 8
    similarity_threshold: float = 0.3


@dataclass(frozen=True)
class SensitivityOptions:
    samples: int = 8
    radius: float = 0.05
    threshold: float = 0.5


def default_job_settings() -> Settings:
    """The embedded defaults (no environment read): for a job built outside a server or worker."""
    return Settings.model_construct()


@dataclass(frozen=True)
class EvaluationJob:
    """A checked job: the model, the images (masks where known) and targets, methods and options."""

    model: TorchModel
    images: torch.Tensor  # float32 [N, 3, H, W] in [0, 1]
    masks: torch.Tensor | None  # bool [N, H, W]
    labels: torch.Tensor | None  # int64 [N]
    use_labels: bool  # explain the labels (else the predicted classes)
    methods: tuple[MethodConfig, ...]
    metrics: tuple[Metric, ...]
    faithfulness: FaithfulnessOptions = field(default_factory=FaithfulnessOptions)
    road: RoadOptions = field(default_factory=RoadOptions)
    localisation: LocalisationOptions = field(default_factory=LocalisationOptions)
    randomisation: RandomisationOptions = field(default_factory=RandomisationOptions)
    sensitivity: SensitivityOptions = field(default_factory=SensitivityOptions)
    example_images: int = 4
    settings: Settings = field(default_factory=default_job_settings, compare=False, repr=False)
    """The settings the job runs with (the server's or the worker's: `attribution` caps and budget)."""
