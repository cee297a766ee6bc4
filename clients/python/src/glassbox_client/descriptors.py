"""Typed access to protobuf reflection, for the modules that walk messages by their descriptors.

types-protobuf types `Message.DESCRIPTOR` as the pure-Python or the upb `Descriptor`, which the rest of
its API (`Any.Is`, the pure-Python `FieldDescriptor`) does not accept, and a field's `message_type` and
`enum_type` as optional. At runtime the upb descriptors are instances of the pure-Python classes
(`isinstance` holds), and a message or enum field always has its type, so these narrow once, here.
"""

from __future__ import annotations

from typing import cast

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message


def descriptor_of(message: Message | type[Message]) -> Descriptor:
    """The descriptor of a message (or a message class)."""
    return cast(Descriptor, message.DESCRIPTOR)


def message_type_of(field: FieldDescriptor) -> Descriptor:
    """The message type of a message field."""
    if field.message_type is None:
        raise TypeError(f"{field.full_name} is not a message field")
    return field.message_type


def enum_type_of(field: FieldDescriptor) -> EnumDescriptor:
    """The enum type of an enum field."""
    if field.enum_type is None:
        raise TypeError(f"{field.full_name} is not an enum field")
    return field.enum_type
