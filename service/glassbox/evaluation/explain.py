"""Attribution maps for the evaluation, computed by the attribution orchestrator (`methods.service`), so
every method runs exactly as `Attribute` runs it, with the same batching, caps and pass counting.

A job has no server settings: it uses the default attribution caps and memory budget.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from glassbox.backends.base import Model
from glassbox.config import Settings
from glassbox.core.cancellation import CancellationToken
from glassbox.core.images import CropBox, PreparedImage
from glassbox.evaluation.spec import MethodConfig
from glassbox.methods.service import AttributionImage, AttributionRequest, OutputOptions, attribute
from glassbox.methods.targets import TargetSpec

IMAGES_PER_CALL = 32
"""Images handed to the orchestrator at once (each method batches further by its memory budget)."""


@dataclass
class Maps:
    """Maps [N, H, W] (float32, CPU) of one method on a batch, and the passes they took."""

    values: torch.Tensor
    forward_passes: int = 0
    backward_passes: int = 0


def explain(
    model: Model,
    config: MethodConfig,
    images: torch.Tensor,
    targets: torch.Tensor,
    token: CancellationToken,
    settings: Settings,
) -> Maps:
    """One map per image (float32 [N, H, W], channels reduced by the config's aggregation) explaining
    `targets[i]` for image i, within `settings.attribution` (the server's or the worker's caps)."""
    request = AttributionRequest(
        model=model.name,
        version=model.version,
        method=config.method,
        params=config.params,
        output=OutputOptions(map=True, aggregation=config.aggregation),
    )
    height, width = images.shape[-2:]
    maps, forward, backward = [], 0, 0
    for start in range(0, images.shape[0], IMAGES_PER_CALL):
        batch = images[start : start + IMAGES_PER_CALL]
        crop = CropBox(0.0, 0.0, float(height), float(width))
        prepared = [AttributionImage(PreparedImage(image, (height, width), crop)) for image in batch]
        per_image = tuple(
            TargetSpec(class_indices=(int(target),)) for target in targets[start : start + IMAGES_PER_CALL]
        )
        outcome = attribute(model, replace(request, image_targets=per_image), prepared, token, settings)
        maps += [torch.from_numpy(image.attributions[0].map) for image in outcome.images]
        forward += outcome.forward_passes
        backward += outcome.backward_passes
    return Maps(torch.stack(maps).float(), forward, backward)
