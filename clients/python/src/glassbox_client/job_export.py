"""Any job's result as JSON and as its pictures, for the command line (every kind, one walk).

    data, pictures = export_result(job.result.message)
    written = write_pictures(pictures, Path("out.png"))      # {"layouts[0].by_label_png": "out-...png"}
    json.dumps(result_json(job.result.message, written))

The walk follows the result message's fields in declaration order: PNG bytes become pictures (in the
JSON: the file each was written to, or a note), tensors become `{"dtype", "shape", "values"}`, enums their
short names, JSON reports (`json`, `report_json`) parsed objects, timestamps ISO 8601. NaN is written
`null` and ±∞ `"inf"` / `"-inf"`, so the output is strict JSON.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from glassbox_client._generated.glassbox.v1 import tensor_pb2
from glassbox_client.descriptors import descriptor_of, enum_type_of, message_type_of
from glassbox_client.images import array_from_tensor

MAX_TENSOR_VALUES = 100_000
"""Tensors up to this many elements are written out in full; larger ones only by dtype and shape."""
JSON_TEXT_FIELDS = frozenset({"json", "report_json"})
FLOAT32_DIGITS = 7


@dataclass(frozen=True)
class Picture:
    """One PNG of a result: `path` names its field (`layouts[1].by_label_png`); `primary` is the
    result's own top-level picture (a plot, a report, an atlas) or, without one, its first picture."""

    path: str
    png: bytes
    primary: bool = False


def pictures_of(result: Message) -> list[Picture]:
    """Every PNG in the result, in field order, the primary one first."""
    found: list[Picture] = []
    _collect(result, "", found)
    top_level = [i for i, p in enumerate(found) if "." not in p.path and "[" not in p.path]
    first = top_level[0] if top_level else 0
    if not found:
        return []
    primary = Picture(found[first].path, found[first].png, primary=True)
    return [primary, *found[:first], *found[first + 1 :]]


def _collect(message: Message, prefix: str, found: list[Picture]) -> None:
    for descriptor, value in message.ListFields():
        path = f"{prefix}{descriptor.name}"
        if descriptor.type == FieldDescriptor.TYPE_BYTES and descriptor.name.endswith("png"):
            found.append(Picture(path, value))
        elif descriptor.type == FieldDescriptor.TYPE_MESSAGE and message_type_of(descriptor).name != "Tensor":
            items = list(value) if descriptor.is_repeated else [value]
            for index, item in enumerate(items):
                where = f"{path}[{index}]" if descriptor.is_repeated else path
                _collect(item, f"{where}.", found)


def picture_file(target: Path, picture: Picture) -> Path:
    """The primary picture goes to `target` itself, each other one beside it named by its field:
    `out.png`, `out-examples-0-patch.png`, `out-layouts-1-by_label.png`."""
    if picture.primary:
        return target
    name = re.sub(r"[\[\].]+", "-", picture.path.removesuffix("_png").removesuffix(".png")).strip("-")
    return target.with_name(f"{target.stem}-{name}{target.suffix or '.png'}")


def write_pictures(result: Message, target: Path) -> dict[str, str]:
    """Write every picture of the result (see `picture_file`); returns field path → file written."""
    written: dict[str, str] = {}
    for picture in pictures_of(result):
        path = picture_file(target, picture)
        path.write_bytes(picture.png)
        written[picture.path] = str(path)
    return written


def result_json(result: Message, written: dict[str, str] | None = None) -> dict[str, Any]:
    """The result as a JSON-ready dict; PNG fields name the file `write_pictures` wrote, or say how many
    bytes they hold and how to write them."""
    return _message(result, "", written or {})


def _message(message: Message, prefix: str, written: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for descriptor in descriptor_of(message).fields:
        if descriptor.has_presence and not message.HasField(descriptor.name):
            continue
        path = f"{prefix}{descriptor.name}"
        value = getattr(message, descriptor.name)
        if descriptor.is_repeated:
            out[descriptor.name] = [
                _value(descriptor, item, f"{path}[{index}]", written) for index, item in enumerate(value)
            ]
        else:
            out[descriptor.name] = _value(descriptor, value, path, written)
    return out


def _value(descriptor: FieldDescriptor, value: Any, path: str, written: dict[str, str]) -> Any:
    if descriptor.type == FieldDescriptor.TYPE_MESSAGE:
        name = message_type_of(descriptor).full_name
        if name == "glassbox.v1.Tensor":
            return _tensor(value)
        if name == "google.protobuf.Timestamp":
            return value.ToDatetime().isoformat() + "Z"
        return _message(value, f"{path}.", written)
    if descriptor.type == FieldDescriptor.TYPE_BYTES:
        if path in written:
            return written[path]
        return f"<{len(value)} bytes of PNG: write them with -o>" if value else None
    if descriptor.type == FieldDescriptor.TYPE_ENUM:
        return _enum_name(descriptor, value)
    if descriptor.name in JSON_TEXT_FIELDS and isinstance(value, str) and value:
        return json.loads(value)
    if descriptor.type == FieldDescriptor.TYPE_FLOAT:
        return _number(value, FLOAT32_DIGITS)
    if isinstance(value, float):
        return _number(value)
    return value


def _enum_name(descriptor: FieldDescriptor, number: int) -> str | int:
    enum = enum_type_of(descriptor)
    value = enum.values_by_number.get(number)
    if value is None:
        return number
    prefix = enum.values_by_number[0].name.removesuffix("UNSPECIFIED")
    return value.name.removeprefix(prefix).lower()


def _number(value: float, digits: int = 0) -> float | str | None:
    """Strict JSON for a float; float32 values rounded to the digits they carry (0.3, not 0.30000001)."""
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return float(f"{value:.{digits}g}") if digits else value


def _tensor(tensor: tensor_pb2.Tensor) -> dict[str, Any] | None:
    array = array_from_tensor(tensor)
    if array is None:
        return None
    described: dict[str, Any] = {"dtype": str(array.dtype), "shape": list(array.shape)}
    if array.size <= MAX_TENSOR_VALUES:
        digits = FLOAT32_DIGITS if array.dtype.itemsize <= 4 else 0
        flat = [_number(float(v), digits) if array.dtype.kind == "f" else int(v) for v in array.ravel()]
        described["values"] = _reshape(flat, list(array.shape))
    else:
        described["values"] = None
        described["note"] = f"over {MAX_TENSOR_VALUES} values: use the Python client for the array"
    return described


def _reshape(flat: list[Any], shape: list[int]) -> Any:
    if len(shape) <= 1:
        return flat
    step = len(flat) // shape[0] if shape[0] else 0
    return [_reshape(flat[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]
