"""Tensor and Image messages ↔ numpy arrays and image sources (core.images). No computation here."""

from __future__ import annotations

import numpy as np
from glassbox_client._generated.glassbox.v1 import tensor_pb2

from glassbox.core.errors import InvalidArgument
from glassbox.core.images import ImageSource
from glassbox.core.tensors import array_from_bytes, array_to_bytes

DTYPE_NAMES = {
    tensor_pb2.DATA_TYPE_FLOAT32: "float32",
    tensor_pb2.DATA_TYPE_FLOAT16: "float16",
    tensor_pb2.DATA_TYPE_UINT8: "uint8",
    tensor_pb2.DATA_TYPE_INT64: "int64",
}
DTYPE_ENUMS = {name: enum for enum, name in DTYPE_NAMES.items()}


def array_from_proto(tensor: tensor_pb2.Tensor, *, field: str) -> np.ndarray:
    """A wire Tensor as a read-only numpy array, its length checked against shape × dtype."""
    if tensor.dtype not in DTYPE_NAMES:
        raise InvalidArgument(
            f"dtype must be one of {sorted(DTYPE_ENUMS)} (DataType enum), got {tensor.dtype}",
            field=f"{field}.dtype",
        )
    return array_from_bytes(DTYPE_NAMES[tensor.dtype], list(tensor.shape), tensor.data, field=field)


def array_to_proto(array: np.ndarray) -> tensor_pb2.Tensor:
    dtype, shape, data = array_to_bytes(array)
    return tensor_pb2.Tensor(dtype=DTYPE_ENUMS[dtype], shape=shape, data=data)


def image_source(image: tensor_pb2.Image, *, field: str) -> ImageSource:
    """A wire Image as encoded bytes or a pixel array."""
    which = image.WhichOneof("source")
    if which == "encoded":
        return bytes(image.encoded)
    if which == "pixels":
        return array_from_proto(image.pixels, field=f"{field}.pixels")
    raise InvalidArgument("image has neither encoded bytes nor pixels", field=field)


def image_sources(images: list[tensor_pb2.Image], *, field: str = "images") -> list[ImageSource]:
    return [image_source(image, field=f"{field}[{i}]") for i, image in enumerate(images)]
