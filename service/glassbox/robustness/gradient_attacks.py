"""White-box attacks from input gradients: FGSM (Goodfellow et al. 2015, "Explaining and harnessing
adversarial examples") and PGD under L∞ and L2 (Madry et al. 2018, "Towards deep learning models
resistant to adversarial attacks"), untargeted or towards a target class per image.

PGD from x₀ = clip(x + ε·u) (u a unit random start, or 0) repeats
    x ← clip(x + Π_ε(x + α·d(∇ loss) − x))
with d = sign for L∞ and ∇/‖∇‖₂ for L2, loss = CE(f(x), y) (untargeted) or −CE(f(x), t) (targeted),
Π_ε the projection onto the ball and clip onto [0, 1] — the same arithmetic as torchattacks' PGD and
PGDL2, and Captum's FGSM/PGD under L∞, so the adversarial examples agree to float rounding. FGSM is one
step with α = ε from x itself. The loss is summed, not averaged, over the batch: each image's gradient is
its own, whatever the batch.

Images are processed in chunks sized for the device (as the attribution methods do), all steps of a
chunk before the next, so a chunk's activations stay in cache. By default an image stops as soon as an
iterate fools the model (that iterate is its adversarial example, as AutoAttack counts), which also
saves its remaining steps; `final_iterate_only` keeps Madry's final-iterate count instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from glassbox.backends.base import Model
from glassbox.core.call import CallContext
from glassbox.methods.gradients import graph_unit_rows
from glassbox.robustness.threat import Norm, StartSampler, ascent_direction, per_image, project


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


@dataclass
class AttackRun:
    """Per image: the adversarial image, its logits, and whether it fooled the model."""

    adversarial: torch.Tensor  # [N, 3, H, W], CPU
    logits: torch.Tensor  # [N, C], CPU
    fooled: torch.Tensor  # bool [N]


def is_fooled(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
    """Untargeted: the prediction is not the label. Targeted: the prediction is the target."""
    predictions = logits.argmax(dim=1)
    return predictions == targets if targets is not None else predictions != labels


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
            result = _attack_chunk(
                model,
                call,
                attack,
                images[chunk],
                labels[chunk],
                epsilon[chunk],
                None if targets is None else targets[chunk],
                unit,
            )
            adversarial[chunk] = result.adversarial
            logits[chunk] = result.logits
            fooled[chunk] = result.fooled
    return AttackRun(adversarial, logits, fooled)


def _attack_chunk(
    model: Model,
    call: CallContext,
    attack: GradientAttack,
    clean: torch.Tensor,
    labels: torch.Tensor,
    epsilon: torch.Tensor,
    targets: torch.Tensor | None,
    unit_start: torch.Tensor | None,
) -> AttackRun:
    net = model.differentiable()
    device = model.device
    x0 = clean.to(device)
    wanted = (targets if targets is not None else labels).to(device)
    radius = epsilon.to(device)
    alpha = per_image(radius * attack.step_fraction, x0)
    sign = -1.0 if targets is not None else 1.0
    x = x0 if unit_start is None else (x0 + per_image(radius, x0) * unit_start.to(device)).clamp(0.0, 1.0)
    out_images = x0.clone()
    out_logits = torch.empty(len(x0), model.num_classes, device=device)
    active = torch.arange(len(x0))
    for _ in range(attack.iterations):
        call.check()
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            scores = net(x)
            loss = sign * F.cross_entropy(scores, wanted[active], reduction="sum")
        (gradient,) = torch.autograd.grad(loss, x)
        call.count(forward=len(active), backward=len(active))
        x = x.detach()
        if not attack.final_iterate_only and not attack.single_step:
            hit = is_fooled(
                scores.detach(), labels[active].to(device), _subset(targets, active, device)
            ).cpu()
            if bool(hit.any()):
                stopped = active[hit]
                out_images[stopped], out_logits[stopped] = x[hit], scores.detach()[hit]
                keep = ~hit
                active, x, gradient = active[keep], x[keep.to(device)], gradient[keep.to(device)]
                if not len(active):
                    break
        base = x0[active]
        stepped = x + alpha[active] * ascent_direction(gradient, attack.norm)
        x = (base + project(stepped - base, radius[active], attack.norm)).clamp(0.0, 1.0)
    if len(active):
        with torch.no_grad():
            final = net(x)
        call.count(forward=len(active))
        out_images[active], out_logits[active] = x, final
    logits = out_logits.float().cpu()
    return AttackRun(out_images.cpu(), logits, is_fooled(logits, labels, targets))


def _subset(values: torch.Tensor | None, rows: torch.Tensor, device: torch.device) -> torch.Tensor | None:
    return None if values is None else values[rows].to(device)
