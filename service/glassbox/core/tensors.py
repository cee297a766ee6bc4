"""Raw tensors as carried on the wire: dtype name + shape + little-endian row-major bytes."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from glassbox.core.errors import InvalidArgument

DTYPES: dict[str, np.dtype] = {
    "float32": np.dtype("<f4"),
    "float16": np.dtype("<f2"),
    "uint8": np.dtype("u1"),
    "int64": np.dtype("<i8"),
}
MAX_DIMENSIONS = 32
"""Most dimensions a wire tensor may have (numpy's own ceiling is 64; no tensor the service takes has
more than 4)."""
MAX_DIMENSION_SIZE = 2**31 - 1
"""Largest single dimension: beyond it no array fits in memory, even an empty one cannot be shaped."""


def array_from_bytes(dtype: str, shape: Sequence[int], data: bytes, *, field: str) -> np.ndarray:
    """Decode raw tensor bytes, checking that the data length matches shape × dtype."""
    if dtype not in DTYPES:
        raise InvalidArgument(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}", field=f"{field}.dtype")
    if len(shape) > MAX_DIMENSIONS:
        raise InvalidArgument(
            f"shape has {len(shape)} dimensions, more than {MAX_DIMENSIONS}", field=f"{field}.shape"
        )
    if any(d < 0 for d in shape):
        raise InvalidArgument(f"shape has a negative dimension: {list(shape)}", field=f"{field}.shape")
    if any(d > MAX_DIMENSION_SIZE for d in shape):
        raise InvalidArgument(
            f"shape has a dimension over {MAX_DIMENSION_SIZE}: {list(shape)}", field=f"{field}.shape"
        )
    np_dtype = DTYPES[dtype]
    expected = math.prod(shape) * np_dtype.itemsize
    if len(data) != expected:
        raise InvalidArgument(
            f"data has {len(data)} bytes but shape {list(shape)} of {dtype} needs {expected}",
            field=f"{field}.data",
        )
    return np.frombuffer(data, dtype=np_dtype).reshape(tuple(shape))


def array_to_bytes(array: np.ndarray) -> tuple[str, list[int], bytes]:
    """Encode an array as (dtype name, shape, little-endian row-major bytes)."""
    for name, np_dtype in DTYPES.items():
        if array.dtype.kind == np_dtype.kind and array.dtype.itemsize == np_dtype.itemsize:
            data = np.ascontiguousarray(array, dtype=np_dtype).tobytes()
            return name, list(array.shape), data
    raise TypeError(f"unsupported array dtype {array.dtype}")
