"""Limits and checks shared by the generative methods. Every check names the spec field it is about
(the field names of generative.proto), so a bad job is refused before it is queued."""

from __future__ import annotations

import math

from glassbox.backends.base import Model
from glassbox.backends.torch_backend import TorchModel
from glassbox.config import GenerativeJobLimits
from glassbox.core.errors import FailedPrecondition, InvalidArgument

MIN_SIDE = 16
"""Smallest side of a rendered image, in pixels (the largest is `jobs.limits.generative.max_side`)."""

MAX_BATCH = GenerativeJobLimits().max_batch
"""Images an activation atlas renders together."""


def check_range(value: float, low: float, high: float, field: str, *, low_open: bool = False) -> None:
    """low ≤ value ≤ high (low < value with `low_open`), and finite."""
    below = value <= low if low_open else value < low
    if not math.isfinite(value) or below or value > high:
        opening = "(" if low_open else "["
        raise InvalidArgument(f"must be in {opening}{low:g}, {high:g}], got {value:g}", field=field)


def check_steps(steps: int, limits: GenerativeJobLimits, field: str = "steps") -> None:
    check_range(steps, 1, limits.max_steps, field)


def check_learning_rate(
    learning_rate: float, limits: GenerativeJobLimits, field: str = "learning_rate"
) -> None:
    check_range(learning_rate, 0.0, limits.max_learning_rate, field, low_open=True)


def check_size(
    height: int,
    width: int,
    limits: GenerativeJobLimits,
    *,
    height_field: str = "height",
    width_field: str = "width",
) -> None:
    check_range(height, MIN_SIDE, limits.max_side, height_field)
    check_range(width, MIN_SIDE, limits.max_side, width_field)


def gradient_model(model: Model, field: str = "model") -> TorchModel:
    """The model, if it computes gradients and its modules take hooks; FailedPrecondition otherwise."""
    if not isinstance(model, TorchModel) or not model.supports_gradients:
        model.differentiable()  # raises FailedPrecondition naming the backend
        raise FailedPrecondition(f"model {model.name!r} computes no gradients", field=field)
    return model
