"""The optimisation loop every generative method shares.

One step: compute the per-image score of the current image (objective minus penalties, through the
method's transforms and forward pass), back-propagate −Σ score, take an optimiser step, project the
parameters back onto their allowed set, run the between-step operations (e.g. blurring), then report
progress. The reporter is the job's: it records the step, renders a PNG preview (of the batch's first
image) only when a watcher asked for one at this step, and raises `core.errors.Cancelled` when the
job was cancelled, so a cancelled job stops within one step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import torch

from glassbox.core.cancellation import CancellationToken
from glassbox.render import encode_png

Score = Callable[[torch.Tensor], torch.Tensor]
"""Images [B, 3, H, W] → the per-image value to maximise, [B]."""


class Parametrised(Protocol):
    """What the loop optimises: images [B, 3, H, W] from trainable parameters, projected after each step
    (an `ImageParametrisation`, or a parametrisation that cannot be set to a given image, like MACO's)."""

    def __call__(self) -> torch.Tensor: ...

    def parameters(self) -> Iterator[torch.nn.Parameter]: ...

    def constrain(self) -> None: ...


ImageT = TypeVar("ImageT", bound=Parametrised)

BetweenSteps = Callable[[int, ImageT], None]
"""Called with the 1-based step number and the image after each optimiser step (an operation that
sets the image, like blurring, needs an `ImageParametrisation`)."""


class StepReporter(Protocol):
    """Where progress goes (a job's `JobContext` is one)."""

    def report(
        self,
        step: int,
        total: int,
        objective_value: float = math.nan,
        message: str = "",
        *,
        preview: Callable[[], bytes] | None = None,
    ) -> None: ...


class TokenReporter:
    """A reporter that only honours a cancellation token: for calls made outside a job."""

    def __init__(self, token: CancellationToken | None = None) -> None:
        self.token = token or CancellationToken()
        self.last_step = 0

    def report(
        self,
        step: int,
        total: int,
        objective_value: float = math.nan,
        message: str = "",
        *,
        preview: Callable[[], bytes] | None = None,
    ) -> None:
        self.last_step = step
        self.token.check()


@dataclass(frozen=True)
class StepSpan:
    """Where a run of the loop sits in its job: steps before it, the job's total, and its message."""

    reporter: StepReporter
    total: int
    offset: int = 0
    message: str = ""


def optimise(
    image: ImageT,
    score: Score,
    *,
    optimiser: torch.optim.Optimizer,
    steps: int,
    progress: StepSpan,
    between_steps: Sequence[BetweenSteps[ImageT]] = (),
) -> float:
    """Run `steps` steps maximising Σ score(image()); returns the last step's mean score."""
    value = math.nan

    def preview() -> bytes:
        with torch.no_grad():
            return encode_png(image()[0])

    for step in range(1, steps + 1):
        optimiser.zero_grad(set_to_none=True)
        with torch.enable_grad():
            values = score(image())
            (-values.sum()).backward()
        optimiser.step()
        with torch.no_grad():
            image.constrain()
        for operation in between_steps:
            operation(step, image)
        value = float(values.detach().mean())
        progress.reporter.report(
            progress.offset + step, progress.total, value, progress.message, preview=preview
        )
    return value


def adam(parameters: Iterable[torch.nn.Parameter], learning_rate: float) -> torch.optim.Adam:
    """Adam with torch's fused kernel: one kernel per step instead of a dozen small ones, which matters
    when the parameters are small and the model is cheap (the per-op overhead dominates on a CPU)."""
    return torch.optim.Adam(parameters, lr=learning_rate, fused=True)


def evaluate(score: Score, image: torch.Tensor) -> torch.Tensor:
    """The score of fixed images without gradients, on the CPU: [B]."""
    with torch.no_grad():
        return score(image).float().cpu()
