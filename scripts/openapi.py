"""The OpenAPI 3.1 document of the HTTP/JSON gateway, derived from the protos' `google.api.http` rules.

Used by scripts/gen_protos.py (the one generator), which hands it the `FileDescriptorSet` protoc
compiled (with source info, so the proto comments become the descriptions). Bodies and responses
follow the proto3 JSON mapping the gateway speaks: lowerCamelCase names, 64-bit integers and bytes
(base64) as strings, enums by name, well-known types by their JSON form. Errors are `google.rpc.Status`.
"""

from __future__ import annotations

import json
from typing import Any

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

FieldType = descriptor_pb2.FieldDescriptorProto
SCALARS: dict[int, dict[str, Any]] = {
    FieldType.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldType.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldType.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldType.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldType.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FieldType.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    FieldType.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0},
    FieldType.TYPE_INT64: {"type": "string", "format": "int64"},
    FieldType.TYPE_SINT64: {"type": "string", "format": "int64"},
    FieldType.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    FieldType.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FieldType.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    FieldType.TYPE_BOOL: {"type": "boolean"},
    FieldType.TYPE_STRING: {"type": "string"},
    FieldType.TYPE_BYTES: {"type": "string", "format": "byte", "contentEncoding": "base64"},
}
WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?s$"},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
        "additionalProperties": True,
    },
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {},
    "google.protobuf.Empty": {"type": "object"},
}
STATUS_SCHEMA = {
    "type": "object",
    "description": "google.rpc.Status: the gRPC code, the message (it names the bad field) and the "
    "same details the gRPC call carries (e.g. google.rpc.RetryInfo).",
    "properties": {
        "code": {"type": "integer", "format": "int32"},
        "message": {"type": "string"},
        "details": {"type": "array", "items": {"$ref": "#/components/schemas/google.protobuf.Any"}},
    },
}
ERROR_RESPONSES = {
    "400": "INVALID_ARGUMENT, FAILED_PRECONDITION or OUT_OF_RANGE; or a body that is not valid JSON "
    "for the request message",
    "401": "UNAUTHENTICATED: a bearer token is required",
    "404": "NOT_FOUND",
    "413": "the body is larger than the gateway's limit",
    "429": "RESOURCE_EXHAUSTED: the server is busy or the call is too large; see google.rpc.RetryInfo",
    "500": "INTERNAL (with a reference id in the message)",
    "503": "UNAVAILABLE",
    "504": "DEADLINE_EXCEEDED",
}


class _Comments:
    """Leading comments of every element of one file, by its source-code-info path."""

    def __init__(self, file: descriptor_pb2.FileDescriptorProto) -> None:
        self._by_path = {
            tuple(location.path): location.leading_comments.strip()
            for location in file.source_code_info.location
            if location.leading_comments
        }

    def get(self, *path: int) -> str:
        return " ".join(line.strip() for line in self._by_path.get(tuple(path), "").splitlines()).strip()


def _json_name(field: descriptor_pb2.FieldDescriptorProto) -> str:
    return field.json_name or field.name


class _Schemas:
    """Collects the JSON schema of every message and enum reachable from the annotated methods."""

    def __init__(self, files: list[descriptor_pb2.FileDescriptorProto]) -> None:
        self.messages: dict[str, tuple[descriptor_pb2.DescriptorProto, _Comments, tuple[int, ...]]] = {}
        self.enums: dict[str, tuple[descriptor_pb2.EnumDescriptorProto, _Comments, tuple[int, ...]]] = {}
        for file in files:
            comments = _Comments(file)
            for index, message in enumerate(file.message_type):
                self._index_message(f".{file.package}", message, comments, (4, index))
            for index, enum in enumerate(file.enum_type):
                self.enums[f".{file.package}.{enum.name}"] = (enum, comments, (5, index))
        self.schemas: dict[str, Any] = {}

    def _index_message(
        self, scope: str, message: descriptor_pb2.DescriptorProto, comments: _Comments, path: tuple[int, ...]
    ) -> None:
        name = f"{scope}.{message.name}"
        self.messages[name] = (message, comments, path)
        for index, nested in enumerate(message.nested_type):
            self._index_message(name, nested, comments, (*path, 3, index))
        for index, enum in enumerate(message.enum_type):
            self.enums[f"{name}.{enum.name}"] = (enum, comments, (*path, 4, index))

    def ref(self, type_name: str) -> dict[str, Any]:
        """A `$ref` to the schema of a message or enum (`.pkg.Name`), added on first use."""
        key = type_name.lstrip(".")
        if key not in self.schemas:
            self.schemas[key] = {}  # a placeholder first: messages may refer to themselves
            if key in WELL_KNOWN:
                self.schemas[key] = WELL_KNOWN[key]
            elif type_name in self.enums:
                self.schemas[key] = self._enum(type_name)
            else:
                self.schemas[key] = self._message(type_name)
        return {"$ref": f"#/components/schemas/{key}"}

    def _enum(self, type_name: str) -> dict[str, Any]:
        enum, comments, path = self.enums[type_name]
        schema: dict[str, Any] = {"type": "string", "enum": [value.name for value in enum.value]}
        description = comments.get(*path)
        if description:
            schema["description"] = description
        return schema

    def _message(self, type_name: str) -> dict[str, Any]:
        message, comments, path = self.messages[type_name]
        properties: dict[str, Any] = {}
        for index, field in enumerate(message.field):
            schema = self.field(field)
            description = comments.get(*path, 2, index)
            if field.HasField("oneof_index") and not field.proto3_optional:
                oneof = message.oneof_decl[field.oneof_index].name
                description = f"{description} (oneof `{oneof}`: set at most one)".strip()
            if description:
                schema = {**schema, "description": description}
            properties[_json_name(field)] = schema
        result: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
        description = comments.get(*path)
        if description:
            result["description"] = description
        return result

    def field(self, field: descriptor_pb2.FieldDescriptorProto) -> dict[str, Any]:
        """The JSON schema of one field's value (a map, an array or a single value)."""
        if field.type == FieldType.TYPE_MESSAGE:
            entry = self.messages.get(field.type_name, (None,))[0]
            if entry is not None and entry.options.map_entry:
                return {"type": "object", "additionalProperties": self.field(entry.field[1])}
            single = self.ref(field.type_name)
        elif field.type == FieldType.TYPE_ENUM:
            single = self.ref(field.type_name)
        else:
            single = dict(SCALARS[field.type])
        if field.label == FieldType.LABEL_REPEATED:
            return {"type": "array", "items": single}
        return single


def _parameters(
    message: descriptor_pb2.DescriptorProto, path_fields: list[str], schemas: _Schemas, query: bool
) -> list[dict[str, Any]]:
    by_name = {field.name: field for field in message.field}
    parameters = []
    for name in path_fields:
        field = by_name[name]
        parameters.append({"name": name, "in": "path", "required": True, "schema": schemas.field(field)})
    if query:
        for field in message.field:
            if field.name in path_fields or field.type == FieldType.TYPE_MESSAGE:
                continue
            parameters.append({"name": _json_name(field), "in": "query", "schema": schemas.field(field)})
    return parameters


def openapi_document(descriptor_set: bytes, title: str, version: str) -> str:
    """The OpenAPI document (JSON text, keys in a stable order) of every method with an HTTP rule."""
    files = list(descriptor_pb2.FileDescriptorSet.FromString(descriptor_set).file)
    schemas = _Schemas(files)
    paths: dict[str, dict[str, Any]] = {}
    for file in files:
        comments = _Comments(file)
        for service_index, service in enumerate(file.service):
            for method_index, method in enumerate(service.method):
                if not method.options.HasExtension(annotations_pb2.http):
                    continue
                rule: http_pb2.HttpRule = method.options.Extensions[annotations_pb2.http]
                verb = rule.WhichOneof("pattern")
                template = getattr(rule, verb)
                path_fields = [part.split("}")[0] for part in template.split("{")[1:]]
                request = schemas.messages[method.input_type][0]
                operation: dict[str, Any] = {
                    "operationId": f"{service.name}_{method.name}",
                    "tags": [service.name],
                    "summary": comments.get(6, service_index, 2, method_index),
                    "parameters": _parameters(request, path_fields, schemas, query=not rule.body),
                }
                if rule.body:
                    operation["requestBody"] = {
                        "required": True,
                        "content": {"application/json": {"schema": schemas.ref(method.input_type)}},
                    }
                response = schemas.ref(method.output_type)
                if method.server_streaming:
                    content = {
                        "text/event-stream": {
                            "schema": {"type": "string"},
                            "description": "one `data:` event per message (JSON), an `error` event "
                            "with a google.rpc.Status if the call fails",
                        },
                        "application/x-ndjson": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "result": response,
                                    "error": {"$ref": "#/components/schemas/google.rpc.Status"},
                                },
                            }
                        },
                    }
                    description = "a stream of messages"
                else:
                    content = {"application/json": {"schema": response}}
                    description = "OK"
                responses: dict[str, Any] = {"200": {"description": description, "content": content}}
                for status, text in ERROR_RESPONSES.items():
                    responses[status] = {
                        "description": text,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/google.rpc.Status"}}
                        },
                    }
                operation["responses"] = responses
                paths.setdefault(template, {})[verb] = operation
    schemas.ref(".google.protobuf.Any")
    schemas.schemas["google.rpc.Status"] = STATUS_SCHEMA
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "The HTTP/JSON gateway of the Glassbox gRPC API (gRPC-JSON transcoding of the "
            "protos' google.api.http rules; proto3 JSON mapping). Generated by scripts/gen_protos.py.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.schemas.items())),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
    }
    return json.dumps(document, indent=1, sort_keys=False) + "\n"
