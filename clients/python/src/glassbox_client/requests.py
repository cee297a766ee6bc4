"""Request messages from plain Python values; shared by the sync and the asyncio client.

Method parameters are keyword arguments named like the fields of the method's params message in
attribution_service.proto (`steps=32`, `baseline="blurred"`, `layer="features.3"`); enum values are
given by their short name, case-insensitive, and images by anything `to_proto_image` accepts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

import numpy as np
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from glassbox_client._generated.glassbox.v1 import attribution_service_pb2 as attribution_pb
from glassbox_client._generated.glassbox.v1 import model_service_pb2 as model_pb
from glassbox_client._generated.glassbox.v1 import priority_pb2 as priority_pb
from glassbox_client.descriptors import descriptor_of, enum_type_of
from glassbox_client.images import ImageInput, to_proto_image

Target = int | str
"""A class to explain: its index into the model's labels, or its label."""

OUTPUTS = ("map", "heatmap", "overlay")
_STRING_TYPES = (FieldDescriptor.TYPE_STRING,)
_INTEGER_TYPES = (
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64,
)
METHODS = tuple(f.name for f in attribution_pb.AttributeRequest.DESCRIPTOR.oneofs_by_name["method"].fields)


def image_list(images: ImageInput | Sequence[ImageInput]) -> list[ImageInput]:
    """One image or several: a list or tuple is several, a 4-D array is a batch, anything else is one."""
    if isinstance(images, list | tuple):
        return list(images)
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images)
    # Anything else is one image: a sequence of another type too, which to_proto_image rejects (the
    # cast because mypy cannot take Sequence[ImageInput] out of the union by `list | tuple`).
    return [cast(ImageInput, images)]


PRIORITIES = {
    "interactive": priority_pb.REQUEST_PRIORITY_INTERACTIVE,
    "background": priority_pb.REQUEST_PRIORITY_BACKGROUND,
}
"""A call's priority class on the server: interactive calls are served before background work (jobs)."""


def image_set(
    images: str | Sequence[ImageInput],
    *,
    labels: Sequence[int] = (),
    masks: Sequence[ImageInput] = (),
    limit: int = 0,
) -> dict[str, Any]:
    """The fields of a dataset job's `ImageSet`: a named set of the model ("shapes-val") or images sent
    inline with their optional labels and masks; `limit` keeps the first images only (0: all)."""
    fields: dict[str, Any] = {"limit": limit}
    if isinstance(images, str):
        fields["named"] = images
    else:
        fields["inline"] = {"images": list(images), "labels": list(labels), "masks": list(masks)}
    return fields


def request_priority(priority: str) -> priority_pb.RequestPriority:
    if priority not in PRIORITIES:
        raise ValueError(f"priority must be one of {', '.join(PRIORITIES)}, got {priority!r}")
    return PRIORITIES[priority]


def predict_request(
    images: ImageInput | Sequence[ImageInput], model: str, version: str, top_k: int, priority: str
) -> model_pb.PredictRequest:
    proto_images = [to_proto_image(image) for image in image_list(images)]
    return model_pb.PredictRequest(
        model=model, version=version, images=proto_images, top_k=top_k, priority=request_priority(priority)
    )


def target_spec(
    targets: Target | Iterable[Target] | None, top_k: int | None
) -> attribution_pb.TargetSpec | None:
    """A TargetSpec from class indices or labels (not both), or from top_k; None leaves it unset."""
    if targets is not None and top_k is not None:
        raise ValueError("give targets or top_k, not both")
    if top_k is not None:
        return attribution_pb.TargetSpec(top_k=top_k)
    if targets is None:
        return None
    items = [targets] if isinstance(targets, int | str) else list(targets)
    if all(isinstance(t, int | np.integer) for t in items):
        return attribution_pb.TargetSpec(class_indices=[int(t) for t in items])
    if all(isinstance(t, str) for t in items):
        return attribution_pb.TargetSpec(labels=[str(t) for t in items])
    raise ValueError("targets must be all class indices (int) or all labels (str)")


def output_options(
    outputs: Iterable[str],
    *,
    aggregation: str | None,
    colormap: str | None,
    overlay_alpha: float | None,
    clip_percentile: float | None,
    original_size: bool,
    picture_aggregation: str | None = None,
    colour_bar: bool = False,
) -> attribution_pb.OutputOptions:
    wanted = set(outputs)
    if not wanted or wanted - set(OUTPUTS):
        raise ValueError(f"outputs must be a non-empty subset of {OUTPUTS}, got {sorted(wanted)}")
    options = attribution_pb.OutputOptions(
        map="map" in wanted,
        heatmap_png="heatmap" in wanted,
        overlay_png="overlay" in wanted,
        original_size=original_size,
        overlay_alpha=overlay_alpha or 0.0,
        clip_percentile=clip_percentile or 0.0,
        colour_bar=colour_bar,
    )
    fields = descriptor_of(options).fields_by_name  # _enum_value's numbers are cast to the fields' enums
    if picture_aggregation is not None:
        number = _enum_value(fields["picture_aggregation"], picture_aggregation)
        options.picture_aggregation = cast(attribution_pb.Aggregation, number)
    if aggregation is not None:
        number = _enum_value(fields["aggregation"], aggregation)
        options.aggregation = cast(attribution_pb.Aggregation, number)
    if colormap is not None:
        number = _enum_value(fields["colormap"], colormap)
        options.colormap = cast(attribution_pb.Colormap, number)
    return options


def attribute_request(
    images: ImageInput | Sequence[ImageInput],
    *,
    model: str,
    method: str,
    version: str,
    targets: Target | Iterable[Target] | None,
    top_k: int | None,
    image_targets: Sequence[Target | Iterable[Target]] | None,
    output: attribution_pb.OutputOptions,
    params: dict[str, Any],
    priority: str = "interactive",
) -> attribution_pb.AttributeRequest:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; the methods are {', '.join(METHODS)}")
    request = attribution_pb.AttributeRequest(
        model=model,
        version=version,
        images=[to_proto_image(i) for i in image_list(images)],
        output=output,
        priority=request_priority(priority),
    )
    spec = target_spec(targets, top_k)
    if spec is not None:
        request.targets.CopyFrom(spec)
    for per_image in image_targets or ():
        request.image_targets.append(target_spec(per_image, None) or attribution_pb.TargetSpec())
    set_fields(getattr(request, method), params, where=method)
    return request


def set_fields(message: Message, values: dict[str, Any], *, where: str) -> None:
    """Set a message's fields from keyword values: enums by short name, images from any image input,
    sub-messages from dicts (`objective={"channel": {"layer": "features.3", "channel": 5}}`).

    A oneof of sub-messages (SmoothGrad's `base`) takes the chosen field's name as its value, or a
    (name, {sub-params}) pair.
    """
    descriptor = descriptor_of(message)
    message.SetInParent()
    for key, value in values.items():
        oneof = descriptor.oneofs_by_name.get(key)
        if oneof is not None and not key.startswith("_"):
            name, sub_values = (value, {}) if isinstance(value, str) else value
            choices = [f.name for f in oneof.fields]
            if name not in choices:
                raise ValueError(f"{where}.{key} must be one of {', '.join(choices)}, got {name!r}")
            set_fields(getattr(message, name), sub_values, where=f"{where}.{name}")
            continue
        field = descriptor.fields_by_name.get(key)
        if field is None:
            oneofs = [o for o in descriptor.oneofs_by_name if not o.startswith("_")]
            known = ", ".join([*descriptor.fields_by_name, *oneofs])
            raise ValueError(f"{where} has no parameter {key!r}; its parameters are: {known or 'none'}")
        if field.type == FieldDescriptor.TYPE_ENUM and field.is_repeated:
            getattr(message, key).extend(_enum_value(field, item) for item in value)
        elif field.type == FieldDescriptor.TYPE_ENUM:
            setattr(message, key, _enum_value(field, value))
        elif field.type == FieldDescriptor.TYPE_MESSAGE and field.is_repeated:
            container = getattr(message, key)
            for item in value:
                _assign_message(container.add(), item, where=f"{where}.{key}")
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            _assign_message(getattr(message, key), value, where=f"{where}.{key}")
        elif field.is_repeated:
            getattr(message, key).extend(value)
        else:
            setattr(message, key, value)


def _assign_message(target: Message, value: Any, *, where: str) -> None:
    """Fill a sub-message from a message, a dict of its fields, an image input (Image fields), or a
    bare int or str for a message with one field of that type (ClassRef: index or label)."""
    if isinstance(value, Message):
        target.CopyFrom(value)
    elif target.DESCRIPTOR.name == "Image":
        target.CopyFrom(to_proto_image(value))
    elif isinstance(value, dict):
        set_fields(target, value, where=where)
    elif isinstance(value, int | str) and not isinstance(value, bool):
        wanted = _STRING_TYPES if isinstance(value, str) else _INTEGER_TYPES
        matches = [f.name for f in target.DESCRIPTOR.fields if f.type in wanted and not f.is_repeated]
        if len(matches) != 1:
            raise ValueError(f"{where} needs a dict of its fields, not {value!r}")
        setattr(target, matches[0], value)
    else:
        raise ValueError(f"{where} needs a dict of its fields, not {type(value).__name__}")


def _enum_value(field: FieldDescriptor, value: str | int) -> int:
    """An enum value from its short name ("blurred" for BASELINE_BLURRED) or its number. Every
    Glassbox enum's zero value is <PREFIX>_UNSPECIFIED, which gives the prefix."""
    if isinstance(value, int):
        return value
    enum = enum_type_of(field)
    prefix = enum.values_by_number[0].name.removesuffix("UNSPECIFIED")
    names = {v.name.removeprefix(prefix).lower(): v.number for v in enum.values if v.number != 0}
    if value.lower().removeprefix(prefix.lower()) not in names:
        raise ValueError(f"{field.name} must be one of {', '.join(names)}, got {value!r}")
    return names[value.lower().removeprefix(prefix.lower())]
