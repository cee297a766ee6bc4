"""Targeted adversarial images by projected gradient descent (Madry et al. 2018, "Towards deep learning
models resistant to adversarial attacks"): from a real image, signed-gradient steps that lower the
cross-entropy towards a chosen class, each followed by a projection onto the L∞ ball of radius ε
around the image and onto valid pixels [0, 1]. ε and the step size are in pixel units, because the
model's normalisation happens inside the model (the pixel contract).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from glassbox.backends.torch_backend import TorchModel
from glassbox.common.validation import check_range, check_steps
from glassbox.config import GenerativeJobLimits
from glassbox.core.predictions import ClassScore
from glassbox.generative.optimise import Progress, optimise
from glassbox.generative.parametrisations import ImageParametrisation


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


class BoundedPerturbation(ImageParametrisation):
    """base + δ with ‖δ‖∞ ≤ ε and base + δ in [0, 1] (enforced by `constrain` after each step)."""

    def __init__(self, base: torch.Tensor, epsilon: float, start: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("base", base, persistent=False)
        self.epsilon = epsilon
        self.delta = nn.Parameter(start.clone())
        self.constrain()

    def forward(self) -> torch.Tensor:
        return self.base + self.delta

    @torch.no_grad()
    def assign(self, image: torch.Tensor) -> None:
        self.delta.copy_(image - self.base)
        self.constrain()

    @torch.no_grad()
    def constrain(self) -> None:
        delta = self.delta.clamp(-self.epsilon, self.epsilon)
        self.delta.copy_((self.base + delta).clamp(0.0, 1.0) - self.base)


class SignedGradientDescent(torch.optim.Optimizer):
    """p ← p − lr · sign(∇p): the L∞ steepest-descent step of PGD."""

    def __init__(self, params: Iterable[nn.Parameter], lr: float) -> None:
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure: None = None) -> None:
        for group in self.param_groups:
            for parameter in group["params"]:
                if parameter.grad is not None:
                    parameter.add_(parameter.grad.sign(), alpha=-group["lr"])


def _score(logits: torch.Tensor, index: int, labels: tuple[str, ...]) -> ClassScore:
    probabilities = F.softmax(logits, dim=0)
    return ClassScore(
        index=index, label=labels[index], probability=float(probabilities[index]), logit=float(logits[index])
    )


def attack(spec: AdversarialImage, *, generator: torch.Generator, progress: Progress) -> Adversary:
    model = spec.model
    base = spec.image[None].to(model.device)
    start = torch.zeros_like(base)
    if spec.random_start:
        start = ((torch.rand(base.shape, generator=generator) * 2 - 1) * spec.epsilon).to(model.device)
    image = BoundedPerturbation(base, spec.epsilon, start)
    network = model.differentiable()
    target = torch.tensor([spec.target], device=model.device)

    def score(images: torch.Tensor) -> torch.Tensor:
        return -F.cross_entropy(network(images), target.expand(images.shape[0]), reduction="none")

    optimise(
        image,
        score,
        optimiser=SignedGradientDescent(image.parameters(), lr=spec.alpha),
        steps=spec.steps,
        progress=progress,
    )
    with torch.no_grad():
        adversarial, perturbation = image()[0].cpu(), image.delta[0].detach().cpu()
    original_logits, adversarial_logits = model.logits(torch.stack([spec.image.cpu(), adversarial]))
    return Adversary(
        image=adversarial,
        perturbation=perturbation,
        original_prediction=_score(original_logits, int(original_logits.argmax()), model.labels),
        adversarial_prediction=_score(adversarial_logits, int(adversarial_logits.argmax()), model.labels),
        target=_score(adversarial_logits, spec.target, model.labels),
    )
