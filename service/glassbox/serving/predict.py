"""Plain classification: top-k classes with probabilities and logits."""

from __future__ import annotations

import torch

from glassbox.backends.base import Model
from glassbox.core.errors import InvalidArgument
from glassbox.core.predictions import ClassScore
from glassbox.serving.execution import run_unit
from glassbox.serving.units import ForwardUnit


def top_k(model: Model, pixels: torch.Tensor, k: int) -> list[list[ClassScore]]:
    """The k most probable classes per image of a [B, 3, H, W] batch; k = 0 means 5 (capped). The forward
    pass is one unit of the compute scheduler when called under it (merged with other Predicts)."""
    if k < 0 or k > model.num_classes:
        raise InvalidArgument(f"top_k must be in 0..{model.num_classes}, got {k}", field="top_k")
    k = k or min(5, model.num_classes)
    logits = run_unit(ForwardUnit(model, pixels))
    probabilities = logits.softmax(dim=1)
    values, indices = probabilities.topk(k, dim=1)
    return [
        [
            ClassScore(int(i), model.labels[int(i)], float(p), float(logits[row, int(i)]))
            for p, i in zip(values[row], indices[row], strict=True)
        ]
        for row in range(logits.shape[0])
    ]
