"""The attribution orchestrator: one canonical request in, maps and their renderings out.

`attribute(model, request, images, token, settings)` checks that the model can run the method (else
FailedPrecondition naming the methods it supports), builds the method (its parameters are validated
before any pass), resolves the targets, runs the method once over the whole batch, then per (image,
target) aggregates channels, resamples to the original size if asked, and renders PNGs. It returns a
plain `AttributionOutcome` with the pass counts and compute time, ready to cache and to count.

`AttributionRequest` is frozen and hashable: with the preprocessed pixels it is the result-cache key.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import torch

from glassbox import render
from glassbox.backends.base import Model
from glassbox.config import Settings
from glassbox.core.cancellation import CancellationToken
from glassbox.core.errors import FailedPrecondition, InvalidArgument
from glassbox.core.images import (
    ImageSource,
    InputSpec,
    PreparedImage,
    decode_image,
    pixels_from_array,
    prepare,
    to_original_size,
)
from glassbox.methods.base import CallContext, MapResult
from glassbox.methods.registry import method_class, method_names, supported_methods
from glassbox.methods.targets import TargetSelector, TargetSpec
from glassbox.models.predict import ClassScore


class Aggregation(StrEnum):
    NONE = "none"
    SUM = "sum"
    ABS_MAX = "abs_max"
    L2 = "l2"


@dataclass(frozen=True)
class OutputOptions:
    """What to return per map; with none of map/heatmap_png/overlay_png set, the map alone."""

    map: bool = False
    heatmap_png: bool = False
    overlay_png: bool = False
    aggregation: Aggregation = Aggregation.SUM
    colormap: render.Colormap | None = None  # None: diverging for signed maps, inferno otherwise
    overlay_alpha: float = render.DEFAULT_OVERLAY_ALPHA
    clip_percentile: float = render.DEFAULT_CLIP_PERCENTILE
    original_size: bool = False

    @property
    def wants_map(self) -> bool:
        return self.map or not (self.heatmap_png or self.overlay_png)


@dataclass(frozen=True)
class AttributionRequest:
    """A canonical attribution request (images aside): hashable, defaults filled in."""

    model: str
    version: str
    method: str
    params: Any  # the method's frozen Params dataclass
    targets: TargetSpec = field(default_factory=TargetSpec)
    image_targets: tuple[TargetSpec, ...] = ()
    output: OutputOptions = field(default_factory=OutputOptions)


@dataclass
class TargetAttribution:
    """One (image, target) result."""

    target: ClassScore | None  # None for methods that explain a neuron
    map: np.ndarray | None  # float32 [H, W] or [3, H, W]
    heatmap_png: bytes = b""
    overlay_png: bytes = b""
    layer_map: np.ndarray | None = None
    convergence_delta: float | None = None
    segments: np.ndarray | None = None
    segment_weights: np.ndarray | None = None


@dataclass
class ImageAttributions:
    attributions: list[TargetAttribution]
    original_size: tuple[int, int]


@dataclass
class AttributionOutcome:
    model: str
    version: str
    method: str
    images: list[ImageAttributions] = field(default_factory=list)
    forward_passes: int = 0
    backward_passes: int = 0
    compute_seconds: float = 0.0


@dataclass(frozen=True)
class AttributionImage:
    """A request image at the model's input size, and as received if an overlay at original size needs it."""

    prepared: PreparedImage
    original: torch.Tensor | None = None


def load_attribution_images(
    sources: list[ImageSource], spec: InputSpec, *, max_pixels: int, max_images: int, keep_originals: bool
) -> list[AttributionImage]:
    """Decode/validate and resize a request's images (like core.images.load_images), keeping the decoded
    originals only when `keep_originals` (they are needed for overlays at the original size)."""
    if not sources:
        raise InvalidArgument("at least one image is required", field="images")
    if len(sources) > max_images:
        raise InvalidArgument(
            f"{len(sources)} images is over the limit of {max_images} per request", field="images"
        )
    images = []
    for i, source in enumerate(sources):
        if isinstance(source, bytes):
            pixels = decode_image(source, max_pixels=max_pixels, field=f"images[{i}].encoded")
        else:
            pixels = pixels_from_array(source, max_pixels=max_pixels, field=f"images[{i}].pixels")
        images.append(AttributionImage(prepare(pixels, spec), pixels if keep_originals else None))
    return images


def attribute(
    model: Model,
    request: AttributionRequest,
    images: list[AttributionImage],
    token: CancellationToken,
    settings: Settings,
) -> AttributionOutcome:
    """Run one attribution request over a batch of images."""
    if request.method not in method_names():
        raise InvalidArgument(f"unknown method {request.method!r}; methods: {method_names()}", field="method")
    cls = method_class(request.method)
    reason = cls.unsupported_reason(model)
    if reason is not None:
        raise FailedPrecondition(
            f"{reason}; model {model.name!r} version {model.version!r} supports {supported_methods(model)}",
            field="method",
        )
    _check_output(request.output)
    call = CallContext(model, token, settings.attribution, max_image_pixels=settings.limits.max_image_pixels)
    method = cls(model, request.params, call)
    selector = TargetSelector(
        model, request.targets, request.image_targets, len(images), explains_classes=cls.explains_classes
    )
    pixels = torch.stack([image.prepared.pixels for image in images])
    started = time.perf_counter()
    output = method.run(pixels, selector)
    seconds = time.perf_counter() - started
    probabilities = output.logits.softmax(dim=1)
    outcome = AttributionOutcome(
        model.name,
        model.version,
        request.method,
        forward_passes=call.counter.forward,
        backward_passes=call.counter.backward,
        compute_seconds=seconds,
    )
    for i, image in enumerate(images):
        results = []
        for j, result in enumerate(output.maps[i]):
            target = None
            if cls.explains_classes:
                index = output.targets[i][j]
                target = ClassScore(
                    index, model.labels[index], float(probabilities[i, index]), float(output.logits[i, index])
                )
            results.append(_finish(result, target, image, request.output))
        outcome.images.append(ImageAttributions(results, image.prepared.original_size))
    return outcome


def _check_output(options: OutputOptions) -> None:
    if not 0.0 < options.overlay_alpha <= 1.0:
        raise InvalidArgument(f"must be in (0, 1], got {options.overlay_alpha}", field="output.overlay_alpha")
    if not 0.0 < options.clip_percentile <= 100.0:
        raise InvalidArgument(
            f"must be in (0, 100], got {options.clip_percentile}", field="output.clip_percentile"
        )


def aggregate(values: torch.Tensor, aggregation: Aggregation) -> torch.Tensor:
    """Reduce a [3, H, W] map to [H, W]; [H, W] maps pass through."""
    if values.dim() == 2 or aggregation is Aggregation.NONE:
        return values
    if aggregation is Aggregation.SUM:
        return values.sum(dim=0)
    if aggregation is Aggregation.ABS_MAX:
        return values.abs().amax(dim=0)
    return values.square().sum(dim=0).sqrt()


def _finish(
    result: MapResult, target: ClassScore | None, image: AttributionImage, options: OutputOptions
) -> TargetAttribution:
    values = aggregate(result.map.float(), options.aggregation)
    background = image.prepared.pixels
    if options.original_size:
        values = to_original_size(values, image.prepared)
        background = (
            image.original if image.original is not None else to_original_size(background, image.prepared)
        )
    shown = values.sum(dim=0) if values.dim() == 3 else values
    return TargetAttribution(
        target=target,
        map=values.numpy().astype(np.float32, copy=False) if options.wants_map else None,
        heatmap_png=render.heatmap_png(shown, options.colormap, options.clip_percentile)
        if options.heatmap_png
        else b"",
        overlay_png=(
            render.overlay_png(
                background, shown, options.colormap, options.overlay_alpha, options.clip_percentile
            )
            if options.overlay_png
            else b""
        ),
        layer_map=None if result.layer_map is None else result.layer_map.float().numpy(),
        convergence_delta=result.convergence_delta,
        segments=None if result.segments is None else result.segments.numpy(),
        segment_weights=None if result.segment_weights is None else result.segment_weights.float().numpy(),
    )
