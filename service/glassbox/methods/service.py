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
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import torch

from glassbox import render
from glassbox.backends.activations import ActivationSite
from glassbox.backends.base import Model
from glassbox.backends.torch_backend import TorchModel
from glassbox.config import Settings
from glassbox.core.call import CallContext
from glassbox.core.cancellation import NEVER_CANCELLED, CancellationToken
from glassbox.core.errors import FailedPrecondition, InvalidArgument
from glassbox.core.images import (
    ImageSource,
    InputSpec,
    PreparedImage,
    check_image_count,
    prepare,
    received_pixels,
    to_original_size,
)
from glassbox.core.predictions import ClassScore
from glassbox.core.reasons import Reason
from glassbox.methods.base import AttributionMethod, MapResult
from glassbox.methods.registry import method_class, method_names, supported_methods
from glassbox.methods.targets import TargetSelector, TargetSpec
from glassbox.serving.cost import Estimate
from glassbox.serving.execution import SCHEDULED


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
    picture_aggregation: Aggregation | None = None  # None: ABS_MAX for per-channel maps, SUM otherwise
    colour_bar: bool = False

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
    segmentation: str | None = None  # LIME/KernelSHAP: "slic" or "grid"


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
    relu_rule_activations: tuple[ActivationSite, ...] | None = None  # set where a guided ReLU rule ran


@dataclass(frozen=True)
class AttributionImage:
    """A request image at the model's input size, and as received if an overlay at original size needs it."""

    prepared: PreparedImage
    original: torch.Tensor | None = None


def load_attribution_images(
    sources: list[ImageSource], spec: InputSpec, *, max_pixels: int, max_images: int, keep_originals: bool
) -> list[AttributionImage]:
    """Decode/validate and resize a request's images (as core.images.load_images does), keeping the
    decoded originals only when `keep_originals` (they are needed for overlays at the original size)."""
    check_image_count(sources, max_images=max_images)
    images = []
    for i, source in enumerate(sources):
        pixels = received_pixels(source, max_pixels=max_pixels, field=f"images[{i}]")
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
    call = CallContext(
        model,
        token,
        settings.attribution,
        max_image_pixels=settings.limits.max_image_pixels,
        compute=SCHEDULED,
    )
    method = _method(model, request, call)
    cls = type(method)
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
        relu_rule_activations=model.activations
        if method.applies_relu_rule() and isinstance(model, TorchModel) and model.supports_layer_hooks
        else None,
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
            results.append(_finish(result, target, image, request.output, request.method))
        outcome.images.append(ImageAttributions(results, image.prepared.original_size))
    return outcome


def registered_method(name: str, *, field: str = "method") -> type[AttributionMethod]:
    """The method class registered as `name`; InvalidArgument on `field` listing the methods if none is."""
    if name not in method_names():
        raise InvalidArgument(f"unknown method {name!r}; methods: {method_names()}", field=field)
    return method_class(name)


def _method(model: Model, request: AttributionRequest, call: CallContext) -> AttributionMethod:
    """The request's method bound to the model; its parameters and, once the method is known to run
    here, the output options validated."""

    def params(_cls: type[AttributionMethod]) -> Any:
        _check_output(request.output)
        return request.params

    return build_method(model, request.method, params, call)


def build_method(
    model: Model,
    name: str,
    params: Callable[[type[AttributionMethod]], Any],
    call: CallContext,
    *,
    field: str = "method",
    params_field: str | None = None,
) -> AttributionMethod:
    """The method `name` bound to the model, every parameter checked: the one way a method is built from
    a request (Attribute, an explanation evaluation's methods).

    InvalidArgument naming `field` for an unknown name; FailedPrecondition naming `field` and the
    methods the model supports when it cannot run this one; then `params(cls)` gives the parameters
    (read only once the method is known to run here) and the method's own validation refuses a bad one,
    naming `params_field`.<parameter> (default `<method>.<parameter>`)."""
    cls = registered_method(name, field=field)
    reason = cls.unsupported_reason(model)
    if reason is not None:
        raise FailedPrecondition(
            f"{reason}; model {model.name!r} version {model.version!r} supports {supported_methods(model)}",
            field=field,
            reason=Reason.METHOD_NOT_SUPPORTED,
            metadata={"model": model.name, "version": model.version, "method": name},
        )
    return cls(model, params(cls), call, field=params_field)


def plan_attribution(
    model: Model, request: AttributionRequest, images: list[AttributionImage], settings: Settings
) -> Estimate:
    """Validate a request and say what it will ask of the device, before it is queued: the rows the
    compute scheduler's cost model multiplies, the memory the call holds, the size of its response.

    A response that would exceed `limits.max_message_bytes` is refused here (InvalidArgument naming the
    option that makes it large), before any work, rather than after the computation."""
    call = CallContext(model, NEVER_CANCELLED, settings.attribution, compute=SCHEDULED)
    method = _method(model, request, call)
    targets = _targets_per_image(request) if method.explains_classes else 1
    forward_rows, backward_rows = method.planned_rows(len(images), targets)
    response, memory = _output_bytes(model, request.output, images, targets, method.map_channels)
    limit = settings.limits.max_message_bytes
    if response > limit:
        field, hint = _response_size_fix(request.output)
        raise InvalidArgument(
            f"the maps would make a response of about {response / 2**20:.0f} MiB, over the "
            f"{limit / 2**20:.0f} MiB message limit; {hint}",
            field=field,
            reason=Reason.RESPONSE_TOO_LARGE,
        )
    return Estimate(forward_rows, backward_rows, memory, response, method.replaced_rows(len(images)))


def _targets_per_image(request: AttributionRequest) -> int:
    """The most targets any image of the request asks for (no targets: its top-1)."""
    specs = [request.targets, *request.image_targets]
    return max(
        max(len(spec.class_indices), len(spec.labels), spec.top_k, 1 if spec.is_empty else 0)
        for spec in specs
    )


def _output_bytes(
    model: Model, options: OutputOptions, images: list[AttributionImage], targets: int, channels: int
) -> tuple[int, int]:
    """(response bytes, bytes the call holds): the raw maps count exactly in both; PNGs (whose compressed
    size is not known in advance) and the float buffers that rendering and resampling use count in memory."""
    spec = model.config.input
    map_channels = channels if options.aggregation is Aggregation.NONE else 1
    response = memory = 0
    for image in images:
        height, width = image.prepared.original_size if options.original_size else (spec.height, spec.width)
        pixels = height * width
        memory += image.prepared.pixels.numel() * 4
        if image.original is not None:
            memory += image.original.numel() * image.original.element_size()
        per_map = map_channels * pixels * 4 if options.wants_map else 0
        response += targets * per_map
        rendered = (3 * pixels * 4 + 4 * pixels) * (options.heatmap_png + options.overlay_png)
        memory += targets * (per_map + channels * pixels * 4 + rendered)
    return response, memory + response


def _response_size_fix(options: OutputOptions) -> tuple[str, str]:
    """(the option that makes a response large, how to make it smaller)."""
    if options.original_size:
        return "output.original_size", (
            "ask for maps at the model's input size (output.original_size = false) or for PNGs only"
        )
    if options.aggregation is Aggregation.NONE:
        return "output.aggregation", "aggregate the channels (output.aggregation) or ask for PNGs only"
    return "images", "send fewer images or targets per request"


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


def picture_values(values: torch.Tensor, aggregation: Aggregation | None) -> tuple[torch.Tensor, Aggregation]:
    """The [H, W] map the PNGs show and the aggregation that made it: by default |max| over the channels
    of a per-channel (pixel-gradient) map, as Simonyan et al. and Captum's `visualize_image_attr` show
    them, and a one-channel map as it is."""
    if aggregation is None:
        aggregation = Aggregation.ABS_MAX if values.dim() == 3 else Aggregation.SUM
    if aggregation is Aggregation.NONE:
        aggregation = Aggregation.SUM
    if values.dim() == 2:
        return (values.abs() if aggregation in (Aggregation.ABS_MAX, Aggregation.L2) else values), aggregation
    return aggregate(values, aggregation), aggregation


def _finish(
    result: MapResult,
    target: ClassScore | None,
    image: AttributionImage,
    options: OutputOptions,
    method: str,
) -> TargetAttribution:
    values = aggregate(result.map.float(), options.aggregation)
    background = image.prepared.pixels
    shown = None
    if options.heatmap_png or options.overlay_png:
        shown, shown_as = picture_values(result.map.float(), options.picture_aggregation)
        if options.original_size:
            shown = to_original_size(shown, image.prepared)
    if options.original_size:
        values = to_original_size(values, image.prepared)
        background = (
            image.original if image.original is not None else to_original_size(background, image.prepared)
        )
    caption = None
    if shown is not None and options.colour_bar:
        caption = f"{method} · {shown_as.value}" + (f" · {target.label}" if target is not None else "")
    return TargetAttribution(
        target=target,
        map=values.numpy().astype(np.float32, copy=False) if options.wants_map else None,
        heatmap_png=render.heatmap_png(shown, options.colormap, options.clip_percentile, caption)
        if shown is not None and options.heatmap_png
        else b"",
        overlay_png=(
            render.overlay_png(
                background, shown, options.colormap, options.overlay_alpha, options.clip_percentile, caption
            )
            if shown is not None and options.overlay_png
            else b""
        ),
        layer_map=None if result.layer_map is None else result.layer_map.float().numpy(),
        convergence_delta=result.convergence_delta,
        segments=None if result.segments is None else result.segments.numpy(),
        segment_weights=None if result.segment_weights is None else result.segment_weights.float().numpy(),
        segmentation=result.segmentation,
    )
