"""White-box attacks from input gradients: FGSM (Goodfellow et al. 2015, "Explaining and harnessing
adversarial examples") and PGD under L∞ and L2 (Madry et al. 2018, "Towards deep learning models
resistant to adversarial attacks"), untargeted or towards a target class per image, on the one PGD of
`common.pgd`. FGSM is one step with α = ε from x itself.

Images are processed in chunks sized for the device (as the attribution methods do), all steps of a
chunk before the next, so a chunk's activations stay in cache. By default an image stops as soon as an
iterate fools the model (that iterate is its adversarial example, as AutoAttack counts), which also
saves its remaining steps; `final_iterate_only` keeps Madry's final-iterate count instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from glassbox.backends.base import Model
from glassbox.common.pgd import AttackRun, pgd
from glassbox.common.threat import Norm, StartSampler
from glassbox.core.call import CallContext
from glassbox.methods.gradients import graph_unit_rows


@dataclass(frozen=True)
class GradientAttack:
    """One white-box attack's settings; ε comes per call, the step size as a fraction of it."""

    norm: Norm
    steps: int = 10
    relative_step_size: float | None = None  # None: 2.5 / steps (Madry et al.)
    random_start: bool = True
    restarts: int = 1
    final_iterate_only: bool = False
    single_step: bool = False  # FGSM: one step of size ε from the clean image

    @property
    def step_fraction(self) -> float:
        if self.single_step:
            return 1.0
        return self.relative_step_size if self.relative_step_size is not None else 2.5 / self.steps

    @property
    def iterations(self) -> int:
        return 1 if self.single_step else self.steps

    @property
    def runs(self) -> int:
        return 1 if self.single_step or not self.random_start else self.restarts


def gradient_attack(
    model: Model,
    call: CallContext,
    attack: GradientAttack,
    images: torch.Tensor,
    labels: torch.Tensor,
    epsilon: torch.Tensor,
    *,
    targets: torch.Tensor | None = None,
    starts: StartSampler | None = None,
    indices: torch.Tensor | None = None,
) -> AttackRun:
    """Attack `images` [N, 3, H, W] (true `labels` [N]) at radius `epsilon` [N] per image.

    `targets` [N] makes the attack targeted. `starts` draws the random starts of the images whose
    positions in the whole set are `indices` (default 0..N-1). Runs every restart on the images not
    yet fooled; an image counts as fooled if any run fooled it.
    """
    total = images.shape[0]
    indices = torch.arange(total) if indices is None else indices
    adversarial = images.clone()
    logits = torch.empty(total, model.num_classes)
    fooled = torch.zeros(total, dtype=torch.bool)
    rows = graph_unit_rows(call, model)
    for restart in range(attack.runs):
        remaining = (~fooled).nonzero().flatten()
        for start in range(0, len(remaining), rows):
            chunk = remaining[start : start + rows]
            unit = None
            if attack.random_start and not attack.single_step and starts is not None:
                unit = starts.units(indices[chunk], restart)
            result = pgd(
                model,
                call,
                images[chunk],
                norm=attack.norm,
                radius=epsilon[chunk],
                step_size=epsilon[chunk] * attack.step_fraction,
                iterations=attack.iterations,
                labels=labels[chunk],
                targets=None if targets is None else targets[chunk],
                unit_start=unit,
                stop_when_fooled=not attack.final_iterate_only and not attack.single_step,
            )
            adversarial[chunk] = result.adversarial
            logits[chunk] = result.logits
            fooled[chunk] = result.fooled
    return AttackRun(adversarial, logits, fooled)
