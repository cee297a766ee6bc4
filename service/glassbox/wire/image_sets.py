"""datasets.proto `ImageSet` → core `LabelledImages`, for the job kinds that run over a set of images.

Field names in errors are relative to the set's field in the spec (`field`), e.g.
`images.inline.labels[3]` or `reference.named`.
"""

from __future__ import annotations

import copy

from glassbox_client._generated.glassbox.v1 import datasets_pb2

from glassbox.config import Settings
from glassbox.core.errors import GlassboxError, InvalidArgument
from glassbox.models.datasets import MAX_SET_IMAGES, LabelledImages, inline_set
from glassbox.models.repository import ModelRepository
from glassbox.wire.fields import ImageSetSpec
from glassbox.wire.tensors import image_sources


def labelled_images(
    image_set: datasets_pb2.ImageSet,
    repository: ModelRepository,
    model: str,
    version: str = "",
    *,
    max_pixels: int,
    field: str = "images",
) -> LabelledImages:
    """The set's images at the input size of the model version, with labels and masks where given;
    each image at most `max_pixels` (the server's `limits.max_image_pixels`)."""
    if not 0 <= image_set.limit <= MAX_SET_IMAGES:
        raise InvalidArgument(
            f"limit must be in 0..{MAX_SET_IMAGES}, got {image_set.limit}", field=f"{field}.limit"
        )
    source = image_set.WhichOneof("source")
    try:
        if source == "named":
            images = repository.dataset(model, image_set.named, version, max_pixels=max_pixels)
        elif source == "inline":
            target = repository.get(model, version)
            inline = image_set.inline
            images = inline_set(
                image_sources(list(inline.images), field="inline.images"),
                list(inline.labels),
                image_sources(list(inline.masks), field="inline.masks"),
                target.config.input,
                num_classes=target.num_classes,
                max_pixels=max_pixels,
            )
        else:
            raise InvalidArgument("give the images inline or name a stored set", field="")
    except GlassboxError as exc:
        raise _prefixed(exc, field) from exc
    return images.head(image_set.limit)


def spec_images(spec: ImageSetSpec, repository: ModelRepository, settings: Settings) -> LabelledImages:
    """A job spec's `images` set, for its `model` and `version`, within the server's pixel limit."""
    return labelled_images(
        spec.images,
        repository,
        spec.model,
        spec.version,
        max_pixels=settings.limits.max_image_pixels,
        field="images",
    )


def _prefixed(error: GlassboxError, prefix: str) -> GlassboxError:
    """The same error with its field placed under `prefix` (model errors keep their own field)."""
    if error.field in ("model", "version"):
        return error
    prefixed = copy.copy(error)  # keeps the reason and metadata
    prefixed.field = f"{prefix}.{error.field}" if error.field else prefix
    return prefixed
