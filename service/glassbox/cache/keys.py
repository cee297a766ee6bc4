"""Canonical cache keys: SHA-256 over a typed, order-independent encoding of the request's meaning.

Two requests get the same key exactly when they ask for the same computation: the same model weights
(name, version and weights digest), the same method with its parameters *after* defaults were filled
in (so an omitted field and its default share a key), the same targets, the same preprocessed pixels
(bytes, dtype and shape) and the same output options. `KEY_FORMAT_VERSION` is hashed too: bump it when
the meaning or the stored layout of a result changes and every old entry becomes unreachable.

Every value is encoded with a type tag and a length, so `("ab", "c")` and `("a", "bc")`, `1` and
`1.0` and `"1"`, or a list and a tuple of the same items, never collide. Floats are encoded exactly
(IEEE-754 bits), mappings and sets sorted by their encoded keys, dataclasses by type name and their
fields in declaration order (that order is part of the type), protobuf messages by type name and
deterministic serialization (recognised by their shape, `SerializedMessage`: the cache imports no
protobuf).
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
from collections.abc import Mapping
from enum import Enum
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

KEY_FORMAT_VERSION = 3


class ModelIdentity(Protocol):
    """What identifies a model's behaviour: `backends.base.Model` satisfies it."""

    name: str
    version: str
    weights_digest: str


@runtime_checkable
class SerializedMessage(Protocol):
    """A message with a descriptor naming its type and a deterministic serialization: a protobuf
    message, hashed as its type's full name and its bytes."""

    DESCRIPTOR: Any

    def SerializeToString(self, *, deterministic: bool = ...) -> bytes: ...


def result_key(
    namespace: str,
    kind: str,
    *,
    model: ModelIdentity,
    method: str,
    parameters: Any,
    targets: Any,
    pixels: Any,
    options: Any,
) -> str:
    """`<namespace>:<kind>:v<format>:<sha256 hex>` for one computation on one model.

    `parameters` should be the method's canonical request (defaults filled in); `pixels` the
    preprocessed input tensor(s) exactly as the method receives them.
    """
    fields = {
        "model": (model.name, model.version, model.weights_digest),
        "method": method,
        "parameters": parameters,
        "targets": targets,
        "pixels": pixels,
        "options": options,
    }
    return f"{namespace}:{kind}:v{KEY_FORMAT_VERSION}:{digest(KEY_FORMAT_VERSION, kind, fields)}"


def digest(*values: Any) -> str:
    """Hex SHA-256 of the canonical encoding of `values`."""
    hasher = hashlib.sha256()
    _feed(hasher, values)
    return hasher.hexdigest()


def _feed(hasher: Any, value: Any) -> None:
    """Write a tag, then a length-prefixed canonical encoding of `value`."""
    if value is None:
        _chunk(hasher, b"N", b"")
    elif isinstance(value, bool):
        _chunk(hasher, b"B", b"\x01" if value else b"\x00")
    elif isinstance(value, Enum):
        _chunk(hasher, b"E", _qualname(type(value)).encode())
        _feed(hasher, value.value)
    elif isinstance(value, int):
        _chunk(hasher, b"I", str(value).encode())
    elif isinstance(value, float):
        _chunk(hasher, b"F", struct.pack(">d", value))
    elif isinstance(value, str):
        _chunk(hasher, b"S", value.encode("utf-8", "surrogatepass"))
    elif isinstance(value, bytes | bytearray | memoryview):
        _chunk(hasher, b"Y", bytes(value))
    elif isinstance(value, torch.Tensor):
        _feed_array(hasher, value.detach().cpu().contiguous().numpy())
    elif isinstance(value, np.ndarray):
        _feed_array(hasher, value)
    elif isinstance(value, np.generic):
        _feed(hasher, value.item())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        _chunk(hasher, b"D", f"{_qualname(type(value))}:{len(fields)}".encode())
        for item in fields:
            _chunk(hasher, b"n", item.name.encode())
            _feed(hasher, getattr(value, item.name))
    elif isinstance(value, Mapping):
        _feed_unordered(hasher, b"M", [_encoded((k, v)) for k, v in value.items()])
    elif isinstance(value, set | frozenset):
        _feed_unordered(hasher, b"T", [_encoded(item) for item in value])
    elif isinstance(value, list | tuple):
        _chunk(hasher, b"L" if isinstance(value, list) else b"U", str(len(value)).encode())
        for item in value:
            _feed(hasher, item)
    elif isinstance(value, SerializedMessage):
        _chunk(hasher, b"P", value.DESCRIPTOR.full_name.encode())
        _chunk(hasher, b"p", value.SerializeToString(deterministic=True))
    else:
        raise TypeError(f"cannot build a cache key from a {type(value).__name__}")


def _feed_array(hasher: Any, array: np.ndarray) -> None:
    array = np.ascontiguousarray(array)
    little_endian = array.astype(array.dtype.newbyteorder("<"), copy=False)
    _chunk(hasher, b"A", f"{little_endian.dtype.str}{list(array.shape)}".encode())
    _chunk(hasher, b"a", little_endian.tobytes())


def _feed_unordered(hasher: Any, tag: bytes, encoded_items: list[bytes]) -> None:
    _chunk(hasher, tag, str(len(encoded_items)).encode())
    for item in sorted(encoded_items):
        _chunk(hasher, b"i", item)


def _encoded(value: Any) -> bytes:
    hasher = hashlib.sha256()
    _feed(hasher, value)
    return hasher.digest()


def _chunk(hasher: Any, tag: bytes, data: bytes) -> None:
    hasher.update(tag + struct.pack(">Q", len(data)))
    hasher.update(data)


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
