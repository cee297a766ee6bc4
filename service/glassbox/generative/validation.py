"""Limits and checks shared by the generative methods. Every check names the spec field it is about
(the field names of generative.proto), so a bad job is refused before it is queued."""

from __future__ import annotations

import math

from glassbox.backends.base import Model
from glassbox.backends.torch_backend import TorchModel
from glassbox.core.errors import FailedPrecondition, InvalidArgument

MAX_STEPS = 10_000
"""Most optimisation steps one job may take."""

MIN_SIDE, MAX_SIDE = 16, 1024
"""Smallest and largest side of a rendered image, in pixels."""

MAX_BATCH = 16
"""Most images one feature-visualisation job renders together."""

MAX_LEARNING_RATE = 10.0


def check_range(value: float, low: float, high: float, field: str, *, low_open: bool = False) -> None:
    """low ≤ value ≤ high (low < value with `low_open`), and finite."""
    below = value <= low if low_open else value < low
    if not math.isfinite(value) or below or value > high:
        opening = "(" if low_open else "["
        raise InvalidArgument(f"must be in {opening}{low:g}, {high:g}], got {value:g}", field=field)


def check_steps(steps: int, field: str = "steps") -> None:
    check_range(steps, 1, MAX_STEPS, field)


def check_learning_rate(learning_rate: float, field: str = "learning_rate") -> None:
    check_range(learning_rate, 0.0, MAX_LEARNING_RATE, field, low_open=True)


def check_size(height: int, width: int, *, height_field: str = "height", width_field: str = "width") -> None:
    check_range(height, MIN_SIDE, MAX_SIDE, height_field)
    check_range(width, MIN_SIDE, MAX_SIDE, width_field)


def gradient_model(model: Model, field: str = "model") -> TorchModel:
    """The model, if it computes gradients with the torch backend; FailedPrecondition otherwise."""
    if not isinstance(model, TorchModel):
        model.differentiable()  # raises FailedPrecondition naming the backend
        raise FailedPrecondition(f"model {model.name!r} is not a torch model", field=field)
    return model
