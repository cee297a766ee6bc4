"""Proto messages → the core's method `Params` dataclasses (attribution requests, and the method
configurations of explanation-evaluation jobs).

Method parameters are translated generically, by the convention every method's `Params` dataclass
follows (methods/base.py): dataclass field names are the proto field names; an `optional` scalar left
unset, a plain scalar at its zero value and an enum at `*_UNSPECIFIED` take the dataclass default;
repeated fields become tuples; enum values map by name (INTEGRATION_RULE_GAUSS_LEGENDRE →
IntegrationRule("gauss_legendre")); an `Image` becomes an `ImageInput`; a oneof group becomes a
`MethodChoice` of the chosen method and its converted params. A new method therefore needs no code here.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from enum import Enum
from typing import Any

import numpy as np
from glassbox_client._generated.glassbox.v1 import tensor_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from glassbox.core.errors import InvalidArgument
from glassbox.methods.base import ImageInput, MethodChoice
from glassbox.methods.registry import method_class
from glassbox.wire.tensors import image_source


def dataclass_from_message(message: Message, cls: type, *, field: str) -> Any:
    """Fill dataclass `cls` from the same-named fields of `message` (see the module docstring)."""
    hints = _type_hints(cls)
    descriptor = message.DESCRIPTOR
    values: dict[str, Any] = {}
    for item in dataclasses.fields(cls):
        name = item.name
        path = f"{field}.{name}"
        if name in descriptor.oneofs_by_name and name not in descriptor.fields_by_name:
            chosen = message.WhichOneof(name)
            if chosen is not None:
                nested = dataclass_from_message(
                    getattr(message, chosen), method_class(chosen).Params, field=f"{field}.{chosen}"
                )
                values[name] = MethodChoice(chosen, nested)
            continue
        proto_field = descriptor.fields_by_name.get(name)
        if proto_field is None:
            raise TypeError(f"{cls.__name__}.{name} has no field in {descriptor.full_name}")
        value = getattr(message, name)
        if proto_field.type == FieldDescriptor.TYPE_FLOAT:
            value = tuple(map(_decimal_float, value)) if proto_field.is_repeated else _decimal_float(value)
        if proto_field.is_repeated:
            values[name] = tuple(value)
        elif proto_field.message_type is not None:
            if message.HasField(name):
                values[name] = _message_value(value, path)
        elif proto_field.enum_type is not None:
            if value != 0:
                values[name] = _enum_value(proto_field, value, _enum_class(hints[name]), path)
        elif proto_field.has_presence:
            if message.HasField(name):
                values[name] = value
        elif value:
            values[name] = value
    return cls(**values)


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    """`typing.get_type_hints` of a Params class, resolved once (it evaluates every annotation)."""
    return typing.get_type_hints(cls)


def _decimal_float(value: float) -> float:
    """A float32 wire value as the shortest decimal that reads back to it (0.15f → 0.15, not
    0.15000000596...), so an explicit value equals the dataclass default it spells (one cache key)."""
    return float(str(np.float32(value)))


def _message_value(value: Message, field: str) -> Any:
    if isinstance(value, tensor_pb2.Image):
        return ImageInput.from_source(image_source(value, field=field))
    raise TypeError(f"no translation for message {value.DESCRIPTOR.full_name} at {field}")


def _enum_class(hint: Any) -> type[Enum]:
    """The Enum class of an annotation `E` or `E | None`."""
    options = (
        typing.get_args(hint)
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
        else (hint,)
    )
    for option in options:
        if isinstance(option, type) and issubclass(option, Enum):
            return option
    raise TypeError(f"{hint} is not an Enum annotation")


def _enum_value(proto_field: Any, number: int, enum_cls: type[Enum], field: str) -> Enum:
    enum = proto_field.enum_type
    known = enum.values_by_number.get(number)
    if known is None:
        raise InvalidArgument(f"{number} is not a {enum.name} value", field=field)
    prefix = enum.values_by_number[0].name.removesuffix("UNSPECIFIED")
    return enum_cls(known.name.removeprefix(prefix).lower())
