"""gRPC-JSON transcoding: an HTTP request to the request message of the RPC its `google.api.http` rule
names, following the rules of google/api/http.proto.

A rule's path template binds path segments to request fields (`/v1/models/{model}:attribute`); with
`body: "*"` the JSON body is the rest of the request message, without a body the remaining fields come
from the query string (`?version=2&states=JOB_STATE_RUNNING&states=JOB_STATE_QUEUED`). The body uses the
proto3 JSON mapping (lowerCamelCase or the proto names, enums by name, bytes as base64, 64-bit integers
as strings or numbers). Anything that does not fit raises `BadRequest` naming the field by its path in
the request (`images[1].encoded`), before the call is made.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import unquote

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor, json_format, message, message_factory

FD = descriptor.FieldDescriptor
INTEGER_TYPES = {
    FD.TYPE_INT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FD.TYPE_UINT32: (0, 2**32 - 1),
    FD.TYPE_FIXED32: (0, 2**32 - 1),
    FD.TYPE_INT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FD.TYPE_UINT64: (0, 2**64 - 1),
    FD.TYPE_FIXED64: (0, 2**64 - 1),
}
FLOAT_TYPES = {FD.TYPE_FLOAT, FD.TYPE_DOUBLE}
FLOAT_WORDS = {"NaN", "Infinity", "-Infinity"}
TEMPLATE_VARIABLE = re.compile(r"^\{([a-zA-Z_][a-zA-Z0-9_.]*)\}$")


class BadRequest(ValueError):
    """An HTTP request that cannot become the RPC's request message; `field` is its path in the request."""

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}")
        self.field = field
        self.description = description


@dataclass(frozen=True)
class Route:
    """One RPC bound to an HTTP method and path template by its `google.api.http` rule."""

    http_method: str
    template: str
    segments: tuple[str, ...]  # literal segments and `{field}` variables
    verb: str  # the `:verb` suffix of the last segment, or ""
    body: str  # "*", a field name, or "" (fields from the query string)
    method: descriptor.MethodDescriptor
    request_class: type[message.Message]
    response_class: type[message.Message]

    @property
    def grpc_path(self) -> str:
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def streaming(self) -> bool:
        return self.method.server_streaming

    def match(self, path: str) -> dict[str, str] | None:
        """The path variables when `path` fits this route's template, else None."""
        if self.verb:
            if not path.endswith(f":{self.verb}"):
                return None
            path = path.removesuffix(f":{self.verb}")
        parts = path.strip("/").split("/")
        if not self.verb and ":" in parts[-1]:
            return None  # a custom verb (`/v1/models/shapes:predict`) only matches a rule that has one
        if len(parts) != len(self.segments):
            return None
        bound = {}
        for part, segment in zip(parts, self.segments, strict=True):
            variable = TEMPLATE_VARIABLE.match(segment)
            if variable:
                if not part:
                    return None
                bound[variable.group(1)] = unquote(part)
            elif part != segment:
                return None
        return bound


def routes_for(services: Iterable[descriptor.ServiceDescriptor]) -> list[Route]:
    """A route for every method of `services` that has a `google.api.http` rule."""
    routes = []
    for service in services:
        for method in service.methods:
            options = method.GetOptions()
            if not options.HasExtension(annotations_pb2.http):
                continue
            rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]
            kind = rule.WhichOneof("pattern")
            if kind not in ("get", "put", "post", "delete", "patch"):
                raise ValueError(f"{method.full_name}: HTTP rule `{kind}` is not supported")
            template = getattr(rule, kind)
            last = template.rsplit("/", 1)[-1]
            verb = last.rsplit(":", 1)[1] if ":" in last and not last.endswith("}") else ""
            stripped = template.removesuffix(f":{verb}") if verb else template
            routes.append(
                Route(
                    http_method=kind.upper(),
                    template=template,
                    segments=tuple(stripped.strip("/").split("/")),
                    verb=verb,
                    body=rule.body,
                    method=method,
                    request_class=message_factory.GetMessageClass(method.input_type),
                    response_class=message_factory.GetMessageClass(method.output_type),
                )
            )
    return routes


def build_request(
    route: Route, path_values: Mapping[str, str], query: Iterable[tuple[str, str]], body: Any
) -> message.Message:
    """The request message from the path variables, the query string and the decoded JSON body."""
    request = route.request_class()
    if route.body == "*":
        if not isinstance(body, dict):
            raise BadRequest(
                "body", f"must be a JSON object (a {request.DESCRIPTOR.full_name}), not {_kind(body)}"
            )
        check_json(body, _descriptor(request), "")
        _parse(body, request, "body")
    elif route.body:
        field = _descriptor(request).fields_by_name[route.body]
        if field.message_type is not None:
            check_json(body, field.message_type, route.body)
        _parse({field.json_name: body}, request, route.body)
    elif body is not None:
        raise BadRequest(
            "body", f"{route.http_method} {route.template} takes no body; send the fields as query parameters"
        )
    for name, value in path_values.items():
        _set_text(request, name, [value], source="path")
    if route.body != "*":
        grouped: dict[str, list[str]] = {}
        for name, value in query:
            grouped.setdefault(name, []).append(value)
        for name, values in grouped.items():
            _set_text(request, name, values, source="query")
    elif any(True for _ in query):
        raise BadRequest("query", f"{route.http_method} {route.template} takes its fields in the JSON body")
    return request


def _parse(body: dict[str, Any], request: message.Message, where: str) -> None:
    try:
        json_format.ParseDict(body, request, ignore_unknown_fields=False)
    except json_format.ParseError as exc:
        raise BadRequest(where, str(exc).splitlines()[0]) from None


def _set_text(request: message.Message, dotted: str, values: list[str], source: str) -> None:
    """Set a (nested) scalar field from its text form in the path or the query string."""
    target = request
    names = dotted.split(".")
    for index, name in enumerate(names):
        field = _field(_descriptor(target), name)
        if field is None:
            raise BadRequest(
                dotted, f"unknown {source} parameter: {target.DESCRIPTOR.full_name} has no field {name!r}"
            )
        if index < len(names) - 1:
            if field.type != FD.TYPE_MESSAGE or _is_repeated(field):
                raise BadRequest(dotted, f"{name!r} is not a message field that a parameter can reach into")
            target = getattr(target, field.name)
            continue
        if field.type == FD.TYPE_MESSAGE:
            raise BadRequest(dotted, f"a message field cannot be set from the {source}; send a JSON body")
        if not _is_repeated(field) and len(values) > 1:
            raise BadRequest(dotted, f"given {len(values)} times but takes one value")
        parsed = [_scalar_from_text(field, value, dotted) for value in values]
        if _is_repeated(field):
            getattr(target, field.name).extend(parsed)
        else:
            current = getattr(target, field.name)
            if source == "path" and current not in ("", 0, False) and current != parsed[0]:
                raise BadRequest(dotted, f"the path says {parsed[0]!r} but the body says {current!r}")
            setattr(target, field.name, parsed[0])


def _scalar_from_text(field: descriptor.FieldDescriptor, text: str, where: str) -> Any:
    if field.type == FD.TYPE_STRING:
        return text
    if field.type == FD.TYPE_BOOL:
        if text not in ("true", "false"):
            raise BadRequest(where, f"must be true or false, not {text!r}")
        return text == "true"
    if field.type == FD.TYPE_ENUM:
        values = _enum_type(field).values_by_name
        value = values.get(text)
        if value is None:
            names = ", ".join(values)
            raise BadRequest(where, f"{text!r} is not one of {names}")
        return value.number
    if field.type == FD.TYPE_BYTES:
        return _base64(text, where)
    if field.type in INTEGER_TYPES:
        return _integer(text, field, where)
    if field.type in FLOAT_TYPES:
        return _float(text, where)
    raise BadRequest(where, "cannot be set from text")


def check_json(value: Any, message_type: descriptor.Descriptor, path: str) -> None:
    """Check a JSON value against a message type, field by field, raising BadRequest at the first
    unknown field or wrongly typed value with its path (the proto3 JSON mapping's rules). Well-known
    types are left to the protobuf parser."""
    if message_type.full_name.startswith("google.protobuf."):
        return
    if not isinstance(value, dict):
        raise BadRequest(
            path or "body", f"must be a JSON object ({message_type.full_name}), not {_kind(value)}"
        )
    seen_oneofs: dict[str, str] = {}
    for key, item in value.items():
        where = f"{path}.{key}" if path else key
        field = _field(message_type, key)
        if field is None:
            known = ", ".join(f.json_name for f in message_type.fields)
            raise BadRequest(where, f"unknown field of {message_type.full_name} (fields: {known})")
        if item is None:
            continue
        oneof = field.containing_oneof
        if oneof is not None and not _is_synthetic(oneof):
            if oneof.name in seen_oneofs:
                raise BadRequest(
                    where,
                    f"only one of oneof `{oneof.name}` may be set; {seen_oneofs[oneof.name]} is set too",
                )
            seen_oneofs[oneof.name] = key
        if _is_map(field):
            if not isinstance(item, dict):
                raise BadRequest(where, f"must be a JSON object (a map), not {_kind(item)}")
            value_field = _message_type(field).fields_by_name["value"]
            for map_key, map_value in item.items():
                _check_single(map_value, value_field, f"{where}[{map_key!r}]")
        elif _is_repeated(field):
            if not isinstance(item, list):
                raise BadRequest(where, f"must be a JSON array, not {_kind(item)}")
            for index, element in enumerate(item):
                _check_single(element, field, f"{where}[{index}]")
        else:
            _check_single(item, field, where)


def _check_single(value: Any, field: descriptor.FieldDescriptor, where: str) -> None:
    if field.type == FD.TYPE_MESSAGE:
        check_json(value, _message_type(field), where)
    elif field.type == FD.TYPE_STRING:
        if not isinstance(value, str):
            raise BadRequest(where, f"must be a string, not {_kind(value)}")
    elif field.type == FD.TYPE_BOOL:
        if not isinstance(value, bool):
            raise BadRequest(where, f"must be true or false, not {_kind(value)}")
    elif field.type == FD.TYPE_BYTES:
        if not isinstance(value, str):
            raise BadRequest(where, f"must be a base64 string, not {_kind(value)}")
        _base64(value, where)
    elif field.type == FD.TYPE_ENUM:
        if isinstance(value, str):
            _scalar_from_text(field, value, where)
        elif not isinstance(value, int) or isinstance(value, bool):
            raise BadRequest(where, f"must be an enum name, not {_kind(value)}")
    elif field.type in INTEGER_TYPES:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise BadRequest(where, f"must be an integer, not {_kind(value)}")
        _integer(str(value) if isinstance(value, str) else value, field, where)
    elif field.type in FLOAT_TYPES:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise BadRequest(where, f"must be a number, not {_kind(value)}")
        if isinstance(value, str):
            _float(value, where)


def _integer(value: Any, field: descriptor.FieldDescriptor, where: str) -> int:
    try:
        number = float(value) if isinstance(value, float) else int(value)
    except (TypeError, ValueError):
        raise BadRequest(where, f"must be an integer, not {value!r}") from None
    if isinstance(number, float):
        if not math.isfinite(number) or number != int(number):
            raise BadRequest(where, f"must be an integer, not {value!r}")
        number = int(number)
    low, high = INTEGER_TYPES[field.type]
    if not low <= number <= high:
        raise BadRequest(where, f"{number} is out of range [{low}, {high}]")
    return number


def _float(text: str, where: str) -> float:
    if text in FLOAT_WORDS:
        return float(text.replace("Infinity", "inf"))
    try:
        return float(text)
    except ValueError:
        raise BadRequest(where, f"must be a number, not {text!r}") from None


def _base64(text: str, where: str) -> bytes:
    try:
        padded = text + "=" * (-len(text) % 4)
        return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(where, "is not valid base64") from None


def _descriptor(instance: message.Message) -> descriptor.Descriptor:
    """A message's type. types-protobuf types `DESCRIPTOR` as the pure-Python or the upb descriptor, and
    the rest of its API takes the pure-Python one; at runtime the upb one is an instance of it."""
    return cast(descriptor.Descriptor, instance.DESCRIPTOR)


def _message_type(field: descriptor.FieldDescriptor) -> descriptor.Descriptor:
    """The type of a message field (types-protobuf types it as optional: None for other fields)."""
    if field.message_type is None:
        raise TypeError(f"{field.full_name} is not a message field")
    return field.message_type


def _enum_type(field: descriptor.FieldDescriptor) -> descriptor.EnumDescriptor:
    """The type of an enum field (types-protobuf types it as optional: None for other fields)."""
    if field.enum_type is None:
        raise TypeError(f"{field.full_name} is not an enum field")
    return field.enum_type


def _field(message_type: descriptor.Descriptor, name: str) -> descriptor.FieldDescriptor | None:
    field = message_type.fields_by_name.get(name)
    if field is None:
        field = next((f for f in message_type.fields if f.json_name == name), None)
    return field


def _is_repeated(field: descriptor.FieldDescriptor) -> bool:
    return field.is_repeated


def _is_map(field: descriptor.FieldDescriptor) -> bool:
    return (
        _is_repeated(field) and field.type == FD.TYPE_MESSAGE and _message_type(field).GetOptions().map_entry
    )


def _is_synthetic(oneof: descriptor.OneofDescriptor) -> bool:
    return len(oneof.fields) == 1 and oneof.name == f"_{oneof.fields[0].name}"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array"}.get(
        type(value), "an object"
    )
