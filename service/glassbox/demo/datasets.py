"""The demo's generated image sets: `glassbox.shapes`, for a named set's `[generator]` table
(models/datasets.py). The composition root registers it with `register_generators()`, so the model
repository never imports the demo."""

from __future__ import annotations

from typing import Any

import torch

from glassbox.core.images import InputSpec
from glassbox.demo.shapes import generate
from glassbox.models.datasets import register_generator

SHAPES = "glassbox.shapes"


def shapes_set(options: dict[str, Any], spec: InputSpec) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The shapes images, labels and object masks that `options` (count, seed, shortcut) describe."""
    if spec.height != spec.width:
        raise ValueError(f"glassbox.shapes makes square images; the model takes {spec.height}x{spec.width}")
    batch = generate(
        int(options["count"]),
        int(options["seed"]),
        size=spec.height,
        shortcut=options.get("shortcut", "none"),
    )
    return batch.images, batch.labels.long(), batch.masks


def register_generators() -> None:
    """Make the demo's generated sets available to named sets (idempotent)."""
    register_generator(SHAPES, shapes_set)
