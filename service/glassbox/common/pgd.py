"""Projected gradient descent (Madry et al. 2018, "Towards deep learning models resistant to adversarial
attacks") on a batch of images: the one implementation behind robustness's FGSM/PGD attacks and the
generative adversarial image.

From x₀ = clip(x + ε·u) (u a unit random start, or 0) it repeats
    x ← clip(x + Π_ε(x + α·d(∇ loss) − x))
with d = sign for L∞ and ∇/‖∇‖₂ for L2, loss = CE(f(x), y) (untargeted) or −CE(f(x), t) (targeted),
Π_ε the projection onto the ball and clip onto [0, 1] — the same arithmetic as torchattacks' PGD and
PGDL2, and Captum's FGSM/PGD under L∞, so the adversarial examples agree to float rounding. The loss
is summed, not averaged, over the batch: each image's gradient is its own, whatever the batch.
ε and α are in pixel units, because the model's normalisation happens inside the model (the pixel
contract).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from glassbox.backends.base import Model
from glassbox.common.threat import Norm, ascent_direction, per_image, project
from glassbox.core.call import CallContext

AfterStep = Callable[[int, torch.Tensor, float], None]
"""Called after each step with the 1-based step number, the iterates [N, 3, H, W] still running and the
mean loss per image before the step (−cross-entropy towards the target for a targeted attack)."""


@dataclass
class AttackRun:
    """Per image: the adversarial image, its logits, and whether it fooled the model."""

    adversarial: torch.Tensor  # [N, 3, H, W], CPU
    logits: torch.Tensor  # [N, C], CPU
    fooled: torch.Tensor  # bool [N]


def is_fooled(
    logits: torch.Tensor, labels: torch.Tensor | None, targets: torch.Tensor | None
) -> torch.Tensor:
    """Untargeted: the prediction is not the label. Targeted: the prediction is the target."""
    predictions = logits.argmax(dim=1)
    if targets is not None:
        return predictions == targets
    assert labels is not None
    return predictions != labels


def pgd(
    model: Model,
    call: CallContext,
    clean: torch.Tensor,
    *,
    norm: Norm,
    radius: torch.Tensor,
    step_size: torch.Tensor,
    iterations: int,
    labels: torch.Tensor | None = None,
    targets: torch.Tensor | None = None,
    unit_start: torch.Tensor | None = None,
    stop_when_fooled: bool = False,
    after_step: AfterStep | None = None,
) -> AttackRun:
    """Attack `clean` [N, 3, H, W] in the `norm` ball of `radius` [N] with steps of `step_size` [N].

    Untargeted away from `labels` [N], or towards `targets` [N]; `unit_start` [N, 3, H, W] is the random
    start before scaling by the radius (None: start at the clean image). With `stop_when_fooled` an
    image stops at the first iterate that fools the model (that iterate is its adversarial example, as
    AutoAttack counts), which also saves its remaining steps; otherwise every image runs `iterations`
    steps and keeps the final iterate (Madry's count). Checks cancellation and counts passes on `call`.
    """
    net = model.differentiable()
    device = model.device
    x0 = clean.to(device)
    wanted = targets if targets is not None else labels
    assert wanted is not None, "an untargeted attack needs the labels"
    wanted = wanted.to(device)
    radius = radius.to(device)
    alpha = per_image(step_size, x0)
    sign = -1.0 if targets is not None else 1.0
    x = x0 if unit_start is None else (x0 + per_image(radius, x0) * unit_start.to(device)).clamp(0.0, 1.0)
    out_images = x0.clone()
    out_logits = torch.empty(len(x0), model.num_classes, device=device)
    active = torch.arange(len(x0))
    for step in range(1, iterations + 1):
        call.check()
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            scores = net(x)
            loss = sign * F.cross_entropy(scores, wanted[active], reduction="sum")
        (gradient,) = torch.autograd.grad(loss, x)
        evaluated = len(active)
        call.count(forward=evaluated, backward=evaluated)
        x = x.detach()
        if stop_when_fooled:
            hit = is_fooled(
                scores.detach(), _subset(labels, active, device), _subset(targets, active, device)
            ).cpu()
            if bool(hit.any()):
                stopped = active[hit]
                out_images[stopped], out_logits[stopped] = x[hit], scores.detach()[hit]
                keep = ~hit
                active, x, gradient = active[keep], x[keep.to(device)], gradient[keep.to(device)]
                if not len(active):
                    break
        base = x0[active]
        stepped = x + alpha[active] * ascent_direction(gradient, norm)
        x = (base + project(stepped - base, radius[active], norm)).clamp(0.0, 1.0)
        if after_step is not None:
            after_step(step, x, float(loss.detach()) / evaluated)
    if len(active):
        with torch.no_grad():
            final = net(x)
        call.count(forward=len(active))
        out_images[active], out_logits[active] = x, final
    logits = out_logits.float().cpu()
    return AttackRun(out_images.cpu(), logits, is_fooled(logits, labels, targets))


def _subset(values: torch.Tensor | None, rows: torch.Tensor, device: torch.device) -> torch.Tensor | None:
    return None if values is None else values[rows].to(device)
