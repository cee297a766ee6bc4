"""The shared optimisation loop: it maximises the score, reports every step with the job's offset and
total, renders a preview only when the reporter asks for one, projects after each step, and stops
within one step of a cancellation. Also the PNG encoding of results and previews."""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from glassbox.core.cancellation import CancellationToken
from glassbox.core.errors import Cancelled
from glassbox.generative.optimise import StepSpan, TokenReporter, adam, optimise
from glassbox.generative.parametrisations import PIXEL_RGB, ImageParametrisation, from_image
from glassbox.render import encode_png
from PIL import Image

TARGET = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1


def closeness(images: torch.Tensor) -> torch.Tensor:
    return -(images - TARGET).square().flatten(1).sum(1)


def grey() -> ImageParametrisation:
    return from_image(PIXEL_RGB, torch.full((1, 3, 8, 8), 0.5), device=torch.device("cpu"))


class Recorder:
    """A reporter that records every report and asks for a preview on the steps in `preview_steps`."""

    def __init__(self, preview_steps: set[int] = frozenset(), cancel_after: int = 0) -> None:
        self.reports: list[tuple[int, int, float, str]] = []
        self.previews: dict[int, bytes] = {}
        self.preview_steps = preview_steps
        self.cancel_after = cancel_after

    def report(
        self,
        step: int,
        total: int,
        objective_value: float = math.nan,
        message: str = "",
        *,
        preview: Callable[[], bytes] | None = None,
    ) -> None:
        self.reports.append((step, total, objective_value, message))
        if step in self.preview_steps and preview is not None:
            self.previews[step] = preview()
        if self.cancel_after and len(self.reports) >= self.cancel_after:
            raise Cancelled("the job was cancelled")


def test_the_loop_maximises_the_score_and_reports_every_step() -> None:
    image = grey()
    recorder = Recorder(preview_steps={5})
    progress = StepSpan(recorder, total=40, offset=10, message="octave 2 of 2")
    last = optimise(image, closeness, optimiser=adam(image.parameters(), 0.1), steps=30, progress=progress)
    assert [r[0] for r in recorder.reports] == list(range(11, 41))
    assert {r[1] for r in recorder.reports} == {40} and {r[3] for r in recorder.reports} == {"octave 2 of 2"}
    errors = [-r[2] for r in recorder.reports]  # the score is minus the squared error
    assert -last == errors[-1] < errors[0] / 10
    with torch.no_grad():
        assert -float(closeness(image())[0]) < errors[0] / 10
    assert recorder.previews == {}  # previews are asked for by absolute step: 5 is before this run


def test_a_preview_is_rendered_only_when_asked_for() -> None:
    image = grey()
    recorder = Recorder(preview_steps={2, 4})
    optimise(
        image, closeness, optimiser=adam(image.parameters(), 0.1), steps=4, progress=StepSpan(recorder, 4)
    )
    assert sorted(recorder.previews) == [2, 4]
    assert Image.open(io.BytesIO(recorder.previews[4])).size == (8, 8)


def test_a_cancelled_job_stops_within_one_step() -> None:
    image = grey()
    with pytest.raises(Cancelled):
        optimise(
            image,
            closeness,
            optimiser=adam(image.parameters(), 0.1),
            steps=100,
            progress=StepSpan(Recorder(cancel_after=3), 100),
        )
    token = CancellationToken()
    token.cancel()
    reporter = TokenReporter(token)
    with pytest.raises(Cancelled):
        optimise(
            image,
            closeness,
            optimiser=adam(image.parameters(), 0.1),
            steps=100,
            progress=StepSpan(reporter, 100),
        )
    assert reporter.last_step == 1


def test_the_parameters_are_projected_after_every_step() -> None:
    class Clamped(ImageParametrisation):
        def __init__(self) -> None:
            super().__init__()
            self.pixels = torch.nn.Parameter(torch.full((1, 3, 8, 8), 0.5))
            self.projections = 0

        def forward(self) -> torch.Tensor:
            return self.pixels

        def assign(self, image: torch.Tensor) -> None:
            self.pixels.data.copy_(image)

        def constrain(self) -> None:
            self.projections += 1
            self.pixels.data.clamp_(0.25, 0.75)

    image = Clamped()
    optimise(
        image,
        closeness,
        optimiser=adam(image.parameters(), 0.1),
        steps=7,
        progress=StepSpan(TokenReporter(), 7),
    )
    assert image.projections == 7
    assert float(image.pixels.detach().min()) >= 0.25 and float(image.pixels.detach().max()) <= 0.75


def test_png_encoding_of_one_image_and_of_a_batch_side_by_side() -> None:
    batch = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(1))
    one = np.array(Image.open(io.BytesIO(encode_png(batch[0]))))
    assert one.shape == (5, 7, 3)
    np.testing.assert_array_equal(one, (batch[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy())
    both = np.array(Image.open(io.BytesIO(encode_png(batch))))
    assert both.shape == (5, 14, 3)
    np.testing.assert_array_equal(
        both[:, 7:], (batch[1].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    )
