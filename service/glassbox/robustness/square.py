"""The Square attack under L∞ (Andriushchenko et al. 2020, "Square Attack: a query-efficient black-box
adversarial attack via random search"): scores only, so it runs on every backend, ONNX included.

It starts from vertical stripes of ±ε (one random sign per column and channel) and then, for each query,
proposes to set a random s×s square of the perturbation to a random ±ε per channel, keeping the proposal
when it lowers the margin loss — logit of the label minus the best other logit (targeted: best other
logit minus the target's). The square's area starts at `p_init` of the image and shrinks on the paper's
schedule as queries are spent. An image stops as soon as its margin is negative (it is fooled), so each
costs at most `queries` forward passes, the first being the stripes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from glassbox.common.pgd import AttackRun
from glassbox.core.call import CallContext
from glassbox.methods.batching import batch_ranges, inference_bytes_per_row

SCHEDULE = (
    (10, 1),
    (50, 2),
    (200, 4),
    (500, 8),
    (1000, 16),
    (2000, 32),
    (4000, 64),
    (6000, 128),
    (8000, 256),
)
"""(query milestone on a 10,000-query scale, divisor of p_init up to it); past the last: 512."""


@dataclass(frozen=True)
class SquareAttack:
    queries: int = 1000
    p_init: float = 0.8


def square_fraction(p_init: float, query: int, budget: int) -> float:
    """The fraction of the image a square covers at `query` of `budget`, on the paper's schedule."""
    scaled = int(query / budget * 10_000)
    for milestone, divisor in SCHEDULE:
        if scaled <= milestone:
            return p_init / divisor
    return p_init / 512


def margins(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
    """Negative exactly when the image is fooled (untargeted: misclassified; targeted: on the target)."""
    wanted = targets if targets is not None else labels
    own = logits.gather(1, wanted[:, None])[:, 0]
    others = logits.scatter(1, wanted[:, None], float("-inf")).amax(dim=1)
    return own - others if targets is None else others - own


def square_attack(
    call: CallContext,
    attack: SquareAttack,
    images: torch.Tensor,
    labels: torch.Tensor,
    epsilon: torch.Tensor,
    *,
    generator: torch.Generator,
    targets: torch.Tensor | None = None,
) -> AttackRun:
    """Attack `images` [N, 3, H, W] at L∞ radius `epsilon` [N] with at most `attack.queries` per image."""
    count, channels, height, width = images.shape
    rows = call.rows_per_batch(inference_bytes_per_row(call.model))
    radius = epsilon.view(-1, 1, 1, 1)
    signs = torch.randint(0, 2, (count, channels, 1, width), generator=generator).float() * 2 - 1
    best = (images + radius * signs).clamp(0.0, 1.0)
    logits = _forward(call, best, rows)
    loss = margins(logits, labels, targets)
    for query in range(1, attack.queries):
        active = (loss >= 0).nonzero().flatten()
        if not len(active):
            break
        call.check()
        side = _side(square_fraction(attack.p_init, query, attack.queries), height, width)
        tops = torch.randint(0, height - side + 1, (len(active),), generator=generator)
        lefts = torch.randint(0, width - side + 1, (len(active),), generator=generator)
        values = torch.randint(0, 2, (len(active), channels, 1, 1), generator=generator).float() * 2 - 1
        window = _windows(tops, lefts, side, height, width)
        clean, current = images[active], best[active]
        delta = current - clean
        delta = torch.where(window, values * radius[active], delta)
        proposal = (clean + delta).clamp(0.0, 1.0)
        proposal_logits = _forward(call, proposal, rows)
        proposal_loss = margins(proposal_logits, labels[active], None if targets is None else targets[active])
        better = proposal_loss < loss[active]
        improved = active[better]
        best[improved], logits[improved], loss[improved] = (
            proposal[better],
            proposal_logits[better],
            proposal_loss[better],
        )
    return AttackRun(best, logits, loss < 0)


def _side(fraction: float, height: int, width: int) -> int:
    """The square's side: sqrt(fraction · H · W) pixels, at least 1, at most min(H, W) - 1."""
    return max(1, min(round(math.sqrt(fraction * height * width)), min(height, width) - 1))


def _windows(tops: torch.Tensor, lefts: torch.Tensor, side: int, height: int, width: int) -> torch.Tensor:
    """bool [N, 1, H, W]: True inside each image's square."""
    ys = torch.arange(height).view(1, height, 1)
    xs = torch.arange(width).view(1, 1, width)
    inside_y = (ys >= tops.view(-1, 1, 1)) & (ys < (tops + side).view(-1, 1, 1))
    inside_x = (xs >= lefts.view(-1, 1, 1)) & (xs < (lefts + side).view(-1, 1, 1))
    return (inside_y & inside_x)[:, None]


def _forward(call: CallContext, pixels: torch.Tensor, rows: int) -> torch.Tensor:
    return torch.cat([call.forward(pixels[a:b]) for a, b in batch_ranges(len(pixels), rows)])
