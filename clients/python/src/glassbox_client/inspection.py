"""`GlassboxClient.inspection`: the InspectionService calls (a network's filters, a layer's activations
for an image, and embeddings of a batch).

    with GlassboxClient() as glassbox:
        glassbox.inspection.filters(model="shapes").grid.save("filters.png")
        ranked = glassbox.inspection.activations("star.png", model="shapes", layer="features.14", top_k=8)
        vectors = glassbox.inspection.embed(["circle.png", "square.png"], model="shapes").vectors   # [2, D]
        found = glassbox.inspection.top_activating("shapes", images="shapes-val", layer="features.14",
                                                   channel=16)                 # a job, waited for

The dataset jobs (`embedding_map`, `top_activating`, `activation_atlas`) are submitted, waited for (a
progress bar on a terminal; Ctrl-C cancels them) and returned typed (`inspection_results`).

Enums are given by short name (`view="per_input_channel"`, `pooling="max"`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
from PIL import Image as PILImage

from glassbox_client._generated.glassbox.v1 import inspection_pb2 as pb
from glassbox_client._generated.glassbox.v1 import inspection_pb2_grpc
from glassbox_client._generated.glassbox.v1 import job_service_pb2 as job_pb
from glassbox_client.calls import ServiceCalls
from glassbox_client.images import ImageInput, array_from_tensor, image_from_png
from glassbox_client.inspection_results import ActivationAtlas, EmbeddingMap, TopActivating
from glassbox_client.jobs import DEFAULT_WAIT_S, Jobs, submit_request
from glassbox_client.requests import image_list, image_set, set_fields


def _short(enum: Any, value: int) -> str:
    """An enum number as its short lower-case name (FILTER_VIEW_COLOUR → "colour")."""
    prefix = enum.DESCRIPTOR.values_by_number[0].name.removesuffix("UNSPECIFIED")
    return enum.Name(value).removeprefix(prefix).lower()


@dataclass(frozen=True)
class Filters:
    """A convolution layer's kernels: raw weights [out, in, kh, kw] and the tiled picture."""

    model: str
    version: str
    layer: str
    view: str
    weights: np.ndarray
    grid: PILImage.Image
    grid_rows: int
    grid_columns: int
    tile_size: int

    @classmethod
    def from_proto(cls, r: pb.GetFiltersResponse) -> Filters:
        weights, grid = array_from_tensor(r.weights), image_from_png(r.grid_png)
        assert weights is not None and grid is not None
        view = _short(pb.FilterView, r.view)
        return cls(r.model, r.version, r.layer, view, weights, grid, r.grid_rows, r.grid_columns, r.tile_size)


@dataclass(frozen=True)
class ChannelActivation:
    channel: int
    mean: float
    max: float


@dataclass(frozen=True)
class Activations:
    """A layer's feature maps for one image: `maps` [K, H, W] in the order of `channels` (highest mean
    activation first) and the tiled picture."""

    model: str
    version: str
    layer: str
    channels: list[ChannelActivation]
    maps: np.ndarray
    grid: PILImage.Image
    layer_channels: int

    @classmethod
    def from_proto(cls, r: pb.GetActivationsResponse) -> Activations:
        maps, grid = array_from_tensor(r.activations), image_from_png(r.grid_png)
        assert maps is not None and grid is not None
        channels = [ChannelActivation(c.channel, c.mean, c.max) for c in r.channels]
        return cls(r.model, r.version, r.layer, channels, maps, grid, r.layer_channels)


@dataclass(frozen=True)
class Embeddings:
    """One vector per image, `vectors` [N, D], from `layer` pooled by `pooling`."""

    model: str
    version: str
    layer: str
    pooling: str
    vectors: np.ndarray

    @classmethod
    def from_proto(cls, r: pb.EmbedResponse) -> Embeddings:
        vectors = array_from_tensor(r.embeddings)
        assert vectors is not None
        return cls(r.model, r.version, r.layer, _short(pb.Pooling, r.pooling), vectors)


def filters_request(*, model: str, layer: str, view: str | None, version: str) -> pb.GetFiltersRequest:
    """The GetFilters request of `Inspection.filters` (shared with the asyncio client)."""
    request = pb.GetFiltersRequest()
    set_fields(request, {"model": model, "version": version, "layer": layer}, where="filters")
    if view is not None:
        set_fields(request, {"view": view}, where="filters")
    return request


def activations_request(
    image: ImageInput, *, model: str, layer: str, top_k: int, version: str
) -> pb.GetActivationsRequest:
    """The GetActivations request of `Inspection.activations`."""
    request = pb.GetActivationsRequest()
    values = {"model": model, "version": version, "layer": layer, "image": image, "top_k": top_k}
    set_fields(request, values, where="activations")
    return request


def embed_request(
    images: ImageInput | Sequence[ImageInput], *, model: str, layer: str, pooling: str | None, version: str
) -> pb.EmbedRequest:
    """The Embed request of `Inspection.embed`."""
    request = pb.EmbedRequest()
    values: dict[str, Any] = {"model": model, "version": version, "layer": layer}
    values["images"] = image_list(images)
    if pooling is not None:
        values["pooling"] = pooling
    set_fields(request, values, where="embed")
    return request


def dataset_job(
    kind: str,
    model: str,
    images: str | Sequence[ImageInput],
    *,
    labels: Sequence[int] = (),
    limit: int = 0,
    **spec: Any,
) -> job_pb.SubmitJobRequest:
    """The SubmitJob request of an inspection job over a named set or inline images (with labels)."""
    return submit_request(kind, model, {"images": image_set(images, labels=labels, limit=limit), **spec})


class Inspection:
    """The InspectionService calls, and the inspection jobs, over the client's channel, deadline and
    token."""

    def __init__(
        self, channel: grpc.Channel, metadata: Callable[[], tuple], default_timeout: float, jobs: Jobs
    ) -> None:
        self._call = ServiceCalls(
            inspection_pb2_grpc.InspectionServiceStub(channel), metadata, default_timeout
        )
        self._jobs = jobs

    def embedding_map(
        self,
        model: str,
        *,
        images: str | Sequence[ImageInput],
        timeout: float = DEFAULT_WAIT_S,
        progress: bool | None = None,
        **spec: Any,
    ) -> EmbeddingMap:
        """Run an `embedding_map` job (PCA and t-SNE of a layer over a set; `spec`: labels, limit, layer,
        pooling, projections, perplexity, ...) and return its typed result."""
        job = self._jobs.run_request(
            dataset_job("embedding_map", model, images, **spec), timeout=timeout, progress=progress
        )
        return EmbeddingMap.from_proto(job.id, job.embedding_map)

    def top_activating(
        self,
        model: str,
        *,
        images: str | Sequence[ImageInput],
        layer: str,
        channel: int,
        timeout: float = DEFAULT_WAIT_S,
        progress: bool | None = None,
        **spec: Any,
    ) -> TopActivating:
        """Run a `top_activating` job (the images and patches that activate `channel` of `layer` most;
        `spec`: labels, limit, count, y and x, ranking) and return its typed result."""
        request = dataset_job("top_activating", model, images, layer=layer, channel=channel, **spec)
        job = self._jobs.run_request(request, timeout=timeout, progress=progress)
        return TopActivating.from_proto(job.id, job.top_activating)

    def activation_atlas(
        self,
        model: str,
        *,
        images: str | Sequence[ImageInput],
        layer: str,
        timeout: float = DEFAULT_WAIT_S,
        progress: bool | None = None,
        **spec: Any,
    ) -> ActivationAtlas:
        """Run an `activation_atlas` job (`spec`: limit, layout, grid_size, min_count, steps, ...) and
        return its typed result."""
        request = dataset_job("activation_atlas", model, images, layer=layer, **spec)
        job = self._jobs.run_request(request, timeout=timeout, progress=progress)
        return ActivationAtlas.from_proto(job.id, job.activation_atlas)

    def filters(
        self,
        *,
        model: str,
        layer: str = "",
        view: str | None = None,
        version: str = "",
        timeout: float | None = None,
    ) -> Filters:
        """A Conv2d layer's kernels (default: the first one); `view` is colour, mean or
        per_input_channel (default: colour for 3 input channels, else mean)."""
        request = filters_request(model=model, layer=layer, view=view, version=version)
        return Filters.from_proto(self._call("GetFilters", request, timeout))

    def activations(
        self,
        image: ImageInput,
        *,
        model: str,
        layer: str,
        top_k: int = 0,
        version: str = "",
        timeout: float | None = None,
    ) -> Activations:
        """The layer's feature maps for one image, channels ranked by mean activation (only the top
        `top_k` when it is above 0)."""
        request = activations_request(image, model=model, layer=layer, top_k=top_k, version=version)
        return Activations.from_proto(self._call("GetActivations", request, timeout))

    def embed(
        self,
        images: ImageInput | Sequence[ImageInput],
        *,
        model: str,
        layer: str = "",
        pooling: str | None = None,
        version: str = "",
        timeout: float | None = None,
    ) -> Embeddings:
        """One vector per image from `layer` (default: the penultimate layer), pooled by `pooling`
        (mean, max or flatten; default mean)."""
        request = embed_request(images, model=model, layer=layer, pooling=pooling, version=version)
        return Embeddings.from_proto(self._call("Embed", request, timeout))
