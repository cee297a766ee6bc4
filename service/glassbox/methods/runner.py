"""One attribution method run in this process, without gRPC: Captum style, the model bound once and the
method's options given per call::

    with MethodRunner(model) as runner:  # a loaded Model, e.g. ModelRepository(...).get("shapes")
        outcome = runner.attribute(pixels, "integrated_gradients", targets=[1, 4], steps=32)
        maps = outcome.images[0].attributions[0].map

A call takes the server's path from the canonical request on: the same `AttributionRequest` (the
method's `Params` dataclass filled from the keyword options, its defaults for the rest), the same image
checks (`load_attribution_images`), the same validation and planning (`plan_attribution`: an unknown
method or option, a model the method does not support, a bad option value or an oversized response is
refused with the same error and field as over gRPC), and the same orchestrator (`attribute`), run by a
compute scheduler (glassbox.serving) as the server runs it. Only the protocol (and the result cache) is
left out, so a test or a notebook can check a method's maps without starting a server.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from enum import Enum
from types import TracebackType
from typing import Any

import numpy as np
import torch

from glassbox.backends.base import Model
from glassbox.config import Settings, load_settings
from glassbox.core.cancellation import CancellationToken
from glassbox.core.errors import InvalidArgument
from glassbox.core.images import ImageSource
from glassbox.methods.service import (
    Aggregation,
    AttributionOutcome,
    AttributionRequest,
    OutputOptions,
    attribute,
    load_attribution_images,
    plan_attribution,
    registered_method,
)
from glassbox.methods.targets import TargetSpec
from glassbox.serving import ComputeScheduler

RAW_MAPS = OutputOptions(map=True, aggregation=Aggregation.NONE)
"""The default output of a run: the raw maps, per channel where the method gives channels (as Captum)."""

Images = torch.Tensor | np.ndarray | Sequence[ImageSource]
"""Pixels float32 [B, 3, H, W] or [3, H, W] in [0, 1] (a tensor or an array), or a sequence of
what a request carries per image: encoded bytes, float32 [3, H, W] or uint8 [H, W, 3] arrays."""


class MethodRunner:
    """Runs attribution methods on one model through the method registry, its validation and a compute
    scheduler, in this process. Close it (or use it as a context manager) to stop the scheduler it
    started; a scheduler passed in stays its owner's."""

    def __init__(
        self,
        model: Model,
        *,
        settings: Settings | None = None,
        scheduler: ComputeScheduler | None = None,
    ) -> None:
        self.model = model
        self.settings = settings if settings is not None else load_settings()
        self._owns_scheduler = scheduler is None
        self.scheduler = scheduler or ComputeScheduler(
            self.settings.scheduler, device=model.device, torch_threads=self.settings.torch_threads
        )

    def attribute(
        self,
        images: Images,
        method: str,
        *,
        targets: TargetSpec | Sequence[int] | Sequence[str] | None = None,
        output: OutputOptions = RAW_MAPS,
        **options: Any,
    ) -> AttributionOutcome:
        """`method` with `options` (its params' fields; others take their defaults) on `images`, for
        `targets` (class indices, labels or a TargetSpec; none: each image's top class)."""
        request = AttributionRequest(
            model=self.model.name,
            version=self.model.version,
            method=method,
            params=method_params(method, options),
            targets=target_spec(targets),
            output=output,
        )
        limits = self.settings.limits
        prepared = load_attribution_images(
            image_sources(images),
            self.model.config.input,
            max_pixels=limits.max_image_pixels,
            max_images=limits.max_batch_images,
            keep_originals=output.original_size and output.overlay_png,
        )
        estimate = plan_attribution(self.model, request, prepared, self.settings)
        token = CancellationToken()
        return self.scheduler.run(
            lambda: attribute(self.model, request, prepared, token, self.settings),
            model=self.model,
            estimate=estimate,
            token=token,
            label=f"Attribute/{method}",
        )

    def close(self) -> None:
        if self._owns_scheduler:
            self.scheduler.close()

    def __enter__(self) -> MethodRunner:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def method_params(method: str, options: dict[str, Any]) -> Any:
    """The method's `Params` from keyword options: an unknown option is refused naming
    `<method>.<option>`; an enum option may be given by its value ("gauss_legendre")."""
    params_class = registered_method(method).Params
    fields = {item.name: item for item in dataclasses.fields(params_class)}
    values = {}
    for name, value in options.items():
        if name not in fields:
            raise InvalidArgument(
                f"{method} has no option {name!r}; options: {sorted(fields)}", field=f"{method}.{name}"
            )
        default = fields[name].default
        if isinstance(default, Enum) and isinstance(value, str):
            try:
                value = type(default)(value)
            except ValueError:
                choices = [choice.value for choice in type(default)]
                raise InvalidArgument(
                    f"unknown value {value!r}; values: {choices}", field=f"{method}.{name}"
                ) from None
        values[name] = value
    return params_class(**values)


def target_spec(targets: TargetSpec | Sequence[int] | Sequence[str] | None) -> TargetSpec:
    """Class indices or labels as the request's TargetSpec (none: the default, each image's top class)."""
    if targets is None:
        return TargetSpec()
    if isinstance(targets, TargetSpec):
        return targets
    if all(isinstance(target, str) for target in targets):
        return TargetSpec(labels=tuple(str(target) for target in targets))
    return TargetSpec(class_indices=tuple(int(target) for target in targets))


def image_sources(images: Images) -> list[ImageSource]:
    """A batch of pixels as one float32 array per image; a sequence of sources as it is."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    if isinstance(images, np.ndarray):
        batch = images[None] if images.ndim == 3 else images
        return [np.ascontiguousarray(image, dtype=np.float32) for image in batch]
    return list(images)
