"""generative.proto ↔ core translations shared by the job kinds (`wire.kinds`) and the servicers.
No computation.

Field names in errors are relative to the job spec (e.g. `objective.sum.terms[1].objective.channel`);
the job servicer prefixes the spec's oneof name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch
from glassbox_client._generated.glassbox.v1 import generative_pb2 as pb
from glassbox_client._generated.glassbox.v1 import model_service_pb2, tensor_pb2
from google.protobuf.message import Message

from glassbox.backends.base import Model
from glassbox.backends.torch_backend import TorchModel
from glassbox.common.validation import gradient_model
from glassbox.core.errors import InvalidArgument
from glassbox.core.images import load_image
from glassbox.core.predictions import ClassScore
from glassbox.generative import objectives as obj
from glassbox.generative.parametrisations import ImagePrior, Kind, ParametrisationSettings
from glassbox.generative.regularisers import RegulariserSettings
from glassbox.generative.transforms import NONE, STANDARD, TransformSettings
from glassbox.models.repository import ModelRepository
from glassbox.render import encode_png
from glassbox.wire.fields import VersionedSpec, optional
from glassbox.wire.tensors import array_to_proto, image_source


def model(spec: VersionedSpec, repository: ModelRepository) -> TorchModel:
    """The spec's model version; it must be a torch model (the methods need gradients)."""
    return gradient_model(repository.get(spec.model, spec.version, field="model"))


def image(spec: Message, name: str, target: TorchModel, *, max_pixels: int) -> torch.Tensor:
    """A required Image field, decoded (at most `max_pixels`, the server's `limits.max_image_pixels`)
    and brought to the model's input size: [3, H, W] in [0, 1]."""
    if not spec.HasField(name):
        raise InvalidArgument("an image is required", field=name)
    source = image_source(getattr(spec, name), field=name)
    return load_image(source, target.config.input, max_pixels=max_pixels, field=name).pixels


def image_at(
    message: Message, name: str, target: TorchModel, size: int, *, max_pixels: int, field: str
) -> torch.Tensor:
    """A required Image field, decoded and brought to size × size by the model's resize policy:
    [3, size, size] in [0, 1]. `field` is its path in the spec."""
    if not message.HasField(name):
        raise InvalidArgument("an image is required", field=field)
    source = image_source(getattr(message, name), field=field)
    geometry = dataclasses.replace(target.config.input, height=size, width=size)
    return load_image(source, geometry, max_pixels=max_pixels, field=field).pixels


def class_index(message: Message, name: str, target: Model, *, field: str | None = None) -> int:
    """A required ClassRef field as a class index; `field` is its path (default: `name`)."""
    field = field or name
    if not message.HasField(name):
        raise InvalidArgument("a class (index or label) is required", field=field)
    return class_ref(getattr(message, name), target, field)


def class_ref(ref: pb.ClassRef, target: Model, field: str) -> int:
    """A ClassRef as a class index of `target`; `field` is its path."""
    which = ref.WhichOneof("class_ref")
    if which == "index":
        return obj.class_index(target, index=ref.index, field=f"{field}.index")
    if which == "label":
        return obj.class_index(target, label=ref.label, field=f"{field}.label")
    raise InvalidArgument("set the class's index or its label", field=field)


def objective(
    message: pb.Objective, target: TorchModel, *, max_depth: int, field: str = "objective", depth: int = 0
) -> obj.Objective:
    """An Objective message as a core objective bound to the model, weighted sums nested at most
    `max_depth` deep; errors name the message's own path (e.g.
    `objective.sum.terms[1].objective.channel.layer`)."""
    if depth > max_depth:
        raise InvalidArgument(f"objectives nest deeper than {max_depth} levels", field=field)
    which = message.WhichOneof("kind")
    if which is None:
        raise InvalidArgument("an objective is required: set one of its kinds", field=field)
    body = getattr(message, which)
    field = f"{field}.{which}"
    if which == "sum":
        if not body.terms:
            raise InvalidArgument("a weighted sum needs at least one term", field=f"{field}.terms")
        return obj.WeightedSum(
            tuple(
                (
                    float(optional(term, "weight", 1.0)),
                    objective(
                        term.objective,
                        target,
                        max_depth=max_depth,
                        field=f"{field}.terms[{i}].objective",
                        depth=depth + 1,
                    ),
                )
                for i, term in enumerate(body.terms)
            )
        )
    if which in ("logit", "probability"):
        index = class_index(body, "target", target, field=f"{field}.target")
        leaf: obj.Objective = obj.Logit(index) if which == "logit" else obj.Probability(index)
    elif which == "neuron":
        y: int | None = optional(body, "y", None)
        x: int | None = optional(body, "x", None)
        leaf = obj.Neuron(body.layer, body.channel, y, x)
    elif which == "channel":
        leaf = obj.Channel(body.layer, body.channel)
    elif which == "layer":
        leaf = obj.LayerActivation(body.layer)
    else:
        leaf = obj.Diversity(body.layer)
    return leaf.bind(target, field)


LATENT_PRIOR_INIT_SD = 1.0
"""A latent-prior image starts from a random draw from the prior unless `init_sd` says otherwise."""


def parametrisation(
    message: pb.ImageParametrisation,
    default: ParametrisationSettings,
    *,
    prior: Callable[[str], ImagePrior] | None = None,
) -> ParametrisationSettings:
    """The parametrisation settings; `prior` loads the named set's learned prior (the kinds that accept
    PARAMETRISATION_LATENT_PRIOR pass it; the others refuse that kind)."""
    if message.kind not in pb.Parametrisation.values():
        raise InvalidArgument(f"unknown parametrisation {message.kind}", field="parametrisation.kind")
    if message.colour not in pb.ColourSpace.values():
        raise InvalidArgument(f"unknown colour space {message.colour}", field="parametrisation.colour")
    if message.kind == pb.PARAMETRISATION_LATENT_PRIOR:
        return _latent_prior(message, prior)
    if message.latent_prior:
        raise InvalidArgument(
            "latent_prior names the set of a PARAMETRISATION_LATENT_PRIOR; set that kind or leave it empty",
            field="parametrisation.latent_prior",
        )
    kind = {pb.PARAMETRISATION_PIXEL: Kind.PIXEL, pb.PARAMETRISATION_FOURIER: Kind.FOURIER}.get(
        message.kind, default.kind
    )
    colour = {pb.COLOUR_SPACE_DECORRELATED: True, pb.COLOUR_SPACE_RGB: False}.get(
        message.colour, default.decorrelate
    )
    return ParametrisationSettings(
        kind=kind,
        decorrelate=colour,
        init_sd=float(optional(message, "init_sd", default.init_sd)),
        decay_power=float(optional(message, "decay_power", default.decay_power)),
    )


def _latent_prior(
    message: pb.ImageParametrisation, prior: Callable[[str], ImagePrior] | None
) -> ParametrisationSettings:
    if prior is None:
        raise InvalidArgument(
            "PARAMETRISATION_LATENT_PRIOR is accepted by class_visualisation and feature_visualisation",
            field="parametrisation.kind",
        )
    if message.colour != pb.COLOUR_SPACE_UNSPECIFIED:
        raise InvalidArgument(
            "a latent prior's decoder makes the colours; leave colour unset", field="parametrisation.colour"
        )
    if message.HasField("decay_power"):
        raise InvalidArgument(
            "decay_power is a Fourier setting; leave it unset", field="parametrisation.decay_power"
        )
    return ParametrisationSettings(
        kind=Kind.LATENT_PRIOR,
        init_sd=float(optional(message, "init_sd", LATENT_PRIOR_INIT_SD)),
        prior=prior(message.latent_prior),
    )


def transforms(message: pb.TransformSettings, default: TransformSettings) -> TransformSettings:
    presets = {
        pb.TRANSFORM_PRESET_UNSPECIFIED: default,
        pb.TRANSFORM_PRESET_STANDARD: STANDARD,
        pb.TRANSFORM_PRESET_NONE: NONE,
    }
    if message.preset in presets:
        return presets[message.preset]
    if message.preset != pb.TRANSFORM_PRESET_CUSTOM:
        raise InvalidArgument(f"unknown transform preset {message.preset}", field="transforms.preset")
    return TransformSettings(
        pad=message.pad,
        pad_value=message.pad_value,
        jitter=message.jitter,
        scales=tuple(message.scales),
        rotations_degrees=tuple(message.rotations_degrees),
        final_jitter=message.final_jitter,
    )


def regularisers(
    message: pb.Regularisers, present: bool, default: RegulariserSettings
) -> RegulariserSettings:
    if not present:
        return default
    return RegulariserSettings(
        l2_weight=message.l2_weight,
        total_variation_weight=message.total_variation_weight,
        blur_every=message.blur_every,
        blur_sigma=message.blur_sigma or 0.5,
    )


def tensor(values: torch.Tensor) -> tensor_pb2.Tensor:
    """A float tensor as a float32 wire Tensor."""
    return array_to_proto(values.detach().float().cpu().numpy().astype(np.float32))


def generated_image(pixels: torch.Tensor) -> pb.GeneratedImage:
    """An image [3, H, W] in [0, 1] as PNG plus float32 tensor."""
    return pb.GeneratedImage(png=encode_png(pixels), pixels=tensor(pixels))


def class_score(score: ClassScore, target: TorchModel) -> model_service_pb2.ClassScore:
    return model_service_pb2.ClassScore(
        index=score.index, label=target.labels[score.index], probability=score.probability, logit=score.logit
    )
