"""Field helpers every wire module shares: proto3 `optional` fields and enum numbers. No computation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

from glassbox_client._generated.glassbox.v1 import datasets_pb2
from google.protobuf.message import Message

from glassbox.core.errors import InvalidArgument

T = TypeVar("T")


class VersionedSpec(Protocol):
    """A job spec's model version: every job spec message has `model` and `version` (empty = newest)."""

    @property
    def model(self) -> str: ...

    @property
    def version(self) -> str: ...

    def HasField(self, field_name: str) -> bool: ...


class ImageSetSpec(VersionedSpec, Protocol):
    """A dataset job's spec: its model version and the `images` set it runs over."""

    @property
    def images(self) -> datasets_pb2.ImageSet: ...


class JobSpec(VersionedSpec, Protocol):
    """A job spec message: its model version and the `seed` its random draws start from."""

    @property
    def seed(self) -> int: ...


def optional(message: Message, name: str, default: T) -> T:
    """The value of a proto3 `optional` field, or `default` when it is not set."""
    return getattr(message, name) if message.HasField(name) else default


def set_fields(message: Message, *names: str) -> dict[str, Any]:
    """The proto3 `optional` fields among `names` that the message sets, as keyword arguments (a field
    left unset is left out, so the core dataclass's default applies)."""
    return {name: getattr(message, name) for name in names if message.HasField(name)}


def enum_value(table: Mapping[Any, T], value: int, field: str, enum_name: str) -> T:
    """table[value]; InvalidArgument naming `field` for a number the enum does not define."""
    if value not in table:
        raise InvalidArgument(f"unknown {enum_name} {value}", field=field)
    return table[value]
