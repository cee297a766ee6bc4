"""The wire's RequestPriority → the compute scheduler's Priority (unspecified means interactive)."""

from __future__ import annotations

from glassbox_client._generated.glassbox.v1 import priority_pb2

from glassbox.core.errors import InvalidArgument
from glassbox.serving import Priority

PRIORITIES: dict[int, Priority] = {
    priority_pb2.REQUEST_PRIORITY_UNSPECIFIED: Priority.INTERACTIVE,
    priority_pb2.REQUEST_PRIORITY_INTERACTIVE: Priority.INTERACTIVE,
    priority_pb2.REQUEST_PRIORITY_BACKGROUND: Priority.BACKGROUND,
}


def request_priority(value: int, *, field: str = "priority") -> Priority:
    """The scheduling class a request asks for; INVALID_ARGUMENT naming `field` for an unknown value."""
    if value not in PRIORITIES:
        names = ", ".join(priority_pb2.RequestPriority.Name(v) for v in PRIORITIES)
        raise InvalidArgument(f"unknown priority {value}; one of {names}", field=field)
    return PRIORITIES[value]
