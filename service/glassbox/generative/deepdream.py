"""DeepDream (Mordvintsev, Olah & Tyka 2015, "Inceptionism"): amplify what a layer sees in a given image.

Gradient ascent on the objective (typically a layer's mean squared activation) starting from the image,
octave by octave from the coarsest to the model's input size. Each octave starts from the image at its
size plus the detail dreamed so far (upsampled), and every step shifts the image circularly by a random
offset, so the dream does not lock onto the pixel grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from glassbox.backends.torch_backend import TorchModel
from glassbox.common.capture import LayerCapture
from glassbox.common.validation import MIN_SIDE, check_learning_rate, check_range
from glassbox.config import GenerativeJobLimits
from glassbox.core.errors import FailedPrecondition, InvalidArgument
from glassbox.generative.objectives import Objective
from glassbox.generative.optimise import StepSpan, adam, evaluate, optimise
from glassbox.generative.parametrisations import PIXEL_RGB, from_image
from glassbox.generative.transforms import Roll


@dataclass(frozen=True)
class DeepDream:
    """A checked DeepDream request; `image` is [3, H, W] in [0, 1] at the model's input size."""

    model: TorchModel
    image: torch.Tensor
    objective: Objective
    octaves: int = 4
    octave_scale: float = 1.4
    steps_per_octave: int = 10
    jitter: int = 4
    learning_rate: float = 0.1
    limits: GenerativeJobLimits = field(default_factory=GenerativeJobLimits, compare=False, repr=False)
    """The operator's caps (`jobs.limits.generative`); the embedded defaults outside a server."""

    def __post_init__(self) -> None:
        check_range(self.octaves, 1, 8, "octaves")
        check_range(self.octave_scale, 1.1, 2.0, "octave_scale")
        check_range(self.steps_per_octave, 1, 1000, "steps_per_octave")
        check_range(self.jitter, 0, 64, "jitter")
        check_learning_rate(self.learning_rate, self.limits)
        smallest = min(self.octave_sizes()[0])
        if smallest < MIN_SIDE:
            raise InvalidArgument(
                f"the smallest octave would be {smallest} pixels; use fewer octaves or a smaller "
                f"octave_scale (both sides must stay >= {MIN_SIDE})",
                field="octaves",
            )

    def octave_sizes(self) -> list[tuple[int, int]]:
        """(height, width) of each octave, coarsest first; the last is the image's own size."""
        height, width = self.image.shape[-2:]
        factors = [self.octave_scale ** (self.octaves - 1 - k) for k in range(self.octaves)]
        return [(round(height / f), round(width / f)) for f in factors]


@dataclass(frozen=True)
class Dream:
    """The dreamed image [3, H, W] in [0, 1] and the objective before and after."""

    image: torch.Tensor
    initial_objective: float
    final_objective: float


def _resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(image.shape[-2:]) == size:
        return image
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)


def dream(spec: DeepDream, *, generator: torch.Generator, progress: StepSpan) -> Dream:
    model, objective = spec.model, spec.objective
    base = spec.image[None].to(model.device)
    roll = Roll(spec.jitter)
    detail = torch.zeros_like(base)
    with LayerCapture(model, objective.layers, need_logits=objective.needs_logits) as capture:

        def plain(images: torch.Tensor) -> torch.Tensor:
            return objective(capture.forward(images))

        def score(images: torch.Tensor) -> torch.Tensor:
            return objective(capture.forward(roll(images, generator)))

        initial = float(evaluate(plain, base)[0])
        for octave, size in enumerate(spec.octave_sizes()):
            scaled_base = _resize(base, size)
            image = from_image(
                PIXEL_RGB, (scaled_base + _resize(detail, size)).clamp(0, 1), device=model.device
            )
            try:
                optimise(
                    image,
                    score,
                    optimiser=adam(image.parameters(), spec.learning_rate),
                    steps=spec.steps_per_octave,
                    progress=StepSpan(
                        progress.reporter,
                        progress.total,
                        offset=progress.offset + octave * spec.steps_per_octave,
                        message=f"octave {octave + 1} of {spec.octaves} ({size[0]}x{size[1]})",
                    ),
                )
            except RuntimeError as exc:
                if size == tuple(base.shape[-2:]):
                    raise
                raise FailedPrecondition(
                    f"the model cannot run on {size[0]}x{size[1]} images ({exc}); use fewer octaves",
                    field="octaves",
                ) from exc
            with torch.no_grad():
                detail = image() - scaled_base
        with torch.no_grad():
            result = image()
        final = float(evaluate(plain, result)[0])
    return Dream(image=result[0].cpu(), initial_objective=initial, final_objective=final)
