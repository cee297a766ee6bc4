"""Targeted adversarial images by projected gradient descent (Madry et al. 2018, "Towards deep learning
models resistant to adversarial attacks"; `common.pgd`, the same PGD as robustness's attacks): from a
real image, signed-gradient steps that lower the cross-entropy towards a chosen class, each followed by
a projection onto the L∞ ball of radius ε around the image and onto valid pixels [0, 1]. ε and the step
size are in pixel units, because the model's normalisation happens inside the model (the pixel
contract). Every step is reported (with a preview on request) and is a cancellation point.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from glassbox.backends.torch_backend import TorchModel
from glassbox.common.pgd import pgd
from glassbox.common.threat import Norm
from glassbox.common.validation import check_range, check_steps
from glassbox.config import AttributionSettings, GenerativeJobLimits
from glassbox.core.call import CallContext
from glassbox.core.cancellation import NEVER_CANCELLED
from glassbox.core.predictions import ClassScore
from glassbox.generative.optimise import StepSpan
from glassbox.render import encode_png
from glassbox.serving.execution import SCHEDULED


@dataclass(frozen=True)
class AdversarialImage:
    """A checked request; `image` is [3, H, W] in [0, 1] at the model's input size."""

    model: TorchModel
    image: torch.Tensor
    target: int
    epsilon: float = 8 / 255
    step_size: float | None = None  # None: epsilon / 4
    steps: int = 40
    random_start: bool = True
    limits: GenerativeJobLimits = field(default_factory=GenerativeJobLimits, compare=False, repr=False)
    """The operator's caps (`jobs.limits.generative`); the embedded defaults outside a server."""

    def __post_init__(self) -> None:
        check_range(self.epsilon, 0.0, 1.0, "epsilon", low_open=True)
        if self.step_size is not None:
            check_range(self.step_size, 0.0, 1.0, "step_size", low_open=True)
        check_steps(self.steps, self.limits)

    @property
    def alpha(self) -> float:
        return self.step_size if self.step_size is not None else self.epsilon / 4


@dataclass(frozen=True)
class Adversary:
    """The adversarial image and perturbation [3, H, W], and the predictions around them."""

    image: torch.Tensor
    perturbation: torch.Tensor
    original_prediction: ClassScore
    adversarial_prediction: ClassScore
    target: ClassScore

    @property
    def reached_target(self) -> bool:
        return self.adversarial_prediction.index == self.target.index


def _score(logits: torch.Tensor, index: int, labels: tuple[str, ...]) -> ClassScore:
    probabilities = F.softmax(logits, dim=0)
    return ClassScore(
        index=index, label=labels[index], probability=float(probabilities[index]), logit=float(logits[index])
    )


def attack(spec: AdversarialImage, *, generator: torch.Generator, progress: StepSpan) -> Adversary:
    model = spec.model
    image = spec.image[None]
    start = None
    if spec.random_start:
        start = torch.rand(image.shape, generator=generator) * 2 - 1
    call = CallContext(model, NEVER_CANCELLED, AttributionSettings(), compute=SCHEDULED)

    def report(step: int, iterate: torch.Tensor, value: float) -> None:
        progress.reporter.report(
            progress.offset + step,
            progress.total,
            value,
            progress.message,
            preview=lambda: encode_png(iterate[0]),
        )

    run = pgd(
        model,
        call,
        image,
        norm=Norm.LINF,
        radius=torch.tensor([spec.epsilon]),
        step_size=torch.tensor([spec.alpha]),
        iterations=spec.steps,
        targets=torch.tensor([spec.target]),
        unit_start=start,
        after_step=report,
    )
    adversarial = run.adversarial[0]
    original_logits, adversarial_logits = model.logits(torch.stack([spec.image.cpu(), adversarial]))
    return Adversary(
        image=adversarial,
        perturbation=adversarial - spec.image.cpu(),
        original_prediction=_score(original_logits, int(original_logits.argmax()), model.labels),
        adversarial_prediction=_score(adversarial_logits, int(adversarial_logits.argmax()), model.labels),
        target=_score(adversarial_logits, spec.target, model.labels),
    )
