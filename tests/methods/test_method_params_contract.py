"""The method list and every method's parameters agree across the protos, the registry and the dataclasses.

The methods are listed in three places that cannot share one definition without changing the wire
format: AttributeRequest's `method` oneof, EvaluatedMethod's `method` oneof (evaluation jobs) and
SmoothGradParams' `base` oneof. The catalogue (`methods.catalogue`, each class's `smoothable`) is the
core's list. A params message and its `Params` dataclass are matched by field name
(wire/method_params.py): a proto field with no dataclass field would be dropped silently, so each pair
is checked field by field, and a message with every field set must come through the translation with
every dataclass field changed from its default.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from glassbox.methods.base import MethodChoice
from glassbox.methods.gradients import GradientMethod
from glassbox.methods.registry import method_class, method_names, smoothable_methods
from glassbox.methods.service import OutputOptions
from glassbox.methods.targets import TargetSpec
from glassbox.wire.method_params import dataclass_from_message
from glassbox_client._generated.glassbox.v1 import attribution_service_pb2, evaluation_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

NOT_EVALUATED = {"neuron_gradient"}
"""Methods AttributeRequest offers and EvaluatedMethod does not: neuron_gradient explains a neuron, not a
class (evaluation.proto says so beside the oneof)."""


def oneof_members(descriptor: Descriptor, oneof: str) -> dict[str, tuple[int, str]]:
    """name → (field number, message type) of each member of a oneof."""
    return {
        field.name: (field.number, field.message_type.full_name)
        for field in descriptor.oneofs_by_name[oneof].fields
    }


ATTRIBUTE_METHODS = oneof_members(attribution_service_pb2.AttributeRequest.DESCRIPTOR, "method")
EVALUATED_METHODS = oneof_members(evaluation_pb2.EvaluatedMethod.DESCRIPTOR, "method")
SMOOTHGRAD_BASES = oneof_members(attribution_service_pb2.SmoothGradParams.DESCRIPTOR, "base")


def test_the_registry_has_exactly_the_methods_attribute_request_offers() -> None:
    assert sorted(ATTRIBUTE_METHODS) == method_names()


def test_evaluated_method_lists_the_same_methods_as_attribute_request() -> None:
    expected = {name: member for name, member in ATTRIBUTE_METHODS.items() if name not in NOT_EVALUATED}
    assert expected == EVALUATED_METHODS


def test_smoothgrad_bases_are_the_smoothable_methods() -> None:
    """Same names and message types as in AttributeRequest (the field numbers are the base oneof's own)."""
    assert sorted(SMOOTHGRAD_BASES) == smoothable_methods()
    for name, (_number, message_type) in SMOOTHGRAD_BASES.items():
        assert message_type == ATTRIBUTE_METHODS[name][1], name
        assert issubclass(method_class(name), GradientMethod), f"{name}: SmoothGrad wraps gradient methods"


def params_pairs() -> list[tuple[str, type[Message], type]]:
    """(name, params message class, dataclass) of every method, and of the request parts translated the
    same way."""
    request = attribution_service_pb2.AttributeRequest.DESCRIPTOR
    pairs: list[tuple[str, type[Message], type]] = [
        (name, GetMessageClass(request.fields_by_name[name].message_type), method_class(name).Params)
        for name in method_names()
    ]
    pairs.append(("targets", attribution_service_pb2.TargetSpec, TargetSpec))
    pairs.append(("output", attribution_service_pb2.OutputOptions, OutputOptions))
    return pairs


def real_oneofs(descriptor: Descriptor) -> set[str]:
    """The message's oneof groups, without the synthetic `_name` oneof of each proto3 `optional` field."""
    return {
        oneof.name
        for oneof in descriptor.oneofs
        if not (len(oneof.fields) == 1 and oneof.name == f"_{oneof.fields[0].name}")
    }


def expected_dataclass_fields(descriptor: Descriptor) -> set[str]:
    """The proto's fields outside real oneofs, and the names of its real oneofs (each one MethodChoice)."""
    groups = real_oneofs(descriptor)
    plain = {
        field.name
        for field in descriptor.fields
        if field.containing_oneof is None or field.containing_oneof.name not in groups
    }
    return plain | groups


@pytest.mark.parametrize("name,message,params", [pytest.param(*pair, id=pair[0]) for pair in params_pairs()])
def test_params_message_and_dataclass_have_the_same_fields(
    name: str, message: type[Message], params: type
) -> None:
    assert {item.name for item in dataclasses.fields(params)} == expected_dataclass_fields(message.DESCRIPTOR)


@pytest.mark.parametrize("name,message,params", [pytest.param(*pair, id=pair[0]) for pair in params_pairs()])
def test_translation_sets_every_dataclass_field(name: str, message: type[Message], params: type) -> None:
    """A message with every field set to a value other than the default translates to a dataclass whose
    every field differs from its default: no field is dropped on the way."""
    defaults = params()
    request = message()
    descriptor = message.DESCRIPTOR
    groups = real_oneofs(descriptor)
    for field in descriptor.fields:
        if field.containing_oneof is not None and field.containing_oneof.name in groups:
            continue
        set_other_than_default(request, field, getattr(defaults, field.name))
    for oneof in groups:
        default = getattr(defaults, oneof)
        chosen = next(f for f in descriptor.oneofs_by_name[oneof].fields if f.name != default.name)
        getattr(request, chosen.name).SetInParent()
    translated = dataclass_from_message(request, params, field=name)
    unchanged = [
        item.name
        for item in dataclasses.fields(params)
        if getattr(translated, item.name) == getattr(defaults, item.name)
    ]
    assert unchanged == [], f"{name}: the translation left these fields at their defaults"


def set_other_than_default(request: Message, field: FieldDescriptor, default: Any) -> None:
    """Set `field` of `request` to a value whose translation differs from the dataclass default."""
    if field.message_type is not None:
        if field.message_type.full_name != "glassbox.v1.Image":
            raise AssertionError(f"no test value for message field {field.full_name}")
        image = getattr(request, field.name)
        image.encoded = b"\x89PNG"
        return
    candidates: list[Any]
    if field.enum_type is not None:
        candidates = [value.number for value in field.enum_type.values if value.number != 0]
    elif field.type == FieldDescriptor.TYPE_BOOL:
        candidates = [True, False]
    elif field.type == FieldDescriptor.TYPE_STRING:
        candidates = ["a", "b"]
    elif field.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        candidates = [0.25, 0.75]
    else:
        candidates = [3, 5]
    for candidate in candidates:
        if field.is_repeated:
            del getattr(request, field.name)[:]
            getattr(request, field.name).append(candidate)
        else:
            setattr(request, field.name, candidate)
        if not is_default(request, field, default):
            return
    raise AssertionError(f"{field.full_name}: no wire value translates to other than the default {default!r}")


def is_default(request: Message, field: FieldDescriptor, default: Any) -> bool:
    """Whether `field` as set in `request` would translate to the dataclass default (compared by value:
    an enum member by its proto name, a repeated field as a tuple)."""
    value = getattr(request, field.name)
    if field.is_repeated:
        value = tuple(value)
        if field.enum_type is not None:
            value = tuple(enum_member_name(field, number) for number in value)
            default = tuple(getattr(item, "value", item) for item in default)
        return value == tuple(default)
    if field.enum_type is not None:
        return default is not None and enum_member_name(field, value) == getattr(default, "value", default)
    if not field.has_presence and not value:
        return True  # a plain scalar at its zero value takes the dataclass default
    return value == default


def enum_member_name(field: FieldDescriptor, number: int) -> str:
    """The dataclass enum value a proto enum number translates to (INTEGRATION_RULE_X → "x")."""
    enum = field.enum_type
    prefix = enum.values_by_number[0].name.removesuffix("UNSPECIFIED")
    return enum.values_by_number[number].name.removeprefix(prefix).lower()


def test_a_choice_translates_to_the_chosen_methods_params() -> None:
    request = attribution_service_pb2.SmoothGradParams()
    request.integrated_gradients.steps = 7
    translated = dataclass_from_message(request, method_class("smoothgrad").Params, field="smoothgrad")
    assert translated.base == MethodChoice(
        "integrated_gradients", method_class("integrated_gradients").Params(steps=7)
    )
