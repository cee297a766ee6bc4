"""Hypothesis strategies that build any request message of the API from its proto descriptor, and the
list of every RPC the server offers (so an RPC added later is fuzzed without touching the suite).

Values mix the hostile (huge and empty strings, NaN, ±Inf, negative and out-of-range numbers, unknown
enum values, random bytes, decompression bombs, tensors with wild shapes) with the valid names the
demo repository holds (`shapes`, `features.14`, `shapes-val`, …), so that requests also get past the
first check and reach the deeper ones.
"""

from __future__ import annotations

import importlib
import io
import math
import pkgutil
from dataclasses import dataclass
from typing import Any

import glassbox_client._generated.glassbox.v1 as generated
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st
from PIL import Image

from support.image_bombs import BOMBS

MAX_DEPTH = 4
"""Nesting depth of generated messages (objectives and image sets nest)."""


@dataclass(frozen=True)
class Rpc:
    path: str  # /glassbox.v1.ModelService/Predict
    method: MethodDescriptor

    @property
    def request_class(self) -> type[Message]:
        return GetMessageClass(self.method.input_type)

    @property
    def response_class(self) -> type[Message]:
        return GetMessageClass(self.method.output_type)

    @property
    def response_streaming(self) -> bool:
        return self.method.server_streaming


def every_rpc() -> list[Rpc]:
    """Every RPC of every Glassbox service, from the descriptors of every generated module (a service
    or RPC added later is fuzzed too)."""
    rpcs = []
    for info in sorted(pkgutil.iter_modules(generated.__path__), key=lambda m: m.name):
        if not info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"{generated.__name__}.{info.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                rpcs.append(Rpc(f"/{service.full_name}/{method.name}", method))
    return rpcs


def _png(side: int, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (side, side), 128).save(buffer, "PNG")
    return buffer.getvalue()


VALID_IMAGES = (_png(64), _png(17, "L"), _png(300))
BOMB_BYTES = tuple(bomb.make() for bomb in BOMBS)

NAME_HINTS: dict[str, tuple[str, ...]] = {
    "model": ("shapes", "shapes-onnx", "shapes-shortcut"),
    "name": ("shapes", "shapes-onnx"),
    "version": ("1", "", "0", "999"),
    "layer": (
        "features.14",
        "features.10",
        "classifier.2",
        "features.0",
        "/features/features.14/Relu_output_0",
    ),
    "content_layer": ("features.10",),
    "style_layers": ("features.2", "features.6"),
    "named": ("shapes-val", "shapes-val-random-patch"),
    "labels": ("circle", "star", "ring"),
    "label": ("circle", "star"),
    "job_id": ("0" * 32,),
}
HOSTILE_TEXT = st.sampled_from(
    ["", " ", "../../etc/passwd", "x" * 20_000, "\u202e\u0000\uffff", "shapes\n", "%s%n", "🙂" * 300]
)


def _text(field: FieldDescriptor) -> st.SearchStrategy[str]:
    hints = NAME_HINTS.get(field.name, ())
    choices = [HOSTILE_TEXT, st.text(max_size=40)]
    if hints:  # half the time a name that exists, so the request gets past the lookup
        choices = [st.sampled_from(hints), st.sampled_from(hints), *choices]
    return st.one_of(*choices)


INT32 = st.one_of(
    st.integers(-3, 70), st.sampled_from([-(2**31), 2**31 - 1, 1 << 20, 65_535, 10_000, 1024, 513])
)
INT64 = st.one_of(INT32, st.sampled_from([-(2**63), 2**63 - 1, 2**62, 1 << 40]))
UINT = st.one_of(st.integers(0, 70), st.sampled_from([2**32 - 1, 1 << 20]))
FLOATS = st.one_of(
    st.floats(-2.0, 2.0),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, 1e-300, 1e300, 255.0, 1 / 255, 8 / 255]),
)


def _bytes(field: FieldDescriptor) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.sampled_from(VALID_IMAGES),
        st.sampled_from(VALID_IMAGES),
        st.sampled_from(BOMB_BYTES),
        st.binary(max_size=64),
        st.binary(min_size=0, max_size=12).map(lambda tail: VALID_IMAGES[0][:60] + tail),
    )


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return _text(field)
    if kind == FieldDescriptor.TYPE_BYTES:
        return _bytes(field)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return FLOATS
    if kind == FieldDescriptor.TYPE_ENUM:
        known = [value.number for value in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.sampled_from([-1, 99, 2**31 - 1]))
    if kind in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return UINT
    if kind in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return st.one_of(UINT, st.sampled_from([2**64 - 1]))
    if kind in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64):
        return INT64
    return INT32


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _tensor_shape() -> st.SearchStrategy[list[int]]:
    return st.one_of(
        st.sampled_from([[3, 64, 64], [64, 64, 3], [3, 8, 8], [1, 64, 64], [3, 2**62, 0], [0], [1] * 65]),
        st.lists(st.integers(-2, 70), max_size=5),
    )


@st.composite
def _tensor(draw: st.DrawFn, descriptor: Descriptor) -> Message:
    """A Tensor whose data often matches its shape, so that pixel checks past the length one are hit."""
    message = GetMessageClass(descriptor)()
    shape = draw(_tensor_shape())
    dtype_field = descriptor.fields_by_name["dtype"]
    message.dtype = draw(_scalar(dtype_field))
    message.shape.extend(shape)
    if draw(st.booleans()) and all(0 <= d <= 64 for d in shape) and len(shape) <= 4:
        count = math.prod(shape)
        itemsize = {1: 4, 2: 2, 3: 1, 4: 8}.get(message.dtype, 1)
        fill = draw(st.sampled_from([b"\x00", b"\x3c", b"\xff", b"\x7f"]))
        message.data = fill * (count * itemsize)
    else:
        message.data = draw(st.binary(max_size=32))
    return message


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Any message of this type: a random subset of its fields set, one member per oneof."""
    if descriptor.full_name == "glassbox.v1.Tensor":
        return _tensor(descriptor)
    return _message(descriptor, depth)


@st.composite
def _message(draw: st.DrawFn, descriptor: Descriptor, depth: int) -> Message:
    message = GetMessageClass(descriptor)()
    oneof_members = {f.name for oneof in descriptor.oneofs for f in oneof.fields if not _synthetic(oneof)}
    for oneof in descriptor.oneofs:
        if _synthetic(oneof) or not oneof.fields:
            continue
        chosen = draw(st.one_of(st.none(), st.sampled_from(list(oneof.fields))))
        if chosen is not None:
            _set(draw, message, chosen, depth)
    for field in descriptor.fields:
        if field.name in oneof_members:
            continue
        if depth >= MAX_DEPTH and field.message_type is not None:
            continue
        if draw(st.integers(0, 2)) == 0:  # about a third of the fields stay unset
            continue
        _set(draw, message, field, depth)
    return message


def _synthetic(oneof: Any) -> bool:
    """A proto3 `optional` field's own oneof (not a real choice)."""
    return len(oneof.fields) == 1 and oneof.name == f"_{oneof.fields[0].name}"


def _set(draw: st.DrawFn, message: Message, field: FieldDescriptor, depth: int) -> None:
    if _is_map(field):
        key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
        for _ in range(draw(st.integers(0, 2))):
            k = draw(_scalar(key))
            target = getattr(message, field.name)
            if value.message_type is not None:
                target[k].CopyFrom(draw(messages(value.message_type, depth + 1)))
            else:
                target[k] = draw(_scalar(value))
        return
    repeated = field.is_repeated
    count = draw(st.integers(0, 3)) if repeated else 1
    for _ in range(count):
        if field.message_type is not None:
            value = draw(messages(field.message_type, depth + 1))
            if repeated:
                getattr(message, field.name).add().CopyFrom(value)
            else:
                getattr(message, field.name).CopyFrom(value)
        else:
            value = draw(_scalar(field))
            if repeated:
                getattr(message, field.name).append(value)
            else:
                setattr(message, field.name, value)


MALFORMED_BYTES = st.one_of(
    st.binary(min_size=1, max_size=96),
    st.sampled_from(
        [
            b"\xff\xff\xff\xff",
            b"\x0a\x05ab",
            b"\x0a\x02\xc3\x28",
            b"\x1a" + b"\x80" * 11,
            b"\x0a\xff\xff\xff\xff\x0f",
            b"\x08" + b"\xff" * 10 + b"\x01",
            (b"\x1a\x02" * 60)[:101],  # nested messages without end
            b"\x0f",  # a deprecated group start
        ]
    ),
)
"""Request bytes that mostly do not parse as the message (and some that parse as something odd)."""
